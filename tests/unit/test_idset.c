/*
 * test_idset.c - packet id sets: add/has/del against a reference over the whole id space, a
 * window of in-flight ids wrapping past 65535 (runs wrapping past the end of the table), iteration,
 * and a failed allocation leaving the set as it was.
 *
 * idset.c is compiled in with its calloc routed through alloc_fail.h's counter.
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
#include "../../node/idset.c"
#undef calloc

/* The set holds exactly the ids in[] marks, iteration gives each once, load at most 1/2. */
static void check(const struct idset *s, const bool *in)
{
    uint32_t held = 0;
    for (uint32_t id = 1; id <= 65535; id++) {
        assert_int_equal(idset_has(s, (uint16_t)id), in[id]);
        held += in[id];
    }
    assert_int_equal(s->n, held);
    assert_false(idset_has(s, 0));
    static bool seen[65536];
    memset(seen, 0, sizeof(seen));
    uint32_t pos = 0, count = 0;
    uint16_t id;
    while ((id = idset_next(s, &pos)) != 0) {
        assert_true(in[id]);
        assert_false(seen[id]);
        seen[id] = true;
        count++;
    }
    assert_int_equal(count, held);
    if (s->cap)
        assert_true((uint64_t)s->n * 2 <= s->cap);
}

/* Random ids, many colliding on their low bits, added and removed against a reference. */
static void test_random_vs_reference(void **state)
{
    (void)state;
    static bool in[65536];
    memset(in, 0, sizeof(in));
    struct idset s = {0};
    check(&s, in);
    unsigned seed = 99;
    for (int step = 0; step < 30000; step++) {
        seed = seed * 1103515245u + 12345u;
        /* a few low-bit patterns over the whole range: long runs in any table size */
        uint16_t id = (uint16_t)(((seed >> 8) & 0xff00) | ((seed >> 20) & 7));
        if (id == 0)
            continue;
        if (in[id]) {
            idset_del(&s, id);
        } else {
            assert_int_equal(idset_add(&s, id), 0);
        }
        in[id] = !in[id];
        if (step % 1500 == 0)
            check(&s, in);
    }
    check(&s, in);
    /* adding an id already held, removing one not held: no change */
    uint32_t pos = 0;
    uint16_t held = idset_next(&s, &pos), absent = 1;
    assert_int_not_equal(held, 0);
    while (in[absent])
        absent++;
    uint32_t n = s.n;
    assert_int_equal(idset_add(&s, held), 0);
    idset_del(&s, absent);
    assert_int_equal(s.n, n);
    check(&s, in);
    idset_clear(&s);
    assert_int_equal(s.n, 0);
    assert_null(s.slots);
    assert_false(idset_has(&s, 7));
}

/* The way a session uses it: a window of 100 ids sliding through the id space and past 65535. */
static void test_window_wraps(void **state)
{
    (void)state;
    static bool in[65536];
    memset(in, 0, sizeof(in));
    struct idset s = {0};
    uint16_t next = 65400;
    for (int k = 0; k < 100; k++) {
        assert_int_equal(idset_add(&s, next), 0);
        in[next] = true;
        next = next == 65535 ? 1 : next + 1;
    }
    uint16_t old = 65400;
    for (int k = 0; k < 400; k++) {
        assert_true(idset_has(&s, old));
        idset_del(&s, old);
        in[old] = false;
        old = old == 65535 ? 1 : old + 1;
        assert_int_equal(idset_add(&s, next), 0);
        in[next] = true;
        next = next == 65535 ? 1 : next + 1;
        if (k % 50 == 0)
            check(&s, in);
    }
    check(&s, in);
    idset_clear(&s);
}

/* No memory: the add fails with -1 and the set is unchanged; nothing is allocated for a re-add. */
static void test_alloc_failure(void **state)
{
    (void)state;
    static bool in[65536];
    memset(in, 0, sizeof(in));
    struct idset s = {0};
    alloc_budget = 0;
    assert_int_equal(idset_add(&s, 5), -1);
    alloc_budget = -1;
    assert_null(s.slots);
    check(&s, in);
    for (uint16_t id = 1; id <= 40; id++) {
        if ((uint64_t)(s.n + 1) * 2 > s.cap) {
            uint16_t *before = s.slots;
            alloc_budget = 0;
            assert_int_equal(idset_add(&s, id), -1);
            alloc_budget = -1;
            assert_ptr_equal(s.slots, before);
            check(&s, in);
        }
        assert_int_equal(idset_add(&s, id), 0);
        in[id] = true;
    }
    check(&s, in);
    idset_clear(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_vs_reference),
        cmocka_unit_test(test_window_wraps),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
