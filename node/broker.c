/*
 * broker.c - the broker's life cycle and the one place a PUBLISH is routed: retained store,
 * matching local sessions (each once, at its highest matching QoS), then the cluster hook.
 */
#include <stdlib.h>
#include <string.h>

#include "broker_internal.h"
#include "conn.h"
#include "persist.h"

#include <sys/random.h>
#include <unistd.h>

static void broker_on_tick(uv_timer_t *t)
{
    struct broker *b = t->data;
    uint64_t now = broker_now_ms(b);
    conns_sweep(b->conns);
    sessions_expire(b, now);
    broker_retain_sweep(b, now);
}

static void broker_on_sys(uv_timer_t *t)
{
    sys_publish(t->data);
}

/* A broker with its configuration, ACL and password file loaded; nothing listening yet. */
struct broker *broker_new(uv_loop_t *loop, const struct sol_config *cfg, char *err, size_t errlen)
{
    struct broker *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    b->core.loop = loop;
    b->core.cfg = *cfg;
    b->core.log.level = cfg->log_level;
    strmap_init(&b->routes);
    b->subs = topic_tree_new();
    b->shares = shares_new();
    b->retained = retain_new(broker_retain_release);
    b->sessions = sessions_new();
    b->conns = conns_new(b);
    if (!b->subs || !b->shares || !b->retained || !b->sessions || !b->conns) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->acl_file[0] && !(b->acl = acl_load(cfg->acl_file, err, errlen)))
        goto fail;
    if (cfg->password_file[0] && !(b->auth = auth_load(cfg->password_file, err, errlen)))
        goto fail;
    b->start_ms = uv_now(loop);
    /* Not the start time: nodes started in the same millisecond would hand out the same ids, and
     * the cluster would take one client's session over for another's [MQTT-3.1.3-6]. */
    if (getrandom(&b->id_prefix, sizeof(b->id_prefix), 0) != (ssize_t)sizeof(b->id_prefix))
        b->id_prefix = uv_hrtime() ^ ((uint64_t)getpid() << 32);
    return b;
fail:
    broker_free(b);
    return NULL;
}

/* Nothing to do itself: an active idle handle only makes the loop's poll return at once. */
static void broker_on_idle(uv_idle_t *idle)
{
    (void)idle;
}

void broker_wake(struct broker *b)
{
    if (!b->handles_closed)
        uv_idle_start(&b->flush_idle, broker_on_idle);
}

/* End of a loop turn, after all I/O callbacks: resume released publishers, then write out every
 * connection's output (theirs included). */
static void broker_turn_end(struct broker *b)
{
    flow_run_ready(b);
    uv_idle_stop(&b->flush_idle);
    persist_turn_end(b); /* the turn's changes to the writer before its output goes */
    conns_flush(b->conns);
}

static void broker_on_check(uv_check_t *check)
{
    broker_turn_end(check->data);
}

#define BROKER_MAX_LISTENERS 16

/* The listeners, in one place: --bind:--port, then each --listener URL (settings checked them). */
static int broker_listen(struct broker *b, char *err, size_t errlen)
{
    const struct sol_config *cfg = &b->core.cfg;
    struct listener_config ls[BROKER_MAX_LISTENERS] = {
        {.kind = TRANSPORT_TCP, .bind = cfg->bind, .port = cfg->port, .origin = cfg->origin.port},
    };
    struct config_listener urls[BROKER_MAX_LISTENERS];
    char origins[BROKER_MAX_LISTENERS][96];
    size_t n = 1;
    for (const char *p = cfg->listeners; *p; n++) {
        size_t len = strcspn(p, " ");
        if (n == BROKER_MAX_LISTENERS) {
            errf(err, errlen, "--listener: at most %d listeners", BROKER_MAX_LISTENERS - 1);
            return -1;
        }
        struct config_listener *u = &urls[n];
        if (config_listener_parse(p, len, u, err, errlen) < 0)
            return -1;
        snprintf(origins[n], sizeof(origins[n]), "--listener %.*s", (int)len, p);
        ls[n] = (struct listener_config){
            .kind = u->ws ? (u->tls ? TRANSPORT_WSS : TRANSPORT_WS)
                          : (u->tls ? TRANSPORT_TLS : TRANSPORT_TCP),
            .bind = u->addr,
            .port = u->port,
            .origin = origins[n],
            .certfile = cfg->certfile,
            .keyfile = cfg->keyfile,
            .cafile = cfg->cafile,
            .capath = cfg->capath,
            .ciphers = cfg->ciphers,
            .require_certificate = cfg->require_certificate,
            .use_identity_as_username = cfg->use_identity_as_username,
            .tls_min_version = strcmp(cfg->tls_min_version, "1.3") == 0 ? 13 : 12,
            .ws_path = u->path,
            .ws_origins = cfg->ws_origins,
            .trust_xff = cfg->trust_x_forwarded_for,
            .ws_max_frame = cfg->max_packet_size + 5, /* a whole packet: fixed header + rest */
            .proxy_protocol = cfg->proxy_protocol,
        };
        p += len + (p[len] == ' ');
    }
    return conns_listen(b->conns, ls, n, err, errlen);
}

