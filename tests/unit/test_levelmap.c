/*
 * test_levelmap.c - the child table shared by the subscription tree and the retained store.
 *
 * levelmap.c is compiled into this test with its calloc routed through a counter that can make the
 * Nth allocation fail. Children are small test items embedding a key; a reference array says what
 * the map must hold after every step, and hashes can be forced to collide to exercise probing and
 * backward-shift deletion across the end of the table.
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
#include "../../node/levelmap.c"
#undef calloc

/* ---- test children ---- */

struct item {
    int id;
    bool in;                 /* the reference: should the map hold it? */
    struct levelmap_key key; /* level bytes follow */
};
LEVELMAP_KEY_LAST(struct item, key);

static struct item *item_of(struct levelmap_key *k)
{
    return k ? (struct item *)((char *)k - offsetof(struct item, key)) : NULL;
}

/* An item for level s with its real hash, or with hash h when force is set. */
static struct item *item_new(int id, const char *s, bool force, uint32_t h)
{
    size_t n = strlen(s);
    struct item *it = malloc(sizeof(*it) + n);
    assert_non_null(it);
    it->id = id;
    it->in = false;
    levelmap_key_set(&it->key, s, n, force ? h : levelmap_hash(s, n));
    return it;
}

static struct item *find(const struct levelmap *m, const struct item *it)
{
    const char *s = levelmap_key_level(&it->key);
    return item_of(levelmap_find(m, s, it->key.len, it->key.hash));
}

static void add(struct levelmap *m, struct item *it)
{
    assert_null(find(m, it));
    assert_int_equal(levelmap_reserve(m), 0);
    levelmap_insert(m, &it->key);
    it->in = true;
}

/* The map holds exactly the items marked in, each found by its level, iteration visits each once,
 * and the load stays at most 3/4. */
static void check(const struct levelmap *m, struct item **items, size_t n)
{
    size_t in = 0;
    for (size_t i = 0; i < n; i++) {
        struct item *got = find(m, items[i]);
        if (items[i]->in) {
            in++;
            assert_ptr_equal(got, items[i]);
        } else {
            assert_null(got);
        }
    }
    assert_int_equal(m->count, in);
    size_t seen = 0;
    uint32_t pos = 0;
    struct levelmap_key *k;
    while ((k = levelmap_next(m, &pos)) != NULL) {
        struct item *it = item_of(k);
        assert_true(it->in);
        it->in = false; /* mark visited; restored below */
        seen++;
    }
    assert_int_equal(seen, in);
    pos = 0;
    while ((k = levelmap_next(m, &pos)) != NULL)
        item_of(k)->in = true;
    if (m->cap > 1) {
        assert_int_equal(m->cap & (m->cap - 1), 0);
        assert_true((uint64_t)m->count * 4 <= (uint64_t)m->cap * 3);
    }
}

/* Items 0..n-1 named by fmt (a "%d" format) with their real hashes. */
static void items_make(struct item **items, int n, const char *fmt)
{
    char buf[32];
    for (int i = 0; i < n; i++) {
        snprintf(buf, sizeof(buf), fmt, i);
        items[i] = item_new(i, buf, false, 0);
    }
}

static void items_free(struct item **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(items[i]);
}

/* ---- tests ---- */

static void test_empty(void **state)
{
    (void)state;
    struct levelmap m = {0};
    assert_null(levelmap_find(&m, "a", 1, levelmap_hash("a", 1)));
    assert_null(levelmap_find(&m, "", 0, levelmap_hash("", 0)));
    uint32_t pos = 0;
    assert_null(levelmap_next(&m, &pos));
    levelmap_clear(&m);
    assert_int_equal(m.cap, 0);
    /* reserved but nothing inserted: still empty */
    assert_int_equal(levelmap_reserve(&m), 0);
    assert_int_equal(m.cap, 1);
    assert_null(levelmap_find(&m, "a", 1, levelmap_hash("a", 1)));
    pos = 0;
    assert_null(levelmap_next(&m, &pos));
    levelmap_clear(&m);
}

