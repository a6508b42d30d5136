/*
 * codec_test.h - helpers shared by the codec's cmocka tests (test_codec.c, test_codec_connect.c,
 * test_props.c, test_codec5.c). The MQTT 5 part holds the spec's property table written out again,
 * apart from props.c's, so that the tests judge the codec's table instead of echoing it.
 */
#ifndef SOL_CODEC_TEST_H
#define SOL_CODEC_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"

/* A byte-array literal as the two arguments (pointer, length). */
// clang-format off
#define BYTES(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})
// clang-format on

static inline struct mqtt_str mstr(const char *s)
{
    return (struct mqtt_str){s, (uint16_t)strlen(s)};
}

/* The last decoded packet's bytes: an exact-size heap copy, so ASan flags any read past len. It
 * lives until the next decode_exact() so the decoded strings (pointers into it) can be checked. */
static uint8_t *held;

static inline int decode_exact(const uint8_t *b, size_t n, size_t max, struct mqtt_packet *p)
{
    free(held);
    held = malloc(n ? n : 1);
    assert_non_null(held);
    if (n)
        memcpy(held, b, n);
    return codec_decode(held, n, max, p);
}

static inline int free_held(void **state)
{
    free(held);
    held = NULL;
    return 0;
}

/* decode_exact at a protocol level (codec_decode_level). */
static inline int decode_level_exact(const uint8_t *b, size_t n, uint8_t level,
                                     struct mqtt_packet *p)
{
    free(held);
    held = malloc(n ? n : 1);
    assert_non_null(held);
    if (n)
        memcpy(held, b, n);
    return codec_decode_level(held, n, 0, level, p);
}

static inline int dec5(const uint8_t *b, size_t n)
{
    struct mqtt_packet p;
    return decode_level_exact(b, n, MQTT_PROTOCOL_LEVEL_5, &p);
}

static inline int dec(const uint8_t *b, size_t n)
{
    struct mqtt_packet p;
    return decode_exact(b, n, 0, &p);
}

/* Every strict prefix of a packet is CODEC_INCOMPLETE; the whole decodes with total_len n. */
static inline void assert_prefixes_incomplete(const uint8_t *b, size_t n)
{
    struct mqtt_packet p;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(decode_exact(b, i, 0, &p), CODEC_INCOMPLETE);
    assert_int_equal(decode_exact(b, n, 0, &p), CODEC_OK);
    assert_int_equal(p.total_len, n);
}

static inline void assert_str_eq(struct mqtt_str a, struct mqtt_str b)
{
    assert_int_equal(a.len, b.len);
    if (a.len)
        assert_memory_equal(a.data, b.data, a.len);
}

/* ---- MQTT 5 properties as the spec's table (sec. 2.2.2.2) lists them ---- */
#define SK(t) (1u << (t))
#define SK_ACKS (SK(MQTT_PUBACK) | SK(MQTT_PUBREC) | SK(MQTT_PUBREL) | SK(MQTT_PUBCOMP))

struct spec_prop {
    uint8_t id;
    enum prop_type type;
    uint32_t kinds;
};

