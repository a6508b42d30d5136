/*
 * store_choice.c - measures which embedded store suits the broker's durable store: RocksDB (C
 * API) or LMDB, run through the same workload, each stage in a fresh directory:
 *
 *   1. group-commit append: records (key: 2-byte client prefix, ~40 clients round-robin, then an
 *      8-byte big-endian sequence; value 100 bytes) in batches of 100, each batch one durable
 *      commit (RocksDB: rocksdb_write with sync=1; LMDB: one write txn, mdb_txn_commit with the
 *      default sync). Records/s, commits/s, p50/p99 commit latency.
 *   2. ack-delete: the same records deleted oldest first in durable batches of 100. Records/s,
 *      then the disk space of the directory.
 *   3. mixed steady state: a queue of ~10,000 live records; each round appends a durable batch of
 *      100 and deletes the oldest 100 in another durable batch. Records appended/s.
 *   4. restart range scan: records written in non-durable batches of 1,000, store closed,
 *      reopened (warm page cache) and everything iterated client prefix by client prefix. Time of
 *      reopen + scan, then the disk space of the directory.
 *
 * Prints one markdown table. A tool to pick a store, not a test.
 *
 *     cmake --build build --target store_choice   # built only if both libraries are found
 *     build/store_choice [-d dir] [-a append] [-r rounds] [-s scan]
 *         -d  where the temporary directories go (default /var/tmp; must be a real disk, on
 *             tmpfs fsync costs nothing)
 *         -a  records of stages 1 and 2 (default 200000)
 *         -r  rounds of stage 3 (default 1000)
 *         -s  records of stage 4 (default 1000000)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <rocksdb/c.h>

#define KEY_LEN 10
#define VALUE_LEN 100
#define CLIENTS 40
#define BATCH 100
#define SCAN_BATCH 1000
#define LIVE 10000

struct store {
    const char *name;
    void *(*open)(const char *dir);
    /* n records from seq first on; durable: the commit returns once on disk */
    void (*put)(void *s, uint64_t first, int n, int durable);
    void (*del)(void *s, uint64_t first, int n);
    /* every record, prefix by prefix; returns how many */
    uint64_t (*scan)(void *s);
    void (*close)(void *s);
};

struct result {
    double append_rps, append_cps, commit_p50_ms, commit_p99_ms;
    double ack_rps, ack_du_mib;
    double mixed_rps;
    double scan_s, scan_du_mib;
};

static char value_buf[VALUE_LEN];

/* the value of sequence seq: pseudo-random bytes, so that neither store gains by compressing */
static const char *make_value(uint64_t seq)
{
    uint64_t x = seq * 0x9e3779b97f4a7c15ULL + 1;
    for (int i = 0; i < VALUE_LEN; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(value_buf + i, &x, VALUE_LEN - i < 8 ? (size_t)(VALUE_LEN - i) : 8);
    }
    return value_buf;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "store_choice: %s: %s\n", what, why);
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* the record of sequence seq: client seq % CLIENTS, big-endian so keys of a client sort by seq */
static void make_key(uint64_t seq, unsigned char *key)
{
    unsigned client = (unsigned)(seq % CLIENTS);
    key[0] = (unsigned char)(client >> 8);
    key[1] = (unsigned char)client;
    for (int i = 0; i < 8; i++)
        key[2 + i] = (unsigned char)(seq >> (56 - 8 * i));
}

/* ---- RocksDB ---- */

struct rdb {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_writeoptions_t *wo_sync, *wo_nosync;
    rocksdb_readoptions_t *ro;
    rocksdb_writebatch_t *wb;
};

static void rdb_check(char *err, const char *what)
{
    if (err) {
        fprintf(stderr, "store_choice: rocksdb %s: %s\n", what, err);
        rocksdb_free(err);
        exit(1);
    }
}

static void *rdb_open(const char *dir)
{
    struct rdb *r = calloc(1, sizeof(*r));
    char *err = NULL;
    if (!r)
        die("calloc", strerror(errno));
    r->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(r->opts, 1);
    r->db = rocksdb_open(r->opts, dir, &err);
    rdb_check(err, "open");
    r->wo_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(r->wo_sync, 1);
    r->wo_nosync = rocksdb_writeoptions_create();
    r->ro = rocksdb_readoptions_create();
    r->wb = rocksdb_writebatch_create();
    return r;
}

