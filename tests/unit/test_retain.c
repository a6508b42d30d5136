/*
 * test_retain.c - the retained-message store.
 *
 * retain.c and levelmap.c are compiled into this test with their allocator calls routed through a
 * counter that can make the Nth allocation fail, so allocation failure paths are tested without any
 * hook in the library. Values are small counted objects: the release callback counts per value, so
 * "released exactly once" is checked for every value.
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

#define malloc(n) fail_malloc(n)
#define calloc(a, b) fail_calloc(a, b)
#define realloc(p, n) fail_realloc(p, n)
#include "../../node/levelmap.c"
#include "../../node/retain.c"
#undef malloc
#undef calloc
#undef realloc

#include "topic.h"

#define S(x) (x), strlen(x)

/* ---- counted values ---- */

struct val {
    int released;
};

static size_t releases;

static void val_release(void *v)
{
    ((struct val *)v)->released++;
    releases++;
}

/* ---- visit collection ---- */

struct seen {
    size_t n;
    char topics[512][64];
    void *values[512];
};

static void seen_add(const char *topic, size_t len, void *value, void *ctx)
{
    struct seen *s = ctx;
    assert_int_equal(strlen(topic), len); /* NUL-terminated at len */
    assert_true(len < sizeof(s->topics[0]));
    assert_true(s->n < sizeof(s->values) / sizeof(s->values[0]));
    memcpy(s->topics[s->n], topic, len + 1);
    s->values[s->n] = value;
    s->n++;
}

static bool seen_has(const struct seen *s, const char *topic)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->topics[i], topic) == 0)
            return true;
    return false;
}

static void rmatch(const struct retain_store *st, const char *filter, struct seen *s)
{
    s->n = 0;
    retain_match(st, filter, strlen(filter), seen_add, s);
}

static size_t rnode_count(const struct rnode *n)
{
    size_t c = 1;
    uint32_t pos = 0;
    struct levelmap_key *k;
    while ((k = levelmap_next(&n->kids, &pos)) != NULL)
        c += rnode_count(rnode_of(k));
    return c;
}

/* Free the test's store, so release counts can be checked at the end of the test. */
static void store_done(void **state)
{
    retain_free(*state);
    *state = NULL;
}

static int setup(void **state)
{
    releases = 0;
    alloc_budget = -1;
    *state = retain_new(val_release);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    retain_free(*state);
    return 0;
}

/* ---- tests ---- */

static void test_set_get_replace_clear(void **state)
{
    struct retain_store *st = *state;
    static struct val a = {0}, b = {0}, c = {0};

    assert_null(retain_get(st, S("x/y")));
    assert_int_equal(retain_set(st, S("x/y"), &a), 0);
    assert_ptr_equal(retain_get(st, S("x/y")), &a);
    assert_null(retain_get(st, S("x")));
    assert_null(retain_get(st, S("x/y/z")));
    assert_null(retain_get(st, S("X/y")));
    assert_int_equal(retain_count(st), 1);

    /* replace: the old value is released once, the new one kept */
    assert_int_equal(retain_set(st, S("x/y"), &b), 0);
    assert_ptr_equal(retain_get(st, S("x/y")), &b);
    assert_int_equal(a.released, 1);
    assert_int_equal(b.released, 0);
    assert_int_equal(retain_count(st), 1);

    /* a value at an inner level and one below it are independent */
    assert_int_equal(retain_set(st, S("x"), &c), 0);
    assert_int_equal(retain_count(st), 2);
    assert_ptr_equal(retain_get(st, S("x")), &c);

    /* [MQTT-3.3.1-10] clearing (a zero-byte retained message) removes it */
    assert_int_equal(retain_set(st, S("x/y"), NULL), 0);
    assert_null(retain_get(st, S("x/y")));
    assert_int_equal(b.released, 1);
    assert_int_equal(retain_count(st), 1);
    assert_ptr_equal(retain_get(st, S("x")), &c);
    /* clearing what is not there releases nothing */
    assert_int_equal(retain_set(st, S("x/y"), NULL), 0);
    assert_int_equal(retain_set(st, S("nope/nope"), NULL), 0);
    assert_int_equal(releases, 2);
    assert_int_equal(c.released, 0);

    /* invalid topic names are refused, value not taken */
    assert_int_equal(retain_set(st, S("a/+"), &a), -1);
    assert_int_equal(retain_set(st, S("#"), &a), -1);
    assert_int_equal(retain_set(st, "", 0, &a), -1);
    assert_int_equal(a.released, 1);
    assert_null(retain_get(st, S("a/+")));
    assert_int_equal(retain_count(st), 1);
    store_done(state);
    assert_int_equal(c.released, 1);
    assert_int_equal(releases, 3);
}

