/*
 * test_codec.c - cmocka tests of the MQTT 3.1.1 codec: PUBLISH, the acks, SUBSCRIBE, SUBACK,
 * UNSUBSCRIBE, PINGREQ/PINGRESP/DISCONNECT encoded and decoded, every error path they have, the
 * fixed header (flags of every type, remaining length), streams and UTF-8; spec statements cited by
 * id. CONNECT and CONNACK are in test_codec_connect.c.
 */
#include "codec_test.h"

/* ---- PUBLISH [MQTT-3.3] ---- */

static void test_publish_roundtrip(void **state)
{
    static const uint8_t payload[] = {0, 1, 2, 0xFF, 'x'};
    for (uint8_t qos = 0; qos <= 2; qos++) {
        for (int flags = 0; flags < 8; flags++) {
            bool retain = flags & 1, dup = (flags & 2) && qos, empty = flags & 4;
            struct mqtt_publish in = {.dup = dup,
                                      .retain = retain,
                                      .qos = qos,
                                      .packet_id = qos ? 0xBEEF : 0,
                                      .topic = mstr("a/b/\xE2\x82\xAC"),
                                      .payload = payload,
                                      .payload_len = empty ? 0 : sizeof payload};
            uint8_t buf[64];
            size_t id_off = 99;
            struct mqtt_packet p;
            size_t n = codec_encode_publish(buf, &in, &id_off);
            assert_int_equal(n, codec_publish_size(in.topic.len, in.payload_len, qos));
            assert_int_equal(id_off, qos ? 2 + 2 + in.topic.len : 0);
            assert_int_equal(decode_exact(buf, n, 0, &p), CODEC_OK);
            assert_int_equal(p.type, MQTT_PUBLISH);
            assert_int_equal(p.total_len, n);
            assert_int_equal(p.u.publish.qos, qos);
            assert_int_equal(p.u.publish.retain, retain);
            assert_int_equal(p.u.publish.dup, dup);
            assert_int_equal(p.u.publish.packet_id, in.packet_id);
            assert_str_eq(p.u.publish.topic, in.topic);
            assert_int_equal(p.u.publish.payload_len, in.payload_len);
            if (in.payload_len)
                assert_memory_equal(p.u.publish.payload, payload, sizeof payload);
            if (flags == 0)
                assert_prefixes_incomplete(buf, n);
        }
    }
}

/* [MQTT-3.3.1-1] one encoding copied per subscriber: packet id and DUP patched in place. */
static void test_publish_patch(void **state)
{
    struct mqtt_publish in = {.qos = 1,
                              .packet_id = 1,
                              .topic = mstr("t"),
                              .payload = (uint8_t *)"hi",
                              .payload_len = 2,
                              .retain = true};
    uint8_t buf[32], copy[32];
    size_t id_off, n = codec_encode_publish(buf, &in, &id_off);
    struct mqtt_packet p;
    memcpy(copy, buf, n);
    codec_publish_patch(copy, id_off, 0x1234, true, true);
    assert_int_equal(decode_exact(copy, n, 0, &p), CODEC_OK);
    assert_int_equal(p.u.publish.packet_id, 0x1234);
    assert_true(p.u.publish.dup);
    assert_true(p.u.publish.retain);
    assert_int_equal(p.u.publish.qos, 1);
    codec_publish_patch(copy, id_off, 7, false, false);
    assert_int_equal(decode_exact(copy, n, 0, &p), CODEC_OK);
    assert_int_equal(p.u.publish.packet_id, 7);
    assert_false(p.u.publish.dup);
    assert_false(p.u.publish.retain);
    assert_int_equal(p.u.publish.qos, 1);
    assert_memory_equal(p.u.publish.payload, "hi", 2);
    /* QoS 0: id offset 0, patch only touches DUP (cleared). */
    in.qos = 0;
    n = codec_encode_publish(buf, &in, &id_off);
    assert_int_equal(id_off, 0);
    codec_publish_patch(buf, id_off, 9, false, true);
    assert_int_equal(decode_exact(buf, n, 0, &p), CODEC_OK);
    assert_memory_equal(p.u.publish.payload, "hi", 2);
}

/* [MQTT-3.3.1-4] PUBLISH with both QoS bits set. */
static void test_publish_qos3_MQTT_3_3_1_4(void **state)
{
    assert_int_equal(dec(BYTES(0x36, 0x05, 0, 1, 't', 0, 1)), CODEC_ERR_QOS);
    assert_int_equal(dec(BYTES(0x3F, 0x05, 0, 1, 't', 0, 1)), CODEC_ERR_QOS);
    assert_int_equal(dec(BYTES(0x36)), CODEC_ERR_QOS); /* judged from the first byte alone */
}

