/*
 * cluster_int.h - the cluster's private parts, shared by cluster/cluster*.c only.
 *
 * Modules:
 *
 *   cluster.c           lifecycle, membership events, dispatch of what peers send
 *   cluster_rx.c        the nng transport's receive side: pull0's side of SP over TCP, one link
 *                       per peer connection, paused per peer
 *   cluster_tx.c        its send side: one push0 dialer and queue per peer, batching,
 *                       back-pressure watermarks
 *   cluster_net.c       what both sides share: wbuf, shutdown
 *   cluster_tls.c       mutual TLS on node links, and which peers are trusted (listed, heard)
 *   cluster_routes.c    route replication
 *   cluster_publish.c   forwarding
 *   cluster_retained.c  retained replication: stamps, tombstones and their floor (its state is its
 *                       own, struct retained)
 *   cluster_chunk.c     the chunked sender of full syncs and moved sessions
 *   cluster_wire.c      all hand-written protobuf
 *   cluster_takeover.c  client-id takeover
 *   cluster_replica.c   session replicas: one other node holds each persistent session
 *   cluster_log.c       store and forward: what a peer has not confirmed, kept for it
 *   cluster_move.c      the session-move window: stubs of moved sessions, skipped duplicates
 *   cluster_status.c    what operators see: /cluster, the cluster's metrics and readiness through
 *                       ops/, $SYS
 *   cluster_clock.c     pure logic: HLC, last-writer-wins, version checks
 *
 * Threading: every field is touched on the loop thread only, except those marked "nng threads",
 * which are guarded by the mutex next to them.
 */
#ifndef SOL_CLUSTER_INT_H
#define SOL_CLUSTER_INT_H

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "broker.h"
#include "cluster.h"
#include "cluster.pb-c.h"
#include "cluster_config.h"
#include "flow.h"
#include "log.h"
#include "membership.h"
#include "ops.h"
#include "retain.h"
#include "topic.h"

/* Limits. A frame batches queued envelopes up to FRAME_SOFT_MAX bytes (one bigger envelope goes
 * alone). */
#define CLUSTER_FRAME_SOFT_MAX (256u * 1024u)
/* A peer's stage is handed to its sender as soon as it holds this much, not only at the end of the
 * loop turn: a turn that reads a large burst from clients then streams it to the peer while still
 * parsing, instead of forwarding it all at once after the last read (a store-and-forward step that
 * left the receiving node idle until then: 2.6 -> 3.2 M msg/s through a 3-node cluster). */
#define CLUSTER_KICK_BYTES (128u * 1024u)
#define CLUSTER_CHUNK_MAX (128u * 1024u) /* full-sync and session-transfer chunks */
/* Bytes queued for one peer before dropping. */
#define CLUSTER_PEER_QUEUE_MAX (64u * 1024u * 1024u)
/* Back-pressure on a peer's send queue (docs/cluster.md): past a high watermark of queued bytes the
 * local publisher feeding it is paused (flow.h) until the queue is under a low one. They are
 * CLUSTER_PEER_WATERMARK_FACTOR times a session's --backlog-high / --backlog-low (8 MiB / 2 MiB by
 * default): a peer's queue feeds many subscribers, and whoever lowers the one for memory lowers
 * the other. Between high and QUEUE_MAX envelopes are still taken (the publisher's last read,
 * other publishers until each is paused): nothing is dropped for a peer alive and draining. */
#define CLUSTER_PEER_WATERMARK_FACTOR 8u
/* Received from one peer's link and not handled yet: past this the link stops reading, so TCP
 * pushes back on that peer alone (the loop is behind, or the link is paused). */
#define CLUSTER_LINK_RX_MAX (2u * 1024u * 1024u)
/* Frames handled per wake-up of the loop before it lets I/O and the check phase run again. */
#define CLUSTER_RX_TURN_BYTES (2u * 1024u * 1024u)
#define CLUSTER_TICK_MS 50
#define CLUSTER_HEARTBEAT_MS 1000
#define CLUSTER_TAKEOVER_TIMEOUT_MS 500
/* A takeover told to wait by a replica holder (its owner suspected) waits this long at most for
 * the owner's answer or its death. Failure detection takes 1-2 s (cluster-membership.md). */
#define CLUSTER_REPLICA_WAIT_MS 10000
/* A replica read back from our store whose owner nobody reports, alive or dead, this long after we
 * are ready: the owner is gone (long enough for a whole cluster's nodes to come back one by one). */
#define CLUSTER_RESTORED_PROMOTE_MS 60000
#define REPLICA_ORIGINS_MAX 64 /* peers whose stream position a replica records */
/* A session that moved away keeps a stub here this long (cluster_move.c): longer than any route
 * delta takes to reach every peer. The new node records what it receives for twice as long. */
#define CLUSTER_MOVE_STUB_MS 5000
/* How long a promoting node waits for its peers' kept messages of a dead node (a takeover of the
 * promoted sessions waits as long), and how long a node that left has its log kept for that. */
