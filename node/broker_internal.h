/*
 * broker_internal.h - the broker's state and the functions its files share. Not part of the public
 * face (broker.h): only the files in node/ include it.
 *
 * Ownership in one paragraph: struct broker owns the listener, every struct conn (until libuv's
 * close callback frees it), every struct session (in b->sessions, keyed by client id), the
 * subscription tree and the retained store. A conn points at its session while attached; a session
 * points back at its conn while the client is online. Messages are refcounted: each queue slot,
 * in-flight slot and retained entry holds one reference.
 */
#ifndef SOL_BROKER_INTERNAL_H
#define SOL_BROKER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "acl.h"
#include "auth.h"
#include "broker.h"
#include "codec.h"
#include "flow.h"
#include "idset.h"
#include "message.h"
#include "retain.h"
#include "strmap.h"
#include "topic.h"

#define BROKER_READ_CHUNK (64 * 1024) /* shared read buffer: one read drains a socket buffer */
#define BROKER_OUT_PAUSE (16 << 20)   /* a client this far behind is not read from */
#define BROKER_PAUSED_INPUT_MAX (256 * 1024) /* a paused publisher's input read ahead for acks */
#define BROKER_CONNECT_TIMEOUT_MS 10000      /* a socket must send CONNECT within this */
#define BROKER_TICK_MS 250                   /* keepalive and timeout sweep period */

/* ---- sessions (session.c) ---- */

struct session_sub {
    char *filter;
    uint8_t qos;
};

enum inflight_state {
    INFLIGHT_PUBLISH_SENT = 0, /* QoS 1 awaiting PUBACK, QoS 2 awaiting PUBREC */
    INFLIGHT_PUBREL_SENT = 1,  /* QoS 2 awaiting PUBCOMP */
};

struct inflight {
    struct message *msg; /* NULL once PUBREL was sent */
    uint16_t id;
    uint8_t qos;
    uint8_t state;
    bool retain; /* a retained message sent for a new subscription */
};

struct queued {
    struct message *msg;
    uint32_t bytes; /* its PUBLISH encoding at qos, counted in the session's queued_bytes */
    uint8_t qos;
    bool retain;
};

/* A session's QoS 1/2 state, allocated the first time it has any: most sessions (idle devices,
 * QoS 0 subscribers) never do, and one of those holds a pointer to an empty, read-only instance
 * instead (session_qos_none in session.c), so readers need no NULL checks. */
struct session_qos {
    struct inflight *inflight; /* ring: ninflight entries from ihead, icap (a power of two) slots */
    struct queued *queue;      /* ring: qlen entries from qhead, qcap slots */
    struct idset out_ids;      /* packet ids in inflight */
    struct idset rx_ids;       /* inbound QoS 2 ids received, PUBREL not yet */
    size_t queued_bytes;       /* encoded size of what waits in queue */
    uint32_t ihead, ninflight, icap;
    uint32_t nrel; /* in-flight entries waiting for PUBCOMP: the first nrel of the ring */
    uint32_t qhead, qlen, qcap;
    uint16_t next_id;
};

struct session {
    /* Pointers first, small counters packed last: there is one of these per client, online or not.
     */
    char *client_id;
    char *username;    /* of the connection now or last attached; NULL = anonymous */
    struct conn *conn; /* NULL while offline */
    struct session_sub *subs;
    struct strmap sub_index; /* filter -> its index in subs + 1 (keys are subs[i].filter) */
    struct session_qos *q;   /* never NULL (see struct session_qos) */
    uint64_t match_gen;      /* dedupe overlapping subscriptions during one routing pass */
    struct flow_gate gate;   /* publishers paused because this session is behind */
    uint64_t progress_ms;    /* last time it was under backlog_high or took bytes or an ack */
    size_t id_len;
    uint32_t nsubs, subs_cap;
    bool clean;
    bool stalled; /* no progress for stall-timeout (or over session-max-bytes): pauses nobody */
    uint8_t match_qos;
};

/* The k-th in-flight entry, oldest first (k < s->q->ninflight). */
static inline struct inflight *session_inflight_at(const struct session *s, uint32_t k)
{
    return &s->q->inflight[(s->q->ihead + k) & (s->q->icap - 1)];
}

