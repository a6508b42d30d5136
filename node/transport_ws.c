/*
 * transport_ws.c - WebSocket streams (RFC 6455, the MQTT binding's "mqtt" subprotocol) layered on a
 * TCP or TLS stream: the inner stream's user is this layer, whose own user is the MQTT connection.
 *
 * Memory: the inner stream's user state is struct ws_stream followed by the MQTT connection's
 * (ws_listener.inner says so to the TCP or TLS code). The connection is accepted at once (as with
 * TLS before its handshake); the upgrade request must arrive whole within WS_UPGRADE_MS and
 * WS_MAX_HEADER bytes, is checked by ws_proto.c and answered, and from then on binary frames
 * carry the MQTT bytes both ways. Out: each write is framed into one buffer (out) that goes to the
 * inner stream with try_write, the rest in one background write at a time; the user's buffer
 * comes back once everything framed so far is on the inner stream. In: decoded bytes go to the
 * user while it reads, and wait in `pending` (reading the inner stream stops) while it does not.
 */
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "transport_int.h"
#include "ws_proto.h"

/* A client that has not sent its whole upgrade request by then is closed (slow-loris). */
#define WS_UPGRADE_MS 10000

/* A WebSocket listener: its policy and the events its inner streams report to. */
struct ws_listener {
    struct listeners inner; /* ev = ws_inner_events, user_size = ours + the list's */
    struct listeners *outer;
    char path[128];
    char *origins;
    bool trust_xff;
    uint64_t max_frame;
};

struct ws_stream {
    struct transport base;
    struct transport *inner;
    struct ws_listener *wl;
    uv_timer_t timer; /* the upgrade deadline, then "deliver or hand back" from the loop */
    struct ws_frames *frames;
    uint8_t *hdr; /* the upgrade request so far */
    size_t hdr_len;
    uint8_t *out; /* framed bytes not yet handed to the inner stream */
    size_t out_len, out_cap;
    uint8_t *inflight; /* our buffer in the inner stream's background write */
    uint8_t *user_buf; /* the user's write buffer, handed back when out and inflight are done */
    uint8_t *pending;  /* decoded bytes the user was not reading for */
    size_t pending_len, pending_cap;
    char peer[64]; /* X-Forwarded-For's address, or "" (the inner stream's peer) */
    bool upgraded, reading, ended, closing;
};

#define WS_USER_OFFSET                                                                             \
    ((sizeof(struct ws_stream) + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1))

static inline void *ws_user(struct ws_stream *s)
{
    return (char *)s + WS_USER_OFFSET;
}

static inline const struct transport_events *ws_ev(const struct ws_stream *s)
{
    return s->wl->outer->ev;
}

