/*
 * http.c - the operators' HTTP/1.1 server (see http.h): libuv TCP, requests parsed with
 * http-parser, GET only, responses written in request order (pipelining works because each request
 * is answered synchronously from on_message_complete and libuv keeps writes in order).
 *
 * Limits: a request (line, headers and any body) of at most HTTP_MAX_REQUEST bytes, HTTP_MAX_CONNS
 * connections, HTTP_IDLE_MS without input, HTTP_MAX_BACKLOG bytes of unsent responses (a client
 * that pipelines without reading is dropped). A parse error is answered with 400 and the connection
 * closed.
 *
 * Ownership: the server owns its connections (a list); a connection owns its two handles (socket
 * and idle timer) and is freed when both are closed; each write request owns its buffer and is
 * freed in its callback; the response body from the handler is copied into the write buffer and
 * freed at once.
 */
#include "http.h"

#include <http_parser.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_MAX_REQUEST 8192
#define HTTP_MAX_CONNS 128
#define HTTP_IDLE_MS 30000
#define HTTP_MAX_BACKLOG (1 << 20)

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t idle;
    struct http_server *srv;
    struct http_conn *next;
    struct http_conn *prev;
    http_parser parser;
    char url[HTTP_MAX_REQUEST];
    size_t url_len;
    size_t req_bytes;
    bool too_large;
    bool closing; /* close once pending writes are done */
    bool closed;  /* uv_close called */
    int open_handles;
    int pending_writes;
    char rbuf[4096];
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    http_handler_fn fn;
    void *ctx;
    const struct logger *log;
    http_parser_settings settings;
    struct http_conn *conns;
    size_t n_conns;
    bool listener_open;
    bool stopping;
};

struct http_write {
    uv_write_t req;
    struct http_conn *conn;
    size_t len;
    char data[];
};

static const char *status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

/* Free the server once the listener and every connection are closed. */
static void server_maybe_free(struct http_server *s)
{
    if (s->stopping && !s->listener_open && !s->conns)
        free(s);
}

/* Owns: the connection, freed when its last handle is closed. */
static void conn_handle_closed(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    struct http_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    free(c);
    server_maybe_free(s);
}

static void conn_close(struct http_conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->idle, conn_handle_closed);
}

/* Owns: the write request and its buffer (freed here). Closes a closing connection after its last
 * write. */
static void on_written(uv_write_t *req, int status)
{
    struct http_write *w = (struct http_write *)req;
    struct http_conn *c = w->conn;
    free(w);
    c->pending_writes--;
    if (status < 0 || (c->closing && c->pending_writes == 0))
        conn_close(c);
}

/* Queue one complete response; the body is copied (the caller keeps ownership of it). */
static void conn_respond(struct http_conn *c, int status, const char *ctype, const char *body,
                         size_t body_len, bool keep_alive, const char *extra_headers)
{
    if (c->closed)
        return;
    char head[512];
    int hl = snprintf(
        head, sizeof(head),
        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: %s\r\n\r\n",
        status, status_text(status), ctype ? ctype : "text/plain", body_len,
        extra_headers ? extra_headers : "", keep_alive ? "keep-alive" : "close");
    if (hl < 0 || (size_t)hl >= sizeof(head)) {
        conn_close(c);
        return;
    }
    struct http_write *w = malloc(sizeof(*w) + (size_t)hl + body_len);
    if (!w) {
        conn_close(c);
        return;
    }
    w->conn = c;
    w->len = (size_t)hl + body_len;
    memcpy(w->data, head, (size_t)hl);
    if (body_len)
        memcpy(w->data + hl, body, body_len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
    if (!keep_alive)
        c->closing = true;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(w);
        conn_close(c);
        return;
    }
    c->pending_writes++;
}

static void respond_text(struct http_conn *c, int status, const char *text, bool keep_alive,
                         const char *extra)
{
    conn_respond(c, status, "text/plain", text, strlen(text), keep_alive, extra);
}

static int on_message_begin(http_parser *p)
{
    struct http_conn *c = p->data;
    c->url_len = 0;
    c->req_bytes = 0;
    return 0;
}

