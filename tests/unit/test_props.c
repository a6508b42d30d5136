/*
 * test_props.c - cmocka tests of the MQTT 5 property module (props.c): the identifier table against
 * the spec's (sec. 2.2.2.2), every identifier parsed on every kind of block (allowed or rejected),
 * duplicates, truncations, non-minimal Variable Byte Integers [MQTT-1.5.5-1], bad UTF-8
 * [MQTT-1.5.4-1/2], the values the spec makes Protocol Errors, iteration and the writer. Property
 * bytes here are written by hand, not by props_write, so the parser is judged on its own.
 */
#include "codec_test.h"

/* Hand-written sample property (identifier and value) of r; returns the bytes written. */
static size_t put_sample(uint8_t *p, const struct spec_prop *r)
{
    uint8_t *w = p;
    *w++ = r->id;
    if (r->type == PROP_TYPE_STRING || r->type == PROP_TYPE_BINARY || r->type == PROP_TYPE_PAIR) {
        struct mqtt_str s = spec_sample_str(r);
        for (int half = 0; half < (r->type == PROP_TYPE_PAIR ? 2 : 1); half++) {
            *w++ = (uint8_t)(s.len >> 8);
            *w++ = (uint8_t)s.len;
            memcpy(w, s.data, s.len);
            w += s.len;
        }
        return (size_t)(w - p);
    }
    uint32_t v = spec_sample_int(r);
    switch (r->type) {
    case PROP_TYPE_BYTE:
        *w++ = (uint8_t)v;
        break;
    case PROP_TYPE_U16:
        *w++ = (uint8_t)(v >> 8);
        *w++ = (uint8_t)v;
        break;
    case PROP_TYPE_U32:
        for (int i = 3; i >= 0; i--)
            *w++ = (uint8_t)(v >> (8 * i));
        break;
    default: /* varint: 16384 + id is three bytes */
        *w++ = (uint8_t)(0x80 | (v & 0x7F));
        *w++ = (uint8_t)(0x80 | ((v >> 7) & 0x7F));
        *w++ = (uint8_t)(v >> 14);
        break;
    }
    return (size_t)(w - p);
}

/* A block: one-byte length (n < 128) then the n property bytes. */
static size_t block(uint8_t *out, const uint8_t *props, size_t n)
{
    assert_true(n < 128);
    out[0] = (uint8_t)n;
    memcpy(out + 1, props, n);
    return n + 1;
}

/* Parse exactly n bytes from a heap copy (ASan sees any over-read), held until the next parse so
 * the view's strings can be checked. */
static int parse(const uint8_t *b, size_t n, unsigned kind, struct props_view *v)
{
    size_t used = 0;
    free(held);
    held = malloc(n ? n : 1);
    assert_non_null(held);
    memcpy(held, b, n);
    int rc = props_parse(held, n, kind, v, &used);
    if (rc == CODEC_OK)
        assert_int_equal(used, n);
    return rc;
}

static int parse_props(const uint8_t *props, size_t n, unsigned kind)
{
    uint8_t b[200];
    struct props_view v;
    return parse(b, block(b, props, n), kind, &v);
}

static const struct spec_prop *spec_row(uint8_t id)
{
    size_t n;
    const struct spec_prop *t = spec_props(&n);
    for (size_t i = 0; i < n; i++)
        if (t[i].id == id)
            return &t[i];
    fail_msg("no spec row 0x%02x", id);
    return NULL;
}

/* An allowed kind of a property, for the tests of values. */
static unsigned some_kind(const struct spec_prop *r)
{
    for (unsigned k = 1; k <= PROPS_WILL; k++)
        if (r->kinds & SK(k))
            return k;
    fail_msg("property 0x%02x allowed nowhere", r->id);
    return 0;
}

/* The table is the spec's: every defined id with its type and packets, nothing else defined. */
static void test_table_is_the_spec(void **state)
{
    size_t n, found = 0;
    const struct spec_prop *t = spec_props(&n);
    assert_int_equal(n, 27);
    for (unsigned id = 0; id < 256; id++) {
        const struct prop_info *info = props_info(id);
        const struct spec_prop *r = NULL;
        for (size_t i = 0; i < n; i++)
            if (t[i].id == id)
                r = &t[i];
        if (!r) {
            assert_null(info);
            continue;
        }
        found++;
        assert_non_null(info);
        assert_int_equal(info->type, r->type);
        assert_int_equal(info->kinds, r->kinds);
    }
    assert_int_equal(found, n);
}