static inline const struct spec_prop *spec_props(size_t *n)
{
    static const struct spec_prop t[] = {
        {0x01, PROP_TYPE_BYTE, SK(MQTT_PUBLISH) | SK(PROPS_WILL)},
        {0x02, PROP_TYPE_U32, SK(MQTT_PUBLISH) | SK(PROPS_WILL)},
        {0x03, PROP_TYPE_STRING, SK(MQTT_PUBLISH) | SK(PROPS_WILL)},
        {0x08, PROP_TYPE_STRING, SK(MQTT_PUBLISH) | SK(PROPS_WILL)},
        {0x09, PROP_TYPE_BINARY, SK(MQTT_PUBLISH) | SK(PROPS_WILL)},
        {0x0B, PROP_TYPE_VARINT, SK(MQTT_PUBLISH) | SK(MQTT_SUBSCRIBE)},
        {0x11, PROP_TYPE_U32, SK(MQTT_CONNECT) | SK(MQTT_CONNACK) | SK(MQTT_DISCONNECT)},
        {0x12, PROP_TYPE_STRING, SK(MQTT_CONNACK)},
        {0x13, PROP_TYPE_U16, SK(MQTT_CONNACK)},
        {0x15, PROP_TYPE_STRING, SK(MQTT_CONNECT) | SK(MQTT_CONNACK) | SK(MQTT_AUTH)},
        {0x16, PROP_TYPE_BINARY, SK(MQTT_CONNECT) | SK(MQTT_CONNACK) | SK(MQTT_AUTH)},
        {0x17, PROP_TYPE_BYTE, SK(MQTT_CONNECT)},
        {0x18, PROP_TYPE_U32, SK(PROPS_WILL)},
        {0x19, PROP_TYPE_BYTE, SK(MQTT_CONNECT)},
        {0x1A, PROP_TYPE_STRING, SK(MQTT_CONNACK)},
        {0x1C, PROP_TYPE_STRING, SK(MQTT_CONNACK) | SK(MQTT_DISCONNECT)},
        {0x1F, PROP_TYPE_STRING,
         SK(MQTT_CONNACK) | SK_ACKS | SK(MQTT_SUBACK) | SK(MQTT_UNSUBACK) | SK(MQTT_DISCONNECT) |
             SK(MQTT_AUTH)},
        {0x21, PROP_TYPE_U16, SK(MQTT_CONNECT) | SK(MQTT_CONNACK)},
        {0x22, PROP_TYPE_U16, SK(MQTT_CONNECT) | SK(MQTT_CONNACK)},
        {0x23, PROP_TYPE_U16, SK(MQTT_PUBLISH)},
        {0x24, PROP_TYPE_BYTE, SK(MQTT_CONNACK)},
        {0x25, PROP_TYPE_BYTE, SK(MQTT_CONNACK)},
        {0x26, PROP_TYPE_PAIR,
         SK(MQTT_CONNECT) | SK(MQTT_CONNACK) | SK(MQTT_PUBLISH) | SK(PROPS_WILL) | SK_ACKS |
             SK(MQTT_SUBSCRIBE) | SK(MQTT_SUBACK) | SK(MQTT_UNSUBSCRIBE) | SK(MQTT_UNSUBACK) |
             SK(MQTT_DISCONNECT) | SK(MQTT_AUTH)},
        {0x27, PROP_TYPE_U32, SK(MQTT_CONNECT) | SK(MQTT_CONNACK)},
        {0x28, PROP_TYPE_BYTE, SK(MQTT_CONNACK)},
        {0x29, PROP_TYPE_BYTE, SK(MQTT_CONNACK)},
        {0x2A, PROP_TYPE_BYTE, SK(MQTT_CONNACK)},
    };
    *n = sizeof t / sizeof t[0];
    return t;
}

/* Every kind a property block can be decoded for: the packet types that have one, and the will. */
static inline const unsigned *spec_kinds(size_t *n)
{
    static const unsigned k[] = {MQTT_CONNECT, MQTT_CONNACK,     MQTT_PUBLISH,  MQTT_PUBACK,
                                 MQTT_PUBREC,  MQTT_PUBREL,      MQTT_PUBCOMP,  MQTT_SUBSCRIBE,
                                 MQTT_SUBACK,  MQTT_UNSUBSCRIBE, MQTT_UNSUBACK, MQTT_DISCONNECT,
                                 MQTT_AUTH,    PROPS_WILL};
    *n = sizeof k / sizeof k[0];
    return k;
}

/* The field of a single-valued property, written out apart from props.c's table: its address in v
 * and *width, the bytes of an integer field (1, 2, 4) or 0 for a string / binary. */
