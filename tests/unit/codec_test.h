/*
 * codec_test.h - helpers shared by the codec's cmocka tests (test_codec.c, test_codec_connect.c).
 */
#ifndef SOL_CODEC_TEST_H
#define SOL_CODEC_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"

/* A byte-array literal as the two arguments (pointer, length). */
// clang-format off
#define BYTES(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})
// clang-format on

static inline struct mqtt_str mstr(const char *s)
{
    return (struct mqtt_str){s, (uint16_t)strlen(s)};
}

/* The last decoded packet's bytes: an exact-size heap copy, so ASan flags any read past len. It
 * lives until the next decode_exact() so the decoded strings (pointers into it) can be checked. */
static uint8_t *held;

static inline int decode_exact(const uint8_t *b, size_t n, size_t max, struct mqtt_packet *p)
{
    free(held);
    held = malloc(n ? n : 1);
    assert_non_null(held);
    if (n)
        memcpy(held, b, n);
    return codec_decode(held, n, max, p);
}

static inline int free_held(void **state)
{
    free(held);
    held = NULL;
    return 0;
}

static inline int dec(const uint8_t *b, size_t n)
{
    struct mqtt_packet p;
    return decode_exact(b, n, 0, &p);
}

/* Every strict prefix of a packet is CODEC_INCOMPLETE; the whole decodes with total_len n. */
static inline void assert_prefixes_incomplete(const uint8_t *b, size_t n)
{
    struct mqtt_packet p;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(decode_exact(b, i, 0, &p), CODEC_INCOMPLETE);
    assert_int_equal(decode_exact(b, n, 0, &p), CODEC_OK);
    assert_int_equal(p.total_len, n);
}

static inline void assert_str_eq(struct mqtt_str a, struct mqtt_str b)
{
    assert_int_equal(a.len, b.len);
    if (a.len)
        assert_memory_equal(a.data, b.data, a.len);
}

#endif
