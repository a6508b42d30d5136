/*
 * mqtt.c - the MQTT layer of a connection: decode what arrived, dispatch each packet by type (and
 * by the protocol level CONNECT chose) to its handler, and the one place a handler's error becomes
 * the close of the connection.
 */
#include <string.h>

#include "conn_int.h"

/* How mqtt_close answers an error. */
enum mqtt_err_kind {
    MQTT_KIND_PROTOCOL, /* bad input: logged at info with the peer, counted in protocol_errors */
    MQTT_KIND_REFUSE,   /* CONNECT refused: CONNACK with the code, logged at info */
    MQTT_KIND_LOCAL,    /* our side (no memory) or the client's choice: logged at debug */
};

static const struct {
    const char *text;
    uint8_t kind;    /* enum mqtt_err_kind */
    uint8_t connack; /* the CONNACK code a refusal sends */
} mqtt_errs[] = {
    [MQTT_ERR_TOO_LARGE] = {"packet larger than max-packet-size", MQTT_KIND_PROTOCOL, 0},
    [MQTT_ERR_NOT_CONNECT] = {"first packet is not CONNECT", MQTT_KIND_PROTOCOL, 0},
    [MQTT_ERR_SECOND_CONNECT] = {"second CONNECT", MQTT_KIND_PROTOCOL, 0},
    [MQTT_ERR_SERVER_PACKET] = {"packet type only a server may send", MQTT_KIND_PROTOCOL, 0},
    [MQTT_ERR_WILL_TOPIC] = {"invalid will topic", MQTT_KIND_PROTOCOL, 0},
    [MQTT_ERR_QOS] = {"PUBLISH QoS above max-qos", MQTT_KIND_PROTOCOL, 0},
    [MQTT_ERR_CONNECT_TIMEOUT] = {"no CONNECT in time", MQTT_KIND_PROTOCOL, 0},
    [MQTT_ERR_KEEPALIVE] = {"keepalive timeout", MQTT_KIND_PROTOCOL, 0},
    [MQTT_ERR_SERVER_FULL] = {"max-connections reached", MQTT_KIND_REFUSE,
                              MQTT_CONNACK_UNAVAILABLE},
    [MQTT_ERR_EMPTY_ID] = {"empty client id with clean session 0", MQTT_KIND_REFUSE,
                           MQTT_CONNACK_ID_REJECTED},
    [MQTT_ERR_NOT_AUTHORIZED] = {"anonymous not allowed", MQTT_KIND_REFUSE,
                                 MQTT_CONNACK_NOT_AUTHORIZED},
    [MQTT_ERR_BAD_CREDENTIALS] = {"bad username or password", MQTT_KIND_REFUSE,
                                  MQTT_CONNACK_BAD_CREDENTIALS},
    [MQTT_ERR_NO_MEMORY] = {"out of memory", MQTT_KIND_LOCAL, 0},
    [MQTT_ERR_DISCONNECT] = {"DISCONNECT", MQTT_KIND_LOCAL, 0},
};

void mqtt_close(struct conn *c, int err)
{
    if (c->state == CONN_CLOSING || err == MQTT_OK)
        return;
    struct broker_core *core = broker_core(conn_broker(c));
    char peer[64];
    if (err < 0) { /* a packet that did not decode */
        if (err == CODEC_ERR_PROTOCOL_LEVEL && c->state == CONN_NEW) {
            /* [MQTT-3.1.2-2] unacceptable protocol level (an MQTT 3.1 "MQIsdp" client
             * included): CONNACK 0x01, then close, so the client knows why. */
            uint8_t ack[CODEC_CONNACK_SIZE];
            conn_write(c, ack, codec_encode_connack(ack, false, MQTT_CONNACK_BAD_PROTOCOL));
        }
        core->stats.protocol_errors++;
        log_info(&core->log, "closing %s (%s): %s", conn_peer(c, peer, sizeof(peer)), conn_name(c),
                 codec_strerror(err));
        conn_close(c, NULL);
        return;
    }
    switch (mqtt_errs[err].kind) {
    case MQTT_KIND_PROTOCOL:
        core->stats.protocol_errors++;
        log_info(&core->log, "closing %s (%s): %s", conn_peer(c, peer, sizeof(peer)), conn_name(c),
                 mqtt_errs[err].text);
        conn_close(c, NULL);
        break;
    case MQTT_KIND_REFUSE: { /* [MQTT-3.2.2-5] CONNACK with the refusal, then close */
        uint8_t ack[CODEC_CONNACK_SIZE];
        conn_write(c, ack, codec_encode_connack(ack, false, mqtt_errs[err].connack));
        log_info(&core->log, "refused CONNECT from %s: %s", conn_peer(c, peer, sizeof(peer)),
                 mqtt_errs[err].text);
        conn_close(c, NULL);
        break;
    }
    default:
        if (err == MQTT_ERR_DISCONNECT)
            c->got_disconnect = true; /* the will is discarded [MQTT-3.14.4-3] */
        conn_close(c, mqtt_errs[err].text);
        break;
    }
}

/* An MQTT 3.1 CONNECT (protocol name "MQIsdp"), which this 3.1.1 server answers with CONNACK 0x01.
 */