static inline void *spec_field(const struct props_values *cv, unsigned id, size_t *width)
{
    struct props_values *v = (struct props_values *)cv;
    *width = 1;
    switch (id) {
    case 0x01:
        return &v->payload_format;
    case 0x17:
        return &v->request_problem_info;
    case 0x19:
        return &v->request_response_info;
    case 0x24:
        return &v->maximum_qos;
    case 0x25:
        return &v->retain_available;
    case 0x28:
        return &v->wildcard_sub_available;
    case 0x29:
        return &v->subid_available;
    case 0x2A:
        return &v->shared_sub_available;
    }
    *width = 2;
    switch (id) {
    case 0x13:
        return &v->server_keepalive;
    case 0x21:
        return &v->receive_maximum;
    case 0x22:
        return &v->topic_alias_maximum;
    case 0x23:
        return &v->topic_alias;
    }
    *width = 4;
    switch (id) {
    case 0x02:
        return &v->message_expiry;
    case 0x0B:
        return &v->subscription_id;
    case 0x11:
        return &v->session_expiry;
    case 0x18:
        return &v->will_delay;
    case 0x27:
        return &v->maximum_packet_size;
    }
    *width = 0;
    switch (id) {
    case 0x03:
        return &v->content_type;
    case 0x08:
        return &v->response_topic;
    case 0x09:
        return &v->correlation_data;
    case 0x12:
        return &v->assigned_client_id;
    case 0x15:
        return &v->auth_method;
    case 0x16:
        return &v->auth_data;
    case 0x1A:
        return &v->response_info;
    case 0x1C:
        return &v->server_reference;
    case 0x1F:
        return &v->reason_string;
    }
    fail_msg("no field for property 0x%02x", id);
    return NULL;
}

/* Read an integer property's value as decoded. */
static inline uint32_t spec_get_int(const struct props_values *v, unsigned id)
{
    size_t w;
    void *f = spec_field(v, id, &w);
    assert_true(w != 0);
    return w == 1 ? *(uint8_t *)f : w == 2 ? *(uint16_t *)f : *(uint32_t *)f;
}

/* Set an integer property's value for the writer. */
static inline void spec_set_int(struct props_values *v, unsigned id, uint32_t x)
{
    size_t w;
    void *f = spec_field(v, id, &w);
    assert_true(w != 0);
    if (w == 1)
        *(uint8_t *)f = (uint8_t)x;
    else if (w == 2)
        *(uint16_t *)f = (uint16_t)x;
    else
        *(uint32_t *)f = x;
}

/* The string / binary field of a property. */
static inline struct mqtt_str *spec_str_field(struct props_values *v, unsigned id)
{
    size_t w;
    void *f = spec_field(v, id, &w);
    assert_int_equal(w, 0);
    return f;
}

/* A sample value per property, distinct per identifier so a value landing in the wrong field shows:
 * flags 0/1, integers id-derived and above one byte, strings non-ASCII UTF-8, binaries with 0x00 and
 * 0xFF. */
static inline uint32_t spec_sample_int(const struct spec_prop *r)
{
    switch (r->type) {
    case PROP_TYPE_BYTE:
        return r->id & 1;
    case PROP_TYPE_U16:
        return 0x1200u + r->id;
    case PROP_TYPE_VARINT:
        return 16384u + r->id; /* a 3-byte varint */
    default:
        return 0x81020300u + r->id;
    }
}

static inline struct mqtt_str spec_sample_str(const struct spec_prop *r)
{
    static const char bin[] = {0x00, (char)0xFF, (char)0xC0, 'b', 0x00};
    /* 2-, 3- and 4-byte UTF-8 sequences, a different string per identifier */
    static const char *const utf[PROP_ID_MAX + 1] = {
        [0x03] = "ct \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80 03",
        [0x08] = "rt/\xC3\xA9/\xE2\x82\xAC/\xF0\x9F\x98\x80",
        [0x12] = "id-\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80-12",
        [0x15] = "SCRAM-\xC3\xA9\xE2\x82\xAC",
        [0x1A] = "ri \xF0\x9F\x98\x80\xC3\xA9",
        [0x1C] = "srv:\xE2\x82\xAC:1883",
        [0x1F] = "reason \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80",
        [0x26] = "user \xE2\x82\xAC\xC3\xA9",
    };
    if (r->type == PROP_TYPE_BINARY)
        return (struct mqtt_str){bin, (uint16_t)(sizeof bin - (r->id & 1))};
    assert_non_null(utf[r->id]);
    return (struct mqtt_str){utf[r->id], (uint16_t)strlen(utf[r->id])};
}

