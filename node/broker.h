/*
 * broker.h - one MQTT node: the whole public face of the broker for main() and for the cluster.
 *
 * All state lives in struct broker (no globals). Everything runs on one libuv loop; every function
 * here must be called on that loop's thread.
 *
 * The cluster seam: the broker reports what it accepted through struct broker_hooks, and the
 * cluster feeds what arrives from peers back in through broker_deliver_remote() and friends, which
 * never call the hooks again (so nothing is forwarded twice).
 */
#ifndef SOL_BROKER_H
#define SOL_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "log.h"
#include "message.h"
#include "share.h"
#include "store.h"

struct broker;

/* Counters for $SYS and /metrics. */
struct broker_stats {
    uint64_t clients_connected; /* current */
    uint64_t clients_maximum;
    uint64_t sessions;            /* current, connected or not */
    uint64_t connections_total;   /* accepted sockets since start */
    uint64_t connections_refused; /* over max-connections */
    uint64_t msgs_received;       /* PUBLISH packets from clients */
    uint64_t msgs_sent;           /* PUBLISH packets to clients */
    uint64_t bytes_received;
    uint64_t bytes_sent;
    uint64_t msgs_dropped;         /* all reasons below; offline QoS 0 not counted */
    uint64_t dropped_qos0_stalled; /* QoS 0 to a stalled subscriber (or over the watermark, drop) */
    uint64_t dropped_queue_full;   /* QoS 1/2 past max-queued (offline or stalled session) */
    uint64_t dropped_no_memory;    /* allocation failed */
    uint64_t dropped_peer_gone;    /* for a peer that died or left (filled by hooks.add_stats) */
    uint64_t dropped_peer_full;    /* past a stalled peer's hard queue limit (hooks.add_stats) */
    uint64_t msgs_expired;      /* not sent: the Message Expiry Interval ended first (not a drop) */
    uint64_t retained_expired;  /* retained messages removed (memory and store) at their expiry */
    uint64_t dropped_too_large; /* over a v5 client's Maximum Packet Size [MQTT-3.1.2-25] */
    uint64_t dropped_share_no_member; /* for a shared group with no member left to take it */
    uint64_t publishers_paused;       /* sources waiting on a full subscriber or peer now */
    uint64_t pause_events;            /* times a source was paused */
    uint64_t paused_ms_total;         /* time sources spent paused (ended pauses) */
    uint64_t sessions_stalled;        /* times a subscriber stalled */
    uint64_t progress_gap_max_ms;     /* longest wait for progress of a subscriber pausing others */
    uint64_t conns_memory_closed;     /* connections closed over max-conn-memory */
    uint64_t conn_buffer_bytes;       /* connections' input and output buffers now */
    uint64_t protocol_errors;         /* connections closed for bad input */
    uint64_t subscriptions;           /* current (filter, session) pairs */
    uint64_t retained;                /* current retained messages */
};

/* What the cluster listens to. Every hook is optional (NULL = not called). ctx is passed back. */
struct broker_hooks {
    void *ctx;
    /* A PUBLISH from a local client (or a local client's will) was accepted and delivered to local
     * subscribers. msg->retain says whether it also set or cleared (empty payload) a retained
     * message. msg may be a view of the client's packet (message_view_init: valid for this call
     * only, topic not NUL-terminated): the hook copies what it needs and never keeps msg. picks:
     * the peers chosen for shared subscription groups (share.h), each to get msg with the group's
     * key; shares_only: msg goes to those alone (a redelivery), not to peers' other subscribers.
     * Returns how many peers it forwarded the PUBLISH to for their subscribers. */
    size_t (*on_publish)(void *ctx, struct message *msg, const struct share_pick *picks,
                         size_t npicks, bool shares_only);
    /* A filter gained its first local subscriber / lost its last one. */
    void (*on_route_add)(void *ctx, const char *filter, size_t len);
    void (*on_route_del)(void *ctx, const char *filter, size_t len);
    /* A client is connecting here with this id (credentials already checked). Return true to hold
     * the CONNACK until the cluster calls broker_connect_resume(token) — after it has closed the
     * same id on other nodes and imported any session state moved from there; false to go on at
     * once. */
    bool (*on_connect)(void *ctx, const char *client_id, bool clean_session, uint64_t token);
    /* Statistics are being read ($SYS, /metrics): add the cluster's drops to st. */
    void (*add_stats)(void *ctx, struct broker_stats *st);
    /* The broker shuts down: where its clients should go instead ("host:port" of a live peer's
     * MQTT listener, into buf of len bytes), for MQTT 5's DISCONNECT 0x9C with a Server Reference.
     * Returns false when there is none (the clients get 0x8B, server shutting down). */
    bool (*server_reference)(void *ctx, char *buf, size_t len);
    /* Session replication (persist.h; only while the store is on). At the end of a loop turn each
     * persistent session that changed is reported with its whole snapshot (state, len bytes: the
     * store's record value, lent for the call; NULL when the session is gone), tagged with the
     * turn's replication sequence number seq; then on_turn_end(seq) closes the turn. The cluster
     * reports through broker_replicated() up to which seq every turn is held by its replicas:
     * acknowledgements that wait for durability wait for that too (--durability sync). */
    void (*on_session_state)(void *ctx, const char *client_id, const uint8_t *state, size_t len,
                             uint64_t seq);
    void (*on_turn_end)(void *ctx, uint64_t seq);
    /* Every turn up to seq is on disk (--durability sync; at the turn's end otherwise): what its
     * PUBLISHes changed here survives a kill -9 once the replicas hold it too. */
    void (*on_stored)(void *ctx, uint64_t seq);
};