static bool mqtt_is_31(const uint8_t *p, size_t len)
{
    static const uint8_t name[] = {0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p'};
    if (len < 2 || p[0] != 0x10)
        return false;
    size_t i = 1;
    while (i < len && i < 5 && (p[i] & 0x80))
        i++;
    i++;
    return len >= i + sizeof(name) && memcmp(p + i, name, sizeof(name)) == 0;
}

/* One decoded MQTT 3.1.1 packet to its handler. */
static int mqtt311_dispatch(struct conn *c, const struct mqtt_packet *p)
{
    switch (p->type) {
    case MQTT_CONNECT:
        return c->state == CONN_NEW ? handle_connect(c, &p->u.connect) : MQTT_ERR_SECOND_CONNECT;
    case MQTT_PUBLISH:
        return handle_publish(c, &p->u.publish);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return handle_ack(c, p->type, p->u.packet_id);
    case MQTT_SUBSCRIBE:
        return handle_subscribe(c, &p->u.subscribe);
    case MQTT_UNSUBSCRIBE:
        return handle_unsubscribe(c, &p->u.unsubscribe);
    case MQTT_PINGREQ:
        return handle_pingreq(c);
    case MQTT_DISCONNECT:
        return handle_disconnect(c);
    default: /* CONNACK, SUBACK, UNSUBACK, PINGRESP */
        return MQTT_ERR_SERVER_PACKET;
    }
}

/* Decode the packet at data[0..len) as the connection's protocol level reads it. One level today:
 * 3.1.1 (4), which also decodes the CONNECT that chooses it; MQTT 5 would add its decoder and
 * dispatch here. */
static int mqtt_decode(const struct conn *c, const uint8_t *data, size_t len, struct mqtt_packet *p)
{
    return codec_decode(data, len, broker_cfg(conn_broker(c))->max_packet_size, p);
}

size_t mqtt_parse(struct conn *c, const uint8_t *data, size_t len)
{
    size_t max_packet = broker_cfg(conn_broker(c))->max_packet_size;
    size_t off = 0;
    while (off < len && (c->state == CONN_NEW || c->state == CONN_ACTIVE) && !c->flow.gate) {
        struct mqtt_packet p;
        int rc = mqtt_decode(c, data + off, len - off, &p);
        if (rc == CODEC_INCOMPLETE)
            break;
        if (rc < 0) {
            if (c->state == CONN_NEW && mqtt_is_31(data + off, len - off))
                rc = CODEC_ERR_PROTOCOL_LEVEL;
            mqtt_close(c, rc);
            break;
        }
        if (p.total_len > max_packet) { /* the limit counts the whole packet */
            mqtt_close(c, MQTT_ERR_TOO_LARGE);
            break;
        }
        off += p.total_len;
        conn_mark_rx(c);
        if (c->state == CONN_NEW && p.type != MQTT_CONNECT) {
            mqtt_close(c, MQTT_ERR_NOT_CONNECT);
            break;
        }
        rc = mqtt311_dispatch(c, &p);
        if (rc != MQTT_OK) {
            mqtt_close(c, rc);
            break;
        }
    }
    return off;
}

/* While its PUBLISHes wait (flow.gate), a connection's acknowledgements of what we send it
 * (PUBACK, PUBREC, PUBCOMP) and PINGREQs are taken out of its buffered input and handled ahead of
 * them: order among those and other packets does not matter to MQTT, and a client that both
 * publishes and subscribes (or two that publish to each other) must keep acknowledging, or the
 * subscriber it is would never drain and its publishers never resume. Everything else, PUBREL
 * included (it must follow its PUBLISH), waits in order. Packets before skim_off were looked at
 * already; the buffer is compacted in one pass. */
void mqtt_skim(struct conn *c)
{
    size_t max_packet = broker_cfg(conn_broker(c))->max_packet_size;
    size_t r = c->skim_off, w = c->skim_off;
    while (r < c->in_len && c->state == CONN_ACTIVE) {
        struct mqtt_packet p;
        if (mqtt_decode(c, c->in + r, c->in_len - r, &p) != CODEC_OK || p.total_len > max_packet)
            break; /* incomplete or bad: left for the in-order parse to handle */
        int rc = MQTT_OK;
        if (p.type == MQTT_PUBACK || p.type == MQTT_PUBREC || p.type == MQTT_PUBCOMP) {
            conn_mark_rx(c);
            rc = handle_ack(c, p.type, p.u.packet_id);
        } else if (p.type == MQTT_PINGREQ) {
            conn_mark_rx(c);
            rc = handle_pingreq(c);
        } else {
            if (w != r)
                memmove(c->in + w, c->in + r, p.total_len);
            w += p.total_len;
        }
        r += p.total_len;
        if (rc != MQTT_OK) {
            mqtt_close(c, rc);
            return;
        }
    }
    if (c->state == CONN_CLOSING || w == r)
        return;
    memmove(c->in + w, c->in + r, c->in_len - r);
    c->in_len -= (uint32_t)(r - w);
    c->skim_off = (uint32_t)w;
}

void mqtt_input(struct conn *c)
{
    c->skim_off = 0;
    size_t used = mqtt_parse(c, c->in, c->in_len);
    if (c->state == CONN_CLOSING)
        return;
    c->in_len -= (uint32_t)used;
    if (c->in_len == 0)
        conn_input_drop(c); /* idle connections keep no buffer */
    else if (used)
        memmove(c->in, c->in + used, c->in_len);
}