/* [MQTT-3.3.1-2] DUP must be 0 on QoS 0; [MQTT-2.2.2-2] invalid flags close the connection. */
static void test_publish_dup_qos0_MQTT_3_3_1_2(void **state)
{
    assert_int_equal(dec(BYTES(0x38, 0x03, 0, 1, 't')), CODEC_ERR_FLAGS);
    assert_int_equal(dec(BYTES(0x39, 0x03, 0, 1, 't')), CODEC_ERR_FLAGS);
    assert_int_equal(dec(BYTES(0x3A, 0x05, 0, 1, 't', 0, 1)), CODEC_OK);
}

/* [MQTT-3.3.2-1] topic is UTF-8, [MQTT-3.3.2-2] no wildcards, [MQTT-4.7.3-1] not empty,
 * [MQTT-1.5.3-2] [MQTT-4.7.3-2] no U+0000, [MQTT-4.7.1-1] wildcards only in filters. */
static void test_publish_topic_MQTT_3_3_2_1_2(void **state)
{
    assert_int_equal(dec(BYTES(0x30, 0x02, 0, 0)), CODEC_ERR_TOPIC);
    assert_int_equal(dec(BYTES(0x30, 0x04, 0, 0, 'p', 'l')), CODEC_ERR_TOPIC);
    assert_int_equal(dec(BYTES(0x30, 0x05, 0, 3, 'a', '/', '+')), CODEC_ERR_TOPIC);
    assert_int_equal(dec(BYTES(0x30, 0x03, 0, 1, '#')), CODEC_ERR_TOPIC);
    assert_int_equal(dec(BYTES(0x32, 0x07, 0, 3, 'a', '#', 'b', 0, 1)), CODEC_ERR_TOPIC);
    assert_int_equal(dec(BYTES(0x30, 0x05, 0, 3, 'a', 0, 'b')), CODEC_ERR_UTF8);
    assert_int_equal(dec(BYTES(0x30, 0x04, 0, 2, 0xC0, 0x80)), CODEC_ERR_UTF8);
    assert_int_equal(dec(BYTES(0x30, 0x05, 0, 3, 0xED, 0xBF, 0xBF)), CODEC_ERR_UTF8);
    assert_int_equal(dec(BYTES(0x30, 0x05, 0, 3, '$', 'S', '/')), CODEC_OK);
}

/* [MQTT-2.3.1-1] QoS 1 and 2 PUBLISH need a non-zero packet id. */
static void test_publish_packet_id_MQTT_2_3_1_1(void **state)
{
    assert_int_equal(dec(BYTES(0x32, 0x05, 0, 1, 't', 0, 0)), CODEC_ERR_PACKET_ID);
    assert_int_equal(dec(BYTES(0x34, 0x05, 0, 1, 't', 0, 0)), CODEC_ERR_PACKET_ID);
    assert_int_equal(dec(BYTES(0x34, 0x05, 0, 1, 't', 0, 1)), CODEC_OK);
}

static void test_publish_truncated_fields(void **state)
{
    assert_int_equal(dec(BYTES(0x30, 0x00)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x30, 0x01, 0)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x30, 0x03, 0, 2, 't')), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x32, 0x03, 0, 1, 't')), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x32, 0x04, 0, 1, 't', 0)), CODEC_ERR_MALFORMED);
}

/* ---- PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK ---- */

static const enum mqtt_type ack_types[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP,
                                           MQTT_UNSUBACK};

static void test_acks_roundtrip(void **state)
{
    for (size_t i = 0; i < 5; i++) {
        uint8_t buf[CODEC_ACK_SIZE];
        struct mqtt_packet p;
        assert_int_equal(codec_encode_ack(buf, ack_types[i], 0xA55A), CODEC_ACK_SIZE);
        assert_int_equal(buf[0] & 0x0F, ack_types[i] == MQTT_PUBREL ? 2 : 0);
        assert_int_equal(decode_exact(buf, sizeof buf, 0, &p), CODEC_OK);
        assert_int_equal(p.type, ack_types[i]);
        assert_int_equal(p.u.packet_id, 0xA55A);
        assert_prefixes_incomplete(buf, sizeof buf);
    }
}

