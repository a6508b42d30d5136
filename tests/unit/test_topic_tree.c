/*
 * test_topic_tree.c - the subscription tree: subscribe, unsubscribe, pruning, overlapping and '$'
 * filters, large fan-out and fan-in, deep topics, allocation failure.
 *
 * topic.c and levelmap.c are compiled into this test with their calloc/realloc calls routed through
 * a counter that can make the Nth allocation fail, so allocation failure paths are tested without
 * any hook in the library.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc_fail.h"

#define calloc(a, b) fail_calloc(a, b)
#define realloc(p, n) fail_realloc(p, n)
#include "../../node/levelmap.c"
#include "../../node/topic.c"
#undef calloc
#undef realloc

#include "topic_test.h"

/* ---- helpers ---- */

/* Nodes in the subtree (test-side recursion is fine for the small trees it is used on). */
static size_t node_count(const struct tnode *n)
{
    size_t c = 1;
    if (n->plus)
        c += node_count(n->plus);
    if (n->hash)
        c += node_count(n->hash);
    uint32_t pos = 0;
    struct levelmap_key *k;
    while ((k = levelmap_next(&n->kids, &pos)) != NULL)
        c += node_count(tnode_of(k));
    return c;
}

/* ---- the tree ---- */

static void test_tree_subscribe_replace(void **state)
{
    (void)state;
    struct topic_tree *t = topic_tree_new();
    assert_non_null(t);
    int a, b;
    struct hits h = {0};
    int qos = -1;

    assert_int_equal(topic_tree_count(t), 0);
    assert_false(topic_tree_has_match(t, S("a/b")));
    assert_int_equal(topic_tree_subscribe(t, S("a/b"), &a, 0), 1);
    assert_int_equal(topic_tree_subscribe(t, S("a/b"), &b, 1), 1);
    assert_int_equal(topic_tree_count(t), 2);
    assert_int_equal(topic_tree_filter_count(t), 1);

    /* [MQTT-3.8.4-3] re-subscribing replaces: same filter, new QoS, still one entry */
    assert_int_equal(topic_tree_subscribe(t, S("a/b"), &a, 2), 0);
    assert_int_equal(topic_tree_count(t), 2);
    match(t, "a/b", &h);
    assert_int_equal(h.n, 2);
    assert_int_equal(hits_count(&h, &a, &qos), 1);
    assert_int_equal(qos, 2);
    assert_int_equal(hits_count(&h, &b, &qos), 1);
    assert_int_equal(qos, 1);
    assert_true(topic_tree_has_match(t, S("a/b")));
    assert_false(topic_tree_has_match(t, S("a/c")));
    assert_false(topic_tree_has_match(t, S("a")));

    /* invalid filters are refused and change nothing */
    assert_int_equal(topic_tree_subscribe(t, S("a/#/b"), &a, 0), -1);
    assert_int_equal(topic_tree_subscribe(t, "", 0, &a, 0), -1);
    assert_int_equal(topic_tree_count(t), 2);
    assert_int_equal(node_count(t->root), 3);
    hits_reset(&h);
    topic_tree_free(t);
}