#define CLUSTER_HANDOVER_MS 3000
#define CLUSTER_LEFT_LOG_KEEP_MS 60000
#define CLUSTER_MOVE_RECORD_MAX (1u << 22) /* numbers recorded per peer while a move is young */
/* After the join: ready even if a peer never completed its sync */
#define CLUSTER_READY_TIMEOUT_MS 5000
#define CLUSTER_RESYNC_THROTTLE_MS 500
#define CLUSTER_LOG_EVERY_MS 60000
#define CLUSTER_CLOSE_WAIT_MS 1000
/* Leaving: at most this long sending sessions (or leave_timeout_ms) */
#define CLUSTER_HANDOFF_FLUSH_MS 2000
/* Quiet heartbeats with different retained digests before a re-sync */
#define CLUSTER_DIGEST_MISSES 3
#define CLUSTER_HLC_MAX_AHEAD_MS (5u * 60u * 1000u) /* clock skew tolerated on retained stamps */
/* A dead peer holds the retained floor back (no tombstone newer than its last agreement is
 * reaped) for this long: a partition that heals sooner loses nothing; see docs/cluster.md. */
#define CLUSTER_TOMB_DEAD_GRACE_MS (10u * 60u * 1000u)
#define CLUSTER_ORIGINS_MAX 1024 /* distinct node names remembered as retained origins */

/* ---- cluster_clock.c: pure logic, unit-tested on its own ---- */

/* Next local HLC stamp: wall milliseconds in the high 48 bits, a counter in the low 16; always
 * greater than every stamp seen before (local or merged). */
uint64_t hlc_next(uint64_t *last, uint64_t wall_ms);
/* Merge a stamp received from a peer so later local stamps order after it. */
void hlc_merge(uint64_t *last, uint64_t remote);
/* Is a received stamp at most CLUSTER_HLC_MAX_AHEAD_MS ahead of our wall clock? */
bool hlc_plausible(uint64_t stamp, uint64_t wall_ms);
/* Last writer wins: is (hlc_a, origin_a) strictly newer than (hlc_b, origin_b)? Ties go to the
 * greater node name, so every node picks the same winner. */
bool lww_newer(uint64_t hlc_a, const char *origin_a, uint64_t hlc_b, const char *origin_b);

enum route_step { ROUTE_APPLY, ROUTE_IGNORE, ROUTE_RESYNC };
/* What to do with a route delta (generation gen, from base to ver) given what we hold for its
 * sender. */
enum route_step route_delta_step(bool synced, uint64_t have_gen, uint64_t have_ver, uint64_t gen,
                                 uint64_t base, uint64_t ver);
/* Does a heartbeat (gen, ver) show that our copy of the sender's routes is stale? */
bool route_version_stale(bool synced, uint64_t have_gen, uint64_t have_ver, uint64_t gen,
                         uint64_t ver);

/* ---- cluster_wire.c: the PUBLISH hot path of the wire format, by hand ---- */

/* The cluster's stamp of a retained value or clear: last writer wins by (hlc, origin). Not part of
 * struct message: only retained state is merged, and only here. */
struct wire_stamp {
    uint64_t hlc;
    const char *origin; /* not NUL-terminated on the wire side */
    size_t origin_len;
};

/* Append a protobuf varint; returns bytes written (at most 10). */
size_t pb_varint(uint8_t *out, uint64_t v);

/* The most bytes wire_frame_entry writes. */
#define WIRE_FRAME_ENTRY_MAX 11
/* Write the Frame field header (tag, length) of one envelope of len bytes about to follow it;
 * returns its bytes. A frame is the concatenation of such entries. */
size_t wire_frame_entry(uint8_t *out, size_t len);

/* A Publish as it lies in a received buffer (nothing NUL-terminated, nothing copied). */
#define WIRE_SHARES_MAX 64 /* shared-group keys one forwarded PUBLISH carries (share.c's limit) */

struct wire_publish {
    const char *topic;
    size_t topic_len;
    const uint8_t *payload;
    size_t payload_len;
    uint64_t qos;
    bool retain;
    struct wire_stamp stamp; /* hlc 0, origin empty: a live PUBLISH */
    uint64_t seq;
    const uint8_t *props; /* MQTT 5 properties passed on (props_len bytes) */
    size_t props_len;
    uint64_t expiry_ms; /* Message Expiry Interval left when it was sent; 0 = never */
    /* Shared groups the sender chose this node for (share.h): their keys, in place. */
    const uint8_t *shares[WIRE_SHARES_MAX];
    size_t shares_len[WIRE_SHARES_MAX];
    size_t nshares;
    bool shares_only;    /* for those groups alone (a redelivery): not for other subscribers */
    bool share_last_hop; /* passed on once already: no member here means a drop */
};

struct wire_envelope {
    const char *sender;
    size_t sender_len;
    unsigned body_field; /* CL__ENVELOPE__BODY_* of the body read last */
    struct wire_publish pub;
};

struct message;
struct wbuf;
/* An encoding planned once (sizes computed once) and written into as many buffers as needed. st
 * (NULL: none, a live PUBLISH) is read when writing: it must outlive the plan. */
struct wire_plan {
    const char *sender;
    size_t sender_len, body_len, total;
    unsigned body_field;
    const struct wire_stamp *st;
    uint64_t expiry_ms; /* msg's expiry left at now (0: none) */
    /* The shared groups this peer is to deliver to (the picks naming it), and whether for them
     * alone; wire_plan_shares sets them after wire_publish_plan. */
    const struct share_pick *picks;
    size_t npicks;
    const void *peer;
    bool shares_only;
};
/* Add to a plan the shared-group picks for peer (the ones of picks[0..n) that name it); returns
 * the new total size. */
size_t wire_plan_shares(struct wire_plan *pl, const struct share_pick *picks, size_t n,
                        const void *peer, bool shares_only);
