/*
 * codec5_encode.c - MQTT 5.0 encoders: the server's packets (CONNACK, acks, SUBACK/UNSUBACK,
 * DISCONNECT, AUTH, PUBLISH) and the client's (CONNECT, SUBSCRIBE, UNSUBSCRIBE) for tests and the
 * benchmark. Every property block is a Variable Byte Integer length then props_write's bytes.
 */
#include "codec.h"

#include "codec_int.h"

/* CONNACK [MQTT-3.2]: flags, reason, property block (always present in v5). */
size_t codec_connack5_size(const struct props_build *props)
{
    return packet_size(2 + props_block_size(props_len(props)));
}

size_t codec_encode_connack5(uint8_t *out, bool session_present, uint8_t reason,
                             const struct props_build *props)
{
    size_t n = props_len(props);
    uint8_t *p = put_header(out, MQTT_CONNACK << 4, 2 + props_block_size(n));
    *p++ = session_present ? 1 : 0;
    *p++ = reason;
    return (size_t)(put_props(p, props, n) - out);
}

/* Remaining length of a packet whose reason and property block may be left off: base bytes, then
 * none (reason 0, no properties), the reason alone, or both (sec. 3.4.2.1), (sec. 3.14.2.1). */
static size_t reason_props_rl(size_t base, uint8_t reason, size_t n)
{
    if (n)
        return base + 1 + props_block_size(n);
    return base + (reason ? 1 : 0);
}

/* Write the optional reason and property block as reason_props_rl sized them. */
static uint8_t *put_reason_props(uint8_t *p, uint8_t reason, const struct props_build *b, size_t n)
{
    if (n || reason)
        *p++ = reason;
    if (n)
        p = put_props(p, b, n);
    return p;
}

size_t codec_ack5_size(uint8_t reason, const struct props_build *props)
{
    return packet_size(reason_props_rl(2, reason, props_len(props)));
}

/* PUBACK, PUBREC, PUBREL (flags 0x2 [MQTT-3.6.1-1]), PUBCOMP v5. */
size_t codec_encode_ack5(uint8_t *out, enum mqtt_type type, uint16_t packet_id, uint8_t reason,
                         const struct props_build *props)
{
    size_t n = props_len(props);
    uint8_t byte0 = (uint8_t)((type << 4) | (type == MQTT_PUBREL ? 0x2 : 0));
    uint8_t *p = put_header(out, byte0, reason_props_rl(2, reason, n));
    p = put_u16(p, packet_id);
    return (size_t)(put_reason_props(p, reason, props, n) - out);
}

/* SUBACK / UNSUBACK v5: packet id, property block, reason codes. */
size_t codec_suback5_size(size_t count, const struct props_build *props)
{
    return packet_size(2 + props_block_size(props_len(props)) + count);
}

size_t codec_encode_suback5(uint8_t *out, enum mqtt_type type, uint16_t packet_id,
                            const uint8_t *reasons, size_t count, const struct props_build *props)
{
    size_t n = props_len(props);
    uint8_t *p = put_header(out, (uint8_t)(type << 4), 2 + props_block_size(n) + count);
    p = put_u16(p, packet_id);
    p = put_props(p, props, n);
    if (count)
        memcpy(p, reasons, count);
    return (size_t)(p + count - out);
}

size_t codec_disconnect5_size(uint8_t reason, const struct props_build *props)
{
    return packet_size(reason_props_rl(0, reason, props_len(props)));
}

/* DISCONNECT or AUTH v5: reason and properties, left off when they say Success and nothing. */
size_t codec_encode_disconnect5(uint8_t *out, enum mqtt_type type, uint8_t reason,
                                const struct props_build *props)
{
    size_t n = props_len(props);
    uint8_t *p = put_header(out, (uint8_t)(type << 4), reason_props_rl(0, reason, n));
    return (size_t)(put_reason_props(p, reason, props, n) - out);
}

/* PUBLISH v5 remaining length. */
static size_t publish5_rl(size_t topic_len, size_t props_len, size_t payload_len, uint8_t qos)
{
    return 2 + topic_len + (qos ? 2 : 0) + props_block_size(props_len) + payload_len;
}

size_t codec_publish5_size(size_t topic_len, size_t props_len, size_t payload_len, uint8_t qos)
{
    return packet_size(publish5_rl(topic_len, props_len, payload_len, qos & 3));
}

/* PUBLISH v5 [MQTT-3.3]: topic, packet id for QoS > 0, property block of the given bytes, payload.
 */