static void test_prune(void **state)
{
    struct retain_store *st = *state;
    static struct val v[4] = {{0}};
    assert_int_equal(retain_set(st, S("a/b/c/d"), &v[0]), 0);
    assert_int_equal(retain_set(st, S("a/b"), &v[1]), 0);
    assert_int_equal(retain_set(st, S("a/x"), &v[2]), 0);
    assert_int_equal(rnode_count(st->root), 6);
    assert_int_equal(retain_set(st, S("a/b/c/d"), NULL), 0);
    assert_int_equal(rnode_count(st->root), 4); /* c, d pruned; b keeps its value */
    assert_int_equal(retain_set(st, S("a/b"), NULL), 0);
    assert_int_equal(retain_set(st, S("a/x"), NULL), 0);
    assert_int_equal(rnode_count(st->root), 1);
    assert_int_equal(st->root->kids.cap, 0);
    assert_int_equal(retain_count(st), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(v[i].released, 1);
}

static void test_match_basic(void **state)
{
    struct retain_store *st = *state;
    static const char *topics[] = {
        "sport",
        "sport/tennis",
        "sport/tennis/player1",
        "sport/tennis/player1/ranking",
        "sport/golf",
        "sport/",
        "/finance",
        "finance",
        "$SYS/uptime",
        "$SYS/load/1min",
        "a/$b/c",
        "Sport",
        "sport/tennis/",
        "sport/tennis/player2",
    };
    enum { NT = sizeof(topics) / sizeof(topics[0]) };
    static struct val v[NT];
    memset(v, 0, sizeof(v));
    for (size_t i = 0; i < NT; i++)
        assert_int_equal(retain_set(st, S(topics[i]), &v[i]), 0);
    assert_int_equal(retain_count(st), NT);

    struct seen *s = calloc(1, sizeof(*s));
    assert_non_null(s);

    /* '#' includes the parent level [MQTT-4.7.1-2] */
    rmatch(st, "sport/#", s);
    assert_int_equal(s->n, 8);
    assert_true(seen_has(s, "sport"));
    assert_true(seen_has(s, "sport/"));
    assert_true(seen_has(s, "sport/tennis/"));
    assert_false(seen_has(s, "Sport"));

    rmatch(st, "sport/tennis/+", s);
    assert_int_equal(s->n, 3);
    assert_true(seen_has(s, "sport/tennis/player1"));
    assert_true(seen_has(s, "sport/tennis/player2"));
    assert_true(seen_has(s, "sport/tennis/"));

    rmatch(st, "sport/+", s);
    assert_int_equal(s->n, 3); /* tennis golf "" */
    assert_true(seen_has(s, "sport/"));

    rmatch(st, "+/+", s);
    assert_int_equal(s->n, 4); /* sport/tennis sport/golf sport/ /finance */
    assert_true(seen_has(s, "/finance"));
    assert_false(seen_has(s, "$SYS/uptime")); /* [MQTT-4.7.2-1] */

    rmatch(st, "+", s);
    assert_int_equal(s->n, 3); /* sport finance Sport */

    /* [MQTT-4.7.2-1] leading wildcards skip '$' topics, explicit '$SYS' does not */
    rmatch(st, "#", s);
    assert_int_equal(s->n, NT - 2);
    assert_false(seen_has(s, "$SYS/uptime"));
    assert_true(seen_has(s, "a/$b/c"));
    rmatch(st, "$SYS/#", s);
    assert_int_equal(s->n, 2);
    rmatch(st, "$SYS/+", s);
    assert_int_equal(s->n, 1);
    assert_true(seen_has(s, "$SYS/uptime"));
    rmatch(st, "+/uptime", s);
    assert_int_equal(s->n, 0);
    rmatch(st, "a/+/c", s);
    assert_int_equal(s->n, 1);

    /* exact filters */
    rmatch(st, "sport/tennis/player1", s);
    assert_int_equal(s->n, 1);
    assert_ptr_equal(s->values[0], &v[2]);
    rmatch(st, "sport/tennis/player3", s);
    assert_int_equal(s->n, 0);

    /* invalid filters visit nothing */
    rmatch(st, "sport/#/x", s);
    assert_int_equal(s->n, 0);
    rmatch(st, "", s);
    assert_int_equal(s->n, 0);
    retain_match(st, S("#"), NULL, NULL);

    /* foreach visits everything, '$' topics included */
    s->n = 0;
    retain_foreach(st, seen_add, s);
    assert_int_equal(s->n, NT);
    for (size_t i = 0; i < NT; i++)
        assert_true(seen_has(s, topics[i]));
    free(s);
    assert_int_equal(releases, 0);
    store_done(state);
    for (size_t i = 0; i < NT; i++)
        assert_int_equal(v[i].released, 1);
}

/* [MQTT-4.7.2-1] with only '$' topics at the first level, leading wildcards find nothing. */
static void test_dollar_only(void **state)
{
    struct retain_store *st = *state;
    static struct val v[2] = {{0}};
    struct seen *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    assert_int_equal(retain_set(st, S("$SYS/x"), &v[0]), 0);
    rmatch(st, "+/x", s);
    assert_int_equal(s->n, 0);
    rmatch(st, "+/+", s);
    assert_int_equal(s->n, 0);
    rmatch(st, "#", s);
    assert_int_equal(s->n, 0);
    rmatch(st, "+/#", s);
    assert_int_equal(s->n, 0);
    rmatch(st, "$SYS/+", s);
    assert_int_equal(s->n, 1);
    assert_int_equal(retain_set(st, S("$"), &v[1]), 0);
    rmatch(st, "+", s);
    assert_int_equal(s->n, 0);
    rmatch(st, "$", s);
    assert_int_equal(s->n, 1);
    rmatch(st, "$/#", s);
    assert_int_equal(s->n, 1);
    free(s);
    store_done(state);
    assert_int_equal(v[0].released, 1);
    assert_int_equal(v[1].released, 1);
}

/* Random topics and filters: retain_match visits exactly the topics topic_match accepts. */
static void test_match_random_vs_topic_match(void **state)
{
    struct retain_store *st = *state;
    enum { NT = 200, NF = 400 };
    static const char *levels[] = {"a", "b", "", "$s", "+", "#"};
    char topics[NT][32];
    static struct val v[NT];
    memset(v, 0, sizeof(v));
    unsigned seed = 777;
    size_t stored = 0;
    for (size_t i = 0; i < NT; i++) {
        do {
            topics[i][0] = '\0';
            int depth = 1 + (int)((seed = seed * 1103515245 + 12345) >> 16) % 4;
            for (int d = 0; d < depth; d++) {
                seed = seed * 1103515245 + 12345;
                if (d)
                    strcat(topics[i], "/");
                strcat(topics[i], levels[(seed >> 16) % 4]);
            }
        } while (!topic_name_valid(S(topics[i])));
        if (retain_get(st, S(topics[i])) == NULL)
            stored++;
        assert_int_equal(retain_set(st, S(topics[i]), &v[i]), 0);
    }
    assert_int_equal(retain_count(st), stored);

    struct seen *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    size_t total = 0;
    for (size_t f = 0; f < NF; f++) {
        char filter[32] = "";
        int depth = 1 + (int)((seed = seed * 1103515245 + 12345) >> 16) % 4;
        for (int d = 0; d < depth; d++) {
            seed = seed * 1103515245 + 12345;
            if (d)
                strcat(filter, "/");
            strcat(filter, levels[(seed >> 16) % 6]);
        }
        if (!topic_filter_valid(S(filter))) {
            f--;
            continue;
        }
        rmatch(st, filter, s);
        size_t want = 0;
        for (size_t i = 0; i < NT; i++) {
            /* count each distinct stored topic once: the last value set under it */
            if (retain_get(st, S(topics[i])) != &v[i])
                continue;
            bool m = topic_match(S(filter), S(topics[i]));
            want += m;
            if (seen_has(s, topics[i]) != m)
                fail_msg("filter \"%s\" topic \"%s\": want %d", filter, topics[i], m);
        }
        assert_int_equal(s->n, want);
        total += want;
    }
    assert_true(total > 0);
    free(s);
    store_done(state);
    for (size_t i = 0; i < NT; i++) /* replaced or freed: once either way */
        assert_int_equal(v[i].released, 1);
}

static void test_release_exactly_once(void **state)
{
    (void)state;
    enum { N = 50 };
    static struct val v[N];
    memset(v, 0, sizeof(v));
    releases = 0;
    struct retain_store *st = retain_new(val_release);
    assert_non_null(st);
    char buf[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(buf, sizeof(buf), "t/%d/%d", i % 7, i);
        assert_int_equal(retain_set(st, buf, (size_t)n, &v[i]), 0);
    }
    /* clear the first ten: each released now, and not again when the store is freed */
    for (int i = 0; i < 10; i++) {
        int n = snprintf(buf, sizeof(buf), "t/%d/%d", i % 7, i);
        assert_int_equal(retain_set(st, buf, (size_t)n, NULL), 0);
    }
    for (int i = 0; i < 10; i++)
        assert_int_equal(v[i].released, 1);
    assert_int_equal(releases, 10);
    retain_free(st);
    for (int i = 0; i < N; i++)
        assert_int_equal(v[i].released, 1);
    assert_int_equal(releases, N);

    /* a store without a release function just drops its pointers */
    st = retain_new(NULL);
    assert_non_null(st);
    assert_int_equal(retain_set(st, S("a"), &v[0]), 0);
    assert_int_equal(retain_set(st, S("a"), &v[1]), 0);
    retain_free(st);
    retain_free(NULL);
    assert_int_equal(releases, N);
}

/* Marks visited values by index in an array of values. */
struct wide {
    struct val *base;
    unsigned char *hit;
    size_t n;
};

static void wide_visit(const char *topic, size_t len, void *value, void *ctx)
{
    struct wide *w = ctx;
    assert_int_equal(strlen(topic), len);
    w->hit[(struct val *)value - w->base]++;
    w->n++;
}

static void count_visit(const char *topic, size_t len, void *value, void *ctx)
{
    assert_int_equal(strlen(topic), len);
    assert_non_null(value);
    (*(size_t *)ctx)++;
}

static void test_large(void **state)
{
    struct retain_store *st = *state;
    enum { N = 100000 };
    struct val *v = calloc(N, sizeof(*v));
    assert_non_null(v);
    char buf[64];
    for (size_t i = 0; i < N; i++) {
        int n = snprintf(buf, sizeof(buf), "devices/%zu/state", i);
        assert_int_equal(retain_set(st, buf, (size_t)n, &v[i]), 0);
    }
    assert_int_equal(retain_count(st), N);

    /* a narrow filter visits one value */
    struct seen *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    rmatch(st, "devices/31337/state", s);
    assert_int_equal(s->n, 1);
    assert_ptr_equal(s->values[0], &v[31337]);
    rmatch(st, "devices/31337/#", s);
    assert_int_equal(s->n, 1);
    free(s);

    /* a wide one visits every value exactly once */
    unsigned char *hit = calloc(N, 1);
    assert_non_null(hit);
    struct wide w = {v, hit, 0};
    retain_match(st, S("devices/+/state"), wide_visit, &w);
    assert_int_equal(w.n, N);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(hit[i], 1);

    for (size_t i = 0; i < N; i++) {
        int n = snprintf(buf, sizeof(buf), "devices/%zu/state", i);
        assert_int_equal(retain_set(st, buf, (size_t)n, NULL), 0);
    }
    assert_int_equal(retain_count(st), 0);
    assert_int_equal(rnode_count(st->root), 1);
    assert_int_equal(releases, N);
    free(hit);
    free(v);
}

/* Deep topics: 32768 levels; matching and freeing need no stack per level. */
static void test_deep(void **state)
{
    struct retain_store *st = *state;
    size_t len = 65535;
    char *topic = malloc(len + 1);
    assert_non_null(topic);
    for (size_t i = 0; i < len; i++)
        topic[i] = (i % 2) ? '/' : 'a';
    static struct val v[2] = {{0}};
    assert_int_equal(retain_set(st, topic, len, &v[0]), 0);
    memset(topic, '/', 32767); /* 32768 empty levels */
    assert_int_equal(retain_set(st, topic, 32767, &v[1]), 0);
    size_t n = 0;
    retain_match(st, S("#"), count_visit, &n);
    assert_int_equal(n, 2);
    n = 0;
    retain_match(st, S("+/#"), count_visit, &n);
    assert_int_equal(n, 2);
    /* "+/+/.../+" with 32768 levels matches both */
    for (size_t i = 0; i < len; i++)
        topic[i] = (i % 2) ? '/' : '+';
    n = 0;
    retain_match(st, topic, len, count_visit, &n);
    assert_int_equal(n, 2);
    free(topic);
    store_done(state);
    assert_int_equal(v[0].released, 1);
    assert_int_equal(v[1].released, 1);
}

/* Fail each allocation of a set in turn: -1, value not taken, store as it was. */
static void test_alloc_failure(void **state)
{
    struct retain_store *st = *state;
    static struct val old = {0}, v = {0}, w = {0};
    char buf[32];
    assert_int_equal(retain_set(st, S("p/q"), &old), 0);
    for (int i = 0; i < 3; i++) {
        int n = snprintf(buf, sizeof(buf), "k%d", i);
        assert_int_equal(retain_set(st, buf, (size_t)n, &w), 0); /* &w stored thrice */
    }
    static const char *topics[] = {"p/q", "k9/x/y", "p/q/r/s", "new"};
    for (size_t t = 0; t < sizeof(topics) / sizeof(topics[0]); t++) {
        long n;
        for (n = 0; n < 100; n++) {
            size_t nodes = rnode_count(st->root);
            size_t count = retain_count(st);
            size_t rel = releases;
            alloc_budget = n;
            int rc = retain_set(st, S(topics[t]), &v);
            alloc_budget = -1;
            if (rc == 0)
                break;
            assert_int_equal(rc, -1);
            assert_int_equal(rnode_count(st->root), nodes);
            assert_int_equal(retain_count(st), count);
            assert_int_equal(releases, rel);
            assert_ptr_not_equal(retain_get(st, S(topics[t])), &v);
        }
        assert_true(n < 100);
        assert_ptr_equal(retain_get(st, S(topics[t])), &v);
    }
    assert_int_equal(old.released, 1); /* replaced once, by the first successful set */
    assert_int_equal(v.released, 0);

    /* clearing needs no memory */
    alloc_budget = 0;
    assert_int_equal(retain_set(st, S("k9/x/y"), NULL), 0);
    assert_null(retain_new(val_release));
    alloc_budget = 1;
    assert_null(retain_new(val_release));
    alloc_budget = -1;
    assert_int_equal(v.released, 1);
    assert_null(retain_get(st, S("k9/x/y")));
    store_done(state);
    assert_int_equal(v.released, 4); /* k9/x/y cleared, then p/q, p/q/r/s, new */
    assert_int_equal(w.released, 3);
    assert_int_equal(old.released, 1);
}

/* ---- deadlines ---- */

/* The heap is ordered, and every entry and its node name each other. */
static void due_check(const struct retain_store *st)
{
    for (size_t i = 0; i < st->ndue; i++) {
        assert_non_null(st->due[i].node->value);
        assert_int_equal(st->due[i].node->topic->due, i + 1);
        assert_true(st->due[i].at > 0);
        if (i > 0)
            assert_true(st->due[(i - 1) / 2].at <= st->due[i].at);
    }
}

struct expired {
    uint64_t now, last;
    size_t n;
    const uint64_t *deadline; /* per value, indexed from base */
    struct val *base;
};

/* Each value goes at or after its deadline, earliest first, while still held (not released). */
static void expired_visit(const char *topic, size_t len, void *value, void *ctx)
{
    struct expired *e = ctx;
    struct val *v = value;
    uint64_t at = e->deadline[v - e->base];
    assert_int_equal(strlen(topic), len);
    assert_int_equal(v->released, 0);
    assert_true(at > 0 && at <= e->now);
    assert_true(at >= e->last);
    e->last = at;
    e->n++;
}

/* Random sets (with and without deadlines), replaces and clears; then sweeps at rising times:
 * exactly the values whose deadline passed go, each once, in deadline order, and the others stay. */
static void test_expire_order(void **state)
{
    struct retain_store *st = *state;
    enum { NT = 300, OPS = 3000 };
    static struct val v[OPS];
    static uint64_t deadline[OPS];
    static int holder[NT]; /* the value index held per topic, -1 none */
    memset(v, 0, sizeof(v));
    char buf[32];
    srand(7);
    for (size_t t = 0; t < NT; t++)
        holder[t] = -1;
    for (int i = 0; i < OPS; i++) {
        size_t t = (size_t)rand() % NT;
        int n = snprintf(buf, sizeof(buf), "e/%zu/%zu", t % 13, t);
        if (rand() % 8 == 0) {
            assert_int_equal(retain_set(st, buf, (size_t)n, NULL), 0);
            holder[t] = -1;
        } else {
            deadline[i] = rand() % 3 == 0 ? 0 : 1 + (uint64_t)(rand() % 1000);
            assert_int_equal(retain_set_until(st, buf, (size_t)n, &v[i], deadline[i]), 0);
            holder[t] = i;
        }
        due_check(st);
    }
    size_t live = 0, expiring = 0;
    for (size_t t = 0; t < NT; t++)
        if (holder[t] >= 0) {
            live++;
            expiring += deadline[holder[t]] != 0;
        }
    assert_int_equal(retain_count(st), live);
    assert_int_equal(st->ndue, expiring);

    struct expired e = {0, 0, 0, deadline, v};
    for (e.now = 0; e.now <= 1000; e.now += 50) {
        size_t before = retain_count(st);
        size_t n = retain_expire(st, e.now, SIZE_MAX, expired_visit, &e);
        assert_int_equal(retain_count(st), before - n);
        due_check(st);
        for (size_t t = 0; t < NT; t++) {
            if (holder[t] < 0)
                continue;
            int k = snprintf(buf, sizeof(buf), "e/%zu/%zu", t % 13, t);
            uint64_t at = deadline[holder[t]];
            bool gone = at != 0 && at <= e.now;
            assert_ptr_equal(retain_get(st, buf, (size_t)k), gone ? NULL : &v[holder[t]]);
            assert_int_equal(v[holder[t]].released, gone ? 1 : 0);
        }
    }
    assert_int_equal(e.n, expiring);
    assert_int_equal(retain_count(st), live - expiring);
    assert_int_equal(st->ndue, 0);
    assert_true(st->due_cap <= 128); /* the heap gave its room back */
    assert_int_equal(retain_expire(st, UINT64_MAX, SIZE_MAX, expired_visit, &e), 0);
}

/* A sweep stops after max values (the rest wait for the next); a replace moves the deadline and a
 * replace without one takes the value out of the sweep; a failed set changes nothing. */
static void test_expire_limits(void **state)
{
    struct retain_store *st = *state;
    static struct val v[8];
    memset(v, 0, sizeof(v));
    assert_int_equal(retain_set_until(st, S("a/1"), &v[0], 10), 0);
    assert_int_equal(retain_set_until(st, S("a/2"), &v[1], 20), 0);
    assert_int_equal(retain_set_until(st, S("a/3"), &v[2], 30), 0);
    assert_int_equal(retain_set_until(st, S("a/2"), &v[3], 100), 0); /* later now */
    assert_int_equal(v[1].released, 1);
    assert_int_equal(retain_set(st, S("a/3"), &v[4]), 0); /* never now */
    assert_int_equal(retain_set_until(st, S("b"), &v[5], 5), 0);
    due_check(st);
    assert_int_equal(st->ndue, 3);

    assert_int_equal(retain_expire(st, 50, 1, NULL, NULL), 1); /* b first */
    assert_null(retain_get(st, S("b")));
    assert_ptr_equal(retain_get(st, S("a/1")), &v[0]);
    assert_int_equal(retain_expire(st, 50, 10, NULL, NULL), 1);
    assert_null(retain_get(st, S("a/1")));
    assert_ptr_equal(retain_get(st, S("a/2")), &v[3]);
    assert_int_equal(retain_expire(st, 99, 10, NULL, NULL), 0);
    assert_int_equal(retain_expire(st, 100, 10, NULL, NULL), 1); /* at the deadline itself */
    assert_int_equal(retain_expire(st, UINT64_MAX, 10, NULL, NULL), 0);
    assert_ptr_equal(retain_get(st, S("a/3")), &v[4]);
    assert_int_equal(retain_count(st), 1);
    assert_int_equal(rnode_count(st->root), 3); /* root, a, a/3: the expired branches pruned */

    /* the heap cannot grow: the set fails, the value is not taken, nothing changed */
    for (int i = 0; i < 64; i++) {
        char buf[16];
        int n = snprintf(buf, sizeof(buf), "f/%d", i);
        assert_int_equal(retain_set_until(st, buf, (size_t)n, &v[6], 1000 + (uint64_t)i), 0);
    }
    assert_int_equal(st->ndue, st->due_cap);
    size_t count = retain_count(st), nodes = rnode_count(st->root);
    alloc_budget = 0;
    assert_int_equal(retain_set_until(st, S("g/1"), &v[7], 5), -1);
    assert_int_equal(retain_set_until(st, S("a/3"), &v[7], 5), -1);
    alloc_budget = -1;
    assert_int_equal(retain_count(st), count);
    assert_int_equal(rnode_count(st->root), nodes);
    assert_ptr_equal(retain_get(st, S("a/3")), &v[4]);
    assert_int_equal(v[7].released, 0);
    due_check(st);
    store_done(state);
    assert_int_equal(v[6].released, 64);
    assert_int_equal(v[4].released, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_get_replace_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_match_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dollar_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_match_random_vs_topic_match, setup, teardown),
        cmocka_unit_test(test_release_exactly_once),
        cmocka_unit_test_setup_teardown(test_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire_limits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