/* now (the loop's uv_now, the broker's clock) turns msg's expiry time into the time left that the wire carries. */
size_t wire_publish_plan(struct wire_plan *pl, const char *sender, size_t sender_len,
                         unsigned body_field, const struct message *msg,
                         const struct wire_stamp *st, uint64_t seq, uint64_t now);
void wire_write_planned(uint8_t *out, const struct wire_plan *pl, const struct message *msg,
                        uint64_t seq);
/* Envelope{sender, <body_field>: Publish(msg, st, seq)} into a new wbuf. NULL on allocation
 * failure. */
struct wbuf *wire_pack_publish(const char *sender, unsigned body_field, const struct message *msg,
                               const struct wire_stamp *st, uint64_t seq, uint64_t now);
/* What is left of msg's Message Expiry Interval at now, in ms, as the wire carries it: 0 for a
 * message that never expires, at least 1 for one that has not expired yet. */
uint64_t wire_expiry_left(const struct message *msg, uint64_t now);
/* Step through a Frame: 1 with the next envelope's bytes, 0 at the end, -1 if malformed. */
int wire_next_envelope(const uint8_t **pos, const uint8_t *end, const uint8_t **env, size_t *len);
/* Read an envelope: 1 if its body is a Publish or Retain (in out->pub), 0 if another kind (decode
 * it with protobuf-c), -1 if malformed. out->sender is filled in both cases. */
int wire_parse_envelope(const uint8_t *p, size_t n, struct wire_envelope *out);

/* ---- shared structures ---- */

/* One encoded Envelope, shared by every peer queue that sends it. */
struct wbuf {
    atomic_uint refs;
    size_t len;
    uint8_t data[];
};

/* Loop turns and the Publish number each reached, oldest first (cluster_log.c). */
struct turn_marks {
    struct turn_mark {
        uint64_t turn, seq;
    } * v;
    size_t head, n, cap;
};

struct peer {
    struct peer *next;
    struct cluster *c;
    char name[64];
    char host[64];
    uint16_t port;
    char client_addr[256]; /* its MQTT listener as it advertises it (RouteVersion); "" = unknown */
    enum member_state state;
    bool open; /* socket dialed: member alive or suspect */
    /* nng threads: a link dialed to it passed mutual TLS (latched); see cluster_peer_trusted. */
    atomic_bool verified;
    bool listed; /* loop: verified seen by cluster_tls_tick (told in $SYS and the log) */
    bool kick;   /* loop: something queued since the last net_kick */

    /* Its routes (loop). */
    struct topic_tree *routes;
    struct topic_tree *staging; /* RouteSync chunks being received */
    char **staging_shares; /* the shared-group keys among them, told to the broker at the end */
    size_t nstaging_shares, staging_shares_cap;
    bool synced;
    bool retained_synced;
    uint64_t gen, version;
    uint64_t resync_at; /* loop ms of the last SyncRequest we sent it */
    unsigned
        digest_misses; /* consecutive quiet heartbeats whose retained digest differed from ours */
    /* Retained agreement (cluster_retained.c): the last stable stamp it announced, the digest
     * round in which its digest last equalled ours, and since when it is dead (loop ms, 0: not). */
    uint64_t retained_stable, agreed_round, dead_since;

    /* Transmit side (nng threads + loop, under mu). */
    nng_socket sock;
    nng_aio *aio;
    pthread_mutex_t mu;
    /* Staged this loop turn (loop only, no lock), framed like out. */
    uint8_t *stage;
    size_t stage_len, stage_cap, stage_count, stage_dropped;
    size_t backlog; /* loop's copy of out_len - out_head at the last kick */
    uint8_t *out;   /* queued envelopes, framed: [0x0a, varint len, envelope]... from out_head */
    size_t out_head, out_len, out_cap, out_count;
    atomic_bool busy; /* a send is in flight (written under mu; the loop may peek without it) */
    bool accepting;   /* socket open: enqueue allowed */
    bool want_low;    /* under mu: tell the loop when the queue is under the low mark */
    uint64_t tx_dropped;
    uint64_t tx_frames;
    uint64_t tx_done;   /* under mu: frames taken by the pipe (progress, for the stall timeout) */
    uint64_t gone_pubs; /* under mu: PUBLISH envelopes dropped because the link was closed */

    /* Back-pressure (loop). The gate holds the local publishers paused while this peer's queue is
     * over the high watermark; stalled: no progress for stall_timeout_ms while gated, so it
     * pauses nobody (over the hard maximum its messages are dropped) until it drains. */
    struct flow_gate gate;
    bool stalled;
    uint64_t progress_ms, progress_seen; /* last progress, and tx_done then */
    uint64_t pub_dropped_full;           /* PUBLISH envelopes dropped over CLUSTER_PEER_QUEUE_MAX */

    /* Counters (loop). */
    uint64_t fwd_msgs, fwd_bytes;   /* PUBLISH envelopes forwarded to it */
    uint64_t sent_msgs, sent_bytes; /* every envelope queued for it */
    uint64_t rx_msgs, rx_bytes;     /* PUBLISH envelopes received from it */
    uint64_t rx_envelopes;
    uint64_t last_log_ms;

    /* Session replication (cluster_replica.c, loop): turns sent to it and acknowledged, the first
     * not acknowledged; turns of its replicas received here and acknowledged back. */
    uint64_t rep_sent, rep_acked, rep_first;
    uint64_t rep_rx, rep_rx_acked;

