/*
 * fuzz_codec.c - libFuzzer target for the MQTT codec.
 *
 * The input is a byte stream as the broker reads it: decode, advance by total_len, stop on an error or
 * an incomplete packet. The protocol level follows the first CONNECT, as a connection's does: before
 * it level 0, after a level 5 CONNECT the rest decodes as MQTT 5. Every decoded packet is also
 * checked for decoder/encoder agreement: it is re-encoded with the codec's encoders (the v5 ones at
 * level 5, the properties rebuilt from the decoded view), the encoding must decode to the same fields
 * and properties, and where the original used the minimal length encoding the bytes must be identical
 * (3.1.1, v5 PUBLISH) or of the same length (v5 properties come back in identifier order; acks may
 * come back in their short form). Any disagreement aborts.
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

/* The fields of two decoded CONNECTs agree (both levels). */
static void same_connect(const struct mqtt_connect *a, const struct mqtt_connect *b)
{
    CHECK(a->level == b->level && a->clean_session == b->clean_session);
    CHECK(a->will_flag == b->will_flag && a->will_qos == b->will_qos);
    CHECK(a->will_retain == b->will_retain && a->keepalive == b->keepalive);
    CHECK(a->has_username == b->has_username && a->has_password == b->has_password);
    CHECK(str_eq(a->client_id, b->client_id) && str_eq(a->will_topic, b->will_topic));
    CHECK(str_eq(a->will_payload, b->will_payload) && str_eq(a->username, b->username));
    CHECK(str_eq(a->password, b->password));
}

/* The fields of two decoded PUBLISHes agree (both levels). */
static void same_publish(const struct mqtt_publish *a, const struct mqtt_publish *b)
{
    CHECK(a->dup == b->dup && a->retain == b->retain && a->qos == b->qos);
    CHECK(a->packet_id == b->packet_id && str_eq(a->topic, b->topic));
    CHECK(a->payload_len == b->payload_len);
    CHECK(a->payload_len == 0 || memcmp(a->payload, b->payload, a->payload_len) == 0);
}

/* Decode a re-encoding of exactly n bytes; it must be one whole packet of the same type. */
static void decode_again(const uint8_t *enc, size_t n, const struct mqtt_packet *orig,
                         struct mqtt_packet *out)
{
    CHECK(codec_decode_level(enc, n, 0, orig->level, out) == CODEC_OK);
    CHECK(out->level == orig->level);
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
    same_publish(a, b);
    CHECK((id_off != 0) == (a->qos > 0));

