/*
 * levelmap.c - the child table of a topic-level trie node (see levelmap.h).
 */
#include "levelmap.h"

#include <stdlib.h>
#include <string.h>

/* The slots: the inline child when cap is 1, else the table. */
static struct levelmap_key *const *levelmap_slots(const struct levelmap *m)
{
    return m->cap == 1 ? &m->u.one : m->u.table;
}

void levelmap_key_set(struct levelmap_key *k, const char *s, size_t n, uint32_t h)
{
    k->hash = h;
    k->len = (uint16_t)n;
    if (n)
        memcpy((char *)(k + 1), s, n);
}

/* Put k into a table known to have a free slot. */
static void levelmap_place(struct levelmap_key **slots, uint32_t cap, struct levelmap_key *k)
{
    uint32_t mask = cap - 1;
    uint32_t i = k->hash & mask;
    while (slots[i] != NULL)
        i = (i + 1) & mask;
    slots[i] = k;
}

/* Move the children into a table of newcap (at least 4) slots. Returns -1 (nothing changed) on
 * failure. */
static int levelmap_rehash(struct levelmap *m, uint32_t newcap)
{
    struct levelmap_key **slots = calloc(newcap, sizeof(*slots));
    if (slots == NULL)
        return -1;
    struct levelmap_key *const *old = levelmap_slots(m);
    for (uint32_t i = 0; i < m->cap; i++)
        if (old[i] != NULL)
            levelmap_place(slots, newcap, old[i]);
    if (m->cap > 1)
        free(m->u.table);
    m->u.table = slots;
    m->cap = newcap;
    return 0;
}

/* Inline for the first child, then a table of 4 that doubles to keep the load at most 3/4. */
int levelmap_reserve(struct levelmap *m)
{
    if (m->cap == 0 || (m->cap == 1 && m->count == 0)) {
        m->cap = 1;
        m->u.one = NULL;
        return 0;
    }
    if (m->cap == 1)
        return levelmap_rehash(m, 4);
    if ((uint64_t)(m->count + 1) * 4 <= (uint64_t)m->cap * 3)
        return 0;
    if (m->cap >= (1u << 30))
        return -1;
    return levelmap_rehash(m, m->cap * 2);
}

void levelmap_insert(struct levelmap *m, struct levelmap_key *k)
{
    levelmap_place(m->cap == 1 ? &m->u.one : m->u.table, m->cap, k);
    m->count++;
}

void levelmap_clear(struct levelmap *m)
{
    if (m->cap > 1)
        free(m->u.table);
    m->u.table = NULL;
    m->count = 0;
    m->cap = 0;
}

uint32_t levelmap_slot(const struct levelmap *m, const struct levelmap_key *k)
{
    struct levelmap_key *const *slots = levelmap_slots(m);
    uint32_t mask = m->cap - 1;
    uint32_t i = k->hash & mask;
    while (slots[i] != k)
        i = (i + 1) & mask;
    return i;
}

/* Backward-shift deletion keeps probe chains intact without tombstones; a table that falls below
 * 1/8 full is shrunk to a quarter, best effort (a failed shrink changes nothing). */
void levelmap_remove(struct levelmap *m, struct levelmap_key *k)
{
    if (m->cap == 1) {
        levelmap_clear(m);
        return;
    }
    struct levelmap_key **slots = m->u.table;
    uint32_t mask = m->cap - 1;
    uint32_t i = levelmap_slot(m, k);
    for (uint32_t j = (i + 1) & mask; slots[j] != NULL; j = (j + 1) & mask) {
        uint32_t home = slots[j]->hash & mask;
        /* slots[j] may fill the hole at i unless its home lies cyclically in (i, j]. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            slots[i] = slots[j];
            i = j;
        }
    }
    slots[i] = NULL;
    m->count--;
    if (m->count == 0)
        levelmap_clear(m);
    else if (m->cap > 16 && m->count < m->cap / 8)
        (void)levelmap_rehash(m, m->cap / 4);
}

struct levelmap_key *levelmap_next(const struct levelmap *m, uint32_t *pos)
{
    struct levelmap_key *const *slots = levelmap_slots(m);
    for (uint32_t i = *pos; i < m->cap; i++) {
        if (slots[i] != NULL) {
            *pos = i + 1;
            return slots[i];
        }
    }
    *pos = m->cap;
    return NULL;
}
