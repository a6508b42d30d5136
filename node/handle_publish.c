/*
 * handle_publish.c - PUBLISH from a client: QoS 0/1/2 inbound flows, ACL, retained messages,
 * routing; for MQTT 5 also Topic Aliases, the properties passed on, Message Expiry and the reason
 * code of the acknowledgement.
 *
 * Inbound QoS 2 uses the spec's "method B": the message is delivered on first receipt and its
 * packet id is remembered until PUBREL, so a re-sent PUBLISH (DUP) is acknowledged again but never
 * delivered twice [MQTT-4.3.3-2].
 */
#include <stdlib.h>
#include <string.h>

#include "conn_int.h"
#include "persist.h"
#include "topic.h"

/* The properties a v5 PUBLISH passes on to subscribers: all but Topic Alias (this connection's),
 * Message Expiry Interval (kept as a time, sent as what is left) and Subscription Identifier (the
 * subscriber's) [MQTT-3.3.2-4/6], [MQTT-3.3.4-3]. */
#define PUBLISH_PROPS_NOT_PASSED                                                                   \
    (1ULL << PROP_TOPIC_ALIAS | 1ULL << PROP_MESSAGE_EXPIRY | 1ULL << PROP_SUBSCRIPTION_ID)

/* MQTT 5: the topic (an alias resolved or set), the properties to pass on and the expiry, into
 * bp; *scratch holds the copied properties (the caller frees it). */
static int publish5_prepare(struct conn *c, const struct mqtt_packet *pkt, struct broker_pub *bp,
                            uint8_t **scratch)
{
    const struct props_view *v = &pkt->props;
    if (v->subid_count) /* [MQTT-3.3.4-6] */
        return MQTT_ERR_SUBID_FROM_CLIENT;
    if (props_has(&v->v, PROP_TOPIC_ALIAS)) {
        int rc = conn5_alias(c, v->v.topic_alias, &bp->topic, &bp->topic_len);
        if (rc != MQTT_OK)
            return rc;
    }
    /* [MQTT-3.3.2-14] a Response Topic is the Topic Name of the response, so without wildcards:
     * a Protocol Error in the packet's content, answered as one in its format (DISCONNECT 0x82). */
    if (props_has(&v->v, PROP_RESPONSE_TOPIC) &&
        !topic_name_valid(v->v.response_topic.data, v->v.response_topic.len))
        return CODEC_ERR_PROTOCOL;
    /* [MQTT-3.3.2.3.2] the server may check a payload said to be UTF-8; it does, as Mosquitto. */
    if (props_has(&v->v, PROP_PAYLOAD_FORMAT) && v->v.payload_format == 1 &&
        !codec_utf8_valid((const char *)bp->payload, bp->payload_len))
        return MQTT_ERR_PAYLOAD_FORMAT;
    if (props_has(&v->v, PROP_MESSAGE_EXPIRY))
        bp->expire_at = broker_now_ms(conn_broker(c)) + (uint64_t)v->v.message_expiry * 1000;
    if (v->len && !(v->v.has & PUBLISH_PROPS_NOT_PASSED)) {
        bp->props = v->ptr; /* all of them are passed on: as they are in the packet */
        bp->props_len = v->len;
    } else if (v->len) {
        if (!(*scratch = malloc(v->len)))
            return MQTT_ERR_NO_MEMORY;
        bp->props = *scratch;
        bp->props_len = props_copy_except(v, PUBLISH_PROPS_NOT_PASSED, *scratch);
    }
    return MQTT_OK;
}

/* The acknowledgement: 3.1.1 has none but success; MQTT 5 says when nobody subscribed (0x10) or
 * the ACL refused (0x87) [MQTT-3.4.2.1]. */
static int publish_ack(struct conn *c, enum mqtt_type type, uint16_t id, uint8_t reason)
{
    if (c->v5 && reason)
        return conn5_send_ack(c, type, id, reason);
    return conn_send_ack(c, type, id);
}

/* persist_ack's sender: publish_ack with the type as a byte. */
static int publish_ack_send(struct conn *c, uint8_t type, uint16_t id, uint8_t reason)
{
    return publish_ack(c, (enum mqtt_type)type, id, reason);
}

int handle_publish(struct conn *c, const struct mqtt_packet *pkt)
{
    const struct mqtt_publish *p = &pkt->u.publish;
    struct broker *b = conn_broker(c);
    struct broker_core *core = broker_core(b);
    struct session *s = c->session;
    if (p->qos > core->cfg.max_qos) /* as Mosquitto's max_qos: 3.1.1 cannot refuse it politely */
        return MQTT_ERR_QOS;
    struct broker_pub bp = {
        .topic = p->topic.data,
        .topic_len = p->topic.len,
        .payload = p->payload,
        .payload_len = p->payload_len,
        .qos = p->qos,
        .retain = p->retain,
        .from = s,
        .v5 = c->v5 != NULL,
    };
    uint8_t *scratch = NULL;
    if (c->v5) {
        int rc = publish5_prepare(c, pkt, &bp, &scratch);
        if (rc != MQTT_OK)
            return rc;
    }
    core->stats.msgs_received++;
    bool duplicate = p->qos == 2 && session_rx_qos2_has(s, p->packet_id);
    if (p->qos == 2 && !duplicate && c->v5 && session_rx_qos2_count(s) >= core->cfg.max_inflight) {
        free(scratch); /* over the Receive Maximum we advertised [MQTT-3.3.4-8] */
        return MQTT_ERR_RECEIVE_MAX;
    }
    uint8_t reason = MQTT_RC_SUCCESS;
    if (duplicate) {
        /* acknowledged again, delivered once */
    } else if (broker_acl_allows(b, s, bp.topic, bp.topic_len, ACL_WRITE)) {
        /* A subscriber (or peer) this feeds that is behind pauses this connection (flow.h). */
        broker_flow_enter(b, &c->flow);
        int n = broker_publish_packet(b, &bp);
        broker_flow_leave(b);
        if (n < 0) {
            free(scratch);
            return MQTT_ERR_NO_MEMORY;
        }
        if (n == 0)
            reason = MQTT_RC_NO_MATCHING_SUBSCRIBERS;
    } else {
        reason = MQTT_RC_NOT_AUTHORIZED; /* 3.1.1 cannot refuse: acknowledged all the same */
    }
    free(scratch);
    int rc = 0;
    if (p->qos == 1) {
        /* Held until what it changed is durable (persist.h) [MQTT-4.3.2-2] */
        rc = persist_ack(b, c, MQTT_PUBACK, p->packet_id, reason, publish_ack_send);
    } else if (p->qos == 2) {
        /* A v5 QoS 2 PUBLISH refused at PUBREC ends there [MQTT-4.3.3-4]: no id kept. */
        if (!duplicate && (!c->v5 || reason < 0x80) && session_rx_qos2_add(s, p->packet_id) < 0)
            return MQTT_ERR_NO_MEMORY;
        persist_session_changed(b, s); /* its inbound id is part of it */
        rc = persist_ack(b, c, MQTT_PUBREC, p->packet_id, reason, publish_ack_send);
    }
    return rc < 0 ? MQTT_ERR_NO_MEMORY : MQTT_OK;
}
