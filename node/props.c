/*
 * props.c - MQTT 5.0 properties: the identifier table [MQTT-2.2.2.2], the parser that validates a
 * block against it, the iterators over repeatable properties and the writer.
 */
#include "props.h"

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

/* The field of a single-valued string or binary property. */
static struct mqtt_str *str_field(struct props_values *v, unsigned id)
{
    switch (id) {
    case PROP_CONTENT_TYPE:
        return &v->content_type;
    case PROP_RESPONSE_TOPIC:
        return &v->response_topic;
    case PROP_CORRELATION_DATA:
        return &v->correlation_data;
    case PROP_ASSIGNED_CLIENT_ID:
        return &v->assigned_client_id;
    case PROP_AUTH_METHOD:
        return &v->auth_method;
    case PROP_AUTH_DATA:
        return &v->auth_data;
    case PROP_RESPONSE_INFO:
        return &v->response_info;
    case PROP_SERVER_REFERENCE:
        return &v->server_reference;
    default:
        return &v->reason_string;
    }
}

/* The field of a Byte property. */
static uint8_t *byte_field(struct props_values *v, unsigned id)
{
    switch (id) {
    case PROP_PAYLOAD_FORMAT:
        return &v->payload_format;
    case PROP_REQUEST_PROBLEM_INFO:
        return &v->request_problem_info;
    case PROP_REQUEST_RESPONSE_INFO:
        return &v->request_response_info;
    case PROP_MAXIMUM_QOS:
        return &v->maximum_qos;
    case PROP_RETAIN_AVAILABLE:
        return &v->retain_available;
    case PROP_WILDCARD_SUB_AVAILABLE:
        return &v->wildcard_sub_available;
    case PROP_SUBID_AVAILABLE:
        return &v->subid_available;
    default:
        return &v->shared_sub_available;
    }
}

/* The field of a Two Byte Integer property. */
static uint16_t *u16_field(struct props_values *v, unsigned id)
{
    switch (id) {
    case PROP_SERVER_KEEPALIVE:
        return &v->server_keepalive;
    case PROP_RECEIVE_MAXIMUM:
        return &v->receive_maximum;
    case PROP_TOPIC_ALIAS_MAXIMUM:
        return &v->topic_alias_maximum;
    default:
        return &v->topic_alias;
    }
}

/* The field of a Four Byte Integer property. */
static uint32_t *u32_field(struct props_values *v, unsigned id)
{
    switch (id) {
    case PROP_MESSAGE_EXPIRY:
        return &v->message_expiry;
    case PROP_SESSION_EXPIRY:
        return &v->session_expiry;
    case PROP_WILL_DELAY:
        return &v->will_delay;
    default:
        return &v->maximum_packet_size;
    }
}

/* One property value of type t for id, stored in v unless it repeats. Zero values the spec forbids
 * are Protocol Errors: Receive Maximum [MQTT-3.1.2.11.3], Maximum Packet Size [MQTT-3.1.2.11.4],
 * Topic Alias [MQTT-3.3.2-8], Subscription Identifier [MQTT-3.8.2.1.2]; Byte flags other than 0/1
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
        *byte_field(v, id) = (uint8_t)u;
        return CODEC_OK;
    case PROP_TYPE_U16:
        if (cursor_left(c) < 2)
            return CODEC_ERR_PROPERTY;
        u = get_u16(c->p);
        c->p += 2;
        if (u == 0 && (id == PROP_RECEIVE_MAXIMUM || id == PROP_TOPIC_ALIAS))
            return CODEC_ERR_PROTOCOL;
        *u16_field(v, id) = (uint16_t)u;
        return CODEC_OK;
    case PROP_TYPE_U32:
        if (cursor_left(c) < 4)
            return CODEC_ERR_PROPERTY;
        u = get_u32(c->p);
        c->p += 4;
        if (u == 0 && id == PROP_MAXIMUM_PACKET_SIZE)
            return CODEC_ERR_PROTOCOL;
        *u32_field(v, id) = u;
        return CODEC_OK;
    case PROP_TYPE_VARINT: /* only Subscription Identifier */
        if (!cursor_varint(c, &u))
            return CODEC_ERR_PROPERTY;
        if (u == 0)
            return CODEC_ERR_PROTOCOL;
        if (o->subid_count++ == 0)
            v->subscription_id = u;
        return CODEC_OK;
    case PROP_TYPE_STRING:
        if ((rc = cursor_utf8(c, &s)) != CODEC_OK)
            return rc;
        *str_field(v, id) = s;
        return CODEC_OK;
    case PROP_TYPE_BINARY:
        if (!cursor_str(c, &s))
            return CODEC_ERR_PROPERTY;
        *str_field(v, id) = s;
        return CODEC_OK;
    case PROP_TYPE_PAIR: /* only User Property [MQTT-3.1.2.11.8] */
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
        if (!(info->kinds & (1u << kind))) /* not valid for this packet [MQTT-2.2.2.2] */
            return CODEC_ERR_PROPERTY;
        if ((out->v.has >> id) & 1 && !(info->multi_kinds & (1u << kind)))
            return CODEC_ERR_PROTOCOL; /* "a Protocol Error to include ... more than once" */
        out->v.has |= 1ull << id;
        if ((rc = read_value(&c, id, info->type, out)) != CODEC_OK)
            return rc;
    }
    if (props_has(&out->v, PROP_AUTH_DATA) && !props_has(&out->v, PROP_AUTH_METHOD))
        return CODEC_ERR_PROTOCOL; /* [MQTT-3.1.2.11.10], [MQTT-3.2.2.3.18], [MQTT-3.15.2.2.3] */
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
        return 2 + (size_t)str_field((struct props_values *)v, id)->len;
    }
}

/* Bytes of b's properties, excluding the length field. */
size_t props_len(const struct props_build *b)
{
    size_t n = 0;

    if (b == NULL)
        return 0;
    for (unsigned id = 1; id <= PROP_ID_MAX; id++) {
        const struct prop_info *info = props_info(id);
        if (info && info->type != PROP_TYPE_PAIR && props_has(&b->v, id) &&
            id != PROP_SUBSCRIPTION_ID)
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
    for (unsigned id = 1; id <= PROP_ID_MAX; id++) {
        const struct prop_info *info = props_info(id);
        if (!info || info->type == PROP_TYPE_PAIR || id == PROP_SUBSCRIPTION_ID ||
            !props_has(v, id))
            continue;
        *p++ = (uint8_t)id;
        switch (info->type) {
        case PROP_TYPE_BYTE:
            *p++ = *byte_field(v, id);
            break;
        case PROP_TYPE_U16:
            p = put_u16(p, *u16_field(v, id));
            break;
        case PROP_TYPE_U32:
            p = put_u32(p, *u32_field(v, id));
            break;
        default: /* string, binary */
            p = put_str(p, str_field(v, id)->data, str_field(v, id)->len);
            break;
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
