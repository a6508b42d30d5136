/*
 * cluster_replica.c - every persistent session is held by one other node too, so that a node that
 * dies and never returns loses no session and no acknowledged message.
 *
 * The owner (the node where the session lives) sends each changed session's whole snapshot (the
 * store's record, node/persist.c) at the end of the loop turn to its replica: the live peer with
 * the highest rendezvous hash of (peer name, client id), so every node picks the same one and a
 * membership change moves only the sessions whose winner changed. The replica acknowledges the
 * turns it applied; the broker's held PUBACK/PUBREC/PUBCOMP (--durability sync) wait for that as
 * they wait for the disk (broker_replicated).
 *
 * When the owner is declared dead or leaves, each replica it gave is promoted where it is held: it
 * becomes an offline session there (its routes announced), and a client that reconnects anywhere
 * takes it over as usual (session present 1). A takeover that asks while the owner is only
 * suspected gets "wait" from the replica holder, which answers for good once the owner handed the
 * session over itself (its drop arrives) or is declared dead (the promoted session is moved).
 */
#include <stdlib.h>
#include <string.h>

#include "cluster_replica_int.h"
#include "hash.h"

int replica_init(struct cluster *c)
{
    c->rep = calloc(1, sizeof(*c->rep));
    if (!c->rep)
        return -1;
    strmap_init(&c->rep->held);
    strmap_init(&c->rep->mine);
    strmap_init(&c->rep->promoted);
    return 0;
}

void replica_held_free(struct replica_held *h)
{
    free(h->origins);
    free(h->state);
    free(h->id);
    free(h);
}

static void replica_wait_free(struct replica_wait *w)
{
    free(w->id);
    free(w);
}

void replica_free(struct cluster *c)
{
    struct replicas *r = c->rep;
    if (!r)
        return;
    for (size_t i = 0; i < r->held.cap; i++)
        if (r->held.slots[i].key)
            replica_held_free(r->held.slots[i].value);
    for (size_t i = 0; i < r->mine.cap; i++) {
        if (r->mine.slots[i].key) {
            struct replica_mine *m = r->mine.slots[i].value;
            free(m->id);
            free(m);
        }
    }
    for (size_t i = 0; i < r->promoted.cap; i++) {
        if (r->promoted.slots[i].key) {
            struct replica_promoted *pr = r->promoted.slots[i].value;
            free(pr->id);
            free(pr);
        }
    }
    strmap_destroy(&r->held);
    strmap_destroy(&r->mine);
    strmap_destroy(&r->promoted);
    while (r->waits) {
        struct replica_wait *w = r->waits;
        r->waits = w->next;
        replica_wait_free(w);
    }
    free(r);
    c->rep = NULL;
}

/* Rendezvous (highest random weight) hashing: the live peer whose hash of (its name, the id) is
 * highest. Suspects count: one is usually alive, and an unanswered turn waits for its fate. */
struct peer *replica_pick(struct cluster *c, const char *id)
{
    struct peer *best = NULL;
    uint64_t best_h = 0;
    size_t idl = strlen(id);
    for (struct peer *p = c->peers; p; p = p->next) {
        if (!p->open || (p->state != MEMBER_ALIVE && p->state != MEMBER_SUSPECT) ||
            !cluster_peer_trusted(c, p))
            continue;
        uint64_t h = hash_fnv1a(p->name, strlen(p->name));
        for (size_t i = 0; i < idl; i++) { /* FNV-1a continued over the id */
            h ^= (uint8_t)id[i];
            h *= 1099511628211ULL;
        }
        h ^= h >> 29; /* spread the last bytes' effect over the whole word */
        h *= 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 32;
        if (!best || h > best_h) {
            best = p;
            best_h = h;
        }
    }
    return best;
}

/* Tell the broker how far every turn is held by its replicas and confirmed by the peers its
 * forwards went to; what is held by the replicas alone may be confirmed to the senders. */
