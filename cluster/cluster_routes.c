/*
 * cluster_routes.c - route replication: which filters each node has local subscribers for.
 *
 * This node's filters carry a generation (new at every start) and a version (+1 per change). Each
 * change is sent to every live peer as a delta from version v-1 to v; a peer applies a delta only
 * on top of exactly v-1, so a lost delta shows up as a gap and the peer asks for the full set. A
 * heartbeat with the current (generation, version) every second catches a lost last delta and a
 * restart. A full set travels in chunks and is installed at once when its last chunk arrives, so
 * forwarding never sees half a set. Each peer's filters live in a topic_tree whose only subscriber
 * is the peer itself: forwarding asks topic_tree_has_match(peer->routes, topic).
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cluster_int.h"

/* Send one envelope to every peer we have a link to. */
static void routes_broadcast(struct cluster *c, Cl__Envelope *env)
{
    struct wbuf *w = NULL;
    for (struct peer *p = c->peers; p; p = p->next) {
        if (!p->open)
            continue;
        if (!w && !(w = cluster_pack(c, env))) {
            log_error(c->log, "cluster: out of memory sending routes");
            return;
        }
        peer_send(p, w);
    }
    wbuf_unref(w);
}

/* The local set changed by one filter: a new version, sent as a delta from the one before. */
static void routes_send_delta(struct cluster *c, const char *filter, size_t len, bool added)
{
    Cl__RouteDelta d = CL__ROUTE_DELTA__INIT;
    Cl__Envelope env = CL__ENVELOPE__INIT;
    c->route_version++;
    char *s = strndup(filter, len);
    if (!s)
        return; /* the heartbeat's version shows the gap: peers ask for the full set */
    d.generation = c->route_gen;
    d.base_version = c->route_version - 1;
    d.version = c->route_version;
    if (added) {
        d.n_added = 1;
        d.added = &s;
    } else {
        d.n_removed = 1;
        d.removed = &s;
    }
    env.body_case = CL__ENVELOPE__BODY_ROUTE_DELTA;
    env.route_delta = &d;
    routes_broadcast(c, &env);
    free(s);
}

void routes_local_add(struct cluster *c, const char *filter, size_t len)
{
    if (topic_tree_subscribe(c->local, filter, len, c, 0) == 1)
        routes_send_delta(c, filter, len, true);
}

void routes_hook_add(void *ctx, const char *filter, size_t len)
{
    routes_local_add(ctx, filter, len);
}

void routes_hook_del(void *ctx, const char *filter, size_t len)
{
    struct cluster *c = ctx;
    if (topic_tree_unsubscribe(c->local, filter, len, c) == 0 && !move_route_held(c, filter, len))
        routes_send_delta(c, filter, len, false);
}

void routes_local_settle(struct cluster *c, const char *filter, size_t len)
{
    /* Present is the one question the tree answers by adding: undo the add if it was new. */
    if (topic_tree_subscribe(c->local, filter, len, c, 0) == 1) {
        topic_tree_unsubscribe(c->local, filter, len, c);
        routes_send_delta(c, filter, len, false);
    }
}

/* The shared-group keys of a sync in progress (told to the broker when it completes). */
static void routes_staging_shares_free(struct peer *p)
{
    for (size_t i = 0; i < p->nstaging_shares; i++)
        free(p->staging_shares[i]);
    free(p->staging_shares);
    p->staging_shares = NULL;
    p->nstaging_shares = p->staging_shares_cap = 0;
}

void routes_hold(struct peer *p)
{
    broker_share_peer_gone(p->c->b, p);
    routes_staging_shares_free(p);
    topic_tree_free(p->staging);
    p->staging = NULL;
    p->synced = false;
    p->gen = p->version = 0;
    p->holding = true;
    p->hold_since = uv_now(p->c->loop);
}

void routes_drop(struct peer *p)
{
    p->holding = false;
    broker_share_peer_gone(p->c->b, p);
    routes_staging_shares_free(p);
    struct topic_tree *fresh = topic_tree_new();
    if (fresh) {
        topic_tree_free(p->routes);
        p->routes = fresh;
    }
    topic_tree_free(p->staging);
    p->staging = NULL;
    p->synced = false;
    p->gen = p->version = 0;
}

/* Filters from the wire are checked like a client's: a bad one is dropped, not installed. A
 * shared group's key also tells the broker the peer has members (at once for a delta, at the end
 * of a sync). */
