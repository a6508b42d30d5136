/*
 * codec.h - MQTT 3.1.1 and 5.0 packet codec. Pure functions over byte buffers: no I/O, no allocation, no
 * globals, so the codec can be unit-tested and fuzzed on its own. MQTT 5 properties are props.h's.
 *
 * Decoding is zero-copy: every string or payload in a decoded packet points into the caller's buffer and is
 * valid only while that buffer is. Both directions decode (server-bound packets for the broker, client-bound
 * packets for tests and the benchmark client). Encoders write into a caller buffer sized by the matching
 * *_size() function and return the number of bytes written.
 */
#ifndef SOL_CODEC_H
#define SOL_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "props.h"

#define MQTT_MAX_REMAINING_LENGTH 268435455u /* 4-byte variable length maximum [MQTT-2.2.3] */
#define MQTT_PROTOCOL_LEVEL_311 4
#define MQTT_PROTOCOL_LEVEL_5 5

enum mqtt_type {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_PUBREC = 5,
    MQTT_PUBREL = 6,
    MQTT_PUBCOMP = 7,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_UNSUBSCRIBE = 10,
    MQTT_UNSUBACK = 11,
    MQTT_PINGREQ = 12,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
    MQTT_AUTH = 15, /* MQTT 5 only; reserved in 3.1.1 */
};

/* CONNACK return codes (sec. 3.2.2.3). */
enum mqtt_connack_rc {
    MQTT_CONNACK_ACCEPTED = 0,
    MQTT_CONNACK_BAD_PROTOCOL = 1,
    MQTT_CONNACK_ID_REJECTED = 2,
    MQTT_CONNACK_UNAVAILABLE = 3,
    MQTT_CONNACK_BAD_CREDENTIALS = 4,
    MQTT_CONNACK_NOT_AUTHORIZED = 5,
};

#define MQTT_SUBACK_FAILURE 0x80

/* MQTT 5 reason codes [MQTT-2.4]; which packet may carry which is checked by the decoder. */
enum mqtt_reason {
    MQTT_RC_SUCCESS = 0x00, /* also Normal disconnection, Granted QoS 0 */
    MQTT_RC_GRANTED_QOS1 = 0x01,
    MQTT_RC_GRANTED_QOS2 = 0x02,
    MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
    MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    MQTT_RC_CONTINUE_AUTH = 0x18,
    MQTT_RC_REAUTHENTICATE = 0x19,
    MQTT_RC_UNSPECIFIED = 0x80,
    MQTT_RC_MALFORMED = 0x81,
    MQTT_RC_PROTOCOL_ERROR = 0x82,
    MQTT_RC_IMPL_SPECIFIC = 0x83,
    MQTT_RC_UNSUPPORTED_VERSION = 0x84,
    MQTT_RC_CLIENT_ID_INVALID = 0x85,
    MQTT_RC_BAD_CREDENTIALS = 0x86,
    MQTT_RC_NOT_AUTHORIZED = 0x87,
    MQTT_RC_SERVER_UNAVAILABLE = 0x88,
    MQTT_RC_SERVER_BUSY = 0x89,
    MQTT_RC_BANNED = 0x8A,
    MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
    MQTT_RC_BAD_AUTH_METHOD = 0x8C,
    MQTT_RC_KEEPALIVE_TIMEOUT = 0x8D,
    MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
    MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
    MQTT_RC_TOPIC_NAME_INVALID = 0x90,
    MQTT_RC_PACKET_ID_IN_USE = 0x91,
    MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
    MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
    MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
    MQTT_RC_PACKET_TOO_LARGE = 0x95,
    MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
    MQTT_RC_QUOTA_EXCEEDED = 0x97,
    MQTT_RC_ADMIN_ACTION = 0x98,
    MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
    MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
    MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
    MQTT_RC_SERVER_MOVED = 0x9D,
    MQTT_RC_SHARED_SUB_NOT_SUPPORTED = 0x9E,
    MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
    MQTT_RC_MAXIMUM_CONNECT_TIME = 0xA0,
    MQTT_RC_SUBID_NOT_SUPPORTED = 0xA1,
    MQTT_RC_WILDCARD_SUB_NOT_SUPPORTED = 0xA2,
};

/* True if reason may appear in a packet of type (CONNACK, PUBACK..PUBCOMP, SUBACK, UNSUBACK,
 * DISCONNECT, AUTH) per the spec's table for that packet [MQTT-2.4]; false for other types. */
