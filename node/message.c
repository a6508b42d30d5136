/* message.c - refcounted application messages and their cached wire encodings (see message.h). */
#include "message.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"

/* One allocation per accepted PUBLISH, whatever its number of subscribers: the struct, then (v5)
 * the MQTT 5 encodings' struct, the topic (NUL-terminated, for lookups), the properties, the 3.1.1
 * encoding at the message's QoS (which holds the payload) and (v5) the MQTT 5 one. v5 is set for a v5
 * publisher's message: its subscribers are most likely v5 too, and their encoding then costs no
 * allocation of its own. */
static struct message *message_alloc(const char *topic, size_t topic_len, const uint8_t *payload,
                                     size_t payload_len, uint8_t qos, bool retain,
                                     const uint8_t *props, size_t props_len, uint64_t expire_at,
                                     bool v5)
{
    if (topic_len > UINT16_MAX || qos > 2 || props_len > MQTT_MAX_REMAINING_LENGTH)
        return NULL;
    size_t wire_len = codec_publish_size(topic_len, payload_len, qos);
    size_t wire5_len = v5 ? codec_publish5_size(topic_len, props_len, payload_len, qos) : 0;
    if (wire_len == 0 || (v5 && wire5_len == 0))
        return NULL;
    size_t head = sizeof(struct message) + (v5 ? sizeof(struct message_wire5) : 0);
    struct message *m = malloc(head + topic_len + 1 + props_len + wire_len + wire5_len);
    if (!m)
        return NULL;
    message_view_init(m, (char *)m + head, topic_len, NULL, payload_len, qos, retain);
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
    if (v5) {
        struct message_wire5 *w = (struct message_wire5 *)(m + 1);
        memset(w, 0, sizeof(*w));
        w->wire[qos] = wire + wire_len;
        w->wire_len[qos] =
            codec_encode_publish5(w->wire[qos], &p, m->props, props_len, &w->id_offset[qos]);
        w->inline_qos = qos;
        m->v5 = w;
    }
    return m;
}

struct message *message_new5_for_v5(const char *topic, size_t topic_len, const uint8_t *payload,
                                    size_t payload_len, uint8_t qos, bool retain,
                                    const uint8_t *props, size_t props_len, uint64_t expire_at)
{
    return message_alloc(topic, topic_len, payload, payload_len, qos, retain, props, props_len,
                         expire_at, true);
}

struct message *message_new5(const char *topic, size_t topic_len, const uint8_t *payload,
                             size_t payload_len, uint8_t qos, bool retain, const uint8_t *props,
                             size_t props_len, uint64_t expire_at)
{
    return message_alloc(topic, topic_len, payload, payload_len, qos, retain, props, props_len,
                         expire_at, false);
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
        bool inside = m->v5 == (struct message_wire5 *)(m + 1); /* message_new5_for_v5 */
        for (int q = 0; q < 3; q++)
            if (!inside || q != m->v5->inline_qos)
                free(m->v5->wire[q]);
        if (!inside)
            free(m->v5);
    }
    free(m);
}

/* The PUBLISH of m at qos, in the 3.1.1 form or (v5) the MQTT 5 one with m's properties, into a
 * new buffer; *n and *id_offset say its length and where its packet id sits. NULL when out of
 * memory. Shared by both lazily built caches below. */
static uint8_t *message_encode_new(const struct message *m, uint8_t qos, bool v5, size_t *n,
                                   size_t *id_offset)
{
    size_t size = v5 ? codec_publish5_size(m->topic_len, m->props_len, m->payload_len, qos)
                     : codec_publish_size(m->topic_len, m->payload_len, qos);
    uint8_t *buf = size ? malloc(size) : NULL;
    if (!buf)
        return NULL;
    struct mqtt_publish p = {
        .qos = qos,
        .packet_id = qos ? 1 : 0,
        .topic = {m->topic, m->topic_len},
        .payload = m->payload,
        .payload_len = m->payload_len,
    };
    *n = v5 ? codec_encode_publish5(buf, &p, m->props, m->props_len, id_offset)
            : codec_encode_publish(buf, &p, id_offset);
    return buf;
}

const uint8_t *message_wire(struct message *m, uint8_t qos, size_t *len, size_t *id_offset)
{
    if (!m->wire[qos] &&
        !(m->wire[qos] = message_encode_new(m, qos, false, &m->wire_len[qos], &m->id_offset[qos])))
        return NULL;
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
    if (!w->wire[qos] &&
        !(w->wire[qos] = message_encode_new(m, qos, true, &w->wire_len[qos], &w->id_offset[qos])))
        return NULL;
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