static void test_tree_unsubscribe_prune(void **state)
{
    (void)state;
    struct topic_tree *t = topic_tree_new();
    assert_non_null(t);
    int a, b;
    struct hits h = {0};

    assert_int_equal(topic_tree_subscribe(t, S("a/b/c"), &a, 1), 1);
    assert_int_equal(topic_tree_subscribe(t, S("a/+/c/#"), &a, 1), 1);
    assert_int_equal(topic_tree_subscribe(t, S("a/b"), &b, 0), 1);
    assert_int_equal(node_count(t->root), 7); /* root a b c + c' # */

    assert_int_equal(topic_tree_unsubscribe(t, S("a/b/c"), &b), 1); /* b never had it */
    assert_int_equal(topic_tree_unsubscribe(t, S("x/y"), &a), 1);
    assert_int_equal(topic_tree_unsubscribe(t, S("a/+"), &a), 1);
    assert_int_equal(topic_tree_unsubscribe(t, S("a/#/"), &a), 1); /* invalid */
    assert_int_equal(topic_tree_count(t), 3);

    assert_int_equal(topic_tree_unsubscribe(t, S("a/b/c"), &a), 0);
    assert_int_equal(topic_tree_unsubscribe(t, S("a/b/c"), &a), 1);
    assert_int_equal(node_count(t->root), 6); /* c pruned, b kept for &b */
    match(t, "a/b/c", &h);
    assert_int_equal(h.n, 1); /* still via a/+/c/# */

    assert_int_equal(topic_tree_unsubscribe(t, S("a/+/c/#"), &a), 0);
    assert_int_equal(node_count(t->root), 3); /* root a b */
    assert_int_equal(topic_tree_filter_count(t), 1);
    assert_int_equal(topic_tree_unsubscribe(t, S("a/b"), &b), 0);
    assert_int_equal(node_count(t->root), 1);
    assert_int_equal(t->root->kids.cap, 0);
    assert_null(t->root->plus);
    assert_int_equal(topic_tree_count(t), 0);
    assert_int_equal(topic_tree_filter_count(t), 0);
    match(t, "a/b", &h);
    assert_int_equal(h.n, 0);

    /* re-subscribing after a full prune works */
    assert_int_equal(topic_tree_subscribe(t, S("a/b"), &b, 2), 1);
    assert_true(topic_tree_has_match(t, S("a/b")));
    hits_reset(&h);
    topic_tree_free(t);
}

static void test_tree_overlapping(void **state)
{
    (void)state;
    struct topic_tree *t = topic_tree_new();
    assert_non_null(t);
    int a, b, c;
    struct hits h = {0};
    int qos;

    assert_int_equal(topic_tree_subscribe(t, S("a/b"), &a, 0), 1);
    assert_int_equal(topic_tree_subscribe(t, S("a/+"), &a, 1), 1);
    assert_int_equal(topic_tree_subscribe(t, S("a/#"), &a, 2), 1);
    assert_int_equal(topic_tree_subscribe(t, S("#"), &a, 1), 1);
    assert_int_equal(topic_tree_subscribe(t, S("+/b"), &a, 0), 1);
    assert_int_equal(topic_tree_subscribe(t, S("+/+"), &b, 1), 1);
    assert_int_equal(topic_tree_subscribe(t, S("a/b/#"), &c, 2), 1);
    assert_int_equal(topic_tree_subscribe(t, S("a/c"), &c, 2), 1);
    assert_int_equal(topic_tree_count(t), 8);
    assert_int_equal(topic_tree_filter_count(t), 8);

    /* each (filter, subscriber) pair once; the caller merges */
    match(t, "a/b", &h);
    assert_int_equal(h.n, 7);
    assert_int_equal(hits_count(&h, &a, NULL), 5);
    assert_int_equal(hits_count(&h, &b, NULL), 1);
    assert_int_equal(hits_count(&h, &c, &qos), 1); /* a/b/# matches a/b */
    assert_int_equal(qos, 2);
    int maxq = 0;
    for (size_t i = 0; i < h.n; i++)
        if (h.subs[i] == &a && h.qos[i] > maxq)
            maxq = h.qos[i];
    assert_int_equal(maxq, 2);

    match(t, "a/c", &h);
    assert_int_equal(hits_count(&h, &a, NULL), 3); /* a/+ a/# # */
    assert_int_equal(hits_count(&h, &b, NULL), 1);
    assert_int_equal(hits_count(&h, &c, NULL), 1);

    match(t, "x/y/z", &h);
    assert_int_equal(h.n, 1); /* only # */
    assert_int_equal(hits_count(&h, &a, NULL), 1);
    hits_reset(&h);
    topic_tree_free(t);
}