/* One child is held inline, with no allocation; a second moves both into a table of 4. */
static void test_inline_then_table(void **state)
{
    (void)state;
    struct levelmap m = {0};
    struct item *items[3] = {item_new(0, "devices", false, 0), item_new(1, "", false, 0),
                             item_new(2, "device", false, 0)};
    alloc_budget = 0; /* the inline child needs no memory */
    add(&m, items[0]);
    alloc_budget = -1;
    assert_int_equal(m.cap, 1);
    check(&m, items, 3);
    /* same bytes but shorter, and same hash but other bytes, are other levels */
    assert_null(levelmap_find(&m, "device", 6, items[0]->key.hash));
    assert_null(levelmap_find(&m, "devicez", 7, items[0]->key.hash));

    add(&m, items[1]); /* the empty level ("/a" has one) */
    assert_int_equal(m.cap, 4);
    add(&m, items[2]);
    check(&m, items, 3);
    assert_int_equal(levelmap_key_level(&items[0]->key)[0], 'd');

    levelmap_remove(&m, &items[1]->key);
    items[1]->in = false;
    levelmap_remove(&m, &items[0]->key);
    items[0]->in = false;
    check(&m, items, 3);
    levelmap_remove(&m, &items[2]->key);
    items[2]->in = false;
    assert_int_equal(m.cap, 0); /* the last removal frees the table */
    check(&m, items, 3);
    /* and the inline child works again after that */
    add(&m, items[2]);
    assert_int_equal(m.cap, 1);
    check(&m, items, 3);
    levelmap_remove(&m, &items[2]->key);
    assert_int_equal(m.cap, 0);
    levelmap_clear(&m);
    items_free(items, 3);
}

/* Many children: the table doubles as it fills, then shrinks as they go. */
static void test_grow_and_shrink(void **state)
{
    (void)state;
    enum { N = 5000 };
    struct levelmap m = {0};
    struct item **items = malloc(N * sizeof(*items));
    assert_non_null(items);
    items_make(items, N, "%d");
    uint32_t lastcap = 0;
    for (int i = 0; i < N; i++) {
        add(&m, items[i]);
        assert_true(m.cap >= lastcap);
        lastcap = m.cap;
        if (i % 499 == 0)
            check(&m, items, N);
    }
    check(&m, items, N);
    /* the smallest power of two that keeps the load at most 3/4 */
    assert_true((uint64_t)N * 4 <= (uint64_t)m.cap * 3);
    assert_true((uint64_t)N * 4 > (uint64_t)(m.cap / 2) * 3);

    for (int i = 0; i < N; i++) {
        if (i % 1000 == 7)
            continue;
        levelmap_remove(&m, &items[i]->key);
        items[i]->in = false;
        if (i % 499 == 0)
            check(&m, items, N);
    }
    check(&m, items, N);
    assert_int_equal(m.count, 5);
    assert_true(m.cap <= 64);
    levelmap_clear(&m);
    assert_int_equal(m.count, 0);
    items_free(items, N);
    free(items);
}

/* Forced hashes: long probe chains, chains that wrap past the end of the table, and entries that
 * must (or must not) move back when a hole opens, under random inserts and removals. */
static void test_collisions_random(void **state)
{
    (void)state;
    enum { N = 200 };
    struct levelmap m = {0};
    struct item *items[N];
    char buf[32];
    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof(buf), "k%d", i);
        /* few distinct hashes, many at the top of any power-of-two table (wrap-around) */
        uint32_t h = (i % 3 == 0) ? 0xffffffffu - (uint32_t)(i % 5) : (uint32_t)(i % 7);
        items[i] = item_new(i, buf, true, h);
    }
    unsigned seed = 7;
    for (int step = 0; step < 4000; step++) {
        seed = seed * 1103515245u + 12345u;
        struct item *it = items[(seed >> 16) % N];
        if (it->in) {
            levelmap_remove(&m, &it->key);
            it->in = false;
        } else {
            add(&m, it);
        }
        check(&m, items, N);
    }
    levelmap_clear(&m);
    items_free(items, N);
}

/* levelmap_slot + levelmap_next from the next slot gives the children after one, in slot order
 * (how retain.c steps a '+' level to the next sibling). */
