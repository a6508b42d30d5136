/*
 * ws_proto.c - the WebSocket protocol without sockets: upgrade requests (http-parser), the
 * Sec-WebSocket-Accept hash (OpenSSL SHA-1 and base64), and frame decoding (wslay's event API with
 * buffering off, so binary payload streams out as it arrives and MQTT packets may be split across
 * frames or share one).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <uv.h>
#include <wslay/wslay.h>

#include "ws_proto.h"

/* ---- Upgrade request ---- */

/* The headers the upgrade looks at, as pointers into the request. */
enum ws_hdr {
    WS_H_UPGRADE,
    WS_H_CONNECTION,
    WS_H_KEY,
    WS_H_VERSION,
    WS_H_PROTOCOL,
    WS_H_ORIGIN,
    WS_H_XFF,
    WS_H_COUNT,
    WS_H_OTHER = WS_H_COUNT
};

static const char *const ws_hdr_names[WS_H_COUNT] = {
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "origin",
    "x-forwarded-for",
};

struct ws_req {
    const char *url;
    size_t url_len;
    struct {
        const char *p;
        size_t len;
        int count;
    } h[WS_H_COUNT];
    int cur; /* the header whose value comes next */
};

/* http-parser: the request target (one piece: the block is parsed whole). */
static int ws_on_url(http_parser *hp, const char *at, size_t len)
{
    struct ws_req *r = hp->data;
    if (!r->url)
        r->url = at;
    r->url_len = (size_t)(at + len - r->url);
    return 0;
}

/* http-parser: a header name; remember which of ours it is. */
static int ws_on_field(http_parser *hp, const char *at, size_t len)
{
    struct ws_req *r = hp->data;
    r->cur = WS_H_OTHER;
    for (int i = 0; i < WS_H_COUNT; i++)
        if (strlen(ws_hdr_names[i]) == len && strncasecmp(ws_hdr_names[i], at, len) == 0) {
            r->cur = i;
            r->h[i].count++;
            if (r->h[i].count == 1)
                r->h[i].p = NULL;
        }
    return 0;
}

/* http-parser: a header value; only a header's first occurrence counts (Sec-WebSocket-Protocol
 * repeated is refused below). */
static int ws_on_value(http_parser *hp, const char *at, size_t len)
{
    struct ws_req *r = hp->data;
    if (r->cur == WS_H_OTHER || r->h[r->cur].count != 1)
        return 0;
    if (!r->h[r->cur].p)
        r->h[r->cur].p = at;
    r->h[r->cur].len = (size_t)(at + len - r->h[r->cur].p);
    return 0;
}

/* Whether the comma-separated list v (n bytes) holds tok (tl bytes), compared without case. */
static bool ws_list_has_n(const char *v, size_t n, const char *tok, size_t tl)
{
    const char *end = v + n;
    while (v < end) {
        const char *c = memchr(v, ',', (size_t)(end - v));
        const char *e = c ? c : end, *s = v;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        const char *t = e;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - s) == tl && strncasecmp(s, tok, tl) == 0)
            return true;
        v = c ? c + 1 : end;
    }
    return false;
}

/* Whether the list v (n bytes) holds the word tok. */
static bool ws_list_has(const char *v, size_t n, const char *tok)
{
    return ws_list_has_n(v, n, tok, strlen(tok));
}

/* The first address of X-Forwarded-For into u->forwarded, when it is a plain IPv4 or IPv6
 * address (anything else is ignored: the peer stays the socket's). */
static void ws_forwarded(const char *v, size_t n, struct ws_upgrade *u)
{
    char ip[64];
    unsigned char bin[16];
    const char *c = memchr(v, ',', n);
    const char *e = c ? c : v + n;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if (e <= v || (size_t)(e - v) >= sizeof(ip))
        return;
    memcpy(ip, v, (size_t)(e - v));
    ip[e - v] = '\0';
    if (uv_inet_pton(AF_INET, ip, bin) == 0 || uv_inet_pton(AF_INET6, ip, bin) == 0)
        snprintf(u->forwarded, sizeof(u->forwarded), "%s", ip);
}

size_t ws_header_end(const uint8_t *buf, size_t len)
{
    for (size_t i = 3; i < len; i++)
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
            return i + 1;
    return 0;
}

/* Refuse with status and the reason for the log line. */
static void ws_refuse(struct ws_upgrade *u, int status, const char *why)
{
    u->status = status;
    u->why = why;
}

/* The checks of RFC 6455 4.2.1 and the MQTT binding's subprotocol, in the order a client most
 * needs to hear: where (404), what (400), who (403). */
