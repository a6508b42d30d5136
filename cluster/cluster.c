/*
 * cluster.c - the cluster's lifecycle and its switchboard: start and stop, membership events (open
 * or close the link to a peer, ask a joining or healed peer for its state, drop a dead or left
 * peer's routes), and the dispatch of every envelope a peer sends to the module that handles it.
 *
 * Notes for the broker (node/broker.c):
 *  - cluster_stop() resets the broker's hooks, so call it before broker_free().
 *  - broker_session_import_sub() may or may not call on_route_add: the cluster records imported
 * filters itself (idempotently), so either way peers learn the new route.
 *  - broker_deliver_remote() gets messages with retain == false (a live delivery [MQTT-3.3.1-9]);
 * the retained copy goes through broker_retain_apply().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cluster_int.h"

uint64_t cluster_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct peer *cluster_peer_find(struct cluster *c, const char *name)
{
    for (struct peer *p = c->peers; p; p = p->next)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

/* A peer entry lives until cluster_stop, whatever its state, so counters survive and nng callbacks
 * never see it freed. */
static struct peer *cluster_peer_get(struct cluster *c, const char *name)
{
    struct peer *p = cluster_peer_find(c, name);
    if (p)
        return p;
    p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->c = c;
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->state = MEMBER_DEAD;
    p->routes = topic_tree_new();
    if (!p->routes || peer_init_tx(p) != 0) {
        topic_tree_free(p->routes);
        free(p);
        return NULL;
    }
    p->next = c->peers;
    c->peers = p;
    return p;
}

void cluster_bad_input(struct cluster *c, const char *key, const char *what)
{
    uint64_t now = uv_now(c->loop);
    c->decode_errors++;
    struct log_slot *slot = NULL, *oldest = &c->logged[0];
    for (size_t i = 0; i < sizeof(c->logged) / sizeof(c->logged[0]); i++) {
        struct log_slot *s = &c->logged[i];
        if (strcmp(s->key, key) == 0) {
            slot = s;
            break;
        }
        if (s->at < oldest->at)
            oldest = s;
    }
    if (slot && slot->at && now - slot->at < CLUSTER_LOG_EVERY_MS)
        return;
    if (!slot) {
        slot = oldest;
        snprintf(slot->key, sizeof(slot->key), "%s", key);
    }
    slot->at = now ? now : 1;
    log_warn(c->log,
             "cluster: dropped %s from %s (%llu bad inputs so far; next log for %s in 60 s)", what,
             key, (unsigned long long)c->decode_errors, key);
}

struct wbuf *cluster_pack(struct cluster *c, Cl__Envelope *env)
{
    env->sender = c->self;
    size_t n = cl__envelope__get_packed_size(env);
    struct wbuf *w = wbuf_new(n);
    if (!w)
        return NULL;
    cl__envelope__pack(env, w->data);
    return w;
}

/* ---- receive dispatch ---- */

/* Route and retained state from a peer we consider gone would be dropped again; ignore it until it
 * is alive (or suspect) again. */
static bool peer_live(const struct peer *p)
{
    return p->state == MEMBER_ALIVE || p->state == MEMBER_SUSPECT;
}

static void cluster_dispatch(struct cluster *c, struct peer *p, const Cl__Envelope *e)
{
    p->rx_envelopes++;
    switch (e->body_case) {
    case CL__ENVELOPE__BODY_PUBLISH:
        publish_on_remote(c, p, e->publish, true);
        break;
    case CL__ENVELOPE__BODY_RETAIN:
        if (peer_live(p))
            publish_on_remote(c, p, e->retain, false);
        break;
    case CL__ENVELOPE__BODY_ROUTE_DELTA:
        if (peer_live(p))
            routes_on_delta(c, p, e->route_delta);
        break;
    case CL__ENVELOPE__BODY_ROUTE_SYNC:
        if (peer_live(p))
            routes_on_sync(c, p, e->route_sync);
        break;
    case CL__ENVELOPE__BODY_ROUTE_VERSION:
        if (peer_live(p))
            routes_on_version(c, p, e->route_version);
        break;
    case CL__ENVELOPE__BODY_SYNC_REQUEST:
        if (peer_live(p))
            cluster_on_sync_request(c, p, e->sync_request);
        break;
    case CL__ENVELOPE__BODY_RETAIN_SYNC:
        if (peer_live(p))
            retained_on_sync(c, p, e->retain_sync);
        break;
    case CL__ENVELOPE__BODY_TAKEOVER_REQUEST:
        takeover_on_request(c, p, e->takeover_request);
        break;
    case CL__ENVELOPE__BODY_TAKEOVER_REPLY:
        takeover_on_reply(c, p, e->takeover_reply);
        break;
    default:
        cluster_bad_input(c, p->name, "an envelope of unknown kind");
        break;
    }
}

