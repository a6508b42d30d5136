/*
 * broker.c - the broker's life cycle and the one place a PUBLISH is routed: retained store,
 * matching local sessions (each once, at its highest matching QoS), then the cluster hook.
 */
#include <stdlib.h>
#include <string.h>

#include "broker_internal.h"

#include <sys/random.h>
#include <unistd.h>

uint64_t broker_now_ms(const struct broker *b)
{
    return uv_now(b->loop);
}

static void broker_release_retained(void *value)
{
    message_unref(value);
}

static void broker_on_tick(uv_timer_t *t)
{
    conn_sweep(t->data);
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
    b->loop = loop;
    b->cfg = *cfg;
    b->log.level = cfg->log_level;
    strmap_init(&b->sessions);
    strmap_init(&b->routes);
    b->read_buf = malloc(BROKER_READ_CHUNK);
    b->subs = topic_tree_new();
    b->retained = retain_new(broker_release_retained);
    if (!b->read_buf || !b->subs || !b->retained) {
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

/* Listen, and start the flush, sweep and $SYS machinery. */
int broker_start(struct broker *b, char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    int rc;
    if (strchr(b->cfg.bind, ':'))
        rc = uv_ip6_addr(b->cfg.bind, b->cfg.port, (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(b->cfg.bind, b->cfg.port, (struct sockaddr_in *)&addr);
    if (rc < 0) {
        snprintf(err, errlen, "invalid bind address '%s'", b->cfg.bind);
        return -1;
    }
    uv_tcp_init(b->loop, &b->listener);
    b->listener.data = b;
    b->handles_open++;
    if ((rc = uv_tcp_bind(&b->listener, (struct sockaddr *)&addr, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&b->listener, 4096, conn_on_accept)) < 0) {
        snprintf(err, errlen, "cannot listen on %s:%u: %s", b->cfg.bind, b->cfg.port,
                 uv_strerror(rc));
        return -1;
    }
    b->listening = true;
    uv_check_init(b->loop, &b->flush_check);
    b->flush_check.data = b;
    uv_check_start(&b->flush_check, conn_flush_all);
    uv_idle_init(b->loop, &b->flush_idle);
    uv_timer_init(b->loop, &b->tick);
    b->tick.data = b;
    uv_timer_start(&b->tick, broker_on_tick, BROKER_TICK_MS, BROKER_TICK_MS);
    uv_timer_init(b->loop, &b->sys_timer);
    b->sys_timer.data = b;
    b->handles_open += 4;
    if (b->cfg.sys_interval)
        uv_timer_start(&b->sys_timer, broker_on_sys, 0, b->cfg.sys_interval * 1000ull);
    log_info(&b->log, "sol %s listening on %s:%u", SOL_VERSION, b->cfg.bind, b->cfg.port);
    return 0;
}

void broker_set_hooks(struct broker *b, const struct broker_hooks *hooks)
{
    b->hooks = *hooks;
}

static void broker_maybe_done(struct broker *b)
{
    if (b->handles_open == 0 && !b->conns && b->shutdown_done) {
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

/* Stop listening and close every client; done runs once the last socket is closed. */
void broker_shutdown(struct broker *b, void (*done)(void *ctx), void *ctx)
{
    b->shutting_down = true;
    b->shutdown_done = done;
    b->shutdown_ctx = ctx;
    b->listening = false;
    uv_handle_t *handles[] = {(uv_handle_t *)&b->listener, (uv_handle_t *)&b->flush_check,
                              (uv_handle_t *)&b->flush_idle, (uv_handle_t *)&b->tick,
                              (uv_handle_t *)&b->sys_timer};
    /* Flush what is pending (e.g. final acks) before closing sockets. */
    conn_flush_all(&b->flush_check);
    for (struct conn *c = b->conns; c;) {
        struct conn *next = c->next;
        conn_close(c, "shutting down");
        c = next;
    }
    for (size_t i = 0; i < sizeof(handles) / sizeof(handles[0]); i++) {
        if (handles[i]->type == UV_UNKNOWN_HANDLE || uv_is_closing(handles[i]))
            continue;
        handles[i]->data = b;
        uv_close(handles[i], broker_on_handle_closed);
    }
    broker_maybe_done(b);
}

void broker_free(struct broker *b)
{
    if (!b)
        return;
    memset(&b->hooks, 0, sizeof(b->hooks)); /* the cluster may be gone already: tell it nothing */
    /* Destroying a session deletes its slot, and backward-shift deletion may move a later entry
     * into that slot: drain each slot before moving on (linear, where a rescan per deletion was
     * quadratic in the number of sessions). */
    for (size_t i = 0; i < b->sessions.cap; i++)
        while (b->sessions.slots[i].key)
            session_destroy(b, b->sessions.slots[i].value);
    for (size_t i = 0; i < b->routes.cap; i++) {
        if (b->routes.slots[i].key) {
            struct route_count *r = b->routes.slots[i].value;
            free(r->filter);
            free(r);
        }
    }
    strmap_destroy(&b->sessions);
    strmap_destroy(&b->routes);
    if (b->subs)
        topic_tree_free(b->subs);
    if (b->retained)
        retain_free(b->retained);
    if (b->acl)
        acl_free(b->acl);
    if (b->auth)
        auth_free(b->auth);
    free(b->matched);
    free(b->read_buf);
    free(b);
}

const struct logger *broker_logger(const struct broker *b)
{
    return &b->log;
}

const struct sol_config *broker_config(const struct broker *b)
{
    return &b->cfg;
}

void broker_get_stats(const struct broker *b, struct broker_stats *out)
{
    *out = b->stats;
    out->retained = retain_count(b->retained);
    out->conn_buffer_bytes = b->conn_mem;
    if (b->hooks.add_stats)
        b->hooks.add_stats(b->hooks.ctx, out);
}

bool broker_listening(const struct broker *b)
{
    return b->listening;
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
    return acl_check(b->acl, s ? s->client_id : "", s ? s->username : NULL, topic, len, access);
}

/* Collects matching sessions once each with their highest QoS [MQTT-3.3.5-1]. */
static void broker_collect_match(void *subscriber, uint8_t qos, void *ctx)
{
    struct broker *b = ctx;
    struct session *s = subscriber;
    if (s->match_gen == b->match_gen) {
        if (qos > s->match_qos)
            s->match_qos = qos;
        return;
    }
    if (b->stats.subscriptions >= b->matched_cap) {
        /* The scratch array never needs more entries than there are subscriptions. */
        size_t ncap = b->matched_cap ? b->matched_cap * 2 : 64;
        while (ncap <= b->stats.subscriptions)
            ncap *= 2;
        struct session **nm = realloc(b->matched, ncap * sizeof(*nm));
        if (!nm)
            return; /* this subscriber misses the message; counted below as dropped */
        b->matched = nm;
        b->matched_cap = ncap;
    }
    s->match_gen = b->match_gen;
    s->match_qos = qos;
    b->matched[b->match_count++] = s;
}

/* Find the local sessions subscribed to a filter matching topic: b->matched[0..match_count), each
 * once with its highest granted QoS. */
static void broker_match_local(struct broker *b, const char *topic, size_t topic_len)
{
    b->match_gen++;
    b->match_count = 0;
    topic_tree_match(b->subs, topic, topic_len, broker_collect_match, b);
}

/* Deliver msg to the sessions broker_match_local found, at min(publish QoS, granted QoS)
 * [MQTT-3.8.4-6], retain flag cleared as for any live delivery [MQTT-3.3.1-9]. */
static void broker_deliver_matched(struct broker *b, struct message *msg)
{
    for (size_t i = 0; i < b->match_count; i++) {
        struct session *s = b->matched[i];
        if (!broker_acl_allows(b, s, msg->topic, msg->topic_len, ACL_READ))
            continue;
        uint8_t qos = msg->qos < s->match_qos ? msg->qos : s->match_qos;
        session_deliver(b, s, msg, qos, false);
    }
}

/* Deliver msg to every local session subscribed to a matching filter. */
void broker_deliver_local(struct broker *b, struct message *msg)
{
    broker_match_local(b, msg->topic, msg->topic_len);
    broker_deliver_matched(b, msg);
}

/* A PUBLISH accepted here: update the retained store [MQTT-3.3.1-5/10/11], deliver locally, and
 * tell the cluster if it came from one of our clients. */
void broker_publish(struct broker *b, struct message *msg, bool from_local_client)
{
    if (msg->retain) {
        if (msg->payload_len == 0)
            retain_set(b->retained, msg->topic, msg->topic_len, NULL);
        else if (retain_set(b->retained, msg->topic, msg->topic_len, message_ref(msg)) < 0)
            message_unref(msg);
    }
    broker_deliver_local(b, msg);
    if (from_local_client && b->hooks.on_publish)
        b->hooks.on_publish(b->hooks.ctx, msg);
}

/* A client's PUBLISH, still in the read buffer. Local subscribers are matched first: when none
 * wants it and it is not retained (a publisher whose subscribers are on other nodes), no message is
 * allocated and the cluster hook forwards a view of the packet. Returns -1 when out of memory. */
int broker_publish_packet(struct broker *b, const char *topic, size_t topic_len,
                          const uint8_t *payload, size_t payload_len, uint8_t qos, bool retain)
{
    if (!retain) {
        broker_match_local(b, topic, topic_len);
        if (b->match_count == 0) {
            if (b->hooks.on_publish) {
                struct message view;
                message_view_init(&view, topic, topic_len, payload, payload_len, qos, false);
                b->hooks.on_publish(b->hooks.ctx, &view);
            }
            return 0;
        }
    }
    struct message *msg = message_new(topic, topic_len, payload, payload_len, qos, retain);
    if (!msg)
        return -1;
    if (retain) {
        broker_publish(b, msg, true);
    } else {
        broker_deliver_matched(b, msg); /* the match above still stands: nothing ran since */
        if (b->hooks.on_publish)
            b->hooks.on_publish(b->hooks.ctx, msg);
    }
    message_unref(msg);
    return 0;
}

struct retained_send {
    struct broker *b;
    struct conn *c;
    uint8_t granted;
};

static void broker_send_one_retained(const char *topic, size_t len, void *value, void *ctx)
{
    struct retained_send *rs = ctx;
    struct message *msg = value;
    struct session *s = rs->c->session;
    if (!s || !broker_acl_allows(rs->b, s, topic, len, ACL_READ))
        return;
    uint8_t qos = msg->qos < rs->granted ? msg->qos : rs->granted;
    /* [MQTT-3.3.1-8] sent with the retain flag set; QoS 1/2 through the session window as any
     * other. */
    session_deliver(rs->b, s, msg, qos, true);
}

/* Send the retained messages matching a new subscription. */
void broker_send_retained(struct broker *b, struct conn *c, const char *filter, size_t len,
                          uint8_t granted)
{
    struct retained_send rs = {b, c, granted};
    retain_match(b->retained, filter, len, broker_send_one_retained, &rs);
}

/* Count local subscriptions per filter; the first and last tell the cluster. */
void broker_route_ref(struct broker *b, const char *filter, size_t len)
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
    log_error(&b->log, "out of memory recording route %.*s", (int)len, filter);
    free(copy);
    free(r);
}

void broker_route_unref(struct broker *b, const char *filter, size_t len)
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

/* ---- inbound from the cluster ---- */

void broker_deliver_remote(struct broker *b, struct message *msg)
{
    broker_deliver_local(b, msg);
}

int broker_retain_apply(struct broker *b, struct message *msg)
{
    if (msg->payload_len == 0)
        return retain_set(b->retained, msg->topic, msg->topic_len, NULL);
    if (retain_set(b->retained, msg->topic, msg->topic_len, message_ref(msg)) < 0) {
        message_unref(msg);
        return -1;
    }
    return 0;
}

struct message *broker_retain_get(const struct broker *b, const char *topic, size_t len)
{
    return retain_get(b->retained, topic, len);
}

struct retain_visit {
    void (*fn)(struct message *msg, void *ctx);
    void *ctx;
};

static void broker_retain_visit(const char *topic, size_t len, void *value, void *ctx)
{
    struct retain_visit *v = ctx;
    v->fn(value, v->ctx);
}

void broker_retain_foreach(const struct broker *b, void (*fn)(struct message *msg, void *ctx),
                           void *ctx)
{
    struct retain_visit v = {fn, ctx};
    retain_foreach(b->retained, broker_retain_visit, &v);
}

void broker_routes_foreach(const struct broker *b,
                           void (*fn)(const char *filter, size_t len, void *ctx), void *ctx)
{
    for (size_t i = 0; i < b->routes.cap; i++) {
        if (b->routes.slots[i].key) {
            const struct route_count *r = b->routes.slots[i].value;
            fn(r->filter, b->routes.slots[i].len, ctx);
        }
    }
}

/* Another node now has this client: close it here and hand over a persistent session. */
bool broker_session_takeover(struct broker *b, const char *client_id,
                             const struct session_visitor *v)
{
    size_t len = strlen(client_id);
    struct session *s = session_get(b, client_id, len);
    if (!s)
        return false;
    if (s->conn) {
        log_info(&b->log, "client %s taken over by another node", client_id);
        conn_close(s->conn, NULL); /* publishes the will; destroys a clean session */
    }
    s = session_get(b, client_id, len);
    if (!s)
        return true;
    session_snapshot(s, v);
    session_destroy(b, s);
    return true;
}

/* The persistent sessions, for a node that leaves and hands them to its peers. */
void broker_sessions_foreach(const struct broker *b, void (*fn)(const char *client_id, void *ctx),
                             void *ctx)
{
    for (size_t i = 0; i < b->sessions.cap; i++) {
        if (!b->sessions.slots || !b->sessions.slots[i].key)
            continue;
        const struct session *s = b->sessions.slots[i].value;
        if (!s->clean)
            fn(s->client_id, ctx);
    }
}

static struct session *broker_import_session(struct broker *b, const char *client_id)
{
    size_t len = strlen(client_id);
    struct session *s = session_get(b, client_id, len);
    return s ? s : session_create(b, client_id, len, false);
}

int broker_session_restore_sub(struct broker *b, const char *client_id, const char *filter,
                               uint8_t qos)
{
    struct session *s = broker_import_session(b, client_id);
    return s ? session_subscribe(b, s, filter, strlen(filter), qos) : -1;
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
