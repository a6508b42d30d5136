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
    uint8_t connack; /* the 3.1.1 CONNACK code a refusal sends */
    uint8_t reason;  /* the MQTT 5 reason code (CONNACK for a refusal, else DISCONNECT); 0: none */
} mqtt_errs[] = {
    [MQTT_ERR_TOO_LARGE] = {"packet larger than max-packet-size", MQTT_KIND_PROTOCOL, 0,
                            MQTT_RC_PACKET_TOO_LARGE},
    [MQTT_ERR_NOT_CONNECT] = {"first packet is not CONNECT", MQTT_KIND_PROTOCOL, 0, 0},
    [MQTT_ERR_SECOND_CONNECT] = {"second CONNECT", MQTT_KIND_PROTOCOL, 0, MQTT_RC_PROTOCOL_ERROR},
    [MQTT_ERR_SERVER_PACKET] = {"packet type only a server may send", MQTT_KIND_PROTOCOL, 0,
                                MQTT_RC_PROTOCOL_ERROR},
    [MQTT_ERR_WILL_TOPIC] = {"invalid will topic", MQTT_KIND_PROTOCOL, 0,
                             MQTT_RC_TOPIC_NAME_INVALID},
    [MQTT_ERR_QOS] = {"PUBLISH or will QoS above max-qos", MQTT_KIND_PROTOCOL, 0,
                      MQTT_RC_QOS_NOT_SUPPORTED},
    [MQTT_ERR_CONNECT_TIMEOUT] = {"no CONNECT in time", MQTT_KIND_PROTOCOL, 0, 0},
    [MQTT_ERR_KEEPALIVE] = {"keepalive timeout", MQTT_KIND_PROTOCOL, 0, MQTT_RC_KEEPALIVE_TIMEOUT},
    [MQTT_ERR_SERVER_FULL] = {"max-connections reached", MQTT_KIND_REFUSE, MQTT_CONNACK_UNAVAILABLE,
                              MQTT_RC_SERVER_BUSY},
    [MQTT_ERR_EMPTY_ID] = {"empty client id with clean session 0", MQTT_KIND_REFUSE,
                           MQTT_CONNACK_ID_REJECTED, MQTT_RC_CLIENT_ID_INVALID},
    [MQTT_ERR_NOT_AUTHORIZED] = {"anonymous not allowed", MQTT_KIND_REFUSE,
                                 MQTT_CONNACK_NOT_AUTHORIZED, MQTT_RC_NOT_AUTHORIZED},
    [MQTT_ERR_BAD_CREDENTIALS] = {"bad username or password", MQTT_KIND_REFUSE,
                                  MQTT_CONNACK_BAD_CREDENTIALS, MQTT_RC_BAD_CREDENTIALS},
    [MQTT_ERR_NO_MEMORY] = {"out of memory", MQTT_KIND_LOCAL, 0, MQTT_RC_UNSPECIFIED},
    [MQTT_ERR_DISCONNECT] = {"DISCONNECT", MQTT_KIND_LOCAL, 0, 0},
    [MQTT_ERR_DISCONNECT_WILL] = {"DISCONNECT with will", MQTT_KIND_LOCAL, 0, 0},
    [MQTT_ERR_BAD_AUTH_METHOD] = {"unsupported authentication method", MQTT_KIND_REFUSE,
                                  MQTT_CONNACK_NOT_AUTHORIZED, MQTT_RC_BAD_AUTH_METHOD},
    [MQTT_ERR_TOPIC_ALIAS] = {"topic alias 0 or above the maximum", MQTT_KIND_PROTOCOL, 0,
                              MQTT_RC_TOPIC_ALIAS_INVALID},
    [MQTT_ERR_ALIAS_UNKNOWN] = {"topic alias never set", MQTT_KIND_PROTOCOL, 0,
                                MQTT_RC_PROTOCOL_ERROR},
    [MQTT_ERR_SUBID_FROM_CLIENT] = {"PUBLISH with a subscription identifier", MQTT_KIND_PROTOCOL, 0,
                                    MQTT_RC_PROTOCOL_ERROR},
    [MQTT_ERR_RECEIVE_MAX] = {"receive maximum exceeded", MQTT_KIND_PROTOCOL, 0,
                              MQTT_RC_RECEIVE_MAX_EXCEEDED},
    [MQTT_ERR_EXPIRY_FROM_ZERO] = {"session expiry set at DISCONNECT after 0", MQTT_KIND_PROTOCOL,
                                   0, MQTT_RC_PROTOCOL_ERROR},
    [MQTT_ERR_PAYLOAD_FORMAT] = {"payload is not UTF-8 as its format indicator says",
                                 MQTT_KIND_PROTOCOL, 0, MQTT_RC_PAYLOAD_FORMAT_INVALID},
    [MQTT_ERR_RETAIN_UNAVAIL] = {"retain not available", MQTT_KIND_PROTOCOL, 0,
                                 MQTT_RC_RETAIN_NOT_SUPPORTED},
    [MQTT_ERR_TAKEN_OVER] = {"session taken over", MQTT_KIND_LOCAL, 0, MQTT_RC_SESSION_TAKEN_OVER},
    [MQTT_ERR_SHUTDOWN] = {"server shutting down", MQTT_KIND_LOCAL, 0,
                           MQTT_RC_SERVER_SHUTTING_DOWN},
    [MQTT_ERR_KEEPALIVE_LONG] = {"keepalive above max-keepalive", MQTT_KIND_REFUSE,
                                 MQTT_CONNACK_ID_REJECTED, MQTT_RC_UNSPECIFIED},
    [MQTT_ERR_AUTH_PACKET] = {"AUTH without an authentication exchange", MQTT_KIND_PROTOCOL, 0,
                              MQTT_RC_PROTOCOL_ERROR},
};

