/*
 * idset.c - packet id sets (idset.h): the hashtab core over 2-byte slots.
 */
#include <stdlib.h>

#include "hashtab.h"
#include "idset.h"

static bool idset_slot_empty(const void *slot)
{
    return *(const uint16_t *)slot == 0;
}

/* Fibonacci hashing: ids in flight are mostly consecutive, and identity would put them in one
 * run of consecutive slots, which backward-shift deletion of the oldest (the usual ack) scans to
 * its end: O(window) per ack. Scattered, the runs stay a few slots long at half load. */
static size_t idset_hash(uint16_t id)
{
    return (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15ull) >> 40);
}

static size_t idset_slot_hash(const void *slot)
{
    return idset_hash(*(const uint16_t *)slot);
}

static bool idset_slot_match(const void *slot, const void *key)
{
    return *(const uint16_t *)slot == *(const uint16_t *)key;
}

/* At most half full, 8 slots first. */
static const struct hashtab_type idset_table = {
    .slot_size = sizeof(uint16_t),
    .empty = idset_slot_empty,
    .hash = idset_slot_hash,
    .load_num = 1,
    .load_den = 2,
    .min_cap = 8,
};

/* The slot holding id, or the empty slot where it would go (s->cap > 0). */
static uint32_t idset_slot(const struct idset *s, uint16_t id)
{
    return (uint32_t)hashtab_find(&idset_table, s->slots, s->cap, idset_hash(id), idset_slot_match,
                                  &id);
}

bool idset_has(const struct idset *s, uint16_t id)
{
    return id && s->cap && s->slots[idset_slot(s, id)] == id;
}

int idset_add(struct idset *s, uint16_t id)
{
    size_t cap = hashtab_reserve(&idset_table, (void **)&s->slots, s->cap, s->n, UINT32_MAX);
    if (!cap)
        return -1;
    s->cap = (uint32_t)cap;
    uint32_t i = idset_slot(s, id);
    if (s->slots[i] != id) {
        s->slots[i] = id;
        s->n++;
    }
    return 0;
}

void idset_del(struct idset *s, uint16_t id)
{
    if (!idset_has(s, id))
        return;
    hashtab_remove_at(&idset_table, s->slots, s->cap, idset_slot(s, id));
    s->n--;
}

uint16_t idset_next(const struct idset *s, uint32_t *pos)
{
    size_t i = hashtab_next(&idset_table, s->slots, s->cap, *pos);
    *pos = i < s->cap ? (uint32_t)i + 1 : s->cap;
    return i < s->cap ? s->slots[i] : 0;
}

void idset_clear(struct idset *s)
{
    free(s->slots);
    s->slots = NULL;
    s->n = s->cap = 0;
}
