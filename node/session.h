/*
 * session.h - MQTT sessions: the whole face of session.c.
 *
 * A session is a client id's state: its subscriptions, outbound QoS 1/2 messages in flight (with
 * their packet ids and states) and queued, inbound QoS 2 ids awaiting PUBREL, the next packet id.
 * It outlives its connection unless it is clean [MQTT-3.1.2-4..6].
 *
 * Ownership: the sessions table (struct sessions, kept by the broker) owns every session; a
 * session is freed only by session_destroy (or session_detach of a clean one). While the client
 * is online the session points at its connection (session_attach .. session_detach) and the
 * connection at it; such a connection is always active (CONNACK sent). Messages are refcounted:
 * each in-flight and queued entry holds one reference.
 *
 * Counts into the broker's stats: sessions, subscriptions, msgs_dropped and dropped_*,
 * sessions_stalled, progress_gap_max_ms. All on the broker's loop thread.
 */
#ifndef SOL_SESSION_H
#define SOL_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "codec.h"
#include "message.h"

struct broker;
struct conn;
struct session;
struct sessions;

/* ---- The table (broker.c) ---- */

/* An empty table, or NULL when out of memory. */
struct sessions *sessions_new(void);
/* Destroy every session (session_destroy each), then the table. The broker's last step. */
void sessions_free(struct broker *b, struct sessions *ss);
/* Visit every session. fn must not create or destroy sessions. */
void sessions_foreach(struct broker *b, void (*fn)(struct session *s, void *ctx), void *ctx);

/* ---- Life cycle ---- */

/* The session of client_id, or NULL. */
struct session *session_get(struct broker *b, const char *client_id, size_t len);
/* A new, empty, offline session registered under client_id (copied), or NULL when out of memory.
 */
struct session *session_create(struct broker *b, const char *client_id, size_t len, bool clean);
/* Forget the session: its subscriptions leave the tree, its messages are released, the publishers
 * it held back resume. It must be offline (no connection attached). */
void session_destroy(struct broker *b, struct session *s);
/* The client is online with c, which has sent CONNACK (c stays attached until session_detach).
 * The session takes username (malloc'd or NULL; freed with the session) and clean. */
void session_attach(struct broker *b, struct session *s, struct conn *c, char *username,
                    bool clean);
/* Its connection went away: a clean session (expiry interval 0) ends with it (s is freed), a
 * persistent one waits offline, queueing up to max-queued and pausing nobody, until its expiry
 * interval has passed (sessions_expire). */
void session_detach(struct broker *b, struct session *s);
/* MQTT 5 Session Expiry Interval [MQTT-3.1.2-23], in seconds: 0 ends the session with its
 * connection (a 3.1.1 clean session), SESSION_NEVER_EXPIRES keeps it until a clean start (3.1.1
 * clean session 0). session_attach sets the 3.1.1 meaning of its clean flag; a v5 CONNECT or
 * DISCONNECT sets it after. */
#define SESSION_NEVER_EXPIRES UINT32_MAX
void session_set_expiry(struct session *s, uint32_t seconds);
uint32_t session_expiry(const struct session *s);
/* Periodic: publish the delayed wills that are due and destroy the offline sessions whose expiry
 * interval has passed at now (publishing their delayed wills first). */
void sessions_expire(struct broker *b, uint64_t now);
/* The connection of persistent, offline s closed with a will and an MQTT 5 Will Delay Interval:
 * publish it after delay_s, or when the session ends if that is sooner, unless the client
 * reconnects first [MQTT-3.1.3-9]. Takes its own reference. */
void session_will_later(struct broker *b, struct session *s, struct message *will,
                        uint32_t delay_s);
/* A client reattached to its persistent session: re-send what was in flight, in order (PUBRELs in
 * PUBREC order, then PUBLISHes with DUP in sending order [MQTT-4.4.0-1]), then drain the queue. */
void session_resume(struct broker *b, struct session *s);

/* ---- What it is ---- */

const char *session_client_id(const struct session *s);
/* The username of the connection now or last attached; NULL = anonymous. */
const char *session_username(const struct session *s);
/* Its connection while online, else NULL. */
struct conn *session_conn(const struct session *s);
/* Clean session 0: it outlives its connection. */
bool session_is_persistent(const struct session *s);

/* ---- Subscriptions ---- */

/* A subscription's options, as the MQTT 5 Subscription Options byte lays them out [MQTT-3.8.3.1]
 * (a 3.1.1 subscription is its QoS alone). The topic tree keeps this byte for each subscription. */
#define SUB_QOS 0x03
#define SUB_NO_LOCAL 0x04
#define SUB_RETAIN_AS_PUBLISHED 0x08

/* Add or update a subscription [MQTT-3.8.4-3: an identical filter replaces the old one] with its
 * options (SUB_*) and MQTT 5 Subscription Identifier (0: none). 0 or -1 (no memory: nothing
 * changed). */
int session_subscribe(struct broker *b, struct session *s, const char *filter, size_t len,
                      uint8_t opts, uint32_t subid);
/* The Subscription Identifiers of s's subscriptions that match topic, at most max into out
 * [MQTT-3.3.4-3], but a No Local one's when publisher is s; returns how many. Cheap for a session
 * that has none. */
