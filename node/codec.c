/*
 * codec.c - MQTT 3.1.1 packet codec: decoder with the spec's format rules, and encoders; the fixed
 * header and the level dispatch for MQTT 5 too (whose bodies are codec5.c's).
 *
 * The decoder is a straight byte walk over one packet. It validates everything the spec fixes about
 * a packet's format (fixed-header flags, lengths, field presence, UTF-8, packet ids, QoS values) so
 * that the broker only ever sees well-formed packets; policy (who may send what, topic filter
 * wildcard placement, client id rules) stays with the broker.
 */
#include "codec.h"

#include <string.h>

#include "codec_int.h"

/* True if any byte of v is zero or has its high bit set (word-at-a-time ASCII fast path). */
static inline bool word_not_plain_ascii(uint64_t v)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    return ((v & highs) | ((v - ones) & ~v & highs)) != 0;
}

/* True if any byte of v equals b. */
static inline bool word_has_byte(uint64_t v, uint8_t b)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t x = v ^ (ones * b);
    return ((x - ones) & ~x & highs) != 0;
}

/* UTF-8 check per [MQTT-1.5.3-1] (well-formed per RFC 3629: no overlongs, no surrogates
 * U+D800..DFFF, nothing above U+10FFFF) and [MQTT-1.5.3-2] (no U+0000). ASCII runs are checked 8
 * bytes at a time. With wildcard non-NULL it also says whether a '+' or '#' occurs, in the same
 * pass (a topic name's two checks); callers pass a constant, so each use compiles to its own loop. */
