/*
 * membership_probe.c - failure detection: the probe tick (round-robin over a shuffled member list),
 * direct then indirect probes, suspicion timers with Lifeguard confirmations, the local health
 * score ("awareness"), gossip fan-out and the periodic push-pull.
 *
 * Timing with the defaults (gossip_interval 200 ms, probe_timeout 100 ms, suspicion_mult 4), scaled
 * by (1 + awareness) for the probe period and timeouts:
 *
 *   t+0     ping the target
 *   t+100   no ack: ask MB_INDIRECT_K members to ping it for us (ping-req), and ping it again
 *           directly
 *   t+400   still nothing heard from it (ack, relayed ack or any datagram): suspect it
 *   then    dead after the suspicion timeout: 800 ms * max(1, log10 n), starting at 3x that and
 *           falling as other members independently suspect it too (Lifeguard)
 *
 * Any timer that fires much later than planned means this process was not running (stopped,
 * starved): what it would conclude is not evidence about others, so probes are dropped as
 * inconclusive, suspicion deadlines are pushed back one interval, and the local health score goes
 * up.
 */
#include "membership_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t scaled(const struct membership *m, uint64_t ms)
{
    return ms * (1 + m->awareness);
}

static void health_worse(struct membership *m, const char *why)
{
    if (m->awareness < MB_MAX_AWARENESS) {
        m->awareness++;
        log_debug(m->log, "membership: local health %u (%s)", m->awareness, why);
    }
}

static void health_better(struct membership *m)
{
    if (m->awareness > 0)
        m->awareness--;
}

static bool probing(const struct membership *m, const char *name)
{
    for (int i = 0; i < MB_PROBE_SLOTS; i++)
        if (m->probes[i].active && strcmp(m->probes[i].target, name) == 0)
            return true;
    return false;
}

/* Fisher-Yates over nodes[1..]: a fresh random probe order for each round (SWIM round-robin). */
static void shuffle(struct membership *m)
{
    for (size_t i = m->n_nodes - 1; i > 1; i--) {
        size_t j = 1 + (size_t)(membership_rand(m) % i);
        struct mb_node *t = m->nodes[i];
        m->nodes[i] = m->nodes[j];
        m->nodes[j] = t;
    }
}

static void probe_start(struct membership *m, struct mb_node *n, uint64_t now)
{
    struct mb_probe *p = NULL;
    for (int i = 0; i < MB_PROBE_SLOTS && !p; i++)
        if (!m->probes[i].active)
            p = &m->probes[i];
    if (!p)
        return;
    memset(p, 0, sizeof(*p));
    p->active = true;
    p->seq = ++m->seq;
    snprintf(p->target, sizeof(p->target), "%s", n->pub.name);
    p->start = now;
    p->direct_deadline = now + scaled(m, m->cfg.probe_timeout_ms);
    p->final_deadline = now + scaled(m, 2ULL * m->cfg.gossip_interval_ms);
    m->stats.probes++;
    membership_send_ping(m, &n->addr, p->seq, n->pub.name);
}

/* Probe the next member of the round that is alive or suspect and not already being probed. */
static void probe_next(struct membership *m, uint64_t now)
{
    if (m->n_nodes < 2)
        return;
    for (size_t tries = 0; tries < m->n_nodes; tries++) {
        if (m->probe_index < 1 || m->probe_index >= m->n_nodes) {
            shuffle(m);
            m->probe_index = 1;
        }
        struct mb_node *n = m->nodes[m->probe_index++];
        if (n->pub.state != MEMBER_ALIVE && n->pub.state != MEMBER_SUSPECT)
            continue;
        if (probing(m, n->pub.name))
            continue;
        probe_start(m, n, now);
        return;
    }
}

/* Forget members that have been dead or left for MB_REAP_MS. */
static void reap(struct membership *m, uint64_t now)
{
    for (size_t i = m->n_nodes; i-- > 1;) {
        struct mb_node *n = m->nodes[i];
        if ((n->pub.state == MEMBER_DEAD || n->pub.state == MEMBER_LEFT) &&
            now - n->state_since > MB_REAP_MS) {
            log_info(m->log, "membership: forgetting %s (%s)", n->pub.name,
                     member_state_name(n->pub.state));
            m->nodes[i] = m->nodes[m->n_nodes - 1];
            m->n_nodes--;
            free(n);
        }
    }
}

