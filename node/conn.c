/*
 * conn.c - client connections: accept, read, parse, dispatch, coalesced writes, close.
 *
 * Reads land in one broker-wide buffer (a socket's whole kernel buffer per read, many packets
 * parsed per read); only the tail of a packet split across reads is copied into the connection, so
 * an idle connection holds no buffer at all. Writes are appended to the connection's output buffer
 * and flushed once per loop turn by a check handle: one write syscall per connection per turn,
 * however many packets it carries.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "broker_internal.h"

static void conn_on_close(uv_handle_t *h);
static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void conn_mark_dirty(struct conn *c);
static void conn_flow_pause(struct flow_source *src);
static void conn_flow_resume(struct flow_source *src);

/* Over max-conn-memory: condemn the largest holders (closed at this turn's flush, taking no more
 * output meanwhile) until need more bytes fit. Returns false if c itself was condemned, so its
 * growth fails. A scan of every connection, but only when the cap is reached, and each scan
 * condemns at least one holder. */
static bool conn_mem_relieve(struct conn *c, size_t need)
{
    struct broker *b = c->b;
    while (b->conn_mem - b->conn_mem_condemned + need > b->cfg.max_conn_memory) {
        struct conn *big = NULL;
        size_t big_bytes = 0;
        for (struct conn *o = b->conns; o; o = o->next) {
            size_t held = (size_t)o->in_cap + o->out_cap + (o->write ? o->write->cap : 0);
            if (!o->condemned && o->state != CONN_CLOSING && held > big_bytes) {
                big = o;
                big_bytes = held;
            }
        }
        if (!big)
            return true; /* nothing left to free: let the allocator decide */
        char peer[64];
        log_warn(&b->log, "closing %s (%s): holds %zu bytes of buffers, over max-conn-memory %zu",
                 conn_peer(big, peer, sizeof(peer)),
                 big->session ? big->session->client_id : "no CONNECT yet", big_bytes,
                 b->cfg.max_conn_memory);
        big->condemned = true;
        big->close_at_flush = true;
        b->conn_mem_condemned += big_bytes;
        b->stats.conns_memory_closed++;
        conn_mark_dirty(big);
        if (big == c)
            return false;
    }
    return true;
}

/* Grow one of c's byte buffers to hold at least need bytes (at most 4 GiB: lengths are 32-bit to
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
    if (c->b->cfg.max_conn_memory && !conn_mem_relieve(c, ncap - *cap))
        return -1;
    uint8_t *nd = realloc(*data, ncap);
    if (!nd)
        return -1;
    c->b->conn_mem += ncap - *cap;
    *data = nd;
    *cap = ncap;
    return 0;
}

/* Give one of c's byte buffers back. */
static void conn_buf_free(struct conn *c, uint8_t **data, uint32_t *cap)
{
    c->b->conn_mem -= *cap;
    if (c->condemned)
        c->b->conn_mem_condemned -= *cap;
    free(*data);
    *data = NULL;
    *cap = 0;
}

static const struct flow_source_ops conn_flow_ops = {conn_flow_pause, conn_flow_resume};

/* New connection on the listener: accept it, or refuse it over max-connections. */
void conn_on_accept(uv_stream_t *server, int status)
{
    struct broker *b = server->data;
    if (status < 0 || b->shutting_down)
        return;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        log_error(&b->log, "out of memory accepting a connection");
        return;
    }
    c->b = b;
    if (uv_tcp_init(b->loop, &c->tcp) < 0) {
        free(c);
        return;
    }
    c->tcp.data = c;
    c->state = CONN_NEW;
    c->flow.ops = &conn_flow_ops;
    /* Link first so conn_on_close can always unlink. */
    c->next = b->conns;
    if (b->conns)
        b->conns->prev = c;
    b->conns = c;
    b->open_conns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c, NULL);
        return;
    }
    b->stats.connections_total++;
    /* Over the limit: answer its CONNECT with 0x03 "server unavailable" so the client knows to go
     * elsewhere (the connect timeout bounds how long such a socket may stay). */
    if (b->cfg.max_connections && b->open_conns > b->cfg.max_connections) {
        b->stats.connections_refused++;
        c->over_limit = true;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->last_rx_ms = broker_now_ms(b); /* in CONN_NEW: the accept time, for the CONNECT timeout */
    conn_read_start(c);
}