/* Count bytes of the current request; fail the parse once it exceeds the limit. */
static int count_bytes(struct http_conn *c, size_t len)
{
    c->req_bytes += len;
    if (c->req_bytes > HTTP_MAX_REQUEST) {
        c->too_large = true;
        return -1;
    }
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (count_bytes(c, len) != 0 || c->url_len + len >= sizeof(c->url)) {
        c->too_large = true;
        return -1;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

static int on_data(http_parser *p, const char *at, size_t len)
{
    (void)at;
    return count_bytes(p->data, len);
}

/* One request is complete: answer it. Returning nonzero stops parsing (the connection is closing).
 */
static int on_message_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    struct http_server *s = c->srv;
    bool keep_alive = http_should_keep_alive(p) != 0 && !s->stopping;
    if (p->method != HTTP_GET) {
        respond_text(c, 405, "method not allowed\n", keep_alive, "Allow: GET\r\n");
        return c->closing ? 1 : 0;
    }
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(c->url, c->url_len, 0, &u) != 0) {
        respond_text(c, 400, "bad request\n", false, NULL);
        return 1;
    }
    char path[HTTP_MAX_REQUEST];
    if (u.field_set & (1 << UF_PATH)) {
        size_t off = u.field_data[UF_PATH].off;
        size_t len = u.field_data[UF_PATH].len;
        memcpy(path, c->url + off, len);
        path[len] = '\0';
    } else {
        snprintf(path, sizeof(path), "/");
    }
    struct http_response resp = {0};
    if (s->fn(s->ctx, "GET", path, &resp) != 0) {
        free(resp.body);
        respond_text(c, 500, "internal error\n", keep_alive, NULL);
    } else {
        conn_respond(c, resp.status ? resp.status : 200, resp.content_type,
                     resp.body ? resp.body : "", resp.body ? resp.body_len : 0, keep_alive, NULL);
        free(resp.body);
    }
    return c->closing ? 1 : 0;
}

/* The buffer is the connection's own read buffer: nothing to free. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct http_conn *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *c = st->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        /* EOF or error: finish pending writes, then close. */
        uv_read_stop(st);
        c->closing = true;
        if (c->pending_writes == 0)
            conn_close(c);
        return;
    }
    if (c->closing)
        return; /* input after the last answered request is ignored */
    uv_timer_again(&c->idle);
    size_t used = http_parser_execute(&c->parser, &c->srv->settings, buf->base, (size_t)nread);
    if (c->closing || c->closed) {
        uv_read_stop(st);
        if (c->pending_writes == 0)
            conn_close(c);
        return;
    }
    if (c->too_large) {
        respond_text(c, 431, "request too large\n", false, NULL);
        uv_read_stop(st);
        return;
    }
    if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK || used != (size_t)nread || c->parser.upgrade) {
        respond_text(c, 400, "bad request\n", false, NULL);
        uv_read_stop(st);
        return;
    }
    if (uv_stream_get_write_queue_size(st) > HTTP_MAX_BACKLOG) {
        log_debug(c->srv->log, "http: client does not read its responses; closing");
        conn_close(c);
    }
}

static void on_idle(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct http_server *s = listener->data;
    if (status < 0 || s->stopping)
        return;
    struct http_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        log_warn(s->log, "http: out of memory accepting a connection");
        return;
    }
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->idle);
    c->tcp.data = c;
    c->idle.data = c;
    c->open_handles = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 || s->n_conns > HTTP_MAX_CONNS) {
        conn_close(c);
        return;
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    uv_timer_start(&c->idle, on_idle, HTTP_IDLE_MS, HTTP_IDLE_MS);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

static void listener_closed(uv_handle_t *h)
{
    struct http_server *s = h->data;
    s->listener_open = false;
    server_maybe_free(s);
}

struct http_server *http_server_start(uv_loop_t *loop, const char *bind, int port,
                                      http_handler_fn fn, void *ctx, const struct logger *log,
                                      char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof(addr));
    if (port <= 0 || port > 65535) {
        snprintf(err, errlen, "http port %d out of range", port);
        return NULL;
    }
    if (uv_ip4_addr(bind, port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(bind, port, (struct sockaddr_in6 *)&addr) != 0) {
        snprintf(err, errlen, "http bind address '%s' is not an IP address", bind);
        return NULL;
    }
    struct http_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->fn = fn;
    s->ctx = ctx;
    s->log = log;
    s->settings.on_message_begin = on_message_begin;
    s->settings.on_url = on_url;
    s->settings.on_header_field = on_data;
    s->settings.on_header_value = on_data;
    s->settings.on_body = on_data;
    s->settings.on_message_complete = on_message_complete;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->listener_open = true;
    int rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "http %s:%d: %s", bind, port, uv_strerror(rc));
        s->stopping = true;
        uv_close((uv_handle_t *)&s->listener, listener_closed);
        return NULL;
    }
    return s;
}

void http_server_stop(struct http_server *s)
{
    if (!s || s->stopping)
        return;
    s->stopping = true;
    uv_close((uv_handle_t *)&s->listener, listener_closed);
    for (struct http_conn *c = s->conns; c; c = c->next)
        conn_close(c);
}
