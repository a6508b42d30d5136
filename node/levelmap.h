/*
 * levelmap.h - the child table of a topic-level trie node: one topic level (a string) to one child.
 *
 * Used by the subscription tree (topic.c), the retained-message store (retain.c) and, keyed by
 * whole topics, the cluster's retained stamps (cluster_retained.c). The map is intrusive: it stores pointers to a struct levelmap_key embedded in each child, and the level's
 * bytes follow that key in the child's own allocation, so a lookup compares the level without a
 * further pointer chase and never allocates. The child is recovered with offsetof (container-of).
 *
 * The table is the hashtab.h core over 8-byte slots (a pointer to each child's key): linear
 * probing, power-of-two capacity, load at most 3/4, backward-shift deletion. A map with one child
 * holds it inline (cap 1): no table allocation and one cache miss less on the many nodes with a
 * single child, like the <id> in "devices/<id>/status".
 *
 * A zeroed struct levelmap is an empty map. Lookup (and splitting a topic into levels) is inline
 * because it is the hot path of topic_tree_match: one lookup per topic level.
 */
#ifndef SOL_LEVELMAP_H
#define SOL_LEVELMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hash.h"
#include "hashtab.h"

/* The key of one child. It must be the last member of the child's struct, and the child is
 * allocated with room for the level's bytes after it (sizeof(child) + len): see LEVELMAP_KEY_LAST.
 */
struct levelmap_key {
    uint32_t hash; /* levelmap_hash of the level */
    uint16_t len;  /* length of the level */
    uint16_t user; /* the owner's 16 bits: the map never reads or writes them */
};

/* Compile-time check that member key of type is last, with no padding after it. */
#define LEVELMAP_KEY_LAST(type, key)                                                               \
    _Static_assert(offsetof(type, key) + sizeof(struct levelmap_key) == sizeof(type),              \
                   "struct levelmap_key must end " #type)

struct levelmap {
    union {
        struct levelmap_key **table; /* cap > 1: open addressing, power-of-two size */
        struct levelmap_key *one;    /* cap == 1: a single child held inline */
    } u;
    uint32_t count; /* children */
    uint32_t cap;   /* 0 (no child), 1 (inline) or the table size */
};

/* The hash of a level: hash_words32 (hash.h), eight bytes at a time for the routing hot path. */
static inline uint32_t levelmap_hash(const char *s, size_t n)
{
    return hash_words32(s, n);
}

/* End (exclusive) of the topic level starting at pos in s[0..len): the next '/' or len. */
static inline size_t levelmap_level_end(const char *s, size_t pos, size_t len)
{
    const char *slash = pos < len ? memchr(s + pos, '/', len - pos) : NULL;
    return slash ? (size_t)(slash - s) : len;
}

/* Start of the topic level that ends at end: just after the previous '/', or 0. */
static inline size_t levelmap_level_start(const char *s, size_t end)
{
    while (end > 0 && s[end - 1] != '/')
        end--;
    return end;
}

/* The level's bytes (not NUL-terminated), stored right after the key. */
static inline const char *levelmap_key_level(const struct levelmap_key *k)
{
    return (const char *)(k + 1);
}

/* Does k name level s[0..n) whose hash is h? */
static inline bool levelmap_key_is(const struct levelmap_key *k, const char *s, size_t n,
                                   uint32_t h)
{
    return k->hash == h && k->len == n && memcmp(levelmap_key_level(k), s, n) == 0;
}

/* The rest down to levelmap_find is the table's description for hashtab.h, here only so that the
 * lookup inlines: not for callers. What a lookup carries: the level, its length and its hash. */
struct levelmap_probe {
    const char *s;
    size_t n;
    uint32_t h;
};

/* The table's slots, for hashtab.h: a pointer to a child's key, NULL when free. */
static inline bool levelmap_slot_empty(const void *slot)
{
    return *(struct levelmap_key *const *)slot == NULL;
}

/* The hash lives in the child's key: one pointer chase, no rehashing of the level's bytes. */
static inline size_t levelmap_slot_hash(const void *slot)
{
    return (*(struct levelmap_key *const *)slot)->hash;
}

static inline bool levelmap_slot_match(const void *slot, const void *key)
{
    const struct levelmap_probe *p = key;
    return levelmap_key_is(*(struct levelmap_key *const *)slot, p->s, p->n, p->h);
}

/* Load at most 3/4; the first table (after the inline child) has 4 slots. */
static const struct hashtab_type levelmap_table = {
    .slot_size = sizeof(struct levelmap_key *),
    .empty = levelmap_slot_empty,
    .hash = levelmap_slot_hash,
    .load_num = 3,
    .load_den = 4,
    .min_cap = 4,
};

/* The child named s[0..n) (h = levelmap_hash(s, n)), or NULL. */
static inline struct levelmap_key *levelmap_find(const struct levelmap *m, const char *s, size_t n,
                                                 uint32_t h)
{
    if (m->count == 0)
        return NULL;
    if (m->cap == 1)
        return levelmap_key_is(m->u.one, s, n, h) ? m->u.one : NULL;
    struct levelmap_probe p = {s, n, h};
    struct levelmap_key **slots = m->u.table;
    return slots[hashtab_find(&levelmap_table, slots, m->cap, h, levelmap_slot_match, &p)];
}

/* Fill a child's key for level s[0..n) with hash h, copying the bytes after the key. n must fit
 * in 16 bits (a topic is at most 65535 bytes). */
void levelmap_key_set(struct levelmap_key *k, const char *s, size_t n, uint32_t h);

/* Make room for one more child. Returns 0, or -1 on allocation failure (map unchanged). */
int levelmap_reserve(struct levelmap *m);

/* Add a child not yet in the map, after a successful levelmap_reserve. */
void levelmap_insert(struct levelmap *m, struct levelmap_key *k);

/* Remove child k (which must be in the map); a sparse table is shrunk when memory allows. */
void levelmap_remove(struct levelmap *m, struct levelmap_key *k);

/* Free the table, leaving an empty map. The children themselves are the owner's to free. */
void levelmap_clear(struct levelmap *m);

/* Iterate in slot order: the first child at slot *pos or after, or NULL at the end; *pos is moved
 * past it. Start with *pos = 0. The map must not change during the iteration. */
struct levelmap_key *levelmap_next(const struct levelmap *m, uint32_t *pos);

/* The slot of child k (which must be in the map), so that levelmap_next from slot + 1 gives the
 * children after it. */
uint32_t levelmap_slot(const struct levelmap *m, const struct levelmap_key *k);

#endif