/* "ip:port" of the client, for log lines. Computed on demand: an idle connection should not carry a
 * string it only needs when something goes wrong. */
const char *conn_peer(const struct conn *c, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    char ip[48] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
    }
    snprintf(buf, len, "%s:%d", ip, port);
    return buf;
}

/* Read from the socket exactly when nothing holds it back: not held for the cluster, not behind on
 * its own output (read_paused), not waiting for a subscriber it feeds (flow.gate) with as much of
 * its input buffered as a paused connection may hold (its acks are taken from that, conn_skim). */
static void conn_update_reading(struct conn *c)
{
    bool want = (c->state == CONN_NEW || c->state == CONN_ACTIVE) && !c->read_paused &&
                (!c->flow.gate || c->in_len < BROKER_PAUSED_INPUT_MAX) && !c->flow.ready;
    if (want == c->reading)
        return;
    if (!want) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read) < 0) {
        conn_close(c, "read start failed");
        return;
    }
    c->reading = true;
}

/* (Re)start reading: after accept, and when a held CONNECT resumes. */
void conn_read_start(struct conn *c)
{
    conn_update_reading(c);
}

/* A subscriber this connection publishes to is full: stop taking its packets after the one being
 * handled (conn_parse checks flow.gate) and stop reading, so TCP pushes back on the client. */
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
    c->last_rx_ms = broker_now_ms(c->b);
    if (c->in_len)
        conn_process_input(c);
    if (c->state != CONN_CLOSING)
        conn_update_reading(c);
}

/* libuv asks where to read: into the connection's partial-packet buffer when it holds one, else
 * into the shared buffer. Either way one read takes up to 64 KiB. */
static void conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    struct broker *b = c->b;
    if (c->in_len == 0) {
        *buf = uv_buf_init((char *)b->read_buf, BROKER_READ_CHUNK);
        return;
    }
    if (conn_buf_reserve(c, &c->in, &c->in_cap, c->in_len + BROKER_READ_CHUNK) < 0) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS; we close */
        return;
    }
    *buf = uv_buf_init((char *)c->in + c->in_len, c->in_cap - c->in_len);
}

/* An MQTT 3.1 CONNECT (protocol name "MQIsdp"), which this 3.1.1 server answers with CONNACK 0x01.
 */