/* [MQTT-3.4.2] ... [MQTT-3.11.2]: exactly a 2-byte packet id, non-zero [MQTT-2.3.1-1]. */
static void test_acks_length_and_id(void **state)
{
    for (size_t i = 0; i < 5; i++) {
        uint8_t b0 = (uint8_t)(ack_types[i] << 4 | (ack_types[i] == MQTT_PUBREL ? 2 : 0));
        assert_int_equal(dec(BYTES(b0, 0x00)), CODEC_ERR_MALFORMED);
        assert_int_equal(dec(BYTES(b0, 0x01, 1)), CODEC_ERR_MALFORMED);
        assert_int_equal(dec(BYTES(b0, 0x03, 0, 1, 0)), CODEC_ERR_MALFORMED);
        assert_int_equal(dec(BYTES(b0, 0x02, 0, 0)), CODEC_ERR_PACKET_ID);
        assert_int_equal(dec(BYTES(b0, 0x02, 0, 1)), CODEC_OK);
    }
}

/* [MQTT-3.6.1-1] PUBREL flags must be 0010. */
static void test_pubrel_flags_MQTT_3_6_1_1(void **state)
{
    assert_int_equal(dec(BYTES(0x60, 0x02, 0, 1)), CODEC_ERR_FLAGS);
    assert_int_equal(dec(BYTES(0x63, 0x02, 0, 1)), CODEC_ERR_FLAGS);
    assert_int_equal(dec(BYTES(0x6A, 0x02, 0, 1)), CODEC_ERR_FLAGS);
    assert_int_equal(dec(BYTES(0x62, 0x02, 0, 1)), CODEC_OK);
}

/* ---- SUBSCRIBE [MQTT-3.8] ---- */

static void test_subscribe_roundtrip(void **state)
{
    struct mqtt_str f[] = {mstr("a/+/c"), mstr("#"), mstr("$SYS/\xF0\x9F\x98\x80")};
    uint8_t qos[] = {0, 1, 2};
    uint8_t buf[64];
    struct mqtt_packet p;
    size_t n = codec_encode_subscribe(buf, 42, f, qos, 3);
    assert_int_equal(n, codec_subscribe_size(f, 3));
    assert_int_equal(buf[0], 0x82);
    assert_int_equal(decode_exact(buf, n, 0, &p), CODEC_OK);
    assert_int_equal(p.type, MQTT_SUBSCRIBE);
    assert_int_equal(p.u.subscribe.packet_id, 42);
    assert_int_equal(p.u.subscribe.count, 3);
    size_t pos = 0, i = 0;
    struct mqtt_str got;
    uint8_t q;
    while (codec_subscribe_next(&p.u.subscribe, &pos, &got, &q)) {
        assert_true(i < 3);
        assert_str_eq(got, f[i]);
        assert_int_equal(q, qos[i]);
        i++;
    }
    assert_int_equal(i, 3);
    assert_prefixes_incomplete(buf, n);
    /* qos NULL: every entry requests QoS 0. */
    n = codec_encode_subscribe(buf, 1, f, NULL, 1);
    assert_int_equal(decode_exact(buf, n, 0, &p), CODEC_OK);
    pos = 0;
    assert_true(codec_subscribe_next(&p.u.subscribe, &pos, &got, &q));
    assert_int_equal(q, 0);
    assert_false(codec_subscribe_next(&p.u.subscribe, &pos, &got, &q));
}

/* [MQTT-3.8.1-1] flags, [MQTT-2.3.1-1] id, [MQTT-3.8.3-3] at least one entry, [MQTT-3-8.3-4]
 * QoS byte: reserved bits 0 and QoS <= 2, [MQTT-3.8.3-1] filters UTF-8 and non-empty. */
