/*
 * test_codec5.c - cmocka tests of the MQTT 5.0 codec (codec5.c, codec5_encode.c, the level dispatch
 * of codec.c): every v5 packet encoded and decoded with every property the spec allows on it, each
 * refused property, reason codes per packet, the short ack / DISCONNECT / AUTH forms, Subscription
 * Options, CONNECT / CONNACK / PUBLISH v5 rules, AUTH at level 4 against 5, the protocol level the
 * decode follows, codec_reason_code. Spec statements cited by id.
 */
#include <stdio.h>

#include "codec_test.h"

static const struct mqtt_str sub_filters[] = {{"a/+/c", 5}, {"$share/g/x/#", 12}};
static const uint8_t two_reasons[][2] = {
    [MQTT_SUBACK] = {0x01, 0xA2},
    [MQTT_UNSUBACK] = {0x11, 0x00},
};

/* A representative v5 packet of kind (PROPS_WILL: a CONNECT whose Will Properties are b) with the
 * property block b, by the codec's encoders; checks each size function against its encoder. */
static size_t encode_kind(unsigned kind, const struct props_build *b, uint8_t *out)
{
    struct mqtt_connect c = {.clean_session = true,
                             .keepalive = 60,
                             .client_id = mstr("cid"),
                             .has_username = true,
                             .username = mstr("u"),
                             .has_password = true,
                             .password = {"\x00p", 2}};
    struct mqtt_publish pub = {.qos = 1,
                               .packet_id = 0x0102,
                               .topic = mstr("t/1"),
                               .payload = (const uint8_t *)"\x00pay",
                               .payload_len = 4};
    struct mqtt_sub_options opts[2] = {{.qos = 2, .retain_handling = 2, .retain_as_published = 1},
                                       {.qos = 1}};
    uint8_t props[1024];
    size_t n = 0, sz = 0, pn, off;

    switch (kind) {
    case MQTT_CONNECT:
        sz = codec_connect5_size(&c, b, NULL);
        n = codec_encode_connect5(out, &c, b, NULL);
        break;
    case PROPS_WILL:
        c.will_flag = true;
        c.will_qos = 1;
        c.will_retain = true;
        c.will_topic = mstr("will/t");
        c.will_payload = (struct mqtt_str){"\x00\xFF", 2};
        sz = codec_connect5_size(&c, NULL, b);
        n = codec_encode_connect5(out, &c, NULL, b);
        break;
    case MQTT_CONNACK:
        sz = codec_connack5_size(b);
        n = codec_encode_connack5(out, true, 0, b);
        break;
    case MQTT_PUBLISH:
        pn = props_write(props, b);
        assert_int_equal(pn, props_len(b));
        sz = codec_publish5_size(pub.topic.len, pn, pub.payload_len, pub.qos);
        n = codec_encode_publish5(out, &pub, props, pn, &off);
        assert_int_equal(off, 2 + 2 + pub.topic.len);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: {
        uint8_t reason = kind == MQTT_PUBREL || kind == MQTT_PUBCOMP ? 0x92 : 0x10;
        sz = codec_ack5_size(reason, b);
        n = codec_encode_ack5(out, kind, 0x0A0B, reason, b);
        break;
    }
    case MQTT_SUBSCRIBE:
        sz = codec_subscribe5_size(sub_filters, 1, b);
        n = codec_encode_subscribe5(out, 9, sub_filters, opts, 1, b);
        break;
    case MQTT_UNSUBSCRIBE:
        sz = codec_unsubscribe5_size(sub_filters, 2, b);
        n = codec_encode_unsubscribe5(out, 9, sub_filters, 2, b);
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        sz = codec_suback5_size(2, b);
        n = codec_encode_suback5(out, kind, 9, two_reasons[kind], 2, b);
        break;
    case MQTT_DISCONNECT:
        sz = codec_disconnect5_size(0x04, b);
        n = codec_encode_disconnect5(out, MQTT_DISCONNECT, 0x04, b);
        break;
    case MQTT_AUTH:
        sz = codec_disconnect5_size(0x18, b);
        n = codec_encode_disconnect5(out, MQTT_AUTH, 0x18, b);
        break;
    default:
        fail_msg("no packet for kind %u", kind);
    }
    assert_int_equal(n, sz);
    return n;
}