    /* Store and forward (cluster_log.c, loop): QoS 1/2 PUBLISH envelopes forwarded to it and not
     * confirmed yet; holding: it is dead and its routes are kept (since hold_since) to log more. */
    uint8_t *log;
    size_t log_head, log_len, log_cap, log_count;
    uint64_t log_dropped;
    bool holding;
    bool
        log_keep; /* it left: its log stays (since hold_since) for a hand-over (cluster_handover.c) */
    uint64_t hold_since;
    /* Forwarded QoS 1/2 PUBLISHes not yet confirmed durable there: the last numbered this turn, and
     * per earlier turn the last one (the turn's acknowledgements wait for it, broker_turn_hold). */
    uint64_t fwd_turn_seq;
    struct turn_marks fwd_marks;
    /* Received from it, per turn the highest number, confirmed back (pub_rx_durable) once the
     * turn is on disk and in the replicas here (--durability sync). */
    struct turn_marks rx_marks;
    uint64_t pub_rx_durable;
    /* Its replicas received here, per turn the highest turn of theirs, acknowledged back
     * (rep_rx_durable) once that turn of ours is on disk: the replicas are in our store too. */
    struct turn_marks rep_marks;
    uint64_t rep_rx_durable;
    bool rep_resync; /* it is sent all it should hold of ours this turn: then an empty drop */
    /* Hand-over asks from it not answered yet: we do not have its routes at that version. */
    struct handover_owed {
        char owner[64];
        uint64_t gen, version;
    } owed[4];
    size_t nowed;
    /* Publish sequence numbers received from it: the highest (duplicates below it are skipped),
     * and the one confirmed back. */
    uint64_t pub_rx_hi, pub_rx_acked, pub_dups;
    /* Session moves (cluster_move.c): the Publish numbers received from it while a moved-in
     * session is young (rising), and the highest number its heartbeat said it had used. */
    uint64_t *win_seqs;
    size_t win_n, win_cap;
    uint64_t seq_horizon;
};

/* How far a node had received another's Publish stream: a session replica's dedup point. */
struct origin_seq {
    char node[64];
    uint64_t seq;
};

/* A frame received on a link, waiting for the loop. */
struct rx_frame {
    struct rx_frame *next;
    size_t len;
    uint8_t data[];
};

enum link_phase { LINK_HELLO_TX, LINK_HELLO_RX, LINK_HEAD, LINK_BODY };

/* One accepted TCP connection on the cluster port: a peer's push0 dialer, spoken to in nng's SP TCP
 * wire format by hand (8-byte hello, then each message as an 8-byte big-endian length and the
 * body), so that each peer's inbound can be paused on its own (a pull0 socket has one queue for
 * all). */
struct rx_link {
    struct rx_link *next; /* c->links (loop) */
    struct cluster *c;
    nng_stream *s;
    nng_aio *aio;
    char from[64]; /* remote address, for logs */

    /* nng side: the aio callback, or whoever un-parks the link (one operation in flight). */
    enum link_phase phase;
    uint8_t hello[8], head[8];
    size_t got;
    struct rx_frame *cur;

    /* Under c->in_mu. */
    struct rx_frame *first, *last; /* received, not handled yet, in order */
    size_t bytes;
    struct rx_link *ready_next;
    bool in_ready; /* on c->rx_ready */
    bool parked;   /* no read posted (paused, full, out of memory): the one who clears it reads */
    bool closed;   /* the stream ended: nothing more will come */
    bool bad;      /* it ended on bad input (before the hello, bad framing): counted once */
    bool paused;   /* written by the loop only: the flow source is paused */

    /* Loop only. */
    size_t off; /* bytes of first already handled (paused in the middle of a frame) */
    struct flow_source src;
};

/* Handle one received frame on the loop; from names the sender's address in logs. Stops after the
 * envelope during which *stop turned true (the link was paused); returns the bytes handled. */
typedef size_t (*cluster_frame_fn)(struct cluster *c, const uint8_t *data, size_t len,
                                   const char *from, const bool *stop);

/* Node link TLS: the files as loaded (PEM text), and the listener's config made from them. */
struct cluster_tls {
    char *cert, *key, *ca;
    nng_tls_config *server;
};

struct log_slot {
    char key[64];
    uint64_t at;
};

struct cluster {
    uv_loop_t *loop;
    struct broker *b;
    const struct cluster_config *cfg; /* &cfg_own */
    struct cluster_config cfg_own;    /* cluster_start's copy */
    /* The node's limits that peer links honour too (read by nng threads; set before any starts):
     * the largest frame taken from a peer (a PUBLISH of max-packet-size and its envelope), and how
     * long a gated peer may make no progress before it stops holding publishers back. */
    size_t max_frame;
    unsigned stall_timeout_ms;
    const struct logger *log;
    char self[64];
    size_t self_len;
    struct membership *ms;
    struct ops *ops; /* the operators' endpoint it is attached to, or NULL */
    bool leaving;
    bool stopping;
    bool ready;              /* latched: joined and synced with every live peer (or timed out) */
    uint64_t ready_deadline; /* loop ms: ready at the latest then (0 = not joined yet) */
    void (*leave_done)(void *ctx);
    void *leave_ctx;

