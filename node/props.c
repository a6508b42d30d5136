/*
 * props.c - MQTT 5.0 properties: the identifier table (sec. 2.2.2.2), the parser that validates a
 * block against it, the iterators over repeatable properties and the writer.
 */
#include "props.h"

#include <stddef.h>

#include "codec_int.h"

#define K(t) (1u << (t))
#define K_ACKS (K(MQTT_PUBACK) | K(MQTT_PUBREC) | K(MQTT_PUBREL) | K(MQTT_PUBCOMP))
#define K_MSG (K(MQTT_PUBLISH) | K(PROPS_WILL))
#define K_ALL                                                                                      \
    (K(MQTT_CONNECT) | K(MQTT_CONNACK) | K_MSG | K_ACKS | K(MQTT_SUBSCRIBE) | K(MQTT_SUBACK) |     \
     K(MQTT_UNSUBSCRIBE) | K(MQTT_UNSUBACK) | K(MQTT_DISCONNECT) | K(MQTT_AUTH))

/* The spec's property table, indexed by identifier; a zero type is an undefined identifier. */
static const struct prop_info prop_table[PROP_ID_MAX + 1] = {
    [PROP_PAYLOAD_FORMAT] = {PROP_TYPE_BYTE, K_MSG, 0},
    [PROP_MESSAGE_EXPIRY] = {PROP_TYPE_U32, K_MSG, 0},
    [PROP_CONTENT_TYPE] = {PROP_TYPE_STRING, K_MSG, 0},
    [PROP_RESPONSE_TOPIC] = {PROP_TYPE_STRING, K_MSG, 0},
    [PROP_CORRELATION_DATA] = {PROP_TYPE_BINARY, K_MSG, 0},
    [PROP_SUBSCRIPTION_ID] = {PROP_TYPE_VARINT, K(MQTT_PUBLISH) | K(MQTT_SUBSCRIBE),
                              K(MQTT_PUBLISH)},
    [PROP_SESSION_EXPIRY] = {PROP_TYPE_U32, K(MQTT_CONNECT) | K(MQTT_CONNACK) | K(MQTT_DISCONNECT),
                             0},
    [PROP_ASSIGNED_CLIENT_ID] = {PROP_TYPE_STRING, K(MQTT_CONNACK), 0},
    [PROP_SERVER_KEEPALIVE] = {PROP_TYPE_U16, K(MQTT_CONNACK), 0},
    [PROP_AUTH_METHOD] = {PROP_TYPE_STRING, K(MQTT_CONNECT) | K(MQTT_CONNACK) | K(MQTT_AUTH), 0},
    [PROP_AUTH_DATA] = {PROP_TYPE_BINARY, K(MQTT_CONNECT) | K(MQTT_CONNACK) | K(MQTT_AUTH), 0},
    [PROP_REQUEST_PROBLEM_INFO] = {PROP_TYPE_BYTE, K(MQTT_CONNECT), 0},
    [PROP_WILL_DELAY] = {PROP_TYPE_U32, K(PROPS_WILL), 0},
    [PROP_REQUEST_RESPONSE_INFO] = {PROP_TYPE_BYTE, K(MQTT_CONNECT), 0},
    [PROP_RESPONSE_INFO] = {PROP_TYPE_STRING, K(MQTT_CONNACK), 0},
    [PROP_SERVER_REFERENCE] = {PROP_TYPE_STRING, K(MQTT_CONNACK) | K(MQTT_DISCONNECT), 0},
    [PROP_REASON_STRING] = {PROP_TYPE_STRING,
                            K(MQTT_CONNACK) | K_ACKS | K(MQTT_SUBACK) | K(MQTT_UNSUBACK) |
                                K(MQTT_DISCONNECT) | K(MQTT_AUTH),
                            0},
    [PROP_RECEIVE_MAXIMUM] = {PROP_TYPE_U16, K(MQTT_CONNECT) | K(MQTT_CONNACK), 0},
    [PROP_TOPIC_ALIAS_MAXIMUM] = {PROP_TYPE_U16, K(MQTT_CONNECT) | K(MQTT_CONNACK), 0},
    [PROP_TOPIC_ALIAS] = {PROP_TYPE_U16, K(MQTT_PUBLISH), 0},
    [PROP_MAXIMUM_QOS] = {PROP_TYPE_BYTE, K(MQTT_CONNACK), 0},
    [PROP_RETAIN_AVAILABLE] = {PROP_TYPE_BYTE, K(MQTT_CONNACK), 0},
    [PROP_USER_PROPERTY] = {PROP_TYPE_PAIR, K_ALL, K_ALL},
    [PROP_MAXIMUM_PACKET_SIZE] = {PROP_TYPE_U32, K(MQTT_CONNECT) | K(MQTT_CONNACK), 0},
    [PROP_WILDCARD_SUB_AVAILABLE] = {PROP_TYPE_BYTE, K(MQTT_CONNACK), 0},
    [PROP_SUBID_AVAILABLE] = {PROP_TYPE_BYTE, K(MQTT_CONNACK), 0},
    [PROP_SHARED_SUB_AVAILABLE] = {PROP_TYPE_BYTE, K(MQTT_CONNACK), 0},
};

