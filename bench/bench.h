/*
 * bench.h - solbench, the MQTT load generator: shared types of its three parts.
 *
 *   bench_stats.c   the payload header every message carries, the latency histogram and the per
 *                   (publisher, subscriber) accounting of lost, duplicated and out-of-order messages;
 *   bench_io.c      non-blocking sockets on one epoll loop: whole-buffer reads decoded packet by
 *                   packet, writes coalesced per connection and flushed once per loop turn;
 *                   optionally TLS (OpenSSL on the same non-blocking sockets, --tls);
 *   bench_opts.c    the command line;
 *   bench_mqtt.c    the MQTT client flows (QoS 0/1/2 both ways, 3.1.1 or 5): what each connection
 *                   sends, and what it does with every packet the broker sends;
 *   solbench.c      the run phases, the event loop, main();
 *   bench_props.c   MQTT 5 User Properties: the block every PUBLISH carries and its check;
 *   bench_report.c  the summary and the RESULT line.
 *
 * No globals: everything lives in one struct bench owned by main().
 */
#ifndef SOL_BENCH_H
#define SOL_BENCH_H

#include <netinet/in.h>
#include <sys/resource.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "codec.h"

/* ---- Payload header (bench_stats.c) ---- */

/* Every payload starts with this header, little-endian, then filler up to the payload size. */
#define BENCH_HDR_SIZE 32
#define BENCH_MAGIC 0x424c4f53u /* "SOLB" */

enum bench_kind {
    BENCH_KIND_DATA = 1,  /* counted message */
    BENCH_KIND_PROBE = 2, /* route probe sent before the run; never counted */
};

struct bench_hdr {
    uint32_t run_id;
    uint32_t pub_id;
    uint64_t seq;     /* 0, 1, 2 ... per publisher */
    uint64_t send_ns; /* CLOCK_MONOTONIC at encoding time */
    uint8_t kind;
};

/* Write h into buf[0..BENCH_HDR_SIZE). */
void bench_hdr_write(uint8_t *buf, const struct bench_hdr *h);
/* Parse a payload: 0 and h filled, or -1 if it is not a solbench payload. */
int bench_hdr_read(const uint8_t *buf, size_t len, struct bench_hdr *h);

/* ---- MQTT 5 User Properties (bench_props.c) ---- */

/* Each User Property is BENCH_PROP_SIZE bytes on the wire: identifier, name "kNN", and as value the
 * message's sequence number in 8 hex digits, so a subscriber can tell the properties it got belong
 * to the very message they came with. */
#define BENCH_PROP_SIZE 16
#define BENCH_USER_PROPS_MAX 100 /* names k00..k99 */

/* The property bytes of a PUBLISH with n User Properties (n * BENCH_PROP_SIZE bytes, no length
 * field), values zero; bench_props_stamp() puts the sequence number in. NULL if out of memory. */
uint8_t *bench_props_new(uint32_t n);
/* Write seq into every value of the block. */
void bench_props_stamp(uint8_t *props, uint32_t n, uint64_t seq);
/* True if v holds exactly n User Properties, in order, as bench_props_stamp(seq) wrote them. */
bool bench_props_check(const struct props_view *v, uint32_t n, uint64_t seq);
/* Check stamp, parse and check against known inputs (solbench --self-test). */
int bench_props_selftest(char *err, size_t errlen);

/* ---- Latency histogram: log-linear buckets, 64 per power of two (<1.6% error) ---- */

#define HIST_SUB_BITS 6
#define HIST_MAX_EXP 40 /* values up to 2^41 ns (~36 min); larger ones go to the last bucket */
#define HIST_BUCKETS ((HIST_MAX_EXP - HIST_SUB_BITS + 2) << HIST_SUB_BITS)

