/*
 * test_codec_connect.c - cmocka tests of the codec's CONNECT and CONNACK: round trips, every flag
 * rule and field rule of [MQTT-3.1] and [MQTT-3.2], spec statements cited by id.
 */
#include "codec_test.h"

/* A CONNECT built by hand: protocol name, level, flags, keepalive 60, then the given
 * length-prefixed fields in order (whatever the flags say), then `trailing` extra zero bytes. */
static size_t raw_connect(uint8_t *out, const char *name, uint8_t level, uint8_t flags,
                          const struct mqtt_str *fields, size_t nfields, size_t trailing)
{
    uint8_t body[512], *p = body;
    size_t nl = strlen(name);
    *p++ = 0, *p++ = (uint8_t)nl;
    memcpy(p, name, nl), p += nl;
    *p++ = level, *p++ = flags, *p++ = 0, *p++ = 60;
    for (size_t i = 0; i < nfields; i++) {
        *p++ = (uint8_t)(fields[i].len >> 8), *p++ = (uint8_t)fields[i].len;
        memcpy(p, fields[i].data, fields[i].len), p += fields[i].len;
    }
    memset(p, 0, trailing), p += trailing;
    size_t rl = (size_t)(p - body);
    out[0] = 0x10;
    size_t h = 1 + codec_varint_encode(out + 1, rl);
    memcpy(out + h, body, rl);
    return h + rl;
}

static int connect_rc(uint8_t flags, const struct mqtt_str *fields, size_t n, size_t trailing)
{
    uint8_t buf[600];
    return dec(buf, raw_connect(buf, "MQTT", 4, flags, fields, n, trailing));
}

/* ---- CONNECT [MQTT-3.1] ---- */

static void test_connect_roundtrip_minimal(void **state)
{
    struct mqtt_connect c = {.clean_session = true, .keepalive = 30, .client_id = mstr("")};
    uint8_t buf[64];
    struct mqtt_packet p;
    size_t n = codec_encode_connect(buf, &c);
    assert_int_equal(n, codec_connect_size(&c));
    assert_int_equal(n, 14);
    assert_int_equal(decode_exact(buf, n, 0, &p), CODEC_OK);
    assert_int_equal(p.type, MQTT_CONNECT);
    assert_int_equal(p.total_len, n);
    assert_int_equal(p.u.connect.level, 4);
    assert_true(p.u.connect.clean_session);
    assert_false(p.u.connect.will_flag);
    assert_false(p.u.connect.has_username);
    assert_false(p.u.connect.has_password);
    assert_int_equal(p.u.connect.keepalive, 30);
    assert_int_equal(p.u.connect.client_id.len, 0);
    assert_prefixes_incomplete(buf, n);
}

static void test_connect_roundtrip_full(void **state)
{
    /* Will payload and password are binary: NUL and invalid UTF-8 allowed [MQTT-3.1.3-12]. */
    static const char pw[] = {'p', 0, (char)0xFF, 'w'};
    static const char wp[] = {0, (char)0xC0, (char)0x80};
    struct mqtt_connect c = {.will_flag = true,
                             .will_qos = 2,
                             .will_retain = true,
                             .has_username = true,
                             .has_password = true,
                             .keepalive = 65535,
                             .client_id = mstr("client-\xC3\xA9"),
                             .will_topic = mstr("last/will"),
                             .will_payload = {wp, sizeof wp},
                             .username = mstr("user"),
                             .password = {pw, sizeof pw}};
    uint8_t buf[128];
    struct mqtt_packet p;
    size_t n = codec_encode_connect(buf, &c);
    assert_int_equal(n, codec_connect_size(&c));
    assert_int_equal(buf[9], 0xF4); /* user, pass, will retain, will qos 2, will */
    assert_int_equal(decode_exact(buf, n, 0, &p), CODEC_OK);
    const struct mqtt_connect *d = &p.u.connect;
    assert_false(d->clean_session);
    assert_true(d->will_flag && d->will_retain && d->has_username && d->has_password);
    assert_int_equal(d->will_qos, 2);
    assert_int_equal(d->keepalive, 65535);
    assert_str_eq(d->client_id, c.client_id);
    assert_str_eq(d->will_topic, c.will_topic);
    assert_str_eq(d->will_payload, c.will_payload);
    assert_str_eq(d->username, c.username);
    assert_str_eq(d->password, c.password);
    assert_prefixes_incomplete(buf, n);
}

