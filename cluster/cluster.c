/*
 * cluster.c - the cluster's lifecycle and its switchboard: start and stop, membership events (open
 * or close the link to a peer, ask a joining or healed peer for its state, drop a dead or left
 * peer's routes), and the dispatch of every envelope a peer sends to the module that handles it.
 *
 * Notes for the broker (node/broker.c):
 *  - cluster_stop() resets the broker's hooks, so call it before broker_free().
 *  - broker_session_restore_sub() may or may not call on_route_add: the cluster records imported
 *    filters itself (idempotently), so either way peers learn the new route.
 *  - broker_deliver_remote() gets messages with retain == false (a live delivery [MQTT-3.3.1-9]);
 *    the retained copy goes through broker_retain_apply().
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
    case CL__ENVELOPE__BODY_RETAIN: {
        /* Normally read by cluster_wire.c; here only if a sender wrote something it could not read.
         */
        struct wire_publish wp;
        publish_from_pb(e->publish, &wp);
        if (e->body_case == CL__ENVELOPE__BODY_PUBLISH || peer_live(p))
            publish_on_remote(c, p, &wp, e->body_case == CL__ENVELOPE__BODY_PUBLISH);
        break;
    }
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
    case CL__ENVELOPE__BODY_REPLICA_PUT:
        replica_on_put(c, p, e->replica_put);
        break;
    case CL__ENVELOPE__BODY_REPLICA_DROP:
        replica_on_drop(c, p, e->replica_drop);
        break;
    case CL__ENVELOPE__BODY_REPLICA_ACK:
        replica_on_ack(c, p, e->replica_ack);
        break;
    case CL__ENVELOPE__BODY_STUB_PUBLISH:
        move_on_stub(c, p, e->stub_publish);
        break;
    case CL__ENVELOPE__BODY_HANDOVER:
        handover_on_msg(c, p, e->handover);
        break;
    default:
        cluster_bad_input(c, p->name, "an envelope of unknown kind");
        break;
    }
}

/* The peer an envelope's sender names, if it is a member other than ourselves. */
static struct peer *cluster_sender(struct cluster *c, const char *name, size_t len)
{
    char buf[64];
    if (len == 0 || len >= sizeof(buf) || memchr(name, '\0', len))
        return NULL;
    memcpy(buf, name, len);
    buf[len] = '\0';
    if (strcmp(buf, c->self) == 0 || !c->ms || !membership_find(c->ms, buf))
        return NULL;
    return cluster_peer_find(c, buf);
}

/* A frame is a batch of envelopes. PUBLISH envelopes (nearly all of the traffic) are read in place
 * by cluster_wire.c; the other kinds are decoded by protobuf-c. Bad input on a frame is named by
 * the address it came from. */
