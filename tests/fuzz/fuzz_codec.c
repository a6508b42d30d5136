/*
 * fuzz_codec.c - libFuzzer target for the MQTT codec.
 *
 * The input is a byte stream as the broker reads it: decode, advance by total_len, stop on an error or
 * an incomplete packet. Every decoded packet is also checked for decoder/encoder agreement: it is
 * re-encoded with the codec's encoders, the encoding must decode to the same fields, and where the
 * original used the minimal length encoding the bytes must be identical. Any disagreement aborts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_codec: check failed at line %d: %s\n", __LINE__, #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool str_eq(struct mqtt_str a, struct mqtt_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

/* Decode a re-encoding of exactly n bytes; it must be one whole packet of the same type. */
static void decode_again(const uint8_t *enc, size_t n, const struct mqtt_packet *orig,
                         struct mqtt_packet *out)
{
    CHECK(codec_decode(enc, n, 0, out) == CODEC_OK);
    CHECK(out->total_len == n);
    CHECK(out->type == orig->type);
    CHECK(out->flags == orig->flags);
}

/* Same bytes as the original when the original used the minimal length encoding. */
static void same_bytes(const uint8_t *orig, const struct mqtt_packet *p, const uint8_t *enc,
                       size_t n)
{
    if (p->total_len == n)
        CHECK(memcmp(orig, enc, n) == 0);
    else
        CHECK(p->total_len > n); /* only a padded length field can make the original longer */
}

static void check_publish(const uint8_t *orig, const struct mqtt_packet *p)
{
    const struct mqtt_publish *a = &p->u.publish;
    size_t size = codec_publish_size(a->topic.len, a->payload_len, a->qos), id_off;
    uint8_t *enc = malloc(size);
    struct mqtt_packet q;

    CHECK(enc != NULL);
    CHECK(codec_encode_publish(enc, a, &id_off) == size);
    same_bytes(orig, p, enc, size);
    decode_again(enc, size, p, &q);
    const struct mqtt_publish *b = &q.u.publish;
    CHECK(a->dup == b->dup && a->retain == b->retain && a->qos == b->qos);
    CHECK(a->packet_id == b->packet_id && str_eq(a->topic, b->topic));
    CHECK(a->payload_len == b->payload_len);
    CHECK(a->payload_len == 0 || memcmp(a->payload, b->payload, a->payload_len) == 0);
    CHECK((id_off != 0) == (a->qos > 0));

    /* Patch as the broker does per subscriber; only id and DUP may change. */
    if (a->qos > 0) {
        codec_publish_patch(enc, id_off, (uint16_t)(a->packet_id ^ 0x5A5A) | 1, !a->dup, a->retain);
        CHECK(codec_decode(enc, size, 0, &q) == CODEC_OK);
        CHECK(b->packet_id == ((uint16_t)(a->packet_id ^ 0x5A5A) | 1));
        CHECK(b->dup == !a->dup && b->qos == a->qos && b->retain == a->retain);
        CHECK(a->payload_len == b->payload_len && str_eq(a->topic, b->topic));
    }
    free(enc);
}

static void check_connect(const uint8_t *orig, const struct mqtt_packet *p)
{
    const struct mqtt_connect *a = &p->u.connect;
    size_t size = codec_connect_size(a);
    uint8_t *enc = malloc(size);
    struct mqtt_packet q;

    CHECK(enc != NULL);
    CHECK(codec_encode_connect(enc, a) == size);
    same_bytes(orig, p, enc, size);
    decode_again(enc, size, p, &q);
    const struct mqtt_connect *b = &q.u.connect;
    CHECK(a->level == b->level && a->clean_session == b->clean_session);
    CHECK(a->will_flag == b->will_flag && a->will_qos == b->will_qos);
    CHECK(a->will_retain == b->will_retain && a->keepalive == b->keepalive);
    CHECK(a->has_username == b->has_username && a->has_password == b->has_password);
    CHECK(str_eq(a->client_id, b->client_id) && str_eq(a->will_topic, b->will_topic));
    CHECK(str_eq(a->will_payload, b->will_payload) && str_eq(a->username, b->username));
    CHECK(str_eq(a->password, b->password));
    free(enc);
}

