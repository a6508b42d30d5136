/*
 * strmap.h - a string-keyed hash map (the hashtab.h core: open addressing, linear probing,
 * backward-shift deletion; FNV-1a of hash.h, kept in the slot). Keys are not copied: the caller
 * keeps each key alive while its entry exists (usually the value owns it).
 */
#ifndef SOL_STRMAP_H
#define SOL_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap_slot {
    const char *key; /* NULL = empty slot */
    size_t len;
    uint64_t hash;
    void *value;
};

struct strmap {
    struct strmap_slot *slots;
    size_t cap; /* power of two, or 0 before the first insert */
    size_t count;
};

/* An empty map (nothing allocated until the first put). */
void strmap_init(struct strmap *m);
/* Free the slots (not the keys or values); the map is empty and usable again. */
void strmap_destroy(struct strmap *m);
/* The value stored under key[0..len), or NULL. */
void *strmap_get(const struct strmap *m, const char *key, size_t len);
/* Insert or replace. Returns 0, or -1 on allocation failure (map unchanged). */
int strmap_put(struct strmap *m, const char *key, size_t len, void *value);
/* Remove and return the value, or NULL if absent. */
void *strmap_del(struct strmap *m, const char *key, size_t len);
/* Iterate in slot order: the first entry at slot *pos or after, or NULL at the end; *pos is moved
 * past it. Start with *pos = 0; no insert or delete meanwhile. (Equivalently:
 * for (size_t i = 0; i < m->cap; i++) if (m->slots[i].key) ...) */
const struct strmap_slot *strmap_next(const struct strmap *m, size_t *pos);

/* Visit every entry, in no particular order. fn must not insert or delete; it may free the value
 * (and the key the value owns) when the map is destroyed right after. */
void strmap_foreach(const struct strmap *m,
                    void (*fn)(const char *key, size_t len, void *value, void *ctx), void *ctx);

#endif