/* The fields other than properties of encode_kind's packets, decoded. */
static void assert_kind_fields(unsigned kind, const struct mqtt_packet *p)
{
    assert_int_equal(p->level, MQTT_PROTOCOL_LEVEL_5);
    assert_int_equal(p->type, kind == PROPS_WILL ? MQTT_CONNECT : kind);
    switch (kind) {
    case PROPS_WILL:
        assert_true(p->u.connect.will_flag && p->u.connect.will_retain);
        assert_int_equal(p->u.connect.will_qos, 1);
        assert_str_eq(p->u.connect.will_topic, mstr("will/t"));
        assert_str_eq(p->u.connect.will_payload, ((struct mqtt_str){"\x00\xFF", 2}));
        assert_kind_fields(MQTT_CONNECT, p); /* the rest of the CONNECT */
        break;
    case MQTT_CONNECT:
        assert_int_equal(p->u.connect.level, 5);
        assert_true(p->u.connect.clean_session);
        assert_int_equal(p->u.connect.keepalive, 60);
        assert_str_eq(p->u.connect.client_id, mstr("cid"));
        assert_str_eq(p->u.connect.username, mstr("u"));
        assert_str_eq(p->u.connect.password, ((struct mqtt_str){"\x00p", 2}));
        break;
    case MQTT_CONNACK:
        assert_true(p->u.connack.session_present);
        assert_int_equal(p->u.connack.rc, 0);
        break;
    case MQTT_PUBLISH:
        assert_int_equal(p->u.publish.qos, 1);
        assert_int_equal(p->u.publish.packet_id, 0x0102);
        assert_str_eq(p->u.publish.topic, mstr("t/1"));
        assert_int_equal(p->u.publish.payload_len, 4);
        assert_memory_equal(p->u.publish.payload, "\x00pay", 4);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        assert_int_equal(p->u.ack.packet_id, 0x0A0B);
        assert_int_equal(p->u.packet_id, 0x0A0B);
        assert_int_equal(p->u.ack.reason, kind >= MQTT_PUBREL ? 0x92 : 0x10);
        break;
    case MQTT_SUBSCRIBE: {
        struct mqtt_str f;
        struct mqtt_sub_options o;
        size_t pos = 0;
        assert_int_equal(p->u.subscribe.packet_id, 9);
        assert_int_equal(p->u.subscribe.count, 1);
        assert_true(codec_subscribe5_next(&p->u.subscribe, &pos, &f, &o));
        assert_str_eq(f, sub_filters[0]);
        assert_int_equal(o.qos, 2);
        assert_int_equal(o.retain_handling, 2);
        assert_true(o.retain_as_published && !o.no_local);
        assert_false(codec_subscribe5_next(&p->u.subscribe, &pos, &f, &o));
        break;
    }
    case MQTT_UNSUBSCRIBE: {
        struct mqtt_str f;
        size_t pos = 0;
        assert_int_equal(p->u.unsubscribe.count, 2);
        assert_true(codec_unsubscribe_next(&p->u.unsubscribe, &pos, &f));
        assert_str_eq(f, sub_filters[0]);
        assert_true(codec_unsubscribe_next(&p->u.unsubscribe, &pos, &f));
        assert_str_eq(f, sub_filters[1]);
        assert_false(codec_unsubscribe_next(&p->u.unsubscribe, &pos, &f));
        break;
    }
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        assert_int_equal(p->u.suback.packet_id, 9);
        assert_int_equal(p->u.suback.count, 2);
        assert_memory_equal(p->u.suback.ptr, two_reasons[kind], 2);
        break;
    case MQTT_DISCONNECT:
        assert_int_equal(p->u.reason, 0x04);
        break;
    case MQTT_AUTH:
        assert_int_equal(p->u.reason, 0x18);
        break;
    }
}

static const struct props_view *props_of(unsigned kind, const struct mqtt_packet *p)
{
    return kind == PROPS_WILL ? &p->u.connect.will_props : &p->props;
}

/* Every strict prefix of a v5 packet is incomplete at level 5; the whole is one packet. */
static void assert_prefixes_incomplete5(const uint8_t *b, size_t n)
{
    struct mqtt_packet p;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(decode_level_exact(b, i, 5, &p), CODEC_INCOMPLETE);
}

/* Every v5 packet, both directions, with every property the spec allows on it and with none:
 * encoded by the codec, decoded at level 5 to the same fields and properties. */
static void test_every_packet_every_property(void **state)
{
    size_t nk;
    const unsigned *kinds = spec_kinds(&nk);
    for (size_t k = 0; k < nk; k++) {
        for (int with = 0; with < 2; with++) {
            struct props_build b;
            uint8_t buf[1024];
            struct mqtt_packet p;
            spec_build_all(&b, kinds[k]);
            if (!with)
                memset(&b, 0, sizeof b);
            size_t n = encode_kind(kinds[k], &b, buf);
            assert_int_equal(decode_level_exact(buf, n, 5, &p), CODEC_OK);
            assert_int_equal(p.total_len, n);
            assert_kind_fields(kinds[k], &p);
            assert_view_is_build(props_of(kinds[k], &p), &b);
            if (kinds[k] == PROPS_WILL)
                assert_true(p.props.v.has == 0);
            if (kinds[k] == MQTT_CONNECT)
                assert_true(p.u.connect.will_props.v.has == 0);
            if (with)
                assert_prefixes_incomplete5(buf, n);
        }
    }
}

/* A CONNECT with every CONNECT and Will property, its remaining length cut anywhere (the fixed header
 * rewritten to say so): never accepted, since the flags fix every field; the cut inside a property
 * block is a malformed property. */
static void test_connect5_cut_anywhere(void **state)
{
    struct props_build cp, wp;
    uint8_t buf[1024], cut[1024];
    struct mqtt_connect c = {.clean_session = true,
                             .client_id = mstr("cid"),
                             .will_flag = true,
                             .will_topic = mstr("w"),
                             .will_payload = mstr("p"),
                             .has_username = true,
                             .username = mstr("u")};
    spec_build_all(&cp, MQTT_CONNECT);
    spec_build_all(&wp, PROPS_WILL);
    size_t n = codec_encode_connect5(buf, &c, &cp, &wp), hdr = 1;
    while (buf[hdr] & 0x80)
        hdr++;
    hdr++;
    size_t props_end = hdr + 10 + codec_varint_size(props_len(&cp)) + props_len(&cp);
    for (size_t rl = 0; rl < n - hdr; rl++) {
        struct mqtt_packet p;
        cut[0] = buf[0];
        size_t h = 1 + codec_varint_encode(cut + 1, rl);
        memcpy(cut + h, buf + hdr, rl);
        int rc = decode_level_exact(cut, h + rl, 5, &p);
        assert_true(rc < 0);
        if (hdr + rl > hdr + 10 && hdr + rl < props_end)
            assert_int_equal(rc, CODEC_ERR_PROPERTY);
    }
}