static void ws_upgrade_check(const struct ws_req *r, const http_parser *hp,
                             const struct ws_policy *p, struct ws_upgrade *u)
{
#define H(i) r->h[i].p, r->h[i].len
    size_t path_len = 0;
    while (path_len < r->url_len && r->url[path_len] != '?')
        path_len++;
    if (hp->method != HTTP_GET)
        return ws_refuse(u, 400, "not a GET request");
    if (path_len != strlen(p->path) || memcmp(r->url, p->path, path_len) != 0)
        return ws_refuse(u, 404, "wrong path");
    if (!r->h[WS_H_UPGRADE].p || !ws_list_has(H(WS_H_UPGRADE), "websocket"))
        return ws_refuse(u, 400, "no Upgrade: websocket");
    if (!r->h[WS_H_CONNECTION].p || !ws_list_has(H(WS_H_CONNECTION), "upgrade"))
        return ws_refuse(u, 400, "no Connection: Upgrade");
    if (!r->h[WS_H_KEY].p || r->h[WS_H_KEY].len == 0 || r->h[WS_H_KEY].len >= sizeof(u->key))
        return ws_refuse(u, 400, "no Sec-WebSocket-Key");
    if (!r->h[WS_H_VERSION].p || r->h[WS_H_VERSION].len != 2 ||
        memcmp(r->h[WS_H_VERSION].p, "13", 2) != 0)
        return ws_refuse(u, 400, "Sec-WebSocket-Version is not 13");
    const char *proto = NULL;
    if (r->h[WS_H_PROTOCOL].p && r->h[WS_H_PROTOCOL].count == 1) {
        if (ws_list_has(H(WS_H_PROTOCOL), "mqtt"))
            proto = "mqtt";
        else if (ws_list_has(H(WS_H_PROTOCOL), "mqttv3.1"))
            proto = "mqttv3.1";
    }
    if (!proto)
        return ws_refuse(u, 400, "no mqtt subprotocol");
    /* Only browsers send Origin, and the list protects their users from other sites' pages: a
     * client that sends none is not a page. */
    if (p->origins[0] && r->h[WS_H_ORIGIN].p &&
        !ws_list_has_n(p->origins, strlen(p->origins), H(WS_H_ORIGIN)))
        return ws_refuse(u, 403, "Origin not allowed");
    memcpy(u->key, r->h[WS_H_KEY].p, r->h[WS_H_KEY].len);
    u->key[r->h[WS_H_KEY].len] = '\0';
    snprintf(u->protocol, sizeof(u->protocol), "%s", proto);
    if (p->trust_xff && r->h[WS_H_XFF].p)
        ws_forwarded(H(WS_H_XFF), u);
    u->status = 101;
#undef H
}

void ws_upgrade_parse(const uint8_t *req, size_t len, const struct ws_policy *p,
                      struct ws_upgrade *u)
{
    static const http_parser_settings settings = {
        .on_url = ws_on_url,
        .on_header_field = ws_on_field,
        .on_header_value = ws_on_value,
    };
    struct ws_req r;
    http_parser hp;
    memset(&r, 0, sizeof(r));
    memset(u, 0, sizeof(*u));
    r.cur = WS_H_OTHER;
    http_parser_init(&hp, HTTP_REQUEST);
    hp.data = &r;
    http_parser_execute(&hp, &settings, (const char *)req, len);
    if (HTTP_PARSER_ERRNO(&hp) != HPE_OK || !r.url)
        return ws_refuse(u, 400, "malformed HTTP request");
    ws_upgrade_check(&r, &hp, p, u);
}

