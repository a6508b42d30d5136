/*
 * alloc_fail.h - allocation failure injection for tests that compile a module's .c file in.
 *
 * Include this, then define malloc/calloc/realloc as the fail_ wrappers around the #include of the
 * module's .c file(s) (and #undef them after), so the module's Nth allocation can be made to fail
 * without any hook in the library:
 *
 *     #define calloc(a, b) fail_calloc(a, b)
 *     #include "../../node/levelmap.c"
 *     #undef calloc
 */
#ifndef SOL_ALLOC_FAIL_H
#define SOL_ALLOC_FAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

/* Allocations left before failures start; negative means unlimited. */
static long alloc_budget = -1;

static inline bool alloc_take(void)
{
    if (alloc_budget == 0)
        return false;
    if (alloc_budget > 0)
        alloc_budget--;
    return true;
}

static inline void *fail_malloc(size_t n)
{
    return alloc_take() ? malloc(n) : NULL;
}

static inline void *fail_calloc(size_t a, size_t b)
{
    return alloc_take() ? calloc(a, b) : NULL;
}

static inline void *fail_realloc(void *p, size_t n)
{
    return alloc_take() ? realloc(p, n) : NULL;
}

#endif