/* (sec. 2.2.2.2) Each property on each packet that does not allow it: a malformed property. */
static void test_every_refused_property(void **state)
{
    size_t n, nk;
    const struct spec_prop *t = spec_props(&n);
    const unsigned *kinds = spec_kinds(&nk);
    for (size_t k = 0; k < nk; k++) {
        for (size_t i = 0; i < n; i++) {
            if (t[i].kinds & SK(kinds[k]))
                continue;
            struct props_build all, one;
            unsigned allowed = 0;
            for (unsigned x = 1; x <= PROPS_WILL && !allowed; x++)
                if (t[i].kinds & SK(x))
                    allowed = x;
            spec_build_all(&all, allowed);
            memset(&one, 0, sizeof one);
            one.v = all.v;
            one.v.has &= 1ull << t[i].id;
            if (t[i].type == PROP_TYPE_VARINT) {
                one.subid = all.subid;
                one.subid_count = 1;
            }
            uint8_t buf[1024];
            struct mqtt_packet p;
            size_t len = encode_kind(kinds[k], &one, buf);
            assert_int_equal(decode_level_exact(buf, len, 5, &p), CODEC_ERR_PROPERTY);
        }
    }
}

/* The spec's reason-code lists per packet, written out: CONNACK (sec. 3.2.2.2), PUBACK/PUBREC
 * (sec. 3.4.2.1)/(sec. 3.5.2.1), PUBREL/PUBCOMP, SUBACK [MQTT-3.9.3], UNSUBACK [MQTT-3.11.3],
 * DISCONNECT (sec. 3.14.2.1), AUTH (sec. 3.15.2.1). */
static bool spec_reason(unsigned type, unsigned r)
{
    static const char *lists[16] = {
        [MQTT_CONNACK] = "00 80 81 82 83 84 85 86 87 88 89 8a 8c 90 95 97 99 9a 9b 9c 9d 9f",
        [MQTT_PUBACK] = "00 10 80 83 87 90 91 97 99",
        [MQTT_PUBREC] = "00 10 80 83 87 90 91 97 99",
        [MQTT_PUBREL] = "00 92",
        [MQTT_PUBCOMP] = "00 92",
        [MQTT_SUBACK] = "00 01 02 80 83 87 8f 91 97 9e a1 a2",
        [MQTT_UNSUBACK] = "00 11 80 83 87 8f 91",
        [MQTT_DISCONNECT] = "00 04 80 81 82 83 87 89 8b 8d 8e 8f 90 93 94 95 96 97 98 99 9a 9b "
                            "9c 9d 9e 9f a0 a1 a2",
        [MQTT_AUTH] = "00 18 19",
    };
    char hex[4];
    snprintf(hex, sizeof hex, "%02x", r);
    return lists[type] && strstr(lists[type], hex) != NULL;
}

/* Every byte as the reason of every packet that has one: accepted exactly as the spec lists. */
static void test_reason_codes_per_packet(void **state)
{
    static const unsigned types[] = {MQTT_CONNACK,  MQTT_PUBACK,     MQTT_PUBREC,
                                     MQTT_PUBREL,   MQTT_PUBCOMP,    MQTT_SUBACK,
                                     MQTT_UNSUBACK, MQTT_DISCONNECT, MQTT_AUTH};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        unsigned t = types[i];
        for (unsigned r = 0; r < 256; r++) {
            uint8_t buf[32], rb = (uint8_t)r;
            size_t n;
            bool want = spec_reason(t, r);
            assert_int_equal(codec_reason_valid(t, rb), want);
            if (t == MQTT_CONNACK)
                n = codec_encode_connack5(buf, false, rb, NULL);
            else if (t == MQTT_SUBACK || t == MQTT_UNSUBACK)
                n = codec_encode_suback5(buf, t, 1, &rb, 1, NULL);
            else if (t == MQTT_DISCONNECT || t == MQTT_AUTH)
                n = codec_encode_disconnect5(buf, t, rb, NULL);
            else
                n = codec_encode_ack5(buf, t, 1, rb, NULL);
            struct mqtt_packet p;
            assert_int_equal(decode_level_exact(buf, n, 5, &p), want ? CODEC_OK : CODEC_ERR_REASON);
        }
    }
    assert_false(codec_reason_valid(MQTT_PUBLISH, 0));
    assert_false(codec_reason_valid(MQTT_CONNECT, 0));
}

/* (sec. 3.4.2.1) The ack short forms: remaining length 2 is Success without properties, 3 a reason
 * without properties, a zero-length block may follow; the encoder picks the shortest. */
static void test_ack_short_forms(void **state)
{
    for (unsigned t = MQTT_PUBACK; t <= MQTT_PUBCOMP; t++) {
        uint8_t f = t == MQTT_PUBREL ? 0x62 : (uint8_t)(t << 4), buf[16];
        uint8_t r = t >= MQTT_PUBREL ? 0x92 : 0x80;
        struct mqtt_packet p;
        assert_int_equal(decode_level_exact((const uint8_t[]){f, 2, 0, 7}, 4, 5, &p), CODEC_OK);
        assert_int_equal(p.u.ack.packet_id, 7);
        assert_int_equal(p.u.ack.reason, 0);
        assert_true(p.props.v.has == 0);
        assert_int_equal(decode_level_exact((const uint8_t[]){f, 3, 0, 7, r}, 5, 5, &p), CODEC_OK);
        assert_int_equal(p.u.ack.reason, r);
        assert_int_equal(decode_level_exact((const uint8_t[]){f, 4, 0, 7, r, 0}, 6, 5, &p),
                         CODEC_OK);
        assert_int_equal(p.u.ack.reason, r);
        assert_int_equal(p.props.len, 0);
        /* a property block that is cut, or bytes after it */
        assert_int_equal(decode_level_exact((const uint8_t[]){f, 4, 0, 7, r, 3}, 6, 5, &p),
                         CODEC_ERR_PROPERTY);
        assert_int_equal(decode_level_exact((const uint8_t[]){f, 5, 0, 7, r, 0, 0}, 7, 5, &p),
                         CODEC_ERR_MALFORMED);
        assert_int_equal(decode_level_exact((const uint8_t[]){f, 3, 0, 0, r}, 5, 5, &p),
                         CODEC_ERR_PACKET_ID);
        assert_int_equal(decode_level_exact((const uint8_t[]){f, 1, 0}, 3, 5, &p),
                         CODEC_ERR_MALFORMED);
        /* at level 4 the long forms are malformed */
        assert_int_equal(decode_exact((const uint8_t[]){f, 3, 0, 7, r}, 5, 0, &p),
                         CODEC_ERR_MALFORMED);

        assert_int_equal(codec_ack5_size(0, NULL), 4);
        assert_int_equal(codec_encode_ack5(buf, t, 0x0102, 0, NULL), 4);
        assert_memory_equal(buf, ((const uint8_t[]){f, 2, 1, 2}), 4);
        struct props_build empty = {0};
        assert_int_equal(codec_encode_ack5(buf, t, 0x0102, 0, &empty), 4);
        assert_int_equal(codec_ack5_size(r, NULL), 5);
        assert_int_equal(codec_encode_ack5(buf, t, 0x0102, r, NULL), 5);
        assert_memory_equal(buf, ((const uint8_t[]){f, 3, 1, 2, r}), 5);
        struct props_build rs = {
            .v = {.has = 1ull << PROP_REASON_STRING, .reason_string = mstr("why")}};
        assert_int_equal(codec_ack5_size(0, &rs), 12);
        assert_int_equal(codec_encode_ack5(buf, t, 0x0102, 0, &rs), 12);
        assert_memory_equal(buf, ((const uint8_t[]){f, 10, 1, 2, 0, 6, 0x1F, 0, 3, 'w', 'h', 'y'}),
                            12);
    }
}