/* (sec. 2.2.2.2) Every identifier on every kind of block: decoded with its value where the spec
 * allows it, a malformed property where it does not. */
static void test_every_id_every_kind(void **state)
{
    size_t n, nk;
    const struct spec_prop *t = spec_props(&n);
    const unsigned *kinds = spec_kinds(&nk);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < nk; k++) {
            uint8_t props[64], b[80];
            struct props_view v;
            size_t pn = put_sample(props, &t[i]);
            int rc = parse(b, block(b, props, pn), kinds[k], &v);
            if (!(t[i].kinds & SK(kinds[k]))) {
                assert_int_equal(rc, CODEC_ERR_PROPERTY);
                continue;
            }
            if (t[i].id == PROP_AUTH_DATA) { /* needs its method (sec. 3.1.2.11.10) */
                assert_int_equal(rc, CODEC_ERR_PROTOCOL);
                continue;
            }
            assert_int_equal(rc, CODEC_OK);
            assert_true(v.v.has == 1ull << t[i].id);
            assert_int_equal(v.len, pn);
            /* the writer writes the hand-written bytes back from the parsed values */
            uint8_t w[64];
            struct mqtt_str_pair up1;
            size_t upos = 0;
            uint32_t sid = v.v.subscription_id;
            struct props_build one = {.v = v.v};
            one.v.has &= ~((1ull << PROP_USER_PROPERTY) | (1ull << PROP_SUBSCRIPTION_ID));
            if (props_user_next(&v, &upos, &up1)) {
                one.user = &up1;
                one.user_count = 1;
            }
            if (v.subid_count) {
                one.subid = &sid;
                one.subid_count = 1;
            }
            assert_int_equal(props_len(&one), pn);
            assert_int_equal(props_write(w, &one), pn);
            assert_memory_equal(w, props, pn);
            if (t[i].type == PROP_TYPE_STRING || t[i].type == PROP_TYPE_BINARY) {
                assert_str_eq(*spec_str_field(&v.v, t[i].id), spec_sample_str(&t[i]));
            } else if (t[i].type == PROP_TYPE_PAIR) {
                struct mqtt_str_pair up;
                size_t pos = 0;
                assert_int_equal(v.user_count, 1);
                assert_true(props_user_next(&v, &pos, &up));
                assert_str_eq(up.name, spec_sample_str(&t[i]));
                assert_str_eq(up.value, spec_sample_str(&t[i]));
                assert_false(props_user_next(&v, &pos, &up));
            } else {
                assert_int_equal(spec_get_int(&v.v, t[i].id), spec_sample_int(&t[i]));
                if (t[i].type == PROP_TYPE_VARINT)
                    assert_int_equal(v.subid_count, 1);
            }
        }
    }
}

/* Identifiers the spec does not define are malformed on every kind. */
static void test_unknown_ids(void **state)
{
    static const uint8_t ids[] = {0x00, 0x04, 0x05, 0x06, 0x07, 0x0A, 0x0C, 0x10,
                                  0x14, 0x1B, 0x1D, 0x1E, 0x20, 0x2B, 0x40, 0x7F};
    size_t nk;
    const unsigned *kinds = spec_kinds(&nk);
    for (size_t i = 0; i < sizeof ids; i++)
        for (size_t k = 0; k < nk; k++) {
            uint8_t p[] = {ids[i], 0, 0, 0, 0};
            assert_int_equal(parse_props(p, sizeof p, kinds[k]), CODEC_ERR_PROPERTY);
        }
    /* a two-byte identifier (128) is no defined one either */
    assert_int_equal(parse_props((const uint8_t[]){0x80, 0x01, 0}, 3, MQTT_PUBLISH),
                     CODEC_ERR_PROPERTY);
}

/* A single-valued property twice is a Protocol Error ("more than once", every property's text); a
 * User Property repeats anywhere, a Subscription Identifier in PUBLISH only (sec. 3.8.2.1.2). */
