/*
 * cluster_takeover.c - one client id, one connection, cluster-wide.
 *
 * When a client connects here, the broker holds its CONNACK (on_connect returns true) while every
 * live peer is told "client X is connecting on this node". A peer that holds X closes it there (its
 * will is published there and forwarded like any PUBLISH) and sends back the persistent session,
 * complete (broker.h, struct session_visitor): subscriptions, in-flight messages with their packet
 * ids and states (PUBREL-pending included), the queue, the inbound QoS 2 ids and the next packet
 * id, in chunks, so the client completes every QoS 1/2 flow on the new node exactly once. This node
 * imports them and lets the CONNACK go once every peer asked has answered, or after
 * CLUSTER_TAKEOVER_TIMEOUT_MS, or when the peers it waits for die.
 *
 * Leaving (SIGTERM): before the leave is announced, each persistent session is sent, the same way,
 * to the live peer that holds its replica (cluster_replica.c; a TakeoverReply with token 0, which
 * resumes no CONNECT there); if that frame is lost, the replica there becomes the session once we
 * are marked left. That peer keeps it as an offline session and announces its routes; when the
 * client comes back on any node, the usual takeover moves it again from there.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cluster_int.h"

/* A CONNECT held here until every peer asked has answered (or the deadline). */
struct takeover {
    struct takeover *next;
    uint64_t token;
    char *client_id;
    uint64_t deadline;
    struct peer **waiting;
    size_t nwaiting;
};