/* (sec. 3.14.2.1), (sec. 3.15.2.1) DISCONNECT and AUTH: remaining length 0 is Success, 1 a reason
 * alone; the encoder writes the short forms. */
static void test_disconnect_auth_forms(void **state)
{
    static const unsigned types[] = {MQTT_DISCONNECT, MQTT_AUTH};
    for (int i = 0; i < 2; i++) {
        uint8_t f = (uint8_t)(types[i] << 4), r = types[i] == MQTT_AUTH ? 0x19 : 0x8E, buf[16];
        struct mqtt_packet p;
        assert_int_equal(decode_level_exact((const uint8_t[]){f, 0}, 2, 5, &p), CODEC_OK);
        assert_int_equal(p.u.reason, 0);
        assert_int_equal(decode_level_exact((const uint8_t[]){f, 1, r}, 3, 5, &p), CODEC_OK);
        assert_int_equal(p.u.reason, r);
        assert_int_equal(decode_level_exact((const uint8_t[]){f, 2, r, 0}, 4, 5, &p), CODEC_OK);
        assert_int_equal(decode_level_exact((const uint8_t[]){f, 3, r, 0, 0}, 5, 5, &p),
                         CODEC_ERR_MALFORMED);
        assert_int_equal(decode_level_exact((const uint8_t[]){f, 2, r, 1}, 4, 5, &p),
                         CODEC_ERR_PROPERTY);
        assert_int_equal(decode_level_exact((const uint8_t[]){f | 1, 0}, 2, 5, &p),
                         CODEC_ERR_FLAGS);
        assert_int_equal(codec_disconnect5_size(0, NULL), 2);
        assert_int_equal(codec_encode_disconnect5(buf, types[i], 0, NULL), 2);
        assert_memory_equal(buf, ((const uint8_t[]){f, 0}), 2);
        assert_int_equal(codec_disconnect5_size(r, NULL), 3);
        assert_int_equal(codec_encode_disconnect5(buf, types[i], r, NULL), 3);
        assert_memory_equal(buf, ((const uint8_t[]){f, 1, r}), 3);
    }
    /* a DISCONNECT with a Session Expiry Interval, as a client ends a session */
    struct mqtt_packet p;
    assert_int_equal(decode_level_exact(BYTES(0xE0, 7, 0x00, 5, 0x11, 0, 0, 0, 30), 5, &p),
                     CODEC_OK);
    assert_int_equal(p.props.v.session_expiry, 30);
}

/* AUTH (type 15) is reserved in 3.1.1: refused at level 4 and before CONNECT, decoded at 5. */
static void test_auth_level4_vs_5(void **state)
{
    struct mqtt_packet p;
    assert_int_equal(decode_exact(BYTES(0xF0, 0), 0, &p), CODEC_ERR_TYPE);
    assert_int_equal(decode_level_exact(BYTES(0xF0, 0), 4, &p), CODEC_ERR_TYPE);
    assert_int_equal(decode_level_exact(BYTES(0xF0, 0), 0, &p), CODEC_ERR_TYPE);
    assert_int_equal(decode_level_exact(BYTES(0xF0, 0), 5, &p), CODEC_OK);
    assert_int_equal(p.type, MQTT_AUTH);
    assert_int_equal(decode_level_exact(BYTES(0x00, 0), 5, &p), CODEC_ERR_TYPE);
    /* AUTH with method and data */
    assert_int_equal(decode_level_exact(
                         BYTES(0xF0, 12, 0x18, 10, 0x15, 0, 2, 'S', 'C', 0x16, 0, 2, 0, 1), 5, &p),
                     CODEC_OK);
    assert_int_equal(p.u.reason, 0x18);
    assert_str_eq(p.props.v.auth_method, mstr("SC"));
    assert_int_equal(p.props.v.auth_data.len, 2);
}

/* Every Subscription Options byte (sec. 3.8.3.1): reserved bits 6-7 malformed [MQTT-3.8.3-5], QoS 3
 * and Retain Handling 3 Protocol Errors, the rest decoded field by field. */
