/* test_cluster_wire.c - the hand-written PUBLISH path of the cluster wire format agrees with
 * protobuf-c in both directions, and malformed input is an error, never a read out of bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster_int.h"
#include "message.h"

static struct message *sample(const char *topic, const char *payload, uint8_t qos, bool retain)
{
    struct message *m =
        message_new(topic, strlen(topic), (const uint8_t *)payload, strlen(payload), qos, retain);
    assert_non_null(m);
    return m;
}

/* What we write, protobuf-c reads back field for field. */
static void test_pack_read_by_protobuf_c(void **state)
{
    (void)state;
    struct message *m = sample("a/b/c", "hello", 1, true);
    const struct wire_stamp st = {(uint64_t)1700000000000 << 16 | 3, "node-1", 6};
    struct wbuf *w = wire_pack_publish("node-1", CL__ENVELOPE__BODY_PUBLISH, m, &st, 42, 0);
    assert_non_null(w);
    Cl__Envelope *e = cl__envelope__unpack(NULL, w->len, w->data);
    assert_non_null(e);
    assert_string_equal(e->sender, "node-1");
    assert_int_equal(e->body_case, CL__ENVELOPE__BODY_PUBLISH);
    assert_string_equal(e->publish->topic, "a/b/c");
    assert_int_equal(e->publish->payload.len, 5);
    assert_memory_equal(e->publish->payload.data, "hello", 5);
    assert_int_equal(e->publish->qos, 1);
    assert_true(e->publish->retain);
    assert_string_equal(e->publish->origin, "node-1");
    assert_int_equal(e->publish->hlc, st.hlc);
    assert_int_equal(e->publish->seq, 42);
    assert_int_equal(e->publish->props.len, 0);
    assert_int_equal(e->publish->expiry_ms, 0);
    cl__envelope__free_unpacked(e, NULL);
    wbuf_unref(w);

    /* Defaults (QoS 0, no retain, empty payload and origin) and the Retain kind. */
    struct message *z = sample("z", "", 0, false);
    w = wire_pack_publish("n2", CL__ENVELOPE__BODY_RETAIN, z, NULL, 0, 0);
    e = cl__envelope__unpack(NULL, w->len, w->data);
    assert_non_null(e);
    assert_int_equal(e->body_case, CL__ENVELOPE__BODY_RETAIN);
    assert_string_equal(e->retain->topic, "z");
    assert_int_equal(e->retain->payload.len, 0);
    assert_int_equal(e->retain->qos, 0);
    assert_false(e->retain->retain);
    cl__envelope__free_unpacked(e, NULL);
    wbuf_unref(w);
    message_unref(m);
    message_unref(z);
}

/* What protobuf-c writes (a whole Frame), we read back. */
static void test_read_protobuf_c_frame(void **state)
{
    (void)state;
    Cl__Publish pb = CL__PUBLISH__INIT;
    pb.topic = "x/y";
    pb.payload.data = (uint8_t *)"\0\1\2";
    pb.payload.len = 3;
    pb.qos = 2;
    pb.origin = "n9";
    pb.hlc = 77;
    pb.seq = 9;
    Cl__Envelope e1 = CL__ENVELOPE__INIT, e2 = CL__ENVELOPE__INIT;
    e1.sender = "n9";
    e1.body_case = CL__ENVELOPE__BODY_PUBLISH;
    e1.publish = &pb;
    Cl__RouteVersion rv = CL__ROUTE_VERSION__INIT;
    rv.generation = 5;
    rv.version = 6;
    e2.sender = "n9";
    e2.body_case = CL__ENVELOPE__BODY_ROUTE_VERSION;
    e2.route_version = &rv;
    Cl__Envelope *envs[] = {&e1, &e2, &e1};
    Cl__Frame f = CL__FRAME__INIT;
    f.envelopes = envs;
    f.n_envelopes = 3;
    size_t n = cl__frame__get_packed_size(&f);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    cl__frame__pack(&f, buf);

    const uint8_t *pos = buf, *env;
    size_t len;
    int kinds[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wire_next_envelope(&pos, buf + n, &env, &len), 1);
        struct wire_envelope we;
        kinds[i] = wire_parse_envelope(env, len, &we);
        assert_int_equal(we.sender_len, 2);
        assert_memory_equal(we.sender, "n9", 2);
        if (kinds[i] == 1) {
            assert_int_equal(we.body_field, CL__ENVELOPE__BODY_PUBLISH);
            assert_int_equal(we.pub.topic_len, 3);
            assert_memory_equal(we.pub.topic, "x/y", 3);
            assert_int_equal(we.pub.payload_len, 3);
            assert_memory_equal(we.pub.payload, "\0\1\2", 3);
            assert_int_equal(we.pub.qos, 2);
            assert_false(we.pub.retain);
            assert_int_equal(we.pub.stamp.origin_len, 2);
            assert_int_equal(we.pub.stamp.hlc, 77);
            assert_int_equal(we.pub.seq, 9);
        }
    }
    assert_int_equal(kinds[0], 1);
    assert_int_equal(kinds[1], 0); /* another kind: left to protobuf-c */
    assert_int_equal(kinds[2], 1);
    assert_int_equal(wire_next_envelope(&pos, buf + n, &env, &len), 0);
    free(buf);
}

/* Every truncation and every single-byte corruption of a valid frame: errors or partial reads,
 * never a read past the end (ASan checks it: each prefix is copied to its own exact-size
 * allocation). */
