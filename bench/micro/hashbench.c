/*
 * hashbench.c - a microbenchmark of the hash tables under routing: trie matches (one child-table
 * lookup per topic level), retained gets and '+' matches, string-map lookups and churn (sessions,
 * route counts), packet-id set churn (in-flight ids). A tool to compare two builds of node/, not a
 * test: it prints the best of several repetitions in nanoseconds per operation.
 *
 *     cc -O2 -D_GNU_SOURCE -Inode bench/micro/hashbench.c node/topic.c node/retain.c \
 *        node/levelmap.c node/strmap.c node/idset.c [node/hashtab.c] -o /tmp/hashbench
 *     /tmp/hashbench [n [ops]]  # n devices, sessions, retained topics (default 100000, min
 *                               # 1000: it fits in cache and shows the CPU cost of a lookup);
 *                               # ops lookups per case (default 1000000)
 *
 * On a shared or virtual machine the times move by 10% or more from run to run: compare medians
 * of alternating runs, or instructions (valgrind --tool=callgrind with a small ops, then
 * callgrind_annotate --inclusive=yes: bench_trie, bench_retain, bench_strmap, bench_idset).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "idset.h"
#include "retain.h"
#include "strmap.h"
#include "topic.h"

#define REPS 5

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* xorshift: the same pseudo-random topics in every build */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void count_match(void *subscriber, uint8_t qos, void *ctx)
{
    (void)subscriber;
    (void)qos;
    (*(size_t *)ctx)++;
}

static void count_retained(const char *topic, size_t len, void *value, void *ctx)
{
    (void)topic;
    (void)len;
    (void)value;
    (*(size_t *)ctx)++;
}

/* ops topics fmt % (i, i % 1000) for i random below n, made before the clock starts: the timing is of the lookups. */
struct topics {
    char **v;
    size_t *len;
};

static struct topics topics_make(const char *fmt, size_t n, size_t ops, uint64_t seed)
{
    struct topics t = {malloc(ops * sizeof(char *)), malloc(ops * sizeof(size_t))};
    if (!t.v || !t.len)
        exit(1);
    for (size_t k = 0; k < ops; k++) {
        char buf[96];
        size_t i = (size_t)(rnd(&seed) % n);
        int l = snprintf(buf, sizeof(buf), fmt, i, i % 1000);
        t.v[k] = strdup(buf);
        t.len[k] = (size_t)l;
        if (!t.v[k])
            exit(1);
    }
    return t;
}

static void topics_free(struct topics t, size_t ops)
{
    for (size_t k = 0; k < ops; k++)
        free(t.v[k]);
    free(t.v);
    free(t.len);
}

static void report(const char *what, double best, size_t ops, size_t check)
{
    printf("%-34s %8.1f ns/op  (check %zu)\n", what, best / (double)ops, check);
}

/* A trie like a fleet's: n devices each subscribed to its own command topic, a few wildcards, and
 * one wide level (n children under "fleet/") so both the inline child and big tables are hit. */
static void bench_trie(size_t n, size_t ops)
{
    struct topic_tree *t = topic_tree_new();
    char buf[96];
    for (size_t i = 0; i < n; i++) {
        int l = snprintf(buf, sizeof(buf), "devices/%zu/cmd", i);
        topic_tree_subscribe(t, buf, (size_t)l, (void *)(i + 1), 1);
        l = snprintf(buf, sizeof(buf), "fleet/%zu", i);
        topic_tree_subscribe(t, buf, (size_t)l, (void *)(i + 1), 0);
    }
    topic_tree_subscribe(t, "devices/+/status", 16, (void *)1, 0);
    topic_tree_subscribe(t, "fleet/#", 7, (void *)2, 0);
    topic_tree_subscribe(t, "#", 1, (void *)3, 0);

    const char *fmts[] = {"devices/%zu/cmd", "fleet/%zu", "devices/%zu/status",
                          "nobody/%2$zu/%1$zu/y/z"};
    const char *tp_names[] = {"devices/<i>/cmd", "fleet/<i>", "devices/<i>/status",
                              "nobody/<j>/<i>/y/z"};
    for (size_t f = 0; f < 4; f++) {
        double best = 1e30;
        size_t hits = 0;
        struct topics tp = topics_make(fmts[f], n, ops, 88172645463325252ull);
        for (int r = 0; r < REPS; r++) {
            hits = 0;
            double t0 = now_ns();
            for (size_t k = 0; k < ops; k++)
                topic_tree_match(t, tp.v[k], tp.len[k], count_match, &hits);
            double dt = now_ns() - t0;
            if (dt < best)
                best = dt;
        }
        topics_free(tp, ops);
        char what[64];
        snprintf(what, sizeof(what), "trie match %s", tp_names[f]);
        report(what, best, ops, hits);
    }

    /* subscribe/unsubscribe churn: child tables grow, shrink and shift back */
    double best = 1e30;
    for (int r = 0; r < REPS; r++) {
        uint64_t seed = 1234567;
        double t0 = now_ns();
        for (size_t k = 0; k < ops / 4; k++) {
            size_t i = (size_t)(rnd(&seed) % n);
            int l = snprintf(buf, sizeof(buf), "churn/%zu/a", i);
            if (topic_tree_subscribe(t, buf, (size_t)l, (void *)1, 0) == 0)
                topic_tree_unsubscribe(t, buf, (size_t)l, (void *)1);
        }
        double dt = now_ns() - t0;
        if (dt < best)
            best = dt;
    }
    report("trie subscribe/unsubscribe churn", best, ops / 4, topic_tree_count(t));
    topic_tree_free(t);
}

