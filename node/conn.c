/*
 * conn.c - one MQTT connection over a transport: its input and output buffers, coalesced writes,
 * back-pressure on reading, memory accounting, and close. Parsing is mqtt.c's.
 *
 * Reads land in the transport's shared buffer (a socket's whole kernel buffer per read, many
 * packets parsed per read); only the tail of a packet split across reads is copied into the
 * connection, so an idle connection holds no buffer at all. Writes are appended to the
 * connection's output buffer and flushed once per loop turn from the check phase: one write per
 * connection per turn, however many packets it carries.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "conn_int.h"
#include "persist.h"

static void conn_mark_dirty(struct conn *c);
static void conn_flow_pause(struct flow_source *src);
static void conn_flow_resume(struct flow_source *src);

/* Over max-conn-memory: condemn the largest holders (closed at this turn's flush, taking no more
 * output meanwhile) until need more bytes fit. Returns false if c itself was condemned, so its
 * growth fails. A scan of every connection, but only when the cap is reached, and each scan
 * condemns at least one holder. */
static bool conn_mem_relieve(struct conn *c, size_t need)
{
    struct conns *cs = c->cs;
    struct broker_core *core = broker_core(cs->b);
    while (cs->mem - cs->mem_condemned + need > core->cfg.max_conn_memory) {
        struct conn *big = NULL;
        size_t big_bytes = 0;
        for (struct conn *o = cs->list; o; o = o->next) {
            size_t held = (size_t)o->in_cap + o->out_cap + o->write_cap;
            if (!o->condemned && o->state != CONN_CLOSING && held > big_bytes) {
                big = o;
                big_bytes = held;
            }
        }
        if (!big)
            return true; /* nothing left to free: let the allocator decide */
        char peer[64];
        log_warn(&core->log,
                 "closing %s (%s): holds %zu bytes of buffers, over max-conn-memory %zu",
                 conn_peer(big, peer, sizeof(peer)), conn_name(big), big_bytes,
                 core->cfg.max_conn_memory);
        big->condemned = true;
        big->close_at_flush = true;
        cs->mem_condemned += big_bytes;
        core->stats.conns_memory_closed++;
        conn_mark_dirty(big);
        if (big == c)
            return false;
    }
    return true;
}

/* Grow one of c's byte buffers to hold at least need bytes (at most 2 GiB: lengths are 32-bit to
 * keep the per-connection struct small), counted against max-conn-memory. */
static int conn_buf_reserve(struct conn *c, uint8_t **data, uint32_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    if (need > UINT32_MAX / 2 || c->condemned)
        return -1;
    size_t ncap = *cap ? *cap : 1024;
    while (ncap < need)
        ncap *= 2;
    if (broker_cfg(c->cs->b)->max_conn_memory && !conn_mem_relieve(c, ncap - *cap))
        return -1;
    uint8_t *nd = realloc(*data, ncap);
    if (!nd)
        return -1;
    c->cs->mem += ncap - *cap;
    *data = nd;
    *cap = (uint32_t)ncap;
    return 0;
}

/* Give back memory counted in cs->mem (a buffer of c's, or its background write's). */
static void conn_mem_release(struct conn *c, size_t cap)
{
    c->cs->mem -= cap;
    if (c->condemned)
        c->cs->mem_condemned -= cap;
}

/* Give one of c's byte buffers back. */
static void conn_buf_free(struct conn *c, uint8_t **data, uint32_t *cap)
{
    conn_mem_release(c, *cap);
    free(*data);
    *data = NULL;
    *cap = 0;
}

void conn_trim(struct conn *c)
{
    if (c->out && c->out_len == 0)
        conn_buf_free(c, &c->out, &c->out_cap);
}

void conn_input_drop(struct conn *c)
{
    if (c->in_len == 0 && c->in)
        conn_buf_free(c, &c->in, &c->in_cap);
}

static const struct flow_source_ops conn_flow_ops = {conn_flow_pause, conn_flow_resume};

/* transport: a new stream. Refused while shutting down; over max-connections it is kept to be
 * answered CONNACK 0x03 "server unavailable", so the client knows to go elsewhere (the CONNECT
 * timeout bounds how long such a socket may stay). */