bool codec_reason_valid(enum mqtt_type type, uint8_t reason);

/* Decode results. Negative values are errors: the broker closes the connection (the spec's answer to a
 * malformed packet), except CODEC_ERR_PROTOCOL_LEVEL where it first sends CONNACK 0x01 [MQTT-3.1.2-2]
 * (0x84 to a v5 client). On a v5 connection it first sends the DISCONNECT (or CONNACK, for a CONNECT)
 * whose reason codec_reason_code gives [MQTT-4.13.1]. */
enum codec_result {
    CODEC_OK = 0,
    CODEC_INCOMPLETE = 1,          /* not a whole packet yet: read more */
    CODEC_ERR_MALFORMED = -1,      /* bad length, truncated field, trailing bytes, bad flag
                                    * combination */
    CODEC_ERR_TOO_LARGE = -2,      /* remaining length above max_packet, or a 5th length byte */
    CODEC_ERR_FLAGS = -3,          /* fixed-header flags not as the spec fixes them [MQTT-2.2.2-2],
                                    * incl. DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2] */
    CODEC_ERR_PROTOCOL_NAME = -4,  /* CONNECT protocol name is not "MQTT" [MQTT-3.1.2-1] */
    CODEC_ERR_PROTOCOL_LEVEL = -5, /* CONNECT level not one the decode takes: 4 at level 4, 5 at
                                    * 5, 4 or 5 before CONNECT [MQTT-3.1.2-2] */
    CODEC_ERR_UTF8 = -6,           /* ill-formed UTF-8, surrogate or U+0000 in a string
                                    * [MQTT-1.5.3-1/2] */
    CODEC_ERR_TOPIC = -7,          /* PUBLISH or will topic empty or with + or # [MQTT-3.3.2-2],
                                    * or an empty filter [MQTT-4.7.3-1] */
    CODEC_ERR_QOS = -8,            /* QoS 3 anywhere [MQTT-3.3.1-4], [MQTT-3-8.3-4] */
    CODEC_ERR_PACKET_ID = -9,      /* packet id 0 where one is required [MQTT-2.3.1-1] */
    CODEC_ERR_EMPTY = -10,         /* SUBSCRIBE/UNSUBSCRIBE without any filter [MQTT-3.8.3-3]
                                    * (a Protocol Error in v5 [MQTT-3.8.3-2]) */
    CODEC_ERR_TYPE = -11,          /* packet type 0, or 15 (AUTH) below level 5 */
    /* MQTT 5 only: */
    CODEC_ERR_PROPERTY = -12,    /* malformed property block (see props_parse) */
    CODEC_ERR_PROTOCOL = -13,    /* what the spec calls a Protocol Error in a packet's format */
    CODEC_ERR_REASON = -14,      /* a reason code the packet type does not define [MQTT-2.4] */
    CODEC_ERR_TOPIC_ALIAS = -15, /* Topic Alias 0 [MQTT-3.3.2-8]: answered with 0x94 */
};
#define CODEC_ERR_LAST CODEC_ERR_TOPIC_ALIAS /* the lowest codec_result */

/* The MQTT 5 reason code that answers a decode error (for the CONNACK or DISCONNECT the broker sends
 * before closing a v5 connection): 0x81 Malformed Packet for format errors, 0x82 Protocol Error,
 * 0x84 Unsupported Protocol Version, 0x90 Topic Name invalid, 0x95 Packet too large; 0x00 for
 * CODEC_OK and CODEC_INCOMPLETE, 0x80 Unspecified error for anything else. */
uint8_t codec_reason_code(int codec_result);

struct mqtt_connect {
    uint8_t level;
    bool clean_session; /* Clean Start at level 5 */
    bool will_flag;
    bool will_retain;
    uint8_t will_qos;
    bool has_username;
    bool has_password;
    uint16_t keepalive;
    struct mqtt_str client_id;
    struct mqtt_str will_topic;
    struct mqtt_str will_payload; /* binary */
    struct mqtt_str username;
    struct mqtt_str password;     /* binary */
    struct props_view will_props; /* level 5 with will_flag: the Will Properties (sec. 3.1.3.2) */
};

struct mqtt_publish {
    bool dup;
    bool retain;
    uint8_t qos;
    uint16_t packet_id; /* 0 for QoS 0 */
    struct mqtt_str topic;
    const uint8_t *payload;
    size_t payload_len;
};

