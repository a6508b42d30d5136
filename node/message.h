/*
 * message.h - one application message (a PUBLISH's topic, payload, QoS and retain flag), refcounted and
 * shared by every session, queue, retained store and cluster forwarder that holds it.
 *
 * The message is encoded as a PUBLISH once, when it is created, inside its one allocation (the payload
 * lives in that encoding), and every subscriber shares it: delivering to a connection is one memcpy
 * into its output buffer plus a patch of the flags byte and packet id. A delivery at a lower QoS than
 * the publish's (a subscription granted less) uses a second encoding, built on first use.
 */
#ifndef SOL_MESSAGE_H
#define SOL_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct message {
    uint32_t refs;
    uint8_t qos; /* QoS it was published with */
    bool retain; /* retain flag it was published with */
    uint16_t topic_len;
    /* MQTT 5 properties passed on to every subscriber unchanged (Payload Format Indicator, Content
     * Type, Response Topic, Correlation Data, User Properties in order), as on the wire without the
     * length field, right after the topic's NUL (a view: wherever they are). 0 for a 3.1.1
     * publisher. */
    uint32_t props_len;
    size_t payload_len;
    char *topic;      /* NUL-terminated, inside the same allocation */
    uint8_t *payload; /* inside wire[qos], in the same allocation */
    uint8_t *props;   /* props_len bytes (NULL when 0) */
    /* When its Message Expiry Interval ends, on the broker's clock (broker_now_ms); 0 = never. An
     * expired message is not delivered to anyone who has not started receiving it [MQTT-3.3.2-5]. */
    uint64_t expire_at;
    /* Encodings: wire[q] is this message as a PUBLISH at QoS q (flags byte and packet id to be patched
     * per delivery), id_offset[q] where its packet id sits. wire[qos] is built by message_new inside
     * the message's allocation; the others on first use. */
    uint8_t *wire[3];
    size_t wire_len[3];
    size_t id_offset[3];
    struct message_wire5 *v5; /* MQTT 5 encodings (message_wire5), built on first use */
};

/* The MQTT 5 encodings of a message (its properties as they came, nothing per delivery). */
struct message_wire5 {
    uint8_t *wire[3];
    size_t wire_len[3];
    size_t id_offset[3];
    uint8_t
        inline_qos; /* built with the message (message_new5_for_v5): wire[inline_qos] is in it */
};

/* A message that borrows its topic and payload (a client's PUBLISH still in the read buffer) for the
 * length of one call: not refcounted, not encoded, its topic not NUL-terminated. Only for handing a
 * PUBLISH that nothing on this node keeps to a hook that copies what it needs (cluster forwarding),
 * so such a PUBLISH costs no allocation here. */
static inline void message_view_init(struct message *m, const char *topic, size_t topic_len,
                                     const uint8_t *payload, size_t payload_len, uint8_t qos,
                                     bool retain)
{
    memset(m, 0, sizeof(*m));
    m->refs = 1;
    m->qos = qos;
    m->retain = retain;
    m->topic_len = (uint16_t)topic_len;
    m->payload_len = payload_len;
    m->topic = (char *)topic;
    m->payload = (uint8_t *)payload;
}

/* message_new5 for a v5 publisher's message: its MQTT 5 encoding is built at once, in the same
 * allocation (its subscribers are most likely v5 too). */
struct message *message_new5_for_v5(const char *topic, size_t topic_len, const uint8_t *payload,
                                    size_t payload_len, uint8_t qos, bool retain,
                                    const uint8_t *props, size_t props_len, uint64_t expire_at);

/* A new message with one reference, or NULL on allocation failure. */
struct message *message_new(const char *topic, size_t topic_len, const uint8_t *payload,
                            size_t payload_len, uint8_t qos, bool retain);
/* message_new with MQTT 5 properties to pass on (props[0..props_len), copied; see props_len) and
 * an expiry time (expire_at, 0 = never). */
struct message *message_new5(const char *topic, size_t topic_len, const uint8_t *payload,
                             size_t payload_len, uint8_t qos, bool retain, const uint8_t *props,
                             size_t props_len, uint64_t expire_at);

/* Whether m's Message Expiry Interval is over at now (broker_now_ms). */
static inline bool message_expired(const struct message *m, uint64_t now)
{
    return m->expire_at != 0 && now >= m->expire_at;
}

/* The Message Expiry Interval a receiver gets at now: the seconds left, rounded up (so a message
 * still deliverable never says 0); 0 if m never expires. [MQTT-3.3.2-6] */
static inline uint32_t message_expiry_left(const struct message *m, uint64_t now)
{
    if (!m->expire_at)
        return 0;
    uint64_t ms = m->expire_at > now ? m->expire_at - now : 0;
    uint64_t s = (ms + 999) / 1000;
    return s == 0 ? 1 : s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

static inline struct message *message_ref(struct message *m)
{
    m->refs++;
    return m;
}

/* Drop one reference; frees the message and its encodings with the last. */
void message_unref(struct message *m);

/* The cached PUBLISH encoding at qos (built on first call). NULL on allocation failure. */
const uint8_t *message_wire(struct message *m, uint8_t qos, size_t *len, size_t *id_offset);

/* The MQTT 5 PUBLISH at qos with the message's properties and nothing of one delivery's own (no
 * expiry left, Subscription Identifier or Topic Alias), shared by every v5 subscriber it suits;
 * patched per delivery as the 3.1.1 one (codec_publish_patch). NULL on allocation failure. */
const uint8_t *message_wire5(struct message *m, uint8_t qos, size_t *len, size_t *id_offset);

/* Write the encoding at qos into out (message_wire_len bytes) with the flags and packet id of this one
 * delivery. Returns bytes written, 0 on allocation failure. */
size_t message_encode_into(struct message *m, uint8_t *out, uint8_t qos, uint16_t packet_id,
                           bool dup, bool retain);

#endif