static int conn_on_accepted(void *ctx, struct transport *t, void *user)
{
    struct conns *cs = ctx;
    struct conn *c = user;
    struct broker_core *core = broker_core(cs->b);
    if (cs->shutting_down)
        return -1;
    c->t = t;
    c->cs = cs;
    c->state = CONN_NEW;
    c->flow.ops = &conn_flow_ops;
    c->next = cs->list;
    if (cs->list)
        cs->list->prev = c;
    cs->list = c;
    cs->open++;
    core->stats.connections_total++;
    if (core->cfg.max_connections && cs->open > core->cfg.max_connections) {
        core->stats.connections_refused++;
        c->over_limit = true;
    }
    conn_mark_rx(c); /* in CONN_NEW: the accept time, for the CONNECT timeout */
    conn_update_reading(c);
    return 0;
}

const char *conn_peer(const struct conn *c, char *buf, size_t len)
{
    return transport_peer(c->t, buf, len);
}

const char *conn_name(const struct conn *c)
{
    if (c->session)
        return session_client_id(c->session);
    return c->connect && c->connect->client_id ? c->connect->client_id : "no CONNECT yet";
}

/* Read exactly when nothing holds it back: not held for the cluster, not behind on its own output
 * (read_paused), not waiting for a subscriber it feeds (flow.gate) with as much of its input
 * buffered as a paused connection may hold (its acks are taken from that, mqtt_skim). */
void conn_update_reading(struct conn *c)
{
    bool want = (c->state == CONN_NEW || c->state == CONN_ACTIVE) && !c->read_paused &&
                (!c->flow.gate || c->in_len < CONN_PAUSED_INPUT_MAX) && !c->flow.ready;
    if (want == c->reading)
        return;
    if (!want) {
        transport_read_stop(c->t);
        c->reading = false;
        return;
    }
    if (transport_read_start(c->t) < 0) {
        conn_close(c, "read start failed");
        return;
    }
    c->reading = true;
}

struct flow_source *conn_flow_source(struct conn *c)
{
    return &c->flow;
}

/* A subscriber this connection publishes to is full: stop taking its packets after the one being
 * handled (mqtt_parse checks flow.gate) and stop reading, so TCP pushes back on the client. */
static void conn_flow_pause(struct flow_source *src)
{
    struct conn *c = (struct conn *)((char *)src - offsetof(struct conn, flow));
    conn_update_reading(c);
}

/* Check phase: it may publish again. First what it had read before the pause, then the socket
 * (unless that input blocked it again). While paused its keepalive was not held against it. */
static void conn_flow_resume(struct flow_source *src)
{
    struct conn *c = (struct conn *)((char *)src - offsetof(struct conn, flow));
    if (c->state == CONN_CLOSING)
        return;
    conn_mark_rx(c);
    if (c->in_len)
        mqtt_input(c);
    if (c->state != CONN_CLOSING)
        conn_update_reading(c);
}

/* transport: where to read. Into the partial-packet buffer when it holds one, else into the shared
 * buffer. Either way one read takes up to TRANSPORT_READ_CHUNK. */
static int conn_on_read_buf(void *user, uint8_t **buf, size_t *len)
{
    struct conn *c = user;
    if (c->in_len == 0)
        return 0;
    if (conn_buf_reserve(c, &c->in, &c->in_cap, (size_t)c->in_len + TRANSPORT_READ_CHUNK) < 0)
        return -1;
    *buf = c->in + c->in_len;
    *len = c->in_cap - c->in_len;
    return 0;
}

/* Back-pressure: a client that does not read what we send it (acknowledgements, PINGRESPs, its
 * QoS 1/2 window) is not read from either while its unsent output, this turn's buffer plus an
 * unfinished write, is above CONN_OUT_PAUSE; reading resumes once a write completes below it. So
 * what such a client can make the broker hold stays bounded. While we do not read, its keepalive
 * is not held against it (what it sent waits in the socket); it starts afresh on resuming. */
