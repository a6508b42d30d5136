/*
 * cluster_rx.c - the receive side of the cluster's nng transport.
 *
 * The listener speaks pull0's side of nng's SP TCP protocol itself, over nng streams, one struct
 * rx_link per connection, so that each peer's inbound is read (and paused) on its own: an nng
 * pull0 socket has one receive queue for every pipe and cannot hold back one peer without holding
 * back all of them. An nng thread reads a frame into the link's queue and wakes the loop with
 * uv_async_send; the loop decodes and acts (the broker is single-threaded). A link stops reading
 * while a local subscriber it feeds is behind (it is a flow source, flow.h) or while it holds
 * CLUSTER_LINK_RX_MAX unhandled bytes: TCP then pushes back on that peer alone. Nothing received is
 * dropped. Peers dial with a plain push0 socket (cluster_tx.c); nothing differs on the wire.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include "cluster_int.h"

#define SP_PUSH0 0x50 /* nng protocol ids: our peers dial with push0, we answer as pull0 */
#define SP_PULL0 0x51

static void link_cb(void *arg);
static void link_frame_done(struct rx_link *l);
static void link_run(struct rx_link *l, size_t *budget);

/* SP over TCP frames each message with an 8-byte big-endian length. */
static uint64_t be64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* nng side: start the next read or write of the link's current phase, from l->got on. */
static void link_io(struct rx_link *l)
{
    nng_iov iov;
    switch (l->phase) {
    case LINK_HELLO_TX:
        iov.iov_buf = l->hello + l->got;
        iov.iov_len = sizeof(l->hello) - l->got;
        break;
    case LINK_HELLO_RX:
        iov.iov_buf = l->hello + l->got;
        iov.iov_len = sizeof(l->hello) - l->got;
        break;
    case LINK_HEAD:
        iov.iov_buf = l->head + l->got;
        iov.iov_len = sizeof(l->head) - l->got;
        break;
    case LINK_BODY:
    default:
        iov.iov_buf = l->cur->data + l->got;
        iov.iov_len = l->cur->len - l->got;
        break;
    }
    nng_aio_set_iov(l->aio, 1, &iov);
    if (l->phase == LINK_HELLO_TX)
        nng_stream_send(l->s, l->aio);
    else
        nng_stream_recv(l->s, l->aio);
}

/* Put l where the loop looks (under in_mu); true if the loop must be woken. */
static bool link_ready_locked(struct cluster *c, struct rx_link *l)
{
    if (l->in_ready)
        return false;
    l->in_ready = true;
    l->ready_next = NULL;
    struct rx_link **tail = &c->rx_ready;
    while (*tail)
        tail = &(*tail)->ready_next;
    *tail = l;
    return true;
}

/* nng side: the stream ended (closed by the peer, an error, bad framing). The loop frees the link
 * once it has handled what was received before; bad (a failed TLS handshake or SP hello, bad
 * framing) is counted there as bad input. */
static void link_end(struct rx_link *l, bool bad)
{
    struct cluster *c = l->c;
    free(l->cur);
    l->cur = NULL;
    pthread_mutex_lock(&c->in_mu);
    l->closed = true;
    l->bad = bad;
    link_ready_locked(c, l);
    pthread_mutex_unlock(&c->in_mu);
    uv_async_send(&c->async);
}

/* nng side: a frame header was read; read its body, unless there is no memory for it now (the
 * link parks; the loop's tick retries, and TCP holds the rest meanwhile). */
static void link_read_body(struct rx_link *l)
{
    struct cluster *c = l->c;
    uint64_t len = be64_get(l->head);
    size_t maxsz = c->max_frame;
    if (len > maxsz) { /* as nng's own receive limit: the connection is dropped */
        link_end(l, true);
        return;
    }
    l->cur = malloc(sizeof(*l->cur) + (size_t)len);
    if (!l->cur) {
        pthread_mutex_lock(&c->in_mu);
        l->parked = true; /* net_tick retries */
        pthread_mutex_unlock(&c->in_mu);
        return;
    }
    l->cur->next = NULL;
    l->cur->len = (size_t)len;
    l->phase = LINK_BODY;
    l->got = 0;
    if (len == 0) /* an empty frame: handed over as such (the loop counts it as bad input) */
        link_frame_done(l);
    else
        link_io(l);
}