/* A bump allocator for unpacking one frame: protobuf-c allocates every struct, string and byte
 * field separately, which made malloc/free most of a receiving node's CPU. Everything a frame
 * unpacks into is released at once by resetting the arena; what does not fit in the reused block
 * goes to malloc and is freed with the frame. */
struct frame_arena {
    uint8_t *block;
    size_t cap, used;
    void **spill; /* oversize allocations of this frame */
    size_t nspill, spill_cap;
};

static void *arena_alloc(void *data, size_t size)
{
    struct frame_arena *a = data;
    size = (size + 15) & ~(size_t)15;
    if (a->used + size <= a->cap) {
        void *p = a->block + a->used;
        a->used += size;
        return p;
    }
    if (a->nspill == a->spill_cap) {
        size_t ncap = a->spill_cap ? a->spill_cap * 2 : 16;
        void **ns = realloc(a->spill, ncap * sizeof(*ns));
        if (!ns)
            return NULL;
        a->spill = ns;
        a->spill_cap = ncap;
    }
    void *p = malloc(size);
    if (p)
        a->spill[a->nspill++] = p;
    return p;
}

static void arena_free(void *data, void *ptr)
{
    (void)data; /* released all at once by arena_reset */
    (void)ptr;
}

/* Make room for a frame of len bytes (unpacked it takes about twice that plus per-field structs)
 * and forget the previous frame. */
static void arena_reset(struct frame_arena *a, size_t len)
{
    for (size_t i = 0; i < a->nspill; i++)
        free(a->spill[i]);
    a->nspill = 0;
    a->used = 0;
    size_t want = 2 * len + 64 * 1024;
    if (want > a->cap && want <= 8u << 20) {
        uint8_t *nb = realloc(a->block, want);
        if (nb) {
            a->block = nb;
            a->cap = want;
        }
    }
}

void cluster_arena_free(struct cluster *c)
{
    if (!c->arena)
        return;
    arena_reset(c->arena, 0);
    free(c->arena->block);
    free(c->arena->spill);
    free(c->arena);
    c->arena = NULL;
}

void cluster_handle_frame(struct cluster *c, const uint8_t *data, size_t len, const char *from)
{
    if (!c->arena && !(c->arena = calloc(1, sizeof(*c->arena)))) {
        log_error(c->log, "cluster: out of memory receiving a frame");
        return;
    }
    arena_reset(c->arena, len);
    ProtobufCAllocator alloc = {arena_alloc, arena_free, c->arena};
    Cl__Frame *f = cl__frame__unpack(&alloc, len, data);
    if (!f) {
        cluster_bad_input(c, from, "an undecodable frame");
        return;
    }
    if (f->n_envelopes == 0)
        cluster_bad_input(c, from, "an empty frame");
    /* A frame is one peer's batch: look the sender up once per run of envelopes, not per message. */
    const char *last_sender = NULL;
    struct peer *p = NULL;
    for (size_t i = 0; i < f->n_envelopes; i++) {
        const Cl__Envelope *e = f->envelopes[i];
        if (!last_sender || !e->sender || strcmp(e->sender, last_sender) != 0) {
            p = NULL;
            if (e->sender && strcmp(e->sender, c->self) != 0 && c->ms &&
                membership_find(c->ms, e->sender))
                p = cluster_peer_find(c, e->sender);
            last_sender = e->sender;
        }
        if (!p) {
            c->strangers++;
            cluster_bad_input(c, from, "a message from a node not in membership");
            continue;
        }
        cluster_dispatch(c, p, e);
    }
    /* No free_unpacked: the arena is reset by the next frame. */
}

/* ---- membership events ---- */

static void cluster_on_member(void *ctx, const struct member *m, enum member_state old)
{
    struct cluster *c = ctx;
    if (strcmp(m->name, c->self) == 0)
        return;
    struct peer *p = cluster_peer_get(c, m->name);
    if (!p) {
        log_error(c->log, "cluster: out of memory tracking member %s", m->name);
        return;
    }
    bool moved = p->port != m->port || strcmp(p->host, m->host) != 0;
    snprintf(p->host, sizeof(p->host), "%s", m->host);
    p->port = m->port;
    p->state = m->state;
    log_info(c->log, "cluster: member %s (%s:%u) %s -> %s", m->name, m->host, m->port,
             member_state_name(old), member_state_name(m->state));

    if (m->state == MEMBER_DEAD || m->state == MEMBER_LEFT) {
        peer_close(p);
        routes_drop(p);
        p->retained_synced = false;
        takeover_peer_gone(c, p);
        return;
    }
    bool fresh = !p->open || moved || old == MEMBER_DEAD || old == MEMBER_LEFT;
    if (p->open && moved)
        peer_close(p);
    if (!p->open && peer_open(p) != 0) {
        log_error(c->log, "cluster: cannot open a link to %s", m->name);
        return;
    }
    if (fresh) {
        /* A join, a restart or a heal: whatever we held may be stale; take its whole state again.
         */
        routes_drop(p);
        p->retained_synced = false;
        cluster_request_sync(c, p, true, true);
    }
}