static void release_nothing(void *value)
{
    (void)value;
}

static void bench_retain(size_t n, size_t ops)
{
    struct retain_store *s = retain_new(release_nothing);
    char buf[96];
    for (size_t i = 0; i < n; i++) {
        int l = snprintf(buf, sizeof(buf), "site/%zu/sensor/%zu", i % 1000, i);
        retain_set(s, buf, (size_t)l, (void *)(i + 1));
    }
    double best = 1e30;
    size_t hits = 0;
    struct topics tp = topics_make("site/%2$zu/sensor/%1$zu", n, ops, 99);
    for (int r = 0; r < REPS; r++) {
        hits = 0;
        double t0 = now_ns();
        for (size_t k = 0; k < ops; k++)
            hits += retain_get(s, tp.v[k], tp.len[k]) != NULL;
        double dt = now_ns() - t0;
        if (dt < best)
            best = dt;
    }
    topics_free(tp, ops);
    report("retain get", best, ops, hits);

    best = 1e30;
    size_t m = ops / 1000 ? ops / 1000 : 1;
    for (int r = 0; r < REPS; r++) {
        uint64_t seed = 7;
        hits = 0;
        double t0 = now_ns();
        for (size_t k = 0; k < m; k++) {
            int l = snprintf(buf, sizeof(buf), "site/%zu/sensor/+", (size_t)(rnd(&seed) % 1000));
            retain_match(s, buf, (size_t)l, count_retained, &hits);
        }
        double dt = now_ns() - t0;
        if (dt < best)
            best = dt;
    }
    report("retain match site/<i>/sensor/+", best, m, hits);
    retain_free(s);
}

static void bench_strmap(size_t n, size_t ops)
{
    struct strmap m;
    strmap_init(&m);
    char **keys = malloc(n * sizeof(*keys));
    size_t *lens = malloc(n * sizeof(*lens));
    if (!keys || !lens)
        exit(1);
    for (size_t i = 0; i < n; i++) {
        char buf[64];
        int l = snprintf(buf, sizeof(buf), "client-%zu-%zx", i, i * 2654435761u);
        keys[i] = strdup(buf);
        lens[i] = (size_t)l;
        strmap_put(&m, keys[i], lens[i], keys[i]);
    }
    double best = 1e30;
    size_t hits = 0;
    for (int r = 0; r < REPS; r++) {
        uint64_t seed = 5;
        hits = 0;
        double t0 = now_ns();
        for (size_t k = 0; k < ops; k++) {
            size_t i = (size_t)(rnd(&seed) % n);
            hits += strmap_get(&m, keys[i], lens[i]) != NULL;
        }
        double dt = now_ns() - t0;
        if (dt < best)
            best = dt;
    }
    report("strmap get", best, ops, hits);

    best = 1e30;
    for (int r = 0; r < REPS; r++) {
        uint64_t seed = 11;
        double t0 = now_ns();
        for (size_t k = 0; k < ops / 2; k++) {
            size_t i = (size_t)(rnd(&seed) % n);
            strmap_del(&m, keys[i], lens[i]);
            strmap_put(&m, keys[i], lens[i], keys[i]);
        }
        double dt = now_ns() - t0;
        if (dt < best)
            best = dt;
    }
    report("strmap del+put", best, ops / 2, m.count);
    strmap_destroy(&m);
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    free(lens);
}

/* A window of w in-flight ids moving through the id space, as a QoS 1 session assigns and acks. */
static void bench_idset(size_t ops)
{
    const uint16_t w = 100;
    double best = 1e30;
    size_t hits = 0;
    for (int r = 0; r < REPS; r++) {
        struct idset s = {0};
        hits = 0;
        uint16_t next = 1;
        for (uint16_t k = 0; k < w; k++, next++)
            idset_add(&s, next);
        double t0 = now_ns();
        for (size_t k = 0; k < ops; k++) {
            uint16_t old = (uint16_t)(next - w);
            if (old == 0)
                old = (uint16_t)(old - 1);
            hits += idset_has(&s, old);
            idset_del(&s, old);
            next = next == 65535 ? 1 : next + 1;
            idset_add(&s, next);
        }
        double dt = now_ns() - t0;
        if (dt < best)
            best = dt;
        idset_clear(&s);
    }
    report("idset has+del+add window 100", best, ops, hits);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    size_t ops = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000000;
    if (n < 1000)
        n = 1000;
    if (ops < 1000)
        ops = 1000;
    bench_trie(n, ops);
    bench_retain(n, ops);
    bench_strmap(n, ops);
    bench_idset(ops);
    return 0;
}