size_t session_subids(const struct session *s, const char *topic, size_t len, uint32_t *out,
                      size_t max, const struct session *publisher);
/* Whether any of s's subscriptions has a Subscription Identifier. */
bool session_has_subids(const struct session *s);
/* Whether s has a subscription to exactly filter. */
bool session_subscribed(const struct session *s, const char *filter, size_t len);
/* Remove a subscription; true if there was one. */
bool session_unsubscribe(struct broker *b, struct session *s, const char *filter, size_t len);

/* The sessions one routing pass reaches, each once with its highest granted QoS [MQTT-3.3.5-1].
 * Owned by the broker (scratch reused by every pass); filled by session_match_add. */
struct session_match {
    struct session_matched {
        struct session *s;
        uint8_t qos;
        bool rap; /* a matching subscription has Retain As Published */
    } * v;
    size_t n, cap;
    uint64_t gen;                    /* the pass: a session records the last pass that reached it */
    const struct session *publisher; /* whose PUBLISH this pass routes (No Local); NULL: none */
};
/* Start a pass for a PUBLISH from publisher (NULL: not a local client's): m empties. */
static inline void session_match_begin(struct session_match *m, const struct session *publisher)
{
    m->gen++;
    m->n = 0;
    m->publisher = publisher;
}
/* A subscription of subscriber (a struct session) with options opts (SUB_*) matched: the topic
 * tree's match callback (ctx = the struct session_match). Out of memory: that subscriber misses
 * the message. */
void session_match_add(void *subscriber, uint8_t opts, void *ctx);

/* ---- Outbound messages ---- */

/* Hand msg to s at the QoS it gets: QoS 0 only while online; QoS 1/2 in flight if the window
 * allows, else queued. Takes its own references. A subscriber behind by backlog-high pauses the
 * source of this delivery (flow.h); one that stalled, or any under the drop policy, has live QoS 0
 * past backlog-high dropped, counted. retain: a retained message for a new subscription, always
 * sent [MQTT-3.3.1-6]. */
void session_deliver(struct broker *b, struct session *s, struct message *msg, uint8_t qos,
                     bool retain);
/* session_deliver for a message that reached s through shared subscription group g (share.h):
 * tagged, so that if s ends before it is acknowledged another member gets it. */
struct share_group;
void session_deliver_shared(struct broker *b, struct session *s, struct message *msg, uint8_t qos,
                            bool retain, struct share_group *g);
/* Whether s can take a message at qos now without queueing it (online; for QoS 1/2, room in its
 * window and nothing queued ahead): what a shared group prefers. */
bool session_ready(const struct broker *b, const struct session *s, uint8_t qos);
/* QoS 1/2 messages s holds unacknowledged: in flight and queued (a shared group's load). */
size_t session_unacked(const struct session *s);
/* The client acknowledged an outbound message: PUBACK ends QoS 1, PUBREC moves QoS 2 to PUBREL
 * (which the caller sends), PUBCOMP ends QoS 2. True if it matched a message in flight (a repeated
 * PUBREC too). Frees window room: queued messages move into flight. */
bool session_ack(struct broker *b, struct session *s, enum mqtt_type type, uint16_t id);

/* ---- Inbound QoS 2 (method B: delivered on receipt, id kept until PUBREL) ---- */

bool session_rx_qos2_has(const struct session *s, uint16_t id);
/* How many inbound QoS 2 ids wait for their PUBREL (against MQTT 5's Receive Maximum). */
size_t session_rx_qos2_count(const struct session *s);
/* 0, or -1 when out of memory. */
int session_rx_qos2_add(struct session *s, uint16_t id);
void session_rx_qos2_del(struct session *s, uint16_t id);

/* ---- Flow (its connection tells it; the sweep asks) ---- */

/* Its connection took bytes but output remains: the progress clock only. */
void session_touch(struct broker *b, struct session *s);
/* Its connection took everything, or it got an ack: it is making progress; under backlog-low its
 * publishers resume (and a stalled session is back to normal). */
void session_progress(struct broker *b, struct session *s);
/* Periodic: a session that pauses publishers and made no progress for stall-timeout stalls. */
void session_check_stall(struct broker *b, struct session *s, uint64_t now);

/* ---- Snapshot and restore (broker.h's struct session_visitor) ---- */

/* Visit the session's complete state, in the order session_restore_* rebuilds it. */
void session_snapshot(const struct session *s, const struct session_visitor *v);
/* Restore one outbound message with its id and state (broker_session_restore_msg says how).
 * 0 or -1. */
int session_restore_msg(struct broker *b, struct session *s, struct message *msg,
                        const struct session_msg_info *info);
void session_restore_next_id(struct session *s, uint16_t next_id);
/* A moved session's expiry interval; offline, its countdown starts now (0 is taken as "never":
 * a session that ends at disconnect is never moved). */
void session_restore_expiry(struct broker *b, struct session *s, uint32_t seconds);

/* ---- The durable store's marks (persist.c) ---- */

/* Its place in the list of sessions changed this turn, + 1 (0: not in it). */
uint32_t session_dirty_get(const struct session *s);
void session_dirty_set(struct session *s, uint32_t slot);
/* Whether the store holds a record of it (so that ending it deletes one). */
bool session_stored(const struct session *s);
void session_stored_set(struct session *s, bool stored);

#endif