static bool conn_is_mqtt31(const uint8_t *p, size_t len)
{
    static const uint8_t name[] = {0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p'};
    if (len < 2 || p[0] != 0x10)
        return false;
    size_t i = 1;
    while (i < len && i < 5 && (p[i] & 0x80))
        i++;
    i++;
    return len >= i + sizeof(name) && memcmp(p + i, name, sizeof(name)) == 0;
}

/* Decode and dispatch every complete packet in data[0..len). Returns the bytes consumed; stops
 * early when the connection closes or is held for the cluster. */
static size_t conn_parse(struct conn *c, const uint8_t *data, size_t len)
{
    struct broker *b = c->b;
    size_t off = 0;
    while (off < len && (c->state == CONN_NEW || c->state == CONN_ACTIVE) && !c->flow.gate) {
        struct mqtt_packet p;
        int rc = codec_decode(data + off, len - off, b->cfg.max_packet_size, &p);
        if (rc == CODEC_INCOMPLETE)
            break;
        if (rc < 0) {
            if (c->state == CONN_NEW &&
                (rc == CODEC_ERR_PROTOCOL_LEVEL || conn_is_mqtt31(data + off, len - off))) {
                /* [MQTT-3.1.2-2] unacceptable protocol level (an MQTT 3.1 "MQIsdp" client
                 * included): CONNACK 0x01, then close, so the client knows why. */
                uint8_t ack[CODEC_CONNACK_SIZE];
                conn_write(c, ack, codec_encode_connack(ack, false, MQTT_CONNACK_BAD_PROTOCOL));
            }
            conn_protocol_error(c, codec_strerror(rc));
            break;
        }
        if (p.total_len > b->cfg.max_packet_size) { /* the limit counts the whole packet */
            conn_protocol_error(c, "packet larger than max-packet-size");
            break;
        }
        off += p.total_len;
        c->last_rx_ms = broker_now_ms(b);
        if (c->state == CONN_NEW && p.type != MQTT_CONNECT) {
            conn_protocol_error(c, "first packet is not CONNECT"); /* [MQTT-3.1.0-1] */
            break;
        }
        switch (p.type) {
        case MQTT_CONNECT:
            if (c->state != CONN_NEW) {
                conn_protocol_error(c, "second CONNECT"); /* [MQTT-3.1.0-2] */
                break;
            }
            handle_connect(c, &p.u.connect);
            break;
        case MQTT_PUBLISH:
            handle_publish(c, &p.u.publish);
            break;
        case MQTT_PUBACK:
        case MQTT_PUBREC:
        case MQTT_PUBREL:
        case MQTT_PUBCOMP:
            handle_ack(c, p.type, p.u.packet_id);
            break;
        case MQTT_SUBSCRIBE:
            handle_subscribe(c, &p.u.subscribe);
            break;
        case MQTT_UNSUBSCRIBE:
            handle_unsubscribe(c, &p.u.unsubscribe);
            break;
        case MQTT_PINGREQ:
            handle_pingreq(c);
            break;
        case MQTT_DISCONNECT:
            handle_disconnect(c);
            break;
        default: /* CONNACK, SUBACK, UNSUBACK, PINGRESP: only a server sends these */
            conn_protocol_error(c, "packet type only a server may send");
            break;
        }
    }
    return off;
}

/* While its PUBLISHes wait (flow.gate), a connection's acknowledgements of what we send it
 * (PUBACK, PUBREC, PUBCOMP) and PINGREQs are taken out of its buffered input and handled ahead of
 * them: order among those and other packets does not matter to MQTT, and a client that both
 * publishes and subscribes (or two that publish to each other) must keep acknowledging, or the
 * subscriber it is would never drain and its publishers never resume. Everything else, PUBREL
 * included (it must follow its PUBLISH), waits in order. Packets before skim_off were looked at
 * already; the buffer is compacted in one pass. */
static void conn_skim(struct conn *c)
{
    struct broker *b = c->b;
    size_t r = c->skim_off, w = c->skim_off;
    while (r < c->in_len && c->state == CONN_ACTIVE) {
        struct mqtt_packet p;
        if (codec_decode(c->in + r, c->in_len - r, b->cfg.max_packet_size, &p) != CODEC_OK ||
            p.total_len > b->cfg.max_packet_size)
            break; /* incomplete or bad: left for the in-order parse to handle */
        if (p.type == MQTT_PUBACK || p.type == MQTT_PUBREC || p.type == MQTT_PUBCOMP) {
            c->last_rx_ms = broker_now_ms(b);
            handle_ack(c, p.type, p.u.packet_id);
        } else if (p.type == MQTT_PINGREQ) {
            c->last_rx_ms = broker_now_ms(b);
            handle_pingreq(c);
        } else {
            if (w != r)
                memmove(c->in + w, c->in + r, p.total_len);
            w += p.total_len;
        }
        r += p.total_len;
    }
    if (c->state == CONN_CLOSING || w == r)
        return;
    memmove(c->in + w, c->in + r, c->in_len - r);
    c->in_len -= (uint32_t)(r - w);
    c->skim_off = (uint32_t)w;
}

/* Parse what the connection has buffered (after a read into c->in, or when a held CONNECT resumes).
 */
void conn_process_input(struct conn *c)
{
    c->skim_off = 0;
    size_t used = conn_parse(c, c->in, c->in_len);
    if (c->state == CONN_CLOSING)
        return;
    c->in_len -= used;
    if (c->in_len == 0) {
        conn_buf_free(c, &c->in, &c->in_cap); /* idle connections keep no buffer */
    } else if (used) {
        memmove(c->in, c->in + used, c->in_len);
    }
}

/* Back-pressure: a client that does not read what we send it (acknowledgements, PINGRESPs, its
 * QoS 1/2 window) is not read from either while its unsent output, this turn's buffer plus an
 * unfinished write, is above BROKER_OUT_PAUSE; reading resumes once a write completes below it. So
 * what such a client can make the broker hold stays bounded. While we do not read, its keepalive
 * is not held against it (what it sent waits in the socket); it starts afresh on resuming. */
static void conn_check_backlog(struct conn *c)
{
    if (c->state != CONN_ACTIVE)
        return;
    size_t backlog = c->out_len + (c->write ? c->write->len : 0);
    if (backlog > BROKER_OUT_PAUSE && !c->read_paused) {
        c->read_paused = true;
        conn_update_reading(c);
    } else if (backlog <= BROKER_OUT_PAUSE && c->read_paused) {
        c->read_paused = false;
        c->last_rx_ms = broker_now_ms(c->b);
        conn_update_reading(c);
    }
}

size_t conn_backlog(const struct conn *c)
{
    return c->out_len + (c->write ? c->write->len : 0);
}

/* Bytes arrived (or EOF / error). Who owns buf: the broker's shared buffer or c->in, never freed
 * here. */
static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    struct broker *b = c->b;
    if (nread == 0)
        return;
    if (nread < 0) {
        conn_close(c, nread == UV_EOF ? "connection closed by client" : uv_strerror((int)nread));
        return;
    }
    b->stats.bytes_received += (uint64_t)nread;
    if (c->flow.gate)
        c->last_rx_ms = broker_now_ms(b); /* alive: what it sends waits behind a paused PUBLISH */
    if ((uint8_t *)buf->base != b->read_buf) {
        c->in_len += (size_t)nread;
        if (c->flow.gate)
            conn_skim(c);
        else
            conn_process_input(c);
    } else {
        size_t used = c->flow.gate ? 0 : conn_parse(c, b->read_buf, (size_t)nread);
        if (c->state == CONN_CLOSING)
            return;
        if (used < (size_t)nread) {
            /* Keep the unparsed tail (a split packet, input behind a held CONNECT or a paused
             * PUBLISH) for later. */
            size_t rest = (size_t)nread - used;
            if (conn_buf_reserve(c, &c->in, &c->in_cap, rest) < 0) {
                conn_close(c, "out of memory");
                return;
            }
            memcpy(c->in, b->read_buf + used, rest);
            c->in_len = rest;
            if (c->flow.gate)
                conn_skim(c);
        }
    }
    if (c->state == CONN_CLOSING)
        return;
    conn_check_backlog(c);
    conn_update_reading(c); /* a paused connection stops once BROKER_PAUSED_INPUT_MAX is buffered */
}

