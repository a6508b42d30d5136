/*
 * persist_int.h - the durable-state module's own structures, shared by persist.c (records,
 * restore, the turn's writes) and persist_ack.c (held acknowledgements, turns on disk). Private to
 * those two files: persist.h is the module's face.
 */
#ifndef SOL_PERSIST_INT_H
#define SOL_PERSIST_INT_H

#include "persist.h"

#include <stdbool.h>
#include <stdint.h>

/* One held acknowledgement; conn NULL once its connection closed. */
struct persist_held {
    struct conn *conn;
    persist_ack_fn send;
    uint64_t seq; /* sent once this batch is durable */
    uint64_t rep; /* and once this replication turn is held by the replicas */
    uint16_t id;
    uint8_t type, reason;
};

struct persist {
    struct store *store;
    enum store_durability mode;
    struct session **dirty; /* changed this turn (session_dirty_slot = index + 1) */
    size_t ndirty, dirty_cap;
    struct persist_held *held; /* FIFO in seq order: [head, n) */
    size_t held_head, held_n, held_cap;
    bool restoring;
    uint64_t committed;          /* the store's batches up to this one are durable */
    uint64_t rep_open, rep_done; /* this turn's replication seq; all turns up to done are held */
    bool hold_turn;              /* this turn's acknowledgements wait for its replication turn */
    /* Turns whose batch is not on disk yet, oldest first: [head, n) (persist_stored_advance). */
    struct persist_turn {
        uint64_t turn, batch;
    } * turns;
    size_t turns_head, turns_n, turns_cap;
    uint64_t stored; /* every turn up to this one is on disk */
    /* Replica records ('p') restored at start, until the cluster takes them. */
    struct persist_rep {
        char *id;
        uint8_t *val;
        size_t len;
    } * reps;
    size_t nreps;
    uint8_t *buf; /* scratch for one record */
    size_t len, cap;
    bool oom; /* the record being built ran out of memory */
};

/* The batch what changed so far must wait for: the open one if it holds anything or will at the
 * turn's end (a dirty session), else the last one handed to the writer (numbered below it). */
static inline uint64_t persist_batch(const struct persist *p)
{
    return p->ndirty || store_pending(p->store) ? store_open_seq(p->store)
                                                : store_open_seq(p->store) - 1;
}

/* Turn turn wrote into batch (and every earlier batch): on disk once the store says so. */
void persist_turn_written(struct broker *b, uint64_t turn, uint64_t batch);
/* The store's completion callback (store_open): batches up to seq are durable. */
void persist_on_committed(void *ctx, uint64_t seq);

#endif
