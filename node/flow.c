/*
 * flow.c - back-pressure bookkeeping: which source is delivering, who waits on which gate, and the
 * resumes due at the next check phase (flow.h says why they are deferred).
 */
#include "broker_internal.h"

void broker_flow_enter(struct broker *b, struct flow_source *src)
{
    b->flow_current = src;
}

void broker_flow_leave(struct broker *b)
{
    b->flow_current = NULL;
}

/* Unlink src from the list headed at *head (a gate's waiters or the ready list). */
static void flow_unlink(struct flow_source **head, struct flow_source *src)
{
    if (src->prev)
        src->prev->next = src->next;
    else if (*head == src)
        *head = src->next;
    if (src->next)
        src->next->prev = src->prev;
    src->prev = src->next = NULL;
}

static void flow_push(struct flow_source **head, struct flow_source *src)
{
    src->prev = NULL;
    src->next = *head;
    if (*head)
        (*head)->prev = src;
    *head = src;
}

/* Would src waiting on a gate drained by d close a cycle? Follows d's own wait, and so on. A chain
 * longer than any real one counts as a cycle: not pausing is always safe. */
static bool flow_would_cycle(const struct flow_source *src, const struct flow_source *d)
{
    for (int hops = 0; d; hops++) {
        if (d == src || hops == 64)
            return true;
        d = d->gate ? d->gate->drainer : NULL;
    }
    return false;
}

bool broker_flow_block(struct broker *b, struct flow_gate *g, struct flow_source *drainer)
{
    struct flow_source *src = b->flow_current;
    if (!src || src->gate || b->core.cfg.overload_policy == OVERLOAD_DROP ||
        flow_would_cycle(src, drainer))
        return false;
    g->drainer = drainer;
    bool was_paused = src->ready; /* released this turn but not resumed yet: waits again, on g */
    if (was_paused) {
        flow_unlink(&b->flow_ready, src);
        src->ready = false;
    }
    src->gate = g;
    flow_push(&g->waiters, src);
    if (!was_paused) {
        src->paused_at_ms = (uint32_t)broker_now_ms(b);
        b->core.stats.pause_events++;
        b->core.stats.publishers_paused++;
        src->ops->pause(src); /* after linking: pause may look at src->gate */
    }
    return true;
}

void broker_flow_release(struct broker *b, struct flow_gate *g)
{
    if (!g->waiters)
        return;
    while (g->waiters) {
        struct flow_source *src = g->waiters;
        flow_unlink(&g->waiters, src);
        src->gate = NULL;
        src->ready = true;
        flow_push(&b->flow_ready, src);
    }
    broker_wake(b); /* poll must not block before the check phase runs the resumes */
}

/* The source stops being paused: its time is counted. */
static void flow_account_end(struct broker *b, struct flow_source *src)
{
    b->core.stats.paused_ms_total += (uint32_t)((uint32_t)broker_now_ms(b) - src->paused_at_ms);
    b->core.stats.publishers_paused--;
}

void broker_flow_forget(struct broker *b, struct flow_source *src)
{
    if (src->gate) {
        flow_unlink(&src->gate->waiters, src);
        src->gate = NULL;
        flow_account_end(b, src);
    } else if (src->ready) {
        flow_unlink(&b->flow_ready, src);
        src->ready = false;
        flow_account_end(b, src);
    }
}

/* Check phase: resume every released source. A resume may deliver and so block its source again
 * (off the ready list, onto a gate) or release others (onto the ready list, resumed in this loop
 * too): take one at a time from the head. */
void flow_run_ready(struct broker *b)
{
    while (b->flow_ready) {
        struct flow_source *src = b->flow_ready;
        flow_unlink(&b->flow_ready, src);
        src->ready = false;
        flow_account_end(b, src);
        src->ops->resume(src);
    }
}
