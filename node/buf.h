/*
 * buf.h - the one way Sol grows an array or a byte buffer: doubling, checked for overflow, the
 * old block kept on failure.
 *
 *     size_t ncap = buf_grow((void **)&v, cap, n + 1, sizeof(*v), UINT32_MAX);
 *     if (!ncap)
 *         return -1;  // v and cap unchanged
 *     cap = ncap;
 */
#ifndef SOL_BUF_H
#define SOL_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define BUF_MIN_ELEMS 4 /* first allocation: most arrays here stay small */

/* Make *arr (cap elements of elem bytes each, or NULL with cap 0) hold at least need elements:
 * the capacity doubles from max(cap, first) until it fits, capped at max_elems (pass SIZE_MAX for
 * none; a caller storing the capacity in a uint32_t passes UINT32_MAX). Returns the new capacity
 * (cap itself when need <= cap), or 0 when need exceeds max_elems, the size would overflow or
 * realloc fails; *arr is then untouched and still owned by the caller. For arrays that mostly
 * hold one or two elements, where a first block of BUF_MIN_ELEMS would waste memory per owner. */
static inline size_t buf_grow_from(void **arr, size_t cap, size_t need, size_t elem,
                                   size_t max_elems, size_t first)
{
    if (need <= cap)
        return cap;
    if (need > max_elems || elem == 0 || need > SIZE_MAX / elem)
        return 0;
    size_t ncap = cap < first ? first : cap;
    if (ncap == 0)
        ncap = 1;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    if (ncap > max_elems)
        ncap = max_elems;
    if (ncap > SIZE_MAX / elem)
        ncap = need;
    void *n = realloc(*arr, ncap * elem);
    if (!n)
        return 0;
    *arr = n;
    return ncap;
}

/* buf_grow_from with a first block of BUF_MIN_ELEMS: the usual case. */
static inline size_t buf_grow(void **arr, size_t cap, size_t need, size_t elem, size_t max_elems)
{
    return buf_grow_from(arr, cap, need, elem, max_elems, BUF_MIN_ELEMS);
}

#endif