static void takeover_finish(struct cluster *c, struct takeover *t)
{
    for (struct takeover **pp = &c->takeovers; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    broker_connect_resume(c->b, t->token);
    free(t->client_id);
    free(t->waiting);
    free(t);
}

bool takeover_hook(void *ctx, const char *client_id, bool clean_session, uint64_t token)
{
    struct cluster *c = ctx;
    size_t n = 0;
    replica_promoted_forget(c, client_id); /* its client is back: the session is the real one */
    for (struct peer *p = c->peers; p; p = p->next)
        n += p->open;
    if (n == 0)
        return false; /* a cluster of one */
    struct takeover *t = calloc(1, sizeof(*t));
    Cl__TakeoverRequest r = CL__TAKEOVER_REQUEST__INIT;
    Cl__Envelope env = CL__ENVELOPE__INIT;
    struct wbuf *w = NULL;
    if (!t || !(t->client_id = strdup(client_id)) || !(t->waiting = calloc(n, sizeof(*t->waiting))))
        goto fail;
    r.client_id = t->client_id;
    r.token = token;
    r.clean_session = clean_session;
    env.body_case = CL__ENVELOPE__BODY_TAKEOVER_REQUEST;
    env.takeover_request = &r;
    if (!(w = cluster_pack(c, &env)))
        goto fail;
    for (struct peer *p = c->peers; p; p = p->next)
        if (p->open && peer_send(p, w))
            t->waiting[t->nwaiting++] = p;
    wbuf_unref(w);
    if (t->nwaiting == 0)
        goto fail;
    t->token = token;
    t->deadline = uv_now(c->loop) + CLUSTER_TAKEOVER_TIMEOUT_MS;
    if (replica_held_wait(c, client_id, clean_session))
        t->deadline = uv_now(c->loop) + CLUSTER_REPLICA_WAIT_MS; /* its owner's answer or death */
    t->next = c->takeovers;
    c->takeovers = t;
    return true;
fail:
    if (t) {
        free(t->client_id);
        free(t->waiting);
    }
    free(t);
    return false;
}

/* Builds TakeoverReply chunks from what broker_session_takeover reports. */
struct session_out {
    struct chunker ck;
    const Cl__TakeoverRequest *req;
    Cl__TakeoverReply body;
    bool had_session;
    Cl__SessionSub *subs;
    Cl__SessionSub **sub_ptrs;
    size_t nsubs, subcap;
    Cl__SessionMsg *msgs;
    Cl__SessionMsg **msg_ptrs;
    Cl__Publish *pubs;
    struct message **held;
    size_t nmsgs, msgcap;
    uint32_t *rx_ids;
    size_t nrx, rxcap;
    uint16_t next_id;
    uint32_t expiry;        /* Session Expiry Interval, as the wire has it */
    struct move_stub *stub; /* a real move: the stub left here (cluster_move.c) */
};

static void session_fill(void *ctx, Cl__Envelope *env, bool last)
{
    struct session_out *so = ctx;
    Cl__TakeoverReply *r = &so->body;
    cl__takeover_reply__init(r);
    for (size_t i = 0; i < so->nsubs; i++)
        so->sub_ptrs[i] = &so->subs[i];
    for (size_t i = 0; i < so->nmsgs; i++) {
        so->msgs[i].msg = so->held[i] ? &so->pubs[i] : NULL;
        so->msg_ptrs[i] = &so->msgs[i];
    }
    r->client_id = so->req->client_id;
    r->token = so->req->token;
    r->had_session = so->had_session;
    r->subs = so->sub_ptrs;
    r->n_subs = so->nsubs;
    r->msgs = so->msg_ptrs;
    r->n_msgs = so->nmsgs;
    r->last = last;
    if (last) {
        r->rx_ids = so->rx_ids;
        r->n_rx_ids = so->nrx;
        r->next_id = so->next_id;
        r->session_expiry = so->expiry;
    }
    env->body_case = CL__ENVELOPE__BODY_TAKEOVER_REPLY;
    env->takeover_reply = r;
}

static void session_release(void *ctx)
{
    struct session_out *so = ctx;
    for (size_t i = 0; i < so->nsubs; i++)
        free(so->subs[i].filter);
    for (size_t i = 0; i < so->nmsgs; i++)
        if (so->held[i])
            message_unref(so->held[i]);
    so->nsubs = so->nmsgs = 0;
}

/* Whether to collect what the broker reports: not once out of memory, nor for a clean start. */
static bool session_wanted(struct session_out *so)
{
    return !so->ck.failed && !so->req->clean_session;
}

static void session_sub(void *ctx, const char *filter, uint8_t opts, uint32_t subid)
{
    struct session_out *so = ctx;
    so->had_session = true;
    move_stub_filter(so->ck.c, so->stub, filter);
    void **const arrs[] = {(void **)&so->subs, (void **)&so->sub_ptrs};
    const size_t elem[] = {sizeof(*so->subs), sizeof(*so->sub_ptrs)};
    if (!session_wanted(so) || !chunk_reserve(&so->ck, &so->subcap, so->nsubs, arrs, elem, 2))
        return;
    Cl__SessionSub *s = &so->subs[so->nsubs];
    cl__session_sub__init(s);
    if (!(s->filter = strdup(filter))) {
        so->ck.failed = true;
        return;
    }
    s->qos = opts;
    s->subid = subid;
    so->nsubs++;
    chunk_added(&so->ck, strlen(filter) + 8);
}

static void session_msg(void *ctx, struct message *msg, const struct session_msg_info *info)
{
    struct session_out *so = ctx;
    so->had_session = true;
    void **const arrs[] = {(void **)&so->msgs, (void **)&so->msg_ptrs, (void **)&so->pubs,
                           (void **)&so->held};
    const size_t elem[] = {sizeof(*so->msgs), sizeof(*so->msg_ptrs), sizeof(*so->pubs),
                           sizeof(*so->held)};
    if (!session_wanted(so) || !chunk_reserve(&so->ck, &so->msgcap, so->nmsgs, arrs, elem, 4))
        return;
    size_t i = so->nmsgs++;
    cl__session_msg__init(&so->msgs[i]);
    cl__publish__init(&so->pubs[i]);
    so->msgs[i].qos = info->qos;
    so->msgs[i].packet_id = info->id;
    so->msgs[i].state = info->state;
    so->msgs[i].retain = info->retain;
    so->held[i] = msg ? message_ref(msg) : NULL; /* none when only the PUBREL is pending */
    if (msg)
        publish_fill(&so->pubs[i], msg, NULL, uv_now(so->ck.c->loop)); /* no retained stamp */
    chunk_added(&so->ck, (msg ? msg->topic_len + msg->payload_len : 0) + 32);
}

static void session_rx_id(void *ctx, uint16_t id)
{
    struct session_out *so = ctx;
    void **const arrs[] = {(void **)&so->rx_ids};
    const size_t elem[] = {sizeof(*so->rx_ids)};
    if (!session_wanted(so) || !chunk_reserve(&so->ck, &so->rxcap, so->nrx, arrs, elem, 1))
        return;
    so->rx_ids[so->nrx++] = id;
}

static void session_expiry(void *ctx, uint32_t seconds)
{
    struct session_out *so = ctx;
    so->expiry = seconds == UINT32_MAX ? 0 : seconds; /* on the wire 0 means never */
}

static void session_next_id(void *ctx, uint16_t next_id)
{
    struct session_out *so = ctx;
    so->next_id = so->req->clean_session ? 0 : next_id;
}

/* Close client_id here and send its session (unless req asks for a clean start) to p, in
 * TakeoverReply chunks answering req. */
static void session_export(struct cluster *c, struct peer *p, const Cl__TakeoverRequest *req)
{
    struct session_out so = {.req = req};
    so.ck = (struct chunker){c, p, session_fill, session_release, &so, 0, false};
    const struct session_visitor v = {&so,           session_sub,     session_msg,
                                      session_rx_id, session_next_id, session_expiry,
                                      NULL /* a delayed will does not move (docs/cluster.md) */};
    replica_promoted_forget(c, req->client_id);
    /* A takeover, or our hand-off on leaving (token 0): peers may still send its messages here
     * until the new node's routes reach them. */
    if (!req->clean_session && (req->token || c->leaving))
        so.stub = move_stub_begin(c, p, req->client_id);
    bool existed = broker_session_takeover(c->b, req->client_id, &v);
    move_stub_end(c, so.stub, existed);
    so.had_session = so.had_session || existed;
    if (existed)
        log_info(c->log, "cluster: client %s moved to %s", req->client_id, p->name);
    if (so.ck.failed)
        log_error(c->log, "cluster: out of memory moving session %s: part of it is lost",
                  req->client_id);
    if (!chunk_flush(&so.ck, true))
        log_error(c->log, "cluster: out of memory moving session %s", req->client_id);
    free(so.subs);
    free(so.sub_ptrs);
    free(so.msgs);
    free(so.msg_ptrs);
    free(so.pubs);
    free(so.held);
    free(so.rx_ids);
}

void takeover_export(struct cluster *c, struct peer *p, const char *client_id, uint64_t token)
{
    Cl__TakeoverRequest req = CL__TAKEOVER_REQUEST__INIT;
    req.client_id = (char *)client_id;
    req.token = token;
    session_export(c, p, &req);
}

/* A peer's client is connecting there: close ours and send the session over (unless it starts
 * clean). */
void takeover_on_request(struct cluster *c, struct peer *p, const Cl__TakeoverRequest *r)
{
    if (!r->client_id || !r->client_id[0]) {
        cluster_bad_input(c, p->name, "a takeover request without a client id");
        return;
    }
    if (replica_on_takeover_request(c, p, r))
        return; /* answered "wait": the replica's owner is not known to be gone yet */
    session_export(c, p, r);
}

/* Client ids collected before any session is moved (moving one deletes it from the table). */
struct id_list {
    char **ids;
    size_t n, cap;
    bool failed;
};

static void id_list_add(const char *client_id, void *ctx)
{
    struct id_list *l = ctx;
    if (l->failed)
        return;
    size_t cap = buf_grow((void **)&l->ids, l->cap, l->n + 1, sizeof(*l->ids), SIZE_MAX);
    if (!cap) {
        l->failed = true;
        return;
    }
    l->cap = cap;
    if (!(l->ids[l->n] = strdup(client_id))) {
        l->failed = true;
        return;
    }
    l->n++;
}

size_t takeover_handoff_all(struct cluster *c)
{
    struct id_list l = {0};
    size_t moved = 0;
    broker_sessions_foreach(c->b, id_list_add, &l);
    for (size_t i = 0; i < l.n; i++) {
        /* To the node holding its replica: if this frame is lost, the replica takes over there
         * when we are marked left. */
        struct peer *to = replica_pick(c, l.ids[i]);
        if (!to) {
            log_warn(c->log,
                     "cluster: no live peer to take persistent session %s: it stays in "
                     "this node's store",
                     l.ids[i]);
            continue;
        }
        if (c->drop_handoff) {
            const struct session_visitor none = {0};
            broker_session_takeover(c->b, l.ids[i], &none);
            log_warn(c->log, "cluster: test fault: hand-off of session %s to %s dropped", l.ids[i],
                     to->name);
        } else {
            takeover_export(c, to, l.ids[i], 0); /* token 0: it resumes no CONNECT there */
        }
        moved++;
    }
    if (moved)
        log_info(c->log, "cluster: leaving: %zu persistent session(s) handed over", moved);
    if (l.failed)
        log_error(c->log, "cluster: out of memory listing sessions: some are not handed over");
    for (size_t i = 0; i < l.n; i++)
        free(l.ids[i]);
    free(l.ids);
    return moved;
}

static struct takeover *takeover_find(struct cluster *c, uint64_t token)
{
    for (struct takeover *t = c->takeovers; t; t = t->next)
        if (t->token == token)
            return t;
    return NULL;
}

/* Stop waiting for p; resume the CONNECT when nobody is left to wait for. */
static void takeover_unwait(struct cluster *c, struct takeover *t, struct peer *p)
{
    for (size_t i = 0; i < t->nwaiting; i++) {
        if (t->waiting[i] == p) {
            t->waiting[i] = t->waiting[--t->nwaiting];
            break;
        }
    }
    if (t->nwaiting == 0)
        takeover_finish(c, t);
}

/* Import what a peer moved, even after our wait timed out: the peer has already deleted it there.
 */
void takeover_on_reply(struct cluster *c, struct peer *p, const Cl__TakeoverReply *r)
{
    if (!r->client_id || !r->client_id[0]) {
        cluster_bad_input(c, p->name, "a takeover reply without a client id");
        return;
    }
    struct takeover *t = takeover_find(c, r->token);
    bool mine = t && strcmp(t->client_id, r->client_id) == 0;
    for (size_t i = 0; i < r->n_subs; i++) {
        const char *f = r->subs[i]->filter;
        size_t len = f ? strlen(f) : 0;
        if (!publish_moved_sub_valid(r->subs[i])) {
            cluster_bad_input(c, p->name, "an invalid moved subscription");
            continue;
        }
        if (broker_session_restore_sub(c->b, r->client_id, f, (uint8_t)r->subs[i]->qos,
                                       r->subs[i]->subid) == 0)
            routes_local_add(c, f, len);
    }
    if ((mine || !r->token) && r->n_subs) /* a takeover, or a leaving node's hand-off */
        move_in_begin(c, r->client_id);   /* its old node may pass on what still reaches it */
    for (size_t i = 0; i < r->n_msgs; i++) {
        const Cl__SessionMsg *sm = r->msgs[i];
        struct message *m = NULL;
        if (!publish_moved_msg(sm, uv_now(c->loop), &m)) {
            cluster_bad_input(c, p->name, "an invalid moved message");
            continue;
        }
        struct session_msg_info info = {(uint16_t)sm->packet_id, (uint8_t)sm->qos,
                                        (uint8_t)sm->state, sm->retain};
        broker_session_restore_msg(c->b, r->client_id, m, &info);
        if (m)
            message_unref(m);
    }
    for (size_t i = 0; i < r->n_rx_ids; i++) {
        if (r->rx_ids[i] == 0 || r->rx_ids[i] > UINT16_MAX) {
            cluster_bad_input(c, p->name, "an invalid moved packet id");
            continue;
        }
        broker_session_restore_rx_id(c->b, r->client_id, (uint16_t)r->rx_ids[i]);
    }
    if (r->next_id && r->next_id <= UINT16_MAX)
        broker_session_restore_next_id(c->b, r->client_id, (uint16_t)r->next_id);
    if (r->last && r->had_session && r->session_expiry)
        broker_session_restore_expiry(c->b, r->client_id, r->session_expiry);
    replica_on_handoff(c, p, r->client_id);
    if (r->replica_wait && mine) {
        uint64_t until = uv_now(c->loop) + CLUSTER_REPLICA_WAIT_MS;
        if (until > t->deadline)
            t->deadline = until; /* p holds its replica: wait for the owner's answer or death */
    }
    if (r->last && mine)
        takeover_unwait(c, t, p);
}

void takeover_tick(struct cluster *c, uint64_t now)
{
    struct takeover *t = c->takeovers;
    while (t) {
        struct takeover *next = t->next;
        if (now >= t->deadline) {
            log_warn(c->log, "cluster: takeover of %s: %zu peer(s) did not answer in %d ms",
                     t->client_id, t->nwaiting, CLUSTER_TAKEOVER_TIMEOUT_MS);
            takeover_finish(c, t);
        }
        t = next;
    }
}

void takeover_peer_gone(struct cluster *c, struct peer *p)
{
    struct takeover *t = c->takeovers;
    while (t) {
        struct takeover *next = t->next;
        takeover_unwait(c, t, p);
        t = next;
    }
}

void takeover_free_all(struct cluster *c)
{
    while (c->takeovers) {
        struct takeover *t = c->takeovers;
        c->takeovers = t->next;
        free(t->client_id);
        free(t->waiting);
        free(t);
    }
}