static void replica_report(struct cluster *c)
{
    struct replicas *r = c->rep;
    uint64_t wm = r->flushed;
    for (struct peer *p = c->peers; p; p = p->next)
        if (p->rep_acked < p->rep_sent && p->rep_first - 1 < wm)
            wm = p->rep_first - 1;
    if (r->frozen) {
        if (wm >= r->freeze_until)
            r->frozen = false;
        else if (wm > r->frozen_wm)
            wm = r->frozen_wm;
    }
    if (wm > c->turns_replicated) {
        c->turns_replicated = wm;
        peerlog_durable(c);
    }
    wm = peerlog_forwards_wm(c, wm);
    if (wm > r->reported) {
        r->reported = wm;
        broker_replicated(c->b, wm);
    }
}

static void replica_sent(struct peer *p, uint64_t seq)
{
    if (!seq)
        return; /* not a turn (an empty drop): nothing waits for it */
    if (p->rep_acked >= p->rep_sent)
        p->rep_first = seq; /* nothing was outstanding */
    if (seq > p->rep_sent)
        p->rep_sent = seq;
}

static void replica_send_env(struct cluster *c, struct peer *p, Cl__Envelope *env, uint64_t seq)
{
    struct wbuf *w = cluster_pack(c, env);
    if (!w) {
        log_error(c->log, "cluster: out of memory sending a replica to %s", p->name);
        return;
    }
    if (peer_send(p, w))
        replica_sent(p, seq);
    wbuf_unref(w);
}

static void replica_send_drop(struct cluster *c, struct peer *p, const char *id, uint64_t seq)
{
    Cl__ReplicaDrop d = CL__REPLICA_DROP__INIT;
    Cl__Envelope env = CL__ENVELOPE__INIT;
    d.client_id = (char *)id;
    d.seq = seq;
    env.body_case = CL__ENVELOPE__BODY_REPLICA_DROP;
    env.replica_drop = &d;
    replica_send_env(c, p, &env, seq);
}

static void replica_mine_del(struct replicas *r, struct replica_mine *m)
{
    strmap_del(&r->mine, m->id, strlen(m->id));
    free(m->id);
    free(m);
}

void replica_hook_state(void *ctx, const char *id, const uint8_t *state, size_t len, uint64_t seq)
{
    struct cluster *c = ctx;
    struct replicas *r = c->rep;
    if (c->stopping)
        return;
    struct replica_mine *m = strmap_get(&r->mine, id, strlen(id));
    if (!state) {
        /* Gone here. Leaving, the replica stays: it is what takes over if the hand-off is lost. */
        if (m && m->target && m->target->open && !c->leaving)
            replica_send_drop(c, m->target, id, seq);
        if (m)
            replica_mine_del(r, m);
        return;
    }
    struct peer *t = replica_pick(c, id);
    if (m && m->target && m->target != t && m->target->open)
        replica_send_drop(c, m->target, id, seq); /* it moves */
    if (!t) {
        if (m)
            replica_mine_del(r, m);
        return;
    }
    if (!m) {
        if (!(m = calloc(1, sizeof(*m))) || !(m->id = strdup(id)) ||
            strmap_put(&r->mine, m->id, strlen(m->id), m) != 0) {
            if (m)
                free(m->id);
            free(m);
            log_error(c->log, "cluster: out of memory: session %s not replicated", id);
            return;
        }
    }
    m->target = t;
    Cl__ReplicaPut put = CL__REPLICA_PUT__INIT;
    Cl__Envelope env = CL__ENVELOPE__INIT;
    put.client_id = (char *)id;
    put.state.data = (uint8_t *)state;
    put.state.len = len;
    put.seq = seq;
    /* At the turn's end everything received so far is in the snapshot: the dedup point of a
     * hand-over (cluster_handover.c). */
    Cl__OriginSeq os[REPLICA_ORIGINS_MAX], *osp[REPLICA_ORIGINS_MAX];
    for (struct peer *p = c->peers; p && put.n_origins < REPLICA_ORIGINS_MAX; p = p->next) {
        if (!p->pub_rx_hi)
            continue;
        cl__origin_seq__init(&os[put.n_origins]);
        os[put.n_origins].node = p->name;
        os[put.n_origins].seq = p->pub_rx_hi;
        osp[put.n_origins] = &os[put.n_origins];
        put.n_origins++;
    }
    put.origins = osp;
    env.body_case = CL__ENVELOPE__BODY_REPLICA_PUT;
    env.replica_put = &put;
    replica_send_env(c, t, &env, seq);
    r->puts_tx++;
}

