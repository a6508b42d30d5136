/*
 * topic.h - topic names, topic filters and the subscription tree.
 *
 * The tree maps filters to subscribers. A subscriber is an opaque pointer (a local session, or a cluster
 * peer in the cluster's own tree); the tree never dereferences it. Matching walks one tree level per topic
 * level, so its cost grows with topic depth and the number of wildcard branches, not with the number of
 * subscriptions. Topic names starting with '$' are not matched by a leading '+' or '#' [MQTT-4.7.2-1].
 */
#ifndef SOL_TOPIC_H
#define SOL_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A topic name a client may PUBLISH to: non-empty, no '+' or '#' [MQTT-4.7.1-1], [MQTT-4.7.3-1].
 * (UTF-8 and U+0000 are checked by the codec.) */
bool topic_name_valid(const char *name, size_t len);

/* A filter a client may SUBSCRIBE to: non-empty, '#' only last and alone in its level [MQTT-4.7.1-2],
 * '+' alone in its level [MQTT-4.7.1-3]. */
bool topic_filter_valid(const char *filter, size_t len);

/* Does one filter match one topic name? (Used for ACL checks and retained delivery.) */
bool topic_match(const char *filter, size_t flen, const char *name, size_t nlen);

struct topic_tree;

/* Called once per (filter, subscriber) pair that matches. A subscriber with overlapping filters is reported
 * once per matching filter; the caller merges (deliver once, at the highest QoS [MQTT-3.3.5-1]). */
typedef void (*topic_match_fn)(void *subscriber, uint8_t qos, void *ctx);

struct topic_tree *topic_tree_new(void);
void topic_tree_free(struct topic_tree *tree);

/* Add or replace subscriber's subscription to filter. Returns 1 if new, 0 if it replaced an existing one
 * (QoS updated [MQTT-3.8.4-3]), -1 on allocation failure (tree unchanged). */
int topic_tree_subscribe(struct topic_tree *tree, const char *filter, size_t len, void *subscriber,
                         uint8_t qos);

/* Remove subscriber's subscription to filter. Returns 0 if removed, 1 if it had none. Empty branches are
 * pruned. */
int topic_tree_unsubscribe(struct topic_tree *tree, const char *filter, size_t len,
                           void *subscriber);

/* Report every subscription matching topic name. */
void topic_tree_match(const struct topic_tree *tree, const char *name, size_t len,
                      topic_match_fn fn, void *ctx);

/* True if at least one subscription matches name (stops at the first). */
bool topic_tree_has_match(const struct topic_tree *tree, const char *name, size_t len);

/* Number of (filter, subscriber) subscriptions and of distinct filters in the tree. */
size_t topic_tree_count(const struct topic_tree *tree);
size_t topic_tree_filter_count(const struct topic_tree *tree);

#endif