int broker_reload_tls(struct broker *b, char *err, size_t errlen)
{
    return conns_reload(b->conns, err, errlen);
}

/* Listen on every configured address, and start the flush, sweep and $SYS machinery. */
int broker_start(struct broker *b, char *err, size_t errlen)
{
    const struct sol_config *cfg = &b->core.cfg;
    /* Everything the store holds is back before a client can connect. */
    if (persist_open(b, err, errlen) < 0)
        return -1;
    if (broker_listen(b, err, errlen) < 0)
        return -1;
    b->started = true;
    uv_check_init(b->core.loop, &b->flush_check);
    b->flush_check.data = b;
    uv_check_start(&b->flush_check, broker_on_check);
    uv_idle_init(b->core.loop, &b->flush_idle);
    uv_timer_init(b->core.loop, &b->tick);
    b->tick.data = b;
    uv_timer_start(&b->tick, broker_on_tick, BROKER_TICK_MS, BROKER_TICK_MS);
    uv_timer_init(b->core.loop, &b->sys_timer);
    b->sys_timer.data = b;
    b->handles_open += 4;
    if (cfg->sys_interval)
        uv_timer_start(&b->sys_timer, broker_on_sys, 0, cfg->sys_interval * 1000ull);
    log_info(&b->core.log, "sol %s listening on %s:%u", SOL_VERSION, cfg->bind, cfg->port);
    if (cfg->listeners[0])
        log_info(&b->core.log, "also listening on %s", cfg->listeners);
    return 0;
}

void broker_set_hooks(struct broker *b, const struct broker_hooks *hooks)
{
    b->hooks = *hooks;
}

static void broker_maybe_done(struct broker *b)
{
    if (b->handles_open == 0 && b->shutdown_done) {
        void (*done)(void *) = b->shutdown_done;
        b->shutdown_done = NULL;
        done(b->shutdown_ctx);
    }
}

static void broker_on_handle_closed(uv_handle_t *h)
{
    struct broker *b = h->data;
    b->handles_open--;
    broker_maybe_done(b);
}

static void broker_on_conns_closed(void *ctx)
{
    struct broker *b = ctx;
    persist_close(b); /* after the wills: they may have set retained messages */
    b->handles_open--;
    broker_maybe_done(b);
}

/* Stop listening and close every client; done runs once the last socket is closed. */
void broker_shutdown(struct broker *b, void (*done)(void *ctx), void *ctx)
{
    b->shutting_down = true;
    b->shutdown_done = done;
    b->shutdown_ctx = ctx;
    uv_handle_t *handles[] = {(uv_handle_t *)&b->flush_check, (uv_handle_t *)&b->flush_idle,
                              (uv_handle_t *)&b->tick, (uv_handle_t *)&b->sys_timer};
    if (b->started)
        broker_turn_end(b); /* what is pending (e.g. final acks) goes out first */
    /* The connections first: their wills are delivered (waking the loop turn machinery). */
    b->handles_open++; /* until conns_shutdown is done */
    char ref[256];
    bool moved =
        b->hooks.server_reference && b->hooks.server_reference(b->hooks.ctx, ref, sizeof(ref));
    conns_shutdown(b->conns, moved ? ref : NULL, broker_on_conns_closed, b);
    b->handles_closed = true;
    for (size_t i = 0; i < sizeof(handles) / sizeof(handles[0]); i++) {
        if (handles[i]->type == UV_UNKNOWN_HANDLE || uv_is_closing(handles[i]))
            continue;
        handles[i]->data = b;
        uv_close(handles[i], broker_on_handle_closed);
    }
}