static void test_subscription_options_every_byte(void **state)
{
    for (unsigned o = 0; o < 256; o++) {
        uint8_t b[] = {0x82, 7, 0, 1, 0, 0, 1, 'a', (uint8_t)o};
        struct mqtt_packet p;
        int rc = decode_level_exact(b, sizeof b, 5, &p);
        if (o & 0xC0) {
            assert_int_equal(rc, CODEC_ERR_MALFORMED);
            continue;
        }
        if ((o & 3) == 3 || ((o >> 4) & 3) == 3) {
            assert_int_equal(rc, CODEC_ERR_PROTOCOL);
            continue;
        }
        assert_int_equal(rc, CODEC_OK);
        struct mqtt_str f;
        struct mqtt_sub_options opt;
        uint8_t qos;
        size_t pos = 0;
        assert_true(codec_subscribe5_next(&p.u.subscribe, &pos, &f, &opt));
        assert_int_equal(opt.qos, o & 3);
        assert_int_equal(opt.no_local, (o >> 2) & 1);
        assert_int_equal(opt.retain_as_published, (o >> 3) & 1);
        assert_int_equal(opt.retain_handling, (o >> 4) & 3);
        assert_int_equal(codec_sub_options_byte(&opt), o);
        pos = 0;
        assert_true(codec_subscribe_next(&p.u.subscribe, &pos, &f, &qos));
        assert_int_equal(qos, o & 3);
    }
}

/* SUBSCRIBE / UNSUBSCRIBE v5 errors: No Local on a shared subscription [MQTT-3.8.3-4], no filter
 * [MQTT-3.8.3-2] / [MQTT-3.10.3-2], packet id 0, empty filter, missing options, bad properties. */