static void test_duplicates(void **state)
{
    size_t n;
    const struct spec_prop *t = spec_props(&n);
    for (size_t i = 0; i < n; i++) {
        uint8_t props[128];
        struct props_view v;
        uint8_t b[140];
        size_t pn = 0;
        unsigned kind = some_kind(&t[i]);
        if (t[i].id == PROP_AUTH_DATA)
            pn += put_sample(props, spec_row(PROP_AUTH_METHOD));
        pn += put_sample(props + pn, &t[i]);
        pn += put_sample(props + pn, &t[i]);
        int rc = parse(b, block(b, props, pn), kind, &v);
        if (t[i].type == PROP_TYPE_PAIR) {
            assert_int_equal(rc, CODEC_OK);
            assert_int_equal(v.user_count, 2);
        } else if (t[i].type == PROP_TYPE_VARINT) {
            assert_int_equal(kind, MQTT_PUBLISH);
            assert_int_equal(rc, CODEC_OK);
            assert_int_equal(v.subid_count, 2);
            assert_int_equal(parse(b, block(b, props, pn), MQTT_SUBSCRIBE, &v), CODEC_ERR_PROTOCOL);
        } else {
            assert_int_equal(rc, CODEC_ERR_PROTOCOL);
        }
    }
}

/* Every cut of a property value, and a length field pointing past the buffer: malformed. */
static void test_truncations(void **state)
{
    size_t n;
    const struct spec_prop *t = spec_props(&n);
    for (size_t i = 0; i < n; i++) {
        uint8_t props[64], b[80];
        struct props_view v;
        size_t used;
        unsigned kind = some_kind(&t[i]);
        size_t pn = put_sample(props, &t[i]);
        for (size_t cut = 1; cut < pn; cut++)
            assert_int_equal(parse(b, block(b, props, cut), kind, &v), CODEC_ERR_PROPERTY);
        /* the block says pn bytes, the buffer holds fewer */
        size_t bn = block(b, props, pn);
        for (size_t have = 0; have < bn; have++)
            assert_int_equal(props_parse(b, have, kind, &v, &used), CODEC_ERR_PROPERTY);
    }
}

/* [MQTT-1.5.5-1] Variable Byte Integers minimal: the block length, a Subscription Identifier and an
 * identifier padded with a 0x80 byte are malformed; more than four bytes too. */
static void test_non_minimal_varints(void **state)
{
    struct props_view v;
    size_t used;
    assert_int_equal(props_parse(BYTES(0x80, 0x00), MQTT_PUBLISH, &v, &used), CODEC_ERR_PROPERTY);
    assert_int_equal(props_parse(BYTES(0x81, 0x00, 0x01, 0x01), MQTT_PUBLISH, &v, &used),
                     CODEC_ERR_PROPERTY);
    assert_int_equal(props_parse(BYTES(0x03, 0x0B, 0x81, 0x00), MQTT_PUBLISH, &v, &used),
                     CODEC_ERR_PROPERTY);
    assert_int_equal(props_parse(BYTES(0x03, 0x81, 0x00, 0x01), MQTT_PUBLISH, &v, &used),
                     CODEC_ERR_PROPERTY);
    assert_int_equal(
        props_parse(BYTES(0x06, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01), MQTT_PUBLISH, &v, &used),
        CODEC_ERR_PROPERTY);
    assert_int_equal(props_parse(BYTES(0xFF, 0xFF, 0xFF, 0xFF, 0x01), MQTT_PUBLISH, &v, &used),
                     CODEC_ERR_PROPERTY);
    /* the minimal forms decode: 127, 128, the maximum 268435455 */
    assert_int_equal(props_parse(BYTES(0x02, 0x0B, 0x7F), MQTT_PUBLISH, &v, &used), CODEC_OK);
    assert_int_equal(v.v.subscription_id, 127);
    assert_int_equal(props_parse(BYTES(0x03, 0x0B, 0x80, 0x01), MQTT_PUBLISH, &v, &used), CODEC_OK);
    assert_int_equal(v.v.subscription_id, 128);
    assert_int_equal(
        props_parse(BYTES(0x05, 0x0B, 0xFF, 0xFF, 0xFF, 0x7F), MQTT_PUBLISH, &v, &used), CODEC_OK);
    assert_int_equal(v.v.subscription_id, 268435455);
    assert_int_equal(used, 6);
}

