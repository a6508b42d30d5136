/*
 * cluster_tx.c - the send side of the cluster's nng transport: one push0 socket per peer.
 *
 * The loop appends encoded envelopes to the peer's stage (no lock); at the end of the loop turn,
 * or once CLUSTER_KICK_BYTES are staged, they move to the peer's locked queue. One nng send is in
 * flight per peer, and its completion callback (on an nng thread) batches whatever is queued into
 * the next frame. One sender, one queue, one pipe: order is kept. The loop never waits on the
 * network. A queue over its high watermark pauses the local publisher feeding it (the peer's gate)
 * until the sender reports it under the low one; a gated peer that makes no progress for
 * stall_timeout_ms stops pausing anyone, so an unreachable peer cannot stall the node.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "buf.h"
#include "cluster_int.h"

#include <nng/protocol/pipeline0/push.h>

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
void peer_after_drain(struct peer *p)
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
        rx_link_unpark(l); /* no-op unless parked and under the bound */
    cluster_tls_tick(c);
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
        if (now - p->progress_ms <= c->stall_timeout_ms)
            continue;
        p->stalled = true;
        c->peer_stalls++;
        log_warn(c->log,
                 "cluster: peer %s made no progress for %u ms (%zu bytes queued): no longer slows "
                 "local publishers; its messages past %u MiB are dropped until it catches up",
                 p->name, c->stall_timeout_ms, queued, CLUSTER_PEER_QUEUE_MAX >> 20);
        pthread_mutex_lock(&p->mu);
        p->want_low = true;
        pthread_mutex_unlock(&p->mu);
        broker_flow_release(c->b, &p->gate);
    }
}

/* p->mu guards what the loop and p's nng sender share. */
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
    if ((rv = cluster_tls_dialer(p, d)) != 0) {
        nng_dialer_close(d);
        return rv;
    }
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
    snprintf(url, sizeof(url), "%s://%s:%u", cluster_tls_scheme(p->c), p->host, p->port);
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

/* After net_shutdown: no nng thread touches p any more. */
void peer_free_tx(struct peer *p)
{
    free(p->stage);
    p->stage = NULL;
    free(p->out);
    p->out = NULL;
    p->out_cap = 0;
    pthread_mutex_destroy(&p->mu);
}

/* A queue or stage starts at 64 KiB (then doubles): most peers see a steady stream. */
static size_t tx_buf_need(size_t need)
{
    return need < 64u * 1024u ? 64u * 1024u : need;
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
    size_t cap =
        buf_grow((void **)&p->out, p->out_cap, tx_buf_need(p->out_len + need), 1, SIZE_MAX);
    if (!cap)
        return -1;
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
    size_t cap = buf_grow((void **)&p->stage, p->stage_cap,
                          tx_buf_need(p->stage_len + len + WIRE_FRAME_ENTRY_MAX), 1, SIZE_MAX);
    if (!cap) {
        p->stage_dropped++;
        return NULL;
    }
    p->stage_cap = cap;
    uint8_t *out = p->stage + p->stage_len;
    out += wire_frame_entry(out, len);
    p->stage_len = (size_t)(out - p->stage) + len;
    p->stage_count++;
    p->kick = true;
    p->c->kick = true;
    p->sent_msgs++;
    p->sent_bytes += len;
    return out;
}

/* Stage a copy of an envelope encoded elsewhere (peer_stage is for encoding in place). */
bool peer_send_bytes(struct peer *p, const uint8_t *env, size_t len)
{
    uint8_t *out = peer_stage(p, len);
    if (out)
        memcpy(out, env, len);
    return out != NULL;
}

/* Stage a shared envelope: copied into the stage, so w itself is not held. */
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

/* libuv check phase: the end of a loop turn, after its I/O callbacks. */
static void net_check_cb(uv_check_t *h)
{
    replica_send_acks(h->data);
    net_kick(h->data);
}

/* Kick the staged queues once per loop turn (a check handle, counted in c->handles for close). */
int net_start_kicker(struct cluster *c)
{
    if (uv_check_init(c->loop, &c->kicker) != 0)
        return -1;
    c->kicker.data = c;
    c->kicker_on = true;
    c->handles++;
    return uv_check_start(&c->kicker, net_check_cb);
}