static void routes_tree_add(struct cluster *c, struct peer *p, struct topic_tree *t, const char *f)
{
    size_t len = strlen(f);
    if (len == 0 || len > UINT16_MAX || !topic_filter_valid(f, len)) {
        cluster_bad_input(c, p->name, "an invalid route filter");
        return;
    }
    if (topic_tree_subscribe(t, f, len, p, 0) < 0)
        log_error(c->log, "cluster: out of memory storing a route of %s", p->name);
    const char *gf;
    size_t gl;
    if (!share_parse(f, len, &gf, &gl))
        return;
    if (t == p->routes) {
        broker_share_route(c->b, f, len, p, true);
        return;
    }
    size_t cap = buf_grow((void **)&p->staging_shares, p->staging_shares_cap,
                          p->nstaging_shares + 1, sizeof(*p->staging_shares), SIZE_MAX);
    char *copy = cap ? strdup(f) : NULL;
    if (!copy) {
        log_error(c->log, "cluster: out of memory storing a shared route of %s", p->name);
        return;
    }
    p->staging_shares_cap = cap;
    p->staging_shares[p->nstaging_shares++] = copy;
}

void routes_on_delta(struct cluster *c, struct peer *p, const Cl__RouteDelta *d)
{
    switch (route_delta_step(p->synced, p->gen, p->version, d->generation, d->base_version,
                             d->version)) {
    case ROUTE_IGNORE:
        return;
    case ROUTE_RESYNC:
        cluster_request_sync(c, p, false, false);
        return;
    case ROUTE_APPLY:
        break;
    }
    for (size_t i = 0; i < d->n_added; i++)
        routes_tree_add(c, p, p->routes, d->added[i]);
    for (size_t i = 0; i < d->n_removed; i++) {
        topic_tree_unsubscribe(p->routes, d->removed[i], strlen(d->removed[i]), p);
        broker_share_route(c->b, d->removed[i], strlen(d->removed[i]), p, false);
    }
    p->version = d->version;
    if (p->nowed)
        handover_routes_known(c, p);
}

void routes_on_sync(struct cluster *c, struct peer *p, const Cl__RouteSync *s)
{
    if (s->first) {
        topic_tree_free(p->staging);
        routes_staging_shares_free(p);
        p->staging = topic_tree_new();
        if (!p->staging) {
            log_error(c->log, "cluster: out of memory syncing routes of %s", p->name);
            return;
        }
    }
    if (!p->staging)
        return; /* a chunk of a set whose start we did not see: wait for the next full sync */
    for (size_t i = 0; i < s->n_filters; i++)
        routes_tree_add(c, p, p->staging, s->filters[i]);
    if (!s->last)
        return;
    topic_tree_free(p->routes);
    p->routes = p->staging;
    p->staging = NULL;
    broker_share_peer_gone(c->b, p); /* its groups are those of the new set */
    for (size_t i = 0; i < p->nstaging_shares; i++)
        broker_share_route(c->b, p->staging_shares[i], strlen(p->staging_shares[i]), p, true);
    routes_staging_shares_free(p);
    bool restarted = p->gen && p->gen != s->generation; /* not seen dead: a quick restart */
    p->gen = s->generation;
    p->version = s->version;
    p->synced = true;
    if (restarted)
        replica_peer_restarted(c, p);
    log_debug(c->log, "cluster: routes of %s synced: %zu filters at version %llu", p->name,
              topic_tree_filter_count(p->routes), (unsigned long long)p->version);
    if (p->nowed)
        handover_routes_known(c, p);
}

/* Routes: any difference means something was lost (heartbeats follow deltas on one stream).
 * Retained: sets differ while writes are in flight, so only a difference that lasts
 * CLUSTER_DIGEST_MISSES quiet heartbeats (no retained change on either side) makes both sides
 * exchange their sets. */
void routes_on_version(struct cluster *c, struct peer *p, const Cl__RouteVersion *v)
{
    snprintf(p->client_addr, sizeof(p->client_addr), "%s",
             v->client_address ? v->client_address : "");
    if (v->publish_seq > p->seq_horizon)
        p->seq_horizon = v->publish_seq;
    bool differ = retained_on_version(c, p, v);
    if (route_version_stale(p->synced, p->gen, p->version, v->generation, v->version) ||
        !p->retained_synced) {
        cluster_request_sync(c, p, false, false);
        return;
    }
    if (!differ)
        return;
    log_info(c->log, "cluster: retained messages differ from %s's: exchanging them", p->name);
    p->retained_synced = false;
    cluster_request_sync(c, p, true, true);
}

