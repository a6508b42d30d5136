/*
 * membership_int.h - internals shared by the membership_*.c files (not part of the public
 * interface).
 *
 *   membership.c        lifecycle, public accessors, the member table, state merge rules,
 *                       broadcast queue
 *   membership_probe.c  probe tick, direct and indirect probes, suspicion timers, Lifeguard
 *                       awareness, gossip fan-out and periodic push-pull
 *   membership_net.c    UDP socket, datagram encode/decode and validation, dispatch,
 *                       rate-limited warnings
 *   membership_seeds.c  seed parsing, periodic DNS resolution and join requests
 *
 * Times are loop milliseconds (uv_now). Everything runs on one loop: no locks.
 */
#ifndef SOL_MEMBERSHIP_INT_H
#define SOL_MEMBERSHIP_INT_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "membership.h"
#include "seal.h"

#define MB_NAME_MAX 64
#define MB_HOST_MAX 64
#define MB_PROBE_SLOTS 4     /* probes in flight (the probe window can exceed one interval) */
#define MB_RELAY_SLOTS 64    /* indirect probes we relay for others */
#define MB_INDIRECT_K 3      /* helpers asked per indirect probe */
#define MB_GOSSIP_FANOUT 3   /* members sent pending broadcasts each tick */
#define MB_RETRANSMIT_MULT 4 /* a broadcast is sent MULT * ceil(log10(n + 1)) times */
/* Gossip bytes added to a probe datagram: stays under a 1500 MTU */
#define MB_PIGGYBACK_BYTES 1200
#define MB_MAX_DGRAM 61440 /* largest datagram sent or accepted (push-pull of the full state) */
#define MB_MAX_CONFIRM 8   /* independent suspicions remembered per suspect */
#define MB_MAX_AWARENESS 8 /* Lifeguard local health score ceiling */
/* The suspicion timeout starts at 3x the minimum, falls with confirmations */
#define MB_SUSPICION_MAX_MULT 3
#define MB_PUSHPULL_MS 5000        /* anti-entropy full-state exchange period */
#define MB_REAP_MS 60000           /* dead and left members are forgotten after this */
#define MB_GOSSIP_TO_DEAD_MS 30000 /* keep gossiping to a dead member this long: it may refute */
#define MB_JOIN_RETRY_MS 300       /* seed join period until joined */
/* Alone after this long with no seed answering: ready as a cluster of one */
#define MB_JOIN_GRACE_MS 5000
#define MB_WARN_SLOTS 16
#define MB_WARN_EVERY_MS 60000
#define MB_SELF_ADDRS 8
#define MB_SEED_ADDRS 32
#define MB_LEAVE_RESEND_MS 100
#define MB_MAX_MEMBERS 1024     /* a stranger flooding made-up members cannot exhaust memory */
#define MB_PP_ANSWERS_PER_S 100 /* full-state answers per second, at most */

/* One state record, as carried by gossip and push-pull. */
struct mb_state {
    char name[MB_NAME_MAX];
    char host[MB_HOST_MAX];
    uint16_t port;
    uint64_t incarnation;
    enum member_state state;
    char from[MB_NAME_MAX];
};

/* A member as we track it. pub is what the public API returns. */
struct mb_node {
    struct member pub;
    struct sockaddr_storage addr; /* pub.host:pub.port parsed */
    uint64_t state_since;         /* when the state last changed (reaping) */
    uint64_t last_heard;          /* any valid datagram from it */
    uint64_t suspect_start;
    uint64_t suspect_deadline;
    uint64_t confirm[MB_MAX_CONFIRM]; /* hashes of the names that suspected it */
    unsigned n_confirm;
};

struct mb_probe {
    bool active;
    bool indirect_sent;
    uint32_t seq;
    char target[MB_NAME_MAX];
    uint64_t start;
    uint64_t direct_deadline;
    uint64_t final_deadline;
    unsigned nacks_expected;
    unsigned nacks_got;
};

struct mb_relay {
    bool active;
    uint32_t seq;       /* our ping to the target */
    uint32_t their_seq; /* the requester's probe */
    struct sockaddr_storage requester;
    uint64_t deadline;
};

struct mb_bcast {
    struct mb_state s;
    unsigned transmits;
};

struct mb_seed {
    char host[256];
    char port[8];
    uv_getaddrinfo_t *req; /* in flight, or NULL */
    struct sockaddr_storage addrs[MB_SEED_ADDRS];
    unsigned n_addrs;
    bool resolved; /* at least one lookup succeeded */
};

struct mb_warn {
    struct sockaddr_storage src;
    uint64_t last;
};

struct membership {
    uv_loop_t *loop;
    const struct logger *log;
    struct cluster_config cfg;
    membership_change_fn on_change;
    void *ctx;