void replica_hook_turn_end(void *ctx, uint64_t seq)
{
    struct cluster *c = ctx;
    peerlog_turn_end(c, seq); /* before the report: this turn's forwards hold it */
    for (struct peer *p = c->peers; p; p = p->next) {
        /* After this turn's puts on the same stream: an empty drop, numbered 0 (not a turn:
         * nothing waits for its acknowledgement, so a peer that cannot take it yet holds nothing
         * up): all we want p to hold of ours was sent before it. */
        if (p->rep_resync && p->open)
            replica_send_drop(c, p, "", 0);
        p->rep_resync = false;
    }
    c->rep->flushed = seq;
    replica_report(c);
    replica_send_acks(c); /* the cluster's own check may have run before the broker's this turn */
    net_kick(c);
}

void replica_hook_stored(void *ctx, uint64_t seq)
{
    struct cluster *c = ctx;
    if (seq <= c->turns_stored)
        return;
    c->turns_stored = seq;
    peerlog_durable(c);
    replica_send_acks(c); /* from the store's completion: no end-of-turn check may follow */
    net_kick(c);
}

void replica_on_ack(struct cluster *c, struct peer *p, const Cl__ReplicaAck *a)
{
    bool released = a->publish_seq && peerlog_confirmed(p, a->publish_seq);
    if (a->seq <= p->rep_acked) {
        if (released)
            replica_report(c);
        return;
    }
    p->rep_acked = a->seq > p->rep_sent ? p->rep_sent : a->seq;
    if (p->rep_acked < p->rep_sent)
        p->rep_first = p->rep_acked + 1;
    replica_report(c);
}

/* Acknowledge to each peer the turns of its replicas applied here (end of a loop turn). */
void replica_send_acks(struct cluster *c)
{
    for (struct peer *p = c->peers; p; p = p->next) {
        uint64_t confirm = peerlog_confirmable(c, p), rep = peerlog_replicas_confirmable(c, p);
        if ((rep <= p->rep_rx_acked && confirm <= p->pub_rx_acked) || !p->open)
            continue;
        Cl__ReplicaAck a = CL__REPLICA_ACK__INIT;
        Cl__Envelope env = CL__ENVELOPE__INIT;
        a.seq = rep;
        a.publish_seq = confirm;
        env.body_case = CL__ENVELOPE__BODY_REPLICA_ACK;
        env.replica_ack = &a;
        struct wbuf *w = cluster_pack(c, &env);
        if (w && peer_send(p, w)) {
            p->rep_rx_acked = rep;
            p->pub_rx_acked = confirm;
        }
        if (w)
            wbuf_unref(w);
    }
}

static void replica_got(struct cluster *c, struct peer *p, uint64_t seq)
{
    if (seq > p->rep_rx) {
        p->rep_rx = seq;
        c->kick = true;
    }
}

/* A TakeoverReply without session state: the final "nothing here" (last) or "wait" (not last). */
static void replica_reply_empty(struct cluster *c, struct peer *p, const char *id, uint64_t token,
                                bool last)
{
    Cl__TakeoverReply rep = CL__TAKEOVER_REPLY__INIT;
    Cl__Envelope env = CL__ENVELOPE__INIT;
    rep.client_id = (char *)id;
    rep.token = token;
    rep.last = last;
    rep.replica_wait = !last;
    env.body_case = CL__ENVELOPE__BODY_TAKEOVER_REPLY;
    env.takeover_reply = &rep;
    struct wbuf *wb = cluster_pack(c, &env);
    if (wb) {
        peer_send(p, wb);
        wbuf_unref(wb);
    }
}