static void test_tree_dollar(void **state)
{
    (void)state;
    struct topic_tree *t = topic_tree_new();
    assert_non_null(t);
    int all, plus, sys, sysplus, inner;
    struct hits h = {0};

    assert_int_equal(topic_tree_subscribe(t, S("#"), &all, 0), 1);
    assert_int_equal(topic_tree_subscribe(t, S("+/monitor/Clients"), &plus, 0), 1);
    assert_int_equal(topic_tree_subscribe(t, S("$SYS/#"), &sys, 0), 1);
    assert_int_equal(topic_tree_subscribe(t, S("$SYS/monitor/+"), &sysplus, 0), 1);
    assert_int_equal(topic_tree_subscribe(t, S("a/+/Clients"), &inner, 0), 1);

    /* [MQTT-4.7.2-1] */
    match(t, "$SYS/monitor/Clients", &h);
    assert_int_equal(hits_count(&h, &all, NULL), 0);
    assert_int_equal(hits_count(&h, &plus, NULL), 0);
    assert_int_equal(hits_count(&h, &sys, NULL), 1);
    assert_int_equal(hits_count(&h, &sysplus, NULL), 1);
    assert_int_equal(h.n, 2);

    match(t, "x/monitor/Clients", &h);
    assert_int_equal(hits_count(&h, &all, NULL), 1);
    assert_int_equal(hits_count(&h, &plus, NULL), 1);
    assert_int_equal(h.n, 2);

    /* '$' below the first level is an ordinary character */
    match(t, "a/$x/Clients", &h);
    assert_int_equal(hits_count(&h, &inner, NULL), 1);
    assert_int_equal(hits_count(&h, &all, NULL), 1);

    assert_int_equal(topic_tree_unsubscribe(t, S("$SYS/#"), &sys), 0);
    assert_int_equal(topic_tree_unsubscribe(t, S("$SYS/monitor/+"), &sysplus), 0);
    assert_false(topic_tree_has_match(t, S("$SYS/monitor/Clients")));
    assert_true(topic_tree_has_match(t, S("x")));
    hits_reset(&h);
    topic_tree_free(t);
}

static void test_tree_fanout(void **state)
{
    (void)state;
    enum { N = 10000 };
    struct topic_tree *t = topic_tree_new();
    assert_non_null(t);
    char *subs = malloc(N); /* distinct addresses as subscribers */
    assert_non_null(subs);
    struct hits h = {0};

    /* subscribe in an order that is not address order */
    for (size_t k = 0; k < N; k++) {
        size_t i = (k * 7919) % N;
        assert_int_equal(topic_tree_subscribe(t, S("fan/out"), &subs[i], (uint8_t)(i % 3)), 1);
    }
    assert_int_equal(topic_tree_count(t), N);
    assert_int_equal(topic_tree_filter_count(t), 1);
    for (size_t i = 0; i < N; i += 97)
        assert_int_equal(topic_tree_subscribe(t, S("fan/out"), &subs[i], 2), 0);

    match(t, "fan/out", &h);
    assert_int_equal(h.n, N);
    char *seen = calloc(N, 1);
    assert_non_null(seen);
    for (size_t i = 0; i < h.n; i++) {
        size_t idx = (size_t)((char *)h.subs[i] - subs);
        assert_true(idx < N);
        assert_int_equal(seen[idx], 0);
        seen[idx] = 1;
        assert_int_equal(h.qos[i], idx % 97 == 0 ? 2 : idx % 3);
    }

    /* drop the even ones */
    for (size_t i = 0; i < N; i += 2)
        assert_int_equal(topic_tree_unsubscribe(t, S("fan/out"), &subs[i]), 0);
    assert_int_equal(topic_tree_count(t), N / 2);
    match(t, "fan/out", &h);
    assert_int_equal(h.n, N / 2);
    for (size_t i = 0; i < h.n; i++)
        assert_int_equal(((char *)h.subs[i] - subs) % 2, 1);
    for (size_t i = 1; i < N; i += 2)
        assert_int_equal(topic_tree_unsubscribe(t, S("fan/out"), &subs[i]), 0);
    assert_int_equal(node_count(t->root), 1);

    free(seen);
    free(subs);
    hits_reset(&h);
    topic_tree_free(t);
}