/* Grow a buffer to hold need bytes. */
static int ws_reserve(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    uint8_t *p = realloc(*buf, n);
    if (!p)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

static int ws_append(uint8_t **buf, size_t *len, size_t *cap, const uint8_t *p, size_t n)
{
    if (ws_reserve(buf, cap, *len + n) < 0)
        return -1;
    memcpy(*buf + *len, p, n);
    *len += n;
    return 0;
}

/* Tell the user the stream ended, once; it closes it. */
static void ws_end(struct ws_stream *s, const char *why)
{
    if (s->ended || s->closing)
        return;
    s->ended = true;
    uv_timer_stop(&s->timer);
    transport_read_stop(s->inner);
    ws_ev(s)->ended(ws_user(s), why);
}

/* Move out to the inner stream: what it takes now, the rest in one background write. */
static int ws_flush(struct ws_stream *s)
{
    if (s->inflight || s->out_len == 0)
        return 0;
    int n = transport_try_write(s->inner, s->out, s->out_len);
    if (n < 0)
        return n;
    s->out_len -= (size_t)n;
    if (s->out_len == 0)
        return 0;
    memmove(s->out, s->out + n, s->out_len);
    uint8_t *buf = s->out;
    size_t len = s->out_len;
    s->out = NULL;
    s->out_len = s->out_cap = 0;
    int rc = transport_write(s->inner, buf, buf, len);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    s->inflight = buf;
    return 0;
}

/* The user's write buffer back, once everything framed before it is on the inner stream. */
static void ws_hand_back(struct ws_stream *s, const char *err)
{
    if (!s->user_buf || (!err && (s->inflight || s->out_len)))
        return;
    uint8_t *buf = s->user_buf;
    s->user_buf = NULL;
    ws_ev(s)->written(ws_user(s), buf, err);
}

/* Decoded bytes to the user, into its buffer or straight from ours; what it does not take while
 * it stops reading waits in pending. */
static void ws_give(struct ws_stream *s, const uint8_t *p, size_t n)
{
    while (n > 0 && s->reading && !s->ended && !s->closing) {
        uint8_t *b = NULL;
        size_t len = 0;
        if (ws_ev(s)->read_buf(ws_user(s), &b, &len) < 0) {
            ws_end(s, "out of memory");
            return;
        }
        size_t k = n;
        if (b) {
            k = n < len ? n : len;
            memcpy(b, p, k);
        } else {
            b = (uint8_t *)p; /* wslay's scratch or our pending buffer: ours to lend */
        }
        ws_ev(s)->data(ws_user(s), b, k);
        p += k;
        n -= k;
    }
    if (n > 0 && !s->ended && !s->closing) {
        if (ws_append(&s->pending, &s->pending_len, &s->pending_cap, p, n) < 0)
            ws_end(s, "out of memory");
        else
            transport_read_stop(s->inner);
    }
}

/* ws_proto: MQTT bytes decoded from binary frames. */
static void ws_on_payload(void *ctx, const uint8_t *p, size_t n)
{
    struct ws_stream *s = ctx;
    if (s->ended || s->closing)
        return;
    if (s->pending_len || !s->reading) {
        if (ws_append(&s->pending, &s->pending_len, &s->pending_cap, p, n) < 0)
            ws_end(s, "out of memory");
        else
            transport_read_stop(s->inner);
        return;
    }
    ws_give(s, p, n);
}

/* ws_proto: a control frame to send. */
static int ws_on_out(void *ctx, const uint8_t *p, size_t n)
{
    struct ws_stream *s = ctx;
    return ws_append(&s->out, &s->out_len, &s->out_cap, p, n);
}

static const struct ws_sink ws_sink = {.data = ws_on_payload, .out = ws_on_out};

/* Frames arrived on an upgraded stream. */
static void ws_frames_in(struct ws_stream *s, const uint8_t *p, size_t n)
{
    const char *why = NULL;
    int rc = ws_frames_input(s->frames, p, n, &why);
    if (ws_flush(s) < 0 && rc == 0) {
        rc = -1;
        why = "write failed";
    }
    if (rc != 0) {
        if (rc > 0 && strcmp(why, "connection closed by client") != 0) {
            char peer[64];
            log_info(s->wl->outer->log, "WebSocket connection from %s closed: %s",
                     s->base.ops->peer(&s->base, peer, sizeof(peer)), why);
        }
        ws_end(s, why);
    }
}

/* The whole request is in: check it, answer, and go on with frames (or end). */
static void ws_upgrade(struct ws_stream *s, size_t hlen)
{
    struct ws_policy pol = {
        .path = s->wl->path, .origins = s->wl->origins, .trust_xff = s->wl->trust_xff};
    struct ws_upgrade u;
    char resp[512], peer[64];
    ws_upgrade_parse(s->hdr, hlen, &pol, &u);
    size_t rl = ws_upgrade_response(&u, resp, sizeof(resp));
    if (ws_append(&s->out, &s->out_len, &s->out_cap, (const uint8_t *)resp, rl) < 0 ||
        ws_flush(s) < 0) {
        ws_end(s, "write failed");
        return;
    }
    if (u.status != 101) {
        log_info(s->wl->outer->log, "WebSocket upgrade from %s refused: %d %s",
                 s->base.ops->peer(&s->base, peer, sizeof(peer)), u.status, u.why);
        ws_end(s, "WebSocket upgrade refused");
        return;
    }
    if (!(s->frames = ws_frames_new(s->wl->max_frame, &ws_sink, s))) {
        ws_end(s, "out of memory");
        return;
    }
    if (u.forwarded[0])
        snprintf(s->peer, sizeof(s->peer), "%s", u.forwarded);
    s->upgraded = true;
    uv_timer_stop(&s->timer);
    uint8_t *hdr = s->hdr;
    size_t rest = s->hdr_len - hlen;
    s->hdr = NULL;
    if (!s->reading)
        transport_read_stop(s->inner);
    if (rest)
        ws_frames_in(s, hdr + hlen, rest);
    free(hdr);
}

/* inner: bytes arrived (the shared buffer: valid during this call). */
static void ws_on_data(void *user, uint8_t *data, size_t n)
{
    struct ws_stream *s = user;
    char peer[64];
    if (s->ended || s->closing)
        return;
    if (s->upgraded) {
        ws_frames_in(s, data, n);
        return;
    }
    size_t room = WS_MAX_HEADER - s->hdr_len;
    size_t take = n < room ? n : room;
    if (!s->hdr && !(s->hdr = malloc(WS_MAX_HEADER))) {
        ws_end(s, "out of memory");
        return;
    }
    memcpy(s->hdr + s->hdr_len, data, take);
    s->hdr_len += take;
    size_t hlen = ws_header_end(s->hdr, s->hdr_len);
    if (hlen) {
        if (take < n) { /* frames right behind the request: keep them with it */
            uint8_t *all = realloc(s->hdr, s->hdr_len + n - take);
            if (!all) {
                ws_end(s, "out of memory");
                return;
            }
            memcpy(all + s->hdr_len, data + take, n - take);
            s->hdr = all;
            s->hdr_len += n - take;
        }
        ws_upgrade(s, hlen);
        return;
    }
    if (s->hdr_len == WS_MAX_HEADER) {
        log_info(s->wl->outer->log, "WebSocket upgrade from %s refused: headers over %d bytes",
                 s->base.ops->peer(&s->base, peer, sizeof(peer)), WS_MAX_HEADER);
        static const char too_big[] =
            "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        ws_append(&s->out, &s->out_len, &s->out_cap, (const uint8_t *)too_big, sizeof(too_big) - 1);
        ws_flush(s);
        ws_end(s, "WebSocket upgrade refused");
    }
}

/* The upgrade deadline passed, or (upgraded) decoded bytes wait for the user or its buffer is
 * due back. */
static void ws_on_timer(uv_timer_t *h)
{
    struct ws_stream *s = h->data;
    char peer[64];
    if (s->ended || s->closing)
        return;
    if (!s->upgraded) {
        log_info(s->wl->outer->log, "WebSocket upgrade from %s timed out",
                 s->base.ops->peer(&s->base, peer, sizeof(peer)));
        ws_end(s, "WebSocket upgrade timed out");
        return;
    }
    ws_hand_back(s, NULL);
    if (s->pending_len && s->reading && !s->ended && !s->closing) {
        uint8_t *p = s->pending;
        size_t n = s->pending_len;
        s->pending = NULL;
        s->pending_len = s->pending_cap = 0;
        ws_give(s, p, n);
        free(p);
        if (!s->pending_len && s->reading && !s->ended && !s->closing &&
            transport_read_start(s->inner) < 0)
            ws_end(s, "read start failed");
    }
}

/* inner: where its next read goes (always the shared buffer: this layer copies what it keeps). */
static int ws_on_read_buf(void *user, uint8_t **buf, size_t *len)
{
    (void)user;
    (void)buf;
    (void)len;
    return 0;
}

static void ws_on_ended(void *user, const char *why)
{
    ws_end(user, why);
}

/* inner: our background write finished. */
static void ws_on_written(void *user, uint8_t *buf, const char *err)
{
    struct ws_stream *s = user;
    free(buf);
    s->inflight = NULL;
    if (s->closing)
        return;
    if (err) {
        ws_end(s, err);
        return;
    }
    if (ws_flush(s) < 0) {
        ws_end(s, "write failed");
        return;
    }
    ws_hand_back(s, NULL);
}

/* inner: closed. The user hears of its buffer (if still held) and the close; then the allocation
 * goes. */
static void ws_on_closed(void *user)
{
    struct ws_stream *s = user;
    if (s->user_buf) {
        uint8_t *buf = s->user_buf;
        s->user_buf = NULL;
        ws_ev(s)->written(ws_user(s), buf, "connection closed");
    }
    ws_ev(s)->closed(ws_user(s));
    ws_frames_free(s->frames);
    free(s->hdr);
    free(s->out);
    free(s->pending);
}

static int ws_read_start(struct transport *t)
{
    struct ws_stream *s = (struct ws_stream *)t;
    s->reading = true;
    if (!s->upgraded)
        return 0; /* the upgrade reads already */
    if (s->pending_len) {
        uv_timer_start(&s->timer, ws_on_timer, 0, 0); /* not from inside the user's call */
        return 0;
    }
    return transport_read_start(s->inner);
}

static void ws_read_stop(struct transport *t)
{
    struct ws_stream *s = (struct ws_stream *)t;
    s->reading = false;
    if (s->upgraded)
        transport_read_stop(s->inner);
}

/* Frame data into out. */
static int ws_frame_out(struct ws_stream *s, const uint8_t *data, size_t len)
{
    uint8_t hdr[10];
    size_t hl = ws_frame_header(hdr, len);
    if (ws_reserve(&s->out, &s->out_cap, s->out_len + hl + len) < 0)
        return UV_ENOMEM;
    memcpy(s->out + s->out_len, hdr, hl);
    memcpy(s->out + s->out_len + hl, data, len);
    s->out_len += hl + len;
    return 0;
}

static int ws_try_write(struct transport *t, const uint8_t *data, size_t len)
{
    struct ws_stream *s = (struct ws_stream *)t;
    if (!s->upgraded || s->closing || s->inflight || s->out_len || s->user_buf)
        return 0;
    int rc = ws_frame_out(s, data, len);
    if (rc == 0)
        rc = ws_flush(s);
    return rc < 0 ? rc : (int)len;
}

static int ws_write(struct transport *t, uint8_t *buf, const uint8_t *data, size_t len)
{
    struct ws_stream *s = (struct ws_stream *)t;
    if (s->user_buf || s->closing)
        return UV_EBUSY;
    if (!s->upgraded)
        return UV_ENOTCONN;
    int rc = ws_frame_out(s, data, len);
    if (rc == 0)
        rc = ws_flush(s);
    if (rc < 0)
        return rc;
    s->user_buf = buf;
    if (!s->inflight && !s->out_len) /* all on the inner stream: reported from the loop */
        uv_timer_start(&s->timer, ws_on_timer, 0, 0);
    return 0;
}

static void ws_on_timer_closed(uv_handle_t *h)
{
    struct ws_stream *s = h->data;
    transport_close(s->inner);
}

static void ws_close(struct transport *t)
{
    struct ws_stream *s = (struct ws_stream *)t;
    static const uint8_t close_frame[] = {0x88, 0x02, 0x03, 0xe8}; /* 1000, normal closure */
    if (s->closing)
        return;
    if (s->upgraded && !ws_frames_close_sent(s->frames) &&
        ws_append(&s->out, &s->out_len, &s->out_cap, close_frame, sizeof(close_frame)) == 0 &&
        !s->inflight && s->out_len)
        transport_try_write(s->inner, s->out, s->out_len); /* if the socket takes it now */
    s->closing = true;
    transport_read_stop(s->inner);
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, ws_on_timer_closed);
}

