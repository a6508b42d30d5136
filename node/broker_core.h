/*
 * broker_core.h - what the broker offers the node's own modules (connections: conn.h, sessions:
 * session.h, the MQTT handlers): the context they share, and the routing and policy calls. Not
 * for cluster/ (broker.h is its face) and not the broker's state (broker_internal.h, private).
 *
 * Everything runs on the broker's loop thread.
 */
#ifndef SOL_BROKER_CORE_H
#define SOL_BROKER_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "acl.h"
#include "broker.h"
#include "codec.h"
#include "config.h"
#include "log.h"
#include "message.h"

struct session;

/* What every module reads (loop, cfg, log) and counts into (stats). The first member of struct
 * broker, so broker_core() is a cast and reading a setting costs what a field access costs; the
 * broker owns it, the modules never free or replace it. */
struct broker_core {
    uv_loop_t *loop;
    struct sol_config cfg;
    struct logger log;
    struct broker_stats stats; /* each module adds to its own counters (broker.h says whose) */
};

static inline struct broker_core *broker_core(struct broker *b)
{
    return (struct broker_core *)(void *)b;
}

static inline const struct sol_config *broker_cfg(const struct broker *b)
{
    return &((const struct broker_core *)(const void *)b)->cfg;
}

static inline const struct logger *broker_log(const struct broker *b)
{
    return &((const struct broker_core *)(const void *)b)->log;
}

/* Loop time in milliseconds (cached per loop turn). */
static inline uint64_t broker_now_ms(const struct broker *b)
{
    return uv_now(((const struct broker_core *)(const void *)b)->loop);
}

/* ---- Routing ---- */

/* A PUBLISH accepted here (a will, $SYS, a retained message): set or clear the retained message
 * when msg->retain [MQTT-3.3.1-5/10/11], deliver to matching local sessions, and tell the cluster
 * when it came from one of our clients. msg stays the caller's (deliveries take references). */
void broker_publish(struct broker *b, struct message *msg, bool from_local_client);
/* broker_publish for a message from a local client's session from (No Local: its own
 * subscriptions that ask for it do not get it). Returns how many receivers it went to (local
 * sessions, plus peers when from_local_client). */
size_t broker_publish_from(struct broker *b, struct message *msg, bool from_local_client,
                           const struct session *from);
/* The session whose PUBLISH is being routed now (No Local), or NULL outside a routing pass. */
const struct session *broker_routing_from(const struct broker *b);
/* The shared groups (share.h). */
struct shares *broker_shares(struct broker *b);
/* Send msg to the peer pick names for its group alone (a redelivery when a member ended). */
void broker_share_forward(struct broker *b, struct message *msg, const struct share_pick *pick);
/* A client's PUBLISH as the MQTT layer read it: pointers into its read buffer. */
struct broker_pub {
    const char *topic;
    size_t topic_len;
    const uint8_t *payload;
    size_t payload_len;
    uint8_t qos;
    bool retain;
    const uint8_t *props; /* MQTT 5 properties to pass on (message.h's props), props_len bytes */
    size_t props_len;
    uint64_t expire_at;         /* broker clock; 0 = never */
    const struct session *from; /* the publisher's session (No Local) */
    bool v5;                    /* from an MQTT 5 client: its v5 encoding is built at once */
};
/* A client's PUBLISH, still in the read buffer: as broker_publish, but no message is allocated
 * when no local session wants it and it is not retained (the cluster hook gets a view). Returns
 * how many receivers it went to (local sessions plus peers with subscribers: 0 is MQTT 5's "no
 * matching subscribers"), or -1 when out of memory. */
int broker_publish_packet(struct broker *b, const struct broker_pub *p);
/* Send s the retained messages matching its new subscription to filter, at most at granted QoS
 * [MQTT-3.8.4-3], with the retain flag [MQTT-3.3.1-8]. */
void broker_send_retained(struct broker *b, struct session *s, const char *filter, size_t len,
                          uint8_t granted);
/* Whether s (NULL: a client before CONNECT) may read or write topic: the ACL file's verdict, and
 * no client writes $SYS. */
bool broker_acl_allows(const struct broker *b, const struct session *s, const char *topic,
                       size_t len, enum acl_access access);
/* Enter s into the subscription tree for filter at qos (replacing its earlier QoS), or take it
 * out; the first local subscriber of a filter and its last tell the cluster. The session keeps
 * its own list (session.c); these keep the tree and the per-filter counts. 0 or -1 (no memory). */
int broker_subscribe(struct broker *b, struct session *s, const char *filter, size_t len,
                     uint8_t qos, bool is_new);
void broker_unsubscribe(struct broker *b, struct session *s, const char *filter, size_t len);

/* ---- CONNECT ---- */

/* The CONNACK code for p's credentials (--password-file, --allow-anonymous). */
uint8_t broker_authenticate(const struct broker *b, const struct mqtt_connect *p);
/* A client id for a client that sent none [MQTT-3.1.3-6]: unique across the cluster. */
void broker_client_id_gen(struct broker *b, char *buf, size_t len);
/* Ask the cluster whether to hold the CONNACK of client_id (hooks.on_connect). Returns the token
 * broker_connect_resume will name (never 0), or 0 to go on at once. */
uint64_t broker_connect_hold(struct broker *b, const char *client_id, bool clean);

/* ---- Loop turn ---- */

/* Something is due at this turn's check phase (output to flush, a publisher to resume): keep the
 * loop's poll from blocking until then. */
void broker_wake(struct broker *b);

/* The sessions table (session.h), kept by the broker for the session module. */
struct sessions *broker_sessions(struct broker *b);

#endif
