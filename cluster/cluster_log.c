/*
 * cluster_log.c - store and forward across a partition or a dead link: every QoS 1/2 PUBLISH
 * forwarded to a peer is kept until that peer confirms it received it.
 *
 * A peer confirms the highest Publish sequence number it received from us (ReplicaAck.publish_seq,
 * at most once per loop turn); what is at or below it leaves the log. When the peer is declared
 * dead its routes are held (not dropped) for CLUSTER_TOMB_DEAD_GRACE_MS and QoS 1/2 messages
 * matching them go on into its log; when it comes back (a partition heals), the log is sent
 * again before anything else, and the peer skips what it already had by sequence number (one
 * ordered stream per peer, sequence numbers rising across restarts), so nothing arrives twice. The
 * log is bounded by CLUSTER_PEER_QUEUE_MAX bytes: past it the oldest entries are dropped, counted.
 *
 * Layout: entries [seq u64][len u32][envelope len bytes] from log_head to log_len.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cluster_int.h"

#define PEERLOG_ENTRY_HEAD 12

static uint64_t peerlog_seq_at(const uint8_t *at)
{
    uint64_t v;
    memcpy(&v, at, sizeof(v));
    return v;
}

static uint32_t peerlog_len_at(const uint8_t *at)
{
    uint32_t v;
    memcpy(&v, at + 8, sizeof(v));
    return v;
}

/* Drop the oldest entry (the log is full); counted. */
static void peerlog_drop_oldest(struct peer *p)
{
    uint32_t n = peerlog_len_at(p->log + p->log_head);
    p->log_head += PEERLOG_ENTRY_HEAD + n;
    p->log_count--;
    p->log_dropped++;
    if (p->log_head == p->log_len)
        p->log_head = p->log_len = 0;
}

uint8_t *peerlog_reserve(struct peer *p, uint64_t seq, size_t len)
{
    size_t need = PEERLOG_ENTRY_HEAD + len;
    if (len > UINT32_MAX || need > CLUSTER_PEER_QUEUE_MAX) {
        p->log_dropped++;
        return NULL;
    }
    while (p->log_len - p->log_head + need > CLUSTER_PEER_QUEUE_MAX)
        peerlog_drop_oldest(p);
    if (p->log_head && p->log_len + need > p->log_cap && p->log_head >= p->log_len / 2) {
        memmove(p->log, p->log + p->log_head, p->log_len - p->log_head); /* slide to the front */
        p->log_len -= p->log_head;
        p->log_head = 0;
    }
    size_t cap = buf_grow((void **)&p->log, p->log_cap, p->log_len + need, 1, SIZE_MAX);
    if (!cap) {
        p->log_dropped++;
        return NULL;
    }
    p->log_cap = cap;
    uint8_t *at = p->log + p->log_len;
    uint32_t l32 = (uint32_t)len;
    memcpy(at, &seq, sizeof(seq));
    memcpy(at + 8, &l32, sizeof(l32));
    p->log_len += need;
    p->log_count++;
    return at + PEERLOG_ENTRY_HEAD;
}

void peerlog_add(struct peer *p, uint64_t seq, const uint8_t *env, size_t len)
{
    uint8_t *at = peerlog_reserve(p, seq, len);
    if (at)
        memcpy(at, env, len);
}

void peerlog_confirm(struct peer *p, uint64_t seq)
{
    while (p->log_head < p->log_len && peerlog_seq_at(p->log + p->log_head) <= seq) {
        p->log_head += PEERLOG_ENTRY_HEAD + peerlog_len_at(p->log + p->log_head);
        p->log_count--;
    }
    if (p->log_head == p->log_len)
        p->log_head = p->log_len = 0;
}

size_t peerlog_replay(struct peer *p)
{
    size_t n = 0;
    for (size_t at = p->log_head; at < p->log_len;) {
        uint32_t len = peerlog_len_at(p->log + at);
        if (peer_send_bytes(p, p->log + at + PEERLOG_ENTRY_HEAD, len))
            n++;
        at += PEERLOG_ENTRY_HEAD + len;
    }
    return n;
}

void peerlog_free(struct peer *p, bool count)
{
    if (count)
        p->log_dropped += p->log_count;
    free(p->log);
    p->log = NULL;
    p->log_head = p->log_len = p->log_cap = 0;
    p->log_count = 0;
}

bool peerlog_seen(struct peer *p, uint64_t seq)
{
    if (seq == 0)
        return false; /* not numbered */
    if (seq <= p->pub_rx_hi) {
        p->pub_dups++;
        return true;
    }
    p->pub_rx_hi = seq;
    p->c->kick = true; /* confirm it at the end of the turn */
    return false;
}

void peerlog_each(const struct peer *p,
                  void (*fn)(void *ctx, uint64_t seq, const uint8_t *env, size_t len), void *ctx)
{
    for (size_t at = p->log_head; at < p->log_len;) {
        uint32_t len = peerlog_len_at(p->log + at);
        fn(ctx, peerlog_seq_at(p->log + at), p->log + at + PEERLOG_ENTRY_HEAD, len);
        at += PEERLOG_ENTRY_HEAD + len;
    }
}