/* A v5 client is told why: CONNACK with the reason before CONNACK was sent [MQTT-3.2.2-6],
 * DISCONNECT with it after [MQTT-4.13.1-1]; a 3.1.1 client only gets a refusing CONNACK. */
static void mqtt_answer(struct conn *c, int err, uint8_t reason, const char *text)
{
    if (!c->v5 || !reason)
        return;
    if (c->state == CONN_ACTIVE) {
        conn5_send_disconnect(c, reason, text);
        return;
    }
    struct props_build pb = {0};
    size_t tl = strlen(text);
    if (c->v5->problem_info) {
        pb.v.has = 1ULL << PROP_REASON_STRING;
        pb.v.reason_string = (struct mqtt_str){text, (uint16_t)tl};
        /* Not beyond the client's Maximum Packet Size [MQTT-3.2.2-19] */
        if (c->v5->max_packet && codec_connack5_size(&pb) > c->v5->max_packet)
            pb.v.has = 0;
    }
    uint8_t ack[128];
    if (codec_connack5_size(&pb) <= sizeof(ack))
        conn_write(c, ack, codec_encode_connack5(ack, false, reason, &pb));
    (void)err;
}

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
        } else {
            mqtt_answer(c, err, codec_reason_code(err), codec_strerror(err));
        }
        core->stats.protocol_errors++;
        log_info(&core->log, "closing %s (%s): %s", conn_peer(c, peer, sizeof(peer)), conn_name(c),
                 codec_strerror(err));
        conn_close(c, NULL);
        return;
    }
    if (err >= MQTT_ERR__COUNT)
        err = MQTT_ERR_NO_MEMORY;
    switch (mqtt_errs[err].kind) {
    case MQTT_KIND_PROTOCOL:
        core->stats.protocol_errors++;
        log_info(&core->log, "closing %s (%s): %s", conn_peer(c, peer, sizeof(peer)), conn_name(c),
                 mqtt_errs[err].text);
        mqtt_answer(c, err, mqtt_errs[err].reason, mqtt_errs[err].text);
        conn_close(c, NULL);
        break;
    case MQTT_KIND_REFUSE: { /* [MQTT-3.2.2-5] CONNACK with the refusal, then close */
        if (c->v5) {
            mqtt_answer(c, err, mqtt_errs[err].reason, mqtt_errs[err].text);
        } else {
            uint8_t ack[CODEC_CONNACK_SIZE];
            conn_write(c, ack, codec_encode_connack(ack, false, mqtt_errs[err].connack));
        }
        log_info(&core->log, "refused CONNECT from %s: %s", conn_peer(c, peer, sizeof(peer)),
                 mqtt_errs[err].text);
        conn_close(c, NULL);
        break;
    }
    default:
        if (err == MQTT_ERR_DISCONNECT)
            c->got_disconnect = true; /* the will is discarded [MQTT-3.14.4-3] */
        else if (err != MQTT_ERR_DISCONNECT_WILL)
            mqtt_answer(c, err, mqtt_errs[err].reason, mqtt_errs[err].text);
        conn_close(c, mqtt_errs[err].text);
        break;
    }
}