static bool gossip_target(const struct mb_node *n, uint64_t now)
{
    if (n->pub.state == MEMBER_ALIVE || n->pub.state == MEMBER_SUSPECT)
        return true;
    return n->pub.state == MEMBER_DEAD && now - n->state_since < MB_GOSSIP_TO_DEAD_MS;
}

/* Send pending broadcasts to a few random members (dissemination does not wait for probes). */
static void gossip_fanout(struct membership *m, uint64_t now)
{
    if (m->n_bq == 0 || m->n_nodes < 2)
        return;
    struct mb_node *sent[MB_GOSSIP_FANOUT];
    unsigned n_sent = 0;
    for (size_t tries = 0; tries < 4 * m->n_nodes && n_sent < MB_GOSSIP_FANOUT && m->n_bq;
         tries++) {
        struct mb_node *n = m->nodes[1 + membership_rand(m) % (m->n_nodes - 1)];
        if (!gossip_target(n, now))
            continue;
        bool dup = false;
        for (unsigned i = 0; i < n_sent; i++)
            dup |= sent[i] == n;
        if (dup)
            continue;
        sent[n_sent++] = n;
        membership_send_gossip(m, &n->addr, NULL);
    }
}

void membership_tick_cb(uv_timer_t *t)
{
    struct membership *m = t->data;
    if (m->stopping)
        return;
    uint64_t now = uv_now(m->loop);
    if (now > m->next_tick_at + m->cfg.gossip_interval_ms / 2)
        health_worse(m, "probe tick late");
    reap(m, now);
    if (!m->leaving)
        probe_next(m, now);
    gossip_fanout(m, now);
    uint64_t interval = scaled(m, m->cfg.gossip_interval_ms);
    m->next_tick_at = now + interval;
    uv_timer_start(&m->tick_timer, membership_tick_cb, interval, 0);
    membership_arm_deadlines(m);
}

/* Pick up to k random alive members other than self and skip; returns how many were written. */
static unsigned pick_helpers(struct membership *m, const struct mb_node *skip, struct mb_node **out,
                             unsigned k)
{
    unsigned n_out = 0;
    if (m->n_nodes < 2)
        return 0;
    for (size_t tries = 0; tries < 4 * m->n_nodes && n_out < k; tries++) {
        struct mb_node *n = m->nodes[1 + membership_rand(m) % (m->n_nodes - 1)];
        if (n == skip || n->pub.state != MEMBER_ALIVE)
            continue;
        bool dup = false;
        for (unsigned i = 0; i < n_out; i++)
            dup |= out[i] == n;
        if (!dup)
            out[n_out++] = n;
    }
    return n_out;
}

static void probe_indirect(struct membership *m, struct mb_probe *p)
{
    struct mb_node *target = membership_node(m, p->target);
    p->indirect_sent = true;
    if (!target)
        return;
    membership_send_ping(m, &target->addr, p->seq,
                         target->pub.name); /* against one lost datagram */
    struct mb_node *helpers[MB_INDIRECT_K];
    unsigned n = pick_helpers(m, target, helpers, MB_INDIRECT_K);
    for (unsigned i = 0; i < n; i++)
        membership_send_ping_req(m, &helpers[i]->addr, p->seq, target);
    p->nacks_expected = n;
    if (n)
        m->stats.indirect_probes++;
}

/* The probe window is over: suspect the target unless we heard from it. */
static void probe_finish(struct membership *m, struct mb_probe *p)
{
    p->active = false;
    struct mb_node *n = membership_node(m, p->target);
    if (!n || (n->pub.state != MEMBER_ALIVE && n->pub.state != MEMBER_SUSPECT))
        return;
    if (n->last_heard >= p->start) {
        health_better(m);
        return;
    }
    if (p->nacks_got < p->nacks_expected)
        health_worse(m, "missed nacks");
    struct mb_state s;
    membership_state_of(n, &s);
    s.state = MEMBER_SUSPECT;
    snprintf(s.from, sizeof(s.from), "%s", m->nodes[0]->pub.name);
    if (n->pub.state == MEMBER_SUSPECT)
        membership_queue_bcast(m, &s); /* our own suspicion: a confirmation for the others */
    else
        membership_apply(m, &s, false);
}