static const char *ws_peer(const struct transport *t, char *buf, size_t len)
{
    const struct ws_stream *s = (const struct ws_stream *)t;
    if (!s->peer[0])
        return transport_peer(s->inner, buf, len);
    snprintf(buf, len, "%s", s->peer);
    return buf;
}

static const char *ws_identity(const struct transport *t, char *buf, size_t len)
{
    const struct ws_stream *s = (const struct ws_stream *)t;
    return s->inner->ops->identity ? s->inner->ops->identity(s->inner, buf, len) : NULL;
}

static const struct transport_ops ws_ops = {
    .read_start = ws_read_start,
    .read_stop = ws_read_stop,
    .try_write = ws_try_write,
    .write = ws_write,
    .close = ws_close,
    .peer = ws_peer,
    .identity = ws_identity,
};

/* inner: a TCP or TLS stream was accepted; the user gets the WebSocket stream on it at once. */
static int ws_on_accepted(void *ctx, struct transport *inner, void *user)
{
    struct ws_listener *wl = ctx;
    struct ws_stream *s = user;
    s->base.ops = &ws_ops;
    s->inner = inner;
    s->wl = wl;
    if (wl->outer->ev->accepted(wl->outer->ctx, &s->base, ws_user(s)) < 0)
        return -1;
    uv_timer_init(wl->inner.loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, ws_on_timer, WS_UPGRADE_MS, 0);
    if (transport_read_start(inner) < 0)
        ws_end(s, "read start failed");
    return 0;
}