/* [MQTT-1.5.4-1/2] Every UTF-8 string property, and each half of a User Property, refuses
 * ill-formed UTF-8, a surrogate and U+0000; Binary Data takes the same bytes. */
static void test_bad_utf8(void **state)
{
    static const uint8_t bad[][3] = {
        {0xC0, 0x80, 'x'}, {0xED, 0xA0, 0x80}, {'a', 0x00, 'b'}, {0xFF, 'a', 'b'}};
    size_t n;
    const struct spec_prop *t = spec_props(&n);
    for (size_t i = 0; i < n; i++) {
        if (t[i].type != PROP_TYPE_STRING && t[i].type != PROP_TYPE_BINARY &&
            t[i].type != PROP_TYPE_PAIR)
            continue;
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            for (int half = 0; half < (t[i].type == PROP_TYPE_PAIR ? 2 : 1); half++) {
                uint8_t p[32] = {t[i].id}, *w = p + 1;
                for (int h = 0; h < (t[i].type == PROP_TYPE_PAIR ? 2 : 1); h++) {
                    *w++ = 0;
                    *w++ = 3;
                    memcpy(w, h == half ? bad[k] : (const uint8_t *)"ok!", 3);
                    w += 3;
                }
                size_t pn = (size_t)(w - p);
                int want = t[i].type == PROP_TYPE_BINARY ? CODEC_OK : CODEC_ERR_UTF8;
                if (t[i].id == PROP_AUTH_DATA) {
                    memmove(p + 6, p, pn); /* method first: "m" */
                    memcpy(p, (const uint8_t[]){0x15, 0, 3, 'a', 'b', 'c'}, 6);
                    pn += 6;
                }
                assert_int_equal(parse_props(p, pn, some_kind(&t[i])), want);
            }
        }
    }
}

/* Zero values the spec makes Protocol Errors: Receive Maximum (sec. 3.1.2.11.3), Maximum Packet
 * Size (sec. 3.1.2.11.4), Topic Alias [MQTT-3.3.2-8], Subscription Identifier (sec. 3.8.2.1.2);
 * other zeros are values like any. */
static void test_zero_values(void **state)
{
    assert_int_equal(parse_props(BYTES(0x21, 0, 0), MQTT_CONNECT), CODEC_ERR_PROTOCOL);
    assert_int_equal(parse_props(BYTES(0x21, 0, 0), MQTT_CONNACK), CODEC_ERR_PROTOCOL);
    assert_int_equal(parse_props(BYTES(0x27, 0, 0, 0, 0), MQTT_CONNECT), CODEC_ERR_PROTOCOL);
    assert_int_equal(parse_props(BYTES(0x27, 0, 0, 0, 0), MQTT_CONNACK), CODEC_ERR_PROTOCOL);
    assert_int_equal(parse_props(BYTES(0x23, 0, 0), MQTT_PUBLISH), CODEC_ERR_TOPIC_ALIAS);
    assert_int_equal(parse_props(BYTES(0x0B, 0), MQTT_PUBLISH), CODEC_ERR_PROTOCOL);
    assert_int_equal(parse_props(BYTES(0x0B, 0), MQTT_SUBSCRIBE), CODEC_ERR_PROTOCOL);
    assert_int_equal(parse_props(BYTES(0x11, 0, 0, 0, 0), MQTT_CONNECT), CODEC_OK);
    assert_int_equal(parse_props(BYTES(0x22, 0, 0), MQTT_CONNECT), CODEC_OK);
    assert_int_equal(parse_props(BYTES(0x13, 0, 0), MQTT_CONNACK), CODEC_OK);
    assert_int_equal(parse_props(BYTES(0x02, 0, 0, 0, 0), MQTT_PUBLISH), CODEC_OK);
    assert_int_equal(parse_props(BYTES(0x18, 0, 0, 0, 0), PROPS_WILL), CODEC_OK);
    assert_int_equal(parse_props(BYTES(0x21, 0, 1, 0x27, 0, 0, 0, 1), MQTT_CONNECT), CODEC_OK);
}

