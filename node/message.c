/* message.c - refcounted application messages and their cached wire encodings (see message.h). */
#include "message.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"

/* One allocation holds the struct, the topic (NUL-terminated, for lookups), the MQTT 5 properties
 * and the PUBLISH encoding at the message's own QoS, which also holds the payload: one malloc and
 * one encoding per accepted PUBLISH, whatever its number of subscribers. */
struct message *message_new5(const char *topic, size_t topic_len, const uint8_t *payload,
                             size_t payload_len, uint8_t qos, bool retain, const uint8_t *props,
                             size_t props_len, uint64_t expire_at)
{
    if (topic_len > UINT16_MAX || qos > 2 || props_len > MQTT_MAX_REMAINING_LENGTH)
        return NULL;
    size_t wire_len = codec_publish_size(topic_len, payload_len, qos);
    if (wire_len == 0)
        return NULL;
    struct message *m = malloc(sizeof(*m) + topic_len + 1 + props_len + wire_len);
    if (!m)
        return NULL;
    message_view_init(m, (char *)(m + 1), topic_len, NULL, payload_len, qos, retain);
    memcpy(m->topic, topic, topic_len);
    m->topic[topic_len] = '\0';
    m->props_len = (uint32_t)props_len;
    if (props_len) {
        m->props = (uint8_t *)m->topic + topic_len + 1;
        memcpy(m->props, props, props_len);
    }
    m->expire_at = expire_at;
    uint8_t *wire = (uint8_t *)m->topic + topic_len + 1 + props_len;
    struct mqtt_publish p = {
        .qos = qos,
        .packet_id = 0, /* patched per delivery */
        .topic = {m->topic, (uint16_t)topic_len},
        .payload = payload,
        .payload_len = payload_len,
    };
    m->wire_len[qos] = codec_encode_publish(wire, &p, &m->id_offset[qos]);
    m->wire[qos] = wire;
    m->payload = wire + m->wire_len[qos] - payload_len;
    return m;
}

struct message *message_new(const char *topic, size_t topic_len, const uint8_t *payload,
                            size_t payload_len, uint8_t qos, bool retain)
{
    return message_new5(topic, topic_len, payload, payload_len, qos, retain, NULL, 0, 0);
}

void message_unref(struct message *m)
{
    if (!m || --m->refs > 0)
        return;
    for (int q = 0; q < 3; q++)
        if (q != m->qos)
            free(m->wire[q]); /* wire[qos] is inside the message */
    if (m->v5) {
        for (int q = 0; q < 3; q++)
            free(m->v5->wire[q]);
        free(m->v5);
    }
    free(m);
}

const uint8_t *message_wire(struct message *m, uint8_t qos, size_t *len, size_t *id_offset)
{
    if (!m->wire[qos]) {
        size_t n = codec_publish_size(m->topic_len, m->payload_len, qos);
        uint8_t *buf = malloc(n);
        if (!buf)
            return NULL;
        struct mqtt_publish p = {
            .qos = qos,
            .packet_id = qos ? 1 : 0,
            .topic = {m->topic, m->topic_len},
            .payload = m->payload,
            .payload_len = m->payload_len,
        };
        m->wire_len[qos] = codec_encode_publish(buf, &p, &m->id_offset[qos]);
        m->wire[qos] = buf;
    }
    *len = m->wire_len[qos];
    if (id_offset)
        *id_offset = m->id_offset[qos];
    return m->wire[qos];
}

const uint8_t *message_wire5(struct message *m, uint8_t qos, size_t *len, size_t *id_offset)
{
    if (!m->v5 && !(m->v5 = calloc(1, sizeof(*m->v5))))
        return NULL;
    struct message_wire5 *w = m->v5;
    if (!w->wire[qos]) {
        size_t n = codec_publish5_size(m->topic_len, m->props_len, m->payload_len, qos);
        uint8_t *buf = n ? malloc(n) : NULL;
        if (!buf)
            return NULL;
        struct mqtt_publish p = {
            .qos = qos,
            .packet_id = qos ? 1 : 0,
            .topic = {m->topic, m->topic_len},
            .payload = m->payload,
            .payload_len = m->payload_len,
        };
        w->wire_len[qos] =
            codec_encode_publish5(buf, &p, m->props, m->props_len, &w->id_offset[qos]);
        w->wire[qos] = buf;
    }
    *len = w->wire_len[qos];
    *id_offset = w->id_offset[qos];
    return w->wire[qos];
}

size_t message_encode_into(struct message *m, uint8_t *out, uint8_t qos, uint16_t packet_id,
                           bool dup, bool retain)
{
    size_t len, off;
    const uint8_t *wire = message_wire(m, qos, &len, &off);
    if (!wire)
        return 0;
    memcpy(out, wire, len);
    codec_publish_patch(out, qos ? off : 0, packet_id, dup, retain);
    return len;
}