    uv_udp_t udp;
    uv_timer_t tick_timer;     /* probe + gossip period */
    uv_timer_t deadline_timer; /* nearest probe/relay/suspicion/leave deadline */
    uv_timer_t dns_timer;      /* seed resolution and joins */
    uv_timer_t pp_timer;       /* periodic push-pull */
    int open_handles;          /* handles not yet closed */
    int pending_reqs;          /* getaddrinfo and async sends in flight */
    bool stopping;

    struct mb_node **nodes; /* nodes[0] is self */
    size_t n_nodes;
    size_t cap_nodes;
    size_t probe_index;

    struct mb_probe probes[MB_PROBE_SLOTS];
    struct mb_relay relays[MB_RELAY_SLOTS];
    struct mb_bcast *bq;
    size_t n_bq;
    size_t cap_bq;

    uint32_t seq;
    unsigned awareness;
    uint64_t rng;
    bool wildcard; /* bound to a wildcard address: advertise "" and let peers use the source address
                    */
    bool joined;
    uint64_t start_ms;
    uint64_t next_tick_at;
    uint64_t deadline_armed_for;
    uint64_t last_unknown_pp;
    uint64_t full_warned_at;
    double pp_tokens;
    uint64_t pp_refill_at;

    struct mb_seed *seeds;
    size_t n_seeds;
    struct sockaddr_storage self_addrs[MB_SELF_ADDRS];
    unsigned n_self_addrs;
    struct mb_warn warns[MB_WARN_SLOTS];

    bool leaving;
    void (*leave_done)(void *ctx);
    void *leave_ctx;
    uint64_t leave_deadline;
    unsigned leave_resends;

    struct membership_stats stats;
    uint8_t *rxbuf;
    uint8_t *txbuf;
    /* Sealed gossip (seal.h): NULL keys = in the clear. sealbuf holds a datagram being sealed or
     * opened (MB_MAX_DGRAM + SEAL_OVERHEAD). */
    struct seal_keyring *keys;
    struct seal_replay *replay;
    uint8_t *sealbuf;
    bool clear_warned; /* "not encrypted" said: at start with seeds, else at the first peer */
};

/* membership.c */
struct mb_node *membership_node(const struct membership *m, const char *name);
void membership_apply(struct membership *m, const struct mb_state *s, bool from_pushpull);
void membership_state_of(const struct mb_node *n, struct mb_state *out);
void membership_queue_bcast(struct membership *m, const struct mb_state *s);
size_t membership_live_count(const struct membership *m);
uint64_t membership_rand(struct membership *m);
uint64_t membership_hash(const char *s);
void membership_set_state(struct membership *m, struct mb_node *n, enum member_state st);
void membership_handle_closed(uv_handle_t *h);
void membership_maybe_free(struct membership *m);
uint64_t membership_suspicion_min(const struct membership *m);

/* membership_probe.c */
void membership_tick_cb(uv_timer_t *t);
void membership_deadline_cb(uv_timer_t *t);
void membership_pp_cb(uv_timer_t *t);
void membership_arm_deadlines(struct membership *m);
void membership_suspicion_start(struct membership *m, struct mb_node *n, const char *from);
bool membership_suspicion_confirm(struct membership *m, struct mb_node *n, const char *from);
void membership_on_ack(struct membership *m, uint32_t seq, const char *from);
void membership_on_nack(struct membership *m, uint32_t seq);
void membership_on_ping_req(struct membership *m, uint32_t seq, const char *target,
                            const struct sockaddr_storage *target_addr,
                            const struct sockaddr_storage *requester);

/* membership_net.c */
int membership_net_open(struct membership *m, char *err, size_t errlen);
void membership_send_ping(struct membership *m, const struct sockaddr_storage *to, uint32_t seq,
                          const char *target);
void membership_send_ack(struct membership *m, const struct sockaddr_storage *to, uint32_t seq,
                         const struct mb_state *first);
void membership_send_nack(struct membership *m, const struct sockaddr_storage *to, uint32_t seq);
void membership_send_ping_req(struct membership *m, const struct sockaddr_storage *to, uint32_t seq,
                              const struct mb_node *target);
void membership_send_gossip(struct membership *m, const struct sockaddr_storage *to,
                            const struct mb_state *first);
int membership_send_states(struct membership *m, const struct sockaddr_storage *to, bool join,
                           bool response);
int membership_addr_parse(const char *host, uint16_t port, struct sockaddr_storage *out);
bool membership_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
void membership_addr_host(const struct sockaddr_storage *a, char *host, size_t len, uint16_t *port);
bool membership_valid_name(const char *s);
bool membership_is_self_addr(const struct membership *m, const struct sockaddr_storage *a);

/* membership_seeds.c */
int membership_seeds_parse(struct membership *m, const char *list, char *err, size_t errlen);
void membership_dns_cb(uv_timer_t *t);

#endif