    /* Patch as the broker does per subscriber; only id and DUP may change. */
    if (a->qos > 0) {
        codec_publish_patch(enc, id_off, (uint16_t)(a->packet_id ^ 0x5A5A) | 1, !a->dup, a->retain);
        CHECK(codec_decode_level(enc, size, 0, p->level, &q) == CODEC_OK);
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
    same_connect(a, &q.u.connect);
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

/* ---- MQTT 5 ---- */

/* A props_build of a parsed view (arrays allocated; free with build_free), and it must write back
 * exactly as many bytes as were parsed: every value has one encoding, every varint is minimal. */
static void build_of(const struct props_view *v, struct props_build *b)
{
    struct mqtt_str_pair *u = malloc((v->user_count ? v->user_count : 1) * sizeof *u);
    uint32_t *s = malloc((v->subid_count ? v->subid_count : 1) * sizeof *s);
    size_t pos = 0, n = 0;

    CHECK(u != NULL && s != NULL);
    memset(b, 0, sizeof *b);
    b->v = v->v;
    b->v.has &= ~((1ull << PROP_USER_PROPERTY) | (1ull << PROP_SUBSCRIPTION_ID));
    while (props_user_next(v, &pos, &u[n])) {
        CHECK(codec_utf8_valid(u[n].name.data, u[n].name.len));
        CHECK(codec_utf8_valid(u[n].value.data, u[n].value.len));
        n++;
    }
    CHECK(n == v->user_count);
    b->user = u;
    b->user_count = n;
    pos = n = 0;
    while (props_subid_next(v, &pos, &s[n])) {
        CHECK(s[n] >= 1 && s[n] <= MQTT_MAX_REMAINING_LENGTH);
        n++;
    }
    CHECK(n == v->subid_count);
    CHECK(n == 0 || s[0] == v->v.subscription_id);
    b->subid = s;
    b->subid_count = n;
    CHECK(props_len(b) == v->len);
}

static void build_free(struct props_build *b)
{
    free((void *)b->user);
    free((void *)b->subid);
}

/* Two views hold the same properties: their canonical writings are the same bytes. */
static void same_props(const struct props_view *a, const struct props_view *b)
{
    struct props_build x, y;
    build_of(a, &x);
    build_of(b, &y);
    CHECK(a->v.has == b->v.has && a->len == b->len);
    uint8_t *wx = malloc(a->len + 1), *wy = malloc(b->len + 1);
    CHECK(wx != NULL && wy != NULL);
    CHECK(props_write(wx, &x) == a->len && props_write(wy, &y) == b->len);
    CHECK(memcmp(wx, wy, a->len) == 0);
    free(wx);
    free(wy);
    build_free(&x);
    build_free(&y);
}

/* Remaining length of an encoded packet (its length field is valid). */
static size_t rl_of(const uint8_t *pkt, size_t total)
{
    size_t hdr = 1;
    while (pkt[hdr] & 0x80)
        hdr++;
    return total - hdr - 1;
}

/* Re-encode a decoded v5 packet with the v5 encoders and compare (see the top of the file). */
static void check5(const uint8_t *orig, const struct mqtt_packet *p)
{
    struct props_build b, wb;
    struct mqtt_packet q;
    size_t size = 0, n = 0, id_off = 0, cnt = 0, pos = 0;
    uint8_t *enc;
    struct mqtt_str *filters = NULL;
    struct mqtt_sub_options *opts = NULL;
    bool shortened = false;

    if (p->type == MQTT_PINGREQ || p->type == MQTT_PINGRESP) { /* as in 3.1.1 */
        CHECK(p->props.len == 0);
        check_small(orig, p);
        return;
    }
    build_of(&p->props, &b);
    memset(&wb, 0, sizeof wb);
    switch (p->type) {
    case MQTT_CONNECT:
        build_of(&p->u.connect.will_props, &wb);
        CHECK(p->u.connect.will_flag || p->u.connect.will_props.len == 0);
        size = codec_connect5_size(&p->u.connect, &b, &wb);
        break;
    case MQTT_CONNACK:
        size = codec_connack5_size(&b);
        break;
    case MQTT_PUBLISH:
        size = codec_publish5_size(p->u.publish.topic.len, p->props.len, p->u.publish.payload_len,
                                   p->u.publish.qos);
        CHECK(p->u.publish.topic.len > 0 || props_has(&p->props.v, PROP_TOPIC_ALIAS));
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        CHECK(codec_reason_valid(p->type, p->u.ack.reason));
        size = codec_ack5_size(p->u.ack.reason, &b);
        shortened = true;
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        cnt = p->u.subscribe.count;
        filters = malloc(cnt * sizeof *filters);
        opts = malloc(cnt * sizeof *opts);
        CHECK(filters != NULL && opts != NULL && cnt > 0);
        for (size_t i = 0; i < cnt; i++) {
            CHECK(p->type == MQTT_SUBSCRIBE
                      ? codec_subscribe5_next(&p->u.subscribe, &pos, &filters[i], &opts[i])
                      : codec_unsubscribe_next(&p->u.unsubscribe, &pos, &filters[i]));
            CHECK(filters[i].len > 0 && codec_utf8_valid(filters[i].data, filters[i].len));
            if (p->type == MQTT_SUBSCRIBE)
                CHECK(opts[i].qos <= 2 && opts[i].retain_handling <= 2);
        }
        CHECK(pos == p->u.subscribe.len);
        size = p->type == MQTT_SUBSCRIBE ? codec_subscribe5_size(filters, cnt, &b)
                                         : codec_unsubscribe5_size(filters, cnt, &b);
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        for (size_t i = 0; i < p->u.suback.count; i++)
            CHECK(codec_reason_valid(p->type, p->u.suback.ptr[i]));
        size = codec_suback5_size(p->u.suback.count, &b);
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        CHECK(codec_reason_valid(p->type, p->u.reason));
        size = codec_disconnect5_size(p->u.reason, &b);
        shortened = true;
        break;
    default: /* PINGREQ, PINGRESP: above */
        break;
    }
    enc = malloc(size);
    CHECK(enc != NULL && size >= 2);
    switch (p->type) {
    case MQTT_CONNECT:
        n = codec_encode_connect5(enc, &p->u.connect, &b, &wb);
        break;
    case MQTT_CONNACK:
        n = codec_encode_connack5(enc, p->u.connack.session_present, p->u.connack.rc, &b);
        break;
    case MQTT_PUBLISH:
        n = codec_encode_publish5(enc, &p->u.publish, p->props.ptr, p->props.len, &id_off);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        n = codec_encode_ack5(enc, p->type, p->u.ack.packet_id, p->u.ack.reason, &b);
        break;
    case MQTT_SUBSCRIBE:
        n = codec_encode_subscribe5(enc, p->u.subscribe.packet_id, filters, opts, cnt, &b);
        break;
    case MQTT_UNSUBSCRIBE:
        n = codec_encode_unsubscribe5(enc, p->u.unsubscribe.packet_id, filters, cnt, &b);
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        n = codec_encode_suback5(enc, p->type, p->u.suback.packet_id, p->u.suback.ptr,
                                 p->u.suback.count, &b);
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        n = codec_encode_disconnect5(enc, p->type, p->u.reason, &b);
        break;
    default:
        break;
    }
    CHECK(n == size);
    if (p->type == MQTT_PUBLISH)
        same_bytes(orig, p, enc, n);
    else if (shortened)
        CHECK(rl_of(enc, n) <= rl_of(orig, p->total_len));
    else
        CHECK(rl_of(enc, n) == rl_of(orig, p->total_len));
    decode_again(enc, n, p, &q);
    same_props(&p->props, &q.props);
    switch (p->type) {
    case MQTT_CONNECT: {
        const struct mqtt_connect *a = &p->u.connect, *c = &q.u.connect;
        same_connect(a, c);
        same_props(&a->will_props, &c->will_props);
        break;
    }
    case MQTT_CONNACK:
        CHECK(q.u.connack.rc == p->u.connack.rc);
        CHECK(q.u.connack.session_present == p->u.connack.session_present);
        break;
    case MQTT_PUBLISH: {
        const struct mqtt_publish *a = &p->u.publish, *c = &q.u.publish;
        same_publish(a, c);
        CHECK((id_off != 0) == (a->qos > 0));
        if (a->qos > 0) {
            codec_publish_patch(enc, id_off, (uint16_t)(a->packet_id ^ 0x5A5A) | 1, !a->dup,
                                a->retain);
            CHECK(codec_decode_level(enc, n, 0, 5, &q) == CODEC_OK);
            CHECK(c->packet_id == ((uint16_t)(a->packet_id ^ 0x5A5A) | 1) && c->dup == !a->dup);
            CHECK(c->qos == a->qos && c->retain == a->retain);
            same_props(&p->props, &q.props);
        }
        break;
    }
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        CHECK(q.u.ack.packet_id == p->u.ack.packet_id && q.u.ack.reason == p->u.ack.reason);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
    case MQTT_SUBACK:
    case MQTT_UNSUBACK: {
        const struct mqtt_list *l = &p->u.subscribe, *m = &q.u.subscribe;
        CHECK(m->packet_id == l->packet_id && m->count == l->count && m->len == l->len);
        CHECK(memcmp(m->ptr, l->ptr, l->len) == 0);
        break;
    }
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        CHECK(q.u.reason == p->u.reason);
        break;
    default:
        break;
    }
    free(enc);
    free(filters);
    free(opts);
    build_free(&b);
    build_free(&wb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    struct mqtt_packet p;
    uint8_t level = 0;
    int rc;

    while ((rc = codec_decode_level(data + off, size - off, 0, level, &p)) == CODEC_OK) {
        const uint8_t *pkt = data + off;
        CHECK(p.total_len >= 2 && p.total_len <= size - off);
        CHECK(p.type >= MQTT_CONNECT && p.type <= (level == 5 ? MQTT_AUTH : MQTT_DISCONNECT));
        CHECK(p.level ==
              (level == 5 || (p.type == MQTT_CONNECT && p.u.connect.level == 5) ? 5 : 4));
        /* Whole packet OK => every error is judged on it, so one byte less is merely incomplete. */
        struct mqtt_packet short_p;
        CHECK(codec_decode_level(pkt, p.total_len - 1, 0, level, &short_p) == CODEC_INCOMPLETE);
        if (p.type == MQTT_CONNECT && level == 0)
            level = p.level;
        if (p.level == MQTT_PROTOCOL_LEVEL_5) {
            check5(pkt, &p);
            off += p.total_len;
            continue;
        }
        CHECK(p.props.v.has == 0 && p.props.len == 0);

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
    CHECK(rc == CODEC_INCOMPLETE || (rc < 0 && rc >= CODEC_ERR_LAST));
    CHECK(codec_strerror(rc) != NULL);
    CHECK(rc == CODEC_INCOMPLETE || codec_reason_code(rc) >= 0x80);
    return 0;
}