    /* Receive side: nng threads -> each link's frames -> async -> loop. */
    nng_stream_listener *rx;
    nng_aio *accept_aio;
    uv_async_t async;
    bool async_on;
    pthread_mutex_t in_mu;
    struct rx_link *links;      /* every link not freed yet (under in_mu) */
    struct rx_link *rx_ready;   /* links with frames (or closed) for the loop (under in_mu) */
    struct rx_link *rx_current; /* loop: the link whose frame is being handled */
    cluster_frame_fn on_frame;  /* what a received frame is given to (set by net_listen) */
    atomic_bool rx_stop;        /* shutting down: callbacks start nothing new */
    atomic_bool tx_low;         /* a gated peer's queue went under the low watermark */
    /* The peer queues' watermarks (set at start, read-only). */
    size_t tx_high_bytes, tx_low_bytes;
    uint64_t in_dropped;  /* kept at 0: receiving pushes back instead of dropping */
    uint64_t peer_stalls; /* times a gated peer made no progress for stall_timeout_ms */

    uv_timer_t tick;
    uv_check_t kicker; /* end of each loop turn: send what the turn queued */
    bool kicker_on;
    bool kick;
    uv_timer_t leave_timer;
    int handles; /* libuv handles still open */
    uint64_t last_heartbeat;

    struct peer *peers;

    /* Routes owned by this node. */
    struct topic_tree *local;
    uint64_t route_gen, route_version;

    /* Publish and retained (cluster_retained.c). */
    uint64_t hlc, seq;
    struct retained *retained; /* stamps of retained values and clears, digests, the floor */

    struct takeover *takeovers; /* CONNECTs waiting for peers (cluster_takeover.c) */
    struct replicas *rep;       /* session replicas, ours and held (cluster_replica.c) */
    struct moves *moves;        /* stubs of sessions moved away, young moved-in ones */
    size_t nmove_stubs, nmove_ins;
    struct handovers *handovers; /* a dead node's kept messages to its promoted sessions */
    /* Every turn up to turns_stored is on disk here, up to turns_replicated in the replicas. */
    uint64_t turns_stored, turns_replicated;
    bool drop_handoff; /* test-only fault (SOL_TEST_DROP_HANDOFF): hand-offs are lost */

    bool tls_on; /* node links over mutual TLS (set at start) */
    struct cluster_tls tls;

    uint64_t decode_errors;
    uint64_t strangers;
    struct log_slot logged[16];
};

/* ---- cluster.c ---- */
uint64_t cluster_wall_ms(void);
struct peer *cluster_peer_find(struct cluster *c, const char *name);
/* Count a bad frame or envelope; log at most once a minute per key (peer name or address). */
void cluster_bad_input(struct cluster *c, const char *key, const char *what);
/* Pack env (its sender is set here) into a shareable buffer; NULL on allocation failure. */
struct wbuf *cluster_pack(struct cluster *c, Cl__Envelope *env);
/* /readyz: listening, not leaving, joined, and holding the routes and retained messages of every
 * live peer (a full sync done with each), or CLUSTER_READY_TIMEOUT_MS after the join. */
bool cluster_ready(struct cluster *c);

/* ---- cluster_net.c ---- */
/* Shutdown: stop every nng callback, close the sockets (bounded wait), free what was received. */
void net_shutdown(struct cluster *c);
struct wbuf *wbuf_new(size_t len);
void wbuf_unref(struct wbuf *w);

/* ---- cluster_rx.c ---- */
/* Listen for peers; every frame they send is given to on_frame on the loop. */
int net_listen(struct cluster *c, cluster_frame_fn on_frame, char *err, size_t errlen);
/* Loop: let a parked link read again if it may (not closed, under CLUSTER_LINK_RX_MAX); else no-op.
 */
void rx_link_unpark(struct rx_link *l);
/* Loop, or shutdown once its callbacks are stopped: unlink l from c->links and free it. */
void rx_link_free(struct rx_link *l);

/* ---- cluster_tls.c ---- */
/* At start: load the certificate, key and CA if configured; -1 with a reason in err. */
int cluster_tls_init(struct cluster *c, char *err, size_t errlen);
void cluster_tls_free(struct cluster_tls *t);
/* "tls+tcp" or "tcp": the scheme of the cluster port's URLs. */
const char *cluster_tls_scheme(const struct cluster *c);
/* Give the cluster port's listener its TLS config (no-op without TLS). */
int cluster_tls_listener(struct cluster *c, nng_stream_listener *l, char *err, size_t errlen);
/* Give a dialer to p its TLS config (the server must name p->name) and watch its pipes to mark p
 * verified; an nng error code. */
int cluster_tls_dialer(struct peer *p, nng_dialer d);
/* Without TLS every member; with it, only a peer a dialed link authenticated. Its frames are
 * dropped until then, and it is not listed. */
bool cluster_peer_trusted(const struct cluster *c, const struct peer *p);
bool cluster_member_listed(struct cluster *c, const struct member *m);
/* With TLS: does a link from address from (its remote IP) carry p's frames? Only if p is at that
 * address: the listener cannot read the client certificate's name (nng 1.5.2), so a certificate
 * holder elsewhere cannot speak for p. Always true without TLS. */
bool cluster_tls_sender_at(const struct cluster *c, const struct peer *p, const char *from);
/* membership_count over the listed members only. */
size_t cluster_members_listed(struct cluster *c, enum member_state state);
/* Loop tick: peers whose link authenticated since the last tick are listed ($SYS, the log). */
void cluster_tls_tick(struct cluster *c);
/* SIGHUP: re-read the files for links dialed from now on (and the listener if nng lets it). */
void cluster_tls_reload(struct cluster *c);