static void test_subscribe_errors(void **state)
{
    assert_int_equal(dec(BYTES(0x80, 0x06, 0, 1, 0, 1, 'a', 0)), CODEC_ERR_FLAGS);
    assert_int_equal(dec(BYTES(0x83, 0x06, 0, 1, 0, 1, 'a', 0)), CODEC_ERR_FLAGS);
    assert_int_equal(dec(BYTES(0x82, 0x06, 0, 0, 0, 1, 'a', 0)), CODEC_ERR_PACKET_ID);
    assert_int_equal(dec(BYTES(0x82, 0x02, 0, 1)), CODEC_ERR_EMPTY);
    assert_int_equal(dec(BYTES(0x82, 0x06, 0, 1, 0, 1, 'a', 3)), CODEC_ERR_QOS);
    assert_int_equal(dec(BYTES(0x82, 0x06, 0, 1, 0, 1, 'a', 0x04)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x82, 0x06, 0, 1, 0, 1, 'a', 0x80)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x82, 0x05, 0, 1, 0, 0, 0)), CODEC_ERR_TOPIC);
    assert_int_equal(dec(BYTES(0x82, 0x06, 0, 1, 0, 1, 0xFF, 0)), CODEC_ERR_UTF8);
    assert_int_equal(dec(BYTES(0x82, 0x05, 0, 1, 0, 1, 'a')), CODEC_ERR_MALFORMED); /* no QoS */
    assert_int_equal(dec(BYTES(0x82, 0x06, 0, 1, 0, 3, 'a', 0)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x82, 0x03, 0, 1, 0)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x82, 0x01, 0)), CODEC_ERR_MALFORMED);
    /* A bad second entry fails the whole packet. */
    assert_int_equal(dec(BYTES(0x82, 0x0A, 0, 1, 0, 1, 'a', 1, 0, 1, 'b', 3)), CODEC_ERR_QOS);
}

/* ---- SUBACK [MQTT-3.9] (client-bound) ---- */

static void test_suback_roundtrip(void **state)
{
    const uint8_t codes[] = {0, 1, 2, MQTT_SUBACK_FAILURE};
    uint8_t buf[16];
    struct mqtt_packet p;
    size_t n = codec_encode_suback(buf, 7, codes, 4);
    assert_int_equal(n, codec_suback_size(4));
    assert_int_equal(decode_exact(buf, n, 0, &p), CODEC_OK);
    assert_int_equal(p.type, MQTT_SUBACK);
    assert_int_equal(p.u.suback.packet_id, 7);
    assert_int_equal(p.u.suback.count, 4);
    assert_int_equal(p.u.suback.len, 4);
    assert_memory_equal(p.u.suback.ptr, codes, 4);
    assert_prefixes_incomplete(buf, n);
}

/* [MQTT-3.9.3-2] return codes other than 0x00, 0x01, 0x02, 0x80 are reserved. */
static void test_suback_errors(void **state)
{
    assert_int_equal(dec(BYTES(0x90, 0x03, 0, 1, 3)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x90, 0x04, 0, 1, 0, 0x81)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x90, 0x02, 0, 1)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x90, 0x01, 0)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x90, 0x03, 0, 0, 0)), CODEC_ERR_PACKET_ID);
    assert_int_equal(dec(BYTES(0x92, 0x03, 0, 1, 0)), CODEC_ERR_FLAGS);
}

/* ---- UNSUBSCRIBE [MQTT-3.10] ---- */

static void test_unsubscribe_roundtrip(void **state)
{
    struct mqtt_str f[] = {mstr("a/#"), mstr("b"), mstr("+/x")};
    uint8_t buf[64];
    struct mqtt_packet p;
    size_t n = codec_encode_unsubscribe(buf, 0xFFFF, f, 3);
    assert_int_equal(n, codec_unsubscribe_size(f, 3));
    assert_int_equal(buf[0], 0xA2);
    assert_int_equal(decode_exact(buf, n, 0, &p), CODEC_OK);
    assert_int_equal(p.type, MQTT_UNSUBSCRIBE);
    assert_int_equal(p.u.unsubscribe.packet_id, 0xFFFF);
    assert_int_equal(p.u.unsubscribe.count, 3);
    size_t pos = 0, i = 0;
    struct mqtt_str got;
    while (codec_unsubscribe_next(&p.u.unsubscribe, &pos, &got)) {
        assert_true(i < 3);
        assert_str_eq(got, f[i++]);
    }
    assert_int_equal(i, 3);
    assert_prefixes_incomplete(buf, n);
}

/* [MQTT-3.10.1-1] flags, [MQTT-3.10.3-1] UTF-8 filters, [MQTT-3.10.3-2] at least one filter. */
static void test_unsubscribe_errors(void **state)
{
    assert_int_equal(dec(BYTES(0xA0, 0x05, 0, 1, 0, 1, 'a')), CODEC_ERR_FLAGS);
    assert_int_equal(dec(BYTES(0xA2, 0x02, 0, 1)), CODEC_ERR_EMPTY);
    assert_int_equal(dec(BYTES(0xA2, 0x05, 0, 0, 0, 1, 'a')), CODEC_ERR_PACKET_ID);
    assert_int_equal(dec(BYTES(0xA2, 0x04, 0, 1, 0, 0)), CODEC_ERR_TOPIC);
    assert_int_equal(dec(BYTES(0xA2, 0x05, 0, 1, 0, 1, 0)), CODEC_ERR_UTF8);
    assert_int_equal(dec(BYTES(0xA2, 0x05, 0, 1, 0, 2, 'a')), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0xA2, 0x03, 0, 1, 0)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0xA2, 0x01, 1)), CODEC_ERR_MALFORMED);
}