/* Byte properties take 0 and 1 only: 2 and 0xFF are a Protocol Error where the spec says so
 * (Request Problem / Response Information, Maximum QoS, the four Available flags) and malformed
 * for the Payload Format Indicator, whose type has only those two values (sec. 3.3.2.3.2). */
static void test_byte_values(void **state)
{
    size_t n;
    const struct spec_prop *t = spec_props(&n);
    for (size_t i = 0; i < n; i++) {
        if (t[i].type != PROP_TYPE_BYTE)
            continue;
        unsigned kind = some_kind(&t[i]);
        for (unsigned x = 0; x < 256; x++) {
            uint8_t p[] = {t[i].id, (uint8_t)x};
            struct props_view v;
            uint8_t b[4];
            int rc = parse(b, block(b, p, 2), kind, &v);
            if (x <= 1) {
                assert_int_equal(rc, CODEC_OK);
                assert_int_equal(spec_get_int(&v.v, t[i].id), x);
            } else {
                assert_int_equal(rc, t[i].id == PROP_PAYLOAD_FORMAT ? CODEC_ERR_PROPERTY
                                                                    : CODEC_ERR_PROTOCOL);
            }
        }
    }
}

/* Authentication Data without Authentication Method is a Protocol Error (sec. 3.1.2.11.10)
 * (CONNECT), and in CONNACK and AUTH; with it, either order. */
static void test_auth_data_needs_method(void **state)
{
    static const unsigned kinds[] = {MQTT_CONNECT, MQTT_CONNACK, MQTT_AUTH};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(parse_props(BYTES(0x16, 0, 1, 0xFF), kinds[i]), CODEC_ERR_PROTOCOL);
        assert_int_equal(parse_props(BYTES(0x16, 0, 1, 0xFF, 0x15, 0, 1, 'm'), kinds[i]), CODEC_OK);
        assert_int_equal(parse_props(BYTES(0x15, 0, 1, 'm'), kinds[i]), CODEC_OK);
    }
}

/* An empty block is one zero byte; the parser takes only its block and leaves what follows. */
static void test_empty_and_used(void **state)
{
    struct props_view v;
    size_t used = 99;
    assert_int_equal(props_parse(BYTES(0x00, 0xAA, 0xBB), MQTT_PUBACK, &v, &used), CODEC_OK);
    assert_int_equal(used, 1);
    assert_true(v.v.has == 0);
    assert_int_equal(v.len, 0);
    assert_int_equal(props_parse(BYTES(0x02, 0x23, 0x00, 0x05), MQTT_PUBLISH, &v, &used),
                     CODEC_ERR_PROPERTY); /* the value runs past the block's end */
    assert_int_equal(props_parse(BYTES(0x03, 0x23, 0x00, 0x05, 0xEE), MQTT_PUBLISH, &v, &used),
                     CODEC_OK);
    assert_int_equal(used, 4);
    assert_int_equal(v.v.topic_alias, 5);
    assert_int_equal(props_parse(NULL, 0, MQTT_PUBACK, &v, &used), CODEC_ERR_PROPERTY);
}

/* User Properties and Subscription Identifiers iterate in wire order among other properties. */
static void test_iterators_wire_order(void **state)
{
    const uint8_t b[] = {26, 0x26, 0, 1, 'a',  0,    1,    '1',  0x0B, 0x05, 0x01, 1,    0x26, 0,
                         1,  'b',  0, 0, 0x0B, 0x80, 0x01, 0x03, 0,    1,    'c',  0x0B, 0x7F};
    struct props_view v;
    size_t used, pos = 0;
    struct mqtt_str_pair up;
    uint32_t id;
    assert_int_equal(props_parse(b, sizeof b, MQTT_PUBLISH, &v, &used), CODEC_OK);
    assert_int_equal(used, sizeof b);
    assert_int_equal(v.user_count, 2);
    assert_int_equal(v.subid_count, 3);
    assert_int_equal(v.v.subscription_id, 5);
    assert_int_equal(v.v.payload_format, 1);
    assert_str_eq(v.v.content_type, mstr("c"));
    assert_true(props_user_next(&v, &pos, &up));
    assert_str_eq(up.name, mstr("a"));
    assert_str_eq(up.value, mstr("1"));
    assert_true(props_user_next(&v, &pos, &up));
    assert_str_eq(up.name, mstr("b"));
    assert_str_eq(up.value, mstr(""));
    assert_false(props_user_next(&v, &pos, &up));
    pos = 0;
    assert_true(props_subid_next(&v, &pos, &id));
    assert_int_equal(id, 5);
    assert_true(props_subid_next(&v, &pos, &id));
    assert_int_equal(id, 128);
    assert_true(props_subid_next(&v, &pos, &id));
    assert_int_equal(id, 127);
    assert_false(props_subid_next(&v, &pos, &id));
}