/* Whether data starts as a CONNECT whose variable header begins with head[0..n): its protocol
 * name (and level), read from the first bytes only, for a CONNECT that did not decode. */
static bool mqtt_connect_starts(const uint8_t *p, size_t len, const uint8_t *head, size_t n)
{
    if (len < 2 || p[0] != 0x10)
        return false;
    size_t i = 1;
    while (i < len && i < 5 && (p[i] & 0x80))
        i++;
    i++;
    return len >= i + n && memcmp(p + i, head, n) == 0;
}

/* An MQTT 3.1 CONNECT (protocol name "MQIsdp"), which this 3.1.1 server answers with CONNACK 0x01.
 */
static bool mqtt_is_31(const uint8_t *p, size_t len)
{
    static const uint8_t name[] = {0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p'};
    return mqtt_connect_starts(p, len, name, sizeof(name));
}

/* A CONNECT of protocol level 5 ("MQTT", 5): one that fails to decode still gets a v5 CONNACK
 * with the reason [MQTT-4.13.1-1]. */
static bool mqtt_is_v5_connect(const uint8_t *p, size_t len)
{
    static const uint8_t head[] = {0x00, 0x04, 'M', 'Q', 'T', 'T', MQTT_PROTOCOL_LEVEL_5};
    return mqtt_connect_starts(p, len, head, sizeof(head));
}

/* One decoded packet to its handler; the handlers read the protocol level off the connection. */
static int mqtt_dispatch(struct conn *c, const struct mqtt_packet *p)
{
    switch (p->type) {
    case MQTT_CONNECT:
        return c->state == CONN_NEW ? handle_connect(c, p) : MQTT_ERR_SECOND_CONNECT;
    case MQTT_PUBLISH:
        return handle_publish(c, p);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return handle_ack(c, p->type, p->u.ack.packet_id, p->u.ack.reason);
    case MQTT_SUBSCRIBE:
        return handle_subscribe(c, p);
    case MQTT_UNSUBSCRIBE:
        return handle_unsubscribe(c, p);
    case MQTT_PINGREQ:
        return handle_pingreq(c);
    case MQTT_DISCONNECT:
        return handle_disconnect(c, p);
    case MQTT_AUTH:
        return handle_auth(c, p);
    default: /* CONNACK, SUBACK, UNSUBACK, PINGRESP */
        return MQTT_ERR_SERVER_PACKET;
    }
}

/* Decode the packet at data[0..len) as the connection's protocol level reads it: before CONNECT
 * a CONNECT of either level; after it, that level's format (3.1.1 = 4, MQTT 5 = 5). */
static int mqtt_decode(const struct conn *c, const uint8_t *data, size_t len, struct mqtt_packet *p)
{
    uint8_t level = c->state == CONN_NEW ? 0
                    : c->v5              ? MQTT_PROTOCOL_LEVEL_5
                                         : MQTT_PROTOCOL_LEVEL_311;
    return codec_decode_level(data, len, broker_cfg(conn_broker(c))->max_packet_size, level, p);
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
            /* A v5 client is told why its CONNECT was refused (mqtt_answer needs c->v5, which
             * handle_connect would have set); without memory for it, it is only closed. */
            else if (c->state == CONN_NEW && mqtt_is_v5_connect(data + off, len - off))
                (void)conn5_init(c);
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
        rc = mqtt_dispatch(c, &p);
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
            rc = handle_ack(c, p.type, p.u.ack.packet_id, p.u.ack.reason);
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