/* ---- PINGREQ, PINGRESP, DISCONNECT ---- */

static void test_ping_disconnect(void **state)
{
    size_t (*enc[])(uint8_t *) = {codec_encode_pingreq, codec_encode_pingresp,
                                  codec_encode_disconnect};
    enum mqtt_type types[] = {MQTT_PINGREQ, MQTT_PINGRESP, MQTT_DISCONNECT};
    for (size_t i = 0; i < 3; i++) {
        uint8_t buf[CODEC_PING_SIZE];
        struct mqtt_packet p;
        assert_int_equal(enc[i](buf), CODEC_PING_SIZE);
        assert_int_equal(decode_exact(buf, sizeof buf, 0, &p), CODEC_OK);
        assert_int_equal(p.type, types[i]);
        assert_int_equal(p.total_len, 2);
        assert_prefixes_incomplete(buf, sizeof buf);
        /* [MQTT-3.12.1] [MQTT-3.13.1] [MQTT-3.14.1]: remaining length 0. */
        assert_int_equal(dec(BYTES(buf[0], 0x01, 0)), CODEC_ERR_MALFORMED);
        assert_int_equal(dec(BYTES((uint8_t)(buf[0] | 1), 0x00)), CODEC_ERR_FLAGS);
    }
}

/* ---- Fixed header [MQTT-2.2] ---- */

/* [MQTT-2.2.2-1] [MQTT-2.2.2-2]: every type, every flag nibble other than the fixed one. */
static void test_fixed_header_flags_every_type_MQTT_2_2_2_1_2(void **state)
{
    struct mqtt_str f = mstr("t");
    uint8_t qos = 1, codes[] = {0};
    struct mqtt_connect c = {.client_id = f};
    uint8_t pkt[15][32];
    size_t n[15];
    n[MQTT_CONNECT] = codec_encode_connect(pkt[MQTT_CONNECT], &c);
    n[MQTT_CONNACK] = codec_encode_connack(pkt[MQTT_CONNACK], false, 0);
    for (size_t i = 0; i < 5; i++)
        n[ack_types[i]] = codec_encode_ack(pkt[ack_types[i]], ack_types[i], 1);
    n[MQTT_SUBSCRIBE] = codec_encode_subscribe(pkt[MQTT_SUBSCRIBE], 1, &f, &qos, 1);
    n[MQTT_SUBACK] = codec_encode_suback(pkt[MQTT_SUBACK], 1, codes, 1);
    n[MQTT_UNSUBSCRIBE] = codec_encode_unsubscribe(pkt[MQTT_UNSUBSCRIBE], 1, &f, 1);
    n[MQTT_PINGREQ] = codec_encode_pingreq(pkt[MQTT_PINGREQ]);
    n[MQTT_PINGRESP] = codec_encode_pingresp(pkt[MQTT_PINGRESP]);
    n[MQTT_DISCONNECT] = codec_encode_disconnect(pkt[MQTT_DISCONNECT]);
    for (int t = MQTT_CONNECT; t <= MQTT_DISCONNECT; t++) {
        if (t == MQTT_PUBLISH)
            continue;
        uint8_t fixed = pkt[t][0] & 0x0F;
        for (uint8_t fl = 0; fl < 16; fl++) {
            pkt[t][0] = (uint8_t)(t << 4 | fl);
            assert_int_equal(dec(pkt[t], n[t]), fl == fixed ? CODEC_OK : CODEC_ERR_FLAGS);
        }
    }
}

/* Packet types 0 and 15 are reserved [MQTT-2.2.1]. */
static void test_reserved_types(void **state)
{
    assert_int_equal(dec(BYTES(0x00)), CODEC_ERR_TYPE);
    assert_int_equal(dec(BYTES(0x00, 0x00)), CODEC_ERR_TYPE);
    assert_int_equal(dec(BYTES(0xF0, 0x00)), CODEC_ERR_TYPE);
    assert_int_equal(dec(BYTES(0xFF)), CODEC_ERR_TYPE);
    assert_int_equal(dec(NULL, 0), CODEC_INCOMPLETE);
}

