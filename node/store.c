/*
 * store.c - the durable store (store.h): a RocksDB database, one open write batch on the loop,
 * one writer thread that writes a handed batch with its fsync and tells the loop through an async
 * handle. docs/persistence.md says why RocksDB, and what each durability mode can lose.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <rocksdb/c.h>

struct store {
    uv_loop_t *loop;
    const struct logger *log;
    enum store_durability mode;
    char dir[512];
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_writeoptions_t *wsync, *wnosync;
    void (*committed)(void *ctx, uint64_t seq);
    void *ctx;

    /* Loop side. */
    rocksdb_writebatch_t *open; /* filling this turn */
    uint64_t open_seq;          /* what open commits as */
    uint64_t committed_seq;
    bool busy; /* a batch is with the writer */
    uv_async_t async;

    /* Shared with the writer, under mu. */
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cv;
    rocksdb_writebatch_t *handed; /* the writer's batch (NULL: none) */
    uint64_t handed_seq;
    uint64_t done_seq; /* the writer finished up to here */
    bool stop;
    struct store_stats st;
};

const char *store_durability_name(enum store_durability d)
{
    return d == STORE_ASYNC ? "async" : d == STORE_NONE ? "none" : "sync";
}

bool store_durability_parse(const char *s, enum store_durability *out)
{
    static const char *names[] = {"sync", "async", "none"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum store_durability)i;
            return true;
        }
    }
    return false;
}

static rocksdb_t *store_open_db(struct store *s, char *err, size_t errlen);

/* One write of batch, with the mode's fsync; retried once a second while it fails (a full disk):
 * nothing waiting on it is acknowledged meanwhile. Returns false only when asked to stop. */
static bool store_write_batch(struct store *s, rocksdb_writebatch_t *batch)
{
    for (;;) {
        char *err = NULL;
        uint64_t t0 = uv_hrtime();
        if (!s->db) { /* reopened after a failed write (below) */
            char why[256];
            if (!(s->db = store_open_db(s, why, sizeof(why))))
                err = strdup(why);
        }
        if (s->db)
            rocksdb_write(s->db, s->mode == STORE_SYNC ? s->wsync : s->wnosync, batch, &err);
        else if (!err)
            err = strdup("cannot reopen");
        uint64_t us = (uv_hrtime() - t0) / 1000;
        uv_mutex_lock(&s->mu);
        if (!err) {
            s->st.batches++;
            s->st.records += (uint64_t)rocksdb_writebatch_count(batch);
            size_t n = 0;
            rocksdb_writebatch_data(batch, &n);
            s->st.bytes += n;
            if (s->mode == STORE_SYNC) {
                s->st.syncs++;
                s->st.sync_us_total += us;
                s->st.sync_us_last = us;
                if (us > s->st.sync_us_max)
                    s->st.sync_us_max = us;
            }
            s->st.stalled = false;
            uv_mutex_unlock(&s->mu);
            return true;
        }
        bool first = !s->st.stalled;
        s->st.errors++;
        s->st.stalled = true;
        bool stop = s->stop;
        uv_mutex_unlock(&s->mu);
        if (first)
            log_error(s->log, "store %s: write failed, holding acknowledgements: %s", s->dir, err);
        free(err); /* rocksdb_free is free() */
        if (stop)
            return false;
        uv_sleep(1000);
        /* After a write error RocksDB refuses every later write (its background error state)
         * even once the disk has room again: reopen it (WAL replayed) and retry. Only this thread
         * uses the database while the store is open. */
        if (s->db) {
            rocksdb_close(s->db);
            s->db = NULL;
        }
    }
}

/* The writer thread: write each handed batch, then wake the loop. In async mode it also syncs
 * the log every STORE_ASYNC_SYNC_MS. */
static void store_writer(void *arg)
{
    struct store *s = arg;
    uint64_t last_sync = uv_hrtime();
    bool unsynced = false;
    uv_mutex_lock(&s->mu);
    for (;;) {
        while (!s->handed && !s->stop) {
            if (s->mode == STORE_ASYNC && unsynced) {
                if (uv_cond_timedwait(&s->cv, &s->mu, STORE_ASYNC_SYNC_MS * 1000000ull) != 0)
                    break;
            } else {
                uv_cond_wait(&s->cv, &s->mu);
            }
        }
        if (!s->handed && s->stop)
            break;
        rocksdb_writebatch_t *batch = s->handed;
        uint64_t seq = s->handed_seq;
        uv_mutex_unlock(&s->mu);
        if (batch) {
            if (!store_write_batch(s, batch)) {
                uv_mutex_lock(&s->mu);
                break; /* still handed: store_close tries it once more */
            }
            rocksdb_writebatch_destroy(batch);
            unsynced = true;
        }
        if (s->mode == STORE_ASYNC && unsynced &&
            uv_hrtime() - last_sync >= STORE_ASYNC_SYNC_MS * 1000000ull) {
            char *err = NULL;
            if (s->db)
                rocksdb_flush_wal(s->db, 1, &err);
            rocksdb_free(err);
            last_sync = uv_hrtime();
            unsynced = false;
        }
        uv_mutex_lock(&s->mu);
        if (batch) {
            s->handed = NULL;
            s->done_seq = seq;
            uv_async_send(&s->async);
        }
    }
    uv_mutex_unlock(&s->mu);
}

