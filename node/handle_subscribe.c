/*
 * handle_subscribe.c - SUBSCRIBE and UNSUBSCRIBE: filter validation, ACL, granted QoS,
 * SUBACK/UNSUBACK, and the retained messages a new subscription receives. MQTT 5 adds the
 * Subscription Options (No Local, Retain As Published, Retain Handling), the Subscription
 * Identifier, and reason codes in SUBACK and UNSUBACK.
 */
#include <stdlib.h>
#include <string.h>

#include "conn_int.h"
#include "topic.h"

/* One filter of a SUBSCRIBE: its SUBACK code (the granted QoS, or a failure), subscribed if
 * granted. *send_retained: whether its retained messages go out after the SUBACK. */
static uint8_t subscribe_one(struct conn *c, const struct mqtt_str *f,
                             const struct mqtt_sub_options *o, uint32_t subid, bool *send_retained)
{
    struct broker *b = conn_broker(c);
    struct session *s = c->session;
    uint8_t qos = o->qos;
    *send_retained = false;
    if (qos > broker_cfg(b)->max_qos) /* [MQTT-3.8.4-6] the server may grant a lower QoS */
        qos = (uint8_t)broker_cfg(b)->max_qos;
    if (!topic_filter_valid(f->data, f->len))
        return c->v5 ? MQTT_RC_TOPIC_FILTER_INVALID : MQTT_SUBACK_FAILURE;
    /* A shared subscription ($share/{group}/{filter}, 3.1.1 clients too): the ACL judges the
     * filter itself [MQTT-4.8.2]; a "$share/" that is not a valid one is refused. */
    const char *real = f->data;
    size_t real_len = f->len;
    bool shared = f->len >= 7 && memcmp(f->data, "$share/", 7) == 0;
    if (shared && !share_parse(f->data, f->len, &real, &real_len))
        return c->v5 ? MQTT_RC_TOPIC_FILTER_INVALID : MQTT_SUBACK_FAILURE;
    if (!broker_acl_allows(b, s, real, real_len, ACL_READ))
        return c->v5 ? MQTT_RC_NOT_AUTHORIZED : MQTT_SUBACK_FAILURE;
    bool existed = session_subscribed(s, f->data, f->len);
    uint8_t opts = qos | (o->no_local ? SUB_NO_LOCAL : 0) |
                   (o->retain_as_published ? SUB_RETAIN_AS_PUBLISHED : 0);
    if (session_subscribe(b, s, f->data, f->len, opts, subid) != 0)
        return c->v5 ? MQTT_RC_UNSPECIFIED : MQTT_SUBACK_FAILURE;
    /* Retain Handling [MQTT-3.3.1-9/10/11]: 0 always (3.1.1 too, also on re-subscribe
     * [MQTT-3.8.4-3]), 1 only for a new subscription, 2 never; never for a shared one. */
    *send_retained = !shared && (o->retain_handling == 0 || (o->retain_handling == 1 && !existed));
    return qos;
}

int handle_subscribe(struct conn *c, const struct mqtt_packet *pkt)
{
    const struct mqtt_list *l = &pkt->u.subscribe;
    struct broker *b = conn_broker(c);
    uint32_t subid =
        c->v5 && props_has(&pkt->props.v, PROP_SUBSCRIPTION_ID) ? pkt->props.v.subscription_id : 0;
    uint8_t stack_codes[64];
    uint8_t *codes = l->count <= sizeof(stack_codes) ? stack_codes : malloc(l->count);
    uint8_t stack_send[64];
    uint8_t *send = l->count <= sizeof(stack_send) ? stack_send : malloc(l->count);
    int err = MQTT_OK;
    if (!codes || !send) {
        err = MQTT_ERR_NO_MEMORY;
        goto done;
    }
    size_t pos = 0, i = 0;
    struct mqtt_str f;
    struct mqtt_sub_options o;
    while (codec_subscribe5_next(l, &pos, &f, &o)) {
        bool sr;
        codes[i] = subscribe_one(c, &f, &o, subid, &sr);
        send[i++] = sr;
    }
    /* SUBACK first, with codes in request order [MQTT-3.8.4-1/5], then retained messages. */
    size_t n = c->v5 ? codec_suback5_size(i, NULL) : codec_suback_size(i);
    uint8_t *out = conn_reserve(c, n);
    if (!out) {
        err = MQTT_ERR_NO_MEMORY;
        goto done;
    }
    if (c->v5)
        codec_encode_suback5(out, MQTT_SUBACK, l->packet_id, codes, i, NULL);
    else
        codec_encode_suback(out, l->packet_id, codes, i);
    conn_commit(c, n);
    pos = 0;
    i = 0;
    while (codec_subscribe5_next(l, &pos, &f, &o)) {
        uint8_t granted = codes[i];
        if (send[i++])
            broker_send_retained(b, c->session, f.data, f.len, granted);
    }
done:
    if (codes != stack_codes)
        free(codes);
    if (send != stack_send)
        free(send);
    return err;
}

int handle_unsubscribe(struct conn *c, const struct mqtt_packet *pkt)
{
    const struct mqtt_list *l = &pkt->u.unsubscribe;
    size_t pos = 0, i = 0;
    struct mqtt_str f;
    if (!c->v5) {
        while (codec_unsubscribe_next(l, &pos, &f))
            session_unsubscribe(conn_broker(c), c->session, f.data, f.len);
        /* [MQTT-3.10.4-4/5] even when nothing matched */
        return conn_send_ack(c, MQTT_UNSUBACK, l->packet_id) < 0 ? MQTT_ERR_NO_MEMORY : MQTT_OK;
    }
    uint8_t stack_codes[64];
    uint8_t *codes = l->count <= sizeof(stack_codes) ? stack_codes : malloc(l->count);
    if (!codes)
        return MQTT_ERR_NO_MEMORY;
    while (codec_unsubscribe_next(l, &pos, &f)) /* [MQTT-3.11.3-1] one reason per filter */
        codes[i++] = session_unsubscribe(conn_broker(c), c->session, f.data, f.len)
                         ? MQTT_RC_SUCCESS
                         : MQTT_RC_NO_SUBSCRIPTION_EXISTED;
    int err = MQTT_OK;
    size_t n = codec_suback5_size(i, NULL);
    uint8_t *out = conn_reserve(c, n);
    if (out) {
        codec_encode_suback5(out, MQTT_UNSUBACK, l->packet_id, codes, i, NULL);
        conn_commit(c, n);
    } else {
        err = MQTT_ERR_NO_MEMORY;
    }
    if (codes != stack_codes)
        free(codes);
    return err;
}
