/*
 * broker_internal.h - the broker's own state, shared by the broker module's files only (broker.c:
 * life cycle and routing; broker_retain.c: retained messages set, sent, expired; flow.c:
 * back-pressure bookkeeping; sys.c: $SYS). Other modules see the broker through broker.h (the
 * public face) and broker_core.h (what node modules share).
 *
 * Ownership in one paragraph: struct broker owns the connections (struct conns, conn.h: they own
 * the listeners and every client connection), the sessions table (session.h), the subscription
 * tree, the per-filter route counts and the retained store. Messages are refcounted: each queue
 * slot, in-flight slot and retained entry holds one reference.
 */
#ifndef SOL_BROKER_INTERNAL_H
#define SOL_BROKER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "acl.h"
#include "auth.h"
#include "broker.h"
#include "broker_core.h"
#include "flow.h"
#include "retain.h"
#include "session.h"
#include "strmap.h"
#include "topic.h"

#define BROKER_TICK_MS 250 /* keepalive and timeout sweep period */

struct route_count {
    char *filter;
    size_t count; /* local sessions subscribed to exactly this filter */
};

struct broker {
    struct broker_core core; /* first: broker_core() is a cast */
    uv_check_t flush_check;  /* end of each loop turn: resumes, then output */
    uv_idle_t flush_idle;    /* keeps poll from blocking while something waits for the check */
    uv_timer_t tick;         /* keepalive / timeouts */
    uv_timer_t sys_timer;    /* $SYS updates */
    struct conns *conns;
    struct sessions *sessions;
    struct strmap routes;    /* filter -> struct route_count */
    struct topic_tree *subs; /* filter -> struct session */
    struct shares *shares;   /* shared subscription groups (share.h) */
    struct retain_store *retained;
    struct acl *acl;
    struct persist *persist; /* the durable store (persist.h); NULL: --durability none */
    struct auth *auth;
    struct broker_hooks hooks;
    struct flow_source *flow_current; /* source of the delivery in progress (flow.h) */
    struct flow_source *flow_ready;   /* released sources, resumed at the next check phase */
    struct session_match match;       /* scratch for routing */
    uint64_t start_ms;
    uint64_t next_token;
    uint64_t id_prefix;  /* random per process: generated client ids are unique across a cluster */
    uint64_t id_counter; /* generated client ids */
    bool started;
    bool shutting_down;
    bool handles_closed; /* the loop turn handles are closing: wake nothing */
    int handles_open;    /* connections, check, idle, timers: counted down as they close */
    void (*shutdown_done)(void *ctx);
    void *shutdown_ctx;
};

/* broker_retain.c: the retained store's release function (a value is one message reference). */
void broker_retain_release(void *value);

/* broker_retain.c: remove the retained messages whose Message Expiry Interval is over at now, from
 * memory and from the store (the broker's tick). */
void broker_retain_sweep(struct broker *b, uint64_t now);

/* flow.c: check phase: resume every released source. */
void flow_run_ready(struct broker *b);

/* sys.c: publish every $SYS statistic. */
void sys_publish(struct broker *b);

#endif
