/*
 * test_buf.c - buf_grow, the one growable-array helper: doubling from the first block, the
 * capacity cap, size overflow, and a failed realloc leaving the caller's array as it was.
 *
 * buf.h is included with its realloc routed through alloc_fail.h's counter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc_fail.h"

#define realloc(p, n) fail_realloc(p, n)
#include "../../node/buf.h"
#undef realloc

/* Doubling from BUF_MIN_ELEMS, the contents kept across each move. */
static void test_grow_doubles_and_keeps(void **state)
{
    (void)state;
    int *v = NULL;
    size_t cap = 0;
    size_t expect[] = {4, 4, 4, 4, 8, 8, 8, 8, 16};
    for (size_t n = 0; n < 9; n++) {
        cap = buf_grow((void **)&v, cap, n + 1, sizeof(*v), SIZE_MAX);
        assert_int_equal(cap, expect[n]);
        v[n] = (int)n * 7;
    }
    for (size_t n = 0; n < 9; n++)
        assert_int_equal(v[n], (int)n * 7);
    /* a need far past the capacity doubles until it fits, in one realloc */
    alloc_budget = 1;
    cap = buf_grow((void **)&v, cap, 1000, sizeof(*v), SIZE_MAX);
    alloc_budget = -1;
    assert_int_equal(cap, 1024);
    assert_int_equal(v[8], 56);
    free(v);
}

/* Room already there: the capacity back, and no allocation at all. */
static void test_no_grow_when_room(void **state)
{
    (void)state;
    char *v = NULL;
    size_t cap = buf_grow((void **)&v, 0, 3, 1, SIZE_MAX);
    assert_int_equal(cap, 4);
    char *before = v;
    alloc_budget = 1;
    assert_int_equal(buf_grow((void **)&v, cap, 4, 1, SIZE_MAX), 4);
    assert_int_equal(buf_grow((void **)&v, cap, 0, 1, SIZE_MAX), 4);
    assert_int_equal(alloc_budget, 1);
    alloc_budget = -1;
    assert_ptr_equal(v, before);
    free(v);
}

/* max_elems caps the doubling and refuses a need past it. */
static void test_max_elems(void **state)
{
    (void)state;
    uint16_t *v = NULL;
    size_t cap = buf_grow((void **)&v, 0, 4, sizeof(*v), 6);
    assert_int_equal(cap, 4);
    cap = buf_grow((void **)&v, cap, 5, sizeof(*v), 6);
    assert_int_equal(cap, 6); /* not 8 */
    uint16_t *before = v;
    assert_int_equal(buf_grow((void **)&v, cap, 7, sizeof(*v), 6), 0);
    assert_ptr_equal(v, before);
    /* a first block larger than max_elems is cut to it */
    uint16_t *w = NULL;
    assert_int_equal(buf_grow((void **)&w, 0, 1, sizeof(*w), 2), 2);
    free(w);
    free(v);
}

/* A size that would overflow size_t is refused before realloc is asked. */
static void test_overflow(void **state)
{
    (void)state;
    char *v = NULL;
    alloc_budget = 1; /* realloc would take it */
    assert_int_equal(buf_grow((void **)&v, 0, SIZE_MAX / 8 + 1, 8, SIZE_MAX), 0);
    assert_int_equal(buf_grow((void **)&v, 0, 1, 0, SIZE_MAX), 0);
    assert_int_equal(alloc_budget, 1);
    alloc_budget = -1;
    assert_null(v);
}

/* A failed realloc: 0, and the array, its contents and its capacity are the caller's as before. */
static void test_alloc_failure(void **state)
{
    (void)state;
    int *v = NULL;
    alloc_budget = 0;
    assert_int_equal(buf_grow((void **)&v, 0, 1, sizeof(*v), SIZE_MAX), 0);
    alloc_budget = -1;
    assert_null(v);
    size_t cap = buf_grow((void **)&v, 0, 4, sizeof(*v), SIZE_MAX);
    for (int i = 0; i < 4; i++)
        v[i] = i + 1;
    int *before = v;
    alloc_budget = 0;
    assert_int_equal(buf_grow((void **)&v, cap, 5, sizeof(*v), SIZE_MAX), 0);
    alloc_budget = -1;
    assert_ptr_equal(v, before);
    for (int i = 0; i < 4; i++)
        assert_int_equal(v[i], i + 1);
    free(v);
}

/* buf_grow_from: the first block the caller asks for (2 for a filter's subscribers), or 1 for 0. */
static void test_grow_from(void **state)
{
    (void)state;
    long *v = NULL;
    size_t cap = buf_grow_from((void **)&v, 0, 1, sizeof(*v), UINT32_MAX, 2);
    assert_int_equal(cap, 2);
    cap = buf_grow_from((void **)&v, cap, 3, sizeof(*v), UINT32_MAX, 2);
    assert_int_equal(cap, 4);
    free(v);
    v = NULL;
    cap = buf_grow_from((void **)&v, 0, 1, sizeof(*v), SIZE_MAX, 0);
    assert_int_equal(cap, 1);
    cap = buf_grow_from((void **)&v, cap, 2, sizeof(*v), SIZE_MAX, 0);
    assert_int_equal(cap, 2);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow_doubles_and_keeps),
        cmocka_unit_test(test_no_grow_when_room),
        cmocka_unit_test(test_max_elems),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_alloc_failure),
        cmocka_unit_test(test_grow_from),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