static void test_iterate_from_slot(void **state)
{
    (void)state;
    enum { N = 40 };
    struct levelmap m = {0};
    struct item *items[N];
    items_make(items, N, "level-%d");
    for (int i = 0; i < N; i++) {
        add(&m, items[i]);
    }
    struct levelmap_key *order[N];
    uint32_t pos = 0;
    size_t n = 0;
    struct levelmap_key *k;
    while ((k = levelmap_next(&m, &pos)) != NULL) {
        assert_true(n < N);
        order[n++] = k;
    }
    assert_int_equal(n, N);
    for (size_t i = 0; i < N; i++) {
        pos = levelmap_slot(&m, order[i]) + 1;
        k = levelmap_next(&m, &pos);
        assert_ptr_equal(k, i + 1 < N ? order[i + 1] : NULL);
    }
    levelmap_clear(&m);
    items_free(items, N);
}

/* A failed reserve changes nothing: not when leaving the inline child, not when doubling. A failed
 * shrink on remove still removes. */
static void test_alloc_failure(void **state)
{
    (void)state;
    enum { N = 200 };
    struct levelmap m = {0};
    struct item *items[N];
    items_make(items, N, "x%d");
    add(&m, items[0]);
    for (int i = 1; i < N; i++) {
        uint32_t cap = m.cap;
        alloc_budget = 0;
        int rc = levelmap_reserve(&m);
        alloc_budget = -1;
        bool grows = cap == 1 || (uint64_t)(m.count + 1) * 4 > (uint64_t)cap * 3;
        assert_int_equal(rc, grows ? -1 : 0);
        assert_int_equal(m.cap, cap);
        check(&m, items, N);
        add(&m, items[i]);
    }
    check(&m, items, N);
    uint32_t cap = m.cap;
    alloc_budget = 0;
    for (int i = 0; i < N - 3; i++) {
        levelmap_remove(&m, &items[i]->key);
        items[i]->in = false;
    }
    alloc_budget = -1;
    assert_int_equal(m.cap, cap); /* could not shrink */
    check(&m, items, N);
    levelmap_remove(&m, &items[N - 3]->key); /* now it can */
    items[N - 3]->in = false;
    assert_true(m.cap < cap);
    check(&m, items, N);
    levelmap_clear(&m);
    items_free(items, N);
}

/* The low bits index the table, so sequential levels ("0", "1", ...) must spread over them. */
static void test_hash_spread(void **state)
{
    (void)state;
    enum { B = 64, N = B * 100 };
    unsigned buckets[B] = {0};
    char buf[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(buf, sizeof(buf), "%d", i);
        buckets[levelmap_hash(buf, (size_t)n) & (B - 1)]++;
    }
    for (int b = 0; b < B; b++) {
        assert_true(buckets[b] > 50);
        assert_true(buckets[b] < 150);
    }
    assert_int_not_equal(levelmap_hash("a", 1), levelmap_hash("b", 1));
    assert_int_not_equal(levelmap_hash("", 0), levelmap_hash("a", 1));
}

/* Splitting a topic into levels: empty levels, a leading and a trailing '/', length not NUL. */
static void test_level_split(void **state)
{
    (void)state;
    const char *t = "a//bc/";
    size_t len = strlen(t);
    static const size_t ends[] = {1, 2, 5, 6}; /* "a", "", "bc", "" */
    size_t pos = 0;
    for (size_t i = 0; i < 4; i++) {
        size_t end = levelmap_level_end(t, pos, len);
        assert_int_equal(end, ends[i]);
        assert_int_equal(levelmap_level_start(t, end), pos);
        pos = end + 1;
    }
    assert_int_equal(levelmap_level_end("/x", 0, 2), 0);
    assert_int_equal(levelmap_level_end("ab/c", 0, 2), 2); /* only len bytes count */
    assert_int_equal(levelmap_level_end("ab", 2, 2), 2);   /* at the end: an empty last level */
    assert_int_equal(levelmap_level_start("ab", 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_inline_then_table),
        cmocka_unit_test(test_grow_and_shrink),
        cmocka_unit_test(test_collisions_random),
        cmocka_unit_test(test_iterate_from_slot),
        cmocka_unit_test(test_alloc_failure),
        cmocka_unit_test(test_hash_spread),
        cmocka_unit_test(test_level_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
