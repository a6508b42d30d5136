/*
 * test_hashtab.c - the one open-addressing core (hashtab.h) on a test slot type whose hash the test
 * chooses: heavy insert/delete churn checked against a reference after every step, exact slot
 * positions after a backward shift (across the end of the table too), growth under the load limit,
 * the capacity cap, and allocation failure leaving the table as it was.
 *
 * hashtab.h is included with its calloc routed through alloc_fail.h's counter.
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
#include "../../node/hashtab.h"
#undef calloc

/* ---- a test slot: a key (0 = empty) and the hash the test gives it ---- */

struct tslot {
    uint32_t key;
    uint32_t hash;
};

static bool tslot_empty(const void *slot)
{
    return ((const struct tslot *)slot)->key == 0;
}

static size_t tslot_hash(const void *slot)
{
    return ((const struct tslot *)slot)->hash;
}

static bool tslot_match(const void *slot, const void *key)
{
    return ((const struct tslot *)slot)->key == *(const uint32_t *)key;
}

static const struct hashtab_type ttype = {
    .slot_size = sizeof(struct tslot),
    .empty = tslot_empty,
    .hash = tslot_hash,
    .load_num = 3,
    .load_den = 4,
    .min_cap = 4,
};

struct table {
    struct tslot *slots;
    size_t cap, count;
};

/* Index of key (with hash h) or of the empty slot where it would go. */
static size_t tfind(const struct table *t, uint32_t key, uint32_t h)
{
    return hashtab_find(&ttype, t->slots, t->cap, h, tslot_match, &key);
}

static bool thas(const struct table *t, uint32_t key, uint32_t h)
{
    return t->cap && t->slots[tfind(t, key, h)].key == key;
}

static void tput(struct table *t, uint32_t key, uint32_t h)
{
    size_t cap = hashtab_reserve(&ttype, (void **)&t->slots, t->cap, t->count, SIZE_MAX);
    assert_true(cap > 0);
    t->cap = cap;
    struct tslot s = {key, h};
    assert_false(thas(t, key, h));
    hashtab_place(&ttype, t->slots, t->cap, &s);
    t->count++;
}

static void tdel(struct table *t, uint32_t key, uint32_t h)
{
    size_t i = tfind(t, key, h);
    assert_int_equal(t->slots[i].key, key);
    hashtab_remove_at(&ttype, t->slots, t->cap, i);
    t->count--;
}

/* The table holds exactly the keys in[] says, each found from its home, iteration visits each
 * full slot once, no entry sits behind an empty slot on its way from home (what backward shift
 * keeps), and the load stays within 3/4. */
static void tcheck(const struct table *t, const bool *in, const uint32_t *hash, uint32_t n)
{
    size_t held = 0;
    for (uint32_t k = 1; k <= n; k++) {
        assert_int_equal(thas(t, k, hash[k]), in[k]);
        held += in[k];
    }
    assert_int_equal(t->count, held);
    size_t seen = 0;
    for (size_t i = hashtab_next(&ttype, t->slots, t->cap, 0); i < t->cap;
         i = hashtab_next(&ttype, t->slots, t->cap, i + 1)) {
        const struct tslot *s = &t->slots[i];
        assert_true(s->key >= 1 && s->key <= n && in[s->key]);
        assert_int_equal(s->hash, hash[s->key]);
        size_t mask = t->cap - 1;
        for (size_t j = s->hash & mask; j != i; j = (j + 1) & mask)
            assert_false(tslot_empty(&t->slots[j]));
        seen++;
    }
    assert_int_equal(seen, held);
    if (t->cap) {
        assert_int_equal(t->cap & (t->cap - 1), 0);
        assert_true((uint64_t)t->count * 4 <= (uint64_t)t->cap * 3);
    }
}

/* ---- tests ---- */

/* Random inserts and deletes against a reference, with hashes drawn from few values (long probe
 * runs, many at the top of the table so runs wrap past its end) and from many. */
static void test_churn_vs_reference(void **state)
{
    (void)state;
    enum { N = 300 };
    for (int variant = 0; variant < 2; variant++) {
        struct table t = {0};
        bool in[N + 1] = {false};
        uint32_t hash[N + 1];
        unsigned seed = 12345u + (unsigned)variant;
        for (uint32_t k = 1; k <= N; k++) {
            seed = seed * 1103515245u + 12345u;
            hash[k] = variant == 0 ? (k % 3 ? 0xffffffffu - k % 4 : k % 5) : seed >> 8;
        }
        for (int step = 0; step < 20000; step++) {
            seed = seed * 1103515245u + 12345u;
            uint32_t k = 1 + (seed >> 16) % N;
            if (in[k])
                tdel(&t, k, hash[k]);
            else
                tput(&t, k, hash[k]);
            in[k] = !in[k];
            if (step % 7 == 0 || step > 19900)
                tcheck(&t, in, hash, N);
        }
        free(t.slots);
    }
}

/* Exact positions after a removal in a table of 8: an entry whose home lies between the hole and
 * where it sits stays; one whose home is at or before the hole moves back; runs wrap at the end. */