/* One sample of every property the spec allows on kind, in b (user properties and subscription ids
 * included: several where they repeat, one Subscription Identifier in SUBSCRIBE). */
static inline void spec_build_all(struct props_build *b, unsigned kind)
{
    static const struct mqtt_str_pair users[] = {
        {{"k\xC3\xA9", 3}, {"v1", 2}},
        {{"", 0}, {"", 0}},
        {{"k\xC3\xA9", 3}, {"v2 \xE2\x82\xAC", 6}}, /* a name may repeat */
    };
    static const uint32_t subids[] = {1, 127, 128, 268435455};
    size_t n;
    const struct spec_prop *t = spec_props(&n);
    memset(b, 0, sizeof *b);
    for (size_t i = 0; i < n; i++) {
        const struct spec_prop *r = &t[i];
        if (!(r->kinds & SK(kind)))
            continue;
        if (r->type == PROP_TYPE_PAIR) {
            b->user = users;
            b->user_count = sizeof users / sizeof users[0];
        } else if (r->type == PROP_TYPE_VARINT) {
            b->subid = subids;
            b->subid_count = kind == MQTT_PUBLISH ? 4 : 1;
        } else {
            b->v.has |= 1ull << r->id;
            if (r->type == PROP_TYPE_STRING || r->type == PROP_TYPE_BINARY)
                *spec_str_field(&b->v, r->id) = spec_sample_str(r);
            else
                spec_set_int(&b->v, r->id, spec_sample_int(r));
        }
    }
}

/* The view holds exactly what b built: the same single values, user properties and ids in order. */
static inline void assert_view_is_build(const struct props_view *v, const struct props_build *b)
{
    size_t n, pos = 0, i = 0;
    const struct spec_prop *t = spec_props(&n);
    uint64_t want = b->v.has;
    if (b->user_count)
        want |= 1ull << PROP_USER_PROPERTY;
    if (b->subid_count)
        want |= 1ull << PROP_SUBSCRIPTION_ID;
    assert_true(v->v.has == want);
    for (size_t k = 0; k < n; k++) {
        const struct spec_prop *r = &t[k];
        if (!(b->v.has >> r->id & 1))
            continue;
        if (r->type == PROP_TYPE_STRING || r->type == PROP_TYPE_BINARY)
            assert_str_eq(*spec_str_field((struct props_values *)&v->v, r->id),
                          *spec_str_field((struct props_values *)&b->v, r->id));
        else
            assert_int_equal(spec_get_int(&v->v, r->id), spec_get_int(&b->v, r->id));
    }
    struct mqtt_str_pair up;
    assert_int_equal(v->user_count, b->user_count);
    while (props_user_next(v, &pos, &up)) {
        assert_true(i < b->user_count);
        assert_str_eq(up.name, b->user[i].name);
        assert_str_eq(up.value, b->user[i].value);
        i++;
    }
    assert_int_equal(i, b->user_count);
    uint32_t id;
    pos = i = 0;
    assert_int_equal(v->subid_count, b->subid_count);
    while (props_subid_next(v, &pos, &id)) {
        assert_true(i < b->subid_count);
        assert_int_equal(id, b->subid[i]);
        i++;
    }
    assert_int_equal(i, b->subid_count);
    if (b->subid_count)
        assert_int_equal(v->v.subscription_id, b->subid[0]);
}

#endif