/* The idle handle only exists to make the loop's poll return at once while output waits for the
 * check handle; it has nothing to do itself. */
static void conn_on_idle(uv_idle_t *idle)
{
    (void)idle;
}

/* Queue the connection for this loop turn's flush. */
static void conn_mark_dirty(struct conn *c)
{
    struct broker *b = c->b;
    if (c->dirty || c->state == CONN_CLOSING)
        return;
    c->dirty = true;
    if (!b->dirty)
        uv_idle_start(&b->flush_idle, conn_on_idle);
    c->dirty_next = b->dirty;
    b->dirty = c;
}

/* Room for len more output bytes; conn_commit(len) after writing them. NULL on allocation failure.
 */
uint8_t *conn_reserve(struct conn *c, size_t len)
{
    if (conn_buf_reserve(c, &c->out, &c->out_cap, c->out_len + len) < 0)
        return NULL;
    return c->out + c->out_len;
}

void conn_commit(struct conn *c, size_t len)
{
    c->out_len += len;
    c->b->stats.bytes_sent += len;
    conn_mark_dirty(c);
}

/* Append bytes to this turn's output. Returns 0 or -1 (out of memory: the connection is closed). */
int conn_write(struct conn *c, const uint8_t *data, size_t len)
{
    if (c->state == CONN_CLOSING)
        return -1;
    uint8_t *p = conn_reserve(c, len);
    if (!p) {
        conn_close(c, "out of memory");
        return -1;
    }
    memcpy(p, data, len);
    conn_commit(c, len);
    return 0;
}