/* The table row of an identifier, NULL for one the spec leaves undefined. */
const struct prop_info *props_info(unsigned id)
{
    if (id > PROP_ID_MAX || prop_table[id].type == 0)
        return NULL;
    return &prop_table[id];
}

/* A Variable Byte Integer in the minimal form [MQTT-1.5.5-1]; false if not. */
static bool cursor_varint(struct cursor *c, uint32_t *v)
{
    int n = varint_read(c->p, cursor_left(c), v);
    if (n <= 0 || (size_t)n != codec_varint_size(*v))
        return false;
    c->p += n;
    return true;
}

/* A UTF-8 string value: CODEC_OK, CODEC_ERR_PROPERTY if truncated, CODEC_ERR_UTF8 if ill-formed. */
static int cursor_utf8(struct cursor *c, struct mqtt_str *s)
{
    if (!cursor_str(c, s))
        return CODEC_ERR_PROPERTY;
    return codec_utf8_valid(s->data, s->len) ? CODEC_OK : CODEC_ERR_UTF8; /* [MQTT-1.5.4-1] */
}

/* Where each single-valued property's value lives in struct props_values; the property's type
 * says the field's C type (Byte uint8_t, Two Byte uint16_t, Four Byte and varint uint32_t, string
 * and binary struct mqtt_str). */
#define F(field) offsetof(struct props_values, field)
static const uint16_t field_at[PROP_ID_MAX + 1] = {
    [PROP_PAYLOAD_FORMAT] = F(payload_format),
    [PROP_MESSAGE_EXPIRY] = F(message_expiry),
    [PROP_CONTENT_TYPE] = F(content_type),
    [PROP_RESPONSE_TOPIC] = F(response_topic),
    [PROP_CORRELATION_DATA] = F(correlation_data),
    [PROP_SUBSCRIPTION_ID] = F(subscription_id),
    [PROP_SESSION_EXPIRY] = F(session_expiry),
    [PROP_ASSIGNED_CLIENT_ID] = F(assigned_client_id),
    [PROP_SERVER_KEEPALIVE] = F(server_keepalive),
    [PROP_AUTH_METHOD] = F(auth_method),
    [PROP_AUTH_DATA] = F(auth_data),
    [PROP_REQUEST_PROBLEM_INFO] = F(request_problem_info),
    [PROP_WILL_DELAY] = F(will_delay),
    [PROP_REQUEST_RESPONSE_INFO] = F(request_response_info),
    [PROP_RESPONSE_INFO] = F(response_info),
    [PROP_SERVER_REFERENCE] = F(server_reference),
    [PROP_REASON_STRING] = F(reason_string),
    [PROP_RECEIVE_MAXIMUM] = F(receive_maximum),
    [PROP_TOPIC_ALIAS_MAXIMUM] = F(topic_alias_maximum),
    [PROP_TOPIC_ALIAS] = F(topic_alias),
    [PROP_MAXIMUM_QOS] = F(maximum_qos),
    [PROP_RETAIN_AVAILABLE] = F(retain_available),
    [PROP_MAXIMUM_PACKET_SIZE] = F(maximum_packet_size),
    [PROP_WILDCARD_SUB_AVAILABLE] = F(wildcard_sub_available),
    [PROP_SUBID_AVAILABLE] = F(subid_available),
    [PROP_SHARED_SUB_AVAILABLE] = F(shared_sub_available),
};
#undef F

