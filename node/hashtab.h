/*
 * hashtab.h - the one hash table of Sol: open addressing, linear probing, power-of-two capacity,
 * backward-shift deletion (so no tombstones and lookups stop at the first empty slot).
 *
 * The core owns no struct and no policy beyond its load limit: it works on a caller's array of
 * fixed-size slots (cap of them, all-zero bytes meaning empty, as calloc leaves them) described by
 * a struct hashtab_type, so each user keeps its own compact slot layout and its own struct:
 * strmap (32-byte slots: key, length, hash, value), levelmap (8-byte pointers to keys embedded in
 * trie nodes, plus its single inline child), idset (2-byte packet ids, Fibonacci-hashed).
 *
 * Everything is inline, always: the type is a static const object and its functions small static
 * ones, so after inlining the compiler folds them in and each user's lookup is the loop it would
 * have hand-written, with no call through a pointer (routing does one lookup per topic level).
 *
 * Why not a packaged table (Debian's uthash-dev): uthash chains items through a 56-byte handle
 * embedded in each item, and allocates 576 bytes (table + 32 buckets) for each table on its first
 * insert. Here an entry costs its slot only (8 bytes in a trie node's child table at load <= 3/4,
 * 2 bytes for a packet id), a trie node with one child allocates nothing, and a lookup touches one
 * cache line of slots instead of following a chain. Per-trie-node and per-connection memory are
 * what Sol is compared on, so the handle alone would cost more than the entries it indexes.
 */
#ifndef SOL_HASHTAB_H
#define SOL_HASHTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Forced inline: the point is that the type's functions fold into each caller. */
#define HASHTAB_INLINE static inline __attribute__((always_inline))

/* What the core knows of one user's slots. Make it a static const object so it folds away. */
struct hashtab_type {
    size_t slot_size;                 /* bytes per slot */
    bool (*empty)(const void *slot);  /* true for a free slot (all-zero bytes must be free) */
    size_t (*hash)(const void *slot); /* hash of the entry in a full slot (its low bits index) */
    unsigned load_num, load_den;      /* the table is kept at most load_num/load_den full */
    size_t min_cap;                   /* size of the first table (a power of two) */
};

/* Does the full slot hold the key the caller is looking for? (key is the caller's own.) */
typedef bool (*hashtab_match_fn)(const void *slot, const void *key);

/* Address of slot i. */
HASHTAB_INLINE void *hashtab_at(const struct hashtab_type *t, const void *slots, size_t i)
{
    return (char *)slots + i * t->slot_size;
}

/* Index of the slot holding key (the first full slot, from hash's home, that match accepts), or
 * of the empty slot where it would go. cap must be a power of two and the table not full. */
HASHTAB_INLINE size_t hashtab_find(const struct hashtab_type *t, const void *slots, size_t cap,
                                   size_t hash, hashtab_match_fn match, const void *key)
{
    size_t mask = cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        const void *s = hashtab_at(t, slots, i);
        if (t->empty(s) || match(s, key))
            return i;
    }
}

/* Index of the first full slot at pos or after, or cap at the end: iteration in slot order. */
HASHTAB_INLINE size_t hashtab_next(const struct hashtab_type *t, const void *slots, size_t cap,
                                   size_t pos)
{
    while (pos < cap && t->empty(hashtab_at(t, slots, pos)))
        pos++;
    return pos;
}

/* Copy entry (a full slot's bytes, not yet in the table) into the first free slot from its home.
 * The table must have a free slot. Returns the slot's index. */
HASHTAB_INLINE size_t hashtab_place(const struct hashtab_type *t, void *slots, size_t cap,
                                    const void *entry)
{
    size_t mask = cap - 1;
    size_t i = t->hash(entry) & mask;
    while (!t->empty(hashtab_at(t, slots, i)))
        i = (i + 1) & mask;
    memcpy(hashtab_at(t, slots, i), entry, t->slot_size);
    return i;
}

/* A new zeroed table of newcap slots (a power of two, more than the entries) holding old's entries,
 * or NULL on allocation failure. old stays the caller's (it may be an inline slot, not heap). */
HASHTAB_INLINE void *hashtab_rehash(const struct hashtab_type *t, const void *old, size_t oldcap,
                                    size_t newcap)
{
    void *slots = calloc(newcap, t->slot_size);
    if (slots == NULL)
        return NULL;
    for (size_t i = 0; i < oldcap; i++) {
        const void *s = hashtab_at(t, old, i);
        if (!t->empty(s))
            hashtab_place(t, slots, newcap, s);
    }
    return slots;
}

/* Would count + 1 entries overflow a table of cap slots past the load limit? */
HASHTAB_INLINE bool hashtab_full(const struct hashtab_type *t, size_t count, size_t cap)
{
    return (uint64_t)(count + 1) * t->load_den > (uint64_t)cap * t->load_num;
}

/* Make room for one more entry in the heap table *slots of cap slots holding count entries (NULL
 * and 0 before the first): when it would pass the load limit, the table doubles (or becomes
 * min_cap slots) and the old one is freed. Returns the capacity (cap itself when there was room),
 * or 0 when it would exceed max_cap or the allocation failed: *slots is then unchanged. */
HASHTAB_INLINE size_t hashtab_reserve(const struct hashtab_type *t, void **slots, size_t cap,
                                      size_t count, size_t max_cap)
{
    if (!hashtab_full(t, count, cap))
        return cap;
    size_t ncap = cap ? cap * 2 : t->min_cap;
    if (ncap > max_cap || ncap < cap)
        return 0;
    void *ns = hashtab_rehash(t, *slots, cap, ncap);
    if (ns == NULL)
        return 0;
    free(*slots);
    *slots = ns;
    return ncap;
}

/* Empty full slot i, moving later entries of its probe run back into the hole when their home is
 * not cyclically within (hole, where they sit]: every entry stays reachable from its home without
 * crossing an empty slot, so no tombstone is needed. */
HASHTAB_INLINE void hashtab_remove_at(const struct hashtab_type *t, void *slots, size_t cap,
                                      size_t i)
{
    size_t mask = cap - 1;
    for (size_t j = (i + 1) & mask; !t->empty(hashtab_at(t, slots, j)); j = (j + 1) & mask) {
        size_t home = t->hash(hashtab_at(t, slots, j)) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            memcpy(hashtab_at(t, slots, i), hashtab_at(t, slots, j), t->slot_size);
            i = j;
        }
    }
    memset(hashtab_at(t, slots, i), 0, t->slot_size);
}

#endif