/* ---- cluster_tx.c ---- */
int peer_open(struct peer *p);
void peer_close(struct peer *p);
int peer_init_tx(struct peer *p);
/* After net_shutdown: free what is left of p's transmit side. */
void peer_free_tx(struct peer *p);
void net_flush(struct cluster *c, unsigned timeout_ms);
int net_start_kicker(struct cluster *c);
void net_kick(struct cluster *c);
/* Tick: retry links parked for want of memory; stall gated peers that made no progress. */
void net_tick(struct cluster *c, uint64_t now);
/* After a PUBLISH was staged for p: past the high watermark, pause the publisher (flow.h). */
void peer_after_forward(struct peer *p);
/* Loop, once a sender reported its queue low (c->tx_low): release p's gate if all of it is low. */
void peer_after_drain(struct peer *p);
/* Queue a copy of w for p (w is not held). False if p is closed or its queue is full (counted as
 * dropped). */
bool peer_send(struct peer *p, struct wbuf *w);
bool peer_send_bytes(struct peer *p, const uint8_t *env, size_t len);
uint8_t *peer_stage(struct peer *p, size_t len);

/* ---- cluster_chunk.c: one state too big for one envelope, sent in chunks ---- */
/* The caller collects items into its own arrays; fill sets env's body from what is pending (the
 * body must live in ctx until the send), release frees the pending items and zeroes their count. */
struct chunker {
    struct cluster *c;
    struct peer *p;
    void (*fill)(void *ctx, Cl__Envelope *env, bool last);
    void (*release)(void *ctx);
    void *ctx;
    size_t bytes; /* estimate of what is pending */
    bool failed;  /* out of memory: collecting stops; the caller decides about the last chunk */
};
/* Room for item n in each of k parallel arrays (*arrs[i] of elem[i]-byte elements, *cap of them).
 * False (and ck->failed) on allocation failure; the arrays stay the caller's to free. */
bool chunk_reserve(struct chunker *ck, size_t *cap, size_t n, void **const arrs[],
                   const size_t elem[], size_t k);
/* An item of about bytes was added: sends what is pending once past CLUSTER_CHUNK_MAX. */
void chunk_added(struct chunker *ck, size_t bytes);
/* Send what is pending as one envelope (last: the final chunk) and release it. False if it could
 * not be packed (out of memory; ck->failed is set). */
bool chunk_flush(struct chunker *ck, bool last);
/* Release what is pending without sending it. */
void chunk_drop(struct chunker *ck);

/* ---- cluster_routes.c ---- */
void routes_hook_add(void *ctx, const char *filter, size_t len);
void routes_hook_del(void *ctx, const char *filter, size_t len);
/* Record a local filter gained outside the broker's hooks (imported session); idempotent. */
void routes_local_add(struct cluster *c, const char *filter, size_t len);
/* A hold on filter's route ended (cluster_move.c): its removal is sent unless a local subscriber
 * has it. */
void routes_local_settle(struct cluster *c, const char *filter, size_t len);
void routes_on_delta(struct cluster *c, struct peer *p, const Cl__RouteDelta *d);
void routes_on_sync(struct cluster *c, struct peer *p, const Cl__RouteSync *s);
void routes_on_version(struct cluster *c, struct peer *p, const Cl__RouteVersion *v);
void routes_send_full(struct cluster *c, struct peer *p);
void routes_heartbeat(struct cluster *c);
/* Forget p's routes (left, restarted, healed: a full sync follows). */
void routes_drop(struct peer *p);
/* p is dead: keep its routes for logging what they match (cluster_log.c), until it comes back or
 * CLUSTER_TOMB_DEAD_GRACE_MS passed; shared groups no longer pick it. */
void routes_hold(struct peer *p);
/* Ask p for whatever we miss of its state (throttled unless force); ask_back: p should ask us too.
 */
void cluster_request_sync(struct cluster *c, struct peer *p, bool force, bool ask_back);
void cluster_on_sync_request(struct cluster *c, struct peer *p, const Cl__SyncRequest *r);

/* ---- cluster_publish.c: forwarding ---- */
size_t publish_hook(void *ctx, struct message *msg, const struct share_pick *picks, size_t npicks,
                    bool shares_only);
void publish_on_remote(struct cluster *c, struct peer *p, const struct wire_publish *wp,
                       bool deliver);
/* Fill pb from msg and st (NULL: unstamped); pointers into both, which must outlive pb. now: as
 * wire_publish_plan's. */
void publish_fill(Cl__Publish *pb, const struct message *msg, const struct wire_stamp *st,
                  uint64_t now);
/* A message from a received Publish, expiring expiry_ms after now, or NULL if invalid or out of
 * memory. */
struct message *publish_to_message(const struct wire_publish *wp, bool retain, uint64_t now);
/* A moved session's subscription is acceptable (a valid filter, options in range). */
bool publish_moved_sub_valid(const Cl__SessionSub *s);
/* A moved session's message checked as takeover_on_reply takes it: true and *out its message (one
 * reference; NULL for a PUBREL-pending entry, which has none), or false (nothing to free). */
bool publish_moved_msg(const Cl__SessionMsg *sm, uint64_t now, struct message **out);
/* View a protobuf-c Publish as a wire_publish (pointers into pb). */
void publish_from_pb(const Cl__Publish *pb, struct wire_publish *out);

/* ---- cluster_retained.c: retained replication (stamps, last writer wins, tombstones) ---- */
/* The retained state of c (c->retained), or -1 on allocation failure; retained_free frees it. */
int retained_init(struct cluster *c);
void retained_free(struct cluster *c);
/* The broker set or cleared msg's topic here: stamp it (out: for the wire, valid until the next
 * retained call). */