static const struct transport_events ws_inner_events = {
    .accepted = ws_on_accepted,
    .read_buf = ws_on_read_buf,
    .data = ws_on_data,
    .ended = ws_on_ended,
    .written = ws_on_written,
    .closed = ws_on_closed,
};

int ws_listener_init(struct listener *l, const struct listener_config *cfg, char *err,
                     size_t errlen)
{
    struct ws_listener *wl = calloc(1, sizeof(*wl));
    if (!wl || !(wl->origins = strdup(cfg->ws_origins ? cfg->ws_origins : ""))) {
        free(wl);
        errf(err, errlen, "out of memory");
        return -1;
    }
    struct listeners *ls = l->set;
    wl->inner = *ls;
    wl->inner.ev = &ws_inner_events;
    wl->inner.user_size = WS_USER_OFFSET + ls->user_size;
    wl->inner.ctx = wl;
    wl->inner.list = NULL;
    wl->outer = ls;
    snprintf(wl->path, sizeof(wl->path), "%s", cfg->ws_path ? cfg->ws_path : "/mqtt");
    wl->trust_xff = cfg->trust_xff;
    wl->max_frame = cfg->ws_max_frame ? cfg->ws_max_frame : 1u << 28;
    l->ws = wl;
    l->streams = &wl->inner;
    return 0;
}

void ws_listener_free(struct listener *l)
{
    if (!l->ws)
        return;
    free(l->ws->origins);
    free(l->ws);
    l->ws = NULL;
}