struct broker *broker_new(uv_loop_t *loop, const struct sol_config *cfg, char *err, size_t errlen);
/* Start listening on cfg->bind:cfg->port. Returns 0 or -1 with a reason in err. */
int broker_start(struct broker *b, char *err, size_t errlen);
/* SIGHUP: the TLS listeners load certificate, key and CA again for new connections (open ones
 * keep theirs). 0, or -1 with a reason in err (the old ones stay in use). */
int broker_reload_tls(struct broker *b, char *err, size_t errlen);
void broker_set_hooks(struct broker *b, const struct broker_hooks *hooks);
/* Stop accepting, close every client connection (their wills are published, as [MQTT-3.1.2-8]
 * requires for any close without DISCONNECT, and reach the cluster if it is still attached), then
 * call done on the loop once all sockets are closed. */
void broker_shutdown(struct broker *b, void (*done)(void *ctx), void *ctx);
/* Free everything; the loop must have closed the broker's handles (run it after broker_shutdown).
 */
void broker_free(struct broker *b);

const struct logger *broker_logger(const struct broker *b);
const struct sol_config *broker_config(const struct broker *b);
void broker_get_stats(const struct broker *b, struct broker_stats *out);
bool broker_listening(const struct broker *b);
/* The durable store's counters (store.h; all zero with --durability none) and how many
 * acknowledgements wait for it now. */
void broker_store_stats(const struct broker *b, struct store_stats *out, uint64_t *acks_held);

/* ---- Inbound from the cluster (never calls the hooks) ---- */

/* Deliver a PUBLISH that arrived from a peer to matching local sessions. Does not touch retained
 * state. */
void broker_deliver_remote(struct broker *b, struct message *msg);
/* Set (or clear, with an empty payload) a retained message decided by the cluster. Takes a
 * reference. When its Message Expiry Interval is over the broker removes it on its own, telling
 * no hook: every node expires its copy itself. */
int broker_retain_apply(struct broker *b, struct message *msg);
/* The retained message for topic, or NULL (no reference added). */
struct message *broker_retain_get(const struct broker *b, const char *topic, size_t len);
/* Visit every retained message (full sync to a joining node). */
void broker_retain_foreach(const struct broker *b, void (*fn)(struct message *msg, void *ctx),
                           void *ctx);
/* How many retained messages this node removed so far because their expiry ended (it goes up
 * when the retained values change without any hook being told). */
uint64_t broker_retain_expired(const struct broker *b);
/* Visit every filter with at least one local subscriber (full route sync). */
void broker_routes_foreach(const struct broker *b,
                           void (*fn)(const char *filter, size_t len, void *ctx), void *ctx);

/* Set a retained $SYS/... value for local subscribers (not forwarded: each node reports itself). */
void broker_sys_set(struct broker *b, const char *topic, const char *value);

/* Let a held CONNECT (see on_connect) finish. A token no longer pending is ignored. */
void broker_connect_resume(struct broker *b, uint64_t token);

/* ---- Session snapshot and restore (cluster takeover, the SIGTERM hand-off) ---- */

/* Where one outbound message of a session stands. */
enum session_msg_state {
    SESSION_MSG_QUEUED = 0,       /* not sent yet (id 0) */
    SESSION_MSG_PUBLISH_SENT = 1, /* QoS 1 awaiting PUBACK, QoS 2 awaiting PUBREC */
    SESSION_MSG_PUBREL_SENT = 2,  /* QoS 2 awaiting PUBCOMP: only the id is left, no message */
};

struct session_msg_info {
    uint16_t id; /* the packet id it was sent with; 0 when queued */
    uint8_t qos;
    uint8_t state; /* enum session_msg_state */
    bool retain;   /* a retained message sent for a new subscription */
};

/* A session's complete state, visited in the order a restore must see it: subscriptions, then the
 * outbound messages as they would be re-sent (PUBREL-pending first, in PUBREC order; then those
 * awaiting PUBACK/PUBREC in sending order; then the queue), then the inbound QoS 2 ids awaiting
 * PUBREL, then the next packet id. Messages are lent for the call (message_ref to keep one). Any
 * callback may be NULL. (MQTT 3.1.1's will belongs to the connection and is published when it
 * closes, so no will is part of it yet.) */