/* The value field of single-valued property id (a defined one, not User Property). */
static inline void *field(struct props_values *v, unsigned id)
{
    return (char *)v + field_at[id];
}

static inline const void *cfield(const struct props_values *v, unsigned id)
{
    return (const char *)v + field_at[id];
}

/* One property value of type t for id, stored in v unless it repeats. Zero values the spec forbids
 * are Protocol Errors: Receive Maximum (sec. 3.1.2.11.3), Maximum Packet Size (sec. 3.1.2.11.4),
 * Topic Alias [MQTT-3.3.2-8], Subscription Identifier (sec. 3.8.2.1.2); Byte flags other than 0/1
 * too, except Payload Format Indicator whose only values are 0 and 1 (anything else is not of the
 * property's type: malformed). */
static int read_value(struct cursor *c, unsigned id, enum prop_type t, struct props_view *o)
{
    struct props_values *v = &o->v;
    struct mqtt_str s;
    uint32_t u;
    int rc;

    switch (t) {
    case PROP_TYPE_BYTE:
        if (cursor_left(c) < 1)
            return CODEC_ERR_PROPERTY;
        u = *c->p++;
        if (u > 1)
            return id == PROP_PAYLOAD_FORMAT ? CODEC_ERR_PROPERTY : CODEC_ERR_PROTOCOL;
        *(uint8_t *)field(v, id) = (uint8_t)u;
        return CODEC_OK;
    case PROP_TYPE_U16:
        if (cursor_left(c) < 2)
            return CODEC_ERR_PROPERTY;
        u = get_u16(c->p);
        c->p += 2;
        if (u == 0 && id == PROP_TOPIC_ALIAS) /* a Protocol Error with its own reason, 0x94 */
            return CODEC_ERR_TOPIC_ALIAS;
        if (u == 0 && id == PROP_RECEIVE_MAXIMUM)
            return CODEC_ERR_PROTOCOL;
        *(uint16_t *)field(v, id) = (uint16_t)u;
        return CODEC_OK;
    case PROP_TYPE_U32:
        if (cursor_left(c) < 4)
            return CODEC_ERR_PROPERTY;
        u = get_u32(c->p);
        c->p += 4;
        if (u == 0 && id == PROP_MAXIMUM_PACKET_SIZE)
            return CODEC_ERR_PROTOCOL;
        *(uint32_t *)field(v, id) = u;
        return CODEC_OK;
    case PROP_TYPE_VARINT: /* only Subscription Identifier */
        if (!cursor_varint(c, &u))
            return CODEC_ERR_PROPERTY;
        if (u == 0)
            return CODEC_ERR_PROTOCOL;
        if (o->subid_count++ == 0)
            *(uint32_t *)field(v, id) = u;
        return CODEC_OK;
    case PROP_TYPE_STRING:
        if ((rc = cursor_utf8(c, &s)) != CODEC_OK)
            return rc;
        *(struct mqtt_str *)field(v, id) = s;
        return CODEC_OK;
    case PROP_TYPE_BINARY:
        if (!cursor_str(c, &s))
            return CODEC_ERR_PROPERTY;
        *(struct mqtt_str *)field(v, id) = s;
        return CODEC_OK;
    case PROP_TYPE_PAIR: /* only User Property (sec. 3.1.2.11.8) */
        if ((rc = cursor_utf8(c, &s)) != CODEC_OK || (rc = cursor_utf8(c, &s)) != CODEC_OK)
            return rc;
        o->user_count++;
        return CODEC_OK;
    }
    return CODEC_ERR_PROPERTY; /* not reached */
}