/* On the loop: the writer finished a batch: tell the broker (which hands over the next). */
static void store_on_written(uv_async_t *a)
{
    struct store *s = a->data;
    uv_mutex_lock(&s->mu);
    uint64_t seq = s->done_seq;
    rocksdb_writebatch_t *prev = s->handed;
    uv_mutex_unlock(&s->mu);
    if (prev || seq <= s->committed_seq)
        return; /* a spurious wake-up: nothing new */
    s->busy = false;
    s->committed_seq = seq;
    /* Not store_commit here: the open batch may still lack this turn's sessions, which the
     * broker adds at the turn's end and commits then (the callback wakes it). */
    s->committed(s->ctx, seq);
}

/* Open the database; a corrupt log tail is retried with point-in-time recovery (RocksDB
 * truncates the log at the last whole record) and reported. */
static rocksdb_t *store_open_db(struct store *s, char *err, size_t errlen)
{
    char *e = NULL;
    rocksdb_options_set_wal_recovery_mode(s->opts, 1); /* absolute consistency: detect damage */
    rocksdb_t *db = rocksdb_open(s->opts, s->dir, &e);
    if (db)
        return db;
    bool corrupt = e && strstr(e, "Corruption");
    if (!corrupt) {
        snprintf(err, errlen, "store %s: cannot open: %s", s->dir, e ? e : "unknown error");
        rocksdb_free(e);
        return NULL;
    }
    log_error(s->log, "store %s: damaged log tail (%s): recovering up to the last whole record",
              s->dir, e);
    rocksdb_free(e);
    e = NULL;
    rocksdb_options_set_wal_recovery_mode(s->opts, 2); /* point in time */
    db = rocksdb_open(s->opts, s->dir, &e);
    if (!db) {
        snprintf(err, errlen, "store %s: cannot open: %s", s->dir, e ? e : "unknown error");
        rocksdb_free(e);
    }
    return db;
}

