/*
 * handle_ack.c - the small packets: PUBACK, PUBREC, PUBREL, PUBCOMP, PINGREQ, DISCONNECT.
 */
#include "conn_int.h"

int handle_ack(struct conn *c, enum mqtt_type type, uint16_t id)
{
    struct broker *b = conn_broker(c);
    struct session *s = c->session;
    switch (type) {
    case MQTT_PUBACK:
    case MQTT_PUBCOMP:
        session_ack(b, s, type, id); /* an unknown id is ignored */
        return MQTT_OK;
    case MQTT_PUBREC:
        session_ack(b, s, type, id);
        return conn_send_ack(c, MQTT_PUBREL, id) < 0 ? MQTT_ERR_NO_MEMORY
                                                     : MQTT_OK; /* [MQTT-4.3.3-1] */
    case MQTT_PUBREL:
        session_rx_qos2_del(s, id);
        return conn_send_ack(c, MQTT_PUBCOMP, id) < 0 ? MQTT_ERR_NO_MEMORY
                                                      : MQTT_OK; /* [MQTT-4.3.3-2] */
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
 * both by mqtt_close. */
int handle_disconnect(struct conn *c)
{
    (void)c;
    return MQTT_ERR_DISCONNECT;
}
