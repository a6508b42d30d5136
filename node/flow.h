/*
 * flow.h - back-pressure: gates that fill up and the sources of messages that wait on them.
 *
 * A gate is anything publishers feed that can fall behind: a subscriber session's unsent backlog,
 * a cluster peer's send queue. A source is anything that produces messages and can be paused: a
 * client connection (transport_read_stop: TCP then pushes back on the device), a peer's inbound link (it
 * stops taking frames: nng then pushes back on the other node).
 *
 * The broker knows which source's message it is delivering right now (broker_flow_enter/leave
 * around each delivery). A gate that is over its high watermark blocks that source
 * (broker_flow_block): the source is paused and waits on that one gate. When the gate drains below
 * its low watermark, or stops exerting back-pressure (a stalled subscriber, a dead peer), its owner
 * releases it (broker_flow_release): every waiter resumes, from the loop's check phase (never
 * inside a delivery, so a resumed source's buffered input cannot re-enter a routing pass). A
 * resumed source that hits another full gate is blocked again on that one.
 *
 * All of it runs on the broker's loop thread. Gates and sources are embedded in their owners'
 * structs; the owner must release its gate (and the source's owner must call broker_flow_forget)
 * before freeing them.
 */
#ifndef SOL_FLOW_H
#define SOL_FLOW_H

#include <stdbool.h>
#include <stdint.h>

struct broker;
struct flow_gate;

struct flow_source;

/* Set by the source's owner, called by the broker on the loop thread. pause: stop producing now
 * (the message being delivered is taken; what follows it waits). resume: produce again; called
 * from the check phase, so it may deliver at once. */
struct flow_source_ops {
    void (*pause)(struct flow_source *src);
    void (*resume)(struct flow_source *src);
};

/* Embedded in every client connection: kept small. */
struct flow_source {
    const struct flow_source_ops *ops; /* set by the owner */
    /* Broker-owned: the gate waited on (NULL = flowing), the gate's list, when the pause began
     * (loop milliseconds, modulo 2^32: a pause is far shorter). */
    struct flow_gate *gate;
    struct flow_source *prev, *next;
    uint32_t paused_at_ms;
    bool ready; /* released, its resume due at the next check phase */
};

struct flow_gate {
    struct flow_source *waiters; /* broker-owned list */
    /* Whose progress drains the gate (a subscriber's own connection), NULL when nothing paused
     * here does (a peer link, drained by the network); set by broker_flow_block. */
    struct flow_source *drainer;
};

/* Deliveries from now until broker_flow_leave come from src (NULL: a will, $SYS, a peer that cannot
 * be paused). Not nested: one source at a time. */
void broker_flow_enter(struct broker *b, struct flow_source *src);
void broker_flow_leave(struct broker *b);

/* The gate is full: pause the source of the delivery in progress and make it wait on g, which
 * drainer's progress empties (NULL: none of ours). Never makes a cycle of waits: a source is not
 * paused on a gate whose drainer waits, directly or down a chain, on the source itself (a client
 * publishing to its own subscription; two clients publishing to each other); there the gate grows
 * past its watermark until the chain moves. Returns true if a source was paused (false: no source,
 * it already waits, a cycle, or the policy is drop). */
bool broker_flow_block(struct broker *b, struct flow_gate *g, struct flow_source *drainer);

/* The gate has room again (or stopped exerting back-pressure): every source waiting on it resumes
 * at the next check phase. Safe on a gate nobody waits on. */
void broker_flow_release(struct broker *b, struct flow_gate *g);

/* True if any source waits on g. */
static inline bool flow_gate_busy(const struct flow_gate *g)
{
    return g->waiters != NULL;
}

/* The source goes away (a closing connection): unlink it wherever it waits. */
void broker_flow_forget(struct broker *b, struct flow_source *src);

#endif