static size_t cluster_handle_frame(struct cluster *c, const uint8_t *data, size_t len,
                                   const char *from, const bool *stop)
{
    const uint8_t *pos = data, *end = data + len, *env;
    size_t env_len, count = 0;
    const char *last_name = NULL;
    size_t last_len = 0;
    struct peer *last = NULL;
    int rv = 0;
    while (!*stop && (rv = wire_next_envelope(&pos, end, &env, &env_len)) == 1) {
        struct wire_envelope we;
        count++;
        int kind = wire_parse_envelope(env, env_len, &we);
        if (kind < 0) {
            cluster_bad_input(c, from, "an undecodable envelope");
            continue;
        }
        struct peer *p = last;
        if (!last_name || we.sender_len != last_len ||
            memcmp(we.sender, last_name, last_len) != 0) {
            p = cluster_sender(c, we.sender, we.sender_len);
            last_name = we.sender;
            last_len = we.sender_len;
            last = p;
        }
        if (!p) {
            c->strangers++;
            cluster_bad_input(c, from, "a message from a node not in membership");
            continue;
        }
        if (!cluster_peer_trusted(c, p) || !cluster_tls_sender_at(c, p, from)) {
            c->strangers++;
            cluster_bad_input(c, from, "a message from a node not authenticated by TLS");
            continue;
        }
        if (kind == 1) {
            p->rx_envelopes++;
            if (peerlog_seen(p, we.pub.seq))
                continue; /* sent again after a partition: we had it */
            if (c->nmove_ins && we.body_field == CL__ENVELOPE__BODY_PUBLISH)
                move_record(p, we.pub.seq);
            if (we.body_field == CL__ENVELOPE__BODY_PUBLISH)
                publish_on_remote(c, p, &we.pub, true);
            else if (peer_live(p))
                publish_on_remote(c, p, &we.pub, false);
            continue;
        }
        Cl__Envelope *e = cl__envelope__unpack(NULL, env_len, env);
        if (!e) {
            cluster_bad_input(c, from, "an undecodable envelope");
            continue;
        }
        cluster_dispatch(c, p, e);
        cl__envelope__free_unpacked(e, NULL);
    }
    if (*stop)
        return (size_t)(pos - data);
    if (rv < 0)
        cluster_bad_input(c, from, "an undecodable frame");
    else if (count == 0)
        cluster_bad_input(c, from, "an empty frame");
    return len;
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
    status_sys_member(c, m);

    if (m->state == MEMBER_DEAD || m->state == MEMBER_LEFT) {
        peer_close(p);
        if (m->state == MEMBER_DEAD && !p->holding) {
            /* It may be cut off, not gone: keep its routes and log what they match (cluster_log.c). */
            routes_hold(p);
        } else if (m->state == MEMBER_LEFT) {
            /* It handed its sessions over; if a hand-off was lost, their replicas are promoted
             * and ask for what it had not confirmed: its log stays a while for that. */
            routes_drop(p);
            p->log_keep = true;
            p->hold_since = uv_now(c->loop);
        }
        p->retained_synced = false;
        replica_member_gone(c, p); /* first: a takeover resumed next finds the promoted session */
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
         * What it missed goes first (it skips what it had). */
        size_t again = peerlog_replay(p);
        p->log_keep = false;
        if (again)
            log_info(c->log, "cluster: %zu message(s) kept for %s while it was away sent again",
                     again, p->name);
        routes_drop(p);
        p->retained_synced = false;
        cluster_request_sync(c, p, true, true);
        replica_member_up(c, p);
        net_kick(c); /* membership may call from a timer: do not wait for the next I/O */
    }
}

void cluster_dropped(struct cluster *c, uint64_t *peer_gone, uint64_t *queue_full)
{
    *peer_gone = *queue_full = 0;
    for (struct peer *p = c ? c->peers : NULL; p; p = p->next) {
        pthread_mutex_lock(&p->mu);
        *peer_gone += p->gone_pubs;
        pthread_mutex_unlock(&p->mu);
        *peer_gone += p->log_dropped;
        *queue_full += p->pub_dropped_full;
    }
}

/* The broker's statistics count what the cluster dropped too ($SYS and the total). */
static void cluster_add_stats(void *ctx, struct broker_stats *st)
{
    uint64_t gone, full;
    cluster_dropped(ctx, &gone, &full);
    st->dropped_peer_gone = gone;
    st->dropped_peer_full = full;
    st->msgs_dropped += gone + full;
}

/* The broker shuts down: send its MQTT 5 clients to a live peer that said where its clients
 * connect. The first such peer in the list: clients spread anyway as each picks its own. */
static bool cluster_server_reference(void *ctx, char *buf, size_t len)
{
    struct cluster *c = ctx;
    for (struct peer *p = c->peers; p; p = p->next) {
        if (p->state == MEMBER_ALIVE && p->client_addr[0]) {
            snprintf(buf, len, "%s", p->client_addr);
            return true;
        }
    }
    return false;
}

/* ---- readiness ---- */

/* Clients sent here once /readyz says 200 must find what they would find on any other node: every
 * retained message and every peer's routes. So after the join, wait until the initial full sync
 * with each live peer is complete (bounded, so one silent peer cannot keep this node out for
 * good). Latched: a later re-sync with one peer does not take the whole node out of service. */
