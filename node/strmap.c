/* strmap.c - string-keyed hash map (see strmap.h). */
#include "strmap.h"
#include "hash.h"

#include <stdlib.h>
#include <string.h>

static uint64_t strmap_hash(const char *key, size_t len)
{
    return hash_fnv1a(key, len);
}

void strmap_init(struct strmap *m)
{
    memset(m, 0, sizeof(*m));
}

void strmap_destroy(struct strmap *m)
{
    free(m->slots);
    strmap_init(m);
}

/* Index of key's slot, or of the empty slot where it would go. */
static size_t strmap_find(const struct strmap *m, const char *key, size_t len, uint64_t h)
{
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    while (m->slots[i].key) {
        const struct strmap_slot *s = &m->slots[i];
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0)
            return i;
        i = (i + 1) & mask;
    }
    return i;
}

void *strmap_get(const struct strmap *m, const char *key, size_t len)
{
    if (!m->cap)
        return NULL;
    size_t i = strmap_find(m, key, len, strmap_hash(key, len));
    return m->slots[i].key ? m->slots[i].value : NULL;
}

/* Double the table, keeping the load factor under 3/4: short probe runs, little memory per entry. */
static int strmap_grow(struct strmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    struct strmap_slot *ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        struct strmap_slot *s = &m->slots[i];
        if (!s->key)
            continue;
        size_t j = s->hash & (ncap - 1);
        while (ns[j].key)
            j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

int strmap_put(struct strmap *m, const char *key, size_t len, void *value)
{
    if ((m->count + 1) * 4 > m->cap * 3 && strmap_grow(m) < 0)
        return -1;
    uint64_t h = strmap_hash(key, len);
    size_t i = strmap_find(m, key, len, h);
    struct strmap_slot *s = &m->slots[i];
    if (!s->key)
        m->count++;
    s->key = key;
    s->len = len;
    s->hash = h;
    s->value = value;
    return 0;
}

void *strmap_del(struct strmap *m, const char *key, size_t len)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = strmap_find(m, key, len, strmap_hash(key, len));
    if (!m->slots[i].key)
        return NULL;
    void *value = m->slots[i].value;
    /* Backward-shift: move later entries of the run into the hole so lookups need no tombstones. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->slots[j].key)
            break;
        size_t home = m->slots[j].hash & mask;
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = NULL;
    m->count--;
    return value;
}

void strmap_foreach(const struct strmap *m,
                    void (*fn)(const char *key, size_t len, void *value, void *ctx), void *ctx)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            fn(m->slots[i].key, m->slots[i].len, m->slots[i].value, ctx);
}