/* Answer a waiting takeover for good: nothing (the owner answered it) or the promoted session. */
static void replica_wait_answer(struct cluster *c, struct replica_wait *w, bool session)
{
    if (session)
        takeover_export(c, w->requester, w->id, w->token);
    else
        replica_reply_empty(c, w->requester, w->id, w->token, true);
}

/* The session id waits for a hand-over: its waiting takeovers are told to wait on, and do. */
static void replica_waits_defer(struct cluster *c, const char *id)
{
    uint64_t until = uv_now(c->loop) + CLUSTER_HANDOVER_MS + 1000;
    for (struct replica_wait *w = c->rep->waits; w; w = w->next) {
        if (strcmp(w->id, id) != 0)
            continue;
        if (w->deadline < until)
            w->deadline = until;
        if (w->requester->open) /* its own wait restarts on a "wait" answer */
            replica_reply_empty(c, w->requester, w->id, w->token, false);
    }
}

/* Answer and forget the waits for id (all of them when id is NULL and requester matches). */
static void replica_waits_resolve(struct cluster *c, const char *id, bool session)
{
    struct replica_wait **pp = &c->rep->waits;
    while (*pp) {
        struct replica_wait *w = *pp;
        if (strcmp(w->id, id) != 0) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        if (w->requester->open)
            replica_wait_answer(c, w, session);
        session = false; /* the session moved to the first; the others get nothing */
        replica_wait_free(w);
    }
}

void replica_on_put(struct cluster *c, struct peer *p, const Cl__ReplicaPut *rp)
{
    struct replicas *r = c->rep;
    size_t idl = rp->client_id ? strlen(rp->client_id) : 0;
    if (idl == 0 || idl > UINT16_MAX || rp->state.len == 0) {
        cluster_bad_input(c, p->name, "an invalid session replica");
        return;
    }
    replica_got(c, p, rp->seq);
    uint8_t *state = malloc(rp->state.len);
    if (!state) {
        log_error(c->log, "cluster: out of memory holding the replica of %s", rp->client_id);
        return;
    }
    memcpy(state, rp->state.data, rp->state.len);
    struct replica_held *h = strmap_get(&r->held, rp->client_id, idl);
    if (!h) {
        if (!(h = calloc(1, sizeof(*h))) || !(h->id = strdup(rp->client_id)) ||
            strmap_put(&r->held, h->id, idl, h) != 0) {
            if (h)
                free(h->id);
            free(h);
            free(state);
            log_error(c->log, "cluster: out of memory holding the replica of %s", rp->client_id);
            return;
        }
    }
    snprintf(h->owner, sizeof(h->owner), "%s", p->name);
    free(h->state);
    h->state = state;
    h->len = rp->state.len;
    free(h->origins);
    h->origins = NULL;
    h->norigins = 0;
    if (rp->n_origins && (h->origins = calloc(rp->n_origins, sizeof(*h->origins)))) {
        for (size_t i = 0; i < rp->n_origins; i++) {
            if (!rp->origins[i]->node)
                continue;
            snprintf(h->origins[h->norigins].node, sizeof(h->origins->node), "%s",
                     rp->origins[i]->node);
            h->origins[h->norigins++].seq = rp->origins[i]->seq;
        }
    }
    if (h->restored) {
        h->restored = false;
        r->nrestored--;
    }
    replica_record(c, h);
    r->puts_rx++;
}

/* h leaves this node: its record in our store too. */
void replica_held_forget(struct cluster *c, struct replica_held *h)
{
    if (h->restored) {
        h->restored = false;
        c->rep->nrestored--;
    }
    if (broker_replica_record(c->b, h->id, NULL, 0) != 0)
        log_error(c->log, "store: out of memory deleting the replica of %s", h->id);
}