struct session_visitor {
    void *ctx;
    void (*sub)(void *ctx, const char *filter, uint8_t opts, uint32_t subid); /* session.h SUB_* */
    void (*msg)(void *ctx, struct message *msg, const struct session_msg_info *info);
    void (*rx_id)(void *ctx, uint16_t id);
    void (*next_id)(void *ctx, uint16_t next_id);
    void (*expiry)(void *ctx, uint32_t seconds); /* Session Expiry Interval (session.h) */
    /* An offline session's delayed will (MQTT 5 Will Delay Interval), published at will_at (the
     * broker's clock, ms) unless the client returns first. Last, after the next id. */
    void (*will)(void *ctx, struct message *msg, uint64_t will_at);
};

/* The client id connected on another node: close it here (its will is published, as for any close
 * that is not a DISCONNECT). If the session is persistent, visit its complete state and delete it
 * here. Returns true if a session existed. */
bool broker_session_takeover(struct broker *b, const char *client_id,
                             const struct session_visitor *v);
/* Deliver msg to client_id's session alone, if one of its subscriptions matches (as
 * broker_deliver_remote would, for that session). True if delivered. */
bool broker_deliver_session(struct broker *b, const char *client_id, struct message *msg);
/* Whether client_id has a session here with its client connected. */
bool broker_session_online(const struct broker *b, const char *client_id);
/* Visit the client id of every persistent session (clean session 0), online or not (a node that
 * leaves hands them to its peers). fn must not create or delete sessions: collect the ids first. */
void broker_sessions_foreach(const struct broker *b, void (*fn)(const char *client_id, void *ctx),
                             void *ctx);
/* Restore moved session state for client_id, piece by piece in the visitor's order (each creates a
 * persistent offline session if there is none). A message keeps its packet id and state, so the
 * client completes it where it left off; one whose id is already in use here, or that does not
 * fit, is queued as new. 0, or -1 when out of memory. */
/* Shared subscriptions across the cluster (share.h): a peer's routes gained or lost a group key
 * "$share/{group}/{filter}" (route says which; false if it is not one); a peer is gone; a peer
 * picked this node for group key: one local member gets msg; if none is left and may_forward
 * (it was not passed on before), another peer with members, else a drop, counted. */
bool broker_share_route(struct broker *b, const char *route, size_t len, void *peer, bool add);
void broker_share_peer_gone(struct broker *b, void *peer);
void broker_deliver_shared(struct broker *b, struct message *msg, const char *key, size_t len,
                           bool may_forward);

/* Every replication turn up to seq is held by the replicas it went to (see on_session_state). */
void broker_replicated(struct broker *b, uint64_t seq);
/* A session replica held here for another node (cluster): written into this turn's batch under
 * client id (v NULL: deleted), on disk once on_stored passes this turn. 0, or -1 (no memory). */
int broker_replica_record(struct broker *b, const char *client_id, const uint8_t *v, size_t len);
/* The replica records found at start, each to fn once (v lent for the call), then forgotten. */
void broker_replicas_restored(struct broker *b,
                              void (*fn)(void *ctx, const char *id, const uint8_t *v, size_t len),
                              void *ctx);
/* This turn's acknowledgements wait for broker_replicated to pass it (--durability sync): the
 * cluster forwarded a QoS 1/2 PUBLISH of it to a peer that has not confirmed it durable yet. */
void broker_turn_hold(struct broker *b);
/* The next replication turn's sequence number (what a turn-end report will carry next). */
uint64_t broker_replication_seq(const struct broker *b);
/* Report client_id's session again at the end of this turn (its replica moves, or is re-sent).
 * No-op for an unknown or clean session. */
void broker_session_touch(struct broker *b, const char *client_id);
/* Restore a whole session snapshot (state as on_session_state reported it) for client_id, as a
 * moved session is restored; on_sub(ctx, filter) is told each subscription added. 0, -1 when the
 * snapshot is malformed (what was read of it stays) or out of memory. */
int broker_session_restore_state(struct broker *b, const char *client_id, const uint8_t *state,
                                 size_t len, void (*on_sub)(void *ctx, const char *filter),
                                 void *ctx);

int broker_session_restore_sub(struct broker *b, const char *client_id, const char *filter,
                               uint8_t opts, uint32_t subid);
int broker_session_restore_expiry(struct broker *b, const char *client_id, uint32_t seconds);
int broker_session_restore_msg(struct broker *b, const char *client_id, struct message *msg,
                               const struct session_msg_info *info);
int broker_session_restore_rx_id(struct broker *b, const char *client_id, uint16_t id);
int broker_session_restore_next_id(struct broker *b, const char *client_id, uint16_t next_id);
int broker_session_restore_will(struct broker *b, const char *client_id, struct message *will,
                                uint32_t delay_s);

#endif