static void test_backward_shift_positions(void **state)
{
    (void)state;
    struct tslot *slots = calloc(8, sizeof(*slots));
    assert_non_null(slots);
    /* key: home -> slot. 1:6->6, 2:6->7, 3:7->0 (wraps), 4:0->1, 5:1->2 */
    uint32_t homes[] = {0, 6, 6, 7, 0, 1};
    for (uint32_t k = 1; k <= 5; k++) {
        struct tslot s = {k, homes[k]};
        hashtab_place(&ttype, slots, 8, &s);
    }
    uint32_t before[8] = {3, 4, 5, 0, 0, 0, 1, 2};
    for (int i = 0; i < 8; i++)
        assert_int_equal(slots[i].key, before[i]);

    /* Remove 1 (slot 6): 2 (home 6) moves to 6, 3 (home 7) to 7, 4 (home 0) to 0, 5 (home 1) to
     * 1; slot 2 is left empty. */
    hashtab_remove_at(&ttype, slots, 8, 6);
    uint32_t after1[8] = {4, 5, 0, 0, 0, 0, 2, 3};
    for (int i = 0; i < 8; i++)
        assert_int_equal(slots[i].key, after1[i]);

    /* Remove 2 (slot 6): 3 (home 7), 4 and 5 sit at their homes and must not move back. */
    hashtab_remove_at(&ttype, slots, 8, 6);
    uint32_t after2[8] = {4, 5, 0, 0, 0, 0, 0, 3};
    for (int i = 0; i < 8; i++)
        assert_int_equal(slots[i].key, after2[i]);

    /* An entry skipped over: 6 (hash 8, home 0) goes to 2; removing 4 (slot 0) must move 6 past 5
     * (at its home 1) into the hole at 0. */
    struct tslot six = {6, 8};
    assert_int_equal(hashtab_place(&ttype, slots, 8, &six), 2);
    hashtab_remove_at(&ttype, slots, 8, 0);
    uint32_t after3[8] = {6, 5, 0, 0, 0, 0, 0, 3};
    for (int i = 0; i < 8; i++)
        assert_int_equal(slots[i].key, after3[i]);
    assert_int_equal(slots[2].hash, 0); /* the freed slot is zeroed whole */
    free(slots);
}

/* The first table is min_cap slots, then it doubles exactly when the next entry would pass 3/4;
 * a cap beyond max_cap is refused with the table unchanged. */
static void test_growth_and_cap(void **state)
{
    (void)state;
    struct table t = {0};
    assert_int_equal(hashtab_reserve(&ttype, (void **)&t.slots, 0, 0, SIZE_MAX), 4);
    free(t.slots);
    t.slots = NULL;
    size_t lastcap = 0;
    for (uint32_t k = 1; k <= 1000; k++) {
        bool full = (uint64_t)t.count * 4 + 4 > (uint64_t)t.cap * 3;
        tput(&t, k, k * 2654435761u);
        assert_int_equal(t.cap, full ? (lastcap ? lastcap * 2 : 4) : lastcap);
        lastcap = t.cap;
    }
    assert_int_equal(t.cap, 2048); /* 1000 > 3/4 of 1024 */
    for (uint32_t k = 1; k <= 1000; k++)
        assert_true(thas(&t, k, k * 2654435761u));

    /* capped: 1536 entries fit 2048 slots, the next needs 4096 > max */
    struct table c = {0};
    for (uint32_t k = 1; k <= 1536; k++) {
        size_t cap = hashtab_reserve(&ttype, (void **)&c.slots, c.cap, c.count, 2048);
        assert_true(cap > 0);
        c.cap = cap;
        struct tslot s = {k, k};
        hashtab_place(&ttype, c.slots, c.cap, &s);
        c.count++;
    }
    struct tslot *before = c.slots;
    assert_int_equal(hashtab_reserve(&ttype, (void **)&c.slots, c.cap, c.count, 2048), 0);
    assert_ptr_equal(c.slots, before);
    assert_int_equal(c.cap, 2048);
    free(c.slots);

    /* a rehash into fewer slots (a shrink) keeps every entry */
    for (uint32_t k = 1; k <= 990; k++)
        tdel(&t, k, k * 2654435761u);
    struct tslot *small = hashtab_rehash(&ttype, t.slots, t.cap, 16);
    assert_non_null(small);
    free(t.slots);
    t.slots = small;
    t.cap = 16;
    bool in[1001] = {false};
    uint32_t hash[1001];
    for (uint32_t k = 1; k <= 1000; k++) {
        in[k] = k > 990;
        hash[k] = k * 2654435761u;
    }
    tcheck(&t, in, hash, 1000);
    free(t.slots);
}

/* A failed allocation while growing: 0, the old table still in place and every entry found; the
 * next try with memory succeeds. */
static void test_alloc_failure(void **state)
{
    (void)state;
    enum { N = 200 };
    struct table t = {0};
    bool in[N + 1] = {false};
    uint32_t hash[N + 1];
    alloc_budget = 0;
    assert_int_equal(hashtab_reserve(&ttype, (void **)&t.slots, 0, 0, SIZE_MAX), 0);
    alloc_budget = -1;
    assert_null(t.slots);
    for (uint32_t k = 1; k <= N; k++) {
        hash[k] = k % 9;
        if (hashtab_full(&ttype, t.count, t.cap)) {
            struct tslot *before = t.slots;
            alloc_budget = 0;
            assert_int_equal(hashtab_reserve(&ttype, (void **)&t.slots, t.cap, t.count, SIZE_MAX),
                             0);
            alloc_budget = -1;
            assert_ptr_equal(t.slots, before);
            tcheck(&t, in, hash, N);
        }
        tput(&t, k, hash[k]);
        in[k] = true;
    }
    tcheck(&t, in, hash, N);
    alloc_budget = 0;
    assert_null(hashtab_rehash(&ttype, t.slots, t.cap, t.cap * 2));
    alloc_budget = -1;
    tcheck(&t, in, hash, N);
    free(t.slots);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_churn_vs_reference),
        cmocka_unit_test(test_backward_shift_positions),
        cmocka_unit_test(test_growth_and_cap),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