/* Parse a property block (see props.h). One pass: the length, then each identifier checked against
 * the table for kind, duplicates caught by the has bitmask, each value read and range-checked. */
int props_parse(const uint8_t *buf, size_t len, unsigned kind, struct props_view *out, size_t *used)
{
    struct cursor c = {buf, buf + len};
    uint32_t plen, id;
    int rc;

    out->v.has = 0;
    out->user_count = out->subid_count = 0;
    if (!cursor_varint(&c, &plen) || cursor_left(&c) < plen)
        return CODEC_ERR_PROPERTY;
    out->ptr = c.p;
    out->len = plen;
    c.end = c.p + plen;
    *used = (size_t)(c.end - buf);
    while (cursor_left(&c) > 0) {
        const struct prop_info *info;
        if (!cursor_varint(&c, &id) || (info = props_info(id)) == NULL)
            return CODEC_ERR_PROPERTY;
        if (!(info->kinds & (1u << kind))) /* not valid for this packet (sec. 2.2.2.2) */
            return CODEC_ERR_PROPERTY;
        if ((out->v.has >> id) & 1 && !(info->multi_kinds & (1u << kind)))
            return CODEC_ERR_PROTOCOL; /* "a Protocol Error to include ... more than once" */
        out->v.has |= 1ull << id;
        if ((rc = read_value(&c, id, info->type, out)) != CODEC_OK)
            return rc;
    }
    if (props_has(&out->v, PROP_AUTH_DATA) && !props_has(&out->v, PROP_AUTH_METHOD))
        return CODEC_ERR_PROTOCOL; /* (sec. 3.1.2.11.10), (sec. 3.2.2.3.18), (sec. 3.15.2.2.3) */
    return CODEC_OK;
}

/* Skip one property of a validated view, reporting its id and where its value starts. */
static bool view_next(const struct props_view *v, size_t *pos, uint32_t *id, struct cursor *val)
{
    struct cursor c;
    struct mqtt_str s;
    const struct prop_info *info;
    uint32_t u;

    if (*pos >= v->len) /* first: an empty view may have no pointer at all */
        return false;
    c = (struct cursor){v->ptr + *pos, v->ptr + v->len};
    if (!cursor_varint(&c, id) || (info = props_info(*id)) == NULL)
        return false;
    *val = c;
    switch (info->type) {
    case PROP_TYPE_BYTE:
        c.p += 1;
        break;
    case PROP_TYPE_U16:
        c.p += 2;
        break;
    case PROP_TYPE_U32:
        c.p += 4;
        break;
    case PROP_TYPE_VARINT:
        if (!cursor_varint(&c, &u))
            return false;
        break;
    case PROP_TYPE_PAIR:
        if (!cursor_str(&c, &s) || !cursor_str(&c, &s))
            return false;
        break;
    case PROP_TYPE_STRING:
    case PROP_TYPE_BINARY:
        if (!cursor_str(&c, &s))
            return false;
        break;
    }
    if (c.p > c.end)
        return false;
    *pos = (size_t)(c.p - v->ptr);
    return true;
}

/* Next User Property in wire order. */
bool props_user_next(const struct props_view *v, size_t *pos, struct mqtt_str_pair *out)
{
    uint32_t id;
    struct cursor val;

    while (view_next(v, pos, &id, &val)) {
        if (id == PROP_USER_PROPERTY) {
            cursor_str(&val, &out->name);
            cursor_str(&val, &out->value);
            return true;
        }
    }
    return false;
}

/* Next Subscription Identifier in wire order. */
bool props_subid_next(const struct props_view *v, size_t *pos, uint32_t *out)
{
    uint32_t id;
    struct cursor val;

    while (view_next(v, pos, &id, &val)) {
        if (id == PROP_SUBSCRIPTION_ID)
            return cursor_varint(&val, out);
    }
    return false;
}

/* Any next property: the broker copies a PUBLISH's properties but a few. */
bool props_next(const struct props_view *v, size_t *pos, uint32_t *id)
{
    struct cursor val;
    return view_next(v, pos, id, &val);
}

