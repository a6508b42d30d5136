/*
 * handle_subscribe.c - SUBSCRIBE and UNSUBSCRIBE: filter validation, ACL, granted QoS,
 * SUBACK/UNSUBACK, and the retained messages a new subscription receives.
 */
#include <stdlib.h>

#include "conn_int.h"
#include "topic.h"

int handle_subscribe(struct conn *c, const struct mqtt_list *l)
{
    struct broker *b = conn_broker(c);
    struct session *s = c->session;
    unsigned max_qos = broker_cfg(b)->max_qos;
    uint8_t stack_codes[64];
    uint8_t *codes = l->count <= sizeof(stack_codes) ? stack_codes : malloc(l->count);
    if (!codes)
        return MQTT_ERR_NO_MEMORY;
    int err = MQTT_OK;
    size_t pos = 0, i = 0;
    struct mqtt_str f;
    uint8_t qos;
    while (codec_subscribe_next(l, &pos, &f, &qos)) {
        uint8_t code = MQTT_SUBACK_FAILURE;
        if (qos > max_qos) /* [MQTT-3.8.4-6] the server may grant a lower QoS */
            qos = (uint8_t)max_qos;
        if (topic_filter_valid(f.data, f.len) && broker_acl_allows(b, s, f.data, f.len, ACL_READ) &&
            session_subscribe(b, s, f.data, f.len, qos) == 0)
            code = qos; /* granted QoS (capped by --max-qos above) */
        codes[i++] = code;
    }
    /* SUBACK first, with codes in request order [MQTT-3.8.4-1/5], then retained messages. */
    size_t n = codec_suback_size(i);
    uint8_t *out = conn_reserve(c, n);
    if (!out) {
        err = MQTT_ERR_NO_MEMORY;
        goto done;
    }
    codec_encode_suback(out, l->packet_id, codes, i);
    conn_commit(c, n);
    pos = 0;
    i = 0;
    while (codec_subscribe_next(l, &pos, &f, &qos)) {
        uint8_t granted = codes[i++];
        if (granted != MQTT_SUBACK_FAILURE) /* [MQTT-3.8.4-3] also on re-subscribe */
            broker_send_retained(b, s, f.data, f.len, granted);
    }
done:
    if (codes != stack_codes)
        free(codes);
    return err;
}

int handle_unsubscribe(struct conn *c, const struct mqtt_list *l)
{
    size_t pos = 0;
    struct mqtt_str f;
    while (codec_unsubscribe_next(l, &pos, &f))
        session_unsubscribe(conn_broker(c), c->session, f.data, f.len);
    /* [MQTT-3.10.4-4/5] even when nothing matched */
    return conn_send_ack(c, MQTT_UNSUBACK, l->packet_id) < 0 ? MQTT_ERR_NO_MEMORY : MQTT_OK;
}