static void rdb_put(void *s, uint64_t first, int n, int durable)
{
    struct rdb *r = s;
    unsigned char key[KEY_LEN];
    char *err = NULL;
    rocksdb_writebatch_clear(r->wb);
    for (int i = 0; i < n; i++) {
        make_key(first + (uint64_t)i, key);
        rocksdb_writebatch_put(r->wb, (const char *)key, KEY_LEN, make_value(first + (uint64_t)i),
                               VALUE_LEN);
    }
    rocksdb_write(r->db, durable ? r->wo_sync : r->wo_nosync, r->wb, &err);
    rdb_check(err, "write");
}

static void rdb_del(void *s, uint64_t first, int n)
{
    struct rdb *r = s;
    unsigned char key[KEY_LEN];
    char *err = NULL;
    rocksdb_writebatch_clear(r->wb);
    for (int i = 0; i < n; i++) {
        make_key(first + (uint64_t)i, key);
        rocksdb_writebatch_delete(r->wb, (const char *)key, KEY_LEN);
    }
    rocksdb_write(r->db, r->wo_sync, r->wb, &err);
    rdb_check(err, "delete");
}

static uint64_t rdb_scan(void *s)
{
    struct rdb *r = s;
    uint64_t count = 0, sum = 0;
    char *err = NULL;
    rocksdb_iterator_t *it = rocksdb_create_iterator(r->db, r->ro);
    for (unsigned c = 0; c < CLIENTS; c++) {
        unsigned char prefix[2] = {(unsigned char)(c >> 8), (unsigned char)c};
        for (rocksdb_iter_seek(it, (const char *)prefix, 2); rocksdb_iter_valid(it);
             rocksdb_iter_next(it)) {
            size_t klen, vlen;
            const char *k = rocksdb_iter_key(it, &klen);
            if (klen < 2 || memcmp(k, prefix, 2) != 0)
                break;
            const char *v = rocksdb_iter_value(it, &vlen);
            sum += vlen ? (unsigned char)v[0] : 0;
            count++;
        }
    }
    rocksdb_iter_get_error(it, &err);
    rdb_check(err, "iterate");
    rocksdb_iter_destroy(it);
    if (sum == UINT64_MAX)
        puts("");
    return count;
}

static void rdb_close(void *s)
{
    struct rdb *r = s;
    rocksdb_writebatch_destroy(r->wb);
    rocksdb_readoptions_destroy(r->ro);
    rocksdb_writeoptions_destroy(r->wo_nosync);
    rocksdb_writeoptions_destroy(r->wo_sync);
    rocksdb_close(r->db);
    rocksdb_options_destroy(r->opts);
    free(r);
}

/* ---- LMDB ---- */

struct ldb {
    MDB_env *env;
    MDB_dbi dbi;
    int nosync;
};

static void ldb_check(int rc, const char *what)
{
    if (rc != MDB_SUCCESS) {
        fprintf(stderr, "store_choice: lmdb %s: %s\n", what, mdb_strerror(rc));
        exit(1);
    }
}

static void *ldb_open(const char *dir)
{
    struct ldb *l = calloc(1, sizeof(*l));
    MDB_txn *txn;
    if (!l)
        die("calloc", strerror(errno));
    ldb_check(mdb_env_create(&l->env), "env_create");
    /* the map is sparse: room for stage 4 with ample slack */
    ldb_check(mdb_env_set_mapsize(l->env, (size_t)4 << 30), "set_mapsize");
    ldb_check(mdb_env_open(l->env, dir, 0, 0644), "env_open");
    ldb_check(mdb_txn_begin(l->env, NULL, 0, &txn), "txn_begin");
    ldb_check(mdb_dbi_open(txn, NULL, 0, &l->dbi), "dbi_open");
    ldb_check(mdb_txn_commit(txn), "txn_commit");
    return l;
}

static void ldb_set_sync(struct ldb *l, int durable)
{
    if (l->nosync == !durable)
        return;
    ldb_check(mdb_env_set_flags(l->env, MDB_NOSYNC, durable ? 0 : 1), "set_flags");
    l->nosync = !durable;
}

static void ldb_put(void *s, uint64_t first, int n, int durable)
{
    struct ldb *l = s;
    unsigned char key[KEY_LEN];
    MDB_txn *txn;
    ldb_set_sync(l, durable);
    ldb_check(mdb_txn_begin(l->env, NULL, 0, &txn), "txn_begin");
    for (int i = 0; i < n; i++) {
        make_key(first + (uint64_t)i, key);
        MDB_val k = {KEY_LEN, key}, v = {VALUE_LEN, (void *)make_value(first + (uint64_t)i)};
        ldb_check(mdb_put(txn, l->dbi, &k, &v, 0), "put");
    }
    ldb_check(mdb_txn_commit(txn), "txn_commit");
}