size_t props_copy_except(const struct props_view *v, uint64_t except, uint8_t *out)
{
    size_t pos = 0, start = 0, n = 0;
    uint32_t id;
    while (props_next(v, &pos, &id)) {
        if (!(id < 64 && (except >> id) & 1)) {
            memcpy(out + n, v->ptr + start, pos - start);
            n += pos - start;
        }
        start = pos;
    }
    return n;
}

/* Bytes of one single-valued property's value of type t. */
static size_t value_len(const struct props_values *v, unsigned id, enum prop_type t)
{
    switch (t) {
    case PROP_TYPE_BYTE:
        return 1;
    case PROP_TYPE_U16:
        return 2;
    case PROP_TYPE_U32:
        return 4;
    case PROP_TYPE_VARINT:
        return codec_varint_size(v->subscription_id);
    default:
        return 2 + (size_t)((const struct mqtt_str *)cfield(v, id))->len;
    }
}

/* The identifiers written from props_values (the repeatable ones come from the arrays). */
#define PROPS_SINGLE_MASK                                                                          \
    (((1ULL << (PROP_ID_MAX + 1)) - 2) &                                                           \
     ~(1ULL << PROP_SUBSCRIPTION_ID | 1ULL << PROP_USER_PROPERTY))

/* Bytes of b's properties, excluding the length field. */
size_t props_len(const struct props_build *b)
{
    size_t n = 0;

    if (b == NULL)
        return 0;
    /* Only the identifiers present, lowest first (the order props_write writes). */
    for (uint64_t m = b->v.has & PROPS_SINGLE_MASK; m; m &= m - 1) {
        unsigned id = (unsigned)__builtin_ctzll(m);
        const struct prop_info *info = props_info(id);
        if (info && info->type != PROP_TYPE_PAIR)
            n += 1 + value_len(&b->v, id, info->type);
    }
    for (size_t i = 0; i < b->user_count; i++)
        n += 1 + 4 + b->user[i].name.len + b->user[i].value.len;
    for (size_t i = 0; i < b->subid_count; i++)
        n += 1 + codec_varint_size(b->subid[i]);
    return n;
}

/* Write b's properties (no length field); see props.h for the order. */
size_t props_write(uint8_t *out, const struct props_build *b)
{
    uint8_t *p = out;
    struct props_values *v;

    if (b == NULL)
        return 0;
    v = (struct props_values *)&b
            ->v; /* the field lookups are shared with the parser; not written */
    /* Only the identifiers present, in ascending order: a delivery's block is written per
     * message, and most have one property or none. */
    for (uint64_t m = v->has & PROPS_SINGLE_MASK; m; m &= m - 1) {
        unsigned id = (unsigned)__builtin_ctzll(m);
        const struct prop_info *info = props_info(id);
        if (!info || info->type == PROP_TYPE_PAIR)
            continue;
        *p++ = (uint8_t)id;
        switch (info->type) {
        case PROP_TYPE_BYTE:
            *p++ = *(const uint8_t *)cfield(v, id);
            break;
        case PROP_TYPE_U16:
            p = put_u16(p, *(const uint16_t *)cfield(v, id));
            break;
        case PROP_TYPE_U32:
            p = put_u32(p, *(const uint32_t *)cfield(v, id));
            break;
        default: { /* string, binary */
            const struct mqtt_str *s = cfield(v, id);
            p = put_str(p, s->data, s->len);
            break;
        }
        }
    }
    for (size_t i = 0; i < b->user_count; i++) {
        *p++ = PROP_USER_PROPERTY;
        p = put_str(p, b->user[i].name.data, b->user[i].name.len);
        p = put_str(p, b->user[i].value.data, b->user[i].value.len);
    }
    for (size_t i = 0; i < b->subid_count; i++) {
        *p++ = PROP_SUBSCRIPTION_ID;
        p += codec_varint_encode(p, b->subid[i]);
    }
    return (size_t)(p - out);
}