static void test_connect_roundtrip_will_qos1_username_only(void **state)
{
    struct mqtt_connect c = {.clean_session = true,
                             .will_flag = true,
                             .will_qos = 1,
                             .has_username = true,
                             .client_id = mstr("id"),
                             .will_topic = mstr("w"),
                             .will_payload = mstr(""),
                             .username = mstr("")};
    uint8_t buf[64];
    struct mqtt_packet p;
    size_t n = codec_encode_connect(buf, &c);
    assert_int_equal(decode_exact(buf, n, 0, &p), CODEC_OK);
    assert_int_equal(p.u.connect.will_qos, 1);
    assert_false(p.u.connect.will_retain);
    assert_true(p.u.connect.has_username);
    assert_false(p.u.connect.has_password);
    assert_int_equal(p.u.connect.username.len, 0);
    assert_int_equal(p.u.connect.password.len, 0);
}

/* [MQTT-3.1.2-1] protocol name must be "MQTT". */
static void test_connect_protocol_name_MQTT_3_1_2_1(void **state)
{
    struct mqtt_str id = mstr("x");
    uint8_t buf[64];
    assert_int_equal(dec(buf, raw_connect(buf, "MQIsdp", 3, 2, &id, 1, 0)),
                     CODEC_ERR_PROTOCOL_NAME);
    assert_int_equal(dec(buf, raw_connect(buf, "mqtt", 4, 2, &id, 1, 0)), CODEC_ERR_PROTOCOL_NAME);
    assert_int_equal(dec(buf, raw_connect(buf, "MQTTT", 4, 2, &id, 1, 0)), CODEC_ERR_PROTOCOL_NAME);
    assert_int_equal(dec(buf, raw_connect(buf, "", 4, 2, &id, 1, 0)), CODEC_ERR_PROTOCOL_NAME);
    /* Bad name and bad level: the name is judged first. */
    assert_int_equal(dec(buf, raw_connect(buf, "MQIs", 5, 2, &id, 1, 0)), CODEC_ERR_PROTOCOL_NAME);
}

/* [MQTT-3.1.2-2] level other than 4: CONNACK 0x01 then close (the broker's part). */
static void test_connect_protocol_level_MQTT_3_1_2_2(void **state)
{
    struct mqtt_str id = mstr("x");
    uint8_t buf[64];
    assert_int_equal(dec(buf, raw_connect(buf, "MQTT", 3, 2, &id, 1, 0)), CODEC_ERR_PROTOCOL_LEVEL);
    assert_int_equal(dec(buf, raw_connect(buf, "MQTT", 5, 2, &id, 1, 0)), CODEC_ERR_PROTOCOL_LEVEL);
    assert_int_equal(dec(buf, raw_connect(buf, "MQTT", 0, 2, &id, 1, 0)), CODEC_ERR_PROTOCOL_LEVEL);
    /* The client encoder writes the level it is given, so a refused CONNECT can be built. */
    struct mqtt_connect c = {.level = 5, .client_id = id};
    codec_encode_connect(buf, &c);
    assert_int_equal(dec(buf, codec_connect_size(&c)), CODEC_ERR_PROTOCOL_LEVEL);
}

/* [MQTT-3.1.2-3] reserved connect flag must be 0. */
static void test_connect_reserved_flag_MQTT_3_1_2_3(void **state)
{
    struct mqtt_str id = mstr("x");
    assert_int_equal(connect_rc(0x02, &id, 1, 0), CODEC_OK);
    assert_int_equal(connect_rc(0x03, &id, 1, 0), CODEC_ERR_MALFORMED);
    assert_int_equal(connect_rc(0x01, &id, 1, 0), CODEC_ERR_MALFORMED);
}

/* [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15] will flag 0 => will QoS 0 and will retain 0. */
static void test_connect_will_flag_zero_MQTT_3_1_2_11_13_15(void **state)
{
    struct mqtt_str id = mstr("x");
    assert_int_equal(connect_rc(0x08, &id, 1, 0), CODEC_ERR_MALFORMED); /* will QoS 1 */
    assert_int_equal(connect_rc(0x10, &id, 1, 0), CODEC_ERR_MALFORMED); /* will QoS 2 */
    assert_int_equal(connect_rc(0x18, &id, 1, 0), CODEC_ERR_MALFORMED); /* will QoS 3 */
    assert_int_equal(connect_rc(0x20, &id, 1, 0), CODEC_ERR_MALFORMED); /* will retain */
}

