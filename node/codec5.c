/*
 * codec5.c - the MQTT 5.0 packet bodies: decoders for every v5 packet after the fixed header (which
 * codec.c reads for both levels, as it decodes CONNECT and SUBSCRIBE / UNSUBSCRIBE of both), the
 * reason-code tables and the v5 SUBSCRIBE iterator. The same format rules as the 3.1.1 decoder
 * where the spec kept them; properties are props.c's.
 */
#include "codec.h"

#include "codec_int.h"

/* Reason codes each packet may carry [MQTT-2.4]: short lists, looked up only on a non-zero code. */
static bool reason_in(const uint8_t *list, size_t n, uint8_t reason)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == reason)
            return true;
    return false;
}

static const uint8_t rc_connack[] = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                     0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
                                     0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
static const uint8_t rc_puback[] = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
static const uint8_t rc_pubrel[] = {0x00, 0x92}; /* and PUBCOMP */
static const uint8_t rc_suback[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                                    0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
static const uint8_t rc_unsuback[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
static const uint8_t rc_disconnect[] = {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
                                        0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
                                        0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
static const uint8_t rc_auth[] = {0x00, 0x18, 0x19};

#define IN(list, r) reason_in(list, sizeof list, r)

/* The spec's reason-code table per packet: CONNACK (sec. 3.2.2.2), PUBACK (sec. 3.4.2.1), PUBREC
 * (sec. 3.5.2.1), PUBREL (sec. 3.6.2.1), PUBCOMP (sec. 3.7.2.1), SUBACK [MQTT-3.9.3], UNSUBACK
 * [MQTT-3.11.3], DISCONNECT (sec. 3.14.2.1), AUTH (sec. 3.15.2.1). */
bool codec_reason_valid(enum mqtt_type type, uint8_t reason)
{
    switch (type) {
    case MQTT_CONNACK:
        return IN(rc_connack, reason);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
        return IN(rc_puback, reason);
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return IN(rc_pubrel, reason);
    case MQTT_SUBACK:
        return IN(rc_suback, reason);
    case MQTT_UNSUBACK:
        return IN(rc_unsuback, reason);
    case MQTT_DISCONNECT:
        return IN(rc_disconnect, reason);
    case MQTT_AUTH:
        return IN(rc_auth, reason);
    default:
        return false;
    }
}

/* CONNACK v5 [MQTT-3.2]: acknowledge flags (bits 7..1 reserved), reason, properties. */
static int decode_connack(struct cursor *c, struct mqtt_packet *p)
{
    struct mqtt_connack *o = &p->u.connack;

    if (cursor_left(c) < 2)
        return CODEC_ERR_MALFORMED;
    uint8_t ack = c->p[0], rc = c->p[1];
    c->p += 2;
    if (ack & 0xFE) /* (sec. 3.2.2.1) */
        return CODEC_ERR_MALFORMED;
    if (!codec_reason_valid(MQTT_CONNACK, rc))
        return CODEC_ERR_REASON;
    if (rc != 0 && (ack & 1)) /* [MQTT-3.2.2-6] */
        return CODEC_ERR_MALFORMED;
    o->session_present = ack & 1;
    o->rc = rc;
    int r = codec_cursor_props(c, MQTT_CONNACK, &p->props);
    if (r != CODEC_OK)
        return r;
    return cursor_left(c) == 0 ? CODEC_OK : CODEC_ERR_MALFORMED;
}

/* PUBLISH v5 [MQTT-3.3]: topic, packet id when QoS > 0, properties, payload. An empty topic is
 * allowed only with a Topic Alias (sec. 3.3.2.3.4). */
static int decode_publish(struct cursor *c, struct mqtt_packet *p)
{
    struct mqtt_publish *o = &p->u.publish;
    int rc;

    o->dup = (p->flags & 0x08) != 0;
    o->qos = (p->flags >> 1) & 3;
    o->retain = (p->flags & 0x01) != 0;
    o->packet_id = 0;
    if (!cursor_str(c, &o->topic))
        return CODEC_ERR_MALFORMED;
    if (o->qos > 0 && !cursor_u16(c, &o->packet_id))
        return CODEC_ERR_MALFORMED;
    if (o->topic.len > 0 && (rc = codec_topic_name_check(o->topic.data, o->topic.len)) != CODEC_OK)
        return rc;                       /* [MQTT-3.3.2-1/2] */
    if (o->qos > 0 && o->packet_id == 0) /* [MQTT-2.2.1-3] */
        return CODEC_ERR_PACKET_ID;
    if ((rc = codec_cursor_props(c, MQTT_PUBLISH, &p->props)) != CODEC_OK)
        return rc;
    if (o->topic.len == 0 && !props_has(&p->props.v, PROP_TOPIC_ALIAS))
        return CODEC_ERR_PROTOCOL; /* (sec. 3.3.2.3.4) */
    o->payload = c->p;
    o->payload_len = cursor_left(c);
    return CODEC_OK;
}

/* The optional tail of an ack, DISCONNECT or AUTH: a reason (Success when the packet ends here),
 * then a property block (none when it ends after the reason), then nothing (sec. 3.4.2.1),
 * (sec. 3.14.2.1), (sec. 3.15.2.1). */
static int reason_props_tail(struct cursor *c, struct mqtt_packet *p, uint8_t *reason)
{
    *reason = 0;
    if (cursor_left(c) == 0)
        return CODEC_OK;
    *reason = *c->p++;
    if (!codec_reason_valid(p->type, *reason))
        return CODEC_ERR_REASON;
    if (cursor_left(c) == 0)
        return CODEC_OK;
    int rc = codec_cursor_props(c, p->type, &p->props);
    if (rc != CODEC_OK)
        return rc;
    return cursor_left(c) == 0 ? CODEC_OK : CODEC_ERR_MALFORMED;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP v5 [MQTT-3.4.2]: packet id, then reason and properties, each
 * omitted when remaining length is 2 (Success, none) or 3 (no properties) (sec. 3.4.2.1). */
static int decode_ack(struct cursor *c, struct mqtt_packet *p)
{
    struct mqtt_ack *o = &p->u.ack;

    if (!cursor_u16(c, &o->packet_id))
        return CODEC_ERR_MALFORMED;
    if (o->packet_id == 0)
        return CODEC_ERR_PACKET_ID;
    return reason_props_tail(c, p, &o->reason);
}

/* SUBACK / UNSUBACK v5 [MQTT-3.9], [MQTT-3.11]: packet id, properties, one or more reason codes. */
static int decode_reason_list(struct cursor *c, struct mqtt_packet *p)
{
    struct mqtt_list *o = &p->u.suback;
    int rc;

    if (!cursor_u16(c, &o->packet_id))
        return CODEC_ERR_MALFORMED;
    if (o->packet_id == 0)
        return CODEC_ERR_PACKET_ID;
    if ((rc = codec_cursor_props(c, p->type, &p->props)) != CODEC_OK)
        return rc;
    o->ptr = c->p;
    o->len = o->count = cursor_left(c);
    if (o->len == 0)
        return CODEC_ERR_MALFORMED;
    for (size_t i = 0; i < o->len; i++)
        if (!codec_reason_valid(p->type, o->ptr[i]))
            return CODEC_ERR_REASON;
    return CODEC_OK;
}

/* Every v5 body but CONNECT's (codec.c decodes both levels' CONNECT: it reads the level). */
int codec5_decode_body(struct cursor *c, struct mqtt_packet *p)
{
    switch (p->type) {
    case MQTT_CONNACK:
        return decode_connack(c, p);
    case MQTT_PUBLISH:
        return decode_publish(c, p);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return decode_ack(c, p);
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return codec_decode_filters(c, p->type, &p->props, &p->u.subscribe);
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        return decode_reason_list(c, p);
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        return cursor_left(c) == 0 ? CODEC_OK : CODEC_ERR_MALFORMED;
    case MQTT_DISCONNECT: /* [MQTT-3.14.2]: remaining length 0 is Success */
    case MQTT_AUTH:       /* [MQTT-3.15.2] */
        return reason_props_tail(c, p, &p->u.reason);
    case MQTT_CONNECT:
        break;
    }
    return CODEC_ERR_TYPE; /* not reached: codec.c decodes CONNECT */
}

/* Next v5 SUBSCRIBE entry with its options byte decoded. */
bool codec_subscribe5_next(const struct mqtt_list *l, size_t *pos, struct mqtt_str *filter,
                           struct mqtt_sub_options *opts)
{
    struct cursor c = {l->ptr + *pos, l->ptr + l->len};
    if (*pos >= l->len || !cursor_str(&c, filter) || cursor_left(&c) < 1)
        return false;
    uint8_t b = *c.p++;
    opts->qos = b & 3;
    opts->no_local = (b & 0x04) != 0;
    opts->retain_as_published = (b & 0x08) != 0;
    opts->retain_handling = (b >> 4) & 3;
    *pos = (size_t)(c.p - l->ptr);
    return true;
}
