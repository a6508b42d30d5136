/*
 * handle_ack.c - the small packets: PUBACK, PUBREC, PUBREL, PUBCOMP, PINGREQ, DISCONNECT and
 * MQTT 5's AUTH.
 */
#include "conn_int.h"
#include "persist.h"

/* persist_ack's sender for a 3.1.1-style acknowledgement (no reason code). */
static int ack_send_plain(struct conn *c, uint8_t type, uint16_t id, uint8_t reason)
{
    (void)reason;
    return conn_send_ack(c, (enum mqtt_type)type, id);
}

int handle_ack(struct conn *c, enum mqtt_type type, uint16_t id, uint8_t reason)
{
    struct broker *b = conn_broker(c);
    struct session *s = c->session;
    if (!c->v5)
        reason = 0;
    switch (type) {
    case MQTT_PUBACK:
    case MQTT_PUBCOMP:
        session_ack(b, s, type, id); /* an unknown id is ignored */
        return MQTT_OK;
    case MQTT_PUBREC:
        /* A v5 PUBREC with a failure ends the exchange: no PUBREL [MQTT-4.3.3-4]; the message
         * is done (session_ack on PUBCOMP frees the entry). */
        if (reason >= 0x80) {
            session_ack(b, s, MQTT_PUBREC, id);
            session_ack(b, s, MQTT_PUBCOMP, id);
            return MQTT_OK;
        }
        if (!session_ack(b, s, type, id) && c->v5) /* [MQTT-3.6.2.1] */
            return conn5_send_ack(c, MQTT_PUBREL, id, MQTT_RC_PACKET_ID_NOT_FOUND) < 0
                       ? MQTT_ERR_NO_MEMORY
                       : MQTT_OK;
        /* Held until the PUBREC is durable: after a restart the session must not send the
         * PUBLISH again once the client may have completed it [MQTT-4.3.3-1]. */
        return persist_ack(b, c, MQTT_PUBREL, id, 0, ack_send_plain) < 0 ? MQTT_ERR_NO_MEMORY
                                                                         : MQTT_OK;
    case MQTT_PUBREL: {
        bool known = session_rx_qos2_has(s, id);
        session_rx_qos2_del(s, id);
        if (!known && c->v5) /* [MQTT-3.7.2.1] */
            return conn5_send_ack(c, MQTT_PUBCOMP, id, MQTT_RC_PACKET_ID_NOT_FOUND) < 0
                       ? MQTT_ERR_NO_MEMORY
                       : MQTT_OK;
        if (known)
            persist_session_changed(b, s);
        /* Held until the id's removal is durable: a restart must not take the client's next
         * PUBLISH with this id for a repeat [MQTT-4.3.3-2]. */
        return persist_ack(b, c, MQTT_PUBCOMP, id, 0, ack_send_plain) < 0 ? MQTT_ERR_NO_MEMORY
                                                                          : MQTT_OK;
    }
    default:
        return MQTT_OK;
    }
}

int handle_pingreq(struct conn *c)
{
    uint8_t pkt[CODEC_PING_SIZE]; /* [MQTT-3.12.4-1] */
    return conn_write(c, pkt, codec_encode_pingresp(pkt)) < 0 ? MQTT_ERR_NO_MEMORY : MQTT_OK;
}

/* DISCONNECT: the will is discarded [MQTT-3.14.4-3] and the connection closed [MQTT-3.14.4-1],
 * both by mqtt_close. MQTT 5: reason 0x04 keeps the will [MQTT-3.14.2.1]; a Session Expiry
 * Interval replaces the one CONNECT set, but not one that was 0 [MQTT-3.14.2-2]. */
int handle_disconnect(struct conn *c, const struct mqtt_packet *p)
{
    if (!c->v5)
        return MQTT_ERR_DISCONNECT;
    if (props_has(&p->props.v, PROP_SESSION_EXPIRY) && c->session) {
        if (session_expiry(c->session) == 0 && p->props.v.session_expiry != 0)
            return MQTT_ERR_EXPIRY_FROM_ZERO;
        session_set_expiry(c->session, p->props.v.session_expiry);
        persist_session_changed(conn_broker(c), c->session);
    }
    return p->u.reason == MQTT_RC_DISCONNECT_WITH_WILL ? MQTT_ERR_DISCONNECT_WILL
                                                       : MQTT_ERR_DISCONNECT;
}

/* AUTH: no authentication method is supported, so no exchange can be under way (CONNECT with a
 * method was refused): any AUTH is a protocol error [MQTT-4.12.0-2]. */
int handle_auth(struct conn *c, const struct mqtt_packet *p)
{
    (void)c;
    (void)p;
    return MQTT_ERR_AUTH_PACKET;
}