/* nng side: a whole frame arrived. Queue it for the loop and read on, unless the link holds
 * CLUSTER_LINK_RX_MAX unhandled bytes (the loop is behind, or the link is paused and keeps what it
 * read): then it parks (no read posted), TCP's window closes, and the sending node's queue for us
 * fills — that peer alone is held back. A paused link still reads up to the bound, and reads again
 * as each kept frame is handled, so the sender sees steady (slow) progress frame by frame rather
 * than one burst per CLUSTER_LINK_RX_MAX, which its stall timeout would take for a dead link. */
static void link_frame_done(struct rx_link *l)
{
    struct cluster *c = l->c;
    struct rx_frame *f = l->cur;
    l->cur = NULL;
    pthread_mutex_lock(&c->in_mu);
    if (l->last)
        l->last->next = f;
    else
        l->first = f;
    l->last = f;
    l->bytes += f->len;
    bool wake = link_ready_locked(c, l);
    bool more = l->bytes < CLUSTER_LINK_RX_MAX && !atomic_load(&c->rx_stop);
    l->parked = !more;
    l->phase = LINK_HEAD;
    l->got = 0;
    pthread_mutex_unlock(&c->in_mu);
    if (wake)
        uv_async_send(&c->async);
    if (more)
        link_io(l);
}

/* nng thread: one step of the link's conversation completed. */
static void link_cb(void *arg)
{
    struct rx_link *l = arg;
    if (nng_aio_result(l->aio) != 0 || atomic_load(&l->c->rx_stop)) {
        /* Before the hello: a TLS handshake refused (no or an untrusted certificate), garbage. */
        bool early = l->phase == LINK_HELLO_TX || l->phase == LINK_HELLO_RX;
        link_end(l, early && !atomic_load(&l->c->rx_stop));
        return;
    }
    l->got += nng_aio_count(l->aio);
    switch (l->phase) {
    case LINK_HELLO_TX:
        if (l->got < sizeof(l->hello))
            break;
        l->phase = LINK_HELLO_RX;
        l->got = 0;
        break;
    case LINK_HELLO_RX:
        if (l->got < sizeof(l->hello))
            break;
        /* nng's check, and the peer must be a push0 socket (what nng's pull0 accepts). */
        if (l->hello[0] != 0 || l->hello[1] != 'S' || l->hello[2] != 'P' || l->hello[3] != 0 ||
            l->hello[6] != 0 || l->hello[7] != 0 ||
            ((unsigned)l->hello[4] << 8 | l->hello[5]) != SP_PUSH0) {
            link_end(l, true);
            return;
        }
        l->phase = LINK_HEAD;
        l->got = 0;
        break;
    case LINK_HEAD:
        if (l->got < sizeof(l->head))
            break;
        link_read_body(l);
        return;
    case LINK_BODY:
        if (l->got < l->cur->len)
            break;
        link_frame_done(l);
        return;
    }
    link_io(l);
}

/* Loop: a parked link may read again (drained under the bound, or memory to retry). */
void rx_link_unpark(struct rx_link *l)
{
    struct cluster *c = l->c;
    pthread_mutex_lock(&c->in_mu);
    bool go =
        l->parked && !l->closed && l->bytes < CLUSTER_LINK_RX_MAX && !atomic_load(&c->rx_stop);
    if (go)
        l->parked = false;
    pthread_mutex_unlock(&c->in_mu);
    if (!go)
        return;
    if (l->phase == LINK_HEAD && l->got == sizeof(l->head) && !l->cur)
        link_read_body(l); /* parked for want of memory */
    else
        link_io(l);
}

