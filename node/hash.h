/*
 * hash.h - the one string hash of the code base: FNV-1a, 64-bit. Short keys (client ids, filters,
 * node names), a good enough spread, no allocation, no state. (The trie's per-level hash is
 * levelmap_hash: eight bytes at a time, tuned for the routing hot path.)
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

#endif
