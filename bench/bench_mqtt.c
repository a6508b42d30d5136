/*
 * bench_mqtt.c - solbench's MQTT client flows (bench.h): what each connection sends (CONNECT,
 * SUBSCRIBE, PUBLISH with the payload header and MQTT 5 User Properties, the acks of QoS 1/2 both
 * ways, 3.1.1 or 5) and what it does with every packet the broker sends. Encoded straight into the
 * connection's output buffer (bench_io.c); solbench.c decides when.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Queue an ack (PUBACK, PUBREC, PUBREL, PUBCOMP): 4 bytes either way, the v5 one in its short form
 * (reason 0, no properties). */
static int send_ack(struct bench *b, struct conn *c, enum mqtt_type type, uint16_t id)
{
    uint8_t *p = io_reserve(&b->io, c, CODEC_ACK_SIZE);
    if (!p)
        return -1;
    io_commit(&b->io, c,
              b->o.mqtt5 ? codec_encode_ack5(p, type, id, MQTT_RC_SUCCESS, NULL)
                         : codec_encode_ack(p, type, id));
    return 0;
}

/* CONNECT: a clean session, but for subscribers with --clean 0 (MQTT 5: Clean Start 0 and a
 * Session Expiry of an hour, since 0 would end the session at disconnect). */
int bench_mqtt_connect(struct bench *b, struct conn *c)
{
    char id[64];
    char kind = "psi"[c->role]; /* publisher, subscriber, idle */
    int n = b->o.client_prefix[0]
                ? snprintf(id, sizeof(id), "%s-%c%u", b->o.client_prefix, kind, c->index)
                : snprintf(id, sizeof(id), "sb-%08x-%c%u", b->o.run_id, kind, c->index);
    bool persistent = c->role == ROLE_SUB && b->o.sub_persistent;
    struct mqtt_connect cn = {.level = b->o.mqtt5 ? MQTT_PROTOCOL_LEVEL_5 : MQTT_PROTOCOL_LEVEL_311,
                              .clean_session = !persistent,
                              .keepalive = b->o.keepalive,
                              .client_id = {id, (uint16_t)n}};
    /* MQTT 5: every limit at the spec's default, as a plain client; only the session's expiry. */
    struct props_build pb = {0};
    const struct props_build *props = NULL;
    if (persistent) {
        pb.v.has |= 1ull << PROP_SESSION_EXPIRY;
        pb.v.session_expiry = 3600;
        props = &pb;
    }
    size_t size = b->o.mqtt5 ? codec_connect5_size(&cn, props, NULL) : codec_connect_size(&cn);
    uint8_t *p = io_reserve(&b->io, c, size);
    if (!p)
        return -1;
    io_commit(&b->io, c,
              b->o.mqtt5 ? codec_encode_connect5(p, &cn, props, NULL)
                         : codec_encode_connect(p, &cn));
    c->state = CS_CONNECT_SENT;
    return 0;
}

/* One SUBSCRIBE: the wildcard filter, or every publisher's exact topic. */
static int send_subscribe(struct bench *b, struct subscriber *s)
{
    char wild[160];
    size_t n = 1;
    struct mqtt_str one, *filters = &one;
    uint8_t *qos = NULL;
    struct mqtt_sub_options *opts = NULL;
    int rc = -1;
    if (b->o.wildcard || b->o.shared_topic || b->o.npub == 0) {
        if (b->o.wildcard) {
            int len = snprintf(wild, sizeof(wild), "%s/%08x/%s", b->o.prefix, b->o.run_id,
                               b->o.shared_topic ? "#" : "p/+");
            one = (struct mqtt_str){wild, (uint16_t)len};
        } else {
            int len = snprintf(wild, sizeof(wild), "%s/%08x/all", b->o.prefix, b->o.run_id);
            one = (struct mqtt_str){wild, (uint16_t)len};
        }
    } else {
        n = b->o.npub;
        filters = calloc(n, sizeof(*filters));
        if (!filters)
            return -1;
        for (size_t i = 0; i < n; i++)
            filters[i] = (struct mqtt_str){b->pubs[i].topic, b->pubs[i].topic_len};
    }
    uint8_t *p;
    if (b->o.mqtt5) {
        /* Maximum QoS only: no No Local, Retain As Published or Retain Handling, as in 3.1.1. */
        opts = calloc(n, sizeof(*opts));
        if (!opts)
            goto out;
        for (size_t i = 0; i < n; i++)
            opts[i].qos = b->o.sub_qos;
        if (!(p = io_reserve(&b->io, &s->c, codec_subscribe5_size(filters, n, NULL))))
            goto out;
        io_commit(&b->io, &s->c, codec_encode_subscribe5(p, 1, filters, opts, n, NULL));
    } else {
        qos = malloc(n);
        if (!qos)
            goto out;
        memset(qos, b->o.sub_qos, n);
        if (!(p = io_reserve(&b->io, &s->c, codec_subscribe_size(filters, n))))
            goto out;
        io_commit(&b->io, &s->c, codec_encode_subscribe(p, 1, filters, qos, n));
    }
    s->c.state = CS_SUBSCRIBING;
    rc = 0;
out:
    free(qos);
    free(opts);
    if (filters != &one)
        free(filters);
    return rc;
}