static void test_malformed(void **state)
{
    (void)state;
    struct message *m = sample("t/u", "payload", 1, false);
    const struct wire_stamp st = {123456789, "n1", 2};
    struct wbuf *w = wire_pack_publish("n1", CL__ENVELOPE__BODY_PUBLISH, m, &st, 7, 0);
    size_t flen = 2 + w->len;
    uint8_t *frame = malloc(flen);
    assert_non_null(frame);
    frame[0] = 0x0a;
    assert_int_equal(pb_varint(frame + 1, w->len), 1);
    memcpy(frame + 2, w->data, w->len);
    for (size_t cut = 0; cut <= flen; cut++) {
        for (int flip = -1; flip < (int)cut; flip++) {
            uint8_t *b = malloc(cut ? cut : 1);
            assert_non_null(b);
            memcpy(b, frame, cut);
            if (flip >= 0)
                b[flip] ^= 0xff;
            const uint8_t *pos = b, *env;
            size_t len;
            int rv;
            while ((rv = wire_next_envelope(&pos, b + cut, &env, &len)) == 1) {
                struct wire_envelope we;
                if (wire_parse_envelope(env, len, &we) == 1) {
                    assert_true(we.pub.topic_len <= len);
                    assert_true(we.pub.payload_len <= len);
                }
            }
            if (flip < 0 && cut > 0 && cut < flen)
                assert_int_equal(rv, -1); /* a clean truncation is always noticed */
            free(b);
        }
    }
    /* Ten-byte varints that never end, and wire types outside the schema. */
    const uint8_t endless[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff,
                               0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const uint8_t *pos = endless, *env;
    size_t len;
    assert_int_equal(wire_next_envelope(&pos, endless + sizeof(endless), &env, &len), -1);
    const uint8_t group[] = {0x0b, 0x0c};
    pos = group;
    assert_int_equal(wire_next_envelope(&pos, group + sizeof(group), &env, &len), -1);
    struct wire_envelope we;
    const uint8_t wrong_type[] = {0x08, 0x01}; /* sender as a varint */
    assert_int_equal(wire_parse_envelope(wrong_type, sizeof(wrong_type), &we), -1);
    /* An empty Handover entry as protobuf-c unpacks it: no data at all (UBSan: no NULL + 0). */
    assert_int_equal(wire_parse_envelope(NULL, 0, &we), 0);
    assert_int_equal(we.body_field, 0);
    free(frame);
    wbuf_unref(w);
    message_unref(m);
}

/* MQTT 5 properties and the expiry left travel with a PUBLISH, both directions: what we write,
 * protobuf-c reads; what protobuf-c writes, we read; the receiver's message expires as much later
 * as was left on the sender's clock. */
static void test_props_and_expiry(void **state)
{
    (void)state;
    /* A User Property ("k", "v") and a Content Type ("t"), as on the MQTT wire. */
    static const uint8_t props[] = {0x26, 0, 1, 'k', 0, 1, 'v', 0x03, 0, 1, 't'};
    struct message *m = message_new5("a/b", 3, (const uint8_t *)"xy", 2, 1, false, props,
                                     sizeof(props), 10000 + 4500);
    assert_non_null(m);
    assert_int_equal(m->props_len, sizeof(props));
    assert_memory_equal(m->props, props, sizeof(props));
    assert_false(message_expired(m, 14499));
    assert_true(message_expired(m, 14500));
    assert_int_equal(message_expiry_left(m, 10000), 5); /* 4.5 s left: rounded up */
    assert_int_equal(message_expiry_left(m, 14499), 1);
    struct wbuf *w = wire_pack_publish("n1", CL__ENVELOPE__BODY_PUBLISH, m, NULL, 3, 10000);
    assert_non_null(w);
    Cl__Envelope *e = cl__envelope__unpack(NULL, w->len, w->data);
    assert_non_null(e);
    assert_int_equal(e->publish->props.len, sizeof(props));
    assert_memory_equal(e->publish->props.data, props, sizeof(props));
    assert_int_equal(e->publish->expiry_ms, 4500);

    /* Our reader on our bytes, and the message the receiver builds at its own now. */
    struct wire_envelope we;
    assert_int_equal(wire_parse_envelope(w->data, w->len, &we), 1);
    assert_int_equal(we.pub.props_len, sizeof(props));
    assert_memory_equal(we.pub.props, props, sizeof(props));
    assert_int_equal(we.pub.expiry_ms, 4500);
    struct message *r = publish_to_message(&we.pub, false, 777);
    assert_non_null(r);
    assert_int_equal(r->expire_at, 777 + 4500);
    assert_memory_equal(r->props, props, sizeof(props));

    /* protobuf-c's bytes, our reader. */
    size_t n = cl__envelope__get_packed_size(e);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    cl__envelope__pack(e, buf);
    assert_int_equal(wire_parse_envelope(buf, n, &we), 1);
    assert_int_equal(we.pub.props_len, sizeof(props));
    assert_int_equal(we.pub.expiry_ms, 4500);

    /* Sent after it expired there: still carries 1 ms, never 0 (which means "never expires"). */
    wbuf_unref(w);
    w = wire_pack_publish("n1", CL__ENVELOPE__BODY_PUBLISH, m, NULL, 4, 20000);
    assert_int_equal(wire_parse_envelope(w->data, w->len, &we), 1);
    assert_int_equal(we.pub.expiry_ms, 1);

    free(buf);
    cl__envelope__free_unpacked(e, NULL);
    wbuf_unref(w);
    message_unref(r);
    message_unref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_read_by_protobuf_c),
        cmocka_unit_test(test_read_protobuf_c_frame),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_props_and_expiry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