void retained_local(struct cluster *c, const struct message *msg, struct wire_stamp *out);
/* A retained set or clear received from p (in a PUBLISH, a Retain or a full sync). */
void retained_on_remote(struct cluster *c, struct peer *p, const struct wire_publish *wp);
void retained_send_full(struct cluster *c, struct peer *p);
void retained_on_sync(struct cluster *c, struct peer *p, const Cl__RetainSync *s);
/* Heartbeat: advance the floor (reaping tombstones under it), then fill v's retained fields. */
void retained_heartbeat(struct cluster *c, Cl__RouteVersion *v);
/* A peer's heartbeat: record agreement; true when its retained set has differed from ours for
 * CLUSTER_DIGEST_MISSES quiet heartbeats (both sides should exchange their sets). */
bool retained_on_version(struct cluster *c, struct peer *p, const Cl__RouteVersion *v);
/* One /metrics series, named and explained by the module that counts it. */
struct cluster_metric {
    const char *name, *type, *help;
    uint64_t value;
};
#define RETAINED_METRICS 6
/* The retained state's series (tombstones, reaping, the size of a full sync) into out. */
void retained_metrics(const struct cluster *c, struct cluster_metric out[RETAINED_METRICS]);

/* ---- cluster_takeover.c ---- */
bool takeover_hook(void *ctx, const char *client_id, bool clean_session, uint64_t token);
void takeover_on_request(struct cluster *c, struct peer *p, const Cl__TakeoverRequest *r);
void takeover_on_reply(struct cluster *c, struct peer *p, const Cl__TakeoverReply *r);
void takeover_tick(struct cluster *c, uint64_t now);
void takeover_peer_gone(struct cluster *c, struct peer *p);
void takeover_free_all(struct cluster *c);
/* Leaving: send every persistent session to its replica holder (replica_pick) and delete it
 * here. Returns how many were sent. */
size_t takeover_handoff_all(struct cluster *c);
/* Close client_id here and send its session to p as the answer to takeover token. */
void takeover_export(struct cluster *c, struct peer *p, const char *client_id, uint64_t token);

/* ---- cluster_log.c: store and forward of QoS 1/2 PUBLISHes until the peer confirms them ---- */
/* Room for one envelope of len bytes numbered seq at the end of p's log (the oldest dropped,
 * counted, past CLUSTER_PEER_QUEUE_MAX), or NULL when out of memory (counted). */
uint8_t *peerlog_reserve(struct peer *p, uint64_t seq, size_t len);
void peerlog_add(struct peer *p, uint64_t seq, const uint8_t *env, size_t len);
/* p received everything numbered up to seq: forget it. */
void peerlog_confirm(struct peer *p, uint64_t seq);
/* Stage everything in p's log again, oldest first (it stays until confirmed); how many. */
size_t peerlog_replay(struct peer *p);
/* Forget p's log (count: as dropped). */
void peerlog_free(struct peer *p, bool count);
/* A Publish numbered seq arrived from p: true if it was received before (skip it). */
bool peerlog_seen(struct peer *p, uint64_t seq);
/* A QoS 1/2 PUBLISH numbered seq was forwarded to p this turn: the turn's acknowledgements wait
 * until p confirms it durable. */
void peerlog_forwarded(struct peer *p, uint64_t seq);
/* End of loop turn `turn`: mark what each peer was sent and what we received from it. */
void peerlog_turn_end(struct cluster *c, uint64_t turn);
/* p confirmed everything numbered up to seq durable: forget it; true if a turn was released. */
bool peerlog_confirmed(struct peer *p, uint64_t seq);
/* The turn watermark wm, lowered below the oldest turn whose forwards a peer has not confirmed. */
uint64_t peerlog_forwards_wm(const struct cluster *c, uint64_t wm);
/* Turns stored or replicated here advanced: what they received may be confirmed to its senders. */
void peerlog_durable(struct cluster *c);
/* What to confirm to p: received and durable here (everything received without a store). */
uint64_t peerlog_confirmable(const struct cluster *c, const struct peer *p);
/* Which of p's replica turns to acknowledge: applied and on disk here (applied, without a store). */
uint64_t peerlog_replicas_confirmable(const struct cluster *c, const struct peer *p);
/* p's replica turns start again (it died or restarted): nothing of it received counts. */
void peerlog_replicas_reset(struct peer *p);
/* p is gone or its link closed: forwards to it no longer hold acknowledgements; marks freed. */
void peerlog_peer_reset(struct peer *p);
/* The peer struct goes: its marks too. */
void peerlog_marks_free(struct peer *p);
/* Walk p's log, oldest first: fn(ctx, seq, envelope, len). */
void peerlog_each(const struct peer *p,
                  void (*fn)(void *ctx, uint64_t seq, const uint8_t *env, size_t len), void *ctx);

/* ---- cluster_handover.c: a dead node's kept messages to its promoted sessions ---- */
int handover_init(struct cluster *c);
void handover_free(struct cluster *c);
/* owner is dead: a hand-over (NULL when out of memory) that handover_add gives each session
 * promoted from it, with the replica's origins, and handover_ask then starts (or frees when it
 * has none): our own log for owner is applied at once, the peers are asked for theirs. */
struct handover *handover_start(struct cluster *c, const struct peer *owner);
void handover_add(struct cluster *c, struct handover *ho, const char *id,
                  const struct origin_seq *origins, size_t n);
