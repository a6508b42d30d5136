/*
 * cluster.h - the cluster as main() sees it: membership, route replication, PUBLISH forwarding, retained
 * replication, cluster-wide client-id takeover, and what operators see of it (/cluster, its metrics and
 * readiness, attached to the node's endpoint, ops.h). Plugs into the broker only through struct
 * broker_hooks and the broker's inbound functions (broker.h).
 *
 * With cfg->cluster_port == 0 it is a cluster of one: only its $SYS topics and operator parts run.
 * Threading: nng runs its own threads; everything they receive is handed to the loop (uv_async) before it
 * touches the broker, so the broker stays single-threaded.
 */
#ifndef SOL_CLUSTER_H
#define SOL_CLUSTER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "broker.h"
#include "cluster_config.h"
#include "ops.h"

struct cluster;

/* Start on loop, attach to b (sets its hooks) and to the operators' endpoint ops (may be NULL).
 * cfg is copied. Returns NULL with a reason in err (e.g. port in use, naming the setting). */
struct cluster *cluster_start(uv_loop_t *loop, struct broker *b, struct ops *ops,
                              const struct cluster_config *cfg, char *err, size_t errlen);

/* SIGTERM path: /readyz turns 503, leave is announced (peers mark this node left, drop its routes), then
 * done is called on the loop. */
void cluster_leave(struct cluster *c, void (*done)(void *ctx), void *ctx);

/* PUBLISHes dropped on the way to peers, by reason (for $SYS and /metrics): peer_gone, queued for
 * a peer whose link was closed (dead, left, moved) before they were sent; queue_full, over the
 * hard maximum queued for one peer (an unreachable peer not yet declared dead). Loop thread. */
void cluster_dropped(struct cluster *c, uint64_t *peer_gone, uint64_t *queue_full);

/* Close everything and detach from the endpoint (call it before ops_stop); frees c once libuv and
 * nng have let go of it. */
void cluster_stop(struct cluster *c);

/* SIGHUP: re-read the gossip key file (membership_reload_keys) and the node link certificate, key
 * and CA (for links dialed from then on; docs/cluster.md). Logs the outcome; a bad file keeps
 * the keys in use. A NULL cluster or one without a key file does nothing. */
void cluster_reload_keys(struct cluster *c);

#endif