static void test_tree_many_filters(void **state)
{
    (void)state;
    enum { N = 100000 };
    struct topic_tree *t = topic_tree_new();
    assert_non_null(t);
    char *subs = malloc(N);
    assert_non_null(subs);
    int wild, hash;
    struct hits h = {0};
    char buf[64];

    for (size_t i = 0; i < N; i++) {
        int n = snprintf(buf, sizeof(buf), "devices/%zu/status", i);
        assert_int_equal(topic_tree_subscribe(t, buf, (size_t)n, &subs[i], 1), 1);
    }
    assert_int_equal(topic_tree_subscribe(t, S("devices/+/status"), &wild, 0), 1);
    assert_int_equal(topic_tree_subscribe(t, S("devices/4242/#"), &hash, 2), 1);
    assert_int_equal(topic_tree_filter_count(t), N + 2);

    /* the "devices" node holds N exact children in a hash table */
    const struct tnode *dev = kids_find(t->root, S("devices"), levelmap_hash(S("devices")));
    assert_non_null(dev);
    assert_int_equal(dev->kids.count, N);
    assert_true(dev->kids.cap >= N);

    for (size_t i = 0; i < N; i += 1237) {
        int n = snprintf(buf, sizeof(buf), "devices/%zu/status", i);
        hits_reset(&h);
        topic_tree_match(t, buf, (size_t)n, hits_add, &h);
        assert_int_equal(h.n, i == 4242 ? 3 : 2);
        assert_int_equal(hits_count(&h, &subs[i], NULL), 1);
        assert_int_equal(hits_count(&h, &wild, NULL), 1);
    }
    match(t, "devices/4242/status", &h);
    assert_int_equal(h.n, 3);
    assert_int_equal(hits_count(&h, &subs[4242], NULL), 1);
    assert_int_equal(hits_count(&h, &hash, NULL), 1);
    match(t, "devices/100000/status", &h);
    assert_int_equal(h.n, 1);
    assert_int_equal(hits_count(&h, &wild, NULL), 1);
    match(t, "devices/5/other", &h);
    assert_int_equal(h.n, 0);

    /* remove all but a few; the table shrinks and matching still works */
    for (size_t i = 0; i < N; i++) {
        if (i % 10000 == 3)
            continue;
        int n = snprintf(buf, sizeof(buf), "devices/%zu/status", i);
        assert_int_equal(topic_tree_unsubscribe(t, buf, (size_t)n, &subs[i]), 0);
    }
    assert_int_equal(dev->kids.count, 11); /* 10 left + "4242" for the '#' filter */
    assert_true(dev->kids.cap <= 64);
    for (size_t i = 3; i < N; i += 10000) {
        int n = snprintf(buf, sizeof(buf), "devices/%zu/status", i);
        hits_reset(&h);
        topic_tree_match(t, buf, (size_t)n, hits_add, &h);
        assert_int_equal(hits_count(&h, &subs[i], NULL), 1);
    }
    free(subs);
    hits_reset(&h);
    topic_tree_free(t);
}

/* A deep filter and a deep topic: the walk must not need stack per level. */
static void test_tree_deep(void **state)
{
    (void)state;
    size_t len = 65535; /* "+/+/.../+": 32768 levels */
    char *filter = malloc(len);
    char *name = malloc(len);
    assert_non_null(filter);
    assert_non_null(name);
    for (size_t i = 0; i < len; i++) {
        filter[i] = (i % 2) ? '/' : '+';
        name[i] = (i % 2) ? '/' : 'a';
    }
    struct topic_tree *t = topic_tree_new();
    assert_non_null(t);
    int a, b, c;
    assert_int_equal(topic_tree_subscribe(t, filter, len, &a, 0), 1);
    assert_int_equal(topic_tree_subscribe(t, name, len, &b, 0), 1);
    filter[len - 1] = '#';
    assert_int_equal(topic_tree_subscribe(t, filter, len, &c, 0), 1);
    struct hits h = {0};
    topic_tree_match(t, name, len, hits_add, &h);
    assert_int_equal(h.n, 3);
    /* 32768 empty levels ("///...") match "+/+/.../+" and "+/.../#" only */
    memset(name, '/', 32767);
    hits_reset(&h);
    topic_tree_match(t, name, 32767, hits_add, &h);
    assert_int_equal(h.n, 2);
    assert_int_equal(hits_count(&h, &b, NULL), 0);
    assert_true(topic_tree_has_match(t, name, 32767));
    assert_false(topic_tree_has_match(t, name, 32765)); /* too few levels for either */
    hits_reset(&h);
    topic_tree_free(t);
    free(filter);
    free(name);
}