static void conn_check_backlog(struct conn *c)
{
    if (c->state != CONN_ACTIVE)
        return;
    size_t backlog = conn_backlog(c);
    if (backlog > CONN_OUT_PAUSE && !c->read_paused) {
        c->read_paused = true;
        conn_update_reading(c);
    } else if (backlog <= CONN_OUT_PAUSE && c->read_paused) {
        c->read_paused = false;
        conn_mark_rx(c);
        conn_update_reading(c);
    }
}

size_t conn_backlog(const struct conn *c)
{
    return (size_t)c->out_len + c->write_len;
}

/* transport: n bytes arrived, in c->in after what it held (conn_on_read_buf chose so) or in the
 * shared buffer, which is only valid during this call. */
static void conn_on_data(void *user, uint8_t *data, size_t n)
{
    struct conn *c = user;
    struct broker_core *core = broker_core(c->cs->b);
    core->stats.bytes_received += n;
    if (c->flow.gate)
        conn_mark_rx(c); /* alive: what it sends waits behind a paused PUBLISH */
    if (c->in_len) {
        c->in_len += (uint32_t)n;
        if (c->flow.gate)
            mqtt_skim(c);
        else
            mqtt_input(c);
    } else {
        size_t used = c->flow.gate ? 0 : mqtt_parse(c, data, n);
        if (c->state == CONN_CLOSING)
            return;
        if (used < n) {
            /* Keep the unparsed tail (a split packet, input behind a held CONNECT or a paused
             * PUBLISH) for later. */
            size_t rest = n - used;
            if (conn_buf_reserve(c, &c->in, &c->in_cap, rest) < 0) {
                conn_close(c, "out of memory");
                return;
            }
            memcpy(c->in, data + used, rest);
            c->in_len = (uint32_t)rest;
            if (c->flow.gate)
                mqtt_skim(c);
        }
    }
    if (c->state == CONN_CLOSING)
        return;
    conn_check_backlog(c);
    conn_update_reading(c); /* a paused connection stops once CONN_PAUSED_INPUT_MAX is buffered */
}

/* transport: the client closed, or the stream failed. */
static void conn_on_ended(void *user, const char *why)
{
    conn_close(user, why);
}

/* Queue the connection for this loop turn's flush. */
static void conn_mark_dirty(struct conn *c)
{
    struct conns *cs = c->cs;
    if (c->dirty || c->state == CONN_CLOSING)
        return;
    c->dirty = true;
    if (!cs->dirty)
        broker_wake(cs->b);
    c->dirty_next = cs->dirty;
    cs->dirty = c;
}

uint8_t *conn_reserve(struct conn *c, size_t len)
{
    if (conn_buf_reserve(c, &c->out, &c->out_cap, (size_t)c->out_len + len) < 0)
        return NULL;
    return c->out + c->out_len;
}

void conn_commit(struct conn *c, size_t len)
{
    c->out_len += (uint32_t)len;
    broker_core(c->cs->b)->stats.bytes_sent += len;
    conn_mark_dirty(c);
}

/* Output that cannot be buffered: the connection takes no more and is closed at this turn's flush
 * (not here: callers run inside routing passes and queue drains). */
static void conn_out_failed(struct conn *c)
{
    c->close_at_flush = true;
    conn_mark_dirty(c);
}

int conn_write(struct conn *c, const uint8_t *data, size_t len)
{
    if (c->state == CONN_CLOSING)
        return -1;
    uint8_t *p = conn_reserve(c, len);
    if (!p) {
        conn_out_failed(c);
        return -1;
    }
    memcpy(p, data, len);
    conn_commit(c, len);
    return 0;
}

int conn_send_ack(struct conn *c, enum mqtt_type type, uint16_t id)
{
    uint8_t pkt[CODEC_ACK_SIZE];
    return conn_write(c, pkt, codec_encode_ack(pkt, type, id));
}

int conn_send_publish(struct conn *c, struct message *msg, uint8_t qos, uint16_t id, bool dup,
                      bool retain)
{
    if (c->state != CONN_ACTIVE || c->close_at_flush)
        return -1;
    if (c->v5) {
        if (conn5_send_publish(c, msg, qos, id, dup, retain) == 0)
            return 0;
        conn_out_failed(c);
        return -1;
    }
    size_t len;
    if (!message_wire(msg, qos, &len, NULL))
        return -1;
    uint8_t *p = conn_reserve(c, len);
    if (!p) {
        conn_out_failed(c);
        return -1;
    }
    message_encode_into(msg, p, qos, id, dup, retain);
    conn_commit(c, len);
    broker_core(c->cs->b)->stats.msgs_sent++;
    return 0;
}

