/*
 * conn_int.h - the connection module's own state and the calls between its files (conn.c,
 * mqtt.c, keepalive.c, handle_*.c). Included by nothing else: conn.h is the face.
 */
#ifndef SOL_CONN_INT_H
#define SOL_CONN_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "broker_core.h"
#include "codec.h"
#include "conn.h"
#include "flow.h"
#include "message.h"
#include "session.h"
#include "transport.h"

#define CONN_OUT_PAUSE (16 << 20)          /* a client this far behind is not read from */
#define CONN_PAUSED_INPUT_MAX (256 * 1024) /* a paused publisher's input read ahead for acks */
#define CONN_CONNECT_TIMEOUT_MS 10000      /* a socket must send CONNECT within this */

enum conn_state {
    CONN_NEW = 0, /* socket accepted, waiting for CONNECT */
    CONN_HELD,    /* CONNECT accepted, waiting for the cluster (conns_resume_held) */
    CONN_ACTIVE,  /* CONNACK sent, session attached */
    CONN_CLOSING, /* transport_close called; freed in the closed event */
};

/* What CONNECT said that the connection needs until its session is attached (then freed: an
 * idle connection keeps none of it). */
struct conn_connect {
    char *client_id;
    char *username;        /* NULL = anonymous; moves to the session */
    uint64_t token;        /* names a held CONNECT to conns_resume_held */
    uint32_t expiry;       /* Session Expiry Interval (session.h); 3.1.1: from the clean flag */
    bool clean;            /* Clean Start (3.1.1: clean session): a previous session is discarded */
    bool assigned;         /* the client id was assigned here (MQTT 5 tells the client) */
    bool server_keepalive; /* MQTT 5: keepalive capped by max-keepalive, CONNACK says so */
    bool response_info;    /* MQTT 5: Request Response Information 1 */
};

/* The Response Information a v5 client that asks for it gets [MQTT-3.2.2.3.15]: a topic prefix of
 * its own, followed by its client id ("response/<client id>/"). */
#define CONN5_RESPONSE_PREFIX "response/"
#define CONN5_RESPONSE_MAX 1024

#define CONN5_TOPIC_ALIAS_MAX 10 /* aliases a v5 client may set (Mosquitto's default too) */

/* An inbound Topic Alias [MQTT-3.3.2.3.4]: per connection, forgotten with it. */
struct conn5_alias {
    char *topic;
    uint16_t len;
};

/* What an MQTT 5 connection negotiated (NULL on a 3.1.1 one: its idle memory is unchanged). */
#define CONN5_ALIAS_OUT_MAX 64 /* aliases we set toward a client, at most (the oldest is reused) */

/* An outbound Topic Alias: the topic it stands for and when it was last used (LRU). */
struct conn5_alias_out {
    char *topic;
    uint16_t len;
    uint64_t used;
};

struct conn5 {
    struct conn5_alias *alias_in;      /* CONN5_TOPIC_ALIAS_MAX slots, allocated on first use */
    struct conn5_alias_out *alias_out; /* alias_out_max slots, allocated on first use */
    uint64_t alias_clock;              /* LRU ticks */
    uint16_t alias_out_max;            /* min(the client's Topic Alias Maximum, ours) */
    uint32_t max_packet;               /* the client's Maximum Packet Size; 0 = the protocol's */
    uint32_t will_expiry;              /* the will's Message Expiry Interval (s); 0 = none */
    uint32_t will_delay;               /* the Will Delay Interval (s) [MQTT-3.1.3.2.2] */
    uint16_t receive_max;              /* the client's Receive Maximum [MQTT-3.3.4-9] */
    bool problem_info;                 /* Request Problem Information: reason strings allowed */
};

struct conn {
    struct flow_source flow; /* as a publisher: paused while a subscriber it feeds is behind */
    /* Pointers first, small fields packed last: one of these per socket, most of them idle. It
     * lives in the transport's allocation, right after the stream. */
    struct transport *t;
    struct conns *cs;
    struct session *session;  /* attached from CONNACK to close */
    struct conn *prev, *next; /* cs->list */
    struct conn *dirty_next;  /* cs->dirty: has output to flush this loop turn */
    uint8_t *in;              /* partial packet carried between reads (NULL when none) */
    uint8_t *out;             /* coalesced output of this loop turn (NULL when none) */
    struct message *will;
    struct conn_connect *connect; /* from CONNECT to CONNACK */
    struct conn5 *v5;             /* MQTT 5 only */
    uint32_t
        last_rx_ms; /* loop ms mod 2^32 of the last complete packet; accept time until CONNECT */
    uint32_t in_len, in_cap;
    uint32_t skim_off; /* while paused: c->in before this holds no ack (mqtt_skim) */
    uint32_t out_len, out_cap;
    uint32_t write_len, write_cap; /* the background write in flight: unsent bytes, its buffer */
    uint8_t state;                 /* enum conn_state */
    uint8_t proto;                 /* protocol level from CONNECT (4: 3.1.1) */
    uint16_t keepalive;
    uint16_t acks_waiting; /* acknowledgements held for the disk (persist.h) */
    bool dirty;
    bool got_disconnect; /* DISCONNECT received: no will */
    bool over_limit;     /* accepted beyond --max-connections: CONNACK 0x03 */
    bool read_paused;    /* not read from until it takes our output (CONN_OUT_PAUSE) */
    bool reading;        /* transport reading */
    bool condemned;      /* chosen to free memory over max-conn-memory: closed at flush */
    bool close_at_flush; /* output could not be buffered: takes no more, closed at flush */
};