void replica_held_del(struct cluster *c, struct replica_held *h)
{
    replica_held_forget(c, h);
    strmap_del(&c->rep->held, h->id, strlen(h->id));
    replica_held_free(h);
}

void replica_on_drop(struct cluster *c, struct peer *p, const Cl__ReplicaDrop *d)
{
    if (!d->client_id) {
        cluster_bad_input(c, p->name, "an invalid replica drop");
        return;
    }
    replica_got(c, p, d->seq);
    if (!d->client_id[0]) { /* p sent us all it wants us to hold: the rest restored is stale */
        replica_restored_drop(c, p);
        return;
    }
    struct replica_held *h = strmap_get(&c->rep->held, d->client_id, strlen(d->client_id));
    if (h && strcmp(h->owner, p->name) == 0) {
        replica_held_del(c, h);
        replica_waits_resolve(c, d->client_id, false); /* the owner handed it over itself */
    }
}

void replica_on_handoff(struct cluster *c, struct peer *p, const char *id)
{
    struct replica_held *h = strmap_get(&c->rep->held, id, strlen(id));
    if (h && strcmp(h->owner, p->name) == 0)
        replica_held_del(c, h); /* the session itself came: the replica is stale */
}

static void replica_route_add(void *ctx, const char *filter)
{
    routes_local_add(ctx, filter, strlen(filter));
}

/* The owner is gone: the replica becomes the session, here. With a hand-over (ho) of what the
 * peers kept for the owner, a takeover waiting for it waits for that too. */
void replica_promote(struct cluster *c, struct replica_held *h, struct handover *ho)
{
    replica_held_forget(c, h); /* the session's own record replaces it */
    char *id = h->id;
    h->id = NULL;
    strmap_del(&c->rep->held, id, strlen(id));
    if (broker_session_restore_state(c->b, id, h->state, h->len, replica_route_add, c) != 0)
        log_error(c->log, "cluster: the replica of session %s from %s was damaged: part is lost",
                  id, h->owner);
    else
        log_info(c->log, "cluster: %s is gone: its session %s resumes here from its replica",
                 h->owner, id);
    c->rep->promoted_n++;
    struct replica_promoted *pr = strmap_get(&c->rep->promoted, id, strlen(id));
    if (!pr && (pr = calloc(1, sizeof(*pr))) && (pr->id = strdup(id)) &&
        strmap_put(&c->rep->promoted, pr->id, strlen(pr->id), pr) != 0) {
        free(pr->id);
        free(pr);
        pr = NULL;
    }
    if (pr)
        snprintf(pr->owner, sizeof(pr->owner), "%s", h->owner);
    if (ho) {
        handover_add(c, ho, id, h->origins, h->norigins);
        replica_waits_defer(c, id);
    } else {
        replica_waits_resolve(c, id, true);
    }
    free(id);
    replica_held_free(h);
}

void replica_waits_settle(struct cluster *c, const char *id)
{
    replica_waits_resolve(c, id, true);
}

/* Answer p's takeover "wait" and remember it; false when out of memory (answered at once). */
static bool replica_wait_add(struct cluster *c, struct peer *p, const Cl__TakeoverRequest *req)
{
    struct replica_wait *w = calloc(1, sizeof(*w));
    if (!w || !(w->id = strdup(req->client_id))) {
        free(w);
        return false;
    }
    w->requester = p;
    w->token = req->token;
    w->deadline = uv_now(c->loop) + CLUSTER_REPLICA_WAIT_MS;
    w->next = c->rep->waits;
    c->rep->waits = w;
    replica_reply_empty(c, p, req->client_id, req->token, false);
    return true;
}