static void broker_free_route(const char *key, size_t len, void *value, void *ctx)
{
    struct route_count *r = value;
    free(r->filter);
    free(r);
}

void broker_free(struct broker *b)
{
    if (!b)
        return;
    memset(&b->hooks, 0, sizeof(b->hooks)); /* the cluster may be gone already: tell it nothing */
    /* First (a start that failed has it open): freeing the sessions must not delete their
     * records. */
    persist_close(b);
    sessions_free(b, b->sessions);
    b->sessions = NULL;
    strmap_foreach(&b->routes, broker_free_route, NULL);
    strmap_destroy(&b->routes);
    conns_free(b->conns);
    if (b->subs)
        topic_tree_free(b->subs);
    shares_free(b->shares);
    if (b->retained)
        retain_free(b->retained);
    if (b->acl)
        acl_free(b->acl);
    if (b->auth)
        auth_free(b->auth);
    free(b->match.v);
    free(b);
}

const struct logger *broker_logger(const struct broker *b)
{
    return &b->core.log;
}

const struct sol_config *broker_config(const struct broker *b)
{
    return &b->core.cfg;
}

struct sessions *broker_sessions(struct broker *b)
{
    return b->sessions;
}

void broker_get_stats(const struct broker *b, struct broker_stats *out)
{
    *out = b->core.stats;
    out->retained = retain_count(b->retained);
    out->conn_buffer_bytes = conns_buffer_bytes(b->conns);
    if (b->hooks.add_stats)
        b->hooks.add_stats(b->hooks.ctx, out);
}

bool broker_listening(const struct broker *b)
{
    return !b->shutting_down && conns_listening(b->conns);
}

/* ACL check for a session's client id and username; no ACL file = allowed. No client writes a $SYS
 * topic (PUBLISH or will): those are the broker's own statistics, not to be forged (4.7.2: the
 * server should keep clients from exchanging messages on '$' topics; Mosquitto does the same). */
bool broker_acl_allows(const struct broker *b, const struct session *s, const char *topic,
                       size_t len, enum acl_access access)
{
    if (access == ACL_WRITE && len >= 4 && memcmp(topic, "$SYS", 4) == 0 &&
        (len == 4 || topic[4] == '/'))
        return false;
    if (!b->acl)
        return true;
    return acl_check(b->acl, s ? session_client_id(s) : "", s ? session_username(s) : NULL, topic,
                     len, access);
}

/* Find the local sessions subscribed to a filter matching topic: b->match, each once with its
 * highest granted QoS. */
static void broker_match_local(struct broker *b, const char *topic, size_t topic_len,
                               const struct session *from)
{
    session_match_begin(&b->match, from);
    topic_tree_match(b->subs, topic, topic_len, session_match_add, &b->match);
}

/* Deliver msg to the sessions broker_match_local found, at min(publish QoS, granted QoS)
 * [MQTT-3.8.4-6], retain flag cleared as for any live delivery [MQTT-3.3.1-9] unless the
 * subscription asked for Retain As Published [MQTT-3.3.1-12]. */
static void broker_deliver_matched(struct broker *b, struct message *msg)
{
    for (size_t i = 0; i < b->match.n; i++) {
        struct session *s = b->match.v[i].s;
        uint8_t granted = b->match.v[i].qos;
        /* Without an ACL file every read is allowed: no call per delivery. */
        if (b->acl && !broker_acl_allows(b, s, msg->topic, msg->topic_len, ACL_READ))
            continue;
        uint8_t qos = msg->qos < granted ? msg->qos : granted;
        session_deliver(b, s, msg, qos, msg->retain && b->match.v[i].rap);
    }
}

/* A routing pass is over: later sends (queue drains) are not on the publisher's behalf. */
static void broker_routing_done(struct broker *b)
{
    b->match.publisher = NULL;
}

/* Deliver msg to every local session subscribed to a matching filter (from: the publisher's
 * session, for No Local; NULL for none): the one local delivery of both broker_publish_from and
 * broker_deliver_remote, so it stays this file's own. */
static void broker_deliver_local(struct broker *b, struct message *msg, const struct session *from)
{
    broker_match_local(b, msg->topic, msg->topic_len, from);
    broker_deliver_matched(b, msg);
}

