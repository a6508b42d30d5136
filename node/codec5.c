/*
 * codec5.c - the MQTT 5.0 packet bodies: decoders for every v5 packet after the fixed header (which
 * codec.c reads for both levels), the reason-code tables and the v5 SUBSCRIBE iterator. The same
 * format rules as the 3.1.1 decoder where the spec kept them; properties are props.c's.
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

/* The spec's reason-code table per packet: CONNACK [MQTT-3.2.2.2], PUBACK [MQTT-3.4.2.1], PUBREC
 * [MQTT-3.5.2.1], PUBREL [MQTT-3.6.2.1], PUBCOMP [MQTT-3.7.2.1], SUBACK [MQTT-3.9.3], UNSUBACK
 * [MQTT-3.11.3], DISCONNECT [MQTT-3.14.2.1], AUTH [MQTT-3.15.2.1]. */
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

/* A property block at the cursor, for kind; the cursor moves past it. */
static int cursor_props(struct cursor *c, unsigned kind, struct props_view *v)
{
    size_t used;
    int rc = props_parse(c->p, cursor_left(c), kind, v, &used);
    if (rc == CODEC_OK)
        c->p += used;
    return rc;
}

/* CONNECT v5 [MQTT-3.1] after the protocol level byte: flags, keepalive, properties, then the
 * payload: client id, Will Properties / topic / payload, user name, password. */
int codec5_decode_connect(struct cursor *c, struct mqtt_packet *p)
{
    struct mqtt_connect *o = &p->u.connect;
    uint8_t fl;
    int rc;

    if (cursor_left(c) < 1)
        return CODEC_ERR_MALFORMED;
    fl = *c->p++;
    if (fl & 0x01) /* reserved [MQTT-3.1.2-3] */
        return CODEC_ERR_MALFORMED;
    o->clean_session = (fl & 0x02) != 0; /* Clean Start [MQTT-3.1.2.4] */
    o->will_flag = (fl & 0x04) != 0;
    o->will_qos = (fl >> 3) & 3;
    o->will_retain = (fl & 0x20) != 0;
    o->has_password = (fl & 0x40) != 0;
    o->has_username = (fl & 0x80) != 0;
    if (!o->will_flag && (o->will_qos != 0 || o->will_retain)) /* [MQTT-3.1.2-11/13] */
        return CODEC_ERR_MALFORMED;
    if (o->will_qos == 3) /* [MQTT-3.1.2-12] */
        return CODEC_ERR_QOS;
    if (!cursor_u16(c, &o->keepalive))
        return CODEC_ERR_MALFORMED;
    if ((rc = cursor_props(c, MQTT_CONNECT, &p->props)) != CODEC_OK)
        return rc;

    static const struct mqtt_str empty = {NULL, 0};
    o->will_topic = o->will_payload = o->username = o->password = empty;
    o->will_props.v.has = 0;
    o->will_props.ptr = NULL;
    o->will_props.len = o->will_props.user_count = o->will_props.subid_count = 0;
    if (!cursor_str(c, &o->client_id)) /* [MQTT-3.1.3-3] */
        return CODEC_ERR_MALFORMED;
    if (!codec_utf8_valid(o->client_id.data, o->client_id.len)) /* [MQTT-3.1.3-4] */
        return CODEC_ERR_UTF8;
    if (o->will_flag) {
        if ((rc = cursor_props(c, PROPS_WILL, &o->will_props)) != CODEC_OK)
            return rc;
        if (!cursor_str(c, &o->will_topic) || !cursor_str(c, &o->will_payload))
            return CODEC_ERR_MALFORMED;
        if ((rc = codec_topic_name_check(o->will_topic.data, o->will_topic.len)) != CODEC_OK)
            return rc; /* [MQTT-3.1.3-11] */
    }
    if (o->has_username) {
        if (!cursor_str(c, &o->username))
            return CODEC_ERR_MALFORMED;
        if (!codec_utf8_valid(o->username.data, o->username.len)) /* [MQTT-3.1.3-12] */
            return CODEC_ERR_UTF8;
    }
    if (o->has_password && !cursor_str(c, &o->password))
        return CODEC_ERR_MALFORMED;
    return cursor_left(c) == 0 ? CODEC_OK : CODEC_ERR_MALFORMED;
}

/* CONNACK v5 [MQTT-3.2]: acknowledge flags (bits 7..1 reserved), reason, properties. */
static int decode_connack(struct cursor *c, struct mqtt_packet *p)
{
    struct mqtt_connack *o = &p->u.connack;

    if (cursor_left(c) < 2)
        return CODEC_ERR_MALFORMED;
    uint8_t ack = c->p[0], rc = c->p[1];
    c->p += 2;
    if (ack & 0xFE) /* [MQTT-3.2.2.1] */
        return CODEC_ERR_MALFORMED;
    if (!codec_reason_valid(MQTT_CONNACK, rc))
        return CODEC_ERR_REASON;
    if (rc != 0 && (ack & 1)) /* [MQTT-3.2.2-6] */
        return CODEC_ERR_MALFORMED;
    o->session_present = ack & 1;
    o->rc = rc;
    int r = cursor_props(c, MQTT_CONNACK, &p->props);
    if (r != CODEC_OK)
        return r;
    return cursor_left(c) == 0 ? CODEC_OK : CODEC_ERR_MALFORMED;
}

