/* strmap.c - string-keyed hash map (see strmap.h): the hashtab core over 32-byte slots. */
#include "strmap.h"
#include "hash.h"
#include "hashtab.h"

#include <stdlib.h>
#include <string.h>

/* What a lookup carries: the key and its hash, compared hash first. */
struct strmap_probe {
    const char *key;
    size_t len;
    uint64_t hash;
};

static bool strmap_slot_empty(const void *slot)
{
    return ((const struct strmap_slot *)slot)->key == NULL;
}

/* The hash is kept in the slot: growing and deleting never rehash a key. */
static size_t strmap_slot_hash(const void *slot)
{
    return (size_t)((const struct strmap_slot *)slot)->hash;
}

static bool strmap_slot_match(const void *slot, const void *key)
{
    const struct strmap_slot *s = slot;
    const struct strmap_probe *p = key;
    return s->hash == p->hash && s->len == p->len && memcmp(s->key, p->key, p->len) == 0;
}

/* Load at most 3/4: short probe runs, little memory per entry; 16 slots first. */
static const struct hashtab_type strmap_table = {
    .slot_size = sizeof(struct strmap_slot),
    .empty = strmap_slot_empty,
    .hash = strmap_slot_hash,
    .load_num = 3,
    .load_den = 4,
    .min_cap = 16,
};

void strmap_init(struct strmap *m)
{
    memset(m, 0, sizeof(*m));
}

void strmap_destroy(struct strmap *m)
{
    free(m->slots);
    strmap_init(m);
}

/* Index of key's slot, or of the empty slot where it would go (m->cap > 0). */
static size_t strmap_find(const struct strmap *m, const struct strmap_probe *p)
{
    return hashtab_find(&strmap_table, m->slots, m->cap, p->hash, strmap_slot_match, p);
}

void *strmap_get(const struct strmap *m, const char *key, size_t len)
{
    if (!m->cap)
        return NULL;
    struct strmap_probe p = {key, len, hash_fnv1a(key, len)};
    const struct strmap_slot *s = &m->slots[strmap_find(m, &p)];
    return s->key ? s->value : NULL;
}

int strmap_put(struct strmap *m, const char *key, size_t len, void *value)
{
    size_t cap = hashtab_reserve(&strmap_table, (void **)&m->slots, m->cap, m->count, SIZE_MAX);
    if (!cap)
        return -1;
    m->cap = cap;
    struct strmap_probe p = {key, len, hash_fnv1a(key, len)};
    struct strmap_slot *s = &m->slots[strmap_find(m, &p)];
    if (!s->key)
        m->count++;
    *s = (struct strmap_slot){.key = key, .len = len, .hash = p.hash, .value = value};
    return 0;
}

void *strmap_del(struct strmap *m, const char *key, size_t len)
{
    if (!m->cap)
        return NULL;
    struct strmap_probe p = {key, len, hash_fnv1a(key, len)};
    size_t i = strmap_find(m, &p);
    if (!m->slots[i].key)
        return NULL;
    void *value = m->slots[i].value;
    hashtab_remove_at(&strmap_table, m->slots, m->cap, i);
    m->count--;
    return value;
}

const struct strmap_slot *strmap_next(const struct strmap *m, size_t *pos)
{
    size_t i = hashtab_next(&strmap_table, m->slots, m->cap, *pos);
    *pos = i < m->cap ? i + 1 : m->cap;
    return i < m->cap ? &m->slots[i] : NULL;
}

void strmap_foreach(const struct strmap *m,
                    void (*fn)(const char *key, size_t len, void *value, void *ctx), void *ctx)
{
    size_t pos = 0;
    for (const struct strmap_slot *s; (s = strmap_next(m, &pos));)
        fn(s->key, s->len, s->value, ctx);
}
