/*
 * test_topic.c - topic validation, single-filter matching and the subscription tree.
 *
 * topic.c is compiled into this test with its calloc/realloc calls routed through a counter that
 * can make the Nth allocation fail, so allocation failure paths are tested without any hook in the
 * library.
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

/* Allocations left before failures start; negative means unlimited. */
static long alloc_budget = -1;

static bool alloc_take(void)
{
    if (alloc_budget == 0)
        return false;
    if (alloc_budget > 0)
        alloc_budget--;
    return true;
}

static void *fail_calloc(size_t a, size_t b)
{
    return alloc_take() ? calloc(a, b) : NULL;
}

static void *fail_realloc(void *p, size_t n)
{
    return alloc_take() ? realloc(p, n) : NULL;
}

#define calloc(a, b) fail_calloc(a, b)
#define realloc(p, n) fail_realloc(p, n)
#include "../../node/topic.c"
#undef calloc
#undef realloc

#define S(x) (x), strlen(x)

/* ---- helpers ---- */

/* What one match call reported: (subscriber, qos) pairs in call order. */
struct hits {
    size_t n;
    size_t cap;
    void **subs;
    uint8_t *qos;
};

static void hits_add(void *subscriber, uint8_t qos, void *ctx)
{
    struct hits *h = ctx;
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->subs = realloc(h->subs, h->cap * sizeof(*h->subs));
        h->qos = realloc(h->qos, h->cap * sizeof(*h->qos));
        assert_non_null(h->subs);
        assert_non_null(h->qos);
    }
    h->subs[h->n] = subscriber;
    h->qos[h->n] = qos;
    h->n++;
}

static void hits_reset(struct hits *h)
{
    free(h->subs);
    free(h->qos);
    memset(h, 0, sizeof(*h));
}

static void match(const struct topic_tree *t, const char *name, struct hits *h)
{
    hits_reset(h);
    topic_tree_match(t, name, strlen(name), hits_add, h);
}

/* How many times subscriber was reported, and with which QoS the last time. */
static size_t hits_count(const struct hits *h, void *subscriber, int *qos)
{
    size_t c = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (h->subs[i] == subscriber) {
            c++;
            if (qos)
                *qos = h->qos[i];
        }
    }
    return c;
}

/* Nodes in the subtree (test-side recursion is fine for the small trees it is used on). */
static size_t node_count(const struct tnode *n)
{
    size_t c = 1;
    if (n->plus)
        c += node_count(n->plus);
    if (n->hash)
        c += node_count(n->hash);
    struct tnode **slots = kids_table((struct tnode *)n);
    for (uint32_t i = 0; i < n->cap; i++)
        if (slots[i])
            c += node_count(slots[i]);
    return c;
}

/* ---- validation ---- */

static void test_name_valid(void **state)
{
    (void)state;
    assert_true(topic_name_valid(S("a")));
    assert_true(topic_name_valid(S("sport/tennis/player1")));
    assert_true(topic_name_valid(S("/")));
    assert_true(topic_name_valid(S("/finance")));
    assert_true(topic_name_valid(S("a//b/")));
    assert_true(topic_name_valid(S("$SYS/broker/uptime")));
    assert_true(topic_name_valid(S(" ")));
    /* [MQTT-4.7.1-1] no wildcards in topic names */
    assert_false(topic_name_valid(S("+")));
    assert_false(topic_name_valid(S("#")));
    assert_false(topic_name_valid(S("sport/+/x")));
    assert_false(topic_name_valid(S("sport/#")));
    assert_false(topic_name_valid(S("a+b")));
    assert_false(topic_name_valid(S("a#")));
    /* [MQTT-4.7.3-1] at least one character */
    assert_false(topic_name_valid("", 0));
    assert_false(topic_name_valid("abc", 0));
    assert_false(topic_name_valid(NULL, 0));
    assert_false(topic_name_valid(NULL, 3));
}