/* A PUBLISH accepted here: update the retained store, deliver locally, and tell the cluster if it
 * came from one of our clients. */
void broker_publish(struct broker *b, struct message *msg, bool from_local_client)
{
    broker_publish_from(b, msg, from_local_client, NULL);
}

/* The peers chosen for shared groups, per message: more groups than this matching one message
 * go to local members only. */
#define BROKER_SHARE_PICKS 64

/* After the local subscribers: the shared groups (a member here now, or a peer picked) and the
 * cluster hook, which forwards to peers with subscribers and to the peers picked. Returns how many
 * receivers that added. */
static size_t broker_route_on(struct broker *b, struct message *msg, const struct session *from)
{
    struct share_pick picks[BROKER_SHARE_PICKS];
    size_t npicks = 0;
    size_t n = share_route(b, b->shares, msg, from, picks, BROKER_SHARE_PICKS, &npicks);
    if (b->hooks.on_publish)
        n += b->hooks.on_publish(b->hooks.ctx, msg, picks, npicks, false);
    return n;
}

size_t broker_publish_from(struct broker *b, struct message *msg, bool from_local_client,
                           const struct session *from)
{
    if (msg->retain) /* [MQTT-3.3.1-5/10/11] */
        broker_retain_apply(b, msg);
    broker_deliver_local(b, msg, from);
    size_t n = b->match.n;
    if (from_local_client) /* a peer's message was routed to groups where it was published */
        n += broker_route_on(b, msg, from);
    broker_routing_done(b);
    return n;
}

/* A client's PUBLISH, still in the read buffer. Local subscribers are matched first: when none
 * wants it, it is not retained and no shared group matches (a publisher whose subscribers are on
 * other nodes), no message is allocated and the cluster hook forwards a view of the packet. */