struct conns {
    struct broker *b;
    struct listeners *listeners;
    struct conn *list;
    struct conn *dirty;
    size_t open;          /* sockets, CONNECTed or not */
    size_t mem;           /* bytes in connections' input and output buffers */
    size_t mem_condemned; /* of those, held by connections closed at this flush */
    bool shutting_down;
    bool listeners_closed;
    void (*shutdown_done)(void *ctx);
    void *shutdown_ctx;
};

static inline struct broker *conn_broker(const struct conn *c)
{
    return c->cs->b;
}

/* Milliseconds since the last complete packet (wraps after 49 days; keepalives are shorter). */
static inline uint32_t conn_idle_ms(const struct conn *c, uint64_t now)
{
    return (uint32_t)now - c->last_rx_ms;
}

static inline void conn_mark_rx(struct conn *c)
{
    c->last_rx_ms = (uint32_t)broker_now_ms(conn_broker(c));
}

/* ---- conn.c ---- */

/* Append bytes to this turn's output. -1 when it cannot grow (it then takes no more and is closed
 * at this turn's flush). */
int conn_write(struct conn *c, const uint8_t *data, size_t len);
/* Room for len more output bytes (NULL: as conn_write's -1); conn_commit(len) once written. */
uint8_t *conn_reserve(struct conn *c, size_t len);
void conn_commit(struct conn *c, size_t len);
/* Read from the transport exactly when nothing holds the connection back (state, its own
 * backlog, a paused PUBLISH with enough input buffered). */
void conn_update_reading(struct conn *c);
/* "ip:port" of the client, for log lines. */
const char *conn_peer(const struct conn *c, char *buf, size_t len);
/* Who the connection is, for log lines: its client id, or "no CONNECT yet". */
const char *conn_name(const struct conn *c);
/* Give back an output buffer kept from the last flush if nothing was written since. */
void conn_trim(struct conn *c);
/* Give back the input buffer once it holds nothing. */
void conn_input_drop(struct conn *c);

/* ---- mqtt.c: the MQTT layer ---- */

/* Why the MQTT layer closes a connection: a handler's result is MQTT_OK, one of these, or a
 * negative codec_result (a packet that did not decode). mqtt_close turns each into its one log
 * line and its answer (a CONNACK code today, an MQTT 5 reason code later). */
enum mqtt_err {
    MQTT_OK = 0,
    MQTT_ERR_TOO_LARGE,       /* packet larger than max-packet-size */
    MQTT_ERR_NOT_CONNECT,     /* first packet is not CONNECT [MQTT-3.1.0-1] */
    MQTT_ERR_SECOND_CONNECT,  /* [MQTT-3.1.0-2] */
    MQTT_ERR_SERVER_PACKET,   /* a packet type only a server sends */
    MQTT_ERR_WILL_TOPIC,      /* invalid will topic */
    MQTT_ERR_QOS,             /* PUBLISH QoS above max-qos */
    MQTT_ERR_CONNECT_TIMEOUT, /* no CONNECT in time */
    MQTT_ERR_KEEPALIVE,       /* keepalive timeout [MQTT-3.1.2-24] */
    MQTT_ERR_SERVER_FULL,     /* CONNECT refused: max-connections reached */
    MQTT_ERR_EMPTY_ID,        /* CONNECT refused: empty client id with clean session 0 */
    MQTT_ERR_NOT_AUTHORIZED,  /* CONNECT refused: anonymous not allowed */
    MQTT_ERR_BAD_CREDENTIALS, /* CONNECT refused: bad username or password */
    MQTT_ERR_NO_MEMORY,       /* out of memory */
    MQTT_ERR_DISCONNECT,      /* the client sent DISCONNECT: closed, will discarded */
    /* MQTT 5 only: */
    MQTT_ERR_DISCONNECT_WILL,   /* DISCONNECT 0x04: closed, will published [MQTT-3.14.2.1] */
    MQTT_ERR_BAD_AUTH_METHOD,   /* CONNECT refused: an Authentication Method we do not support */
    MQTT_ERR_TOPIC_ALIAS,       /* Topic Alias 0 or above our maximum [MQTT-3.3.2-8/9] */
    MQTT_ERR_ALIAS_UNKNOWN,     /* an empty topic with an alias never set [MQTT-3.3.4-?] */
    MQTT_ERR_SUBID_FROM_CLIENT, /* PUBLISH with a Subscription Identifier [MQTT-3.3.4-6] */
    MQTT_ERR_RECEIVE_MAX,       /* more unacknowledged QoS 2 PUBLISHes than our Receive Maximum */
    MQTT_ERR_EXPIRY_FROM_ZERO,  /* DISCONNECT sets a Session Expiry after 0 [MQTT-3.14.2-2] */
    MQTT_ERR_PAYLOAD_FORMAT,    /* Payload Format Indicator 1 but not UTF-8 [MQTT-3.3.2.3.2] */
    MQTT_ERR_RETAIN_UNAVAIL,    /* (reserved) */
    MQTT_ERR_TAKEN_OVER,        /* another connection took the client id [MQTT-3.1.4-3] */
    MQTT_ERR_SHUTDOWN,          /* the server is shutting down */
    MQTT_ERR_AUTH_PACKET,       /* AUTH outside an authentication exchange */
    MQTT_ERR_KEEPALIVE_LONG,    /* CONNECT refused (3.1.1): keepalive above max-keepalive */
    MQTT_ERR__COUNT
};

