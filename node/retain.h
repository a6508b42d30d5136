/*
 * retain.h - the retained-message store: at most one value per topic name.
 *
 * Values are opaque refcounted pointers (struct message in the broker); the store calls the release
 * function given at creation whenever it drops one (replaced, cleared, or store freed). Lookups by filter
 * walk a level tree, so a SUBSCRIBE to a narrow filter does not scan every retained topic.
 *
 * A value may carry a deadline (any clock the owner picks: the broker's loop milliseconds): the store
 * keeps the values that have one in a min-heap by deadline, so retain_expire finds what is due
 * without looking at the values that are not (a million retained topics cost nothing per sweep).
 */
#ifndef SOL_RETAIN_H
#define SOL_RETAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct retain_store;

typedef void (*retain_release_fn)(void *value);
typedef void (*retain_visit_fn)(const char *topic, size_t len, void *value, void *ctx);

struct retain_store *retain_new(retain_release_fn release);
void retain_free(struct retain_store *store);

/* Store value under topic, releasing any previous one; value NULL clears the topic [MQTT-3.3.1-10/11].
 * The store takes over the caller's reference. Returns 0, or -1 on allocation failure (store unchanged,
 * value not taken). */
int retain_set(struct retain_store *store, const char *topic, size_t len, void *value);

/* retain_set with a deadline: expire_at 0 never expires; otherwise retain_expire removes the value
 * once its deadline is at or before the time it is given. Replacing a value replaces its deadline. */
int retain_set_until(struct retain_store *store, const char *topic, size_t len, void *value,
                     uint64_t expire_at);

/* Remove up to max values whose deadline is at or before now, earliest first: fn (may be NULL) sees
 * each just before it is released, and must not modify the store. Returns how many were removed. */
size_t retain_expire(struct retain_store *store, uint64_t now, size_t max, retain_visit_fn fn,
                     void *ctx);

/* The value stored under exactly this topic, or NULL. No reference is added. */
void *retain_get(const struct retain_store *store, const char *topic, size_t len);

/* Visit every retained value whose topic matches filter ('$' rule applies). topic is NUL-terminated. */
void retain_match(const struct retain_store *store, const char *filter, size_t len,
                  retain_visit_fn fn, void *ctx);

/* Visit every retained value (cluster full sync, $SYS count). */
void retain_foreach(const struct retain_store *store, retain_visit_fn fn, void *ctx);

size_t retain_count(const struct retain_store *store);

#endif
