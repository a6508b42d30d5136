/*
 * share.h - shared subscriptions ($share/{group}/{filter}, MQTT 5 section 4.8.2, accepted from
 * 3.1.1 clients too): the whole face of share.c.
 *
 * A group is the key "$share/{group}/{filter}"; its members are local sessions (with their
 * subscription options) and peers of the cluster that have members of their own (learned from
 * their routes, which carry the key). Each message on a matching topic goes to exactly one member
 * of each group, cluster-wide: the node where it is published picks, among its local members and
 * the peers with members, preferring local members with room in their in-flight window; a peer
 * picked gets the message with the group's key and hands it to one of its own members.
 *
 * Ownership: struct shares (kept by the broker) owns every group; a group lives while it has a
 * local member or a peer with members. All on the broker's loop thread.
 */
#ifndef SOL_SHARE_H
#define SOL_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "message.h"

struct broker;
struct session;
struct shares;
struct share_group;

/* How a group's member is chosen (--shared-policy). */
enum share_policy {
    SHARE_ROUND_ROBIN = 0, /* in turn (members with window room first) */
    SHARE_RANDOM,          /* a random member with room */
    SHARE_LOCAL_FIRST,     /* a member on this node if one has room, else a peer */
    SHARE_HASH_CLIENTID,   /* by the publisher's client id: one publisher, one member */
};

/* A peer picked for a group: the cluster forwards the message to it with key. */
struct share_pick {
    void *peer;
    const char *key;
    size_t key_len;
    bool last_hop; /* a node that was picked and has no member left passes it on: not again */
};

/* "$share/{group}/{filter}" with a valid group (no '+', '#', '/', non-empty) and filter: true,
 * and where the filter starts (*filter, *filter_len). [MQTT-4.8.2-1/2] */
bool share_parse(const char *s, size_t len, const char **filter, size_t *filter_len);

struct shares *shares_new(void);
void shares_free(struct shares *sh);

/* s subscribes to the group key with options opts (session.h SUB_*): joins it. 0 or -1. */
int share_join(struct broker *b, struct shares *sh, const char *key, size_t len, struct session *s,
               uint8_t opts);
/* s leaves the group key (unsubscribed, or its session ended). */
void share_leave(struct shares *sh, const char *key, size_t len, struct session *s);
/* A peer gained (add) or lost its members of group key (its routes said so). 0 or -1. */
int share_remote(struct shares *sh, const char *key, size_t len, void *peer, bool add);
/* A peer is gone or resyncs its routes: it is a member of no group any more. */
void share_remote_forget(struct shares *sh, void *peer);

/* Whether any group's filter matches topic (cheap when there are no groups). */
bool share_any(const struct shares *sh, const char *topic, size_t len);
/* Route msg (published here, from: the publisher's session or NULL) to one member of every group
 * whose filter matches its topic: local members get it now (session_deliver_shared); the peers
 * picked are written to picks (at most max; the caller forwards). Returns the groups reached
 * (local or remote), *npicks the peers. */
size_t share_route(struct broker *b, struct shares *sh, struct message *msg,
                   const struct session *from, struct share_pick *picks, size_t max,
                   size_t *npicks);
/* A peer picked this node for group key: hand msg to one local member (0). With none left (the
 * last one went away while the message was on its way) and may_forward, another peer with
 * members takes it (1, written to *pick, last_hop set: the caller forwards); else -1 (the caller
 * counts the drop). */
int share_deliver_local(struct broker *b, struct shares *sh, struct message *msg, const char *key,
                        size_t len, bool may_forward, struct share_pick *pick);
/* A member's session ends holding msg (in flight or queued) from group g: give it to another
 * member so it is not lost: 0 given to a local member, 1 a peer takes it (written to *pick: the
 * caller forwards), -1 no member is left. */
int share_redeliver(struct broker *b, struct share_group *g, struct message *msg,
                    const struct session *leaving, struct share_pick *pick);

#endif