bool conn_publish_fits(struct conn *c, const struct message *msg, uint8_t qos)
{
    return conn5_publish_fits(c, msg, qos);
}

uint16_t conn_receive_max(const struct conn *c)
{
    return c->v5 ? c->v5->receive_max : UINT16_MAX;
}

/* transport: a background write finished; its buffer is ours again. The connection is alive: the
 * transport reports this before closed even when the close cancelled the write. */
static void conn_on_written(void *user, uint8_t *buf, const char *err)
{
    struct conn *c = user;
    conn_mem_release(c, c->write_cap);
    free(buf);
    c->write_len = c->write_cap = 0;
    if (c->state == CONN_CLOSING)
        return;
    if (err) {
        conn_close(c, err);
        return;
    }
    if (c->out_len)
        conn_mark_dirty(c);
    conn_check_backlog(c);
    if (c->session)
        session_progress(c->cs->b, c->session);
}

/* Write out one connection's pending output: what the transport takes at once, the rest in the
 * background. A connection marked close_at_flush is closed instead. */
static void conn_flush(struct conn *c)
{
    if (c->close_at_flush) {
        conn_close(c, "out of memory for its output");
        return;
    }
    if (c->write_len || c->out_len == 0)
        return;
    int n = transport_try_write(c->t, c->out, c->out_len);
    if (n < 0) {
        conn_close(c, transport_strerror(n));
        return;
    }
    if (n > 0 && c->session)
        session_touch(c->cs->b, c->session);
    if ((uint32_t)n == c->out_len) {
        /* All out. A small buffer goes back at once (an idle connection holds none, and the next
         * small malloc reuses it); a busy connection's larger one is kept for the next turn
         * (regrowing it every turn would cost fan-out throughput) unless a burst grew it past
         * 256 KiB; the sweep frees the kept ones of connections that went quiet. */
        c->out_len = 0;
        if (c->out_cap <= 4096 || c->out_cap > 256 * 1024)
            conn_buf_free(c, &c->out, &c->out_cap);
        if (c->session)
            session_progress(c->cs->b, c->session);
        return;
    }
    /* The rest goes in the background; the output buffer moves to the write (still counted in
     * cs->mem until it completes) and a new one starts. */
    uint8_t *buf = c->out;
    uint32_t cap = c->out_cap, rest = c->out_len - (uint32_t)n;
    int rc = transport_write(c->t, buf, buf + n, rest);
    if (rc < 0) {
        conn_close(c, "write failed");
        return;
    }
    c->out = NULL;
    c->out_len = c->out_cap = 0;
    c->write_len = rest;
    c->write_cap = cap;
}

void conns_flush(struct conns *cs)
{
    struct conn *c = cs->dirty;
    cs->dirty = NULL;
    while (c) {
        struct conn *next = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        if (c->state != CONN_CLOSING)
            conn_flush(c);
        c = next;
    }
}

void conn_close(struct conn *c, const char *why)
{
    struct broker *b = c->cs->b;
    struct broker_core *core = broker_core(b);
    if (c->state == CONN_CLOSING)
        return;
    bool was_active = c->state == CONN_ACTIVE;
    bool send_will =
        c->will && was_active && !c->got_disconnect &&
        broker_acl_allows(b, c->session, c->will->topic, c->will->topic_len, ACL_WRITE);
    if (why)
        log_debug(&core->log, "closing %s: %s",
                  c->session || (c->connect && c->connect->client_id) ? conn_name(c) : "-", why);
    c->state = CONN_CLOSING;
    broker_flow_forget(b, &c->flow);
    struct session *held = NULL; /* a persistent session that takes a delayed will */
    if (c->session) {
        struct session *s = c->session;
        c->session = NULL;
        if (send_will && c->v5 && c->v5->will_delay && session_is_persistent(s))
            held = s; /* a persistent session outlives the detach */
        session_detach(b, s);
        if (was_active)
            core->stats.clients_connected--;
    }
    if (c->will) {
        struct message *will = c->will;
        c->will = NULL;
        if (c->v5 && c->v5->will_expiry) /* counts from the publication (after the delay) */
            will->expire_at =
                broker_now_ms(b) +
                ((uint64_t)c->v5->will_expiry + (held ? c->v5->will_delay : 0)) * 1000;
        if (held) /* [MQTT-3.1.3-9] after the Will Delay Interval */
            session_will_later(b, held, will, c->v5->will_delay);
        else if (send_will) /* [MQTT-3.1.2-8], shutdown included */
            broker_publish(b, will, true);
        message_unref(will);
    }
    if (c->out_len && !c->write_len)
        transport_try_write(c->t, c->out, c->out_len); /* e.g. a refusing CONNACK */
    transport_close(c->t);
}

