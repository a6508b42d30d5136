/*
 * cluster_replica_int.h - what cluster_replica.c and cluster_replica_store.c share: the
 * replication state, private to those two files (cluster_int.h has the module's face).
 */
#ifndef SOL_CLUSTER_REPLICA_INT_H
#define SOL_CLUSTER_REPLICA_INT_H

#include "cluster_int.h"
#include "strmap.h"

/* A replica held here for another node. */
struct replica_held {
    char *id;
    char owner[64];
    uint8_t *state;
    size_t len;
    struct origin_seq *origins; /* how far the owner had each stream at this snapshot */
    size_t norigins;
    bool restored; /* read from our store at start, not sent again by its owner since */
};

/* One of our sessions and the peer holding its replica (NULL: none yet). */
struct replica_mine {
    char *id;
    struct peer *target;
};

/* A takeover asked of us while we hold the replica and its owner has not answered yet. */
struct replica_wait {
    struct replica_wait *next;
    char *id;
    struct peer *requester;
    uint64_t token;
    uint64_t deadline;
};

/* A session promoted here from a replica, and whose it was. */
struct replica_promoted {
    char *id;
    char owner[64];
};

struct replicas {
    struct strmap held;     /* client id -> struct replica_held */
    struct strmap promoted; /* client id -> struct replica_promoted */
    struct strmap mine;     /* client id -> struct replica_mine */
    struct replica_wait *waits;
    uint64_t flushed;  /* the last turn the broker closed */
    uint64_t reported; /* told to the broker: every turn up to it is held */
    /* A replica holder died with turns not acknowledged: until the turn that re-sends its
     * sessions elsewhere (freeze_until) is held, report no more than we had (frozen_wm). */
    bool frozen;
    uint64_t frozen_wm, freeze_until;
    uint64_t promoted_n, dropped_on_return, puts_rx, puts_tx;
    size_t nrestored;       /* restored replicas not yet confirmed or promoted */
    uint64_t restored_seen; /* when the cluster was first ready with some (0: not yet) */
};

/* Collected first: promoting or touching changes the maps being walked. */
struct replica_ids {
    char **ids;
    size_t n;
};

int replica_ids_add(struct replica_ids *l, const char *id);
void replica_ids_free(struct replica_ids *l);
void replica_held_free(struct replica_held *h);
/* h leaves this node (its store record too), or is forgotten and freed. */
void replica_held_forget(struct cluster *c, struct replica_held *h);
void replica_held_del(struct cluster *c, struct replica_held *h);
/* The owner is gone: the replica becomes the session here (ho: see replica_promote). */
void replica_promote(struct cluster *c, struct replica_held *h, struct handover *ho);
/* Write h into our store ('p' record). */
void replica_record(struct cluster *c, struct replica_held *h);
/* Restored replicas: dropped when their owner says it sent all (an empty drop), promoted when
 * the owner is not alive a while after we are ready. */
void replica_restored_drop(struct cluster *c, struct peer *p);
void replica_restored_promote(struct cluster *c, uint64_t now);

#endif