/* [MQTT-3.1.2-14] will QoS 3 is invalid; [MQTT-3.1.2-16/17] will retain either way is fine. */
static void test_connect_will_qos3_MQTT_3_1_2_14(void **state)
{
    struct mqtt_str f[] = {mstr("x"), mstr("t"), mstr("m")};
    assert_int_equal(connect_rc(0x1C, f, 3, 0), CODEC_ERR_QOS);
    assert_int_equal(connect_rc(0x3C, f, 3, 0), CODEC_ERR_QOS);
    assert_int_equal(connect_rc(0x14, f, 3, 0), CODEC_OK);
    assert_int_equal(connect_rc(0x34, f, 3, 0), CODEC_OK);
}

/* [MQTT-3.1.2-22] password flag without username flag. */
static void test_connect_password_without_username_MQTT_3_1_2_22(void **state)
{
    struct mqtt_str f[] = {mstr("x"), mstr("u"), mstr("p")};
    assert_int_equal(connect_rc(0x40, f, 2, 0), CODEC_ERR_MALFORMED);
    assert_int_equal(connect_rc(0xC0, f, 3, 0), CODEC_OK);
}

/* [MQTT-3.1.2-9] [MQTT-3.1.2-18/19] [MQTT-3.1.2-20/21] [MQTT-3.1.3-1]: payload fields present
 * exactly as the flags say, in order, nothing after them. */
static void test_connect_payload_per_flags(void **state)
{
    struct mqtt_str f[] = {mstr("id"), mstr("wt"), mstr("wp"), mstr("user"), mstr("pass")};
    assert_int_equal(connect_rc(0x00, f, 0, 0), CODEC_ERR_MALFORMED); /* no client id */
    assert_int_equal(connect_rc(0x00, f, 1, 0), CODEC_OK);
    assert_int_equal(connect_rc(0x00, f, 1, 1), CODEC_ERR_MALFORMED); /* trailing byte */
    assert_int_equal(connect_rc(0x00, f, 2, 0), CODEC_ERR_MALFORMED); /* field without flag */
    assert_int_equal(connect_rc(0x04, f, 1, 0), CODEC_ERR_MALFORMED); /* will flag, no topic */
    assert_int_equal(connect_rc(0x04, f, 2, 0), CODEC_ERR_MALFORMED); /* no will payload */
    assert_int_equal(connect_rc(0x04, f, 3, 0), CODEC_OK);
    assert_int_equal(connect_rc(0x84, f, 3, 0), CODEC_ERR_MALFORMED); /* no username */
    assert_int_equal(connect_rc(0x84, f, 4, 0), CODEC_OK);
    assert_int_equal(connect_rc(0xC4, f, 4, 0), CODEC_ERR_MALFORMED); /* no password */
    assert_int_equal(connect_rc(0xC4, f, 5, 0), CODEC_OK);
    assert_int_equal(connect_rc(0xC4, f, 5, 2), CODEC_ERR_MALFORMED);
    /* A field whose length runs past the packet. */
    struct mqtt_str id = mstr("id");
    uint8_t buf[64];
    size_t n = raw_connect(buf, "MQTT", 4, 0, &id, 1, 0);
    buf[n - 3] = 3; /* client id length 3, only 2 bytes follow */
    assert_int_equal(dec(buf, n), CODEC_ERR_MALFORMED);
}

/* Variable header cut short inside the packet (remaining length too small for it). */
static void test_connect_truncated_variable_header(void **state)
{
    assert_int_equal(dec(BYTES(0x10, 0x00)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x10, 0x01, 0x00)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x10, 0x04, 0x00, 0x04, 'M', 'Q')), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x10, 0x06, 0x00, 0x04, 'M', 'Q', 'T', 'T')), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x10, 0x07, 0x00, 0x04, 'M', 'Q', 'T', 'T', 4)),
                     CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x10, 0x09, 0x00, 0x04, 'M', 'Q', 'T', 'T', 4, 2, 0)),
                     CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x10, 0x0A, 0x00, 0x04, 'M', 'Q', 'T', 'T', 4, 2, 0, 60)),
                     CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 0)),
                     CODEC_OK);
}

/* [MQTT-1.5.3-1] [MQTT-3.1.3-4] [MQTT-3.1.3-10] [MQTT-3.1.3-11]: client id, will topic and user
 * name are UTF-8; password and will payload are not checked. */
