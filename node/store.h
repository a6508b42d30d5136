/*
 * store.h - the durable key-value store under --data-dir: RocksDB with group commit off the loop.
 *
 * The broker puts and deletes records into the open batch during a loop turn; at the turn's end
 * store_commit hands the batch to the store's writer thread, which writes it with one fsync
 * (--durability sync) and reports back on the loop through store_events.committed with the
 * batch's sequence number. While a batch is being written the next one keeps filling, so one
 * fsync covers every turn that passed meanwhile (group commit). The loop never waits on the disk.
 *
 * Ownership: keys and values are copied into the batch. The store owns its thread and its libuv
 * async handle; store_close releases them (on the loop thread, after the loop stopped using it).
 */
#ifndef SOL_STORE_H
#define SOL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "log.h"

enum store_durability {
    STORE_SYNC = 0, /* acknowledged only after the fsync of its batch (default) */
    STORE_ASYNC,    /* written each turn without fsync; fsync every STORE_ASYNC_SYNC_MS */
    STORE_NONE,     /* no store at all: nothing is kept across a restart */
};

/* In async mode, at most this much acknowledged work can be lost on a machine crash (a process
 * crash loses only the batch not yet handed to the writer: one loop turn). */
#define STORE_ASYNC_SYNC_MS 1000

struct store;

struct store_stats {
    uint64_t batches;       /* batches written */
    uint64_t records;       /* puts and deletes written */
    uint64_t bytes;         /* bytes of keys and values written */
    uint64_t syncs;         /* fsyncs */
    uint64_t sync_us_total; /* time in write+fsync */
    uint64_t sync_us_max;
    uint64_t sync_us_last;
    uint64_t errors; /* failed batch writes (retried: nothing acknowledged meanwhile) */
    uint64_t size;   /* bytes on disk (RocksDB's estimate of live data plus its logs) */
    bool stalled;    /* the last write failed (e.g. disk full): acknowledgements wait */
};

/* Open (creating) the store in dir. committed(ctx, seq) runs on the loop each time batches up to
 * seq are durable (as durable as the mode promises). A torn or corrupt log tail is truncated and
 * logged once, never fatal. NULL with one line in err naming dir when it cannot be opened. */
struct store *store_open(uv_loop_t *loop, const char *dir, enum store_durability mode,
                         const struct logger *log, void (*committed)(void *ctx, uint64_t seq),
                         void *ctx, char *err, size_t errlen);
/* Write what is pending durably, stop the thread and close the database (loop thread; blocks:
 * only at shutdown). The async handle is closed; free happens in its close callback. */
void store_close(struct store *s);

/* Record a put / delete in the open batch. -1 when out of memory (nothing recorded). */
int store_put(struct store *s, const void *key, size_t klen, const void *val, size_t vlen);
int store_del(struct store *s, const void *key, size_t klen);
/* The sequence number the open batch will be committed as; and whether it holds anything. */
uint64_t store_open_seq(const struct store *s);
bool store_pending(const struct store *s);
/* The highest sequence known durable. */
uint64_t store_committed_seq(const struct store *s);
/* End of a loop turn: if the writer is idle and the open batch holds anything, hand it over. */
void store_commit(struct store *s);

/* Visit every record whose key starts with prefix, in key order (at start, before anything is
 * written). fn returns 0 to go on, -1 to stop (store_scan then returns -1). */
int store_scan(struct store *s, const void *prefix, size_t plen,
               int (*fn)(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl),
               void *ctx);

void store_get_stats(struct store *s, struct store_stats *out);
/* "sync", "async", "none"; parse returns false for anything else. */
const char *store_durability_name(enum store_durability d);
bool store_durability_parse(const char *s, enum store_durability *out);

#endif