static inline bool utf8_scan(const char *str, size_t len, bool *wildcard)
{
    const uint8_t *s = (const uint8_t *)str, *end = s + len;

    while (s < end) {
        if ((size_t)(end - s) >= 8) {
            uint64_t w;
            memcpy(&w, s, 8);
            if (!word_not_plain_ascii(w)) {
                if (wildcard && (word_has_byte(w, '+') || word_has_byte(w, '#')))
                    *wildcard = true;
                s += 8;
                continue;
            }
        }
        uint8_t c = *s;
        if (c < 0x80) {
            if (c == 0)
                return false;
            if (wildcard && (c == '+' || c == '#'))
                *wildcard = true;
            s++;
            continue;
        }
        size_t left = (size_t)(end - s);
        if (c >= 0xC2 && c <= 0xDF) {
            if (left < 2 || (s[1] & 0xC0) != 0x80)
                return false;
            s += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (left < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
                return false;
            if (c == 0xE0 && s[1] < 0xA0) /* overlong */
                return false;
            if (c == 0xED && s[1] > 0x9F) /* surrogate */
                return false;
            s += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (left < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
                return false;
            if (c == 0xF0 && s[1] < 0x90) /* overlong */
                return false;
            if (c == 0xF4 && s[1] > 0x8F) /* above U+10FFFF */
                return false;
            s += 4;
        } else {
            return false; /* continuation byte, C0/C1 overlong lead, or F5..FF */
        }
    }
    return true;
}

bool codec_utf8_valid(const char *str, size_t len)
{
    return utf8_scan(str, len, NULL);
}

/* A PUBLISH topic name's checks in one pass; the UTF-8 error wins when both apply. */
int codec_topic_name_check(const char *s, size_t len)
{
    bool wildcard = false;
    if (len == 0)
        return CODEC_ERR_TOPIC;
    if (!utf8_scan(s, len, &wildcard))
        return CODEC_ERR_UTF8;
    return wildcard ? CODEC_ERR_TOPIC : CODEC_OK;
}

bool codec_topic_name_valid(const char *s, size_t len)
{
    return len <= UINT16_MAX && codec_topic_name_check(s, len) == CODEC_OK;
}

/* A PUBLISH topic name or will topic: UTF-8, non-empty [MQTT-4.7.3-1], no wildcards [MQTT-3.3.2-2].
 */
static int check_topic_name(const struct mqtt_str *t)
{
    return codec_topic_name_check(t->data, t->len);
}

/* A SUBSCRIBE/UNSUBSCRIBE filter: UTF-8 and non-empty [MQTT-4.7.3-1]; wildcard placement is the
 * broker's check (topic_filter_valid). */
int codec_filter_check(const struct mqtt_str *f)
{
    if (f->len == 0)
        return CODEC_ERR_TOPIC;
    if (!codec_utf8_valid(f->data, f->len))
        return CODEC_ERR_UTF8;
    return CODEC_OK;
}

/* Fixed-header flag rule per packet type [MQTT-2.2.2-1/2]. PUBLISH flags are checked by its
 * decoder. */
static inline int check_flags(enum mqtt_type type, uint8_t flags)
{
    switch (type) {
    case MQTT_PUBLISH:
        if (((flags >> 1) & 3) == 3) /* [MQTT-3.3.1-4] */
            return CODEC_ERR_QOS;
        if ((flags & 0x08) && ((flags >> 1) & 3) == 0) /* DUP on QoS 0 [MQTT-3.3.1-2] */
            return CODEC_ERR_FLAGS;
        return CODEC_OK;
    case MQTT_PUBREL:
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE: /* [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1] */
        return flags == 0x2 ? CODEC_OK : CODEC_ERR_FLAGS;
    default:
        return flags == 0 ? CODEC_OK : CODEC_ERR_FLAGS;
    }
}

/* CONNECT [MQTT-3.1] of either level: variable header then the payload fields its flags announce,
 * nothing else; at level 5 the properties after the keepalive and the Will Properties before the
 * will topic (sec. 3.1.2.11), (sec. 3.1.3.2). conn_level is the connection's (0 before CONNECT). */
static int decode_connect(struct cursor *c, uint8_t conn_level, struct mqtt_packet *p)
{
    struct mqtt_connect *o = &p->u.connect;
    struct mqtt_str name;
    uint8_t fl;
    int rc;

    if (!cursor_str(c, &name))
        return CODEC_ERR_MALFORMED;
    if (name.len != 4 || memcmp(name.data, "MQTT", 4) != 0) /* [MQTT-3.1.2-1] */
        return CODEC_ERR_PROTOCOL_NAME;
    if (cursor_left(c) < 1)
        return CODEC_ERR_MALFORMED;
    o->level = p->level = *c->p++;
    /* [MQTT-3.1.2-2]: a level this connection does not take; the rest may differ, stop here */
    bool v5 = o->level == MQTT_PROTOCOL_LEVEL_5;
    if (v5 ? conn_level != 0 && conn_level != MQTT_PROTOCOL_LEVEL_5
           : o->level != MQTT_PROTOCOL_LEVEL_311 || conn_level == MQTT_PROTOCOL_LEVEL_5)
        return CODEC_ERR_PROTOCOL_LEVEL;
    if (cursor_left(c) < 1)
        return CODEC_ERR_MALFORMED;
    fl = *c->p++;
    if (fl & 0x01) /* reserved [MQTT-3.1.2-3] */
        return CODEC_ERR_MALFORMED;
    o->clean_session = (fl & 0x02) != 0; /* Clean Start at v5 */
    o->will_flag = (fl & 0x04) != 0;
    o->will_qos = (fl >> 3) & 3;
    o->will_retain = (fl & 0x20) != 0;
    o->has_password = (fl & 0x40) != 0;
    o->has_username = (fl & 0x80) != 0;
    if (!o->will_flag && (o->will_qos != 0 || o->will_retain)) /* [MQTT-3.1.2-11/13/15] */
        return CODEC_ERR_MALFORMED;
    if (o->will_qos == 3) /* [MQTT-3.1.2-14], v5 [MQTT-3.1.2-12] */
        return CODEC_ERR_QOS;
    /* [MQTT-3.1.2-22]; v5 allows a password without a user name (sec. 3.1.2.9) */
    if (!v5 && o->has_password && !o->has_username)
        return CODEC_ERR_MALFORMED;
    if (!cursor_u16(c, &o->keepalive))
        return CODEC_ERR_MALFORMED;
    o->will_props.v.has = 0;
    o->will_props.ptr = NULL;
    o->will_props.len = o->will_props.user_count = o->will_props.subid_count = 0;
    if (v5 && (rc = codec_cursor_props(c, MQTT_CONNECT, &p->props)) != CODEC_OK)
        return rc;

    /* Payload, in the order [MQTT-3.1.3-1] fixes. */
    static const struct mqtt_str empty = {NULL, 0};
    o->will_topic = o->will_payload = o->username = o->password = empty;
    if (!cursor_str(c, &o->client_id))
        return CODEC_ERR_MALFORMED;
    if (!codec_utf8_valid(o->client_id.data, o->client_id.len)) /* [MQTT-3.1.3-4] */
        return CODEC_ERR_UTF8;
    if (o->will_flag) {
        if (v5 && (rc = codec_cursor_props(c, PROPS_WILL, &o->will_props)) != CODEC_OK)
            return rc;
        if (!cursor_str(c, &o->will_topic) || !cursor_str(c, &o->will_payload))
            return CODEC_ERR_MALFORMED;
        if ((rc = check_topic_name(&o->will_topic)) != CODEC_OK) /* [MQTT-3.1.3-10] */
            return rc;
    }
    if (o->has_username) {
        if (!cursor_str(c, &o->username))
            return CODEC_ERR_MALFORMED;
        if (!codec_utf8_valid(o->username.data, o->username.len)) /* [MQTT-3.1.3-11] */
            return CODEC_ERR_UTF8;
    }
    if (o->has_password && !cursor_str(c, &o->password))
        return CODEC_ERR_MALFORMED;
    if (cursor_left(c) != 0) /* trailing bytes */
        return CODEC_ERR_MALFORMED;
    return CODEC_OK;
}

/* CONNACK [MQTT-3.2]: 2 bytes; reserved bits 0, known return code, no session present on refusal.
 */
static int decode_connack(struct cursor *c, struct mqtt_connack *o)
{
    if (cursor_left(c) != 2)
        return CODEC_ERR_MALFORMED;
    uint8_t ack = c->p[0], rc = c->p[1];
    if ((ack & 0xFE) || rc > MQTT_CONNACK_NOT_AUTHORIZED || (rc != 0 && (ack & 1)))
        return CODEC_ERR_MALFORMED; /* [MQTT-3.2.2-4] */
    o->session_present = ack & 1;
    o->rc = rc;
    return CODEC_OK;
}

/* PUBLISH [MQTT-3.3]: topic, packet id when QoS > 0, the rest is payload (possibly empty). Inlined:
 * the hot path, and decode_at is inlined twice. */
static inline __attribute__((always_inline)) int decode_publish(struct cursor *c, uint8_t flags,
                                                                struct mqtt_publish *o)
{
    int rc;

    o->dup = (flags & 0x08) != 0;
    o->qos = (flags >> 1) & 3;
    o->retain = (flags & 0x01) != 0;
    o->packet_id = 0;
    if (!cursor_str(c, &o->topic))
        return CODEC_ERR_MALFORMED;
    if (o->qos > 0) {
        if (!cursor_u16(c, &o->packet_id))
            return CODEC_ERR_MALFORMED;
    }
    if ((rc = check_topic_name(&o->topic)) != CODEC_OK) /* [MQTT-3.3.2-1/2] */
        return rc;
    if (o->qos > 0 && o->packet_id == 0) /* [MQTT-2.3.1-1] */
        return CODEC_ERR_PACKET_ID;
    o->payload = c->p;
    o->payload_len = cursor_left(c);
    return CODEC_OK;
}

/* One SUBSCRIBE entry's byte after the filter: the requested QoS in 3.1.1 (reserved bits 0
 * [MQTT-3-8.3-4]), the Subscription Options in v5 (sec. 3.8.3.1): reserved bits 0 [MQTT-3.8.3-5],
 * Maximum QoS and Retain Handling not 3, No Local not on a shared subscription [MQTT-3.8.3-4]. */
static int check_sub_byte(uint8_t b, const struct mqtt_str *f, bool v5)
{
    if (!v5) {
        if (b & 0xFC)
            return CODEC_ERR_MALFORMED;
        return b == 3 ? CODEC_ERR_QOS : CODEC_OK;
    }
    if (b & 0xC0)
        return CODEC_ERR_MALFORMED;
    if ((b & 3) == 3 || ((b >> 4) & 3) == 3)
        return CODEC_ERR_PROTOCOL;
    if ((b & 0x04) && f->len >= 7 && memcmp(f->data, "$share/", 7) == 0)
        return CODEC_ERR_PROTOCOL;
    return CODEC_OK;
}

/* SUBSCRIBE [MQTT-3.8] or UNSUBSCRIBE [MQTT-3.10] of either level: non-zero packet id, at level 5
 * (props non-NULL) a property block, then one or more entries, each a non-empty UTF-8 filter (plus
 * the QoS / options byte for SUBSCRIBE). */
int codec_decode_filters(struct cursor *c, enum mqtt_type type, struct props_view *props,
                         struct mqtt_list *o)
{
    int rc;

    if (!cursor_u16(c, &o->packet_id))
        return CODEC_ERR_MALFORMED;
    if (o->packet_id == 0) /* [MQTT-2.3.1-1] */
        return CODEC_ERR_PACKET_ID;
    if (props && (rc = codec_cursor_props(c, type, props)) != CODEC_OK)
        return rc;
    o->ptr = c->p;
    o->len = cursor_left(c);
    o->count = 0;
    if (o->len == 0) /* [MQTT-3.8.3-3], [MQTT-3.10.3-2] */
        return CODEC_ERR_EMPTY;
    while (cursor_left(c) > 0) {
        struct mqtt_str f;
        if (!cursor_str(c, &f))
            return CODEC_ERR_MALFORMED;
        if ((rc = codec_filter_check(&f)) != CODEC_OK) /* [MQTT-3.8.3-1], [MQTT-3.10.3-1] */
            return rc;
        if (type == MQTT_SUBSCRIBE) {
            if (cursor_left(c) < 1)
                return CODEC_ERR_MALFORMED;
            if ((rc = check_sub_byte(*c->p++, &f, props != NULL)) != CODEC_OK)
                return rc;
        }
        o->count++;
    }
    return CODEC_OK;
}

/* SUBACK [MQTT-3.9]: non-zero packet id and at least one return code, each 0, 1, 2 or 0x80. */
static int decode_suback(struct cursor *c, struct mqtt_list *o)
{
    if (!cursor_u16(c, &o->packet_id))
        return CODEC_ERR_MALFORMED;
    if (o->packet_id == 0)
        return CODEC_ERR_PACKET_ID;
    o->ptr = c->p;
    o->len = o->count = cursor_left(c);
    if (o->len == 0)
        return CODEC_ERR_MALFORMED;
    for (size_t i = 0; i < o->len; i++) {
        uint8_t rc = o->ptr[i];
        if (rc > 2 && rc != MQTT_SUBACK_FAILURE) /* [MQTT-3.9.3-2] */
            return CODEC_ERR_MALFORMED;
    }
    return CODEC_OK;
}

/* Decode one packet at the start of buf (see codec.h). Type and flags are judged from the first
 * byte, the size limit from the length field alone, so a bad or oversized packet is refused before
 * its body is waited for. The fixed header is the same at both levels; bodies at level 5 are
 * codec5.c's. Inlined into both entries so codec_decode (level 4, a constant) keeps the 3.1.1 path
 * without the level tests. */
static inline __attribute__((always_inline)) int
decode_at(const uint8_t *buf, size_t len, size_t max_packet, uint8_t level, struct mqtt_packet *out)
{
    uint32_t rl;
    size_t hdr;
    int rc, n;

    if (len < 1)
        return CODEC_INCOMPLETE;
    uint8_t type = buf[0] >> 4, flags = buf[0] & 0x0F;
    bool v5 = level == MQTT_PROTOCOL_LEVEL_5;
    if (type < MQTT_CONNECT || type > (v5 ? MQTT_AUTH : MQTT_DISCONNECT))
        return CODEC_ERR_TYPE;
    out->type = (enum mqtt_type)type;
    out->flags = flags;
    out->level = v5 ? MQTT_PROTOCOL_LEVEL_5 : MQTT_PROTOCOL_LEVEL_311;
    if ((rc = check_flags(out->type, flags)) != CODEC_OK)
        return rc;

    /* Remaining length: at most 4 bytes [MQTT-2.2.3]; a continuation bit on the 4th is a 5th byte.
     */
    n = varint_read(buf + 1, len - 1, &rl);
    if (n < 0)
        return CODEC_ERR_TOO_LARGE;
    if (n == 0)
        return CODEC_INCOMPLETE;
    hdr = 1 + (size_t)n;
    if (rl > (max_packet ? max_packet : MQTT_MAX_REMAINING_LENGTH))
        return CODEC_ERR_TOO_LARGE;
    if (len - hdr < rl)
        return CODEC_INCOMPLETE;
    out->total_len = hdr + rl;
    /* MQTT 5 wants every Variable Byte Integer minimal [MQTT-1.5.5-1], the remaining length too;
     * 3.1.1 does not say so, and a padded one is read there as it always was. */
    bool padded = (size_t)n != codec_varint_size(rl);
    if (v5 && padded)
        return CODEC_ERR_MALFORMED;

    struct cursor c = {buf + hdr, buf + hdr + rl};
    out->props.v.has = 0;
    out->props.ptr = NULL;
    out->props.len = out->props.user_count = out->props.subid_count = 0;
    if (v5 && out->type != MQTT_CONNECT)
        return codec5_decode_body(&c, out);
    switch (out->type) {
    case MQTT_CONNECT:
        rc = decode_connect(&c, level, out);
        if (rc == CODEC_OK && padded && out->u.connect.level == MQTT_PROTOCOL_LEVEL_5)
            return CODEC_ERR_MALFORMED; /* a v5 CONNECT: v5's rule [MQTT-1.5.5-1] */
        return rc;
    case MQTT_CONNACK:
        return decode_connack(&c, &out->u.connack);
    case MQTT_PUBLISH:
        return decode_publish(&c, flags, &out->u.publish);
    case MQTT_SUBSCRIBE:
        return codec_decode_filters(&c, MQTT_SUBSCRIBE, NULL, &out->u.subscribe);
    case MQTT_UNSUBSCRIBE:
        return codec_decode_filters(&c, MQTT_UNSUBSCRIBE, NULL, &out->u.unsubscribe);
    case MQTT_SUBACK:
        return decode_suback(&c, &out->u.suback);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK: /* exactly a packet id [MQTT-3.4.2], ..., [MQTT-3.11.2] */
        if (rl != 2)
            return CODEC_ERR_MALFORMED;
        out->u.ack.packet_id = get_u16(c.p);
        out->u.ack.reason = 0;
        return out->u.ack.packet_id ? CODEC_OK : CODEC_ERR_PACKET_ID;
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
    case MQTT_DISCONNECT: /* no variable header, no payload */
        return rl == 0 ? CODEC_OK : CODEC_ERR_MALFORMED;
    case MQTT_AUTH:
        break;
    }
    return CODEC_ERR_TYPE; /* not reached */
}

/* Decode at the connection's level (see codec.h). */
int codec_decode_level(const uint8_t *buf, size_t len, size_t max_packet, uint8_t level,
                       struct mqtt_packet *out)
{
    return decode_at(buf, len, max_packet, level, out);
}

/* 3.1.1 decoding, as it was before MQTT 5. */
int codec_decode(const uint8_t *buf, size_t len, size_t max_packet, struct mqtt_packet *out)
{
    return decode_at(buf, len, max_packet, MQTT_PROTOCOL_LEVEL_311, out);
}

/* Name of a codec_result for a log line. */
const char *codec_strerror(int result)
{
    switch (result) {
    case CODEC_OK:
        return "ok";
    case CODEC_INCOMPLETE:
        return "incomplete packet";
    case CODEC_ERR_MALFORMED:
        return "malformed packet";
    case CODEC_ERR_TOO_LARGE:
        return "packet too large";
    case CODEC_ERR_FLAGS:
        return "invalid fixed header flags";
    case CODEC_ERR_PROTOCOL_NAME:
        return "invalid protocol name";
    case CODEC_ERR_PROTOCOL_LEVEL:
        return "unsupported protocol level";
    case CODEC_ERR_UTF8:
        return "invalid UTF-8 string";
    case CODEC_ERR_TOPIC:
        return "invalid topic";
    case CODEC_ERR_QOS:
        return "invalid QoS";
    case CODEC_ERR_PACKET_ID:
        return "invalid packet identifier";
    case CODEC_ERR_EMPTY:
        return "no topic filters";
    case CODEC_ERR_TYPE:
        return "reserved packet type";
    case CODEC_ERR_PROPERTY:
        return "malformed property";
    case CODEC_ERR_PROTOCOL:
        return "protocol error";
    case CODEC_ERR_REASON:
        return "invalid reason code";
    case CODEC_ERR_TOPIC_ALIAS:
        return "topic alias 0";
    }
    return "unknown codec error";
}

/* The v5 reason code a decode error is answered with [MQTT-4.13]. */
uint8_t codec_reason_code(int result)
{
    switch (result) {
    case CODEC_OK:
    case CODEC_INCOMPLETE:
        return MQTT_RC_SUCCESS;
    case CODEC_ERR_MALFORMED:
    case CODEC_ERR_FLAGS:
    case CODEC_ERR_PROTOCOL_NAME:
    case CODEC_ERR_UTF8:
    case CODEC_ERR_QOS:
    case CODEC_ERR_PACKET_ID:
    case CODEC_ERR_TYPE:
    case CODEC_ERR_PROPERTY:
    case CODEC_ERR_REASON:
        return MQTT_RC_MALFORMED;
    case CODEC_ERR_EMPTY: /* [MQTT-3.8.3-2], [MQTT-3.10.3-2]: a Protocol Error in v5 */
    case CODEC_ERR_PROTOCOL:
        return MQTT_RC_PROTOCOL_ERROR;
    case CODEC_ERR_TOO_LARGE:
        return MQTT_RC_PACKET_TOO_LARGE;
    case CODEC_ERR_PROTOCOL_LEVEL:
        return MQTT_RC_UNSUPPORTED_VERSION;
    case CODEC_ERR_TOPIC:
        return MQTT_RC_TOPIC_NAME_INVALID;
    case CODEC_ERR_TOPIC_ALIAS:
        return MQTT_RC_TOPIC_ALIAS_INVALID;
    }
    return MQTT_RC_UNSPECIFIED;
}

/* Next SUBSCRIBE entry. The decoder validated the list; bounds are still checked so a hand-built
 * list cannot read out of range. */
bool codec_subscribe_next(const struct mqtt_list *l, size_t *pos, struct mqtt_str *filter,
                          uint8_t *qos)
{
    struct cursor c = {l->ptr + *pos, l->ptr + l->len};
    if (*pos >= l->len || !cursor_str(&c, filter) || cursor_left(&c) < 1)
        return false;
    *qos = *c.p++ & 3;
    *pos = (size_t)(c.p - l->ptr);
    return true;
}

/* Next UNSUBSCRIBE entry. */
bool codec_unsubscribe_next(const struct mqtt_list *l, size_t *pos, struct mqtt_str *filter)
{
    struct cursor c = {l->ptr + *pos, l->ptr + l->len};
    if (*pos >= l->len || !cursor_str(&c, filter))
        return false;
    *pos = (size_t)(c.p - l->ptr);
    return true;
}

/* Bytes of the remaining-length field for value; 0 if value cannot be encoded. */
size_t codec_varint_size(size_t value)
{
    if (value < 128)
        return 1;
    if (value < 16384)
        return 2;
    if (value < 2097152)
        return 3;
    if (value <= MQTT_MAX_REMAINING_LENGTH)
        return 4;
    return 0;
}

/* Write the remaining-length field [MQTT-2.2.3]; 0 (nothing written) if value is too large. */
size_t codec_varint_encode(uint8_t *out, size_t value)
{
    size_t n = 0;
    if (value > MQTT_MAX_REMAINING_LENGTH)
        return 0;
    do {
        uint8_t b = value & 0x7F;
        value >>= 7;
        out[n++] = value ? (b | 0x80) : b;
    } while (value);
    return n;
}

/* CONNACK [MQTT-3.2]. */
size_t codec_encode_connack(uint8_t *out, bool session_present, uint8_t rc)
{
    out[0] = MQTT_CONNACK << 4;
    out[1] = 2;
    out[2] = session_present ? 1 : 0;
    out[3] = rc;
    return CODEC_CONNACK_SIZE;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: a packet id; PUBREL carries flags 0x2 [MQTT-3.6.1-1].
 */
size_t codec_encode_ack(uint8_t *out, enum mqtt_type type, uint16_t packet_id)
{
    out[0] = (uint8_t)((type << 4) | (type == MQTT_PUBREL ? 0x2 : 0));
    out[1] = 2;
    put_u16(out + 2, packet_id);
    return CODEC_ACK_SIZE;
}

size_t codec_encode_pingresp(uint8_t *out)
{
    out[0] = MQTT_PINGRESP << 4;
    out[1] = 0;
    return CODEC_PING_SIZE;
}

size_t codec_encode_pingreq(uint8_t *out)
{
    out[0] = MQTT_PINGREQ << 4;
    out[1] = 0;
    return CODEC_PING_SIZE;
}

size_t codec_encode_disconnect(uint8_t *out)
{
    out[0] = MQTT_DISCONNECT << 4;
    out[1] = 0;
    return CODEC_PING_SIZE;
}

/* SUBACK [MQTT-3.9]: packet id and one return code per filter. */
size_t codec_suback_size(size_t count)
{
    return packet_size(2 + count);
}

size_t codec_encode_suback(uint8_t *out, uint16_t packet_id, const uint8_t *codes, size_t count)
{
    uint8_t *p = put_header(out, MQTT_SUBACK << 4, 2 + count);
    p = put_u16(p, packet_id);
    if (count)
        memcpy(p, codes, count);
    return (size_t)(p + count - out);
}

/* PUBLISH [MQTT-3.3]: topic, packet id for QoS > 0, payload. */
size_t codec_publish_size(size_t topic_len, size_t payload_len, uint8_t qos)
{
    return packet_size(2 + topic_len + (qos ? 2 : 0) + payload_len);
}

size_t codec_encode_publish(uint8_t *out, const struct mqtt_publish *p, size_t *id_offset)
{
    uint8_t qos = p->qos & 3;
    uint8_t byte0 =
        (uint8_t)((MQTT_PUBLISH << 4) | (p->dup ? 0x08 : 0) | (qos << 1) | (p->retain ? 0x01 : 0));
    size_t rl = 2 + p->topic.len + (qos ? 2 : 0) + p->payload_len;
    uint8_t *w = put_header(out, byte0, rl);

    w = put_str(w, p->topic.data, p->topic.len);
    if (id_offset)
        *id_offset = qos ? (size_t)(w - out) : 0;
    if (qos)
        w = put_u16(w, p->packet_id);
    if (p->payload_len)
        memcpy(w, p->payload, p->payload_len);
    return (size_t)(w + p->payload_len - out);
}

/* CONNECT remaining length: variable header (10 bytes, and at v5 the property block) plus the
 * payload fields the flags select (at v5 the Will Properties before the will topic). */
size_t codec_connect_rl(const struct mqtt_connect *c, const struct connect_props *cp)
{
    size_t rl = 10 + 2 + c->client_id.len + (cp ? props_block_size(cp->n) : 0);
    if (c->will_flag)
        rl += (cp ? props_block_size(cp->will_n) : 0) + 2 + c->will_topic.len + 2 +
              c->will_payload.len;
    if (c->has_username)
        rl += 2 + c->username.len;
    if (c->has_password)
        rl += 2 + c->password.len;
    return rl;
}

size_t codec_connect_size(const struct mqtt_connect *c)
{
    return packet_size(codec_connect_rl(c, NULL));
}

/* CONNECT [MQTT-3.1] of either level (cp NULL: 3.1.1). Other levels than default_level are written
 * as c gives them so tests can build refused CONNECTs. Will QoS and retain are written only with
 * the will flag. */
size_t codec_encode_connect_any(uint8_t *out, const struct mqtt_connect *c, uint8_t default_level,
                                const struct connect_props *cp)
{
    uint8_t fl = 0;
    if (c->clean_session)
        fl |= 0x02;
    if (c->will_flag)
        fl |= (uint8_t)(0x04 | ((c->will_qos & 3) << 3) | (c->will_retain ? 0x20 : 0));
    if (c->has_password)
        fl |= 0x40;
    if (c->has_username)
        fl |= 0x80;

    uint8_t *p = put_header(out, MQTT_CONNECT << 4, codec_connect_rl(c, cp));
    p = put_str(p, "MQTT", 4);
    *p++ = c->level ? c->level : default_level;
    *p++ = fl;
    p = put_u16(p, c->keepalive);
    if (cp)
        p = put_props(p, cp->props, cp->n);
    p = put_str(p, c->client_id.data, c->client_id.len);
    if (c->will_flag) {
        if (cp)
            p = put_props(p, cp->will, cp->will_n);
        p = put_str(p, c->will_topic.data, c->will_topic.len);
        p = put_str(p, c->will_payload.data, c->will_payload.len);
    }
    if (c->has_username)
        p = put_str(p, c->username.data, c->username.len);
    if (c->has_password)
        p = put_str(p, c->password.data, c->password.len);
    return (size_t)(p - out);
}

/* CONNECT 3.1.1: level 0 in c means 4. */
size_t codec_encode_connect(uint8_t *out, const struct mqtt_connect *c)
{
    return codec_encode_connect_any(out, c, MQTT_PROTOCOL_LEVEL_311, NULL);
}

/* Remaining length of a SUBSCRIBE (per_entry 3: length + QoS) or UNSUBSCRIBE (per_entry 2). */
static size_t filter_list_rl(const struct mqtt_str *filters, size_t count, size_t per_entry)
{
    size_t rl = 2;
    for (size_t i = 0; i < count; i++)
        rl += per_entry + filters[i].len;
    return rl;
}

size_t codec_subscribe_size(const struct mqtt_str *filters, size_t count)
{
    return packet_size(filter_list_rl(filters, count, 3));
}

/* SUBSCRIBE [MQTT-3.8], flags 0x2; qos NULL requests QoS 0 for every filter. */
size_t codec_encode_subscribe(uint8_t *out, uint16_t packet_id, const struct mqtt_str *filters,
                              const uint8_t *qos, size_t count)
{
    uint8_t *p = put_header(out, (MQTT_SUBSCRIBE << 4) | 0x2, filter_list_rl(filters, count, 3));
    p = put_u16(p, packet_id);
    for (size_t i = 0; i < count; i++) {
        p = put_str(p, filters[i].data, filters[i].len);
        *p++ = qos ? qos[i] : 0;
    }
    return (size_t)(p - out);
}

size_t codec_unsubscribe_size(const struct mqtt_str *filters, size_t count)
{
    return packet_size(filter_list_rl(filters, count, 2));
}

/* UNSUBSCRIBE [MQTT-3.10], flags 0x2. */
size_t codec_encode_unsubscribe(uint8_t *out, uint16_t packet_id, const struct mqtt_str *filters,
                                size_t count)
{
    uint8_t *p = put_header(out, (MQTT_UNSUBSCRIBE << 4) | 0x2, filter_list_rl(filters, count, 2));
    p = put_u16(p, packet_id);
    for (size_t i = 0; i < count; i++)
        p = put_str(p, filters[i].data, filters[i].len);
    return (size_t)(p - out);
}
