/*
 * cluster_net.c - the cluster's nng transport.
 *
 * Each node listens on tcp://cluster_bind:cluster_port; every peer dials it with its own push0
 * socket. So each direction between two nodes is one TCP connection carrying one ordered stream,
 * and a message meant for one peer goes to that peer only.
 *
 * Receive: the listener speaks pull0's side of nng's SP TCP protocol itself, over nng streams, one
 * struct rx_link per connection, so that each peer's inbound is read (and paused) on its own: an
 * nng thread reads a frame into the link's queue and wakes the loop with uv_async_send; the loop
 * decodes and acts (the broker is single-threaded). A link stops reading while a local subscriber
 * it feeds is behind (it is a flow source, flow.h) or while it holds CLUSTER_LINK_RX_MAX unhandled
 * bytes: TCP then pushes back on that peer alone. Nothing received is dropped. Send: the loop
 * appends encoded envelopes to the peer's queue; one nng send is in flight per peer, and its
 * completion callback (on an nng thread) batches whatever is queued into the next frame. One
 * sender, one queue, one pipe: order is kept. The loop never waits on the network. A queue over its
 * high watermark pauses the local publisher feeding it (the peer's gate) until the sender reports
 * it under the low one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "cluster_int.h"

#include <nng/protocol/pipeline0/push.h>

struct wbuf *wbuf_new(size_t len)
{
    struct wbuf *w = malloc(sizeof(*w) + len);
    if (!w)
        return NULL;
    atomic_init(&w->refs, 1);
    w->len = len;
    return w;
}

void wbuf_unref(struct wbuf *w)
{
    if (w && atomic_fetch_sub(&w->refs, 1) == 1)
        free(w);
}

/* ---- receive ---- */

#define SP_PUSH0 0x50 /* nng protocol ids: our peers dial with push0, we answer as pull0 */
#define SP_PULL0 0x51

static void link_cb(void *arg);
static void link_frame_done(struct rx_link *l);
static void link_run(struct rx_link *l, size_t *budget);
static void peer_after_drain(struct peer *p);

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
 * once it has handled what was received before. */