bool cluster_ready(struct cluster *c)
{
    if (c->leaving || !broker_listening(c->b))
        return false;
    if (c->ready || !c->ms)
        return true;
    if (!membership_joined(c->ms))
        return false;
    uint64_t now = uv_now(c->loop);
    if (!c->ready_deadline)
        c->ready_deadline = now + CLUSTER_READY_TIMEOUT_MS;
    size_t waiting = 0;
    for (struct peer *p = c->peers; p; p = p->next)
        if (peer_live(p) && (!p->synced || !p->retained_synced))
            waiting++;
    if (waiting && now < c->ready_deadline)
        return false;
    if (waiting)
        log_warn(c->log, "cluster: ready without the initial sync of %zu peer(s) after %d ms",
                 waiting, CLUSTER_READY_TIMEOUT_MS);
    else
        log_info(c->log, "cluster: routes and retained messages synced with every peer: ready");
    c->ready = true;
    return true;
}

/* ---- timers ---- */

static void cluster_tick_cb(uv_timer_t *t)
{
    struct cluster *c = t->data;
    uint64_t now = uv_now(c->loop);
    takeover_tick(c, now);
    replica_tick(c, now);
    move_tick(c, now);
    handover_tick(c, now);
    for (struct peer *p = c->peers; p; p = p->next) {
        if (p->holding && now - p->hold_since >= CLUSTER_TOMB_DEAD_GRACE_MS) {
            log_warn(c->log, "cluster: %s dead for %u s: %zu message(s) kept for it dropped",
                     p->name, CLUSTER_TOMB_DEAD_GRACE_MS / 1000, p->log_count);
            routes_drop(p);
            peerlog_free(p, true);
        }
        if (p->log_keep && now - p->hold_since >= CLUSTER_LEFT_LOG_KEEP_MS) {
            p->log_keep = false;
            /* Never confirmed by it: passed on by its stubs or a hand-over, or lost. Counted as
             * dropped, as before its log was kept (an overcount when they were handed over). */
            peerlog_free(p, true);
        }
    }
    if (!c->ready)
        cluster_ready(c); /* starts the readiness bound at the join, and logs when it is reached */
    if (c->ms && now - c->last_heartbeat >= CLUSTER_HEARTBEAT_MS) {
        c->last_heartbeat = now;
        routes_heartbeat(c);
    }
    net_tick(c, now);
    net_kick(c); /* a timer turn may poll before the end-of-turn check runs: send now */
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
        for (size_t i = 0; i < p->nstaging_shares; i++)
            free(p->staging_shares[i]);
        free(p->staging_shares);
        peerlog_free(p, false);
        peerlog_marks_free(p);
        free(p->win_seqs);
        free(p);
    }
    topic_tree_free(c->local);
    retained_free(c);
    replica_free(c);
    move_free(c);
    handover_free(c);
    cluster_tls_free(&c->tls);
    pthread_mutex_destroy(&c->in_mu);
    free(c);
}