size_t codec_encode_publish5(uint8_t *out, const struct mqtt_publish *p, const uint8_t *props,
                             size_t props_len, size_t *id_offset)
{
    uint8_t qos = p->qos & 3;
    uint8_t byte0 =
        (uint8_t)((MQTT_PUBLISH << 4) | (p->dup ? 0x08 : 0) | (qos << 1) | (p->retain ? 0x01 : 0));
    uint8_t *w = put_header(out, byte0, publish5_rl(p->topic.len, props_len, p->payload_len, qos));

    w = put_str(w, p->topic.data, p->topic.len);
    if (id_offset)
        *id_offset = qos ? (size_t)(w - out) : 0;
    if (qos)
        w = put_u16(w, p->packet_id);
    w += codec_varint_encode(w, props_len);
    if (props_len)
        memcpy(w, props, props_len);
    w += props_len;
    if (p->payload_len)
        memcpy(w, p->payload, p->payload_len);
    return (size_t)(w + p->payload_len - out);
}

/* CONNECT v5 [MQTT-3.1]: codec.c's CONNECT with the property blocks. */
size_t codec_connect5_size(const struct mqtt_connect *c, const struct props_build *props,
                           const struct props_build *will_props)
{
    struct connect_props cp = {props, will_props, props_len(props), props_len(will_props)};
    return packet_size(codec_connect_rl(c, &cp));
}

size_t codec_encode_connect5(uint8_t *out, const struct mqtt_connect *c,
                             const struct props_build *props, const struct props_build *will_props)
{
    struct connect_props cp = {props, will_props, props_len(props), props_len(will_props)};
    return codec_encode_connect_any(out, c, MQTT_PROTOCOL_LEVEL_5, &cp);
}

/* The Subscription Options byte (sec. 3.8.3.1). */
uint8_t codec_sub_options_byte(const struct mqtt_sub_options *o)
{
    return (uint8_t)((o->qos & 3) | (o->no_local ? 0x04 : 0) | (o->retain_as_published ? 0x08 : 0) |
                     ((o->retain_handling & 3) << 4));
}

/* SUBSCRIBE (per_entry 3) or UNSUBSCRIBE (2) v5 remaining length. */
static size_t filter_list5_rl(const struct mqtt_str *filters, size_t count, size_t per_entry,
                              size_t n)
{
    size_t rl = 2 + props_block_size(n);
    for (size_t i = 0; i < count; i++)
        rl += per_entry + filters[i].len;
    return rl;
}

/* The list after the packet id: property block, then each filter (and its options byte). */
static uint8_t *put_filter_list5(uint8_t *p, const struct mqtt_str *filters,
                                 const struct mqtt_sub_options *opts, bool with_opts, size_t count,
                                 const struct props_build *props, size_t n)
{
    p = put_props(p, props, n);
    for (size_t i = 0; i < count; i++) {
        p = put_str(p, filters[i].data, filters[i].len);
        if (with_opts)
            *p++ = opts ? codec_sub_options_byte(&opts[i]) : 0;
    }
    return p;
}

size_t codec_subscribe5_size(const struct mqtt_str *filters, size_t count,
                             const struct props_build *props)
{
    return packet_size(filter_list5_rl(filters, count, 3, props_len(props)));
}

/* SUBSCRIBE v5 [MQTT-3.8], flags 0x2. */
size_t codec_encode_subscribe5(uint8_t *out, uint16_t packet_id, const struct mqtt_str *filters,
                               const struct mqtt_sub_options *opts, size_t count,
                               const struct props_build *props)
{
    size_t n = props_len(props);
    uint8_t *p =
        put_header(out, (MQTT_SUBSCRIBE << 4) | 0x2, filter_list5_rl(filters, count, 3, n));
    p = put_u16(p, packet_id);
    return (size_t)(put_filter_list5(p, filters, opts, true, count, props, n) - out);
}

size_t codec_unsubscribe5_size(const struct mqtt_str *filters, size_t count,
                               const struct props_build *props)
{
    return packet_size(filter_list5_rl(filters, count, 2, props_len(props)));
}

/* UNSUBSCRIBE v5 [MQTT-3.10], flags 0x2. */
size_t codec_encode_unsubscribe5(uint8_t *out, uint16_t packet_id, const struct mqtt_str *filters,
                                 size_t count, const struct props_build *props)
{
    size_t n = props_len(props);
    uint8_t *p =
        put_header(out, (MQTT_UNSUBSCRIBE << 4) | 0x2, filter_list5_rl(filters, count, 2, n));
    p = put_u16(p, packet_id);
    return (size_t)(put_filter_list5(p, filters, NULL, false, count, props, n) - out);
}
