/*
 * props.h - MQTT 5.0 properties [MQTT-2.2.2]: the table of every property identifier, a validating
 * zero-copy parser and a writer. Pure functions over byte buffers, no allocation, no globals, as
 * codec.h (which includes this header and uses it for every v5 packet).
 *
 * A property block on the wire is a Variable Byte Integer length followed by that many bytes of
 * (identifier, value) pairs. Identifiers are Variable Byte Integers too, but every defined one fits
 * in one byte. Values are of seven data types (sec. 2.2.2.2): Byte, Two/Four Byte Integer, Variable
 * Byte Integer, UTF-8 Encoded String, Binary Data, UTF-8 String Pair.
 */
#ifndef SOL_PROPS_H
#define SOL_PROPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A length-prefixed string or blob from the wire: not NUL-terminated. */
struct mqtt_str {
    const char *data;
    uint16_t len;
};

/* A UTF-8 String Pair (User Property name and value). */
struct mqtt_str_pair {
    struct mqtt_str name;
    struct mqtt_str value;
};

/* Property identifiers (sec. 2.2.2.2). */
enum prop_id {
    PROP_PAYLOAD_FORMAT = 0x01,
    PROP_MESSAGE_EXPIRY = 0x02,
    PROP_CONTENT_TYPE = 0x03,
    PROP_RESPONSE_TOPIC = 0x08,
    PROP_CORRELATION_DATA = 0x09,
    PROP_SUBSCRIPTION_ID = 0x0B,
    PROP_SESSION_EXPIRY = 0x11,
    PROP_ASSIGNED_CLIENT_ID = 0x12,
    PROP_SERVER_KEEPALIVE = 0x13,
    PROP_AUTH_METHOD = 0x15,
    PROP_AUTH_DATA = 0x16,
    PROP_REQUEST_PROBLEM_INFO = 0x17,
    PROP_WILL_DELAY = 0x18,
    PROP_REQUEST_RESPONSE_INFO = 0x19,
    PROP_RESPONSE_INFO = 0x1A,
    PROP_SERVER_REFERENCE = 0x1C,
    PROP_REASON_STRING = 0x1F,
    PROP_RECEIVE_MAXIMUM = 0x21,
    PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
    PROP_TOPIC_ALIAS = 0x23,
    PROP_MAXIMUM_QOS = 0x24,
    PROP_RETAIN_AVAILABLE = 0x25,
    PROP_USER_PROPERTY = 0x26,
    PROP_MAXIMUM_PACKET_SIZE = 0x27,
    PROP_WILDCARD_SUB_AVAILABLE = 0x28,
    PROP_SUBID_AVAILABLE = 0x29,
    PROP_SHARED_SUB_AVAILABLE = 0x2A,
};
#define PROP_ID_MAX 0x2A

/* Data types [MQTT-1.5]. */
enum prop_type {
    PROP_TYPE_BYTE = 1,
    PROP_TYPE_U16,    /* Two Byte Integer */
    PROP_TYPE_U32,    /* Four Byte Integer */
    PROP_TYPE_VARINT, /* Variable Byte Integer */
    PROP_TYPE_STRING, /* UTF-8 Encoded String */
    PROP_TYPE_BINARY, /* Binary Data */
    PROP_TYPE_PAIR,   /* UTF-8 String Pair */
};

/* Where a property block sits: the packet type's number (enum mqtt_type, 1..15, AUTH = 15), or
 * PROPS_WILL for the Will Properties of a CONNECT payload (sec. 3.1.3.2). */
#define PROPS_WILL 16

/* One row of the property table: its data type, the kinds it may appear in (bit 1 << kind, kind
 * as above) and where it may repeat. User Property repeats everywhere (sec. 3.1.2.11.8);
 * Subscription Identifier repeats in PUBLISH (one per matching subscription, server to client
 * [MQTT-3.3.4-4]) but not in SUBSCRIBE (sec. 3.8.2.1.2). */
struct prop_info {
    enum prop_type type;
    uint32_t kinds;
    uint32_t multi_kinds; /* kinds where it may appear more than once */
};

/* The table row for id, or NULL for an identifier the spec does not define. */
const struct prop_info *props_info(unsigned id);

/* Decoded single-valued properties. Which are present is the bit (1 << id) of has (props_has);
 * the bits of User Property and Subscription Identifier say one or more are there. Strings and
 * binaries point into the parsed buffer. A field whose bit is clear is not set (not zeroed). */