static void link_end(struct rx_link *l)
{
    struct cluster *c = l->c;
    free(l->cur);
    l->cur = NULL;
    pthread_mutex_lock(&c->in_mu);
    l->closed = true;
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
    size_t maxsz = c->cfg->max_packet_size + CLUSTER_FRAME_SOFT_MAX + 64 * 1024;
    if (len > maxsz) { /* as nng's own receive limit: the connection is dropped */
        link_end(l);
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
        link_end(l);
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
            link_end(l);
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
static void link_unpark(struct rx_link *l)
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
 * (cluster_handle_frame checks l->paused); what follows is kept in order, and reading stops at
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

static void link_free(struct rx_link *l)
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
            n = cluster_handle_frame(c, f->data + l->off, f->len - l->off, l->from, &l->paused);
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
    pthread_mutex_unlock(&c->in_mu);
    if (gone)
        link_free(l);
    else
        link_unpark(l);
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

int net_listen(struct cluster *c, char *err, size_t errlen)
{
    char url[128];
    int rv;
    snprintf(url, sizeof(url), "tcp://%s:%u", c->cfg->cluster_bind, c->cfg->cluster_port);
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

/* nng_close can hang on a socket torn down under load (nanomsg/nng#1219, closing pull0 while a
 * push0 peer sends). At shutdown our callbacks are stopped first, then the sockets are closed on a
 * helper thread that gets CLUSTER_CLOSE_WAIT_MS: if nng is stuck, the process exits anyway. */
struct closer {
    nng_socket *socks;
    size_t n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    bool abandoned; /* the waiter gave up: the thread frees the closer */
};

static void *closer_main(void *arg)
{
    struct closer *cl = arg;
    for (size_t i = 0; i < cl->n; i++)
        nng_close(cl->socks[i]);
    pthread_mutex_lock(&cl->mu);
    cl->done = true;
    bool abandoned = cl->abandoned;
    pthread_cond_signal(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    if (abandoned) {
        free(cl->socks);
        free(cl);
    }
    return NULL;
}

/* Close socks, waiting at most timeout_ms. True if all closed. */
static bool net_close_bounded(nng_socket *socks, size_t n, unsigned timeout_ms)
{
    struct closer *cl = calloc(1, sizeof(*cl));
    pthread_t th;
    if (!cl)
        goto inline_close;
    cl->socks = socks;
    cl->n = n;
    pthread_mutex_init(&cl->mu, NULL);
    pthread_cond_init(&cl->cv, NULL);
    if (pthread_create(&th, NULL, closer_main, cl) != 0) {
        free(cl);
        goto inline_close;
    }
    pthread_detach(th);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&cl->mu);
    while (!cl->done && pthread_cond_timedwait(&cl->cv, &cl->mu, &deadline) == 0)
        ;
    bool done = cl->done;
    cl->abandoned = !done;
    pthread_mutex_unlock(&cl->mu);
    if (done) {
        free(cl->socks);
        free(cl);
    }
    return done;
inline_close:
    for (size_t i = 0; i < n; i++)
        nng_close(socks[i]);
    free(socks);
    return true;
}

void net_shutdown(struct cluster *c)
{
    /* 1. No more sends: queues dropped, completions do not start new sends. */
    for (struct peer *p = c->peers; p; p = p->next) {
        pthread_mutex_lock(&p->mu);
        p->accepting = false;
        p->want_low = false;
        p->tx_dropped += p->out_count + p->stage_count;
        p->out_head = p->out_len = p->out_count = 0;
        pthread_mutex_unlock(&p->mu);
        p->stage_len = p->stage_count = 0;
        broker_flow_release(c->b, &p->gate);
    }
    atomic_store(&c->rx_stop, true);
    /* 2. Stop our callbacks (each waits for one in progress to return): no accept, and every
     * link's stream closed so its pending read ends. */
    if (c->accept_aio)
        nng_aio_stop(c->accept_aio);
    pthread_mutex_lock(&c->in_mu);
    struct rx_link *links = c->links;
    pthread_mutex_unlock(&c->in_mu);
    for (struct rx_link *l = links; l; l = l->next)
        nng_stream_close(l->s);
    for (struct rx_link *l = links; l; l = l->next)
        nng_aio_stop(l->aio);
    for (struct peer *p = c->peers; p; p = p->next)
        if (p->aio)
            nng_aio_stop(p->aio);
    /* 3. Close the sockets, bounded. */
    size_t n = 0;
    for (struct peer *p = c->peers; p; p = p->next)
        n += p->open;
    nng_socket *socks = n ? calloc(n, sizeof(*socks)) : NULL;
    size_t k = 0;
    for (struct peer *p = c->peers; p; p = p->next)
        if (p->open && socks)
            socks[k++] = p->sock;
    bool closed = true;
    if (socks)
        closed = net_close_bounded(socks, k, CLUSTER_CLOSE_WAIT_MS);
    if (!closed)
        log_warn(c->log, "cluster: nng did not close its sockets within %d ms; exiting anyway",
                 CLUSTER_CLOSE_WAIT_MS);
    for (struct peer *p = c->peers; p; p = p->next) {
        if (p->aio && closed)
            nng_aio_free(p->aio); /* stopped above: no callback can be running */
        p->aio = NULL;
        p->open = false;
        p->busy = false;
    }
    /* 4. What was received and not handled is dropped with the links. */
    c->rx_ready = NULL;
    while (c->links)
        link_free(c->links);
    if (c->rx) {
        nng_stream_listener_close(c->rx);
        nng_stream_listener_free(c->rx);
        c->rx = NULL;
    }
    if (c->accept_aio)
        nng_aio_free(c->accept_aio);
    c->accept_aio = NULL;
}

/* ---- send ---- */

/* Under p->mu: take queued envelopes (already framed as repeated field 1 of Frame) up to about
 * CLUSTER_FRAME_SOFT_MAX bytes, cut at an envelope boundary, into one nng message. NULL if none or
 * out of memory. */
static nng_msg *peer_build_locked(struct peer *p)
{
    size_t avail = p->out_len - p->out_head, take = 0, count = 0;
    if (avail == 0)
        return NULL;
    if (avail <= CLUSTER_FRAME_SOFT_MAX) {
        take = avail;
        count = p->out_count;
    } else {
        const uint8_t *q = p->out + p->out_head, *end = p->out + p->out_len;
        while (q < end) {
            const uint8_t *e = q + 1; /* the tag byte: we wrote it */
            uint64_t len = 0;
            for (unsigned shift = 0; e < end; shift += 7) {
                uint8_t b = *e++;
                len |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80))
                    break;
            }
            size_t entry = (size_t)(e - q) + (size_t)len;
            if (take > 0 && take + entry > CLUSTER_FRAME_SOFT_MAX)
                break;
            take += entry;
            count++;
            q += entry;
        }
    }
    nng_msg *m;
    if (nng_msg_alloc(&m, take) != 0)
        return NULL;
    memcpy(nng_msg_body(m), p->out + p->out_head, take);
    p->out_head += take;
    p->out_count -= count;
    if (p->out_head == p->out_len) {
        p->out_head = p->out_len = 0;
        if (p->out_cap > 4u * 1024u * 1024u) { /* a backlog is over: give the memory back */
            free(p->out);
            p->out = NULL;
            p->out_cap = 0;
        }
    }
    return m;
}

/* PUBLISH envelopes in a run of queued entries ([0x0a, varint len, envelope]...): counting what
 * a closed link drops (not on the hot path). */
static uint64_t count_publishes(const uint8_t *q, size_t len)
{
    const uint8_t *end = q + len, *env;
    size_t env_len;
    uint64_t n = 0;
    while (wire_next_envelope(&q, end, &env, &env_len) == 1) {
        struct wire_envelope we;
        if (wire_parse_envelope(env, env_len, &we) == 1 &&
            we.body_field == CL__ENVELOPE__BODY_PUBLISH)
            n++;
    }
    return n;
}

/* nng thread: the previous frame is handed to the pipe (or failed: the link is being closed); send
 * what queued meanwhile. Under the low watermark, tell the loop, which releases the publishers
 * paused for this peer (broker functions are the loop's alone). */
static void peer_tx_cb(void *arg)
{
    struct peer *p = arg;
    int rv = nng_aio_result(p->aio);
    nng_msg *next = NULL;
    uint64_t lost = 0;
    if (rv != 0) {
        nng_msg *m = nng_aio_get_msg(p->aio);
        if (m) {
            lost = count_publishes(nng_msg_body(m), nng_msg_len(m));
            nng_msg_free(m);
        }
        nng_aio_set_msg(p->aio, NULL);
    }
    pthread_mutex_lock(&p->mu);
    if (rv != 0) {
        p->tx_dropped++;
        p->gone_pubs += lost;
    } else {
        p->tx_done++;
    }
    if (p->accepting)
        next = peer_build_locked(p);
    p->busy = next != NULL;
    if (next)
        p->tx_frames++;
    bool low = p->want_low && p->out_len - p->out_head <= p->c->tx_low_bytes;
    if (low)
        p->want_low = false;
    pthread_mutex_unlock(&p->mu);
    if (low) {
        atomic_store(&p->c->tx_low, true);
        uv_async_send(&p->c->async);
    }
    if (next) {
        nng_aio_set_msg(p->aio, next);
        nng_send_aio(p->sock, p->aio);
    }
}

/* Loop, after a PUBLISH was staged for p: past the high watermark (counted exactly, under the lock:
 * the loop's copy of the backlog is from the last kick), pause the publisher being handled and ask
 * the sender to say when the queue is under the low watermark. A stalled peer pauses nobody. */
void peer_after_forward(struct peer *p)
{
    if (p->stage_len + p->backlog <= p->c->tx_high_bytes || p->stalled || !p->open)
        return;
    pthread_mutex_lock(&p->mu);
    p->backlog = p->out_len - p->out_head;
    bool over = p->stage_len + p->backlog > p->c->tx_high_bytes && p->accepting;
    if (over)
        p->want_low = true;
    uint64_t done = p->tx_done;
    pthread_mutex_unlock(&p->mu);
    if (!over)
        return;
    if (!flow_gate_busy(&p->gate)) { /* the stall timeout counts from the first pause */
        p->progress_ms = uv_now(p->c->loop);
        p->progress_seen = done;
    }
    broker_flow_block(p->c->b, &p->gate, NULL); /* drained by the network, not a source here */
}

/* Loop, woken by a sender under the low watermark: the whole queue (the loop's stage too) is
 * checked again; if it is still over, the sender is asked again. */
static void peer_after_drain(struct peer *p)
{
    struct cluster *c = p->c;
    if (!p->open || (!flow_gate_busy(&p->gate) && !p->stalled))
        return;
    pthread_mutex_lock(&p->mu);
    size_t queued = p->stage_len + p->out_len - p->out_head;
    bool low = queued <= c->tx_low_bytes;
    p->want_low = !low;
    pthread_mutex_unlock(&p->mu);
    if (!low)
        return;
    if (p->stalled) {
        p->stalled = false;
        log_info(c->log, "cluster: peer %s caught up: slows local publishers again when behind",
                 p->name);
    }
    broker_flow_release(c->b, &p->gate);
}

/* Loop tick: links parked for want of memory read again; a gated peer whose queue made no progress
 * for stall_timeout_ms (unreachable, not yet declared dead) stops pausing publishers. */
void net_tick(struct cluster *c, uint64_t now)
{
    pthread_mutex_lock(&c->in_mu);
    struct rx_link *links = c->links;
    pthread_mutex_unlock(&c->in_mu);
    for (struct rx_link *l = links; l; l = l->next)
        link_unpark(l); /* no-op unless parked and under the bound */
    for (struct peer *p = c->peers; p; p = p->next) {
        if (!flow_gate_busy(&p->gate) || p->stalled)
            continue;
        pthread_mutex_lock(&p->mu);
        uint64_t done = p->tx_done;
        size_t queued = p->stage_len + p->out_len - p->out_head;
        pthread_mutex_unlock(&p->mu);
        if (done != p->progress_seen) {
            p->progress_seen = done;
            p->progress_ms = now;
            continue;
        }
        if (now - p->progress_ms <= c->cfg->stall_timeout_ms)
            continue;
        p->stalled = true;
        c->peer_stalls++;
        log_warn(c->log,
                 "cluster: peer %s made no progress for %u ms (%zu bytes queued): no longer slows "
                 "local publishers; its messages past %u MiB are dropped until it catches up",
                 p->name, c->cfg->stall_timeout_ms, queued, CLUSTER_PEER_QUEUE_MAX >> 20);
        pthread_mutex_lock(&p->mu);
        p->want_low = true;
        pthread_mutex_unlock(&p->mu);
        broker_flow_release(c->b, &p->gate);
    }
}

int peer_init_tx(struct peer *p)
{
    return pthread_mutex_init(&p->mu, NULL) != 0 ? -1 : 0;
}

/* Dial from our cluster address (not whatever the kernel picks), so peers and firewalls see the
 * connection come from the address this node advertises. */
static int peer_dial(struct peer *p, const char *url)
{
    nng_dialer d;
    int rv = nng_dialer_create(&d, p->sock, url);
    if (rv != 0)
        return rv;
    struct sockaddr_in sin;
    const char *bind = p->c->cfg->cluster_bind;
    if (bind[0] && strcmp(bind, "0.0.0.0") != 0 && inet_pton(AF_INET, bind, &sin.sin_addr) == 1) {
        nng_sockaddr sa = {0};
        sa.s_in.sa_family = NNG_AF_INET;
        sa.s_in.sa_addr = sin.sin_addr.s_addr;
        sa.s_in.sa_port = 0;
        if ((rv = nng_dialer_set_addr(d, NNG_OPT_LOCADDR, &sa)) != 0)
            log_debug(p->c->log, "cluster: cannot dial %s from %s: %s", p->name, bind,
                      nng_strerror(rv));
    }
    return nng_dialer_start(d, NNG_FLAG_NONBLOCK);
}

/* Dial the peer's listener. nng reconnects by itself while the member stays alive or suspect. */
int peer_open(struct peer *p)
{
    char url[128];
    int rv;
    if (p->open)
        return 0;
    snprintf(url, sizeof(url), "tcp://%s:%u", p->host, p->port);
    if (nng_aio_alloc(&p->aio, peer_tx_cb, p) != 0)
        return -1;
    if ((rv = nng_push0_open(&p->sock)) != 0) {
        nng_aio_free(p->aio);
        p->aio = NULL;
        return -1;
    }
    nng_socket_set_ms(p->sock, NNG_OPT_RECONNMINT, 20);
    nng_socket_set_ms(p->sock, NNG_OPT_RECONNMAXT, 500);
    if ((rv = peer_dial(p, url)) != 0) {
        log_warn(p->c->log, "cluster: dial %s (%s): %s", p->name, url, nng_strerror(rv));
        nng_close(p->sock);
        nng_aio_free(p->aio);
        p->aio = NULL;
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    p->accepting = true;
    pthread_mutex_unlock(&p->mu);
    p->open = true;
    return 0;
}

/* Close the peer's socket and drop what is queued for it; afterwards no nng thread touches p. */
void peer_close(struct peer *p)
{
    if (!p->open)
        return;
    /* What it had queued is lost with it: counted as dropped for a gone peer. */
    uint64_t lost = count_publishes(p->stage, p->stage_len);
    pthread_mutex_lock(&p->mu);
    p->accepting = false;
    p->want_low = false;
    p->tx_dropped += p->out_count + p->stage_count + p->stage_dropped;
    p->gone_pubs += lost + count_publishes(p->out + p->out_head, p->out_len - p->out_head);
    p->out_head = p->out_len = p->out_count = 0;
    pthread_mutex_unlock(&p->mu);
    p->stage_len = p->stage_count = p->stage_dropped = 0;
    p->backlog = 0;
    /* A gone peer exerts no back-pressure: the publishers paused for it resume. */
    p->stalled = false;
    broker_flow_release(p->c->b, &p->gate);
    nng_aio_stop(p->aio); /* cancels a send in flight (its PUBLISHes counted too) */
    nng_close(p->sock);
    nng_aio_free(p->aio);
    p->aio = NULL;
    p->busy = false;
    p->open = false;
}

/* Shutdown only: give what is queued for peers (wills published while the broker closes its
 * clients) up to timeout_ms to reach the sockets, then a moment for the last write. Blocks the
 * loop; nothing else runs by then. */
void net_flush(struct cluster *c, unsigned timeout_ms)
{
    net_kick(c);
    uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
    bool had_any = false;
    for (;;) {
        bool pending = false;
        for (struct peer *p = c->peers; p; p = p->next) {
            if (!p->open)
                continue;
            pthread_mutex_lock(&p->mu);
            pending = pending || p->out_len > p->out_head || p->busy;
            had_any = had_any || p->tx_frames > 0;
            pthread_mutex_unlock(&p->mu);
        }
        if (!pending || uv_hrtime() >= deadline)
            break;
        uv_sleep(2);
    }
    if (had_any)
        uv_sleep(20); /* push0 completes a send when the pipe takes it, before the TCP write ends */
}

void peer_free_tx(struct peer *p)
{
    free(p->stage);
    p->stage = NULL;
    free(p->out);
    p->out = NULL;
    p->out_cap = 0;
    pthread_mutex_destroy(&p->mu);
}

/* Under p->mu: room for need more bytes at the end of the queue (compacting before growing). */
static int peer_out_reserve_locked(struct peer *p, size_t need)
{
    if (p->out_cap - p->out_len >= need)
        return 0;
    if (p->out_head > 0) {
        memmove(p->out, p->out + p->out_head, p->out_len - p->out_head);
        p->out_len -= p->out_head;
        p->out_head = 0;
        if (p->out_cap - p->out_len >= need)
            return 0;
    }
    size_t cap = p->out_cap ? p->out_cap * 2 : 64 * 1024;
    while (cap - p->out_len < need)
        cap *= 2;
    uint8_t *n = realloc(p->out, cap);
    if (!n)
        return -1;
    p->out = n;
    p->out_cap = cap;
    return 0;
}

static void peer_kick(struct peer *p);

/* Loop only, no lock: room for an envelope of len bytes at the end of p's stage, its frame header
 * written; returns where the envelope goes, or NULL if p is closed or its backlog is full (counted
 * as dropped). Staged envelopes move to the locked queue at the end of the loop turn (net_kick), or
 * before this call once CLUSTER_KICK_BYTES are staged: what it returns is valid until the next
 * peer_stage or kick of the same peer. */
uint8_t *peer_stage(struct peer *p, size_t len)
{
    /* Before reserving (the stage may be swapped). Only to an idle sender: a busy one takes the
     * queue itself when its send completes, in frames that grow as the peer falls behind. */
    if (p->stage_len >= CLUSTER_KICK_BYTES && !atomic_load_explicit(&p->busy, memory_order_relaxed))
        peer_kick(p);
    if (!p->open || p->stage_len + p->backlog + len > CLUSTER_PEER_QUEUE_MAX) {
        p->stage_dropped++;
        return NULL;
    }
    if (p->stage_cap - p->stage_len < len + 11) {
        size_t cap = p->stage_cap ? p->stage_cap * 2 : 64 * 1024;
        while (cap - p->stage_len < len + 11)
            cap *= 2;
        uint8_t *n = realloc(p->stage, cap);
        if (!n) {
            p->stage_dropped++;
            return NULL;
        }
        p->stage = n;
        p->stage_cap = cap;
    }
    uint8_t *out = p->stage + p->stage_len;
    *out++ = 0x0a; /* Frame field 1, length-delimited */
    out += pb_varint(out, len);
    p->stage_len = (size_t)(out - p->stage) + len;
    p->stage_count++;
    p->kick = true;
    p->c->kick = true;
    p->sent_msgs++;
    p->sent_bytes += len;
    return out;
}

bool peer_send_bytes(struct peer *p, const uint8_t *env, size_t len)
{
    uint8_t *out = peer_stage(p, len);
    if (out)
        memcpy(out, env, len);
    return out != NULL;
}

bool peer_send(struct peer *p, struct wbuf *w)
{
    return peer_send_bytes(p, w->data, w->len);
}

/* Under p->mu: move the loop's staged envelopes to the queue the nng side sends from (a pointer
 * swap when that queue is empty, as it is unless the peer is behind). */
static void peer_unstage_locked(struct peer *p)
{
    if (p->stage_len == 0)
        return;
    if (!p->accepting) {
        p->tx_dropped += p->stage_count;
    } else if (p->out_head == p->out_len) {
        uint8_t *b = p->out;
        size_t cap = p->out_cap;
        p->out = p->stage;
        p->out_cap = p->stage_cap;
        p->out_head = 0;
        p->out_len = p->stage_len;
        p->out_count = p->stage_count;
        p->stage = b;
        p->stage_cap = cap;
    } else if (peer_out_reserve_locked(p, p->stage_len) == 0) {
        memcpy(p->out + p->out_len, p->stage, p->stage_len);
        p->out_len += p->stage_len;
        p->out_count += p->stage_count;
    } else {
        p->tx_dropped += p->stage_count;
    }
    p->stage_len = p->stage_count = 0;
}

/* Hand the peer what the loop staged, and start a send unless one is in flight (a send in flight
 * picks the queue up itself when it completes). Loop only. */
static void peer_kick(struct peer *p)
{
    p->kick = false;
    nng_msg *first = NULL;
    pthread_mutex_lock(&p->mu);
    peer_unstage_locked(p);
    p->tx_dropped += p->stage_dropped;
    p->stage_dropped = 0;
    if (!p->busy && p->accepting) {
        first = peer_build_locked(p);
        p->busy = first != NULL;
        if (first)
            p->tx_frames++;
    }
    p->backlog = p->out_len - p->out_head;
    pthread_mutex_unlock(&p->mu);
    if (first) {
        nng_aio_set_msg(p->aio, first);
        nng_send_aio(p->sock, p->aio);
    }
}

/* End of a loop turn: kick every peer that something was staged for this turn. */
void net_kick(struct cluster *c)
{
    if (!c->kick)
        return;
    c->kick = false;
    for (struct peer *p = c->peers; p; p = p->next)
        if (p->kick)
            peer_kick(p);
}

static void net_check_cb(uv_check_t *h)
{
    net_kick(h->data);
}

int net_start_kicker(struct cluster *c)
{
    if (uv_check_init(c->loop, &c->kicker) != 0)
        return -1;
    c->kicker.data = c;
    c->kicker_on = true;
    c->handles++;
    return uv_check_start(&c->kicker, net_check_cb);
}
