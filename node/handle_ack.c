/*
 * handle_ack.c - the small packets: PUBACK, PUBREC, PUBREL, PUBCOMP, PINGREQ, DISCONNECT.
 */
#include "broker_internal.h"

void handle_ack(struct conn *c, enum mqtt_type type, uint16_t id)
{
    struct broker *b = c->b;
    struct session *s = c->session;
    uint8_t pkt[CODEC_ACK_SIZE];
    switch (type) {
    case MQTT_PUBACK:
    case MQTT_PUBCOMP:
        session_ack(b, s, type, id); /* an unknown id is ignored */
        break;
    case MQTT_PUBREC:
        session_ack(b, s, type, id);
        conn_write(c, pkt, codec_encode_ack(pkt, MQTT_PUBREL, id)); /* [MQTT-4.3.3-1] */
        break;
    case MQTT_PUBREL:
        session_rx_qos2_del(s, id);
        conn_write(c, pkt, codec_encode_ack(pkt, MQTT_PUBCOMP, id)); /* [MQTT-4.3.3-2] */
        break;
    default:
        break;
    }
}

void handle_pingreq(struct conn *c)
{
    uint8_t pkt[CODEC_PING_SIZE]; /* [MQTT-3.12.4-1] */
    conn_write(c, pkt, codec_encode_pingresp(pkt));
}

/* DISCONNECT: the will is discarded [MQTT-3.14.4-3] and the connection closed [MQTT-3.14.4-1]. */
void handle_disconnect(struct conn *c)
{
    c->got_disconnect = true;
    conn_close(c, "DISCONNECT");
}