/* PUBLISH v5 [MQTT-3.3]: topic, packet id when QoS > 0, properties, payload. An empty topic is
 * allowed only with a Topic Alias [MQTT-3.3.2.3.4]. */
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
    if ((rc = cursor_props(c, MQTT_PUBLISH, &p->props)) != CODEC_OK)
        return rc;
    if (o->topic.len == 0 && !props_has(&p->props.v, PROP_TOPIC_ALIAS))
        return CODEC_ERR_PROTOCOL; /* [MQTT-3.3.2.3.4] */
    o->payload = c->p;
    o->payload_len = cursor_left(c);
    return CODEC_OK;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP v5 [MQTT-3.4.2]: packet id, then reason and properties, each
 * omitted when remaining length is 2 (Success, none) or 3 (no properties) [MQTT-3.4.2.1]. */
static int decode_ack(struct cursor *c, struct mqtt_packet *p)
{
    struct mqtt_ack *o = &p->u.ack;

    if (!cursor_u16(c, &o->packet_id))
        return CODEC_ERR_MALFORMED;
    if (o->packet_id == 0)
        return CODEC_ERR_PACKET_ID;
    o->reason = 0;
    if (cursor_left(c) == 0)
        return CODEC_OK;
    o->reason = *c->p++;
    if (!codec_reason_valid(p->type, o->reason))
        return CODEC_ERR_REASON;
    if (cursor_left(c) == 0)
        return CODEC_OK;
    int rc = cursor_props(c, p->type, &p->props);
    if (rc != CODEC_OK)
        return rc;
    return cursor_left(c) == 0 ? CODEC_OK : CODEC_ERR_MALFORMED;
}

/* SUBSCRIBE v5 [MQTT-3.8]: packet id, properties, then one or more filter + options pairs. */
static int decode_subscribe(struct cursor *c, struct mqtt_packet *p, bool with_opts)
{
    struct mqtt_list *o = &p->u.subscribe;
    int rc;

    if (!cursor_u16(c, &o->packet_id))
        return CODEC_ERR_MALFORMED;
    if (o->packet_id == 0) /* [MQTT-2.2.1-3] */
        return CODEC_ERR_PACKET_ID;
    if ((rc = cursor_props(c, p->type, &p->props)) != CODEC_OK)
        return rc;
    o->ptr = c->p;
    o->len = cursor_left(c);
    o->count = 0;
    if (o->len == 0) /* [MQTT-3.8.3-2], [MQTT-3.10.3-2] */
        return CODEC_ERR_EMPTY;
    while (cursor_left(c) > 0) {
        struct mqtt_str f;
        if (!cursor_str(c, &f))
            return CODEC_ERR_MALFORMED;
        if ((rc = codec_filter_check(&f)) != CODEC_OK) /* [MQTT-3.8.3-1], [MQTT-3.10.3-1] */
            return rc;
        if (with_opts) {
            if (cursor_left(c) < 1)
                return CODEC_ERR_MALFORMED;
            uint8_t b = *c->p++;
            if (b & 0xC0) /* reserved [MQTT-3.8.3-5] */
                return CODEC_ERR_MALFORMED;
            if ((b & 3) == 3 || ((b >> 4) & 3) == 3) /* QoS 3, Retain Handling 3 [MQTT-3.8.3.1] */
                return CODEC_ERR_PROTOCOL;
            if ((b & 0x04) && f.len >= 7 && memcmp(f.data, "$share/", 7) == 0)
                return CODEC_ERR_PROTOCOL; /* No Local on a shared subscription [MQTT-3.8.3-4] */
        }
        o->count++;
    }
    return CODEC_OK;
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
    if ((rc = cursor_props(c, p->type, &p->props)) != CODEC_OK)
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

/* DISCONNECT [MQTT-3.14.2] / AUTH [MQTT-3.15.2] v5: reason and properties, both omitted when the
 * remaining length is 0 (Success), properties when it is 1. */
static int decode_reason_props(struct cursor *c, struct mqtt_packet *p)
{
    p->u.reason = 0;
    if (cursor_left(c) == 0)
        return CODEC_OK;
    p->u.reason = *c->p++;
    if (!codec_reason_valid(p->type, p->u.reason))
        return CODEC_ERR_REASON;
    if (cursor_left(c) == 0)
        return CODEC_OK;
    int rc = cursor_props(c, p->type, &p->props);
    if (rc != CODEC_OK)
        return rc;
    return cursor_left(c) == 0 ? CODEC_OK : CODEC_ERR_MALFORMED;
}

/* Every v5 body but CONNECT's (which codec.c starts, to read its level). */
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
        return decode_subscribe(c, p, true);
    case MQTT_UNSUBSCRIBE:
        return decode_subscribe(c, p, false);
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        return decode_reason_list(c, p);
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        return cursor_left(c) == 0 ? CODEC_OK : CODEC_ERR_MALFORMED;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        return decode_reason_props(c, p);
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
