/*
 * cluster_net.c - the cluster's nng transport.
 *
 * Each node listens with one pull0 socket on tcp://cluster_bind:cluster_port; every peer dials it
 * with its own push0 socket. So each direction between two nodes is one TCP connection carrying one
 * ordered stream, and a message meant for one peer goes to that peer only.
 *
 * Receive: the nng thread that completes a receive appends the nng_msg to a mutex-guarded inbox and
 * wakes the loop with uv_async_send; the loop decodes and acts (the broker is single-threaded).
 * Send: the loop appends encoded envelopes to the peer's queue; one nng send is in flight per peer,
 * and its completion callback (on an nng thread) batches whatever is queued into the next frame.
 * One sender, one queue, one pipe: order is kept. The loop never waits on the network.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "cluster_int.h"

#include <nng/protocol/pipeline0/pull.h>
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

/* Describe the remote end of a pipe, for rate-limited logs (only computed when something is wrong).
 */
void net_pipe_addr(nng_pipe pipe, char *out, size_t outlen)
{
    nng_sockaddr sa;
    snprintf(out, outlen, "unknown");
    if (nng_pipe_get_addr(pipe, NNG_OPT_REMADDR, &sa) != 0)
        return;
    if (sa.s_family == NNG_AF_INET) {
        char ip[INET_ADDRSTRLEN];
        if (inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof(ip)))
            snprintf(out, outlen, "%s", ip);
    }
}

/* nng thread: hand the frame to the loop, then receive the next — unless the loop is that far
 * behind: then stop receiving until it catches up, so TCP pushes back on the senders instead of
 * memory growing. */
static void net_rx_cb(void *arg)
{
    struct cluster *c = arg;
    int rv = nng_aio_result(c->rx_aio);
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
        return;
    bool pause = false;
    if (rv == 0) {
        nng_msg *m = nng_aio_get_msg(c->rx_aio);
        bool queued = false;
        pthread_mutex_lock(&c->in_mu);
        if (c->in_len == c->in_cap) {
            size_t cap = c->in_cap ? c->in_cap * 2 : 64;
            nng_msg **n = realloc(c->inbox, cap * sizeof(*n));
            if (n) {
                c->inbox = n;
                c->in_cap = cap;
            }
        }
        if (c->in_len < c->in_cap) {
            c->inbox[c->in_len++] = m;
            c->in_bytes += nng_msg_len(m);
            queued = true;
            pause = c->rx_paused = c->in_bytes > CLUSTER_INBOX_BYTES_MAX;
        } else {
            c->in_dropped++;
        }
        pthread_mutex_unlock(&c->in_mu);
        if (queued)
            uv_async_send(&c->async);
        else
            nng_msg_free(m);
    }
    if (!pause && !atomic_load(&c->rx_stop))
        nng_recv_aio(c->rx, c->rx_aio);
}