void handover_ask(struct cluster *c, struct handover *ho, struct peer *owner);
/* Whether session id waits for a hand-over still (a takeover of it waits too). */
bool handover_holds(const struct cluster *c, const char *id);
void handover_on_msg(struct cluster *c, struct peer *p, const Cl__Handover *h);
void handover_peer_gone(struct cluster *c, struct peer *p);
/* p's routes changed: answer the asks that waited for them. */
void handover_routes_known(struct cluster *c, struct peer *p);
void handover_tick(struct cluster *c, uint64_t now);
#define HANDOVER_METRICS 3
void handover_metrics(const struct cluster *c, struct cluster_metric out[HANDOVER_METRICS]);

/* ---- cluster_move.c: the session-move window ---- */
int move_init(struct cluster *c);
void move_free(struct cluster *c);
/* A session is being moved to `to`: a stub (NULL when out of memory) that move_stub_filter gives
 * each of its filters (their routes are held from then on), and move_stub_end keeps for
 * CLUSTER_MOVE_STUB_MS if the session moved (else it is undone). */
struct move_stub *move_stub_begin(struct cluster *c, struct peer *to, const char *id);
void move_stub_filter(struct cluster *c, struct move_stub *s, const char *filter);
void move_stub_end(struct cluster *c, struct move_stub *s, bool moved);
/* Is filter's route held by a stub (its removal waits for the stub's end)? */
bool move_route_held(struct cluster *c, const char *filter, size_t len);
/* A stub let go of filter: the route goes unless something else holds it. */
void move_route_release(struct cluster *c, const char *filter);
/* A PUBLISH reached this node (origin's number seq): pass it to moved sessions it matches. */
void move_stub_forward(struct cluster *c, const struct message *msg, const char *origin,
                       uint64_t seq);
/* A session moved in here (its subscriptions are restored): record numbers for a while. */
void move_in_begin(struct cluster *c, const char *id);
/* A Publish numbered seq came from p while a moved-in session is young. */
void move_record(struct peer *p, uint64_t seq);
void move_on_stub(struct cluster *c, struct peer *p, const Cl__StubPublish *sp);
/* Did the young moved-in (or promoted) session id get o's Publish seq directly here? */
bool move_in_had(const struct cluster *c, const char *id, const struct peer *o, uint64_t seq);
void move_tick(struct cluster *c, uint64_t now);
#define MOVE_METRICS 3
void move_metrics(const struct cluster *c, struct cluster_metric out[MOVE_METRICS]);

/* ---- cluster_replica.c: session replicas ---- */
int replica_init(struct cluster *c);
void replica_free(struct cluster *c);
/* The live peer (alive or suspect) that holds client_id's replica, or NULL. */
struct peer *replica_pick(struct cluster *c, const char *client_id);
/* broker_hooks.on_session_state / on_turn_end. */
void replica_hook_state(void *ctx, const char *id, const uint8_t *state, size_t len, uint64_t seq);
void replica_hook_turn_end(void *ctx, uint64_t seq);
/* p restarted without being declared dead (its routes' generation changed). */
void replica_peer_restarted(struct cluster *c, struct peer *p);
/* At start: the replicas our store kept for other nodes are held again. */
void replica_restore(struct cluster *c);
/* broker_hooks.on_stored: turns up to seq are on disk here. */
void replica_hook_stored(void *ctx, uint64_t seq);
void replica_on_put(struct cluster *c, struct peer *p, const Cl__ReplicaPut *r);
void replica_on_drop(struct cluster *c, struct peer *p, const Cl__ReplicaDrop *d);
void replica_on_ack(struct cluster *c, struct peer *p, const Cl__ReplicaAck *a);
/* End of a loop turn: acknowledge the replicas received. */
void replica_send_acks(struct cluster *c);
/* A takeover request for an id whose replica is held here: true when answered "wait" (the owner
 * is alive or suspect); false to go on as usual (the replica promoted or dropped first). */
bool replica_on_takeover_request(struct cluster *c, struct peer *p, const Cl__TakeoverRequest *r);
/* A client connects here whose replica is held here: true when its owner is alive or suspect (the
 * takeover waits for its answer or its death, when the replica is promoted here); a clean start
 * drops the replica. */
bool replica_held_wait(struct cluster *c, const char *client_id, bool clean);
/* client_id's session, promoted here from a replica, is used by its client or moved: it is not
 * dropped when the replica's owner comes back. */
void replica_promoted_forget(struct cluster *c, const char *client_id);
/* p sent client id's session itself (a takeover answer or hand-off): its replica here goes. */
void replica_on_handoff(struct cluster *c, struct peer *p, const char *id);
/* p became alive: replicas move to their new holders. */
void replica_member_up(struct cluster *c, struct peer *p);
/* p died or left: its replicas held here become sessions here; ours that it held go elsewhere. */
void replica_member_gone(struct cluster *c, struct peer *p);
void replica_tick(struct cluster *c, uint64_t now);
/* The hand-over of a dead owner's kept messages is done: a takeover waiting for session id
 * gets it now. */
void replica_waits_settle(struct cluster *c, const char *id);
#define REPLICA_METRICS 5
void replica_metrics(const struct cluster *c, struct cluster_metric out[REPLICA_METRICS]);

/* ---- cluster_status.c ---- */
/* Attach /cluster, the cluster's metrics and its readiness condition to c->ops (if any). Returns 0,
 * or -1 when out of memory. */
int status_attach(struct cluster *c);
/* Mirror a member's state (and the counts by state) into retained $SYS/broker/cluster/... topics.
 */
void status_sys_member(struct cluster *c, const struct member *m);

#endif
