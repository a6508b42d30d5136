/*
 * hash.h - the hashes of the code base, no allocation, no state. FNV-1a, 64-bit: short keys (client
 * ids, filters, node names), a good enough spread. hash_words32: the topic trie's per-level hash,
 * eight bytes at a time, for the routing hot path (one per topic level of every PUBLISH).
 */
#ifndef SOL_HASH_H
#define SOL_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t hash_fnv1a(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Of a NUL-terminated string. */
static inline uint64_t hash_fnv1a_str(const char *s)
{
    return hash_fnv1a(s, strlen(s));
}

/* Eight bytes at a time (a byte at a time was a fifth of matching a topic), the tail read as two
 * overlapping words, then a final avalanche so the low bits used as the table index are well mixed.
 * The length is mixed in first, so levels that differ only in trailing zero bytes still differ. */
static inline uint32_t hash_words32(const void *data, size_t n)
{
    const char *s = data;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n;
    uint64_t w;
    for (; n > 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        w = (uint64_t)a << 32 | b;
    } else if (n > 0) {
        w = (uint64_t)(unsigned char)s[0] << 16 | (uint64_t)(unsigned char)s[n / 2] << 8 |
            (unsigned char)s[n - 1];
    } else {
        w = 0;
    }
    h = (h ^ w) * 0x94d049bb133111ebull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return (uint32_t)h;
}

#endif