bool replica_on_takeover_request(struct cluster *c, struct peer *p, const Cl__TakeoverRequest *req)
{
    struct replicas *r = c->rep;
    struct replica_held *h = strmap_get(&r->held, req->client_id, strlen(req->client_id));
    if (!h) /* promoted here, its owner's kept messages still coming: the session moves after */
        return !req->clean_session && handover_holds(c, req->client_id) &&
               replica_wait_add(c, p, req);
    struct peer *owner = cluster_peer_find(c, h->owner);
    if (req->clean_session) {
        replica_held_del(c, h); /* the client starts over: nothing of it is wanted */
        return false;
    }
    if (owner == p)
        return false; /* the owner itself asks: its own session is there */
    if (!owner || !owner->open) {
        replica_promote(c, h, NULL); /* then moved as any session here */
        return false;
    }
    return replica_wait_add(c, p, req);
}

void replica_promoted_forget(struct cluster *c, const char *client_id)
{
    struct replica_promoted *pr = strmap_del(&c->rep->promoted, client_id, strlen(client_id));
    if (pr) {
        free(pr->id);
        free(pr);
    }
}

bool replica_held_wait(struct cluster *c, const char *client_id, bool clean)
{
    struct replica_held *h = strmap_get(&c->rep->held, client_id, strlen(client_id));
    if (!h)
        return false;
    if (clean) {
        replica_held_del(c, h);
        return false;
    }
    struct peer *owner = cluster_peer_find(c, h->owner);
    return owner && owner->open;
}

static void replica_touch_one(const char *id, void *ctx)
{
    struct replica_ids *l = ctx;
    replica_ids_add(l, id);
}

/* Every persistent session here is sent to its replica again (whose choice may have changed). */
static void replica_touch_all(struct cluster *c)
{
    struct replica_ids l = {0};
    broker_sessions_foreach(c->b, replica_touch_one, &l);
    for (size_t i = 0; i < l.n; i++)
        broker_session_touch(c->b, l.ids[i]);
    replica_ids_free(&l);
}

/* p is back (a partition healed): the sessions promoted here from its replicas while it was away
 * go, unless a client is connected to one. p still has the session, and every QoS 1/2 message
 * that came here for it also went into p's store-and-forward log on its publisher's node
 * (cluster_log.c), so p gets them all; keeping both would deliver them twice. */
static void replica_owner_back(struct cluster *c, struct peer *p)
{
    struct replicas *r = c->rep;
    struct replica_ids l = {0};
    for (size_t i = 0; i < r->promoted.cap; i++) {
        struct replica_promoted *pr = r->promoted.slots[i].key ? r->promoted.slots[i].value : NULL;
        if (pr && strcmp(pr->owner, p->name) == 0)
            replica_ids_add(&l, pr->id);
    }
    for (size_t i = 0; i < l.n; i++) {
        struct replica_promoted *pr = strmap_del(&r->promoted, l.ids[i], strlen(l.ids[i]));
        if (pr) {
            free(pr->id);
            free(pr);
        }
        if (broker_session_online(c->b, l.ids[i]))
            continue;
        const struct session_visitor none = {0};
        if (broker_session_takeover(c->b, l.ids[i], &none)) {
            r->dropped_on_return++;
            log_info(c->log,
                     "cluster: %s is back: session %s, promoted here while it was away, "
                     "goes back to it",
                     p->name, l.ids[i]);
        }
    }
    replica_ids_free(&l);
}

void replica_member_up(struct cluster *c, struct peer *p)
{
    replica_owner_back(c, p);
    replica_touch_all(c); /* rendezvous winners may have changed: replicas move */
    p->rep_resync = true; /* then tell it: what it restored and we did not send is stale */
}

/* p no longer holds what it held of ours (it died, or restarted: its memory and last turns are
 * gone): everything goes again to each session's winner, and the acknowledgements that waited on p
 * wait for that turn instead. Its own turn numbers start again. */