static void test_tree_bad_calls(void **state)
{
    (void)state;
    struct topic_tree *t = topic_tree_new();
    assert_non_null(t);
    int a;
    struct hits h = {0};
    assert_int_equal(topic_tree_subscribe(t, S("a/b"), &a, 0), 1);
    topic_tree_match(t, "", 0, hits_add, &h);
    topic_tree_match(t, NULL, 0, hits_add, &h);
    topic_tree_match(t, S("a/b"), NULL, NULL);
    assert_int_equal(h.n, 0);
    assert_false(topic_tree_has_match(t, "", 0));
    assert_false(topic_tree_has_match(NULL, S("a")));
    assert_int_equal(topic_tree_count(NULL), 0);
    assert_int_equal(topic_tree_subscribe(NULL, S("a"), &a, 0), -1);
    assert_int_equal(topic_tree_unsubscribe(NULL, S("a"), &a), 1);
    topic_tree_free(NULL);
    topic_tree_free(t);
}

/* ---- allocation failure ---- */

static void test_tree_new_alloc_failure(void **state)
{
    (void)state;
    for (long n = 0; n < 2; n++) {
        alloc_budget = n;
        assert_null(topic_tree_new());
    }
    alloc_budget = 2;
    struct topic_tree *t = topic_tree_new();
    alloc_budget = -1;
    assert_non_null(t);
    topic_tree_free(t);
}

/* Fail the 1st, 2nd, ... allocation of a subscribe: each failure returns -1 and leaves the tree as
 * it was (same counts, nodes and matches); eventually the subscribe succeeds. */
static void test_tree_subscribe_alloc_failure(void **state)
{
    (void)state;
    struct topic_tree *t = topic_tree_new();
    assert_non_null(t);
    int a, b;
    struct hits h = {0};
    char buf[32];
    /* existing content, including a table about to grow and a full subs array */
    assert_int_equal(topic_tree_subscribe(t, S("x/y"), &a, 0), 1);
    assert_int_equal(topic_tree_subscribe(t, S("x/y"), &b, 0), 1);
    for (int i = 0; i < 5; i++) {
        int n = snprintf(buf, sizeof(buf), "k%d/z", i);
        assert_int_equal(topic_tree_subscribe(t, buf, (size_t)n, &a, 0), 1);
    }
    static const char *filters[] = {"x/y", "k9/p/q/#", "+/+/r", "x/y/z/+/w"};
    char cs[4];
    for (size_t f = 0; f < sizeof(filters) / sizeof(filters[0]); f++) {
        void *c = &cs[f];
        long n;
        for (n = 0; n < 100; n++) {
            size_t nodes = node_count(t->root);
            size_t count = topic_tree_count(t);
            alloc_budget = n;
            int rc = topic_tree_subscribe(t, S(filters[f]), c, 1);
            alloc_budget = -1;
            if (rc == 1)
                break;
            assert_int_equal(rc, -1);
            assert_int_equal(node_count(t->root), nodes);
            assert_int_equal(topic_tree_count(t), count);
            assert_false(topic_tree_has_match(t, S("x/y/z/q/w")));
        }
        assert_true(n < 100);
        match(t, "x/y", &h);
        assert_int_equal(hits_count(&h, c, NULL), f == 0);
    }
    assert_true(topic_tree_has_match(t, S("x/y/z/q/w")));

    /* unsubscribe never fails, even when shrinking cannot allocate */
    alloc_budget = 0;
    assert_int_equal(topic_tree_unsubscribe(t, S("x/y/z/+/w"), &(int){0}), 1);
    for (int i = 0; i < 5; i++) {
        int n = snprintf(buf, sizeof(buf), "k%d/z", i);
        assert_int_equal(topic_tree_unsubscribe(t, buf, (size_t)n, &a), 0);
    }
    alloc_budget = -1;
    match(t, "k1/z", &h);
    assert_int_equal(h.n, 0);
    hits_reset(&h);
    topic_tree_free(t);
}