void membership_on_ack(struct membership *m, uint32_t seq, const char *from)
{
    (void)from;
    for (int i = 0; i < MB_PROBE_SLOTS; i++) {
        struct mb_probe *p = &m->probes[i];
        if (p->active && p->seq == seq) {
            struct mb_node *n = membership_node(m, p->target);
            if (n)
                n->last_heard = uv_now(m->loop);
            p->active = false;
            health_better(m);
            return;
        }
    }
    for (int i = 0; i < MB_RELAY_SLOTS; i++) {
        struct mb_relay *r = &m->relays[i];
        if (r->active && r->seq == seq) {
            membership_send_ack(m, &r->requester, r->their_seq, NULL);
            r->active = false;
            return;
        }
    }
}

void membership_on_nack(struct membership *m, uint32_t seq)
{
    for (int i = 0; i < MB_PROBE_SLOTS; i++)
        if (m->probes[i].active && m->probes[i].seq == seq)
            m->probes[i].nacks_got++;
}

/* Ping target for a requester; relay its ack, or send a nack if none comes in time. */
void membership_on_ping_req(struct membership *m, uint32_t seq, const char *target,
                            const struct sockaddr_storage *target_addr,
                            const struct sockaddr_storage *requester)
{
    struct mb_relay *r = NULL;
    for (int i = 0; i < MB_RELAY_SLOTS && !r; i++)
        if (!m->relays[i].active)
            r = &m->relays[i];
    if (!r)
        return; /* too many at once: the requester counts a missing nack against itself, rightly */
    r->active = true;
    r->seq = ++m->seq;
    r->their_seq = seq;
    r->requester = *requester;
    /* Answer before the requester's window closes: 80% of what is left after its direct timeout. */
    uint64_t window = 2ULL * m->cfg.gossip_interval_ms - m->cfg.probe_timeout_ms;
    r->deadline = uv_now(m->loop) + window * 4 / 5;
    membership_send_ping(m, target_addr, r->seq, target);
    membership_arm_deadlines(m);
}

/* Lifeguard suspicion timeout: with k expected confirmations (suspicion_mult - 2, at most n - 2)
 * and C received, max - (max - min) * log(C + 1) / log(k + 1), never below min. */
static void suspicion_rearm(struct membership *m, struct mb_node *n)
{
    uint64_t min = membership_suspicion_min(m);
    uint64_t max = min * MB_SUSPICION_MAX_MULT;
    long k = (long)m->cfg.suspicion_mult - 2;
    long live = (long)membership_live_count(m);
    if (k > live - 2)
        k = live - 2;
    unsigned c = n->n_confirm ? n->n_confirm - 1 : 0;
    uint64_t timeout = min;
    if (k >= 1) {
        double frac = log((double)c + 1.0) / log((double)k + 1.0);
        double t = (double)max - (double)(max - min) * frac;
        timeout = t < (double)min ? min : (uint64_t)t;
    }
    n->suspect_deadline = n->suspect_start + timeout;
}

void membership_suspicion_start(struct membership *m, struct mb_node *n, const char *from)
{
    n->suspect_start = uv_now(m->loop);
    n->confirm[0] = membership_hash(from);
    n->n_confirm = 1;
    suspicion_rearm(m, n);
}

/* Count an independent suspicion of n; true if it was new (then worth re-broadcasting). */
bool membership_suspicion_confirm(struct membership *m, struct mb_node *n, const char *from)
{
    if (!from[0] || strcmp(from, m->nodes[0]->pub.name) == 0)
        return false;
    uint64_t h = membership_hash(from);
    for (unsigned i = 0; i < n->n_confirm; i++)
        if (n->confirm[i] == h)
            return false;
    if (n->n_confirm == MB_MAX_CONFIRM)
        return false;
    n->confirm[n->n_confirm++] = h;
    suspicion_rearm(m, n);
    return true;
}

static void leave_step(struct membership *m)
{
    if (m->leave_resends == 1) {
        struct mb_state st;
        membership_state_of(m->nodes[0], &st);
        snprintf(st.from, sizeof(st.from), "%s", st.name);
        if (m->wildcard)
            st.host[0] = '\0';
        for (size_t i = 1; i < m->n_nodes; i++) {
            struct mb_node *n = m->nodes[i];
            if (n->pub.state == MEMBER_ALIVE || n->pub.state == MEMBER_SUSPECT)
                membership_send_gossip(m, &n->addr, &st);
        }
        m->leave_resends = 2;
    }
    void (*done)(void *) = m->leave_done;
    m->leave_done = NULL;
    if (done)
        done(m->leave_ctx); /* last: done may stop the membership */
}

