/*
 * codec_int.h - what the codec's files share (codec.c, codec5.c, codec5_encode.c, props.c): the
 * bounded read cursor, the big-endian and string writers, the Variable Byte Integer reader and the
 * string checks. Private: nothing outside the codec includes it.
 */
#ifndef SOL_CODEC_INT_H
#define SOL_CODEC_INT_H

#include <string.h>

#include "codec.h"

/* A bounded cursor over a packet body. Every read checks the bounds; reading past the end is a
 * malformed packet because the whole body is already in the buffer when the cursor is used. */
struct cursor {
    const uint8_t *p;
    const uint8_t *end;
};

static inline size_t cursor_left(const struct cursor *c)
{
    return (size_t)(c->end - c->p);
}

/* Read a big-endian 16-bit integer. */
static inline bool cursor_u16(struct cursor *c, uint16_t *v)
{
    if (cursor_left(c) < 2)
        return false;
    *v = (uint16_t)((c->p[0] << 8) | c->p[1]);
    c->p += 2;
    return true;
}

/* Read a 2-byte length prefixed string or blob, zero-copy [MQTT-1.5.3]. */
static inline bool cursor_str(struct cursor *c, struct mqtt_str *s)
{
    uint16_t n;
    if (!cursor_u16(c, &n) || cursor_left(c) < n)
        return false;
    s->data = (const char *)c->p;
    s->len = n;
    c->p += n;
    return true;
}

static inline uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint8_t *put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static inline uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

static inline uint8_t *put_str(uint8_t *p, const char *s, size_t len)
{
    p = put_u16(p, (uint16_t)len);
    if (len)
        memcpy(p, s, len);
    return p + len;
}

/* Read a Variable Byte Integer [MQTT-1.5.5] from p[0..len): the bytes it took (1..4), 0 if len
 * ends before its last byte, -1 if the 4th byte still has the continuation bit (a 5th byte). The
 * one reader of the remaining length and of every v5 varint. */
static inline int varint_read(const uint8_t *p, size_t len, uint32_t *value)
{
    uint32_t v = 0;
    if (len > 0 && !(p[0] & 0x80)) { /* the common one-byte case */
        *value = p[0];
        return 1;
    }
    for (int i = 0; i < 4; i++) {
        if ((size_t)i >= len)
            return 0;
        v |= (uint32_t)(p[i] & 0x7F) << (7 * i);
        if (!(p[i] & 0x80)) {
            *value = v;
            return i + 1;
        }
    }
    return -1;
}

/* Fixed header: first byte and remaining length; returns the position after it. */
static inline uint8_t *put_header(uint8_t *out, uint8_t byte0, size_t rl)
{
    out[0] = byte0;
    return out + 1 + codec_varint_encode(out + 1, rl);
}

/* Total size of a packet with remaining length rl; 0 if rl is above the protocol maximum. */
static inline size_t packet_size(size_t rl)
{
    size_t v = codec_varint_size(rl);
    return v ? 1 + v + rl : 0;
}

/* A property block at the cursor, for kind (props_parse); the cursor moves past it. */
static inline int codec_cursor_props(struct cursor *c, unsigned kind, struct props_view *v)
{
    size_t used;
    int rc = props_parse(c->p, cursor_left(c), kind, v, &used);
    if (rc == CODEC_OK)
        c->p += used;
    return rc;
}

/* Bytes of a property block (length field included) holding n bytes of properties. */
static inline size_t props_block_size(size_t n)
{
    return codec_varint_size(n) + n;
}

/* Write a property block of b whose properties are n (= props_len(b)) bytes. */
static inline uint8_t *put_props(uint8_t *p, const struct props_build *b, size_t n)
{
    p += codec_varint_encode(p, n);
    return p + props_write(p, b);
}

/* A topic name's checks (non-empty, UTF-8, no wildcard): CODEC_OK, CODEC_ERR_TOPIC or
 * CODEC_ERR_UTF8 (codec.c). */
int codec_topic_name_check(const char *s, size_t len);
/* A SUBSCRIBE/UNSUBSCRIBE filter: non-empty, UTF-8 (codec.c). */
int codec_filter_check(const struct mqtt_str *f);

/* SUBSCRIBE / UNSUBSCRIBE body of either level; props NULL at 3.1.1 (codec.c). */
int codec_decode_filters(struct cursor *c, enum mqtt_type type, struct props_view *props,
                         struct mqtt_list *o);

/* The v5 property blocks of a CONNECT (NULL for 3.1.1): what they hold and their sizes. */
struct connect_props {
    const struct props_build *props, *will;
    size_t n, will_n;
};
/* CONNECT remaining length and encoder of either level (codec.c); default_level is written when
 * c->level is 0. */
size_t codec_connect_rl(const struct mqtt_connect *c, const struct connect_props *cp);
size_t codec_encode_connect_any(uint8_t *out, const struct mqtt_connect *c, uint8_t default_level,
                                const struct connect_props *cp);

/* The v5 bodies but CONNECT's (codec5.c): c is the body after the fixed header. */
int codec5_decode_body(struct cursor *c, struct mqtt_packet *out);

#endif