static void test_subscribe_unsubscribe_errors(void **state)
{
    struct mqtt_packet p;
    assert_int_equal(
        dec5(BYTES(0x82, 15, 0, 1, 0, 0, 9, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 0x04)),
        CODEC_ERR_PROTOCOL);
    assert_int_equal(
        dec5(BYTES(0x82, 15, 0, 1, 0, 0, 9, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 0x00)),
        CODEC_OK);
    assert_int_equal(dec5(BYTES(0x82, 7, 0, 1, 0, 0, 1, '$', 0x04)), CODEC_OK);
    assert_int_equal(dec5(BYTES(0x82, 3, 0, 1, 0)), CODEC_ERR_EMPTY);
    assert_int_equal(dec5(BYTES(0xA2, 3, 0, 1, 0)), CODEC_ERR_EMPTY);
    assert_int_equal(dec5(BYTES(0x82, 6, 0, 0, 0, 0, 1, 'a')), CODEC_ERR_PACKET_ID);
    assert_int_equal(dec5(BYTES(0x82, 6, 0, 1, 0, 0, 0, 0)), CODEC_ERR_TOPIC);
    assert_int_equal(dec5(BYTES(0x82, 6, 0, 1, 0, 0, 1, 'a')), CODEC_ERR_MALFORMED);
    assert_int_equal(dec5(BYTES(0xA2, 6, 0, 1, 0, 0, 1, 0xC0)), CODEC_ERR_UTF8);
    assert_int_equal(dec5(BYTES(0xA2, 2, 0, 1)), CODEC_ERR_PROPERTY);
    assert_int_equal(dec5(BYTES(0x82, 9, 0, 1, 2, 0x0B, 0, 0, 1, 'a', 0)), CODEC_ERR_PROTOCOL);
    assert_int_equal(dec5(BYTES(0xA2, 9, 0, 1, 2, 0x0B, 1, 0, 1, 'a', 0)), CODEC_ERR_PROPERTY);
    assert_int_equal(decode_level_exact(BYTES(0xA2, 6, 0, 1, 0, 0, 1, 'a'), 5, &p), CODEC_OK);
    assert_int_equal(p.u.unsubscribe.count, 1);
    /* SUBACK / UNSUBACK without a reason code */
    assert_int_equal(dec5(BYTES(0x90, 3, 0, 1, 0)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec5(BYTES(0xB0, 3, 0, 1, 0)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec5(BYTES(0xB0, 4, 0, 0, 0, 0)), CODEC_ERR_PACKET_ID);
    /* at level 4 an UNSUBACK is only a packet id */
    assert_int_equal(dec(BYTES(0xB0, 4, 0, 1, 0, 0)), CODEC_ERR_MALFORMED);
}

/* CONNECT v5 [MQTT-3.1]: reserved flag malformed [MQTT-3.1.2-3], will QoS/retain without will,
 * will QoS 3, password without user name allowed in v5 (sec. 3.1.2.9), bad properties, trailing
 * bytes, bad client id. */
static void test_connect5_rules(void **state)
{
#define CONN5(flags, ...) 0x10, 0, 0, 4, 'M', 'Q', 'T', 'T', 5, flags, 0, 10, __VA_ARGS__
    uint8_t b[64];
    struct mqtt_packet p;
    const uint8_t ok[] = {CONN5(0x02, 0, 0, 1, 'c')};
    memcpy(b, ok, sizeof ok);
    b[1] = sizeof ok - 2;
    assert_int_equal(decode_level_exact(b, sizeof ok, 0, &p), CODEC_OK);
    assert_int_equal(p.level, 5);
    assert_true(p.u.connect.clean_session);
    assert_true(p.props.v.has == 0);
    b[9] = 0x03; /* reserved bit */
    assert_int_equal(decode_level_exact(b, sizeof ok, 0, &p), CODEC_ERR_MALFORMED);
    b[9] = 0x08; /* will QoS without will */
    assert_int_equal(decode_level_exact(b, sizeof ok, 5, &p), CODEC_ERR_MALFORMED);
    b[9] = 0x20; /* will retain without will */
    assert_int_equal(decode_level_exact(b, sizeof ok, 5, &p), CODEC_ERR_MALFORMED);
    b[9] = 0x1C; /* will QoS 3 */
    assert_int_equal(decode_level_exact(b, sizeof ok, 5, &p), CODEC_ERR_QOS);

    const uint8_t pw[] = {CONN5(0x40, 0, 0, 1, 'c', 0, 2, 0xFF, 0x00)};
    memcpy(b, pw, sizeof pw);
    b[1] = sizeof pw - 2;
    assert_int_equal(decode_level_exact(b, sizeof pw, 5, &p), CODEC_OK);
    assert_true(p.u.connect.has_password && !p.u.connect.has_username);
    assert_int_equal(p.u.connect.password.len, 2);
    b[8] = 4; /* the same as 3.1.1 is malformed [MQTT-3.1.2-22] */
    assert_int_equal(decode_level_exact(b, sizeof pw, 0, &p), CODEC_ERR_MALFORMED);

    const uint8_t trail[] = {CONN5(0x00, 0, 0, 1, 'c', 9)};
    memcpy(b, trail, sizeof trail);
    b[1] = sizeof trail - 2;
    assert_int_equal(decode_level_exact(b, sizeof trail, 5, &p), CODEC_ERR_MALFORMED);
    const uint8_t badid[] = {CONN5(0x00, 0, 0, 1, 0xC0)};
    memcpy(b, badid, sizeof badid);
    b[1] = sizeof badid - 2;
    assert_int_equal(decode_level_exact(b, sizeof badid, 5, &p), CODEC_ERR_UTF8);
    const uint8_t badprop[] = {CONN5(0x00, 3, 0x23, 0, 1, 0, 1, 'c')}; /* Topic Alias in CONNECT */
    memcpy(b, badprop, sizeof badprop);
    b[1] = sizeof badprop - 2;
    assert_int_equal(decode_level_exact(b, sizeof badprop, 5, &p), CODEC_ERR_PROPERTY);
    const uint8_t rm0[] = {CONN5(0x00, 3, 0x21, 0, 0, 0, 1, 'c')}; /* Receive Maximum 0 */
    memcpy(b, rm0, sizeof rm0);
    b[1] = sizeof rm0 - 2;
    assert_int_equal(decode_level_exact(b, sizeof rm0, 5, &p), CODEC_ERR_PROTOCOL);
    const uint8_t noprops[] = {CONN5(0x00)}; /* no property length at all */
    memcpy(b, noprops, sizeof noprops);
    b[1] = sizeof noprops - 2;
    assert_int_equal(decode_level_exact(b, sizeof noprops, 5, &p), CODEC_ERR_PROPERTY);
    /* will: bad Will Properties, a wildcard will topic */
    const uint8_t wprop[] = {CONN5(0x04, 0, 0, 1, 'c', 5, 0x11, 0, 0, 0, 0, 0, 1, 't', 0, 0)};
    memcpy(b, wprop, sizeof wprop);
    b[1] = sizeof wprop - 2;
    assert_int_equal(decode_level_exact(b, sizeof wprop, 5, &p), CODEC_ERR_PROPERTY);
    const uint8_t wtopic[] = {CONN5(0x04, 0, 0, 1, 'c', 0, 0, 1, '#', 0, 0)};
    memcpy(b, wtopic, sizeof wtopic);
    b[1] = sizeof wtopic - 2;
    assert_int_equal(decode_level_exact(b, sizeof wtopic, 5, &p), CODEC_ERR_TOPIC);
    b[sizeof wtopic - 3] = 'w';
    assert_int_equal(decode_level_exact(b, sizeof wtopic, 5, &p), CODEC_OK);
    assert_true(p.u.connect.will_flag);
    assert_int_equal(p.u.connect.will_props.len, 0);
#undef CONN5
}

/* The protocol level of the decode [MQTT-3.1.2-2]: codec_decode stays 3.1.1 (a v5 CONNECT is
 * refused); before CONNECT both levels decode; a connection's level takes only its own CONNECT. */
static void test_protocol_level_dispatch(void **state)
{
    struct mqtt_connect c = {.client_id = mstr("x"), .clean_session = true};
    uint8_t v4[32], v5[32], v3[32];
    size_t n4 = codec_encode_connect(v4, &c), n5 = codec_encode_connect5(v5, &c, NULL, NULL);
    c.level = 3;
    size_t n3 = codec_encode_connect(v3, &c);
    struct mqtt_packet p;

    assert_int_equal(n5, n4 + 1); /* the empty property block */
    assert_int_equal(decode_exact(v5, n5, 0, &p), CODEC_ERR_PROTOCOL_LEVEL);
    assert_int_equal(decode_level_exact(v5, n5, 4, &p), CODEC_ERR_PROTOCOL_LEVEL);
    assert_int_equal(decode_level_exact(v5, n5, 0, &p), CODEC_OK);
    assert_int_equal(p.level, 5);
    assert_int_equal(p.u.connect.level, 5);
    assert_int_equal(decode_level_exact(v5, n5, 5, &p), CODEC_OK);
    assert_int_equal(decode_level_exact(v4, n4, 0, &p), CODEC_OK);
    assert_int_equal(p.level, 4);
    assert_int_equal(decode_level_exact(v4, n4, 4, &p), CODEC_OK);
    assert_int_equal(decode_level_exact(v4, n4, 5, &p), CODEC_ERR_PROTOCOL_LEVEL);
    assert_int_equal(decode_level_exact(v5, n5, 3, &p), CODEC_ERR_PROTOCOL_LEVEL);
    assert_int_equal(decode_level_exact(v5, n5, 6, &p), CODEC_ERR_PROTOCOL_LEVEL);
    for (uint8_t lv = 0; lv <= 5; lv++)
        if (lv != 1 && lv != 2)
            assert_int_equal(decode_level_exact(v3, n3, lv, &p), CODEC_ERR_PROTOCOL_LEVEL);
    /* before CONNECT other packets decode as 3.1.1 */
    assert_int_equal(decode_level_exact(BYTES(0x40, 3, 0, 1, 0x10), 0, &p), CODEC_ERR_MALFORMED);
    assert_int_equal(decode_level_exact(BYTES(0x40, 3, 0, 1, 0x10), 5, &p), CODEC_OK);
    memset(&p, 0xFF, sizeof p);
    assert_int_equal(decode_level_exact(BYTES(0x40, 2, 0, 1), 0, &p), CODEC_OK);
    assert_int_equal(p.level, 4);
    assert_int_equal(p.u.ack.reason, 0); /* set at level 4 too */
    assert_true(p.props.v.has == 0);
    /* a 3.1.1 packet has no properties, whatever was in the struct before */
    memset(&p, 0xFF, sizeof p);
    assert_int_equal(decode_exact(BYTES(0x30, 4, 0, 1, 't', 'x'), 0, &p), CODEC_OK);
    assert_int_equal(p.level, 4);
    assert_true(p.props.v.has == 0);
    assert_int_equal(p.props.len, 0);
    assert_int_equal(p.props.user_count + p.props.subid_count, 0);
    size_t pos = 0;
    struct mqtt_str_pair up;
    assert_false(props_user_next(&p.props, &pos, &up));
}

/* CONNACK v5 [MQTT-3.2]: reserved flag bits malformed, Session Present only with Success
 * [MQTT-3.2.2-6], the property block required. */
static void test_connack5_rules(void **state)
{
    struct mqtt_packet p;
    assert_int_equal(decode_level_exact(BYTES(0x20, 3, 1, 0, 0), 5, &p), CODEC_OK);
    assert_true(p.u.connack.session_present);
    assert_int_equal(dec5(BYTES(0x20, 3, 2, 0, 0)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec5(BYTES(0x20, 3, 1, 0x87, 0)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec5(BYTES(0x20, 3, 0, 0x87, 0)), CODEC_OK);
    assert_int_equal(dec5(BYTES(0x20, 3, 0, 0x01, 0)), CODEC_ERR_REASON);
    assert_int_equal(dec5(BYTES(0x20, 2, 0, 0)), CODEC_ERR_PROPERTY);
    assert_int_equal(dec5(BYTES(0x20, 4, 0, 0, 0, 0)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec5(BYTES(0x20, 1, 0)), CODEC_ERR_MALFORMED);
    /* Maximum QoS 2 is a Protocol Error */
    assert_int_equal(dec5(BYTES(0x20, 5, 0, 0, 2, 0x24, 2)), CODEC_ERR_PROTOCOL);
    assert_int_equal(decode_level_exact(BYTES(0x20, 5, 0, 0, 2, 0x24, 1), 5, &p), CODEC_OK);
    assert_int_equal(p.props.v.maximum_qos, 1);
}

/* PUBLISH v5 [MQTT-3.3]: properties after the packet id; an empty topic only with a Topic Alias
 * (sec. 3.3.2.3.4); Topic Alias 0 [MQTT-3.3.2-8]; the property bytes can be forwarded as they came;
 * codec_publish_patch works on a v5 encoding. */
static void test_publish5(void **state)
{
    struct mqtt_packet p;
    assert_int_equal(decode_level_exact(BYTES(0x32, 9, 0, 0, 0, 1, 3, 0x23, 0, 9, 'x'), 5, &p),
                     CODEC_OK);
    assert_int_equal(p.u.publish.topic.len, 0);
    assert_int_equal(p.props.v.topic_alias, 9);
    assert_int_equal(p.u.publish.payload_len, 1);
    assert_int_equal(dec5(BYTES(0x30, 3, 0, 0, 0)), CODEC_ERR_PROTOCOL);
    assert_int_equal(dec5(BYTES(0x30, 6, 0, 0, 3, 0x23, 0, 0)), CODEC_ERR_TOPIC_ALIAS);
    assert_int_equal(dec5(BYTES(0x30, 4, 0, 1, '+', 0)), CODEC_ERR_TOPIC);
    assert_int_equal(dec5(BYTES(0x30, 4, 0, 1, 0xC0, 0)), CODEC_ERR_UTF8);
    assert_int_equal(dec5(BYTES(0x32, 6, 0, 1, 't', 0, 0, 0)), CODEC_ERR_PACKET_ID);
    assert_int_equal(dec5(BYTES(0x30, 3, 0, 1, 't')), CODEC_ERR_PROPERTY);
    assert_int_equal(dec5(BYTES(0x30, 5, 0, 1, 't', 1, 0x24)), CODEC_ERR_PROPERTY);
    assert_int_equal(dec5(BYTES(0x36, 4, 0, 1, 't', 0)), CODEC_ERR_QOS);
    assert_int_equal(dec5(BYTES(0x38, 4, 0, 1, 't', 0)), CODEC_ERR_FLAGS);
    /* the same bytes at level 4: the property length is payload */
    assert_int_equal(decode_exact(BYTES(0x30, 4, 0, 1, 't', 0), 0, &p), CODEC_OK);
    assert_int_equal(p.u.publish.payload_len, 1);

    /* forward: decode, re-encode with the view's bytes, identical; patch id and flags */
    struct props_build b;
    uint8_t props[512], buf[600], again[600];
    spec_build_all(&b, MQTT_PUBLISH);
    size_t pn = props_write(props, &b), off;
    struct mqtt_publish pub = {.qos = 2,
                               .packet_id = 5,
                               .topic = mstr("a/b"),
                               .payload = (const uint8_t *)"xyz",
                               .payload_len = 3};
    size_t n = codec_encode_publish5(buf, &pub, props, pn, &off);
    assert_int_equal(n, codec_publish5_size(3, pn, 3, 2));
    assert_int_equal(decode_level_exact(buf, n, 5, &p), CODEC_OK);
    assert_ptr_equal(p.props.ptr, held + off + 2 + codec_varint_size(pn));
    assert_int_equal(p.props.len, pn);
    size_t off2, n2 = codec_encode_publish5(again, &p.u.publish, p.props.ptr, p.props.len, &off2);
    assert_int_equal(n2, n);
    assert_int_equal(off2, off);
    assert_memory_equal(again, buf, n);
    codec_publish_patch(again, off2, 0xABCD, true, true);
    assert_int_equal(decode_level_exact(again, n2, 5, &p), CODEC_OK);
    assert_int_equal(p.u.publish.packet_id, 0xABCD);
    assert_true(p.u.publish.dup && p.u.publish.retain);
    assert_int_equal(p.u.publish.qos, 2);
    assert_view_is_build(&p.props, &b);
    /* QoS 0: no id offset, no packet id */
    pub.qos = 0;
    n = codec_encode_publish5(buf, &pub, NULL, 0, &off);
    assert_int_equal(off, 0);
    assert_int_equal(n, codec_publish5_size(3, 0, 3, 0));
    assert_memory_equal(buf, ((const uint8_t[]){0x30, 9, 0, 3, 'a', '/', 'b', 0, 'x', 'y', 'z'}),
                        11);
}

/* A v5 session as the broker reads it: CONNECT at level 0, the rest at the level it gave. */
static void test_stream5(void **state)
{
    uint8_t buf[256];
    size_t n = 0, off = 0;
    struct mqtt_connect c = {.client_id = mstr("s"), .keepalive = 5};
    struct props_build cp = {.v = {.has = 1ull << PROP_SESSION_EXPIRY, .session_expiry = 60}};
    struct mqtt_publish pub = {.qos = 1, .packet_id = 3, .topic = mstr("t")};
    n += codec_encode_connect5(buf + n, &c, &cp, NULL);
    n += codec_encode_publish5(buf + n, &pub, (const uint8_t[]){0x01, 0x01}, 2, NULL);
    n += codec_encode_ack5(buf + n, MQTT_PUBACK, 3, 0x10, NULL);
    n += codec_encode_disconnect5(buf + n, MQTT_AUTH, 0x19, NULL);
    n += codec_encode_disconnect5(buf + n, MQTT_DISCONNECT, 0, &cp);
    static const enum mqtt_type want[] = {MQTT_CONNECT, MQTT_PUBLISH, MQTT_PUBACK, MQTT_AUTH,
                                          MQTT_DISCONNECT};
    uint8_t level = 0;
    for (size_t i = 0; i < 5; i++) {
        struct mqtt_packet p;
        assert_int_equal(codec_decode_level(buf + off, n - off, 0, level, &p), CODEC_OK);
        assert_int_equal(p.type, want[i]);
        if (p.type == MQTT_CONNECT)
            level = p.level;
        if (p.type == MQTT_DISCONNECT || p.type == MQTT_CONNECT)
            assert_int_equal(p.props.v.session_expiry, 60);
        off += p.total_len;
    }
    assert_int_equal(off, n);
}

/* max_packet bounds the remaining length at level 5 as at 4. */
static void test_too_large5(void **state)
{
    struct mqtt_packet p;
    assert_int_equal(codec_decode_level(BYTES(0x30, 0x80, 0x01), 100, 5, &p), CODEC_ERR_TOO_LARGE);
    assert_int_equal(codec_decode_level(BYTES(0x30, 0xFF, 0xFF, 0xFF, 0xFF), 0, 5, &p),
                     CODEC_ERR_TOO_LARGE);
}

/* Each codec error has its v5 reason code [MQTT-4.13] and a text of its own. */
static void test_reason_code_and_strerror(void **state)
{
    static const struct {
        int err;
        uint8_t rc;
    } map[] = {
        {CODEC_OK, 0x00},
        {CODEC_INCOMPLETE, 0x00},
        {CODEC_ERR_MALFORMED, 0x81},
        {CODEC_ERR_TOO_LARGE, 0x95},
        {CODEC_ERR_FLAGS, 0x81},
        {CODEC_ERR_PROTOCOL_NAME, 0x81},
        {CODEC_ERR_PROTOCOL_LEVEL, 0x84},
        {CODEC_ERR_UTF8, 0x81},
        {CODEC_ERR_TOPIC, 0x90},
        {CODEC_ERR_QOS, 0x81},
        {CODEC_ERR_PACKET_ID, 0x81},
        {CODEC_ERR_EMPTY, 0x82},
        {CODEC_ERR_TYPE, 0x81},
        {CODEC_ERR_PROPERTY, 0x81},
        {CODEC_ERR_PROTOCOL, 0x82},
        {CODEC_ERR_REASON, 0x81},
        {CODEC_ERR_TOPIC_ALIAS, 0x94},
    };
    const char *unknown = codec_strerror(-1000);
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        assert_int_equal(codec_reason_code(map[i].err), map[i].rc);
        assert_string_not_equal(codec_strerror(map[i].err), unknown);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(codec_strerror(map[i].err), codec_strerror(map[j].err));
    }
    assert_int_equal(sizeof map / sizeof map[0], 2 - CODEC_ERR_LAST);
    assert_int_equal(codec_reason_code(-1000), 0x80);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_packet_every_property),
        cmocka_unit_test(test_every_refused_property),
        cmocka_unit_test(test_connect5_cut_anywhere),
        cmocka_unit_test(test_reason_codes_per_packet),
        cmocka_unit_test(test_ack_short_forms),
        cmocka_unit_test(test_disconnect_auth_forms),
        cmocka_unit_test(test_auth_level4_vs_5),
        cmocka_unit_test(test_subscription_options_every_byte),
        cmocka_unit_test(test_subscribe_unsubscribe_errors),
        cmocka_unit_test(test_connect5_rules),
        cmocka_unit_test(test_protocol_level_dispatch),
        cmocka_unit_test(test_connack5_rules),
        cmocka_unit_test(test_publish5),
        cmocka_unit_test(test_stream5),
        cmocka_unit_test(test_too_large5),
        cmocka_unit_test(test_reason_code_and_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, free_held);
}