struct props_values {
    uint64_t has;
    uint8_t payload_format;        /* 0x01: 0 or 1 */
    uint8_t request_problem_info;  /* 0x17: 0 or 1 */
    uint8_t request_response_info; /* 0x19: 0 or 1 */
    uint8_t maximum_qos;           /* 0x24: 0 or 1 */
    uint8_t retain_available;      /* 0x25: 0 or 1 */
    uint8_t wildcard_sub_available;
    uint8_t subid_available;
    uint8_t shared_sub_available;
    uint16_t server_keepalive;          /* 0x13 */
    uint16_t receive_maximum;           /* 0x21: not 0 */
    uint16_t topic_alias_maximum;       /* 0x22 */
    uint16_t topic_alias;               /* 0x23: not 0 */
    uint32_t message_expiry;            /* 0x02 */
    uint32_t session_expiry;            /* 0x11 */
    uint32_t will_delay;                /* 0x18 */
    uint32_t maximum_packet_size;       /* 0x27: not 0 */
    uint32_t subscription_id;           /* 0x0B: the first one; 1..268435455 */
    struct mqtt_str content_type;       /* 0x03 */
    struct mqtt_str response_topic;     /* 0x08 */
    struct mqtt_str correlation_data;   /* 0x09, binary */
    struct mqtt_str assigned_client_id; /* 0x12 */
    struct mqtt_str auth_method;        /* 0x15 */
    struct mqtt_str auth_data;          /* 0x16, binary */
    struct mqtt_str response_info;      /* 0x1A */
    struct mqtt_str server_reference;   /* 0x1C */
    struct mqtt_str reason_string;      /* 0x1F */
};

static inline bool props_has(const struct props_values *v, enum prop_id id)
{
    return (v->has >> id) & 1;
}

/* A parsed property block: the values above, plus the raw property bytes (after the length field)
 * for the repeatable ones (walk them with props_user_next / props_subid_next) or for forwarding the
 * block as it came. Valid while the parsed buffer is. */
struct props_view {
    struct props_values v;
    const uint8_t *ptr; /* first property (after the length field) */
    size_t len;         /* bytes of properties, excluding the length field */
    size_t user_count;  /* User Properties */
    size_t subid_count; /* Subscription Identifiers */
};

/* Parse and validate the property block at buf[0..len) (its length field first) for kind (an
 * enum mqtt_type value or PROPS_WILL), filling *out; *used gets the bytes of length field plus
 * properties (the rest of buf is the caller's). Returns CODEC_OK or:
 *  CODEC_ERR_PROPERTY: the block does not fit in len, length field or an identifier or varint value
 *   not minimally encoded [MQTT-1.5.5-1] or over 4 bytes, a truncated value, an identifier the spec
 *   does not define or one not allowed on kind (both a Malformed Packet (sec. 2.2.2.2)), Payload
 *   Format Indicator not 0/1;
 *  CODEC_ERR_UTF8: a string (or either half of a pair) not valid UTF-8 per [MQTT-1.5.4-1/2];
 *  CODEC_ERR_PROTOCOL: a single-valued property twice, Receive Maximum / Maximum Packet Size /
 *   Topic Alias / Subscription Identifier 0, Request Problem / Request Response Information,
 *   Maximum QoS, Retain / Wildcard / Subscription Identifier / Shared Subscription Available not
 *   0/1, or Authentication Data without Authentication Method (the spec calls each a Protocol
 *   Error).
 * Not judged here (the receiver's policy): a Subscription Identifier in a PUBLISH sent by a client
 * [MQTT-3.3.4-6] (check subid_count), Topic Alias above the negotiated maximum, payload/format
 * agreement. The codec errors are the enum codec_result values of codec.h. */
int props_parse(const uint8_t *buf, size_t len, unsigned kind, struct props_view *out,
                size_t *used);

/* Iterate the User Properties of a parsed view, in wire order: *pos starts at 0; false after the
 * last. The view was validated by props_parse, so this cannot fail on one it filled. */
bool props_user_next(const struct props_view *v, size_t *pos, struct mqtt_str_pair *out);
/* Iterate the Subscription Identifiers of a parsed view, in wire order. */
bool props_subid_next(const struct props_view *v, size_t *pos, uint32_t *out);
/* Step over any one property of a parsed view: its identifier into *id; the property's bytes are
 * v->ptr[old *pos .. new *pos). *pos starts at 0; false after the last. */
bool props_next(const struct props_view *v, size_t *pos, uint32_t *id);
/* Copy the properties of v, in order, but those whose identifier's bit (1 << id) is in except,
 * to out (room for v->len bytes); returns the bytes written. What a broker passes on. */
size_t props_copy_except(const struct props_view *v, uint64_t except, uint8_t *out);

/* Properties to write: the single-valued ones present in v.has (other fields unread), then the
 * User Properties and Subscription Identifiers from the arrays (their has bits and
 * v.subscription_id are ignored). The writer trusts its input: values are written as given (the
 * caller keeps them valid and allowed on the packet it builds). Strings and arrays are the
 * caller's, read only during props_len / props_write. */
struct props_build {
    struct props_values v;
    const struct mqtt_str_pair *user;
    size_t user_count;
    const uint32_t *subid;
    size_t subid_count;
};

/* Bytes of the properties of b, excluding the length field (0 for NULL or none). */
size_t props_len(const struct props_build *b);
/* Write the properties of b (no length field) to out, which has room for props_len(b) bytes:
 * single-valued ones in identifier order, then User Properties, then Subscription Identifiers,
 * every Variable Byte Integer minimal [MQTT-1.5.5-1]. Returns the bytes written (props_len(b)). */
size_t props_write(uint8_t *out, const struct props_build *b);

#endif