/* Random filters and topics over a few short levels ('+', '#', empty and '$' levels among them):
 * the tree must report exactly the filters that topic_match, matching one filter at a time, says
 * match, each once. Guards the walk's shortcuts (going back up only to an ancestor with a '+'). */
static void random_levels(char *out, size_t cap, unsigned *seed, bool filter)
{
    static const char *const lv[] = {"a", "b", "", "dev", "$SYS", "0123456789abc", "x/y"};
    size_t n = 0;
    unsigned levels = 1 + (unsigned)(rand_r(seed) % 5);
    for (unsigned i = 0; i < levels && n + 20 < cap; i++) {
        if (i)
            out[n++] = '/';
        unsigned r = (unsigned)rand_r(seed) % 10;
        const char *l = filter && r == 8                      ? "+"
                        : filter && r == 9 && i + 1 == levels ? "#"
                                                              : lv[r % 7];
        if (i > 0 && strcmp(l, "$SYS") == 0)
            l = "s";
        memcpy(out + n, l, strlen(l));
        n += strlen(l);
    }
    out[n] = '\0';
}

static void test_tree_random_against_topic_match(void **state)
{
    (void)state;
    enum { FILTERS = 300, TOPICS = 3000 };
    static char filters[FILTERS][128];
    unsigned seed = 12345;
    struct topic_tree *t = topic_tree_new();
    assert_non_null(t);
    size_t added = 0;
    for (size_t i = 0; i < FILTERS; i++) {
        random_levels(filters[i], sizeof(filters[i]), &seed, true);
        if (!topic_filter_valid(S(filters[i]))) {
            filters[i][0] = '\0';
            continue;
        }
        assert_int_not_equal(topic_tree_subscribe(t, S(filters[i]), filters[i], 0), -1);
        added++;
    }
    assert_true(added > FILTERS / 2);
    struct hits h = {0};
    size_t matched = 0;
    char topic[128];
    for (size_t k = 0; k < TOPICS; k++) {
        random_levels(topic, sizeof(topic), &seed, false);
        if (!topic_name_valid(S(topic)))
            continue;
        match(t, topic, &h);
        size_t want = 0;
        for (size_t i = 0; i < FILTERS; i++) {
            if (!filters[i][0] || !topic_match(S(filters[i]), S(topic)))
                continue;
            /* the same filter string may be in the array twice: one subscriber each */
            want++;
            assert_int_equal(hits_count(&h, filters[i], NULL), 1);
        }
        assert_int_equal(h.n, want);
        matched += want > 0;
    }
    assert_true(matched > TOPICS / 10); /* the check above saw real matches */
    hits_reset(&h);
    topic_tree_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree_subscribe_replace),
        cmocka_unit_test(test_tree_unsubscribe_prune),
        cmocka_unit_test(test_tree_overlapping),
        cmocka_unit_test(test_tree_dollar),
        cmocka_unit_test(test_tree_fanout),
        cmocka_unit_test(test_tree_many_filters),
        cmocka_unit_test(test_tree_deep),
        cmocka_unit_test(test_tree_random_against_topic_match),
        cmocka_unit_test(test_tree_bad_calls),
        cmocka_unit_test(test_tree_new_alloc_failure),
        cmocka_unit_test(test_tree_subscribe_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