/* ---- connections (conn.c) ---- */

enum conn_state {
    CONN_NEW = 0, /* socket accepted, waiting for CONNECT */
    CONN_HELD,    /* CONNECT accepted, waiting for the cluster (broker_connect_resume) */
    CONN_ACTIVE,  /* CONNACK sent */
    CONN_CLOSING, /* uv_close called; freed in the close callback */
};

struct conn {
    uv_tcp_t tcp;            /* first: the handle's address is the conn's */
    struct flow_source flow; /* as a publisher: paused while a subscriber it feeds is behind */
    /* Pointers first, small fields packed last: one of these per socket, most of them idle. */
    struct broker *b;
    struct session *session;
    struct conn *prev, *next; /* b->conns */
    struct conn *dirty_next;  /* b->dirty: has output to flush this loop turn */
    struct conn_write *write; /* the uv_write in flight, if any */
    uint8_t *in;              /* partial packet carried between reads (NULL when none) */
    uint8_t *out;             /* coalesced output of this loop turn (NULL when none) */
    struct message *will;
    /* CONNECT details, kept while held and freed once the session (which has its own copy) is
     * attached */
    char *client_id;
    char *username;
    uint64_t last_rx_ms; /* last complete packet (keepalive); accept time until CONNECT */
    uint64_t token;      /* identifies a held CONNECT to broker_connect_resume */
    uint32_t in_len, in_cap;
    uint32_t skim_off; /* while paused: c->in before this holds no ack (conn_skim) */
    uint32_t out_len, out_cap;
    uint8_t state; /* enum conn_state */
    bool dirty;
    bool got_disconnect; /* DISCONNECT received: no will */
    bool over_limit;     /* accepted beyond --max-connections: CONNACK 0x03 */
    bool read_paused;    /* not read from until it takes our output (BROKER_OUT_PAUSE) */
    bool reading;        /* uv_read_start in effect */
    bool condemned;      /* chosen to free memory over max-conn-memory: closed at flush */
    bool close_at_flush; /* output could not be buffered: takes no more, closed at flush */
    bool clean;
    uint16_t keepalive;
};

/* A write the kernel did not take at once: the request and the buffer it owns. */
struct conn_write {
    uv_write_t req; /* first: the request's address is the struct's */
    struct conn *conn;
    uint8_t *buf;
    size_t cap; /* buf's allocation, counted in the broker's conn_mem */
    size_t len; /* bytes the request still has to write */
};

/* ---- the broker ---- */

struct route_count {
    char *filter;
    size_t count; /* local sessions subscribed to exactly this filter */
};

struct broker {
    uv_loop_t *loop;
    struct sol_config cfg;
    struct logger log;
    uv_tcp_t listener;
    bool listening;
    uv_check_t flush_check; /* flushes dirty connections once per loop turn */
    uv_idle_t flush_idle;   /* keeps poll from blocking while output is pending */
    uv_timer_t tick;        /* keepalive / timeouts */
    uv_timer_t sys_timer;   /* $SYS updates */
    uint8_t *read_buf;      /* shared by every connection's reads (single thread) */
    struct conn *conns;
    size_t open_conns; /* sockets, CONNECTed or not */
    struct conn *dirty;
    struct strmap sessions;  /* client id -> struct session */
    struct strmap routes;    /* filter -> struct route_count */
    struct topic_tree *subs; /* filter -> struct session */
    struct retain_store *retained;
    struct acl *acl;
    struct auth *auth;
    struct broker_hooks hooks;
    struct broker_stats stats;
    struct flow_source *flow_current; /* source of the delivery in progress (flow.h) */
    struct flow_source *flow_ready;   /* released sources, resumed at the next check phase */
    size_t conn_mem;                  /* bytes in connections' input and output buffers */
    size_t conn_mem_condemned;        /* of those, held by connections closed at this flush */
    uint64_t start_ms;
    uint64_t match_gen;
    struct session **matched; /* scratch for routing */
    size_t matched_cap, match_count;
    uint64_t next_token;
    uint64_t id_prefix;  /* random per process: generated client ids are unique across a cluster */
    uint64_t id_counter; /* generated client ids */
    bool shutting_down;
    int handles_open; /* listener, check, idle, timers: counted down by close callbacks */
    void (*shutdown_done)(void *ctx);
    void *shutdown_ctx;
};