/* ---- Durable confirmation ----
 *
 * A node confirms a peer's PUBLISH only once it survives here: the turn that received it is on
 * disk and in the replicas (so a kill -9 right after loses nothing the sender forgot). The sender
 * holds its own publisher's acknowledgement until then (broker_turn_hold), and keeps the message
 * in the log meanwhile. Both sides keep (turn, number) marks; the confirmations depend only on
 * the receiver's disk and replicas, never on its own forwards, so two nodes forwarding to each
 * other cannot wait on each other. */

/* Append (turn, seq) to m; on no memory the newest mark stands for it (its turn is not older, so
 * nothing is released early). */
static void marks_push(struct turn_marks *m, uint64_t turn, uint64_t seq)
{
    if (m->n && m->v[m->head + m->n - 1].turn == turn) {
        m->v[m->head + m->n - 1].seq = seq;
        return;
    }
    if (m->head + m->n == m->cap && m->head) {
        memmove(m->v, m->v + m->head, m->n * sizeof(*m->v));
        m->head = 0;
    }
    if (m->n == m->cap) {
        size_t cap = buf_grow((void **)&m->v, m->cap, m->n + 1, sizeof(*m->v), SIZE_MAX);
        if (!cap) {
            if (m->n)
                m->v[m->head + m->n - 1] = (struct turn_mark){turn, seq};
            return;
        }
        m->cap = cap;
    }
    m->v[m->head + m->n++] = (struct turn_mark){turn, seq};
}

static void marks_pop(struct turn_marks *m)
{
    m->head++;
    if (--m->n == 0)
        m->head = 0;
}

static void marks_free(struct turn_marks *m)
{
    free(m->v);
    *m = (struct turn_marks){0};
}

void peerlog_forwarded(struct peer *p, uint64_t seq)
{
    p->fwd_turn_seq = seq;
    broker_turn_hold(p->c->b);
}

void peerlog_turn_end(struct cluster *c, uint64_t turn)
{
    for (struct peer *p = c->peers; p; p = p->next) {
        if (p->fwd_turn_seq) {
            marks_push(&p->fwd_marks, turn, p->fwd_turn_seq);
            p->fwd_turn_seq = 0;
        }
        uint64_t last = p->rx_marks.n ? p->rx_marks.v[p->rx_marks.head + p->rx_marks.n - 1].seq
                                      : p->pub_rx_durable;
        if (p->pub_rx_hi > last)
            marks_push(&p->rx_marks, turn, p->pub_rx_hi);
        last = p->rep_marks.n ? p->rep_marks.v[p->rep_marks.head + p->rep_marks.n - 1].seq
                              : p->rep_rx_durable;
        if (p->rep_rx > last)
            marks_push(&p->rep_marks, turn, p->rep_rx);
    }
}

bool peerlog_confirmed(struct peer *p, uint64_t seq)
{
    peerlog_confirm(p, seq);
    bool released = false;
    while (p->fwd_marks.n && p->fwd_marks.v[p->fwd_marks.head].seq <= seq) {
        marks_pop(&p->fwd_marks);
        released = true;
    }
    return released;
}

uint64_t peerlog_forwards_wm(const struct cluster *c, uint64_t wm)
{
    for (const struct peer *p = c->peers; p; p = p->next) {
        if (p->fwd_marks.n) {
            uint64_t t = p->fwd_marks.v[p->fwd_marks.head].turn;
            if (t - 1 < wm)
                wm = t - 1;
        }
    }
    return wm;
}

void peerlog_durable(struct cluster *c)
{
    uint64_t upto = c->turns_stored < c->turns_replicated ? c->turns_stored : c->turns_replicated;
    for (struct peer *p = c->peers; p; p = p->next) {
        while (p->rx_marks.n && p->rx_marks.v[p->rx_marks.head].turn <= upto) {
            p->pub_rx_durable = p->rx_marks.v[p->rx_marks.head].seq;
            marks_pop(&p->rx_marks);
            c->kick = true; /* replica_send_acks confirms it */
        }
        /* A replica held here depends on our disk alone (never on our replicas: no cycle). */
        while (p->rep_marks.n && p->rep_marks.v[p->rep_marks.head].turn <= c->turns_stored) {
            p->rep_rx_durable = p->rep_marks.v[p->rep_marks.head].seq;
            marks_pop(&p->rep_marks);
            c->kick = true;
        }
    }
}

uint64_t peerlog_replicas_confirmable(const struct cluster *c, const struct peer *p)
{
    return broker_replication_seq(c->b) ? p->rep_rx_durable : p->rep_rx;
}

uint64_t peerlog_confirmable(const struct cluster *c, const struct peer *p)
{
    return broker_replication_seq(c->b) ? p->pub_rx_durable : p->pub_rx_hi;
}

void peerlog_replicas_reset(struct peer *p)
{
    p->rep_rx = p->rep_rx_acked = p->rep_rx_durable = 0;
    marks_free(&p->rep_marks);
}

void peerlog_peer_reset(struct peer *p)
{
    marks_free(&p->fwd_marks);
    p->fwd_turn_seq = 0;
}

/* The peer struct goes: its marks too. */
void peerlog_marks_free(struct peer *p)
{
    marks_free(&p->fwd_marks);
    marks_free(&p->rx_marks);
    marks_free(&p->rep_marks);
}