/* The one place an MQTT error becomes a close: its answer, one log line, counted. */
void mqtt_close(struct conn *c, int err);
/* Decode and dispatch every complete packet in data[0..len); returns the bytes consumed. Stops
 * early when the connection closes, is held for the cluster, or is paused (flow.gate). */
size_t mqtt_parse(struct conn *c, const uint8_t *data, size_t len);
/* Parse what c->in holds (after a read into it, a resume, a held CONNECT's finish). */
void mqtt_input(struct conn *c);
/* While paused: take the acks and PINGREQs out of c->in and handle them ahead of the PUBLISHes
 * that wait. */
void mqtt_skim(struct conn *c);

/* ---- handle_*.c: one handler per packet type; each returns as mqtt_close takes ---- */

int handle_connect(struct conn *c, const struct mqtt_packet *p);
/* The second half of CONNECT: the session, CONNACK, what the session has waiting. */
int connect_finish(struct conn *c);
int handle_publish(struct conn *c, const struct mqtt_packet *p);
int handle_subscribe(struct conn *c, const struct mqtt_packet *p);
int handle_unsubscribe(struct conn *c, const struct mqtt_packet *p);
/* PUBACK, PUBREC, PUBREL, PUBCOMP (reason: the v5 reason code, 0 for 3.1.1). */
int handle_ack(struct conn *c, enum mqtt_type type, uint16_t id, uint8_t reason);
int handle_pingreq(struct conn *c);
int handle_disconnect(struct conn *c, const struct mqtt_packet *p);
int handle_auth(struct conn *c, const struct mqtt_packet *p);

/* ---- conn5.c: what MQTT 5 adds to a connection ---- */

/* The v5 state for c (allocated at a v5 CONNECT). 0 or -1. */
int conn5_init(struct conn *c);
void conn5_free(struct conn *c);
/* Send a v5 ack (PUBACK..PUBCOMP) with a reason code. -1 as conn_write. */
int conn5_send_ack(struct conn *c, enum mqtt_type type, uint16_t id, uint8_t reason);
/* Send DISCONNECT with reason (server side [MQTT-3.14.2]) and, if the client allows reason
 * strings, why. -1 as conn_write. */
int conn5_send_disconnect(struct conn *c, uint8_t reason, const char *why);
/* The same with a Server Reference (NULL: none) [MQTT-4.11]. */
int conn5_send_disconnect_ref(struct conn *c, uint8_t reason, const char *why, const char *ref);
/* Whether msg at qos fits the client's Maximum Packet Size as conn_send_publish would encode it
 * for c [MQTT-3.1.2-24]. */
bool conn5_publish_fits(struct conn *c, const struct message *msg, uint8_t qos);
/* conn_send_publish for a v5 connection: the message's properties, its expiry left, the
 * session's matching Subscription Identifiers. */
int conn5_send_publish(struct conn *c, struct message *msg, uint8_t qos, uint16_t id, bool dup,
                       bool retain);
/* Resolve or set the inbound Topic Alias of a PUBLISH: topic and len are updated for an empty
 * topic. MQTT_OK or an MQTT_ERR_*. */
int conn5_alias(struct conn *c, uint16_t alias, const char **topic, size_t *len);

#endif