/* [MQTT-2.2.3] remaining length: 1..4 bytes, boundaries of each size. */
static void test_varint_boundaries(void **state)
{
    const size_t vals[] = {0, 127, 128, 16383, 16384, 2097151, 2097152, MQTT_MAX_REMAINING_LENGTH};
    const size_t sizes[] = {1, 1, 2, 2, 3, 3, 4, 4};
    for (size_t i = 0; i < 8; i++) {
        uint8_t buf[8] = {0x30};
        assert_int_equal(codec_varint_size(vals[i]), sizes[i]);
        assert_int_equal(codec_varint_encode(buf + 1, vals[i]), sizes[i]);
        struct mqtt_packet p;
        /* Header alone: whole length readable, body missing => incomplete, not an error. */
        int want = vals[i] == 0 ? CODEC_ERR_MALFORMED : CODEC_INCOMPLETE;
        assert_int_equal(decode_exact(buf, 1 + sizes[i], 0, &p), want);
        /* One below the length with max_packet: too large, as soon as the length is known. */
        if (vals[i])
            assert_int_equal(decode_exact(buf, 1 + sizes[i], vals[i] - 1, &p), CODEC_ERR_TOO_LARGE);
    }
    uint8_t buf[8];
    assert_int_equal(codec_varint_size(MQTT_MAX_REMAINING_LENGTH + 1), 0);
    assert_int_equal(codec_varint_encode(buf, MQTT_MAX_REMAINING_LENGTH + 1), 0);
    assert_int_equal(codec_publish_size(MQTT_MAX_REMAINING_LENGTH, 1, 0), 0);
    codec_varint_encode(buf, MQTT_MAX_REMAINING_LENGTH);
    assert_memory_equal(buf, ((uint8_t[]){0xFF, 0xFF, 0xFF, 0x7F}), 4);
}

/* A real packet with a 4-byte remaining length decodes. */
static void test_remaining_length_4_bytes_decodes(void **state)
{
    size_t payload_len = 2097152;
    uint8_t *payload = malloc(payload_len), *buf = malloc(payload_len + 16);
    assert_non_null(payload);
    assert_non_null(buf);
    memset(payload, 0xA5, payload_len);
    struct mqtt_publish in = {.qos = 2,
                              .packet_id = 3,
                              .topic = mstr("big"),
                              .payload = payload,
                              .payload_len = payload_len};
    size_t n = codec_encode_publish(buf, &in, NULL);
    assert_int_equal(n, 1 + 4 + 2 + 3 + 2 + payload_len);
    struct mqtt_packet p;
    assert_int_equal(codec_decode(buf, n, 0, &p), CODEC_OK);
    assert_int_equal(p.total_len, n);
    assert_int_equal(p.u.publish.payload_len, payload_len);
    assert_memory_equal(p.u.publish.payload, payload, payload_len);
    assert_int_equal(codec_decode(buf, n - 1, 0, &p), CODEC_INCOMPLETE);
    assert_int_equal(codec_decode(buf, n, n - 5, &p), CODEC_OK); /* max == remaining length */
    assert_int_equal(codec_decode(buf, n, n - 6, &p), CODEC_ERR_TOO_LARGE); /* one over */
    free(payload);
    free(buf);
}

/* [MQTT-2.2.3] a continuation bit on the 4th length byte means a 5th byte: refused. */
static void test_remaining_length_5_bytes(void **state)
{
    assert_int_equal(dec(BYTES(0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01)), CODEC_ERR_TOO_LARGE);
    assert_int_equal(dec(BYTES(0x30, 0xFF, 0xFF, 0xFF, 0xFF)), CODEC_ERR_TOO_LARGE);
    assert_int_equal(dec(BYTES(0xC0, 0x80, 0x80, 0x80, 0x80, 0x00)), CODEC_ERR_TOO_LARGE);
    assert_int_equal(dec(BYTES(0x30, 0xFF, 0xFF, 0xFF)), CODEC_INCOMPLETE);
}

/* Too large is reported from the length field alone, before the body arrives. */
static void test_too_large_reported_early(void **state)
{
    struct mqtt_packet p;
    const uint8_t hdr[] = {0x30, 0xE9, 0x07}; /* remaining length 1001 */
    assert_int_equal(decode_exact(hdr, 3, 1000, &p), CODEC_ERR_TOO_LARGE);
    assert_int_equal(decode_exact(hdr, 3, 1001, &p), CODEC_INCOMPLETE);
    assert_int_equal(decode_exact(hdr, 2, 1000, &p), CODEC_INCOMPLETE);
    assert_int_equal(decode_exact(BYTES(0x82, 0x80, 0x80, 0x01), 8, &p), CODEC_ERR_TOO_LARGE);
}