/* Loop: take everything the nng threads queued and handle it in arrival order. */
static void net_async_cb(uv_async_t *h)
{
    struct cluster *c = h->data;
    for (;;) {
        pthread_mutex_lock(&c->in_mu);
        nng_msg **items = c->inbox;
        size_t n = c->in_len;
        bool resume = c->rx_paused;
        c->inbox = NULL;
        c->in_len = c->in_cap = 0;
        c->in_bytes = 0;
        c->rx_paused = false;
        pthread_mutex_unlock(&c->in_mu);
        if (resume && !c->stopping)
            nng_recv_aio(c->rx, c->rx_aio);
        if (n == 0) {
            free(items);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            if (!c->stopping)
                cluster_handle_frame(c, nng_msg_body(items[i]), nng_msg_len(items[i]),
                                     nng_msg_get_pipe(items[i]));
            nng_msg_free(items[i]);
        }
        free(items);
    }
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
    if ((rv = nng_pull0_open(&c->rx)) != 0) {
        snprintf(err, errlen, "cluster: nng socket: %s", nng_strerror(rv));
        return -1;
    }
    c->rx_open = true;
    /* A frame holds at most one PUBLISH over the batching threshold, so this bounds honest traffic.
     */
    size_t maxsz = c->cfg->max_packet_size + CLUSTER_FRAME_SOFT_MAX + 64 * 1024;
    nng_socket_set_size(c->rx, NNG_OPT_RECVMAXSZ, maxsz);
    if ((rv = nng_listen(c->rx, url, NULL, 0)) != 0) {
        snprintf(err, errlen, "cluster: listen %s: %s", url, nng_strerror(rv));
        return -1;
    }
    if ((rv = nng_aio_alloc(&c->rx_aio, net_rx_cb, c)) != 0) {
        snprintf(err, errlen, "cluster: nng aio: %s", nng_strerror(rv));
        return -1;
    }
    nng_recv_aio(c->rx, c->rx_aio);
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
        p->tx_dropped += p->out_count + p->stage_count;
        p->out_head = p->out_len = p->out_count = 0;
        pthread_mutex_unlock(&p->mu);
        p->stage_len = p->stage_count = 0;
    }
    atomic_store(&c->rx_stop, true);
    /* 2. Stop our callbacks (each waits for one in progress to return). */
    if (c->rx_aio)
        nng_aio_stop(c->rx_aio);
    for (struct peer *p = c->peers; p; p = p->next)
        if (p->aio)
            nng_aio_stop(p->aio);
    /* 3. Close the sockets, bounded. */
    size_t n = c->rx_open ? 1 : 0;
    for (struct peer *p = c->peers; p; p = p->next)
        n += p->open;
    nng_socket *socks = n ? calloc(n, sizeof(*socks)) : NULL;
    size_t k = 0;
    if (c->rx_open && socks)
        socks[k++] = c->rx;
    for (struct peer *p = c->peers; p; p = p->next)
        if (p->open && socks)
            socks[k++] = p->sock;
    bool closed = true;
    if (socks)
        closed = net_close_bounded(socks, k, CLUSTER_CLOSE_WAIT_MS);
    if (!closed)
        log_warn(c->log, "cluster: nng did not close its sockets within %d ms; exiting anyway",
                 CLUSTER_CLOSE_WAIT_MS);
    c->rx_open = false;
    for (struct peer *p = c->peers; p; p = p->next) {
        if (p->aio && closed)
            nng_aio_free(p->aio); /* stopped above: no callback can be running */
        p->aio = NULL;
        p->open = false;
        p->busy = false;
    }
    if (c->rx_aio && closed)
        nng_aio_free(c->rx_aio);
    c->rx_aio = NULL;
    pthread_mutex_lock(&c->in_mu);
    for (size_t i = 0; i < c->in_len; i++)
        nng_msg_free(c->inbox[i]);
    free(c->inbox);
    c->inbox = NULL;
    c->in_len = c->in_cap = 0;
    pthread_mutex_unlock(&c->in_mu);
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

/* nng thread: the previous frame is handed to the pipe (or failed); send what queued meanwhile. */
static void peer_tx_cb(void *arg)
{
    struct peer *p = arg;
    int rv = nng_aio_result(p->aio);
    nng_msg *next = NULL;
    if (rv != 0) {
        nng_msg_free(nng_aio_get_msg(p->aio));
        nng_aio_set_msg(p->aio, NULL);
    }
    pthread_mutex_lock(&p->mu);
    if (rv != 0)
        p->tx_dropped++;
    if (p->accepting)
        next = peer_build_locked(p);
    p->busy = next != NULL;
    if (next)
        p->tx_frames++;
    pthread_mutex_unlock(&p->mu);
    if (next) {
        nng_aio_set_msg(p->aio, next);
        nng_send_aio(p->sock, p->aio);
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
    pthread_mutex_lock(&p->mu);
    p->accepting = false;
    p->tx_dropped += p->out_count + p->stage_count + p->stage_dropped;
    p->out_head = p->out_len = p->out_count = 0;
    pthread_mutex_unlock(&p->mu);
    p->stage_len = p->stage_count = p->stage_dropped = 0;
    p->backlog = 0;
    nng_aio_stop(p->aio); /* cancels a send in flight; waits for its callback */
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
    if (p->stage_len >= CLUSTER_KICK_BYTES &&
        !atomic_load_explicit(&p->busy, memory_order_relaxed))
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