/* mkdir -p: a data directory whose parents do not exist yet is created with them. */
static int store_mkdirs(const char *dir)
{
    char path[sizeof(((struct store *)0)->dir)];
    snprintf(path, sizeof(path), "%s", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0750) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(path, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

struct store *store_open(uv_loop_t *loop, const char *dir, enum store_durability mode,
                         const struct logger *log, void (*committed)(void *ctx, uint64_t seq),
                         void *ctx, char *err, size_t errlen)
{
    struct store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->log = log;
    s->mode = mode;
    s->committed = committed;
    s->ctx = ctx;
    s->open_seq = 1;
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    if (store_mkdirs(s->dir) != 0) {
        snprintf(err, errlen, "store %s: cannot create: %s", dir, strerror(errno));
        free(s);
        return NULL;
    }
    s->opts = rocksdb_options_create();
    s->wsync = rocksdb_writeoptions_create();
    s->wnosync = rocksdb_writeoptions_create();
    s->open = rocksdb_writebatch_create();
    if (!s->opts || !s->wsync || !s->wnosync || !s->open) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    rocksdb_options_set_create_if_missing(s->opts, 1);
    rocksdb_options_set_info_log_level(s->opts, 4); /* RocksDB's own LOG: fatal only */
    rocksdb_options_set_keep_log_file_num(s->opts, 1);
    rocksdb_options_set_max_background_jobs(s->opts, 1);
    rocksdb_writeoptions_set_sync(s->wsync, 1);
    if (!(s->db = store_open_db(s, err, errlen)))
        goto fail;
    if (uv_mutex_init(&s->mu) != 0) {
        snprintf(err, errlen, "store %s: cannot create a mutex", dir);
        goto fail;
    }
    uv_cond_init(&s->cv);
    uv_async_init(loop, &s->async, store_on_written);
    s->async.data = s;
    if (uv_thread_create(&s->thread, store_writer, s) != 0) {
        snprintf(err, errlen, "store %s: cannot start its writer thread", dir);
        uv_close((uv_handle_t *)&s->async, NULL);
        rocksdb_close(s->db);
        s->db = NULL;
        goto fail;
    }
    return s;
fail:
    if (s->db)
        rocksdb_close(s->db);
    if (s->open)
        rocksdb_writebatch_destroy(s->open);
    if (s->wsync)
        rocksdb_writeoptions_destroy(s->wsync);
    if (s->wnosync)
        rocksdb_writeoptions_destroy(s->wnosync);
    if (s->opts)
        rocksdb_options_destroy(s->opts);
    free(s);
    return NULL;
}

static void store_on_async_closed(uv_handle_t *h)
{
    free(h->data);
}

void store_close(struct store *s)
{
    uv_mutex_lock(&s->mu);
    s->stop = true;
    uv_cond_signal(&s->cv);
    uv_mutex_unlock(&s->mu);
    uv_thread_join(&s->thread);
    /* What the writer had and what the last turns added, with an fsync in every mode. */
    char *err = NULL;
    if (!s->db) {
        char why[256];
        if (!(s->db = store_open_db(s, why, sizeof(why))))
            err = strdup(why);
    }
    if (s->handed && s->db) {
        rocksdb_write(s->db, s->wsync, s->handed, &err);
        rocksdb_writebatch_destroy(s->handed);
    }
    if (s->handed && !s->db)
        rocksdb_writebatch_destroy(s->handed);
    if (!err && s->db && rocksdb_writebatch_count(s->open) > 0)
        rocksdb_write(s->db, s->wsync, s->open, &err);
    if (err) {
        log_error(s->log, "store %s: last write failed: %s", s->dir, err);
        rocksdb_free(err);
    }
    rocksdb_writebatch_destroy(s->open);
    if (s->db)
        rocksdb_close(s->db);
    rocksdb_writeoptions_destroy(s->wsync);
    rocksdb_writeoptions_destroy(s->wnosync);
    rocksdb_options_destroy(s->opts);
    uv_cond_destroy(&s->cv);
    uv_mutex_destroy(&s->mu);
    uv_close((uv_handle_t *)&s->async, store_on_async_closed);
}

int store_put(struct store *s, const void *key, size_t klen, const void *val, size_t vlen)
{
    rocksdb_writebatch_put(s->open, key, klen, val, vlen);
    return 0;
}

int store_del(struct store *s, const void *key, size_t klen)
{
    rocksdb_writebatch_delete(s->open, key, klen);
    return 0;
}

uint64_t store_open_seq(const struct store *s)
{
    return s->open_seq;
}

bool store_pending(const struct store *s)
{
    return rocksdb_writebatch_count(s->open) > 0;
}

uint64_t store_committed_seq(const struct store *s)
{
    return s->committed_seq;
}

void store_commit(struct store *s)
{
    if (s->busy || rocksdb_writebatch_count(s->open) == 0)
        return;
    rocksdb_writebatch_t *next = rocksdb_writebatch_create();
    if (!next)
        return; /* tried again next turn */
    uv_mutex_lock(&s->mu);
    s->handed = s->open;
    s->handed_seq = s->open_seq;
    uv_cond_signal(&s->cv);
    uv_mutex_unlock(&s->mu);
    s->open = next;
    s->open_seq++;
    s->busy = true;
}

int store_scan(struct store *s, const void *prefix, size_t plen,
               int (*fn)(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl),
               void *ctx)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = ro ? rocksdb_create_iterator(s->db, ro) : NULL;
    int rc = 0;
    if (!it) {
        rc = -1;
        goto out;
    }
    for (rocksdb_iter_seek(it, prefix, plen); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        if (kl < plen || memcmp(k, prefix, plen) != 0)
            break;
        const char *v = rocksdb_iter_value(it, &vl);
        if (fn(ctx, (const uint8_t *)k, kl, (const uint8_t *)v, vl) != 0) {
            rc = -1;
            break;
        }
    }
    rocksdb_iter_destroy(it);
out:
    if (ro)
        rocksdb_readoptions_destroy(ro);
    return rc;
}

/* Bytes of every file in the store's directory (SST files and logs). */
static uint64_t store_dir_size(const char *dir)
{
    DIR *d = opendir(dir);
    uint64_t total = 0;
    if (!d)
        return 0;
    struct dirent *e;
    char path[1024];
    while ((e = readdir(d))) {
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

void store_get_stats(struct store *s, struct store_stats *out)
{
    uv_mutex_lock(&s->mu);
    *out = s->st;
    uv_mutex_unlock(&s->mu);
    out->size = store_dir_size(s->dir);
}