static void replica_retarget(struct cluster *c, struct peer *p)
{
    struct replicas *r = c->rep;
    bool held_ours = p->rep_acked < p->rep_sent;
    for (size_t i = 0; !held_ours && i < r->mine.cap; i++)
        if (r->mine.slots[i].key && ((struct replica_mine *)r->mine.slots[i].value)->target == p)
            held_ours = true;
    if (held_ours) {
        /* What it held (or had not acknowledged) is sent to the next winner in the next turn:
         * acknowledgements waiting on p wait for that turn instead. */
        if (!r->frozen) {
            r->frozen = true;
            r->frozen_wm = r->reported;
        }
        r->freeze_until = broker_replication_seq(c->b);
        for (size_t i = 0; i < r->mine.cap; i++) {
            struct replica_mine *m = r->mine.slots[i].key ? r->mine.slots[i].value : NULL;
            if (m && m->target == p)
                m->target = NULL;
        }
        replica_touch_all(c);
    }
    p->rep_sent = p->rep_acked = p->rep_first = 0;
    peerlog_replicas_reset(p);
}

void replica_peer_restarted(struct cluster *c, struct peer *p)
{
    log_info(c->log, "cluster: %s restarted: its replicas of our sessions are sent again", p->name);
    replica_retarget(c, p);
    replica_touch_all(c);
    p->rep_resync = true;
}

void replica_member_gone(struct cluster *c, struct peer *p)
{
    struct replicas *r = c->rep;
    replica_retarget(c, p);
    peerlog_peer_reset(p); /* what went to it is in its log now, for a hand-over */

    struct replica_ids l = {0};
    for (size_t i = 0; i < r->held.cap; i++) {
        struct replica_held *h = r->held.slots[i].key ? r->held.slots[i].value : NULL;
        if (h && strcmp(h->owner, p->name) == 0 && replica_ids_add(&l, h->id) != 0)
            log_error(c->log, "cluster: out of memory promoting the sessions of %s", p->name);
    }
    struct handover *ho = l.n ? handover_start(c, p) : NULL;
    for (size_t i = 0; i < l.n; i++) {
        struct replica_held *h = strmap_get(&r->held, l.ids[i], strlen(l.ids[i]));
        if (h)
            replica_promote(c, h, ho);
    }
    replica_ids_free(&l);
    handover_peer_gone(c, p); /* it answers no hand-over of another's any more */
    handover_ask(c, ho, p);

    struct replica_wait **pp = &r->waits;
    while (*pp) {
        struct replica_wait *w = *pp;
        if (w->requester == p) {
            *pp = w->next;
            replica_wait_free(w);
        } else {
            pp = &w->next;
        }
    }
    replica_report(c);
}

void replica_tick(struct cluster *c, uint64_t now)
{
    replica_restored_promote(c, now);
    struct replica_wait **pp = &c->rep->waits;
    while (*pp) {
        struct replica_wait *w = *pp;
        if (now < w->deadline) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        log_warn(c->log,
                 "cluster: takeover of %s: the owner of its replica neither answered nor "
                 "died in time",
                 w->id);
        if (w->requester->open)
            replica_wait_answer(c, w, false);
        replica_wait_free(w);
    }
}

void replica_metrics(const struct cluster *c, struct cluster_metric out[REPLICA_METRICS])
{
    const struct replicas *r = c->rep;
    out[0] = (struct cluster_metric){"sol_cluster_replicas_held", "gauge",
                                     "persistent sessions of other nodes replicated here",
                                     r ? r->held.count : 0};
    out[1] = (struct cluster_metric){"sol_cluster_replicas_own", "gauge",
                                     "persistent sessions here with a replica on another node",
                                     r ? r->mine.count : 0};
    out[2] = (struct cluster_metric){"sol_cluster_replicas_promoted_total", "counter",
                                     "replicas that became sessions here when their owner died",
                                     r ? r->promoted_n : 0};
    out[3] = (struct cluster_metric){"sol_cluster_replica_updates_sent_total", "counter",
                                     "session snapshots sent to replicas", r ? r->puts_tx : 0};
    out[4] = (struct cluster_metric){"sol_cluster_replica_updates_received_total", "counter",
                                     "session snapshots received as a replica", r ? r->puts_rx : 0};
}
