/*
 * persist_ack.c - the acknowledgements held for the disk and the replicas (--durability sync), and
 * which turns are on disk (what the cluster confirms to the peers that sent their messages).
 */
#include <stdlib.h>
#include <string.h>

#include "broker_internal.h"
#include "conn_int.h"
#include "persist_int.h"

/* ---- Turns on disk (what the cluster confirms to the peers that sent its messages) ---- */

/* Tell the hook that every turn up to turn is on disk. */
static void persist_stored(struct broker *b, uint64_t turn)
{
    struct persist *p = b->persist;
    if (turn <= p->stored)
        return;
    p->stored = turn;
    if (b->hooks.on_stored)
        b->hooks.on_stored(b->hooks.ctx, turn);
}

/* Pop the turns whose batch the store has made durable. */
static void persist_stored_advance(struct broker *b)
{
    struct persist *p = b->persist;
    uint64_t last = 0;
    while (p->turns_n && p->turns[p->turns_head].batch <= p->committed) {
        last = p->turns[p->turns_head].turn;
        p->turns_head++;
        p->turns_n--;
    }
    if (!p->turns_n)
        p->turns_head = 0;
    if (last)
        persist_stored(b, last);
}

/* Turn turn wrote into batch (and every earlier batch): on disk once the store says so. Outside
 * sync mode a turn counts as stored when it ends (what async may lose is said in persistence.md). */
void persist_turn_written(struct broker *b, uint64_t turn, uint64_t batch)
{
    struct persist *p = b->persist;
    if (p->mode != STORE_SYNC || (!p->turns_n && batch <= p->committed)) {
        persist_stored(b, turn);
        return;
    }
    if (p->turns_head + p->turns_n == p->turns_cap) {
        if (p->turns_head) {
            memmove(p->turns, p->turns + p->turns_head, p->turns_n * sizeof(*p->turns));
            p->turns_head = 0;
        }
        if (p->turns_n == p->turns_cap) {
            size_t cap = p->turns_cap ? p->turns_cap * 2 : 64;
            struct persist_turn *nt = realloc(p->turns, cap * sizeof(*nt));
            if (!nt) {
                /* The watermark only rises: the newest pending turn, or the next one recorded,
                 * stands for this one (its batch is not earlier). */
                if (p->turns_n)
                    p->turns[p->turns_head + p->turns_n - 1] = (struct persist_turn){turn, batch};
                return;
            }
            p->turns = nt;
            p->turns_cap = cap;
        }
    }
    p->turns[p->turns_head + p->turns_n++] = (struct persist_turn){turn, batch};
}

/* ---- Held acknowledgements ---- */

int persist_ack(struct broker *b, struct conn *c, uint8_t type, uint16_t id, uint8_t reason,
                persist_ack_fn send)
{
    struct persist *p = b->persist;
    bool wait = p && p->mode == STORE_SYNC &&
                (p->ndirty || store_pending(p->store) || c->acks_waiting || p->hold_turn ||
                 p->rep_done + 1 < p->rep_open);
    if (!wait)
        return send(c, type, id, reason);
    if (p->held_head + p->held_n == p->held_cap) {
        if (p->held_head) { /* slide the live part to the front */
            memmove(p->held, p->held + p->held_head, p->held_n * sizeof(*p->held));
            p->held_head = 0;
        }
        if (p->held_n == p->held_cap) {
            size_t cap = p->held_cap ? p->held_cap * 2 : 256;
            struct persist_held *nh = realloc(p->held, cap * sizeof(*nh));
            if (!nh)
                return -1;
            p->held = nh;
            p->held_cap = cap;
        }
    }
    p->held[p->held_head + p->held_n++] =
        (struct persist_held){c, send, persist_batch(p), p->rep_open, id, type, reason};
    c->acks_waiting++;
    return 0;
}

void persist_conn_gone(struct broker *b, struct conn *c)
{
    struct persist *p = b->persist;
    if (!p || !c->acks_waiting)
        return;
    for (size_t i = 0; i < p->held_n; i++) {
        struct persist_held *h = &p->held[p->held_head + i];
        if (h->conn == c)
            h->conn = NULL;
    }
    c->acks_waiting = 0;
}

/* Send the held acknowledgements whose batch is durable and whose turn is replicated, in order. */
static void persist_release(struct broker *b)
{
    struct persist *p = b->persist;
    while (p->held_n && p->held[p->held_head].seq <= p->committed &&
           p->held[p->held_head].rep <= p->rep_done) {
        struct persist_held h = p->held[p->held_head];
        p->held_head++;
        p->held_n--;
        if (!h.conn)
            continue;
        h.conn->acks_waiting--;
        if (h.send(h.conn, h.type, h.id, h.reason) < 0)
            conn_close(h.conn, "out of memory");
    }
    if (!p->held_n)
        p->held_head = 0;
    broker_wake(b);
}

/* The store made batches up to seq durable. */
void persist_on_committed(void *ctx, uint64_t seq)
{
    struct broker *b = ctx;
    if (seq > b->persist->committed)
        b->persist->committed = seq;
    persist_stored_advance(b);
    persist_release(b);
}

void broker_turn_hold(struct broker *b)
{
    if (b->persist)
        b->persist->hold_turn = true;
}

void broker_replicated(struct broker *b, uint64_t seq)
{
    struct persist *p = b->persist;
    if (!p || seq <= p->rep_done)
        return;
    p->rep_done = seq;
    if (p->held_n)
        persist_release(b);
}

uint64_t broker_replication_seq(const struct broker *b)
{
    return b->persist ? b->persist->rep_open : 0;
}