/* Bytes of one PUBLISH of this run on topic_len at qos. */
size_t bench_mqtt_publish_size(const struct bench *b, size_t topic_len, uint8_t qos)
{
    return b->o.mqtt5 ? codec_publish5_size(topic_len, b->props_len, b->o.size, qos)
                      : codec_publish_size(topic_len, b->o.size, qos);
}

/* Encode one PUBLISH (data or probe) straight into the publisher's output buffer. */
int bench_mqtt_publish(struct bench *b, struct publisher *p, uint8_t kind)
{
    uint8_t qos = kind == BENCH_KIND_DATA ? b->o.qos : 0;
    struct bench_hdr h = {.run_id = b->o.run_id,
                          .pub_id = p->c.index,
                          .seq = kind == BENCH_KIND_DATA ? p->seq : 0,
                          .send_ns = bench_now_ns(),
                          .kind = kind};
    bench_hdr_write(b->payload, &h);
    struct mqtt_publish m = {.qos = qos,
                             .topic = {p->topic, p->topic_len},
                             .payload = b->payload,
                             .payload_len = b->o.size};
    if (qos) {
        uint16_t id = p->next_id;
        while (p->inflight[id >> 6] & (1ull << (id & 63)))
            id = (uint16_t)(id == 65535 ? 1 : id + 1);
        p->inflight[id >> 6] |= 1ull << (id & 63);
        p->next_id = (uint16_t)(id == 65535 ? 1 : id + 1);
        p->unacked++;
        m.packet_id = id;
    }
    uint8_t *dst = io_reserve(&b->io, &p->c, bench_mqtt_publish_size(b, p->topic_len, qos));
    if (!dst)
        return -1;
    if (b->o.mqtt5) {
        if (b->props)
            bench_props_stamp(b->props, b->o.user_props, h.seq);
        io_commit(&b->io, &p->c, codec_encode_publish5(dst, &m, b->props, b->props_len, NULL));
    } else {
        io_commit(&b->io, &p->c, codec_encode_publish(dst, &m, NULL));
    }
    if (kind == BENCH_KIND_DATA)
        p->seq++;
    return 0;
}

/* A PUBACK (QoS 1) or PUBCOMP (QoS 2) frees a window slot; an unknown id is counted, not fatal. */
static void publisher_acked(struct bench *b, struct publisher *p, uint16_t id)
{
    uint64_t bit = 1ull << (id & 63);
    if (!p->inflight || !(p->inflight[id >> 6] & bit)) {
        b->bad_acks++;
        return;
    }
    p->inflight[id >> 6] &= ~bit;
    p->unacked--;
    p->acked++;
    b->t_last_event = b->now;
}

/* A message for a subscriber: acknowledge per QoS, then account it (MQTT 5: and check its User
 * Properties, in pkt->props). */
static int subscriber_publish(struct bench *b, struct subscriber *s, const struct mqtt_packet *pkt)
{
    const struct mqtt_publish *m = &pkt->u.publish;
    if (m->qos == 1 && send_ack(b, &s->c, MQTT_PUBACK, m->packet_id) < 0)
        return -1;
    if (m->qos == 2 && send_ack(b, &s->c, MQTT_PUBREC, m->packet_id) < 0)
        return -1;
    struct bench_hdr h;
    if (bench_hdr_read(m->payload, m->payload_len, &h) < 0 || h.run_id != b->o.run_id ||
        h.pub_id >= b->o.npub) {
        b->foreign++;
        return 0;
    }
    struct pair *pr = &s->pairs[h.pub_id];
    if (h.kind == BENCH_KIND_PROBE) {
        if (!pr->probed) {
            pr->probed = true;
            b->probes_seen++;
        }
        return 0;
    }
    if (h.seq >= b->pubs[h.pub_id].seq) { /* never sent: not ours after all */
        b->foreign++;
        return 0;
    }
    if (b->o.mqtt5 && !bench_props_check(&pkt->props, b->o.user_props, h.seq))
        b->prop_bad++;
    uint64_t t = bench_now_ns();
    b->delivered++;
    b->t_last_event = b->t_last_recv = t;
    int r = pair_record(pr, h.seq);
    if (r == PAIR_NOMEM)
        return -1;
    if (r == PAIR_DUP) {
        b->dup++;
        return 0;
    }
    b->unique++;
    if (r == PAIR_OOO)
        b->ooo++;
    hist_record(&b->hist, t > h.send_ns ? t - h.send_ns : 0);
    return 0;
}