/* The broker's loop: decode, advance by total_len, until incomplete. */
static void test_stream_of_packets(void **state)
{
    uint8_t buf[256];
    size_t n = 0;
    struct mqtt_connect c = {.clean_session = true, .client_id = mstr("s")};
    struct mqtt_publish pub = {.qos = 1,
                               .packet_id = 5,
                               .topic = mstr("x/y"),
                               .payload = (const uint8_t *)"p",
                               .payload_len = 1};
    struct mqtt_str f = mstr("x/#");
    n += codec_encode_connect(buf + n, &c);
    n += codec_encode_subscribe(buf + n, 2, &f, NULL, 1);
    n += codec_encode_publish(buf + n, &pub, NULL);
    n += codec_encode_ack(buf + n, MQTT_PUBREL, 5);
    n += codec_encode_pingreq(buf + n);
    n += codec_encode_disconnect(buf + n);
    buf[n++] = 0x30; /* half of the next packet */
    const enum mqtt_type want[] = {MQTT_CONNECT, MQTT_SUBSCRIBE, MQTT_PUBLISH,
                                   MQTT_PUBREL,  MQTT_PINGREQ,   MQTT_DISCONNECT};
    size_t off = 0, i = 0;
    struct mqtt_packet p;
    int rc;
    while ((rc = codec_decode(buf + off, n - off, 0, &p)) == CODEC_OK) {
        assert_true(i < 6);
        assert_int_equal(p.type, want[i++]);
        off += p.total_len;
    }
    assert_int_equal(rc, CODEC_INCOMPLETE);
    assert_int_equal(i, 6);
    assert_int_equal(off, n - 1);
}

/* [MQTT-1.5.3-1] well-formed UTF-8 only (no overlongs, surrogates, > U+10FFFF), [MQTT-1.5.3-2] no
 * U+0000. Non-characters and control characters other than U+0000 are allowed [MQTT-1.5.3-3]. */
static void test_utf8_MQTT_1_5_3_1_2(void **state)
{
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"", true},
        {"plain ascii longer than eight bytes", true},
        {"\x7F\x01", true},
        {"\xC2\x80", true},         /* U+0080 */
        {"\xDF\xBF", true},         /* U+07FF */
        {"\xE0\xA0\x80", true},     /* U+0800 */
        {"\xED\x9F\xBF", true},     /* U+D7FF */
        {"\xEE\x80\x80", true},     /* U+E000 */
        {"\xEF\xBF\xBF", true},     /* U+FFFF (non-character, allowed) */
        {"\xEF\xBB\xBF", true},     /* BOM [MQTT-1.5.3-3] */
        {"\xF0\x90\x80\x80", true}, /* U+10000 */
        {"\xF4\x8F\xBF\xBF", true}, /* U+10FFFF */
        {"\xC0\x80", false},        /* overlong U+0000 */
        {"\xC1\xBF", false},        /* overlong */
        {"\xE0\x80\x80", false},    /* overlong */
        {"\xE0\x9F\xBF", false},    /* overlong */
        {"\xF0\x80\x80\x80", false},
        {"\xF0\x8F\xBF\xBF", false},
        {"\xED\xA0\x80", false},     /* U+D800 */
        {"\xED\xBF\xBF", false},     /* U+DFFF */
        {"\xF4\x90\x80\x80", false}, /* U+110000 */
        {"\xF5\x80\x80\x80", false},
        {"\xF8\x88\x80\x80\x80", false},
        {"\xFE", false},
        {"\xFF", false},
        {"\x80", false},
        {"a\xBF", false},
        {"\xE2\x82", false}, /* truncated */
        {"\xF0\x9F\x98", false},
        {"\xC3", false},
        {"\xE2\x28\xA1", false},
        {"\xC3\xA9\xC3\x28", false},
        {"abcdefgh\xC3", false}, /* truncated after a fast-path word */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(codec_utf8_valid(cases[i].s, strlen(cases[i].s)), cases[i].ok);
    /* U+0000 at every position of a long string (fast path and tail). */
    char s[40];
    for (size_t i = 0; i < sizeof s; i++) {
        memset(s, 'a', sizeof s);
        assert_true(codec_utf8_valid(s, sizeof s));
        s[i] = 0;
        assert_false(codec_utf8_valid(s, sizeof s));
        s[i] = (char)0x80;
        assert_false(codec_utf8_valid(s, sizeof s));
    }
    /* A multi-byte character straddling word boundaries. */
    for (size_t i = 0; i + 4 <= sizeof s; i++) {
        memset(s, 'a', sizeof s);
        memcpy(s + i, "\xF0\x9F\x98\x80", 4);
        assert_true(codec_utf8_valid(s, sizeof s));
    }
}