size_t ws_upgrade_response(const struct ws_upgrade *u, char *buf, size_t len)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    int n;
    if (u->status == 101) {
        unsigned char md[SHA_DIGEST_LENGTH];
        unsigned char accept[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
        char in[sizeof(u->key) + sizeof(guid)];
        int il = snprintf(in, sizeof(in), "%s%s", u->key, guid);
        SHA1((const unsigned char *)in, (size_t)il, md);
        EVP_EncodeBlock(accept, md, SHA_DIGEST_LENGTH);
        n = snprintf(buf, len,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: %s\r\n\r\n",
                     (const char *)accept, u->protocol);
    } else {
        const char *text = u->status == 403   ? "Forbidden"
                           : u->status == 404 ? "Not Found"
                                              : "Bad Request";
        n = snprintf(buf, len,
                     "HTTP/1.1 %d %s\r\nConnection: close\r\nSec-WebSocket-Version: 13\r\n"
                     "Content-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s\n",
                     u->status, text, strlen(u->why) + 1, u->why);
    }
    return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

/* ---- Frames ---- */

struct ws_frames {
    wslay_event_context_ptr ctx;
    const struct ws_sink *sink;
    void *sink_ctx;
    const uint8_t *in; /* the input not yet taken by wslay */
    size_t in_len;
    bool binary;     /* the current data frame carries MQTT bytes (binary, or its continuation) */
    bool in_message; /* a binary message's frames are arriving (continuations belong to it) */
    const char *refused; /* why we refused a frame (wslay's own refusals have their status) */
};

/* wslay: the next input bytes, or "would block" once this call's input is used up. */
static ssize_t ws_on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                          void *user)
{
    struct ws_frames *f = user;
    (void)flags;
    if (f->in_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < f->in_len ? len : f->in_len;
    memcpy(buf, f->in, n);
    f->in += n;
    f->in_len -= n;
    return (ssize_t)n;
}

/* wslay: control frames to send; the sink takes them whole. */
static ssize_t ws_on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                          void *user)
{
    struct ws_frames *f = user;
    (void)flags;
    if (f->sink->out(f->sink_ctx, data, len) < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

/* Refuse the connection with a close frame of code (read stops at once). */
static void ws_frames_refuse(struct ws_frames *f, uint16_t code, const char *why)
{
    if (f->refused)
        return;
    f->refused = why;
    f->binary = false;
    wslay_event_queue_close(f->ctx, code, NULL, 0);
    wslay_event_shutdown_read(f->ctx);
}

/* wslay: a frame starts. Binary frames and their continuations carry MQTT; a text frame is
 * refused (the MQTT binding allows binary only). Control frames wslay answers itself. */
static void ws_on_frame_start(wslay_event_context_ptr ctx,
                              const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
    struct ws_frames *f = user;
    (void)ctx;
    f->binary = false;
    if (f->refused)
        return;
    if (arg->opcode == WSLAY_TEXT_FRAME) {
        ws_frames_refuse(f, WSLAY_CODE_UNSUPPORTED_DATA, "WebSocket text frame refused");
        return;
    }
    if (arg->opcode == WSLAY_BINARY_FRAME ||
        (arg->opcode == WSLAY_CONTINUATION_FRAME && f->in_message)) {
        f->binary = true;
        f->in_message = !arg->fin;
    }
}

/* wslay: payload of the current frame, unmasked. */
static void ws_on_frame_chunk(wslay_event_context_ptr ctx,
                              const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user)
{
    struct ws_frames *f = user;
    (void)ctx;
    if (f->binary && !f->refused && arg->data_length)
        f->sink->data(f->sink_ctx, arg->data, arg->data_length);
}

static void ws_on_frame_end(wslay_event_context_ptr ctx, void *user)
{
    struct ws_frames *f = user;
    (void)ctx;
    f->binary = false;
}

struct ws_frames *ws_frames_new(uint64_t max_frame, const struct ws_sink *sink, void *ctx)
{
    static const struct wslay_event_callbacks cbs = {
        .recv_callback = ws_on_recv,
        .send_callback = ws_on_send,
        .on_frame_recv_start_callback = ws_on_frame_start,
        .on_frame_recv_chunk_callback = ws_on_frame_chunk,
        .on_frame_recv_end_callback = ws_on_frame_end,
    };
    struct ws_frames *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    if (wslay_event_context_server_init(&f->ctx, &cbs, f) != 0) {
        free(f);
        return NULL;
    }
    wslay_event_config_set_no_buffering(f->ctx, 1);
    wslay_event_config_set_max_recv_msg_length(f->ctx, max_frame);
    f->sink = sink;
    f->sink_ctx = ctx;
    return f;
}

void ws_frames_free(struct ws_frames *f)
{
    if (!f)
        return;
    wslay_event_context_free(f->ctx);
    free(f);
}

/* Why a connection whose reading wslay stopped is over, from the close codes. */
static const char *ws_frames_why(const struct ws_frames *f)
{
    if (f->refused)
        return f->refused;
    if (wslay_event_get_close_received(f->ctx))
        return "connection closed by client";
    switch (wslay_event_get_status_code_sent(f->ctx)) {
    case WSLAY_CODE_MESSAGE_TOO_BIG:
        return "WebSocket frame too big";
    case WSLAY_CODE_PROTOCOL_ERROR:
        return "WebSocket protocol error (e.g. an unmasked frame)";
    case WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA:
        return "WebSocket invalid frame payload";
    default:
        return "WebSocket connection refused";
    }
}

int ws_frames_input(struct ws_frames *f, const uint8_t *p, size_t n, const char **why)
{
    f->in = p;
    f->in_len = n;
    int rc = wslay_event_recv(f->ctx);
    f->in_len = 0;
    if (rc == 0)
        rc = wslay_event_send(f->ctx);
    if (rc != 0) {
        *why = rc == WSLAY_ERR_NOMEM ? "out of memory" : "WebSocket error";
        return -1;
    }
    if (!wslay_event_get_read_enabled(f->ctx)) {
        *why = ws_frames_why(f);
        return 1;
    }
    return 0;
}

bool ws_frames_close_sent(const struct ws_frames *f)
{
    return wslay_event_get_close_sent(f->ctx) != 0;
}

size_t ws_frame_header(uint8_t hdr[10], uint64_t len)
{
    hdr[0] = 0x82; /* FIN, binary */
    if (len < 126) {
        hdr[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        hdr[1] = 126;
        hdr[2] = (uint8_t)(len >> 8);
        hdr[3] = (uint8_t)len;
        return 4;
    }
    hdr[1] = 127;
    for (int i = 0; i < 8; i++)
        hdr[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}
