/*
 * conn5.c - what MQTT 5 adds to a connection: its negotiated limits, inbound Topic Aliases, and
 * the packets that carry reason codes and properties (acks, DISCONNECT, PUBLISH).
 *
 * A v5 PUBLISH cannot share one encoding among its subscribers as a 3.1.1 one does: the Message
 * Expiry Interval counts down and each subscriber has its own Subscription Identifiers. So it is
 * assembled per delivery, straight into the connection's output: fixed header, topic, packet id,
 * property block (expiry left, subscription ids, then the publisher's properties as they came),
 * payload. 3.1.1 connections keep the shared encoding.
 */
#include <stdlib.h>
#include <string.h>

#include "conn_int.h"

#define CONN5_SUBIDS_MAX 32 /* Subscription Identifiers sent with one PUBLISH */

int conn5_init(struct conn *c)
{
    if (c->v5)
        return 0;
    c->v5 = calloc(1, sizeof(*c->v5));
    if (!c->v5)
        return -1;
    c->v5->receive_max = UINT16_MAX; /* absent: 65,535 [MQTT-3.1.2.11.3] */
    c->v5->problem_info = true;      /* absent: 1 [MQTT-3.1.2.11.7] */
    return 0;
}

void conn5_free(struct conn *c)
{
    if (!c->v5)
        return;
    if (c->v5->alias_in)
        for (int i = 0; i < CONN5_TOPIC_ALIAS_MAX; i++)
            free(c->v5->alias_in[i].topic);
    free(c->v5->alias_in);
    free(c->v5);
    c->v5 = NULL;
}

int conn5_send_ack(struct conn *c, enum mqtt_type type, uint16_t id, uint8_t reason)
{
    uint8_t pkt[8];
    return conn_write(c, pkt, codec_encode_ack5(pkt, type, id, reason, NULL));
}

int conn5_send_disconnect(struct conn *c, uint8_t reason, const char *why)
{
    struct props_build pb = {0};
    size_t wl = why ? strlen(why) : 0;
    if (why && c->v5 && c->v5->problem_info && wl <= UINT16_MAX) {
        pb.v.has = 1ULL << PROP_REASON_STRING;
        pb.v.reason_string = (struct mqtt_str){why, (uint16_t)wl};
        /* Left out where it would make the packet larger than the client accepts
         * [MQTT-3.1.2-24], [MQTT-3.14.2-3]. */
        if (c->v5->max_packet && codec_disconnect5_size(reason, &pb) > c->v5->max_packet)
            pb.v.has = 0;
    }
    size_t n = codec_disconnect5_size(reason, &pb);
    uint8_t *out = conn_reserve(c, n);
    if (!out)
        return -1;
    codec_encode_disconnect5(out, MQTT_DISCONNECT, reason, &pb);
    conn_commit(c, n);
    return 0;
}

/* The per-delivery part of the property block: expiry left and the Subscription Identifiers.
 * Returns its length (written to out, which holds 5 + 5 * CONN5_SUBIDS_MAX bytes). */
static size_t conn5_delivery_props(struct conn *c, const struct message *msg, uint8_t *out)
{
    struct props_build pb = {0};
    uint32_t subids[CONN5_SUBIDS_MAX];
    if (msg->expire_at) { /* [MQTT-3.3.2-6]: what is left of it */
        pb.v.has |= 1ULL << PROP_MESSAGE_EXPIRY;
        pb.v.message_expiry = message_expiry_left(msg, broker_now_ms(conn_broker(c)));
    }
    if (c->session) {
        pb.subid = subids;
        pb.subid_count =
            session_subids(c->session, msg->topic, msg->topic_len, subids, CONN5_SUBIDS_MAX);
    }
    return props_write(out, &pb);
}

bool conn5_publish_fits(struct conn *c, const struct message *msg, uint8_t qos)
{
    if (!c->v5 || !c->v5->max_packet)
        return true;
    uint8_t dp[5 + 5 * CONN5_SUBIDS_MAX];
    size_t plen = conn5_delivery_props(c, msg, dp) + msg->props_len;
    size_t n = codec_publish5_size(msg->topic_len, plen, msg->payload_len, qos);
    return n && n <= c->v5->max_packet;
}

int conn5_send_publish(struct conn *c, struct message *msg, uint8_t qos, uint16_t id, bool dup,
                       bool retain)
{
    uint8_t dp[5 + 5 * CONN5_SUBIDS_MAX];
    size_t dlen = conn5_delivery_props(c, msg, dp);
    size_t plen = dlen + msg->props_len;
    uint8_t stack[512], *props = plen <= sizeof(stack) ? stack : malloc(plen);
    if (!props)
        return -1;
    memcpy(props, dp, dlen);
    if (msg->props_len)
        memcpy(props + dlen, msg->props, msg->props_len);
    struct mqtt_publish p = {
        .dup = dup,
        .retain = retain,
        .qos = qos,
        .packet_id = id,
        .topic = {msg->topic, msg->topic_len},
        .payload = msg->payload,
        .payload_len = msg->payload_len,
    };
    int rc = -1;
    size_t n = codec_publish5_size(msg->topic_len, plen, msg->payload_len, qos), off;
    uint8_t *out = n ? conn_reserve(c, n) : NULL;
    if (out) {
        codec_encode_publish5(out, &p, props, plen, &off);
        conn_commit(c, n);
        broker_core(conn_broker(c))->stats.msgs_sent++;
        rc = 0;
    }
    if (props != stack)
        free(props);
    return rc;
}

int conn5_alias(struct conn *c, uint16_t alias, const char **topic, size_t *len)
{
    if (alias == 0 || alias > CONN5_TOPIC_ALIAS_MAX)
        return MQTT_ERR_TOPIC_ALIAS; /* [MQTT-3.3.2-8/9] */
    struct conn5 *v = c->v5;
    if (!v->alias_in && !(v->alias_in = calloc(CONN5_TOPIC_ALIAS_MAX, sizeof(*v->alias_in))))
        return MQTT_ERR_NO_MEMORY;
    struct conn5_alias *a = &v->alias_in[alias - 1];
    if (*len == 0) { /* use it [MQTT-3.3.2.3.4] */
        if (!a->topic)
            return MQTT_ERR_ALIAS_UNKNOWN;
        *topic = a->topic;
        *len = a->len;
        return MQTT_OK;
    }
    char *copy = malloc(*len + 1); /* set (or replace) it */
    if (!copy)
        return MQTT_ERR_NO_MEMORY;
    memcpy(copy, *topic, *len);
    copy[*len] = '\0';
    free(a->topic);
    a->topic = copy;
    a->len = (uint16_t)*len;
    return MQTT_OK;
}
