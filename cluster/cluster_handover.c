/*
 * cluster_handover.c - a dead node's kept messages, handed to the sessions promoted from it.
 *
 * When a node (the owner) dies for good, its persistent sessions resume from their replicas
 * (cluster_replica.c). The QoS 1/2 PUBLISHes its peers forwarded to it and it had not confirmed
 * durable (cluster_log.c) are still in those peers' logs: the owner may have died before they
 * reached its disk or its replicas. So the node that promotes the sessions asks every peer for
 * what it kept for the owner (Handover ask) and delivers each message to the promoted sessions it
 * matches, unless the session already had it:
 *   - the replica says up to which number the owner had each node's stream (ReplicaPut.origins):
 *     at or below it, the message is in the snapshot or was delivered and completed;
 *   - a message this node received directly after the promotion (the sender already knew the
 *     new routes) was delivered by routing: recorded per peer (cluster_move.c's window).
 * Its own log for the owner is handed over at once. A takeover of a promoted session waits until
 * every peer has answered (or died, or CLUSTER_HANDOVER_MS passed), so the session moves whole.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cluster_int.h"

/* A promoted session and how far the owner had each node's stream for it. */
struct handover_session {
    char *id;
    struct origin_seq *origins;
    size_t n;
};

/* The hand-over of one dead owner's kept messages, while peers still have to answer. */
struct handover {
    struct handover *next;
    char owner[64];
    struct peer **pending;
    size_t npending;
    struct handover_session *sess;
    size_t nsess, cap;
    uint64_t deadline;
};

struct handovers {
    struct handover *list;
    uint64_t asked, delivered, skipped;
};

int handover_init(struct cluster *c)
{
    c->handovers = calloc(1, sizeof(*c->handovers));
    return c->handovers ? 0 : -1;
}

static void handover_free_one(struct handover *ho)
{
    for (size_t i = 0; i < ho->nsess; i++) {
        free(ho->sess[i].id);
        free(ho->sess[i].origins);
    }
    free(ho->sess);
    free(ho->pending);
    free(ho);
}

void handover_free(struct cluster *c)
{
    struct handovers *hs = c->handovers;
    if (!hs)
        return;
    while (hs->list) {
        struct handover *ho = hs->list;
        hs->list = ho->next;
        handover_free_one(ho);
    }
    free(hs);
    c->handovers = NULL;
}

struct handover *handover_start(struct cluster *c, const struct peer *owner)
{
    struct handover *ho = calloc(1, sizeof(*ho));
    if (!ho) {
        log_error(c->log, "cluster: out of memory handing over what was kept for %s", owner->name);
        return NULL;
    }
    snprintf(ho->owner, sizeof(ho->owner), "%s", owner->name);
    return ho;
}

void handover_add(struct cluster *c, struct handover *ho, const char *id,
                  const struct origin_seq *origins, size_t n)
{
    if (!ho)
        return;
    if (ho->nsess == ho->cap) {
        size_t cap =
            buf_grow((void **)&ho->sess, ho->cap, ho->nsess + 1, sizeof(*ho->sess), SIZE_MAX);
        if (!cap)
            goto oom;
        ho->cap = cap;
    }
    struct handover_session *s = &ho->sess[ho->nsess];
    *s = (struct handover_session){strdup(id), NULL, 0};
    if (!s->id || (n && !(s->origins = malloc(n * sizeof(*origins))))) {
        free(s->id);
        goto oom;
    }
    if (n)
        memcpy(s->origins, origins, n * sizeof(*origins));
    s->n = n;
    ho->nsess++;
    move_in_begin(c, id); /* from now on, what comes directly is recorded */
    return;
oom:
    log_error(c->log, "cluster: out of memory: messages kept for session %s may not reach it", id);
}

/* How far s had origin's stream; a slot for it (NULL when out of memory). */
static uint64_t *handover_origin(struct handover_session *s, const char *origin, size_t len)
{
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->origins[i].node) == len && memcmp(s->origins[i].node, origin, len) == 0)
            return &s->origins[i].seq;
    if (len >= sizeof(s->origins->node))
        return NULL;
    struct origin_seq *no = realloc(s->origins, (s->n + 1) * sizeof(*no));
    if (!no)
        return NULL;
    s->origins = no;
    memcpy(no[s->n].node, origin, len);
    no[s->n].node[len] = '\0';
    no[s->n].seq = 0;
    return &no[s->n++].seq;
}

/* One kept Publish envelope (numbered by the node named origin; from, when it came from a peer):
 * to every promoted session it matches that did not have it. False if it does not parse. */