static void ldb_del(void *s, uint64_t first, int n)
{
    struct ldb *l = s;
    unsigned char key[KEY_LEN];
    MDB_txn *txn;
    ldb_set_sync(l, 1);
    ldb_check(mdb_txn_begin(l->env, NULL, 0, &txn), "txn_begin");
    for (int i = 0; i < n; i++) {
        make_key(first + (uint64_t)i, key);
        MDB_val k = {KEY_LEN, key};
        ldb_check(mdb_del(txn, l->dbi, &k, NULL), "del");
    }
    ldb_check(mdb_txn_commit(txn), "txn_commit");
}

static uint64_t ldb_scan(void *s)
{
    struct ldb *l = s;
    uint64_t count = 0, sum = 0;
    MDB_txn *txn;
    MDB_cursor *cur;
    ldb_check(mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn), "txn_begin");
    ldb_check(mdb_cursor_open(txn, l->dbi, &cur), "cursor_open");
    for (unsigned c = 0; c < CLIENTS; c++) {
        unsigned char prefix[2] = {(unsigned char)(c >> 8), (unsigned char)c};
        MDB_val k = {2, prefix}, v;
        int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        while (rc == MDB_SUCCESS) {
            if (k.mv_size < 2 || memcmp(k.mv_data, prefix, 2) != 0)
                break;
            sum += v.mv_size ? *(unsigned char *)v.mv_data : 0;
            count++;
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
            ldb_check(rc, "cursor_get");
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (sum == UINT64_MAX)
        puts("");
    return count;
}

static void ldb_close(void *s)
{
    struct ldb *l = s;
    mdb_env_close(l->env);
    free(l);
}

/* ---- directories ---- */

static const char *base_dir = "/var/tmp";
static uint64_t du_bytes;

static int du_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    du_bytes += (uint64_t)st->st_blocks * 512;
    return 0;
}

/* disk space of dir in MiB, as du counts it (allocated blocks) */
static double du_mib(const char *dir)
{
    du_bytes = 0;
    if (nftw(dir, du_one, 16, FTW_PHYS) != 0)
        die(dir, strerror(errno));
    return (double)du_bytes / (1024.0 * 1024.0);
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    if (remove(path) != 0)
        die(path, strerror(errno));
    return 0;
}

static void fresh_dir(char *dir, size_t size, const char *store)
{
    snprintf(dir, size, "%s/store_choice_%s_XXXXXX", base_dir, store);
    if (!mkdtemp(dir))
        die(dir, strerror(errno));
}