int broker_publish_packet(struct broker *b, const struct broker_pub *p)
{
    struct message view, *msg = &view;
    message_view_init(&view, p->topic, p->topic_len, p->payload, p->payload_len, p->qos, false);
    view.props = (uint8_t *)p->props;
    view.props_len = (uint32_t)p->props_len;
    view.expire_at = p->expire_at;
    if (!p->retain) {
        broker_match_local(b, p->topic, p->topic_len, p->from);
        if (b->match.n == 0 && !share_any(b->shares, p->topic, p->topic_len)) {
            size_t peers = 0;
            if (b->hooks.on_publish)
                peers = b->hooks.on_publish(b->hooks.ctx, &view, NULL, 0, false);
            broker_routing_done(b);
            return peers > INT32_MAX ? INT32_MAX : (int)peers;
        }
    }
    msg = (p->v5 ? message_new5_for_v5 : message_new5)(p->topic, p->topic_len, p->payload,
                                                       p->payload_len, p->qos, p->retain, p->props,
                                                       p->props_len, p->expire_at);
    if (!msg) {
        broker_routing_done(b);
        return -1;
    }
    size_t n;
    if (p->retain) {
        n = broker_publish_from(b, msg, true, p->from);
    } else {
        broker_deliver_matched(b, msg); /* the match above still stands: nothing ran since */
        n = b->match.n + broker_route_on(b, msg, p->from);
        broker_routing_done(b);
    }
    message_unref(msg);
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

void broker_share_forward(struct broker *b, struct message *msg, const struct share_pick *pick)
{
    if (b->hooks.on_publish)
        b->hooks.on_publish(b->hooks.ctx, msg, pick, 1, true);
}

const struct session *broker_routing_from(const struct broker *b)
{
    return b->match.publisher;
}

struct shares *broker_shares(struct broker *b)
{
    return b->shares;
}

bool broker_share_route(struct broker *b, const char *route, size_t len, void *peer, bool add)
{
    const char *f;
    size_t flen;
    if (!share_parse(route, len, &f, &flen))
        return false;
    if (share_remote(b->shares, route, len, peer, add) < 0)
        log_error(broker_log(b), "out of memory recording a peer's shared subscription");
    return true;
}

void broker_share_peer_gone(struct broker *b, void *peer)
{
    share_remote_forget(b->shares, peer);
}

void broker_deliver_shared(struct broker *b, struct message *msg, const char *key, size_t len,
                           bool may_forward)
{
    struct share_pick pick;
    int rc = share_deliver_local(b, b->shares, msg, key, len, may_forward, &pick);
    if (rc > 0) {
        broker_share_forward(b, msg, &pick);
    } else if (rc < 0) {
        b->core.stats.dropped_share_no_member++;
        b->core.stats.msgs_dropped++;
    }
}

/* Count local subscriptions per filter; the first and last tell the cluster. */
static void broker_route_ref(struct broker *b, const char *filter, size_t len)
{
    struct route_count *r = strmap_get(&b->routes, filter, len);
    if (r) {
        r->count++;
        return;
    }
    r = calloc(1, sizeof(*r));
    char *copy = malloc(len + 1);
    if (!r || !copy)
        goto oom;
    memcpy(copy, filter, len);
    copy[len] = '\0';
    r->filter = copy;
    r->count = 1;
    if (strmap_put(&b->routes, r->filter, len, r) < 0)
        goto oom;
    if (b->hooks.on_route_add)
        b->hooks.on_route_add(b->hooks.ctx, r->filter, len);
    return;
oom:
    log_error(&b->core.log, "out of memory recording route %.*s", (int)len, filter);
    free(copy);
    free(r);
}

static void broker_route_unref(struct broker *b, const char *filter, size_t len)
{
    struct route_count *r = strmap_get(&b->routes, filter, len);
    if (!r || --r->count > 0)
        return;
    strmap_del(&b->routes, filter, len);
    if (b->hooks.on_route_del)
        b->hooks.on_route_del(b->hooks.ctx, r->filter, len);
    free(r->filter);
    free(r);
}

int broker_subscribe(struct broker *b, struct session *s, const char *filter, size_t len,
                     uint8_t qos, bool is_new)
{
    const char *f;
    size_t flen;
    /* A shared group's key is the route peers learn, so each node knows who has members. */
    if (share_parse(filter, len, &f, &flen)) {
        if (share_join(b, b->shares, filter, len, s, qos) < 0)
            return -1;
    } else if (topic_tree_subscribe(b->subs, filter, len, s, qos) < 0) {
        return -1;
    }
    if (is_new)
        broker_route_ref(b, filter, len);
    return 0;
}

void broker_unsubscribe(struct broker *b, struct session *s, const char *filter, size_t len)
{
    const char *f;
    size_t flen;
    if (share_parse(filter, len, &f, &flen))
        share_leave(b->shares, filter, len, s);
    else
        topic_tree_unsubscribe(b->subs, filter, len, s);
    broker_route_unref(b, filter, len);
}

/* ---- CONNECT ---- */

uint8_t broker_authenticate(const struct broker *b, const struct mqtt_connect *p)
{
    if (!p->has_username)
        return b->core.cfg.allow_anonymous ? MQTT_CONNACK_ACCEPTED : MQTT_CONNACK_NOT_AUTHORIZED;
    if (!b->auth)
        return MQTT_CONNACK_ACCEPTED;
    char user[256];
    if (p->username.len >= sizeof(user))
        return MQTT_CONNACK_BAD_CREDENTIALS;
    memcpy(user, p->username.data, p->username.len);
    user[p->username.len] = '\0';
    if (!p->has_password || !auth_check(b->auth, user, p->password.data, p->password.len))
        return MQTT_CONNACK_BAD_CREDENTIALS;
    return MQTT_CONNACK_ACCEPTED;
}

void broker_client_id_gen(struct broker *b, char *buf, size_t len)
{
    snprintf(buf, len, "auto-%016llx-%llx", (unsigned long long)b->id_prefix,
             (unsigned long long)++b->id_counter);
}

uint64_t broker_connect_hold(struct broker *b, const char *client_id, bool clean)
{
    uint64_t token = ++b->next_token;
    if (b->hooks.on_connect && b->hooks.on_connect(b->hooks.ctx, client_id, clean, token))
        return token;
    return 0;
}

void broker_connect_resume(struct broker *b, uint64_t token)
{
    conns_resume_held(b->conns, token);
}

/* ---- inbound from the cluster ---- */

void broker_deliver_remote(struct broker *b, struct message *msg)
{
    broker_deliver_local(b, msg, NULL);
}

struct routes_visit {
    void (*fn)(const char *filter, size_t len, void *ctx);
    void *ctx;
};

static void broker_route_visit(const char *key, size_t len, void *value, void *ctx)
{
    struct routes_visit *v = ctx;
    v->fn(key, len, v->ctx);
}

void broker_routes_foreach(const struct broker *b,
                           void (*fn)(const char *filter, size_t len, void *ctx), void *ctx)
{
    struct routes_visit v = {fn, ctx};
    strmap_foreach(&b->routes, broker_route_visit, &v);
}

/* Another node now has this client: close it here and hand over a persistent session. */
bool broker_session_takeover(struct broker *b, const char *client_id,
                             const struct session_visitor *v)
{
    size_t len = strlen(client_id);
    struct session *s = session_get(b, client_id, len);
    if (!s)
        return false;
    if (session_conn(s)) {
        log_info(&b->core.log, "client %s taken over by another node", client_id);
        conn_close(session_conn(s), NULL); /* publishes the will; destroys a clean session */
    }
    s = session_get(b, client_id, len);
    if (!s)
        return true;
    session_snapshot(s, v);
    session_destroy(b, s);
    return true;
}

bool broker_deliver_session(struct broker *b, const char *client_id, struct message *msg)
{
    struct session *s = session_get(b, client_id, strlen(client_id));
    if (!s)
        return false;
    broker_match_local(b, msg->topic, msg->topic_len, NULL);
    for (size_t i = 0; i < b->match.n; i++) {
        if (b->match.v[i].s != s)
            continue;
        if (b->acl && !broker_acl_allows(b, s, msg->topic, msg->topic_len, ACL_READ))
            break;
        uint8_t granted = b->match.v[i].qos;
        session_deliver(b, s, msg, msg->qos < granted ? msg->qos : granted, false);
        broker_routing_done(b);
        return true;
    }
    broker_routing_done(b);
    return false;
}

bool broker_session_online(const struct broker *b, const char *client_id)
{
    struct session *s = session_get((struct broker *)b, client_id, strlen(client_id));
    return s && session_conn(s);
}

/* The persistent sessions, for a node that leaves and hands them to its peers. */
struct sessions_visit {
    void (*fn)(const char *client_id, void *ctx);
    void *ctx;
};

static void broker_session_visit(struct session *s, void *ctx)
{
    struct sessions_visit *v = ctx;
    if (session_is_persistent(s))
        v->fn(session_client_id(s), v->ctx);
}

void broker_sessions_foreach(const struct broker *b, void (*fn)(const char *client_id, void *ctx),
                             void *ctx)
{
    struct sessions_visit v = {fn, ctx};
    sessions_foreach((struct broker *)b, broker_session_visit, &v); /* it changes nothing */
}

static struct session *broker_import_session(struct broker *b, const char *client_id)
{
    size_t len = strlen(client_id);
    struct session *s = session_get(b, client_id, len);
    if (!s)
        s = session_create(b, client_id, len, false);
    if (s)
        persist_session_changed(b, s); /* a moved session is written here */
    return s;
}

int broker_session_restore_will(struct broker *b, const char *client_id, struct message *will,
                                uint32_t delay_s)
{
    struct session *s = broker_import_session(b, client_id);
    if (!s)
        return -1;
    if (!session_conn(s))
        session_will_later(b, s, will, delay_s);
    return 0;
}

int broker_session_restore_sub(struct broker *b, const char *client_id, const char *filter,
                               uint8_t opts, uint32_t subid)
{
    struct session *s = broker_import_session(b, client_id);
    return s ? session_subscribe(b, s, filter, strlen(filter), opts, subid) : -1;
}

int broker_session_restore_expiry(struct broker *b, const char *client_id, uint32_t seconds)
{
    struct session *s = broker_import_session(b, client_id);
    if (!s)
        return -1;
    session_restore_expiry(b, s, seconds);
    return 0;
}

int broker_session_restore_msg(struct broker *b, const char *client_id, struct message *msg,
                               const struct session_msg_info *info)
{
    struct session *s = broker_import_session(b, client_id);
    return s ? session_restore_msg(b, s, msg, info) : -1;
}

int broker_session_restore_rx_id(struct broker *b, const char *client_id, uint16_t id)
{
    struct session *s = broker_import_session(b, client_id);
    return s && id ? session_rx_qos2_add(s, id) : -1;
}

int broker_session_restore_next_id(struct broker *b, const char *client_id, uint16_t next_id)
{
    struct session *s = broker_import_session(b, client_id);
    if (!s)
        return -1;
    session_restore_next_id(s, next_id);
    return 0;
}
