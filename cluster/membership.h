/*
 * membership.h - SWIM gossip membership with Lifeguard refinements, over UDP on the libuv loop.
 *
 * Each node is known by its name (stable across restarts and address changes). Probing is round-robin over a
 * shuffled member list; a missed direct ack triggers indirect probes through k members; a member that stays
 * unreachable becomes suspect, and dead after a suspicion timeout that scales with log(cluster size); a
 * suspected node refutes by bumping its incarnation. State changes piggyback on probe traffic, and a periodic
 * push-pull full-state exchange with a random member heals partitions. Seeds (host:port, host may be a DNS
 * name with many addresses) are re-resolved periodically so nodes started later are found.
 *
 * Wire format: protobuf-c messages from proto/gossip.proto, one per UDP datagram.
 * Threading: everything runs on the loop passed to membership_start; callbacks run on that loop.
 */
#ifndef SOL_MEMBERSHIP_H
#define SOL_MEMBERSHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cluster_config.h"
#include "log.h"

enum member_state { MEMBER_ALIVE = 0, MEMBER_SUSPECT, MEMBER_DEAD, MEMBER_LEFT };

struct member {
    char name[64];
    char host[64]; /* IP address the member advertises (its cluster_bind, or the packet source) */
    uint16_t port; /* cluster port: UDP gossip and the nng TCP listener share this number */
    enum member_state state;
    uint64_t incarnation;
};

struct membership;

/* Called on the loop whenever a member's state changes, including a new member (old state given as
 * MEMBER_DEAD for a member never seen before) and a member's address change. */
typedef void (*membership_change_fn)(void *ctx, const struct member *m,
                                     enum member_state old_state);

struct membership_stats {
    uint64_t gossip_sent; /* datagrams */
    uint64_t gossip_received;
    uint64_t decode_errors; /* garbage, truncated or unknown datagrams dropped */
    /* Sealed gossip refused: unsealed with a key, sealed without one, no key opens it, stale or
     * replayed. */
    uint64_t gossip_rejected;
    uint64_t probes;
    uint64_t indirect_probes;
};

/* Create and start: binds UDP cfg->cluster_bind:cfg->cluster_port, starts probing and seed resolution.
 * Returns NULL and writes a reason into err on failure (e.g. port in use). */
struct membership *membership_start(uv_loop_t *loop, const struct cluster_config *cfg,
                                    const struct logger *log, membership_change_fn on_change,
                                    void *ctx, char *err, size_t errlen);

/* True once this node has exchanged state with at least one other member, or has no seeds. */
bool membership_joined(const struct membership *m);

/* Announce leave (peers mark this node LEFT, not DEAD), then call done on the loop when sent or after
 * cfg->leave_timeout_ms. */
void membership_leave(struct membership *m, void (*done)(void *ctx), void *ctx);

/* Stop timers and close the socket; frees m once libuv has closed its handles. */
void membership_stop(struct membership *m);

/* This node's own entry, and iteration over all known members (self included). */
const struct member *membership_self(const struct membership *m);
void membership_foreach(const struct membership *m, void (*fn)(const struct member *mb, void *ctx),
                        void *ctx);
const struct member *membership_find(const struct membership *m, const char *name);
size_t membership_count(const struct membership *m, enum member_state state);
void membership_get_stats(const struct membership *m, struct membership_stats *out);

const char *member_state_name(enum member_state s);

/* Re-read cfg->cluster_key_file (SIGHUP): the new first key seals from now on, all open. On error
 * the keys in use stay and err says why; without a key file configured, nothing happens. */
int membership_reload_keys(struct membership *m, char *err, size_t errlen);

/* Process one datagram as if it had arrived on the gossip socket from src (the receive path itself; an
 * entry point for fuzzing and tests). Bad input is counted in decode_errors, never fatal. */
void membership_receive(struct membership *m, const void *data, size_t len,
                        const struct sockaddr *src);

#endif