/* Collects filters into chunks of about CLUSTER_CHUNK_MAX bytes. */
struct route_chunk {
    struct chunker ck;
    Cl__RouteSync body;
    char **filters;
    size_t n, cap;
    bool first;
};

static void routes_fill(void *ctx, Cl__Envelope *env, bool last)
{
    struct route_chunk *rc = ctx;
    cl__route_sync__init(&rc->body);
    rc->body.generation = rc->ck.c->route_gen;
    rc->body.version = rc->ck.c->route_version;
    rc->body.filters = rc->filters;
    rc->body.n_filters = rc->n;
    rc->body.first = rc->first;
    rc->body.last = last;
    rc->first = false;
    env->body_case = CL__ENVELOPE__BODY_ROUTE_SYNC;
    env->route_sync = &rc->body;
}

static void routes_release(void *ctx)
{
    struct route_chunk *rc = ctx;
    for (size_t i = 0; i < rc->n; i++)
        free(rc->filters[i]);
    rc->n = 0;
}

static void routes_collect(const char *filter, size_t len, void *ctx)
{
    struct route_chunk *rc = ctx;
    void **const arrs[] = {(void **)&rc->filters};
    const size_t elem[] = {sizeof(*rc->filters)};
    if (!chunk_reserve(&rc->ck, &rc->cap, rc->n, arrs, elem, 1))
        return;
    if (!(rc->filters[rc->n] = strndup(filter, len))) {
        rc->ck.failed = true;
        return;
    }
    rc->n++;
    chunk_added(&rc->ck, len + 4);
}

void routes_send_full(struct cluster *c, struct peer *p)
{
    struct route_chunk rc = {.first = true};
    rc.ck = (struct chunker){c, p, routes_fill, routes_release, &rc, 0, false};
    broker_routes_foreach(c->b, routes_collect, &rc);
    if (rc.ck.failed) {
        /* The peer will see a set without its last chunk never installed, and ask again. */
        log_error(c->log, "cluster: out of memory sending routes to %s", p->name);
        chunk_drop(&rc.ck);
    } else {
        chunk_flush(&rc.ck, true);
    }
    free(rc.filters);
}

void routes_heartbeat(struct cluster *c)
{
    Cl__RouteVersion v = CL__ROUTE_VERSION__INIT;
    Cl__Envelope env = CL__ENVELOPE__INIT;
    retained_heartbeat(c, &v);
    v.generation = c->route_gen;
    v.version = c->route_version;
    v.client_address = (char *)c->cfg->advertise_address;
    v.publish_seq = c->seq;
    env.body_case = CL__ENVELOPE__BODY_ROUTE_VERSION;
    env.route_version = &v;
    routes_broadcast(c, &env);
}

void cluster_request_sync(struct cluster *c, struct peer *p, bool force, bool ask_back)
{
    uint64_t now = uv_now(c->loop);
    if (!p->open)
        return;
    if (!force && p->resync_at && now - p->resync_at < CLUSTER_RESYNC_THROTTLE_MS)
        return;
    p->resync_at = now;
    Cl__SyncRequest r = CL__SYNC_REQUEST__INIT;
    Cl__Envelope env = CL__ENVELOPE__INIT;
    r.routes = true; /* cheap next to a lost route, and a stale generation needs it anyway */
    r.retained = !p->retained_synced;
    r.ask_back = ask_back;
    env.body_case = CL__ENVELOPE__BODY_SYNC_REQUEST;
    env.sync_request = &r;
    struct wbuf *w = cluster_pack(c, &env);
    if (w)
        peer_send(p, w);
    wbuf_unref(w);
}

/* Answer with our full state; and if we lack the asker's, ask back (its earlier request to us may
 * have arrived before we knew it, and been dropped as a stranger's). */
void cluster_on_sync_request(struct cluster *c, struct peer *p, const Cl__SyncRequest *r)
{
    if (r->routes)
        routes_send_full(c, p);
    if (r->retained)
        retained_send_full(c, p);
    if (r->ask_back) {
        /* Keep forwarding on the routes we hold until the fresh set replaces them whole. */
        p->retained_synced = false;
        cluster_request_sync(c, p, true, false);
    } else if (!p->synced || !p->retained_synced) {
        cluster_request_sync(c, p, false, false);
    }
}