uint64_t broker_now_ms(const struct broker *b);

/* flow.c */
void flow_run_ready(struct broker *b);

/* conn.c */
void conn_on_accept(uv_stream_t *server, int status);
void conn_flush_all(uv_check_t *check);
void conn_close(struct conn *c, const char *why);
void conn_protocol_error(struct conn *c, const char *why);
int conn_write(struct conn *c, const uint8_t *data, size_t len);
uint8_t *conn_reserve(struct conn *c, size_t len);
void conn_commit(struct conn *c, size_t len);
int conn_send_publish(struct conn *c, struct message *msg, uint8_t qos, uint16_t id, bool dup,
                      bool retain);
void conn_process_input(struct conn *c);
void conn_read_start(struct conn *c);
const char *conn_peer(const struct conn *c, char *buf, size_t len);
void conn_sweep(struct broker *b);
/* Unsent output: this turn's buffer plus what an unfinished write still holds. */
size_t conn_backlog(const struct conn *c);

/* session.c */
struct session *session_get(struct broker *b, const char *client_id, size_t len);
struct session *session_create(struct broker *b, const char *client_id, size_t len, bool clean);
void session_destroy(struct broker *b, struct session *s);
int session_subscribe(struct broker *b, struct session *s, const char *filter, size_t len,
                      uint8_t qos);
bool session_unsubscribe(struct broker *b, struct session *s, const char *filter, size_t len);
void session_deliver(struct broker *b, struct session *s, struct message *msg, uint8_t qos,
                     bool retain);
void session_resume(struct broker *b, struct session *s);
void session_pump(struct broker *b, struct session *s);
bool session_ack(struct broker *b, struct session *s, enum mqtt_type type, uint16_t id);
bool session_rx_qos2_has(const struct session *s, uint16_t id);
int session_rx_qos2_add(struct session *s, uint16_t id);
void session_rx_qos2_del(struct session *s, uint16_t id);
void session_detach(struct broker *b, struct session *s);
/* The session's connection took bytes (or it got an ack): it is making progress; under
 * backlog_low its publishers resume. */
void session_progress(struct broker *b, struct session *s);
/* Visit the session's complete state (broker.h, struct session_visitor). */
void session_snapshot(const struct session *s, const struct session_visitor *v);
/* Restore one outbound message with its id and state (broker_session_restore_msg). */
int session_restore_msg(struct broker *b, struct session *s, struct message *msg,
                        const struct session_msg_info *info);
void session_restore_next_id(struct session *s, uint16_t next_id);
/* Periodic: a session that blocks publishers and made no progress for stall-timeout stalls. */
void session_check_stall(struct broker *b, struct session *s, uint64_t now);

/* broker.c */
void broker_publish(struct broker *b, struct message *msg, bool from_local_client);
int broker_publish_packet(struct broker *b, const char *topic, size_t topic_len,
                          const uint8_t *payload, size_t payload_len, uint8_t qos, bool retain);
void broker_deliver_local(struct broker *b, struct message *msg);
void broker_send_retained(struct broker *b, struct conn *c, const char *filter, size_t len,
                          uint8_t granted);
bool broker_acl_allows(const struct broker *b, const struct session *s, const char *topic,
                       size_t len, enum acl_access access);
void broker_route_ref(struct broker *b, const char *filter, size_t len);
void broker_route_unref(struct broker *b, const char *filter, size_t len);

/* handle_*.c: one handler per packet type */
void handle_connect(struct conn *c, const struct mqtt_connect *p);
void connect_finish(struct conn *c);
void handle_publish(struct conn *c, const struct mqtt_publish *p);
void handle_subscribe(struct conn *c, const struct mqtt_list *l);
void handle_unsubscribe(struct conn *c, const struct mqtt_list *l);
void handle_ack(struct conn *c, enum mqtt_type type, uint16_t id);
void handle_pingreq(struct conn *c);
void handle_disconnect(struct conn *c);

/* sys.c */
void sys_publish(struct broker *b);

#endif