/* SUBSCRIBE (with_qos) or UNSUBSCRIBE: walk the list, re-encode it, compare. */
static void check_filter_list(const uint8_t *orig, const struct mqtt_packet *p, bool with_qos)
{
    const struct mqtt_list *l = with_qos ? &p->u.subscribe : &p->u.unsubscribe;
    struct mqtt_str *filters = malloc(l->count * sizeof *filters);
    uint8_t *qos = malloc(l->count);
    size_t pos = 0, n = 0, size;
    struct mqtt_packet q;

    CHECK(filters != NULL && qos != NULL && l->count > 0);
    for (;;) {
        struct mqtt_str f;
        uint8_t fq = 0;
        if (!(with_qos ? codec_subscribe_next(l, &pos, &f, &fq)
                       : codec_unsubscribe_next(l, &pos, &f)))
            break;
        CHECK(n < l->count && f.len > 0 && fq <= 2);
        CHECK(codec_utf8_valid(f.data, f.len));
        filters[n] = f;
        qos[n++] = fq;
    }
    CHECK(n == l->count && pos == l->len);

    size = with_qos ? codec_subscribe_size(filters, n) : codec_unsubscribe_size(filters, n);
    uint8_t *enc = malloc(size);
    CHECK(enc != NULL);
    CHECK((with_qos ? codec_encode_subscribe(enc, l->packet_id, filters, qos, n)
                    : codec_encode_unsubscribe(enc, l->packet_id, filters, n)) == size);
    same_bytes(orig, p, enc, size);
    decode_again(enc, size, p, &q);
    const struct mqtt_list *m = with_qos ? &q.u.subscribe : &q.u.unsubscribe;
    CHECK(m->packet_id == l->packet_id && m->count == l->count && m->len == l->len);
    CHECK(memcmp(m->ptr, l->ptr, l->len) == 0);
    free(enc);
    free(filters);
    free(qos);
}

static void check_suback(const uint8_t *orig, const struct mqtt_packet *p)
{
    const struct mqtt_list *l = &p->u.suback;
    size_t size = codec_suback_size(l->count);
    uint8_t *enc = malloc(size);
    struct mqtt_packet q;

    CHECK(enc != NULL && l->count == l->len && l->count > 0);
    for (size_t i = 0; i < l->count; i++)
        CHECK(l->ptr[i] <= 2 || l->ptr[i] == MQTT_SUBACK_FAILURE);
    CHECK(codec_encode_suback(enc, l->packet_id, l->ptr, l->count) == size);
    same_bytes(orig, p, enc, size);
    decode_again(enc, size, p, &q);
    CHECK(q.u.suback.packet_id == l->packet_id && q.u.suback.count == l->count);
    CHECK(memcmp(q.u.suback.ptr, l->ptr, l->count) == 0);
    free(enc);
}

/* The fixed-size packets. */
static void check_small(const uint8_t *orig, const struct mqtt_packet *p)
{
    uint8_t enc[8];
    size_t n;
    struct mqtt_packet q;

    switch (p->type) {
    case MQTT_CONNACK:
        n = codec_encode_connack(enc, p->u.connack.session_present, p->u.connack.rc);
        break;
    case MQTT_PINGREQ:
        n = codec_encode_pingreq(enc);
        break;
    case MQTT_PINGRESP:
        n = codec_encode_pingresp(enc);
        break;
    case MQTT_DISCONNECT:
        n = codec_encode_disconnect(enc);
        break;
    default:
        n = codec_encode_ack(enc, p->type, p->u.packet_id);
        break;
    }
    same_bytes(orig, p, enc, n);
    decode_again(enc, n, p, &q);
    if (p->type == MQTT_CONNACK)
        CHECK(q.u.connack.rc == p->u.connack.rc &&
              q.u.connack.session_present == p->u.connack.session_present);
    else if (p->type != MQTT_PINGREQ && p->type != MQTT_PINGRESP && p->type != MQTT_DISCONNECT)
        CHECK(q.u.packet_id == p->u.packet_id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    struct mqtt_packet p;
    int rc;

    while ((rc = codec_decode(data + off, size - off, 0, &p)) == CODEC_OK) {
        const uint8_t *pkt = data + off;
        CHECK(p.total_len >= 2 && p.total_len <= size - off);
        CHECK(p.type >= MQTT_CONNECT && p.type <= MQTT_DISCONNECT);
        /* Whole packet OK => every error is judged on it, so one byte less is merely incomplete. */
        struct mqtt_packet short_p;
        CHECK(codec_decode(pkt, p.total_len - 1, 0, &short_p) == CODEC_INCOMPLETE);

        switch (p.type) {
        case MQTT_PUBLISH:
            check_publish(pkt, &p);
            break;
        case MQTT_CONNECT:
            check_connect(pkt, &p);
            break;
        case MQTT_SUBSCRIBE:
            check_filter_list(pkt, &p, true);
            break;
        case MQTT_UNSUBSCRIBE:
            check_filter_list(pkt, &p, false);
            break;
        case MQTT_SUBACK:
            check_suback(pkt, &p);
            break;
        default:
            check_small(pkt, &p);
            break;
        }
        off += p.total_len;
    }
    CHECK(rc == CODEC_INCOMPLETE || (rc < 0 && rc >= CODEC_ERR_TYPE));
    CHECK(codec_strerror(rc) != NULL);
    return 0;
}