void membership_deadline_cb(uv_timer_t *t)
{
    struct membership *m = t->data;
    if (m->stopping)
        return;
    uint64_t now = uv_now(m->loop);
    bool stalled = now > m->deadline_armed_for + m->cfg.gossip_interval_ms;
    if (stalled)
        health_worse(m, "deadline timer late");
    for (int i = 0; i < MB_PROBE_SLOTS; i++) {
        struct mb_probe *p = &m->probes[i];
        if (!p->active)
            continue;
        if (stalled && now >= p->direct_deadline) {
            p->active = false; /* we were not running: no conclusion */
            continue;
        }
        if (!p->indirect_sent && now >= p->direct_deadline)
            probe_indirect(m, p);
        if (now >= p->final_deadline)
            probe_finish(m, p);
    }
    for (int i = 0; i < MB_RELAY_SLOTS; i++) {
        struct mb_relay *r = &m->relays[i];
        if (r->active && now >= r->deadline) {
            membership_send_nack(m, &r->requester, r->their_seq);
            r->active = false;
        }
    }
    for (size_t i = 1; i < m->n_nodes; i++) {
        struct mb_node *n = m->nodes[i];
        if (n->pub.state != MEMBER_SUSPECT || now < n->suspect_deadline)
            continue;
        if (stalled) {
            n->suspect_deadline = now + m->cfg.gossip_interval_ms; /* read refutations first */
            continue;
        }
        struct mb_state s;
        membership_state_of(n, &s);
        s.state = MEMBER_DEAD;
        snprintf(s.from, sizeof(s.from), "%s", m->nodes[0]->pub.name);
        membership_apply(m, &s, false);
    }
    if (m->leaving && m->leave_done && now >= m->leave_deadline) {
        leave_step(m);
        if (m->stopping)
            return;
    }
    membership_arm_deadlines(m);
}

/* Arm the deadline timer for the nearest pending deadline. */
void membership_arm_deadlines(struct membership *m)
{
    if (m->stopping)
        return;
    uint64_t next = UINT64_MAX;
    for (int i = 0; i < MB_PROBE_SLOTS; i++) {
        const struct mb_probe *p = &m->probes[i];
        if (!p->active)
            continue;
        if (!p->indirect_sent && p->direct_deadline < next)
            next = p->direct_deadline;
        if (p->final_deadline < next)
            next = p->final_deadline;
    }
    for (int i = 0; i < MB_RELAY_SLOTS; i++)
        if (m->relays[i].active && m->relays[i].deadline < next)
            next = m->relays[i].deadline;
    for (size_t i = 1; i < m->n_nodes; i++)
        if (m->nodes[i]->pub.state == MEMBER_SUSPECT && m->nodes[i]->suspect_deadline < next)
            next = m->nodes[i]->suspect_deadline;
    if (m->leaving && m->leave_done && m->leave_deadline < next)
        next = m->leave_deadline;
    if (next == UINT64_MAX) {
        uv_timer_stop(&m->deadline_timer);
        return;
    }
    uint64_t now = uv_now(m->loop);
    m->deadline_armed_for = next > now ? next : now;
    uv_timer_start(&m->deadline_timer, membership_deadline_cb, next > now ? next - now : 0, 0);
}

/* Anti-entropy: a full state exchange with one random alive member, and a reconnect attempt with
 * one random dead member (so a healed partition merges even if no seed points across it). */
void membership_pp_cb(uv_timer_t *t)
{
    struct membership *m = t->data;
    if (m->stopping || m->leaving || m->n_nodes < 2)
        return;
    struct mb_node *alive = NULL;
    struct mb_node *dead = NULL;
    size_t start = 1 + membership_rand(m) % (m->n_nodes - 1);
    for (size_t i = 0; i < m->n_nodes - 1; i++) {
        struct mb_node *n = m->nodes[1 + (start - 1 + i) % (m->n_nodes - 1)];
        if (!alive && n->pub.state == MEMBER_ALIVE)
            alive = n;
        if (!dead && n->pub.state == MEMBER_DEAD)
            dead = n;
    }
    if (alive)
        membership_send_states(m, &alive->addr, false, false);
    if (dead)
        membership_send_states(m, &dead->addr, false, false);
}