struct cluster *cluster_start(uv_loop_t *loop, struct broker *b, struct ops *ops,
                              const struct cluster_config *cfg, char *err, size_t errlen)
{
    const struct sol_config *node = broker_config(b);
    struct cluster *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "cluster: out of memory");
        return NULL;
    }
    c->loop = loop;
    c->b = b;
    c->cfg_own = *cfg;
    c->cfg = cfg = &c->cfg_own;
    c->max_frame = node->max_packet_size + CLUSTER_FRAME_SOFT_MAX + 64 * 1024;
    c->stall_timeout_ms = node->stall_timeout_ms;
    c->log = broker_logger(b);
    snprintf(c->self, sizeof(c->self), "%s", cfg->node_name);
    c->self_len = strlen(c->self);
    c->tx_high_bytes = CLUSTER_PEER_WATERMARK_FACTOR * node->backlog_high;
    c->tx_low_bytes = CLUSTER_PEER_WATERMARK_FACTOR * node->backlog_low;
    if (c->tx_high_bytes > CLUSTER_PEER_QUEUE_MAX / 2) /* room above it for what is in flight */
        c->tx_high_bytes = CLUSTER_PEER_QUEUE_MAX / 2;
    if (c->tx_low_bytes > c->tx_high_bytes / 2)
        c->tx_low_bytes = c->tx_high_bytes / 2;
    pthread_mutex_init(&c->in_mu, NULL);
    c->local = topic_tree_new();
    uint16_t rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd = (uint16_t)uv_hrtime();
    c->route_gen = (cluster_wall_ms() << 16) | rnd;
    /* Publish numbers rise across restarts too: a peer skips a number at or under the highest it
     * had from us as a duplicate (cluster_log.c). */
    c->seq = cluster_wall_ms() << 20;
    uv_timer_init(loop, &c->tick);
    uv_timer_init(loop, &c->leave_timer);
    c->tick.data = c->leave_timer.data = c;
    c->handles = 2;
    const char *drop = getenv("SOL_TEST_DROP_HANDOFF");
    c->drop_handoff = drop && strcmp(drop, "1") == 0;
    if (!c->local || retained_init(c) != 0 || replica_init(c) != 0 || move_init(c) != 0 ||
        handover_init(c) != 0) {
        snprintf(err, errlen, "cluster: out of memory");
        goto fail;
    }

    if (cfg->cluster_port != 0) {
        if (cluster_tls_init(c, err, errlen) != 0)
            goto fail;
        if (!c->tls_on && cfg->seeds[0])
            log_warn(c->log, "cluster node links are not encrypted or authenticated: set "
                             "--cluster-certfile, --cluster-keyfile and --cluster-cafile");
        if (net_listen(c, cluster_handle_frame, err, errlen) != 0) {
            config_name_setting(err, errlen, cfg->origin.cluster_port, "cluster: ");
            goto fail;
        }
        if (net_start_kicker(c) != 0)
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
            .add_stats = cluster_add_stats,
            .server_reference = cluster_server_reference,
            .on_session_state = replica_hook_state,
            .on_turn_end = replica_hook_turn_end,
            .on_stored = replica_hook_stored,
        };
        broker_set_hooks(b, &hooks);
        replica_restore(c);
        uv_timer_start(&c->tick, cluster_tick_cb, CLUSTER_TICK_MS, CLUSTER_TICK_MS);
    }
    status_sys_member(c, c->ms ? membership_self(c->ms) : NULL);
    c->ops = ops;
    if (status_attach(c) != 0) {
        snprintf(err, errlen, "cluster: out of memory");
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
    if (c->ms && takeover_handoff_all(c) > 0) {
        /* The sessions must reach their new holders before peers hear of the leave and close
         * their links to us. Bounded, so SIGTERM still exits promptly. */
        unsigned wait = CLUSTER_HANDOFF_FLUSH_MS;
        if (c->cfg->leave_timeout_ms && c->cfg->leave_timeout_ms < wait)
            wait = c->cfg->leave_timeout_ms;
        net_flush(c, wait);
    }
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
    if (c->ops)
        ops_detach(c->ops, c);
    c->ops = NULL;
    if (c->ms)
        membership_stop(c->ms);
    c->ms = NULL;
    net_flush(c, 500);
    net_shutdown(c);
    for (struct peer *p = c->peers; p; p = p->next)
        peer_free_tx(p);
    takeover_free_all(c);
    if (c->async_on)
        uv_close((uv_handle_t *)&c->async, cluster_handle_closed);
    if (c->kicker_on)
        uv_close((uv_handle_t *)&c->kicker, cluster_handle_closed);
    uv_close((uv_handle_t *)&c->tick, cluster_handle_closed);
    uv_close((uv_handle_t *)&c->leave_timer, cluster_handle_closed);
}

/* The log line is the operator's answer to the SIGHUP: the old keys stay on error. */
void cluster_reload_keys(struct cluster *c)
{
    char err[512];
    if (!c || !c->ms)
        return;
    if (membership_reload_keys(c->ms, err, sizeof(err)) != 0)
        log_warn(c->log, "cluster: gossip keys not re-read, keeping the old ones: %s", err);
    cluster_tls_reload(c);
}