/* flow.h: a local subscriber fed by this link is behind. Stop after the envelope being handled
 * (the frame handler checks l->paused); what follows is kept in order, and reading stops at
 * CLUSTER_LINK_RX_MAX kept bytes. */
static void link_pause(struct flow_source *src)
{
    struct rx_link *l = (struct rx_link *)((char *)src - offsetof(struct rx_link, src));
    pthread_mutex_lock(&l->c->in_mu);
    l->paused = true;
    pthread_mutex_unlock(&l->c->in_mu);
}

/* flow.h, check phase: go on with the kept frames in order (reading again as they drain). */
static void link_resume(struct flow_source *src)
{
    struct rx_link *l = (struct rx_link *)((char *)src - offsetof(struct rx_link, src));
    pthread_mutex_lock(&l->c->in_mu);
    l->paused = false;
    pthread_mutex_unlock(&l->c->in_mu);
    size_t budget = CLUSTER_RX_TURN_BYTES;
    link_run(l, &budget);
}

static const struct flow_source_ops link_flow_ops = {link_pause, link_resume};

/* Loop (or shutdown, callbacks stopped): unlink l, stop its aio and stream, free what it kept. */
void rx_link_free(struct rx_link *l)
{
    struct cluster *c = l->c;
    pthread_mutex_lock(&c->in_mu);
    for (struct rx_link **pp = &c->links; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    pthread_mutex_unlock(&c->in_mu);
    if (l->aio) {
        nng_aio_stop(l->aio); /* a callback in progress returns first */
        nng_aio_free(l->aio);
    }
    if (l->s) {
        nng_stream_close(l->s);
        nng_stream_free(l->s);
    }
    broker_flow_forget(c->b, &l->src);
    for (struct rx_frame *f = l->first, *n; f; f = n) {
        n = f->next;
        free(f);
    }
    free(l->cur);
    free(l);
}

/* Loop: handle l's frames in order until it is paused, empty or the budget is spent (then it goes
 * to the back of the ready list, behind the other links). A closed link is freed once empty (its
 * kept frames are delivered first, after a resume if it is paused). */
static void link_run(struct rx_link *l, size_t *budget)
{
    struct cluster *c = l->c;
    for (;;) {
        pthread_mutex_lock(&c->in_mu);
        struct rx_frame *f = l->paused ? NULL : l->first;
        bool requeue = f && *budget == 0;
        if (requeue && link_ready_locked(c, l))
            uv_async_send(&c->async);
        pthread_mutex_unlock(&c->in_mu);
        if (!f || requeue)
            break;
        size_t n = 0;
        if (!c->stopping) {
            c->rx_current = l;
            n = c->on_frame(c, f->data + l->off, f->len - l->off, l->from, &l->paused);
            c->rx_current = NULL;
        }
        if (!c->stopping && l->paused && l->off + n < f->len) {
            l->off += n; /* the rest of this frame waits for the resume */
            break;
        }
        pthread_mutex_lock(&c->in_mu);
        l->first = f->next;
        if (!l->first)
            l->last = NULL;
        l->bytes -= f->len;
        pthread_mutex_unlock(&c->in_mu);
        *budget = *budget > f->len ? *budget - f->len : 0;
        l->off = 0;
        free(f);
    }
    pthread_mutex_lock(&c->in_mu);
    bool gone = l->closed && !l->first && !l->in_ready;
    bool bad = gone && l->bad;
    pthread_mutex_unlock(&c->in_mu);
    if (bad && !c->stopping)
        cluster_bad_input(c, l->from, "a connection that failed the TLS handshake or SP hello");
    if (gone)
        rx_link_free(l);
    else
        rx_link_unpark(l);
}

/* Loop: handle the links that have frames (or closed), about a frame from each in turn, so one busy
 * peer does not hold back the others; and release gated peers whose queues drained. */
static void net_async_cb(uv_async_t *h)
{
    struct cluster *c = h->data;
    if (atomic_exchange(&c->tx_low, false))
        for (struct peer *p = c->peers; p; p = p->next)
            peer_after_drain(p);
    size_t budget = CLUSTER_RX_TURN_BYTES;
    while (budget > 0) {
        pthread_mutex_lock(&c->in_mu);
        struct rx_link *l = c->rx_ready;
        if (l) {
            c->rx_ready = l->ready_next;
            l->ready_next = NULL;
            l->in_ready = false;
        }
        pthread_mutex_unlock(&c->in_mu);
        if (!l)
            return;
        size_t slice = budget < CLUSTER_FRAME_SOFT_MAX ? budget : CLUSTER_FRAME_SOFT_MAX;
        size_t left = slice;
        link_run(l, &left); /* may free l */
        budget -= slice - left;
    }
    pthread_mutex_lock(&c->in_mu);
    bool more = c->rx_ready != NULL;
    pthread_mutex_unlock(&c->in_mu);
    if (more)
        uv_async_send(&c->async); /* the rest after this loop turn's I/O and check phase */
}

/* nng thread: a peer connected to the cluster port. Answer its hello, then read its frames. */
static void net_accept_cb(void *arg)
{
    struct cluster *c = arg;
    int rv = nng_aio_result(c->accept_aio);
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED || atomic_load(&c->rx_stop))
        return;
    if (rv == 0) {
        nng_stream *s = nng_aio_get_output(c->accept_aio, 0);
        struct rx_link *l = calloc(1, sizeof(*l));
        if (!l || nng_aio_alloc(&l->aio, link_cb, l) != 0) {
            free(l);
            nng_stream_close(s);
            nng_stream_free(s);
        } else {
            l->c = c;
            l->s = s;
            l->src.ops = &link_flow_ops;
            snprintf(l->from, sizeof(l->from), "unknown");
            nng_sockaddr sa;
            if (nng_stream_get_addr(s, NNG_OPT_REMADDR, &sa) == 0 && sa.s_family == NNG_AF_INET) {
                char ip[INET_ADDRSTRLEN];
                if (inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof(ip)))
                    snprintf(l->from, sizeof(l->from), "%s", ip);
            }
            static const uint8_t hello[8] = {0, 'S', 'P', 0, SP_PULL0 >> 8, SP_PULL0 & 0xff, 0, 0};
            memcpy(l->hello, hello, sizeof(hello));
            l->phase = LINK_HELLO_TX;
            pthread_mutex_lock(&c->in_mu);
            l->next = c->links;
            c->links = l;
            pthread_mutex_unlock(&c->in_mu);
            link_io(l);
        }
    }
    nng_stream_listener_accept(c->rx, c->accept_aio);
}