static void test_connect_utf8_fields(void **state)
{
    struct mqtt_str bad = {"a\xED\xA0\x80", 4}; /* surrogate U+D800 */
    struct mqtt_str nul = {"a\0b", 3};
    struct mqtt_str ok = mstr("ok");
    struct mqtt_str f1[] = {bad};
    struct mqtt_str f1n[] = {nul};
    struct mqtt_str f2[] = {ok, bad, ok};
    struct mqtt_str f3[] = {ok, bad};
    struct mqtt_str f4[] = {ok, ok, bad};
    struct mqtt_str f5[] = {ok, ok, bad};
    assert_int_equal(connect_rc(0x02, f1, 1, 0), CODEC_ERR_UTF8);
    assert_int_equal(connect_rc(0x02, f1n, 1, 0), CODEC_ERR_UTF8);
    assert_int_equal(connect_rc(0x04, f2, 3, 0), CODEC_ERR_UTF8); /* will topic */
    assert_int_equal(connect_rc(0x80, f3, 2, 0), CODEC_ERR_UTF8); /* username */
    assert_int_equal(connect_rc(0xC0, f4, 3, 0), CODEC_OK);       /* password is binary */
    assert_int_equal(connect_rc(0x04, f5, 3, 0), CODEC_OK);       /* will payload is binary */
}

/* [MQTT-3.1.3-10] [MQTT-4.7.1-1] [MQTT-4.7.3-1]: the will topic is a topic name. */
static void test_connect_will_topic_is_topic_name(void **state)
{
    struct mqtt_str f[][3] = {{mstr("x"), mstr(""), mstr("m")},
                              {mstr("x"), mstr("a/+"), mstr("m")},
                              {mstr("x"), mstr("a/#"), mstr("m")}};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(connect_rc(0x04, f[i], 3, 0), CODEC_ERR_TOPIC);
}

/* ---- CONNACK [MQTT-3.2] (client-bound) ---- */

static void test_connack_roundtrip(void **state)
{
    for (int rc = 0; rc <= MQTT_CONNACK_NOT_AUTHORIZED; rc++) {
        for (int sp = 0; sp <= (rc == 0); sp++) {
            uint8_t buf[CODEC_CONNACK_SIZE];
            struct mqtt_packet p;
            assert_int_equal(codec_encode_connack(buf, sp, (uint8_t)rc), CODEC_CONNACK_SIZE);
            assert_int_equal(decode_exact(buf, sizeof buf, 0, &p), CODEC_OK);
            assert_int_equal(p.type, MQTT_CONNACK);
            assert_int_equal(p.u.connack.rc, rc);
            assert_int_equal(p.u.connack.session_present, sp);
            assert_prefixes_incomplete(buf, sizeof buf);
        }
    }
}

/* [MQTT-3.2.2-1] reserved bits, [MQTT-3.2.2-4] session present only with rc 0, rc 6..255 reserved.
 */
static void test_connack_errors(void **state)
{
    assert_int_equal(dec(BYTES(0x20, 0x03, 0, 0, 0)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x20, 0x01, 0)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x20, 0x02, 0x02, 0)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x20, 0x02, 0, 6)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x20, 0x02, 1, 5)), CODEC_ERR_MALFORMED);
    assert_int_equal(dec(BYTES(0x21, 0x02, 0, 0)), CODEC_ERR_FLAGS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_roundtrip_minimal),
        cmocka_unit_test(test_connect_roundtrip_full),
        cmocka_unit_test(test_connect_roundtrip_will_qos1_username_only),
        cmocka_unit_test(test_connect_protocol_name_MQTT_3_1_2_1),
        cmocka_unit_test(test_connect_protocol_level_MQTT_3_1_2_2),
        cmocka_unit_test(test_connect_reserved_flag_MQTT_3_1_2_3),
        cmocka_unit_test(test_connect_will_flag_zero_MQTT_3_1_2_11_13_15),
        cmocka_unit_test(test_connect_will_qos3_MQTT_3_1_2_14),
        cmocka_unit_test(test_connect_password_without_username_MQTT_3_1_2_22),
        cmocka_unit_test(test_connect_payload_per_flags),
        cmocka_unit_test(test_connect_truncated_variable_header),
        cmocka_unit_test(test_connect_utf8_fields),
        cmocka_unit_test(test_connect_will_topic_is_topic_name),
        cmocka_unit_test(test_connack_roundtrip),
        cmocka_unit_test(test_connack_errors),
    };
    return cmocka_run_group_tests(tests, NULL, free_held);
}