/* ---- timers ---- */

static void cluster_tick_cb(uv_timer_t *t)
{
    struct cluster *c = t->data;
    uint64_t now = uv_now(c->loop);
    takeover_tick(c, now);
    if (c->ms && now - c->last_heartbeat >= CLUSTER_HEARTBEAT_MS) {
        c->last_heartbeat = now;
        routes_heartbeat(c);
    }
}

static void cluster_handle_closed(uv_handle_t *h)
{
    struct cluster *c = h->data;
    if (--c->handles > 0)
        return;
    for (struct peer *p = c->peers, *n; p; p = n) {
        n = p->next;
        topic_tree_free(p->routes);
        topic_tree_free(p->staging);
        free(p);
    }
    topic_tree_free(c->local);
    retain_free(c->tombs);
    pthread_mutex_destroy(&c->in_mu);
    free(c);
}

struct cluster *cluster_start(uv_loop_t *loop, struct broker *b, const struct sol_config *cfg,
                              char *err, size_t errlen)
{
    struct cluster *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "cluster: out of memory");
        return NULL;
    }
    c->loop = loop;
    c->b = b;
    c->cfg = cfg;
    c->log = broker_logger(b);
    snprintf(c->self, sizeof(c->self), "%s", cfg->node_name);
    pthread_mutex_init(&c->in_mu, NULL);
    c->local = topic_tree_new();
    c->tombs = retain_new(free);
    uint16_t rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd = (uint16_t)uv_hrtime();
    c->route_gen = (cluster_wall_ms() << 16) | rnd;
    uv_timer_init(loop, &c->tick);
    uv_timer_init(loop, &c->leave_timer);
    c->tick.data = c->leave_timer.data = c;
    c->handles = 2;
    if (!c->local || !c->tombs) {
        snprintf(err, errlen, "cluster: out of memory");
        goto fail;
    }

    if (cfg->cluster_port != 0) {
        if (net_listen(c, err, errlen) != 0 || net_start_kicker(c) != 0)
            goto fail;
        c->ms = membership_start(loop, cfg, c->log, cluster_on_member, c, err, errlen);
        if (!c->ms)
            goto fail;
        struct broker_hooks hooks = {
            .ctx = c,
            .on_publish = publish_hook,
            .on_route_add = routes_hook_add,
            .on_route_del = routes_hook_del,
            .on_connect = takeover_hook,
        };
        broker_set_hooks(b, &hooks);
        uv_timer_start(&c->tick, cluster_tick_cb, CLUSTER_TICK_MS, CLUSTER_TICK_MS);
    }
    if (cfg->http_port != 0) {
        const char *host = cfg->cluster_bind[0] ? cfg->cluster_bind : cfg->bind;
        c->http = http_server_start(loop, host, cfg->http_port, status_http_handler, c, c->log, err,
                                    errlen);
        if (!c->http)
            goto fail;
    }
    return c;
fail:
    cluster_stop(c);
    return NULL;
}

static void cluster_leave_timer_cb(uv_timer_t *t)
{
    struct cluster *c = t->data;
    if (c->leave_done)
        c->leave_done(c->leave_ctx);
    c->leave_done = NULL;
}

static void cluster_left(void *ctx)
{
    struct cluster *c = ctx;
    uv_timer_start(&c->leave_timer, cluster_leave_timer_cb, 0, 0);
}

void cluster_leave(struct cluster *c, void (*done)(void *ctx), void *ctx)
{
    c->leaving = true;
    c->leave_done = done;
    c->leave_ctx = ctx;
    if (c->ms)
        membership_leave(c->ms, cluster_left, c);
    else
        cluster_left(c);
}

void cluster_stop(struct cluster *c)
{
    if (!c || c->stopping)
        return;
    c->stopping = true;
    if (c->ms) {
        struct broker_hooks none = {0};
        broker_set_hooks(c->b, &none);
    }
    if (c->http)
        http_server_stop(c->http);
    c->http = NULL;
    if (c->ms)
        membership_stop(c->ms);
    c->ms = NULL;
    net_flush(c, 500);
    net_close_listener(c);
    for (struct peer *p = c->peers; p; p = p->next)
        peer_free_tx(p);
    takeover_free_all(c);
    cluster_arena_free(c);
    if (c->async_on)
        uv_close((uv_handle_t *)&c->async, cluster_handle_closed);
    if (c->kicker_on)
        uv_close((uv_handle_t *)&c->kicker, cluster_handle_closed);
    uv_close((uv_handle_t *)&c->tick, cluster_handle_closed);
    uv_close((uv_handle_t *)&c->leave_timer, cluster_handle_closed);
}