/* MQTT 5 CONNACK properties a client must obey: Receive Maximum bounds a publisher's window of
 * unacknowledged QoS 1/2 PUBLISHes [MQTT-3.3.4-7], Maximum QoS what it may publish [MQTT-3.2.2-11].
 * Returns 0, or -1 (run failed) if the broker does not allow the QoS asked for. */
static int connack5_limits(struct bench *b, struct conn *c, const struct props_values *v)
{
    if (props_has(v, PROP_MAXIMUM_QOS) &&
        v->maximum_qos < (c->role == ROLE_SUB ? b->o.sub_qos : b->o.qos)) {
        bench_fail(b, "%s %u: the broker allows QoS %u at most", conn_role_name(c), c->index,
                   v->maximum_qos);
        return -1;
    }
    if (!props_has(v, PROP_RECEIVE_MAXIMUM))
        return 0;
    if (!b->recv_max || v->receive_maximum < b->recv_max)
        b->recv_max = v->receive_maximum;
    struct publisher *p = c->role == ROLE_PUB ? (struct publisher *)c : NULL;
    if (p && v->receive_maximum < p->window)
        p->window = v->receive_maximum;
    return 0;
}

/* A v5 PUBACK, PUBREC or PUBCOMP with a failure reason: the broker did not take the message (the
 * subscriber's accounting will miss it); its QoS flow is over all the same [MQTT-4.3.3]. A 3.1.1
 * ack has no reason, and the codec leaves u.ack.reason unset at level 4: do not read it there. */
static bool ack_failed(struct bench *b, const struct mqtt_packet *pkt)
{
    if (pkt->level != MQTT_PROTOCOL_LEVEL_5 || pkt->u.ack.reason < MQTT_RC_UNSPECIFIED)
        return false;
    b->ack_fail++;
    return true;
}

/* Every packet the broker sends us. Anything out of place is a protocol error (-1). */
int bench_mqtt_on_packet(struct bench *b, struct conn *c, const struct mqtt_packet *pkt)
{
    struct publisher *p = c->role == ROLE_PUB ? (struct publisher *)c : NULL;
    struct subscriber *s = c->role == ROLE_SUB ? (struct subscriber *)c : NULL;
    switch (pkt->type) {
    case MQTT_CONNACK:
        if (c->state != CS_CONNECT_SENT)
            return -1;
        if (pkt->u.connack.rc != MQTT_CONNACK_ACCEPTED) {
            bench_fail(b, "%s %u: CONNACK refused, %s 0x%02x", conn_role_name(c), c->index,
                       b->o.mqtt5 ? "reason" : "return code", pkt->u.connack.rc);
            return -1;
        }
        if (b->o.mqtt5 && connack5_limits(b, c, &pkt->props.v) < 0)
            return -1;
        if (s)
            return send_subscribe(b, s);
        c->state = CS_READY;
        b->pending--;
        if (p)
            b->ready_pubs++;
        else
            b->ready_idle++;
        return 0;
    case MQTT_SUBACK:
        if (!s || c->state != CS_SUBSCRIBING)
            return -1;
        /* 3.1.1 has one failure code, 0x80; MQTT 5's failure reasons are all >= 0x80. */
        for (size_t i = 0; i < pkt->u.suback.count; i++)
            if (pkt->u.suback.ptr[i] >= MQTT_SUBACK_FAILURE)
                return -1;
        c->state = CS_READY;
        b->pending--;
        b->ready_subs++;
        return 0;
    case MQTT_PUBLISH:
        return s ? subscriber_publish(b, s, pkt) : -1;
    case MQTT_PUBACK:
    case MQTT_PUBCOMP:
        if (!p)
            return -1;
        ack_failed(b, pkt);
        publisher_acked(b, p, pkt->u.packet_id);
        return 0;
    case MQTT_PUBREC:
        if (!p)
            return -1;
        if (ack_failed(b, pkt)) { /* no PUBREL after a failed PUBREC [MQTT-4.3.3] */
            publisher_acked(b, p, pkt->u.packet_id);
            return 0;
        }
        return send_ack(b, c, MQTT_PUBREL, pkt->u.packet_id);
    case MQTT_PUBREL:
        return s ? send_ack(b, c, MQTT_PUBCOMP, pkt->u.packet_id) : -1;
    case MQTT_PINGRESP:
        return 0;
    case MQTT_DISCONNECT: /* an MQTT 5 broker's: say why (at level 4 it is out of place) */
        if (pkt->level == MQTT_PROTOCOL_LEVEL_5)
            bench_fail(b, "%s %u: the broker sent DISCONNECT, reason 0x%02x", conn_role_name(c),
                       c->index, pkt->u.reason);
        return -1;
    default:
        return -1;
    }
}