static bool handover_apply(struct cluster *c, struct handover *ho, struct peer *from,
                           const char *origin, const uint8_t *env, size_t len)
{
    struct wire_envelope we;
    size_t olen = strlen(origin);
    if (wire_parse_envelope(env, len, &we) != 1 || we.body_field != CL__ENVELOPE__BODY_PUBLISH ||
        we.sender_len != olen || memcmp(we.sender, origin, olen) != 0)
        return false;
    if (we.pub.shares_only)
        return true; /* for a shared group's member alone: not a session's own subscription */
    struct message *m = NULL;
    for (size_t i = 0; i < ho->nsess; i++) {
        struct handover_session *s = &ho->sess[i];
        uint64_t *had = handover_origin(s, origin, olen);
        if (had && we.pub.seq <= *had) {
            c->handovers->skipped++;
            continue;
        }
        if (had)
            *had = we.pub.seq;
        if (from && move_in_had(c, s->id, from, we.pub.seq)) {
            c->handovers->skipped++;
            continue;
        }
        if (!m && !(m = publish_to_message(&we.pub, false, uv_now(c->loop))))
            return false;
        if (broker_deliver_session(c->b, s->id, m))
            c->handovers->delivered++;
    }
    if (m)
        message_unref(m);
    return true;
}

/* Our own log for the owner, applied here. */
struct handover_own {
    struct cluster *c;
    struct handover *ho;
};

static void handover_own_entry(void *ctx, uint64_t seq, const uint8_t *env, size_t len)
{
    (void)seq;
    struct handover_own *o = ctx;
    handover_apply(o->c, o->ho, NULL, o->c->self, env, len);
}

/* Every peer answered (or is gone, or the time is up): the waiting takeovers get the sessions. */
static void handover_done(struct cluster *c, struct handover *ho)
{
    for (struct handover **pp = &c->handovers->list; *pp; pp = &(*pp)->next) {
        if (*pp == ho) {
            *pp = ho->next;
            break;
        }
    }
    for (size_t i = 0; i < ho->nsess; i++)
        replica_waits_settle(c, ho->sess[i].id);
    handover_free_one(ho);
}

static bool handover_send(struct cluster *c, struct peer *p, Cl__Handover *h)
{
    Cl__Envelope env = CL__ENVELOPE__INIT;
    env.body_case = CL__ENVELOPE__BODY_HANDOVER;
    env.handover = h;
    struct wbuf *w = cluster_pack(c, &env);
    bool ok = w && peer_send(p, w);
    if (w)
        wbuf_unref(w);
    return ok;
}

void handover_ask(struct cluster *c, struct handover *ho, struct peer *owner)
{
    if (!ho)
        return;
    if (ho->nsess == 0) {
        handover_free_one(ho);
        return;
    }
    struct handover_own own = {c, ho};
    peerlog_each(owner, handover_own_entry, &own);
    size_t n = 0;
    for (struct peer *p = c->peers; p; p = p->next)
        n++;
    ho->pending = calloc(n ? n : 1, sizeof(*ho->pending));
    Cl__Handover ask = CL__HANDOVER__INIT;
    ask.owner = ho->owner;
    ask.ask = true;
    ask.route_generation = c->route_gen; /* with the promoted sessions' filters */
    ask.route_version = c->route_version;
    for (struct peer *p = c->peers; ho->pending && p; p = p->next)
        if (p != owner && p->open && cluster_peer_trusted(c, p) && handover_send(c, p, &ask))
            ho->pending[ho->npending++] = p;
    c->handovers->asked += ho->npending;
    ho->deadline = uv_now(c->loop) + CLUSTER_HANDOVER_MS;
    ho->next = c->handovers->list;
    c->handovers->list = ho;
    if (ho->npending == 0)
        handover_done(c, ho);
    net_kick(c);
}

bool handover_holds(const struct cluster *c, const char *id)
{
    for (const struct handover *ho = c->handovers->list; ho; ho = ho->next)
        for (size_t i = 0; i < ho->nsess; i++)
            if (strcmp(ho->sess[i].id, id) == 0)
                return true;
    return false;
}

/* Answering an ask: the kept envelopes, in frames of about CLUSTER_CHUNK_MAX. */
struct handover_answer {
    struct cluster *c;
    struct peer *to;
    Cl__Handover msg;
    ProtobufCBinaryData *items;
    size_t n, cap, bytes;
    bool failed;
};

static void handover_answer_flush(struct handover_answer *a, bool last)
{
    a->msg.publishes = a->items;
    a->msg.n_publishes = a->n;
    a->msg.last = last;
    if (!handover_send(a->c, a->to, &a->msg))
        a->failed = true;
    a->n = a->bytes = 0;
}