/* SUBSCRIBE / UNSUBSCRIBE / SUBACK keep their lists in the buffer; walk them with the iterators below.
 * The decoder has already validated every entry, so iteration cannot fail. */
struct mqtt_list {
    uint16_t packet_id;
    size_t count;       /* number of entries */
    const uint8_t *ptr; /* first entry */
    size_t len;         /* bytes of all entries */
};

struct mqtt_connack {
    bool session_present;
    uint8_t rc; /* 3.1.1 return code, or the v5 reason code */
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP (and a level 4 UNSUBACK). reason is 0 at level 4 and for the v5
 * short form. */
struct mqtt_ack {
    uint16_t packet_id; /* first, so u.packet_id reads it too */
    uint8_t reason;
};

/* A v5 SUBSCRIBE entry's Subscription Options byte, decoded (sec. 3.8.3.1). */
struct mqtt_sub_options {
    uint8_t qos; /* Maximum QoS, 0..2 */
    bool no_local;
    bool retain_as_published;
    uint8_t retain_handling; /* 0 send at subscribe, 1 only if new, 2 never */
};

struct mqtt_packet {
    enum mqtt_type type;
    uint8_t flags;    /* low nibble of the first byte */
    uint8_t level;    /* protocol level it was decoded at (4 or 5); a CONNECT's own level */
    size_t total_len; /* bytes this packet occupied in the buffer (fixed header included) */
    /* Level 5: the packet's property block (none, has == 0, for the short forms, PINGREQ/PINGRESP and
     * at level 4). A CONNECT's Will Properties are u.connect.will_props. */
    struct props_view props;
    union {
        struct mqtt_connect connect;
        struct mqtt_connack connack;
        struct mqtt_publish publish;
        struct mqtt_list subscribe;   /* entries: filter + requested QoS (v5: options byte) */
        struct mqtt_list unsubscribe; /* entries: filter */
        struct mqtt_list suback;      /* entries: one return (v5: reason) code byte each */
        struct mqtt_list unsuback;    /* level 5: entries: one reason code byte each */
        uint16_t packet_id;           /* PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK */
        struct mqtt_ack ack;          /* PUBACK, PUBREC, PUBREL, PUBCOMP with the v5 reason */
        uint8_t reason;               /* level 5 DISCONNECT, AUTH (0 for the short form) */
    } u;
};
/* Not judged by the decoder (the receiver's policy, with the connection's state): a Subscription
 * Identifier in a PUBLISH from a client [MQTT-3.3.4-6], a Topic Alias above the negotiated maximum,
 * a payload that does not match its Payload Format Indicator, an AUTH without the
 * CONNECT's Authentication Method (sec. 4.12), packets only a server or only a client sends (the
 * codec decodes both directions), a packet above the peer's Maximum Packet Size (compare total_len). */

/* Decode the packet at the start of buf[0..len). max_packet bounds the remaining length (0 = protocol max).
 * Returns CODEC_OK (out filled, out->total_len bytes consumed), CODEC_INCOMPLETE, or a CODEC_ERR_*.
 * CODEC_ERR_TOO_LARGE is reported as soon as the length field is readable, before the body arrives. */
int codec_decode(const uint8_t *buf, size_t len, size_t max_packet, struct mqtt_packet *out);

/* codec_decode at the connection's protocol level:
 *  4: 3.1.1, exactly what codec_decode does (a CONNECT must be level 4);
 *  5: MQTT 5 (a CONNECT must be level 5, AUTH decodes, every packet in its v5 format);
 *  0: before CONNECT: a CONNECT of level 4 or 5 decodes as its level says (out->level tells which);
 *     any other packet decodes as 3.1.1. Another value decodes as 4 and takes no v5 CONNECT.
 * A CONNECT of a level not taken is CODEC_ERR_PROTOCOL_LEVEL, read no further [MQTT-3.1.2-2].
 * At level 5, besides the 3.1.1 errors: CODEC_ERR_PROPERTY, CODEC_ERR_UTF8 or CODEC_ERR_PROTOCOL
 * from a property block (props_parse); CODEC_ERR_REASON for a reason code the packet does not
 * define; CODEC_ERR_MALFORMED for a set reserved bit (CONNECT flags [MQTT-3.1.2-3], CONNACK flags,
 * Subscription Options [MQTT-3.8.3-5]); CODEC_ERR_PROTOCOL for Retain Handling 3 or Maximum QoS 3
 * in a subscription (sec. 3.8.3.1), No Local on a shared subscription [MQTT-3.8.3-4], a PUBLISH
 * with an empty topic and no Topic Alias (sec. 3.3.2.3.4); CODEC_ERR_EMPTY for a SUBSCRIBE or
 * UNSUBSCRIBE without a filter. A v5 PUBLISH may have an empty topic when it has a Topic Alias; a v5
 * CONNECT may have a password without a user name (sec. 3.1.2.9). max_packet bounds the remaining
 * length as in codec_decode (the broker compares its Maximum Packet Size, which counts the whole
 * packet, with total_len). */
int codec_decode_level(const uint8_t *buf, size_t len, size_t max_packet, uint8_t level,
                       struct mqtt_packet *out);

/* Human-readable name of a codec_result, for the one log line a bad packet earns. */
const char *codec_strerror(int result);

/* Iterate SUBSCRIBE entries: *pos starts at 0; returns false after the last one. */
bool codec_subscribe_next(const struct mqtt_list *l, size_t *pos, struct mqtt_str *filter,
                          uint8_t *qos);
/* Iterate UNSUBSCRIBE entries. */
bool codec_unsubscribe_next(const struct mqtt_list *l, size_t *pos, struct mqtt_str *filter);
/* Iterate v5 SUBSCRIBE entries with their Subscription Options decoded (a level 4 list reads as QoS
 * only, the other options false/0). */
bool codec_subscribe5_next(const struct mqtt_list *l, size_t *pos, struct mqtt_str *filter,
                           struct mqtt_sub_options *opts);

/* UTF-8 check per [MQTT-1.5.3]: well-formed, no surrogates, no U+0000. */
bool codec_utf8_valid(const char *s, size_t len);
/* A PUBLISH topic name: 1..65535 bytes of valid UTF-8 without U+0000 [MQTT-1.5.3-1/2], no '+' or
 * '#' [MQTT-3.3.2-2]; one pass over the bytes. */
bool codec_topic_name_valid(const char *s, size_t len);

/* Variable-length "remaining length": bytes needed (1..4) and encoder (returns bytes written).
 * Both return 0 for a value above MQTT_MAX_REMAINING_LENGTH, and so do the *_size() functions
 * below for a packet that cannot be encoded. */
size_t codec_varint_size(size_t value);
size_t codec_varint_encode(uint8_t *out, size_t value);

/* ---- Encoders, server side ---- */
#define CODEC_CONNACK_SIZE 4
#define CODEC_ACK_SIZE 4
#define CODEC_PING_SIZE 2
size_t codec_encode_connack(uint8_t *out, bool session_present, uint8_t rc);
/* PUBACK, PUBREC, PUBREL (flags 0x2 set for you), PUBCOMP, UNSUBACK. */
size_t codec_encode_ack(uint8_t *out, enum mqtt_type type, uint16_t packet_id);
size_t codec_encode_pingresp(uint8_t *out);
size_t codec_suback_size(size_t count);
size_t codec_encode_suback(uint8_t *out, uint16_t packet_id, const uint8_t *codes, size_t count);

/* PUBLISH: size, encoder, and where the packet id sits (so one encoding can be copied and patched per
 * subscriber; see codec_publish_patch). id offset is 0 for QoS 0. */
size_t codec_publish_size(size_t topic_len, size_t payload_len, uint8_t qos);
size_t codec_encode_publish(uint8_t *out, const struct mqtt_publish *p, size_t *id_offset);
/* Patch a copied PUBLISH for one delivery, in place: the DUP [MQTT-3.3.1-1] and RETAIN flags and,
 * at QoS 1/2 (id_offset != 0), the packet id; the QoS bits stay. Inline: it runs once per delivery. */
static inline void codec_publish_patch(uint8_t *pkt, size_t id_offset, uint16_t packet_id, bool dup,
                                       bool retain)
{
    pkt[0] = (uint8_t)((pkt[0] & 0x06) | 0x30 | (dup ? 0x08 : 0) | (retain ? 0x01 : 0));
    if (id_offset) {
        pkt[id_offset] = (uint8_t)(packet_id >> 8);
        pkt[id_offset + 1] = (uint8_t)(packet_id & 0xff);
    }
}

/* ---- Encoders, client side (tests, benchmark) ---- */
/* CONNECT: level 0 in c means 4 (3.1.1); will QoS/retain are written only when will_flag is set. */
size_t codec_connect_size(const struct mqtt_connect *c);
size_t codec_encode_connect(uint8_t *out, const struct mqtt_connect *c);
/* filters[i] with qos[i]; qos may be NULL for UNSUBSCRIBE. */
size_t codec_subscribe_size(const struct mqtt_str *filters, size_t count);
size_t codec_encode_subscribe(uint8_t *out, uint16_t packet_id, const struct mqtt_str *filters,
                              const uint8_t *qos, size_t count);
size_t codec_unsubscribe_size(const struct mqtt_str *filters, size_t count);
size_t codec_encode_unsubscribe(uint8_t *out, uint16_t packet_id, const struct mqtt_str *filters,
                                size_t count);
size_t codec_encode_pingreq(uint8_t *out);
size_t codec_encode_disconnect(uint8_t *out);

/* ---- MQTT 5 encoders (codec5_encode.c). props may be NULL for none; sizes are whole packets and 0
 * when the packet would pass MQTT_MAX_REMAINING_LENGTH. Each encoder writes exactly its size. ---- */
/* CONNACK [MQTT-3.2]: flags, reason, properties. */
size_t codec_connack5_size(const struct props_build *props);
size_t codec_encode_connack5(uint8_t *out, bool session_present, uint8_t reason,
                             const struct props_build *props);
/* PUBACK, PUBREC, PUBREL (flags 0x2), PUBCOMP [MQTT-3.4..3.7]: the short forms when they say the
 * same: remaining length 2 for reason 0 without properties, 3 for a reason without properties. */
size_t codec_ack5_size(uint8_t reason, const struct props_build *props);
size_t codec_encode_ack5(uint8_t *out, enum mqtt_type type, uint16_t packet_id, uint8_t reason,
                         const struct props_build *props);
/* SUBACK or UNSUBACK (type) [MQTT-3.9], [MQTT-3.11]: packet id, properties, one reason per filter. */
size_t codec_suback5_size(size_t count, const struct props_build *props);
size_t codec_encode_suback5(uint8_t *out, enum mqtt_type type, uint16_t packet_id,
                            const uint8_t *reasons, size_t count, const struct props_build *props);
/* DISCONNECT [MQTT-3.14] or AUTH [MQTT-3.15] (type): remaining length 0 for reason 0 without
 * properties, 1 for a reason without properties. */
size_t codec_disconnect5_size(uint8_t reason, const struct props_build *props);
size_t codec_encode_disconnect5(uint8_t *out, enum mqtt_type type, uint8_t reason,
                                const struct props_build *props);
/* PUBLISH v5 [MQTT-3.3]: fixed header, topic, packet id (QoS > 0), property block, payload. The
 * properties come as bytes (props_len bytes, no length field: what props_write writes, or a
 * props_view's ptr/len), so the broker can assemble them per subscriber (a Topic Alias or its
 * Subscription Identifiers) around one encoding. *id_offset as codec_encode_publish: 0 for QoS 0, so
 * codec_publish_patch works on a v5 encoding as well. */
size_t codec_publish5_size(size_t topic_len, size_t props_len, size_t payload_len, uint8_t qos);
size_t codec_encode_publish5(uint8_t *out, const struct mqtt_publish *p, const uint8_t *props,
                             size_t props_len, size_t *id_offset);
/* CONNECT v5 (client side): as codec_encode_connect with level 0 meaning 5; props are the CONNECT
 * properties, will_props the Will Properties (written only with will_flag). */
size_t codec_connect5_size(const struct mqtt_connect *c, const struct props_build *props,
                           const struct props_build *will_props);
size_t codec_encode_connect5(uint8_t *out, const struct mqtt_connect *c,
                             const struct props_build *props, const struct props_build *will_props);
/* SUBSCRIBE v5: filters[i] with opts[i] (NULL: QoS 0, no options); UNSUBSCRIBE v5. */
uint8_t codec_sub_options_byte(const struct mqtt_sub_options *o);
size_t codec_subscribe5_size(const struct mqtt_str *filters, size_t count,
                             const struct props_build *props);
size_t codec_encode_subscribe5(uint8_t *out, uint16_t packet_id, const struct mqtt_str *filters,
                               const struct mqtt_sub_options *opts, size_t count,
                               const struct props_build *props);
size_t codec_unsubscribe5_size(const struct mqtt_str *filters, size_t count,
                               const struct props_build *props);
size_t codec_encode_unsubscribe5(uint8_t *out, uint16_t packet_id, const struct mqtt_str *filters,
                                 size_t count, const struct props_build *props);

#endif
