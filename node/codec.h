/*
 * codec.h - MQTT 3.1.1 packet codec. Pure functions over byte buffers: no I/O, no allocation, no globals,
 * so the codec can be unit-tested and fuzzed on its own.
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

#define MQTT_MAX_REMAINING_LENGTH 268435455u /* 4-byte variable length maximum [MQTT-2.2.3] */
#define MQTT_PROTOCOL_LEVEL_311 4

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
};

/* CONNACK return codes [MQTT-3.2.2.3]. */
enum mqtt_connack_rc {
    MQTT_CONNACK_ACCEPTED = 0,
    MQTT_CONNACK_BAD_PROTOCOL = 1,
    MQTT_CONNACK_ID_REJECTED = 2,
    MQTT_CONNACK_UNAVAILABLE = 3,
    MQTT_CONNACK_BAD_CREDENTIALS = 4,
    MQTT_CONNACK_NOT_AUTHORIZED = 5,
};

#define MQTT_SUBACK_FAILURE 0x80

/* Decode results. Negative values are errors: the broker closes the connection (the spec's answer to a
 * malformed packet), except CODEC_ERR_PROTOCOL_LEVEL where it first sends CONNACK 0x01 [MQTT-3.1.2-2]. */
enum codec_result {
    CODEC_OK = 0,
    CODEC_INCOMPLETE = 1,          /* not a whole packet yet: read more */
    CODEC_ERR_MALFORMED = -1,      /* bad length, truncated field, trailing bytes, bad flag
                                    * combination */
    CODEC_ERR_TOO_LARGE = -2,      /* remaining length above max_packet, or a 5th length byte */
    CODEC_ERR_FLAGS = -3,          /* fixed-header flags not as the spec fixes them [MQTT-2.2.2-2],
                                    * incl. DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2] */
    CODEC_ERR_PROTOCOL_NAME = -4,  /* CONNECT protocol name is not "MQTT" [MQTT-3.1.2-1] */
    CODEC_ERR_PROTOCOL_LEVEL = -5, /* CONNECT level is not 4 [MQTT-3.1.2-2] */
    CODEC_ERR_UTF8 = -6,           /* ill-formed UTF-8, surrogate or U+0000 in a string
                                    * [MQTT-1.5.3-1/2] */
    CODEC_ERR_TOPIC = -7,          /* PUBLISH or will topic empty or with + or # [MQTT-3.3.2-2],
                                    * or an empty filter [MQTT-4.7.3-1] */
    CODEC_ERR_QOS = -8,            /* QoS 3 anywhere [MQTT-3.3.1-4], [MQTT-3-8.3-4] */
    CODEC_ERR_PACKET_ID = -9,      /* packet id 0 where one is required [MQTT-2.3.1-1] */
    CODEC_ERR_EMPTY = -10,         /* SUBSCRIBE/UNSUBSCRIBE without any filter [MQTT-3.8.3-3] */
    CODEC_ERR_TYPE = -11,          /* packet type 0 or 15 (reserved) */
};

/* A length-prefixed string or blob from the wire: not NUL-terminated. */
struct mqtt_str {
    const char *data;
    uint16_t len;
};

struct mqtt_connect {
    uint8_t level;
    bool clean_session;
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
    struct mqtt_str password; /* binary */
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
    uint8_t rc;
};

struct mqtt_packet {
    enum mqtt_type type;
    uint8_t flags;    /* low nibble of the first byte */
    size_t total_len; /* bytes this packet occupied in the buffer (fixed header included) */
    union {
        struct mqtt_connect connect;
        struct mqtt_connack connack;
        struct mqtt_publish publish;
        struct mqtt_list subscribe;   /* entries: filter + requested QoS */
        struct mqtt_list unsubscribe; /* entries: filter */
        struct mqtt_list suback;      /* entries: one return code byte each */
        uint16_t packet_id;           /* PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK */
    } u;
};

/* Decode the packet at the start of buf[0..len). max_packet bounds the remaining length (0 = protocol max).
 * Returns CODEC_OK (out filled, out->total_len bytes consumed), CODEC_INCOMPLETE, or a CODEC_ERR_*.
 * CODEC_ERR_TOO_LARGE is reported as soon as the length field is readable, before the body arrives. */
int codec_decode(const uint8_t *buf, size_t len, size_t max_packet, struct mqtt_packet *out);

/* Human-readable name of a codec_result, for the one log line a bad packet earns. */
const char *codec_strerror(int result);

/* Iterate SUBSCRIBE entries: *pos starts at 0; returns false after the last one. */
bool codec_subscribe_next(const struct mqtt_list *l, size_t *pos, struct mqtt_str *filter,
                          uint8_t *qos);
/* Iterate UNSUBSCRIBE entries. */
bool codec_unsubscribe_next(const struct mqtt_list *l, size_t *pos, struct mqtt_str *filter);

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

#endif