/* Append one PUBLISH of msg: a copy of its shared encoding with this delivery's flags and id. When
 * the output buffer cannot grow, the connection is not closed here: this runs inside a routing pass
 * (whose list of sessions its will's routing would overwrite) or a queue drain (whose clean session
 * the close would free). It takes no more output and is closed at this turn's flush. */
int conn_send_publish(struct conn *c, struct message *msg, uint8_t qos, uint16_t id, bool dup,
                      bool retain)
{
    if (c->state != CONN_ACTIVE || c->close_at_flush)
        return -1;
    size_t len;
    if (!message_wire(msg, qos, &len, NULL))
        return -1;
    uint8_t *p = conn_reserve(c, len);
    if (!p) {
        c->close_at_flush = true;
        conn_mark_dirty(c);
        return -1;
    }
    message_encode_into(msg, p, qos, id, dup, retain);
    conn_commit(c, len);
    c->b->stats.msgs_sent++;
    return 0;
}

/* A uv_write finished. Owns: the request and its buffer (both freed here). The conn is alive: libuv
 * calls this before the close callback even when the write was cancelled by uv_close. */
static void conn_on_write(uv_write_t *req, int status)
{
    struct conn_write *w = (struct conn_write *)req;
    struct conn *c = w->conn;
    c->b->conn_mem -= w->cap;
    if (c->condemned)
        c->b->conn_mem_condemned -= w->cap;
    free(w->buf);
    free(w);
    c->write = NULL;
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        conn_close(c, uv_strerror(status));
        return;
    }
    if (c->out_len)
        conn_mark_dirty(c);
    conn_check_backlog(c);
    if (c->session)
        session_progress(c->b, c->session);
}

/* Write out one connection's pending output: try the syscall directly, hand any remainder to
 * uv_write. A connection marked close_at_flush is closed instead. */
static void conn_flush(struct conn *c)
{
    if (c->close_at_flush) {
        conn_close(c, "out of memory for its output");
        return;
    }
    if (c->write || c->out_len == 0)
        return;
    uv_buf_t buf = uv_buf_init((char *)c->out, c->out_len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS)
        n = 0;
    if (n < 0) {
        conn_close(c, uv_strerror(n));
        return;
    }
    if (n > 0 && c->session)
        c->session->progress_ms = broker_now_ms(c->b);
    if ((size_t)n == c->out_len) {
        /* All out. A small buffer goes back at once (an idle connection holds none, and the next
         * small malloc reuses it); a busy connection's larger one is kept for the next turn
         * (regrowing it every turn cost fan-out throughput) unless a burst grew it past 256 KiB;
         * conn_sweep frees the kept ones of connections that went quiet. */
        c->out_len = 0;
        if (c->out_cap <= 4096 || c->out_cap > 256 * 1024)
            conn_buf_free(c, &c->out, &c->out_cap);
        if (c->session)
            session_progress(c->b, c->session);
        return;
    }
    /* The rest goes asynchronously; the output buffer moves to the request and a new one starts.
     * The request is allocated only now: most connections never need one. */
    struct conn_write *w = malloc(sizeof(*w));
    if (!w) {
        conn_close(c, "out of memory");
        return;
    }
    w->conn = c;
    w->buf = c->out;
    w->cap = c->out_cap; /* still counted in conn_mem until the write completes */
    w->len = c->out_len - (size_t)n;
    uv_buf_t rest = uv_buf_init((char *)c->out + n, c->out_len - (size_t)n);
    c->out = NULL;
    c->out_len = c->out_cap = 0;
    c->write = w;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &rest, 1, conn_on_write) < 0) {
        c->write = NULL;
        c->b->conn_mem -= w->cap;
        free(w->buf);
        free(w);
        conn_close(c, "write failed");
    }
}