static void test_name_not_nul_terminated(void **state)
{
    (void)state;
    /* The length is what counts: a '+' just past the end is not part of the name. */
    const char buf[] = {'a', '/', 'b', '+'};
    assert_true(topic_name_valid(buf, 3));
    assert_false(topic_name_valid(buf, 4));
    const char f[] = {'a', '/', '#', '/'};
    assert_true(topic_filter_valid(f, 3));
    assert_false(topic_filter_valid(f, 4));
}

static void test_length_limit(void **state)
{
    (void)state;
    size_t max = 65535;
    char *buf = malloc(max + 2);
    assert_non_null(buf);
    memset(buf, 'x', max + 1);
    buf[max + 1] = '\0';
    /* [MQTT-4.7.3-3] at most 65535 bytes */
    assert_true(topic_name_valid(buf, max));
    assert_false(topic_name_valid(buf, max + 1));
    assert_true(topic_filter_valid(buf, max));
    assert_false(topic_filter_valid(buf, max + 1));
    buf[max - 1] = '#';
    buf[max - 2] = '/';
    assert_true(topic_filter_valid(buf, max));
    free(buf);
}

static void test_filter_valid(void **state)
{
    (void)state;
    static const char *good[] = {
        "#",
        "+",
        "sport/#",
        "sport/tennis/#",
        "sport/tennis/player1/#",
        "+/+",
        "/+",
        "+/tennis/#",
        "sport/+/player1",
        "sport/+",
        "/",
        "//",
        "+/",
        "/#",
        "+/+/+",
        "a/+/b/+/#",
        "$SYS/#",
        "$SYS/+/x",
        "a b/c",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(topic_filter_valid(S(good[i])));
    /* [MQTT-4.7.1-2] '#' alone in its level and the last character */
    assert_false(topic_filter_valid(S("sport/tennis#")));
    assert_false(topic_filter_valid(S("sport/tennis/#/ranking")));
    assert_false(topic_filter_valid(S("#/")));
    assert_false(topic_filter_valid(S("#/a")));
    assert_false(topic_filter_valid(S("##")));
    assert_false(topic_filter_valid(S("a#")));
    assert_false(topic_filter_valid(S("#a")));
    assert_false(topic_filter_valid(S("a/#b")));
    /* [MQTT-4.7.1-3] '+' occupies an entire level */
    assert_false(topic_filter_valid(S("sport+")));
    assert_false(topic_filter_valid(S("sport/+x")));
    assert_false(topic_filter_valid(S("x+/a")));
    assert_false(topic_filter_valid(S("++")));
    assert_false(topic_filter_valid(S("+#")));
    assert_false(topic_filter_valid(S("a/++/b")));
    /* [MQTT-4.7.3-1] at least one character */
    assert_false(topic_filter_valid("", 0));
    assert_false(topic_filter_valid(NULL, 0));
}

/* ---- one filter against one name, and the same table through the tree ---- */

struct match_case {
    const char *filter;
    const char *name;
    bool match;
};

static const struct match_case match_table[] = {
    /* spec 4.7.1.2 examples: "sport/tennis/player1/#" */
    {"sport/tennis/player1/#", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
    {"sport/tennis/player1/#", "sport/tennis/player2", false},
    {"sport/tennis/player1/#", "sport/tennis", false},
    /* [MQTT-4.7.1-2] "sport/#" also matches the parent level "sport" */
    {"sport/#", "sport", true},
    {"sport/#", "sport/", true},
    {"sport/#", "sport/a/b/c", true},
    {"sport/#", "sports", false},
    {"sport/#", "Sport", false},
    {"#", "sport", true},
    {"#", "/", true},
    {"#", "/finance", true},
    {"#", "a/b/c/d/e", true},
    /* spec 4.7.1.3 examples: "sport/tennis/+" */
    {"sport/tennis/+", "sport/tennis/player1", true},
    {"sport/tennis/+", "sport/tennis/player2", true},
    {"sport/tennis/+", "sport/tennis/player1/ranking", false},
    {"sport/tennis/+", "sport/tennis", false},
    /* "sport/+" does not match "sport" but does match "sport/" (empty level) */
    {"sport/+", "sport", false},
    {"sport/+", "sport/", true},
    {"a/+/c", "a//c", true},
    {"+", "a", true},
    {"+", "a/b", false},
    {"+/+", "a/b", true},
    {"+/+", "a", false},
    {"+/#", "a", true},
    {"+/#", "a/b/c", true},
    {"a/+/#", "a/x", true},
    {"a/+/#", "a", false},
    /* "/finance": an empty first level */
    {"+/+", "/finance", true},
    {"/+", "/finance", true},
    {"+", "/finance", false},
    {"/finance", "/finance", true},
    {"finance", "/finance", false},
    {"+/finance", "/finance", true},
    {"+", "/", false},
    {"+/+", "/", true},
    {"/", "/", true},
    {"//", "//", true},
    {"+/+/+", "//", true},
    /* [MQTT-4.7.2-1] a leading wildcard does not match a '$' topic */
    {"#", "$SYS/broker/uptime", false},
    {"#", "$SYS", false},
    {"+/monitor/Clients", "$SYS/monitor/Clients", false},
    {"+", "$SYS", false},
    {"+/#", "$SYS/x", false},
    {"$SYS/#", "$SYS/monitor/Clients", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
    {"$SYS/+/Clients", "$SYS/monitor/Clients", true},
    {"a/+", "a/$b", true},
    {"a/#", "a/$b/c", true},
    {"+/$x", "a/$x", true},
    /* [MQTT-4.7.3-4] case sensitive, no normalisation */
    {"ACCOUNTS", "Accounts", false},
    {"Accounts", "Accounts", true},
    {"a/b", "a//b", false},
    {"a/b", "a/b/", false},
    {"a/b/", "a/b", false},
    {"a/b/", "a/b/", true},
    {"a/b", " a/b", false},
    {"a/b", "a/b ", false},
    {"caf\xc3\xa9", "cafe\xcc\x81", false},
    {"caf\xc3\xa9", "caf\xc3\xa9", true},
    {"sport/tennis/player1", "sport/tennis/player1", true},
    {"sport/tennis/player1", "sport/tennis/player", false},
    {"sport/tennis/player", "sport/tennis/player1", false},
};

#define NCASES (sizeof(match_table) / sizeof(match_table[0]))

static void test_match_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const struct match_case *c = &match_table[i];
        if (topic_match(S(c->filter), S(c->name)) != c->match)
            fail_msg("topic_match(\"%s\", \"%s\") != %d", c->filter, c->name, c->match);
    }
}

static void test_match_table_tree(void **state)
{
    (void)state;
    struct hits h = {0};
    int sub = 0;
    for (size_t i = 0; i < NCASES; i++) {
        const struct match_case *c = &match_table[i];
        struct topic_tree *t = topic_tree_new();
        assert_non_null(t);
        assert_int_equal(topic_tree_subscribe(t, S(c->filter), &sub, 1), 1);
        match(t, c->name, &h);
        if (h.n != (c->match ? 1u : 0u) || topic_tree_has_match(t, S(c->name)) != c->match)
            fail_msg("tree: \"%s\" vs \"%s\": %zu hits, want %d", c->filter, c->name, h.n,
                     c->match);
        if (c->match)
            assert_ptr_equal(h.subs[0], &sub);
        topic_tree_free(t);
    }
    hits_reset(&h);
}

static void test_match_invalid_input(void **state)
{
    (void)state;
    assert_false(topic_match(S("a/#/b"), S("a/x/b")));
    assert_false(topic_match(S("a+"), S("a+")));
    assert_false(topic_match(S("a/+"), S("a/+")));
    assert_false(topic_match("", 0, S("a")));
    assert_false(topic_match(S("#"), "", 0));
    assert_false(topic_match(NULL, 0, NULL, 0));
    /* Filters and names not NUL-terminated: only len bytes count. */
    const char f[] = {'a', '/', '+', 'x'};
    const char n[] = {'a', '/', 'b', 'y'};
    assert_true(topic_match(f, 3, n, 3));
    assert_false(topic_match(f, 4, n, 4));
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
    assert_int_equal(t->root->cap, 0);
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
    const struct tnode *dev = kids_find(t->root, S("devices"), level_hash(S("devices")));
    assert_non_null(dev);
    assert_int_equal(dev->nkids, N);
    assert_true(dev->cap >= N);

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
    assert_int_equal(dev->nkids, 11); /* 10 left + "4242" for the '#' filter */
    assert_true(dev->cap <= 64);
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

/* Random filters and names over a small alphabet: the tree reports exactly what topic_match says.
 */
static void test_tree_random_vs_match(void **state)
{
    (void)state;
    enum { NF = 300, NN = 300 };
    static const char *levels[] = {"a", "b", "", "$s", "+", "#"};
    char filters[NF][32];
    char names[NN][32];
    unsigned seed = 12345;
    struct topic_tree *t = topic_tree_new();
    assert_non_null(t);
    char *subs = malloc(NF);
    assert_non_null(subs);

    for (size_t i = 0; i < NF; i++) {
        do {
            filters[i][0] = '\0';
            int depth = 1 + (int)((seed = seed * 1103515245 + 12345) >> 16) % 4;
            for (int d = 0; d < depth; d++) {
                seed = seed * 1103515245 + 12345;
                if (d)
                    strcat(filters[i], "/");
                strcat(filters[i], levels[(seed >> 16) % 6]);
            }
        } while (!topic_filter_valid(S(filters[i])));
        assert_true(topic_tree_subscribe(t, S(filters[i]), &subs[i], 0) >= 0);
    }
    for (size_t i = 0; i < NN; i++) {
        do {
            names[i][0] = '\0';
            int depth = 1 + (int)((seed = seed * 1103515245 + 12345) >> 16) % 4;
            for (int d = 0; d < depth; d++) {
                seed = seed * 1103515245 + 12345;
                if (d)
                    strcat(names[i], "/");
                strcat(names[i], levels[(seed >> 16) % 4]);
            }
        } while (!topic_name_valid(S(names[i])));
    }
    struct hits h = {0};
    size_t total = 0;
    for (size_t n = 0; n < NN; n++) {
        match(t, names[n], &h);
        size_t want = 0;
        for (size_t f = 0; f < NF; f++) {
            /* duplicate filters share one subscription per subscriber */
            bool m = topic_match(S(filters[f]), S(names[n]));
            want += m;
            if (hits_count(&h, &subs[f], NULL) != (m ? 1u : 0u))
                fail_msg("filter \"%s\" name \"%s\": want %d", filters[f], names[n], m);
        }
        assert_int_equal(h.n, want);
        assert_int_equal(topic_tree_has_match(t, S(names[n])), want > 0);
        total += want;
    }
    assert_true(total > 0);
    free(subs);
    hits_reset(&h);
    topic_tree_free(t);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test(test_name_not_nul_terminated),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_filter_valid),
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_match_table_tree),
        cmocka_unit_test(test_match_invalid_input),
        cmocka_unit_test(test_tree_subscribe_replace),
        cmocka_unit_test(test_tree_unsubscribe_prune),
        cmocka_unit_test(test_tree_overlapping),
        cmocka_unit_test(test_tree_dollar),
        cmocka_unit_test(test_tree_fanout),
        cmocka_unit_test(test_tree_many_filters),
        cmocka_unit_test(test_tree_deep),
        cmocka_unit_test(test_tree_random_vs_match),
        cmocka_unit_test(test_tree_bad_calls),
        cmocka_unit_test(test_tree_new_alloc_failure),
        cmocka_unit_test(test_tree_subscribe_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