static void conns_maybe_done(struct conns *cs)
{
    if (cs->shutting_down && !cs->list && cs->listeners_closed && cs->shutdown_done) {
        void (*done)(void *) = cs->shutdown_done;
        cs->shutdown_done = NULL;
        done(cs->shutdown_ctx);
    }
}

/* transport: the stream is closed: unlink and give back what the connection holds (the transport
 * frees the allocation itself). */
static void conn_on_closed(void *user)
{
    struct conn *c = user;
    struct conns *cs = c->cs;
    if (c->prev)
        c->prev->next = c->next;
    else
        cs->list = c->next;
    if (c->next)
        c->next->prev = c->prev;
    cs->open--;
    persist_conn_gone(cs->b, c);
    conn_buf_free(c, &c->in, &c->in_cap);
    conn_buf_free(c, &c->out, &c->out_cap);
    if (c->connect) {
        free(c->connect->client_id);
        free(c->connect->username);
        free(c->connect);
    }
    conn5_free(c);
    conns_maybe_done(cs);
}

static const struct transport_events conn_events = {
    .accepted = conn_on_accepted,
    .read_buf = conn_on_read_buf,
    .data = conn_on_data,
    .ended = conn_on_ended,
    .written = conn_on_written,
    .closed = conn_on_closed,
};

struct conns *conns_new(struct broker *b)
{
    struct conns *cs = calloc(1, sizeof(*cs));
    if (!cs)
        return NULL;
    cs->b = b;
    struct broker_core *core = broker_core(b);
    cs->listeners = listeners_new(core->loop, &core->log, &conn_events, sizeof(struct conn), cs);
    if (!cs->listeners) {
        free(cs);
        return NULL;
    }
    return cs;
}

void conns_free(struct conns *cs)
{
    if (!cs)
        return;
    listeners_free(cs->listeners);
    free(cs);
}

int conns_listen(struct conns *cs, const struct listener_config *cfg, size_t n, char *err,
                 size_t errlen)
{
    return listeners_start(cs->listeners, cfg, n, err, errlen);
}

int conns_reload(struct conns *cs, char *err, size_t errlen)
{
    return listeners_reload(cs->listeners, err, errlen);
}

bool conns_listening(const struct conns *cs)
{
    return !cs->shutting_down && listeners_open(cs->listeners);
}

size_t conns_buffer_bytes(const struct conns *cs)
{
    return cs->mem;
}

static void conns_on_listeners_closed(void *ctx)
{
    struct conns *cs = ctx;
    cs->listeners_closed = true;
    conns_maybe_done(cs);
}

void conns_shutdown(struct conns *cs, const char *server_ref, void (*done)(void *ctx), void *ctx)
{
    cs->shutting_down = true;
    cs->shutdown_done = done;
    cs->shutdown_ctx = ctx;
    conns_flush(cs); /* what is pending (e.g. final acks) goes out before the sockets close */
    for (struct conn *c = cs->list; c;) {
        struct conn *next = c->next;
        if (c->v5 && c->state == CONN_ACTIVE)
            conn5_send_disconnect_ref(
                c, server_ref ? MQTT_RC_USE_ANOTHER_SERVER : MQTT_RC_SERVER_SHUTTING_DOWN,
                "server shutting down", server_ref);
        conn_close(c, "shutting down");
        c = next;
    }
    listeners_close(cs->listeners, conns_on_listeners_closed, cs);
}
