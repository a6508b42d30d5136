/*
 * idset.c - packet id sets (idset.h).
 */
#include <stdlib.h>

#include "idset.h"

/* The slot holding id, or the empty slot where it would go. */
static uint32_t idset_slot(const struct idset *s, uint16_t id)
{
    uint32_t mask = s->cap - 1;
    uint32_t i = id & mask;
    while (s->slots[i] && s->slots[i] != id)
        i = (i + 1) & mask;
    return i;
}

bool idset_has(const struct idset *s, uint16_t id)
{
    return id && s->cap && s->slots[idset_slot(s, id)] == id;
}

/* Double the slots (or create them), re-placing every id. */
static int idset_grow(struct idset *s)
{
    uint32_t ocap = s->cap;
    uint32_t ncap = ocap ? ocap * 2 : 8;
    uint16_t *old = s->slots;
    uint16_t *n = calloc(ncap, sizeof(*n));
    if (!n)
        return -1;
    s->slots = n;
    s->cap = ncap;
    for (uint32_t i = 0; i < ocap; i++)
        if (old[i])
            s->slots[idset_slot(s, old[i])] = old[i];
    free(old);
    return 0;
}

int idset_add(struct idset *s, uint16_t id)
{
    if ((s->n + 1) * 2 > s->cap && idset_grow(s) < 0)
        return -1;
    uint32_t i = idset_slot(s, id);
    if (s->slots[i] != id) {
        s->slots[i] = id;
        s->n++;
    }
    return 0;
}

/* Later ids of the hole's probe run shift back into it when their home slot is not between the
 * hole and where they sit. */
void idset_del(struct idset *s, uint16_t id)
{
    if (!idset_has(s, id))
        return;
    uint32_t mask = s->cap - 1;
    uint32_t i = idset_slot(s, id);
    for (uint32_t j = (i + 1) & mask; s->slots[j]; j = (j + 1) & mask) {
        uint32_t home = s->slots[j] & mask;
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i] = 0;
    s->n--;
}

void idset_clear(struct idset *s)
{
    free(s->slots);
    s->slots = NULL;
    s->n = s->cap = 0;
}