static void remove_dir(const char *dir)
{
    if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        die(dir, strerror(errno));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- the workload ---- */

static void run(const struct store *st, uint64_t append_n, int rounds, uint64_t scan_n,
                struct result *res)
{
    char dir[4096];
    uint64_t commits = append_n / BATCH;
    double *lat = malloc(sizeof(double) * (commits ? commits : 1));
    if (!lat)
        die("malloc", strerror(errno));

    /* 1 and 2: group-commit append, then ack-delete in the same directory */
    fresh_dir(dir, sizeof(dir), st->name);
    void *s = st->open(dir);
    double t0 = now_s();
    for (uint64_t b = 0; b < commits; b++) {
        double t = now_s();
        st->put(s, b * BATCH, BATCH, 1);
        lat[b] = now_s() - t;
    }
    double t1 = now_s();
    res->append_rps = (double)(commits * BATCH) / (t1 - t0);
    res->append_cps = (double)commits / (t1 - t0);
    qsort(lat, commits, sizeof(double), cmp_double);
    res->commit_p50_ms = lat[commits / 2] * 1e3;
    res->commit_p99_ms = lat[commits * 99 / 100] * 1e3;

    t0 = now_s();
    for (uint64_t b = 0; b < commits; b++)
        st->del(s, b * BATCH, BATCH);
    t1 = now_s();
    res->ack_rps = (double)(commits * BATCH) / (t1 - t0);
    st->close(s);
    res->ack_du_mib = du_mib(dir);
    remove_dir(dir);

    /* 3: mixed steady state around LIVE live records */
    fresh_dir(dir, sizeof(dir), st->name);
    s = st->open(dir);
    for (uint64_t seq = 0; seq < LIVE; seq += SCAN_BATCH)
        st->put(s, seq, SCAN_BATCH, 0);
    uint64_t next = LIVE, oldest = 0;
    t0 = now_s();
    for (int r = 0; r < rounds; r++) {
        st->put(s, next, BATCH, 1);
        next += BATCH;
        st->del(s, oldest, BATCH);
        oldest += BATCH;
    }
    t1 = now_s();
    res->mixed_rps = (double)rounds * BATCH / (t1 - t0);
    st->close(s);
    remove_dir(dir);

    /* 4: write scan_n records, close, reopen and scan */
    fresh_dir(dir, sizeof(dir), st->name);
    s = st->open(dir);
    for (uint64_t seq = 0; seq < scan_n; seq += SCAN_BATCH) {
        uint64_t n = scan_n - seq < SCAN_BATCH ? scan_n - seq : SCAN_BATCH;
        st->put(s, seq, (int)n, 0);
    }
    st->close(s);
    t0 = now_s();
    s = st->open(dir);
    uint64_t seen = st->scan(s);
    t1 = now_s();
    if (seen != scan_n) {
        fprintf(stderr, "store_choice: %s scan saw %llu records, wrote %llu\n", st->name,
                (unsigned long long)seen, (unsigned long long)scan_n);
        exit(1);
    }
    res->scan_s = t1 - t0;
    st->close(s);
    res->scan_du_mib = du_mib(dir);
    remove_dir(dir);
    free(lat);
}

static uint64_t parse_count(const char *arg, char opt)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (errno || *end || v == 0) {
        fprintf(stderr, "store_choice: -%c wants a positive count, got '%s'\n", opt, arg);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    uint64_t append_n = 200000, scan_n = 1000000;
    int rounds = 1000, opt;
    while ((opt = getopt(argc, argv, "d:a:r:s:")) != -1) {
        switch (opt) {
        case 'd':
            base_dir = optarg;
            break;
        case 'a':
            append_n = parse_count(optarg, 'a');
            break;
        case 'r':
            rounds = (int)parse_count(optarg, 'r');
            break;
        case 's':
            scan_n = parse_count(optarg, 's');
            break;
        default:
            fprintf(stderr, "usage: %s [-d dir] [-a append] [-r rounds] [-s scan]\n", argv[0]);
            return 2;
        }
    }
    if (append_n < BATCH) {
        fprintf(stderr, "store_choice: -a must be at least %d\n", BATCH);
        return 2;
    }
    const struct store stores[2] = {
        {"rocksdb", rdb_open, rdb_put, rdb_del, rdb_scan, rdb_close},
        {"lmdb", ldb_open, ldb_put, ldb_del, ldb_scan, ldb_close},
    };
    struct result res[2];
    for (int i = 0; i < 2; i++) {
        fprintf(stderr, "store_choice: %s...\n", stores[i].name);
        run(&stores[i], append_n, rounds, scan_n, &res[i]);
    }

#ifndef STORE_CHOICE_ROCKSDB_VERSION
#define STORE_CHOICE_ROCKSDB_VERSION "?"
#endif
    printf("RocksDB %s vs LMDB %d.%d.%d, in %s: %llu records of %d bytes in durable batches of "
           "%d; %d mixed rounds; %llu records scanned\n\n",
           STORE_CHOICE_ROCKSDB_VERSION, MDB_VERSION_MAJOR, MDB_VERSION_MINOR, MDB_VERSION_PATCH,
           base_dir, (unsigned long long)append_n, VALUE_LEN, BATCH, rounds,
           (unsigned long long)scan_n);
    printf("| %-42s | %12s | %12s |\n", "stage", "RocksDB", "LMDB");
    printf("|%s|%s|%s|\n", "--------------------------------------------",
           "-------------:", "-------------:");
#define ROW(label, fmt, field)                                                                     \
    printf("| %-42s | " fmt " | " fmt " |\n", label, res[0].field, res[1].field)
    ROW("1. append, records/s", "%12.0f", append_rps);
    ROW("1. append, commits/s", "%12.0f", append_cps);
    ROW("1. commit latency p50, ms", "%12.2f", commit_p50_ms);
    ROW("1. commit latency p99, ms", "%12.2f", commit_p99_ms);
    ROW("2. ack-delete, records/s", "%12.0f", ack_rps);
    ROW("2. disk after ack-delete, MiB", "%12.1f", ack_du_mib);
    ROW("3. mixed append+delete, records/s", "%12.0f", mixed_rps);
    ROW("4. reopen + prefix scan, s", "%12.3f", scan_s);
    ROW("4. disk after writing scan records, MiB", "%12.1f", scan_du_mib);
#undef ROW
    return 0;
}