/* The writer: every property of every kind written and parsed back the same; the length it
 * announces is the length it writes; identifier order; NULL is nothing. */
static void test_writer_roundtrip_every_kind(void **state)
{
    size_t nk;
    const unsigned *kinds = spec_kinds(&nk);
    for (size_t k = 0; k < nk; k++) {
        struct props_build b;
        struct props_view v;
        uint8_t buf[600];
        size_t used;
        spec_build_all(&b, kinds[k]);
        size_t n = props_len(&b);
        assert_true(n > 0 && n < 500);
        buf[0] = (uint8_t)(n < 128 ? n : (n & 0x7F) | 0x80);
        size_t off = n < 128 ? 1 : 2;
        if (n >= 128)
            buf[1] = (uint8_t)(n >> 7);
        memset(buf + off, 0xEE, sizeof buf - off);
        assert_int_equal(props_write(buf + off, &b), n);
        assert_int_equal(buf[off + n], 0xEE); /* not a byte more */
        assert_int_equal(props_parse(buf, off + n, kinds[k], &v, &used), CODEC_OK);
        assert_int_equal(used, off + n);
        assert_view_is_build(&v, &b);
        /* the same bytes as each single-valued property written alone, in identifier order,
         * then the User Properties, then the Subscription Identifiers */
        uint8_t want[600];
        size_t wn = 0;
        for (unsigned id = 0; id <= PROP_ID_MAX; id++) {
            if (!(b.v.has >> id & 1))
                continue;
            struct props_build one = {.v = b.v};
            one.v.has = 1ull << id;
            wn += props_write(want + wn, &one);
        }
        struct props_build users = {.user = b.user, .user_count = b.user_count};
        struct props_build subids = {.subid = b.subid, .subid_count = b.subid_count};
        wn += props_write(want + wn, &users);
        wn += props_write(want + wn, &subids);
        assert_int_equal(wn, n);
        assert_memory_equal(buf + off, want, n);
    }
    assert_int_equal(props_len(NULL), 0);
    assert_int_equal(props_write(NULL, NULL), 0);
}

/* Subscription Identifiers are written as minimal varints [MQTT-1.5.5-1]: 1, 2, 3, 4 bytes. */
static void test_writer_minimal_varints(void **state)
{
    static const uint32_t ids[] = {127, 128, 16383, 16384, 2097151, 2097152, 268435455};
    static const size_t sizes[] = {1, 2, 2, 3, 3, 4, 4};
    for (size_t i = 0; i < 7; i++) {
        struct props_build b = {.subid = &ids[i], .subid_count = 1};
        uint8_t out[8];
        assert_int_equal(props_len(&b), 1 + sizes[i]);
        assert_int_equal(props_write(out, &b), 1 + sizes[i]);
        assert_int_equal(out[0], PROP_SUBSCRIPTION_ID);
        assert_int_equal(out[sizes[i]] & 0x80, 0);
        assert_true(out[sizes[i]] != 0); /* no padding byte */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_the_spec),
        cmocka_unit_test(test_every_id_every_kind),
        cmocka_unit_test(test_unknown_ids),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_non_minimal_varints),
        cmocka_unit_test(test_bad_utf8),
        cmocka_unit_test(test_zero_values),
        cmocka_unit_test(test_byte_values),
        cmocka_unit_test(test_auth_data_needs_method),
        cmocka_unit_test(test_empty_and_used),
        cmocka_unit_test(test_iterators_wire_order),
        cmocka_unit_test(test_writer_roundtrip_every_kind),
        cmocka_unit_test(test_writer_minimal_varints),
    };
    return cmocka_run_group_tests(tests, NULL, free_held);
}