struct hist {
    uint64_t count;
    uint64_t min;
    uint64_t max;
    uint64_t buckets[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, uint64_t v);
/* Value at percentile p (0..100), as the upper edge of its bucket, clamped to max; 0 if empty. */
uint64_t hist_percentile(const struct hist *h, double p);

/* ---- What one subscriber received from one publisher ---- */

struct pair {
    uint64_t *seen;     /* bitmap of sequence numbers received */
    uint64_t seen_bits; /* bitmap capacity in bits */
    uint64_t unique;    /* distinct sequence numbers received */
    uint64_t dup;       /* receptions of a sequence number already received */
    uint64_t ooo;       /* new sequence numbers arriving after a higher one */
    uint64_t next_seq;  /* highest sequence number received + 1 */
    bool probed;        /* a route probe from this publisher arrived */
};

enum pair_result { PAIR_NEW = 0, PAIR_DUP = 1, PAIR_OOO = 2, PAIR_NOMEM = -1 };

/* Account one reception of seq. */
int pair_record(struct pair *p, uint64_t seq);
void pair_free(struct pair *p);

/* Check the header, histogram and pair accounting against known inputs (solbench --self-test). */
int bench_stats_selftest(char *err, size_t errlen);

/* ---- Connections and the loop (bench_io.c) ---- */

enum conn_role { ROLE_PUB = 0, ROLE_SUB = 1, ROLE_IDLE = 2 };

enum conn_state {
    CS_NEW = 0,      /* not started yet */
    CS_TCP,          /* non-blocking connect in progress */
    CS_TLS,          /* --tls: TLS handshake in progress */
    CS_CONNECT_SENT, /* CONNECT written, waiting for CONNACK */
    CS_SUBSCRIBING,  /* SUBSCRIBE written, waiting for SUBACK */
    CS_READY,        /* usable */
    CS_CLOSED,       /* closed by us at the end */
    CS_FAILED,       /* refused, reset or closed by the broker */
};

struct conn {
    int fd;
    uint8_t role;
    uint8_t state;
    bool dirty;          /* has bytes to write and is on the dirty list */
    bool want_out;       /* EPOLLOUT registered (a write was partial or connect pending) */
    uint32_t index;      /* publisher, subscriber or idle number */
    uint32_t addr_index; /* which 127.0.0.x and which broker address */
    uint8_t *out;        /* bytes to write: out[out_off..out_len) */
    uint32_t out_off, out_len, out_cap;
    uint8_t *carry; /* partial packet left over from the last read */
    uint32_t carry_len, carry_cap;
    struct ssl_st *ssl; /* --tls: OpenSSL's SSL of this connection, else NULL */
};

struct bench; /* defined below */

/* Called for every complete packet read from c; returns 0, or -1 to fail the connection. */
typedef int (*io_packet_fn)(struct bench *b, struct conn *c, const struct mqtt_packet *pkt);

struct bench_io {
    int epfd;
    uint8_t level;    /* MQTT protocol level packets are decoded at: 4 (3.1.1) or 5 */
    uint8_t *scratch; /* one big read buffer shared by all connections */
    size_t scratch_cap;
    struct conn **dirty; /* connections with pending output, flushed once per loop turn */
    size_t ndirty, dirty_cap;
    uint64_t reads, writes; /* syscall counts, for the report */
    uint64_t bytes_in, bytes_out;
    struct ssl_ctx_st *tls; /* --tls: the client context, else NULL */
    char tls_name[64];      /* --tls-name: SNI and the name the certificate must carry */
    char tls_desc[64];      /* protocol/cipher of the first handshake, for the report */
    char tls_err[128];      /* why the last handshake or TLS read/write failed */
};

int io_init(struct bench_io *io, size_t max_conns, size_t scratch_cap);
void io_free(struct bench_io *io);

/* Start a non-blocking connect from src (0 = let the kernel pick) to dst; c->state becomes CS_TCP.
 * Returns 0 or -errno. */
int io_connect(struct bench_io *io, struct conn *c, uint32_t src_ip_be,
               const struct sockaddr_in *dst);
/* Finish a pending connect after EPOLLOUT: 0 connected, -errno failed. */
int io_connect_result(struct bench_io *io, struct conn *c);

/* Space for n more output bytes (NULL if out of memory); io_commit() then queues them. */
uint8_t *io_reserve(struct bench_io *io, struct conn *c, size_t n);
void io_commit(struct bench_io *io, struct conn *c, size_t n);
/* Bytes queued and not yet written. */
static inline size_t io_pending(const struct conn *c)
{
    return c->out_len - c->out_off;
}

/* Called for a connection whose socket failed while flushing (err is -errno). */
typedef void (*io_fail_fn)(struct bench *b, struct conn *c, int err);

/* Write every dirty connection once; fail is called for each one whose socket failed. */
void io_flush(struct bench_io *io, struct bench *b, io_fail_fn fail);
/* Write one connection after EPOLLOUT: 0 or -errno. */
int io_write_ready(struct bench_io *io, struct conn *c);

/* Read what is available on c and call fn for each whole packet. Returns 0, -1 on a decode error or
 * a callback failure, or -errno (ECONNRESET for an orderly close by the peer). */
int io_read(struct bench_io *io, struct bench *b, struct conn *c, io_packet_fn fn);

/* --tls: a client context; with cafile the broker's certificate must chain to it (and carry name,
 * if not NULL), without it nothing is verified. Returns 0, or -1 with err filled. */
int io_tls_init(struct bench_io *io, const char *cafile, const char *name, char *err,
                size_t errlen);
/* After the TCP connect: start (or continue, on later events) the TLS handshake of c.
 * Returns 1 done, 0 in progress (c->state CS_TLS), -EPROTO failed (io->tls_err says why). */
int io_tls_handshake(struct bench_io *io, struct conn *c);

/* Close the socket and drop buffers; state is left for the caller to set. */
void io_close(struct bench_io *io, struct conn *c);

/* What c is, for error messages. */
static inline const char *conn_role_name(const struct conn *c)
{
    return c->role == ROLE_PUB ? "publisher" : c->role == ROLE_SUB ? "subscriber" : "idle";
}

/* CLOCK_MONOTONIC in ns: every time stamp of a run (latency, phases, the loop's timeouts). */
static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- Options (bench_opts.c) ---- */

struct bench_opts {
    char host[64]; /* broker for publishers and idle connections */
    uint16_t port;
    char sub_host[64]; /* broker for subscribers (another cluster node); default: host */
    uint16_t sub_port;
    uint32_t npub, nsub, nidle;
    uint8_t qos;          /* publish QoS */
    uint8_t sub_qos;      /* subscription QoS; default: qos */
    size_t size;          /* payload bytes, >= BENCH_HDR_SIZE */
    bool shared_topic;    /* one topic for all publishers instead of one each */
    bool wildcard;        /* subscribe with a wildcard filter instead of exact topics */
    uint32_t window;      /* QoS 1/2: max unacknowledged PUBLISH per publisher */
    double duration;      /* seconds of publishing (unless count) */
    uint64_t count;       /* messages per publisher; 0 = use duration */
    double rate;          /* total msgs/s over all publishers; 0 = as fast as possible */
    uint64_t max_lag;     /* closed loop: deliveries in flight over all publishers x subscribers:
                             each publisher stays max_lag/(npub*nsub) ahead of its slowest
                             subscriber; 0 = open loop */
    bool open_loop;       /* publishers never look at subscriber progress (max_lag is 0) */
    bool max_lag_set;     /* --max-lag given */
    bool drain_tmo_set;   /* --drain-timeout given */
    uint32_t src_addrs;   /* spread connections over 127.0.0.1 .. 127.0.0.N (1 = kernel's choice) */
    uint32_t max_pending; /* connects in progress at once */
    double hold;          /* idle-only runs: seconds to hold the connections */
    double connect_timeout, sync_timeout, drain_idle;
    double drain_timeout; /* 0 = no limit (the open-loop default) */
    uint16_t keepalive;
    uint32_t run_id;
    char prefix[64];
    bool check; /* exit 3 if anything was lost or duplicated */
    bool quiet;
    bool self_test;         /* run bench_stats_selftest() and exit */
    bool mqtt5;             /* MQTT 5 instead of 3.1.1 */
    uint32_t user_props;    /* User Properties per PUBLISH (MQTT 5) */
    bool sub_persistent;    /* --clean 0: subscribers keep a persistent session (v5: expiry 1 h) */
    char client_prefix[32]; /* client ids are PREFIX-p0, -s0, -i0; default sb-RUNID */
    bool tls;               /* --tls: every connection over TLS */
    char cafile[256];       /* --cafile: verify the broker's certificate against it */
    char tls_name[64];      /* --tls-name: SNI and the name checked in the certificate */
};

/* Parse argv into o (defaults first). Returns 0, 1 after --help, or -1 after printing an error. */
int bench_opts_parse(struct bench_opts *o, int argc, char **argv);

/* ---- The run (solbench.c) and its report (bench_report.c) ---- */

enum phase { PH_SETUP, PH_SYNC, PH_RUN, PH_DRAIN, PH_HOLD, PH_DONE };

struct publisher {
    struct conn c; /* first: a struct conn * of role ROLE_PUB is a struct publisher * */
    uint64_t seq;  /* data messages sent so far = next sequence number */
    uint64_t acked;
    uint32_t unacked;
    uint32_t window; /* --window, or less if the broker's MQTT 5 Receive Maximum says so */
    uint16_t next_id;
    uint64_t *inflight; /* QoS 1/2: bitmap of packet ids awaiting PUBACK / PUBCOMP */
    char topic[128];
    uint16_t topic_len;
};

struct subscriber {
    struct conn c;      /* first, as above */
    struct pair *pairs; /* one per publisher */
};

/* The whole state of one run (solbench.c); bench_report.c reads it at the end. */
struct bench {
    struct bench_opts o;
    struct bench_io io;
    struct publisher *pubs;
    struct subscriber *subs;
    struct conn *idle;
    struct conn **order; /* start order: subscribers, publishers, idle */
    size_t nconns, next_start, pending;
    struct sockaddr_in pub_addr, sub_addr;
    int sigfd;
    enum phase phase;
    uint8_t *payload;
    uint8_t *props; /* MQTT 5: the PUBLISH property block (--user-props), NULL for none */
    size_t props_len;
    struct hist hist;
    uint64_t now, t_start, t_setup_done, t_run_start, t_run_end, t_drain_start, t_last_event,
        t_last_recv, t_last_sync, t_last_ping, t_end;
    uint64_t ready_pubs, ready_subs, ready_idle, failed_idle;
    uint64_t generated;   /* messages generated in the last loop turn */
    uint64_t lag_per_pub; /* --max-lag deliveries shared out over publishers and subscribers */
    uint64_t probes_seen, unique, dup, ooo, foreign, delivered, bad_acks;
    uint64_t prop_bad; /* MQTT 5: deliveries whose User Properties were not the ones sent */
    uint64_t ack_fail; /* MQTT 5: PUBACK / PUBREC with a failure reason code (>= 0x80) */
    uint32_t recv_max; /* smallest Receive Maximum in a CONNACK; 0 = none sent */
    struct rusage ru_start, ru_end;
    uint64_t reads_start, writes_start;
    int exit_code;
    char err[256];
};

/* Record the first fatal error of the run (solbench.c): the loop ends and the report says why. */
__attribute__((format(printf, 2, 3))) void bench_fail(struct bench *b, const char *fmt, ...);

/* Print the human summary (unless --quiet) and the RESULT line; returns the exit code. */
int bench_report(struct bench *b);

/* ---- The MQTT client flows (bench_mqtt.c) ---- */

/* After the TCP (and TLS) handshake: queue CONNECT; c->state becomes CS_CONNECT_SENT. 0, or -1 if
 * out of memory. */
int bench_mqtt_connect(struct bench *b, struct conn *c);
/* Bytes of one PUBLISH of this run on a topic of topic_len at qos. */
size_t bench_mqtt_publish_size(const struct bench *b, size_t topic_len, uint8_t qos);
/* Queue one PUBLISH of kind (BENCH_KIND_DATA at --qos with the next sequence number, or a QoS 0
 * route probe) on p. 0, or -1 if out of memory. */
int bench_mqtt_publish(struct bench *b, struct publisher *p, uint8_t kind);
/* Every packet the broker sends (an io_packet_fn): acks, deliveries, the handshake's answers.
 * Anything out of place is a protocol error: -1. */
int bench_mqtt_on_packet(struct bench *b, struct conn *c, const struct mqtt_packet *pkt);

#endif
