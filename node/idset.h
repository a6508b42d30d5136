/*
 * idset.h - a set of MQTT packet ids (1..65535): the hashtab.h core, linear probing on a
 * Fibonacci hash of the id, 0 marking an empty slot (packet id 0 is never valid), at most half
 * full, backward-shift deletion so lookups need no tombstones. O(1) per operation whatever the
 * number of ids held, and nothing allocated until the first id is added (most sessions never hold
 * one).
 */
#ifndef SOL_IDSET_H
#define SOL_IDSET_H

#include <stdbool.h>
#include <stdint.h>

struct idset {
    uint16_t *slots; /* NULL until the first add */
    uint32_t n, cap; /* ids held; slots (a power of two) */
};

/* True if id is in the set. */
bool idset_has(const struct idset *s, uint16_t id);
/* Add id (no-op if present). 0, or -1 on allocation failure (the set is unchanged). */
int idset_add(struct idset *s, uint16_t id);
/* Remove id (no-op if absent). */
void idset_del(struct idset *s, uint16_t id);
/* Iterate in slot order: the first id at slot *pos or after, or 0 at the end; *pos is moved past
 * it. Start with *pos = 0; no add or delete meanwhile. */
uint16_t idset_next(const struct idset *s, uint32_t *pos);
/* Free the slots; the set is empty and usable again. */
void idset_clear(struct idset *s);

#endif
