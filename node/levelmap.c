/*
 * levelmap.c - the child table of a topic-level trie node (see levelmap.h): the hashtab core, with
 * the single inline child as a table of one slot.
 */
#include "levelmap.h"

#include <stdlib.h>
#include <string.h>

/* The slots: the inline child when cap is 1, else the table. */
static struct levelmap_key **levelmap_slots(const struct levelmap *m)
{
    return m->cap == 1 ? (struct levelmap_key **)&m->u.one : m->u.table;
}

void levelmap_key_set(struct levelmap_key *k, const char *s, size_t n, uint32_t h)
{
    k->hash = h;
    k->len = (uint16_t)n;
    if (n)
        memcpy((char *)(k + 1), s, n);
}

/* Move the children into a table of newcap (at least 4) slots. Returns -1 (nothing changed) on
 * failure. */
static int levelmap_rehash(struct levelmap *m, uint32_t newcap)
{
    struct levelmap_key **slots =
        hashtab_rehash(&levelmap_table, levelmap_slots(m), m->cap, newcap);
    if (slots == NULL)
        return -1;
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
        return levelmap_rehash(m, levelmap_table.min_cap);
    size_t cap = hashtab_reserve(&levelmap_table, (void **)&m->u.table, m->cap, m->count, 1u << 30);
    if (!cap)
        return -1;
    m->cap = (uint32_t)cap;
    return 0;
}

void levelmap_insert(struct levelmap *m, struct levelmap_key *k)
{
    hashtab_place(&levelmap_table, levelmap_slots(m), m->cap, &k);
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

/* Children are found by identity here: the caller holds the child itself. */
static bool levelmap_slot_is(const void *slot, const void *key)
{
    return *(struct levelmap_key *const *)slot == key;
}

uint32_t levelmap_slot(const struct levelmap *m, const struct levelmap_key *k)
{
    return (uint32_t)hashtab_find(&levelmap_table, levelmap_slots(m), m->cap, k->hash,
                                  levelmap_slot_is, k);
}

/* A table that falls below 1/8 full is shrunk to a quarter, best effort (a failed shrink changes
 * nothing). */
void levelmap_remove(struct levelmap *m, struct levelmap_key *k)
{
    if (m->cap == 1) {
        levelmap_clear(m);
        return;
    }
    hashtab_remove_at(&levelmap_table, m->u.table, m->cap, levelmap_slot(m, k));
    m->count--;
    if (m->count == 0)
        levelmap_clear(m);
    else if (m->cap > 16 && m->count < m->cap / 8)
        (void)levelmap_rehash(m, m->cap / 4);
}

struct levelmap_key *levelmap_next(const struct levelmap *m, uint32_t *pos)
{
    struct levelmap_key **slots = levelmap_slots(m);
    size_t i = hashtab_next(&levelmap_table, slots, m->cap, *pos);
    *pos = i < m->cap ? (uint32_t)i + 1 : m->cap;
    return i < m->cap ? slots[i] : NULL;
}