static void handover_answer_entry(void *ctx, uint64_t seq, const uint8_t *env, size_t len)
{
    (void)seq;
    struct handover_answer *a = ctx;
    if (a->n == a->cap) {
        size_t cap = buf_grow((void **)&a->items, a->cap, a->n + 1, sizeof(*a->items), SIZE_MAX);
        if (!cap) {
            a->failed = true;
            return;
        }
        a->cap = cap;
    }
    a->items[a->n++] = (ProtobufCBinaryData){len, (uint8_t *)env};
    a->bytes += len;
    if (a->bytes >= CLUSTER_CHUNK_MAX)
        handover_answer_flush(a, false);
}

/* p asks for what we kept for owner: sent as it is, then the last marker. */
static void handover_answer(struct cluster *c, struct peer *p, const char *owner)
{
    struct peer *o = cluster_peer_find(c, owner);
    struct handover_answer a = {.c = c, .to = p};
    cl__handover__init(&a.msg);
    a.msg.owner = (char *)owner;
    if (o && o != p)
        peerlog_each(o, handover_answer_entry, &a);
    handover_answer_flush(&a, true);
    free(a.items);
    if (a.failed)
        log_error(c->log, "cluster: out of memory handing over to %s what was kept for %s", p->name,
                  owner);
}

/* Stop waiting for p in ho; done when nobody is left. */
static void handover_unwait(struct cluster *c, struct handover *ho, struct peer *p)
{
    for (size_t i = 0; i < ho->npending; i++) {
        if (ho->pending[i] == p) {
            ho->pending[i] = ho->pending[--ho->npending];
            if (ho->npending == 0)
                handover_done(c, ho);
            return;
        }
    }
}

void handover_on_msg(struct cluster *c, struct peer *p, const Cl__Handover *h)
{
    if (!h->owner || !h->owner[0]) {
        cluster_bad_input(c, p->name, "a hand-over without an owner");
        return;
    }
    if (h->ask) {
        /* Answered once we route to p what the promoted sessions match: from then on nothing
         * new for them goes only into the owner's log. */
        bool known = p->synced && p->gen == h->route_generation && p->version >= h->route_version;
        if (!known && p->nowed < sizeof(p->owed) / sizeof(p->owed[0])) {
            struct handover_owed *o = &p->owed[p->nowed++];
            snprintf(o->owner, sizeof(o->owner), "%s", h->owner);
            o->gen = h->route_generation;
            o->version = h->route_version;
            return;
        }
        handover_answer(c, p, h->owner);
        return;
    }
    struct handover *ho = c->handovers->list;
    while (ho && strcmp(ho->owner, h->owner) != 0)
        ho = ho->next;
    if (!ho)
        return; /* done already (timed out): the sessions may have moved on */
    for (size_t i = 0; i < h->n_publishes; i++)
        if (!handover_apply(c, ho, p, p->name, h->publishes[i].data, h->publishes[i].len))
            cluster_bad_input(c, p->name, "an invalid handed-over PUBLISH");
    if (h->last)
        handover_unwait(c, ho, p);
}

void handover_routes_known(struct cluster *c, struct peer *p)
{
    for (size_t i = 0; i < p->nowed;) {
        struct handover_owed o = p->owed[i];
        if (!p->synced || p->gen != o.gen || p->version < o.version) {
            i++;
            continue;
        }
        p->owed[i] = p->owed[--p->nowed];
        handover_answer(c, p, o.owner);
    }
}

void handover_peer_gone(struct cluster *c, struct peer *p)
{
    p->nowed = 0;
    for (struct handover *ho = c->handovers->list, *next; ho; ho = next) {
        next = ho->next;
        handover_unwait(c, ho, p);
    }
}

void handover_tick(struct cluster *c, uint64_t now)
{
    for (struct handover *ho = c->handovers->list, *next; ho; ho = next) {
        next = ho->next;
        if (now < ho->deadline)
            continue;
        log_warn(c->log,
                 "cluster: hand-over of what was kept for %s: %zu peer(s) did not answer "
                 "in %d ms",
                 ho->owner, ho->npending, CLUSTER_HANDOVER_MS);
        handover_done(c, ho);
    }
}

void handover_metrics(const struct cluster *c, struct cluster_metric out[HANDOVER_METRICS])
{
    const struct handovers *hs = c->handovers;
    out[0] = (struct cluster_metric){"sol_cluster_handover_asks_total", "counter",
                                     "peers asked for what they kept for a dead node",
                                     hs ? hs->asked : 0};
    out[1] = (struct cluster_metric){
        "sol_cluster_handover_delivered_total", "counter",
        "kept messages of a dead node delivered to its promoted sessions here",
        hs ? hs->delivered : 0};
    out[2] = (struct cluster_metric){"sol_cluster_handover_skipped_total", "counter",
                                     "kept messages a promoted session had already",
                                     hs ? hs->skipped : 0};
}