/* Start the loop's wake-up handle and the cluster port's listener, then accept the first peer. */
int net_listen(struct cluster *c, cluster_frame_fn on_frame, char *err, size_t errlen)
{
    c->on_frame = on_frame;
    char url[128];
    int rv;
    snprintf(url, sizeof(url), "%s://%s:%u", cluster_tls_scheme(c), c->cfg->cluster_bind,
             c->cfg->cluster_port);
    if (uv_async_init(c->loop, &c->async, net_async_cb) != 0) {
        snprintf(err, errlen, "cluster: uv_async_init failed");
        return -1;
    }
    c->async.data = c;
    c->async_on = true;
    c->handles++;
    if ((rv = nng_stream_listener_alloc(&c->rx, url)) != 0) {
        snprintf(err, errlen, "cluster: listener %s: %s", url, nng_strerror(rv));
        return -1;
    }
    if (cluster_tls_listener(c, c->rx, err, errlen) != 0)
        return -1;
    if ((rv = nng_stream_listener_listen(c->rx)) != 0) {
        snprintf(err, errlen, "cluster: listen %s: %s", url, nng_strerror(rv));
        return -1;
    }
    if ((rv = nng_aio_alloc(&c->accept_aio, net_accept_cb, c)) != 0) {
        snprintf(err, errlen, "cluster: nng aio: %s", nng_strerror(rv));
        return -1;
    }
    nng_stream_listener_accept(c->rx, c->accept_aio);
    return 0;
}