/* Once per loop turn, after all I/O callbacks: flush every connection that has output. */
void conn_flush_all(uv_check_t *check)
{
    struct broker *b = check->data;
    flow_run_ready(b); /* resumed publishers' output goes out in this same flush */
    struct conn *c = b->dirty;
    b->dirty = NULL;
    uv_idle_stop(&b->flush_idle);
    while (c) {
        struct conn *next = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        if (c->state != CONN_CLOSING)
            conn_flush(c);
        c = next;
    }
}

/* Close for bad input: one log line, counted, then the normal close (will published). */
void conn_protocol_error(struct conn *c, const char *why)
{
    if (c->state == CONN_CLOSING)
        return;
    c->b->stats.protocol_errors++;
    char peer[64];
    log_info(&c->b->log, "closing %s (%s): %s", conn_peer(c, peer, sizeof(peer)),
             c->session ? c->session->client_id : "no CONNECT yet", why);
    conn_close(c, NULL);
}

/* Close the connection: publish its will unless it sent DISCONNECT [MQTT-3.1.2-8] (and only where
 * the ACL lets the client write, as for any PUBLISH of its own), detach its session, push out what
 * is pending (e.g. a refusing CONNACK), and let libuv free it. why NULL = already logged. */
void conn_close(struct conn *c, const char *why)
{
    struct broker *b = c->b;
    if (c->state == CONN_CLOSING)
        return;
    bool was_active = c->state == CONN_ACTIVE;
    bool send_will =
        c->will && was_active && !c->got_disconnect &&
        broker_acl_allows(b, c->session, c->will->topic, c->will->topic_len, ACL_WRITE);
    c->state = CONN_CLOSING;
    broker_flow_forget(b, &c->flow);
    if (why)
        log_debug(&b->log, "closing %s: %s",
                  c->session     ? c->session->client_id
                  : c->client_id ? c->client_id
                                 : "-",
                  why);
    if (c->session) {
        struct session *s = c->session;
        session_detach(b, s);
        c->session = NULL;
        if (was_active)
            b->stats.clients_connected--;
    }
    if (c->will) {
        struct message *will = c->will;
        c->will = NULL;
        if (send_will) /* [MQTT-3.1.2-8], shutdown included */
            broker_publish(b, will, true);
        message_unref(will);
    }
    if (c->out_len && !c->write) {
        uv_buf_t buf = uv_buf_init((char *)c->out, c->out_len);
        uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, conn_on_close);
}

/* libuv is done with the socket: unlink and free. Owns everything the conn still holds. */
static void conn_on_close(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct broker *b = c->b;
    if (c->prev)
        c->prev->next = c->next;
    else
        b->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    b->open_conns--;
    conn_buf_free(c, &c->in, &c->in_cap);
    conn_buf_free(c, &c->out, &c->out_cap);
    free(c->client_id);
    free(c->username);
    free(c);
    if (b->shutting_down && !b->conns && b->handles_open == 0 && b->shutdown_done) {
        void (*done)(void *) = b->shutdown_done;
        b->shutdown_done = NULL;
        done(b->shutdown_ctx);
    }
}

/* Periodic sweep: keepalive at 1.5x [MQTT-3.1.2-24], CONNECT timeout for silent sockets, and the
 * output buffers of connections with nothing pending given back (idle connections hold none). */
void conn_sweep(struct broker *b)
{
    uint64_t now = broker_now_ms(b);
    struct conn *c = b->conns;
    while (c) {
        struct conn *next = c->next;
        if (c->state == CONN_NEW && now - c->last_rx_ms > BROKER_CONNECT_TIMEOUT_MS) {
            conn_protocol_error(c, "no CONNECT in time");
        } else if (c->state == CONN_ACTIVE && c->keepalive && c->reading &&
                   now - c->last_rx_ms > (uint64_t)c->keepalive * 1500) {
            conn_protocol_error(c, "keepalive timeout");
        } else {
            if (c->out && c->out_len == 0) /* nothing written since the last flush */
                conn_buf_free(c, &c->out, &c->out_cap);
            if (c->session && c->state == CONN_ACTIVE)
                session_check_stall(b, c->session, now);
        }
        c = next;
    }
}