#define S(x) (x), strlen(x)

/* A topic name's checks in one pass [MQTT-3.3.2-2] [MQTT-4.7.3-1] [MQTT-1.5.3-1/2]: a '+' or '#'
 * anywhere (in a word of the ASCII fast path or in the byte-wise tail), empty, too long, and what
 * the UTF-8 check refuses. */
static void test_topic_name_valid_one_pass(void **state)
{
    (void)state;
    assert_true(codec_topic_name_valid(S("a")));
    assert_true(codec_topic_name_valid(S("devices/0123456789/status")));
    assert_true(codec_topic_name_valid(S("caf\xC3\xA9/\xF0\x9F\x98\x80")));
    assert_false(codec_topic_name_valid("", 0));
    assert_false(codec_topic_name_valid(S("a\xC3")));
    char s[40];
    for (size_t i = 0; i < sizeof s; i++) {
        for (const char *w = "+#"; *w; w++) {
            memset(s, 'a', sizeof s);
            assert_true(codec_topic_name_valid(s, sizeof s));
            s[i] = *w;
            assert_false(codec_topic_name_valid(s, sizeof s));
            s[i] = '\0';
            assert_false(codec_topic_name_valid(s, sizeof s));
        }
    }
    /* a wildcard and bad UTF-8 together: refused; the decoder reports the UTF-8 error */
    assert_false(codec_topic_name_valid(S("abcdefgh+\xFF")));
    assert_int_equal(dec(BYTES(0x30, 0x06, 0, 4, 'a', '+', 0xFF, 'b')), CODEC_ERR_UTF8);
    assert_int_equal(
        dec(BYTES(0x30, 0x0C, 0, 10, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', '#', 'x')),
        CODEC_ERR_TOPIC);
    static char big[65536];
    memset(big, 'a', sizeof big);
    assert_true(codec_topic_name_valid(big, 65535));
    assert_false(codec_topic_name_valid(big, 65536));
}

static void test_strerror(void **state)
{
    const char *seen[16];
    size_t n = 0;
    for (int rc = CODEC_ERR_TYPE; rc <= CODEC_INCOMPLETE; rc++) {
        const char *s = codec_strerror(rc);
        assert_non_null(s);
        assert_string_not_equal(s, codec_strerror(42));
        for (size_t j = 0; j < n; j++)
            assert_string_not_equal(s, seen[j]);
        seen[n++] = s;
    }
    assert_int_equal(n, 13);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_roundtrip),
        cmocka_unit_test(test_publish_patch),
        cmocka_unit_test(test_publish_qos3_MQTT_3_3_1_4),
        cmocka_unit_test(test_publish_dup_qos0_MQTT_3_3_1_2),
        cmocka_unit_test(test_publish_topic_MQTT_3_3_2_1_2),
        cmocka_unit_test(test_publish_packet_id_MQTT_2_3_1_1),
        cmocka_unit_test(test_publish_truncated_fields),
        cmocka_unit_test(test_acks_roundtrip),
        cmocka_unit_test(test_acks_length_and_id),
        cmocka_unit_test(test_pubrel_flags_MQTT_3_6_1_1),
        cmocka_unit_test(test_subscribe_roundtrip),
        cmocka_unit_test(test_subscribe_errors),
        cmocka_unit_test(test_suback_roundtrip),
        cmocka_unit_test(test_suback_errors),
        cmocka_unit_test(test_unsubscribe_roundtrip),
        cmocka_unit_test(test_unsubscribe_errors),
        cmocka_unit_test(test_ping_disconnect),
        cmocka_unit_test(test_fixed_header_flags_every_type_MQTT_2_2_2_1_2),
        cmocka_unit_test(test_reserved_types),
        cmocka_unit_test(test_varint_boundaries),
        cmocka_unit_test(test_remaining_length_4_bytes_decodes),
        cmocka_unit_test(test_remaining_length_5_bytes),
        cmocka_unit_test(test_too_large_reported_early),
        cmocka_unit_test(test_stream_of_packets),
        cmocka_unit_test(test_utf8_MQTT_1_5_3_1_2),
        cmocka_unit_test(test_topic_name_valid_one_pass),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, free_held);
}
