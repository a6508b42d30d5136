/*
 * transport_tcp.c - plain TCP: the listening socket, accept, and the stream ops (reads into the
 * shared buffer or the user's, try-write then uv_write for the rest, close, peer name).
 *
 * A stream is one allocation: struct tcp_stream, then the user's state (listeners' user_size).
 * The handle's data points at the list it was accepted by (its events, their ctx, the shared read
 * buffer), or is NULL for a stream its user refused (closed and freed without events).
 */
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "transport_int.h"

struct tcp_stream {
    struct transport base;
    uv_tcp_t tcp;
    struct transport_proxy *proxy; /* its listener's proxy setting: the header and its source */
};

/* The user's state starts here, aligned for anything. */
#define TCP_USER_OFFSET                                                                            \
    ((sizeof(struct tcp_stream) + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1))

/* A background write: the request and the user's buffer it hands back. */
struct tcp_write {
    uv_write_t req; /* first: the request's address is the struct's */
    uint8_t *buf;
};

static inline struct tcp_stream *tcp_of_handle(const void *h)
{
    return (struct tcp_stream *)((char *)h - offsetof(struct tcp_stream, tcp));
}

static inline void *tcp_user(struct tcp_stream *s)
{
    return (char *)s + TCP_USER_OFFSET;
}

const char *transport_strerror(int err)
{
    return uv_strerror(err);
}

static void tcp_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct tcp_stream *s = tcp_of_handle(h);
    struct listeners *ls = h->data;
    uint8_t *p = NULL;
    size_t len = 0;
    (void)suggested;
    if (ls->ev->read_buf(tcp_user(s), &p, &len) < 0) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
        return;
    }
    if (!p) {
        p = ls->read_buf;
        len = TRANSPORT_READ_CHUNK;
    }
    *buf = uv_buf_init((char *)p, (unsigned)len);
}

/* Bytes arrived (or EOF, or an error). The buffer is the shared one or the user's: not ours. */
static void tcp_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct tcp_stream *s = tcp_of_handle(st);
    struct listeners *ls = st->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        ls->ev->ended(tcp_user(s), nread == UV_EOF       ? "connection closed by client"
                                   : nread == UV_ENOBUFS ? "out of memory"
                                                         : uv_strerror((int)nread));
        return;
    }
    ls->ev->data(tcp_user(s), (uint8_t *)buf->base, (size_t)nread);
}

/* While the PROXY header is read: exactly what is left of it, never beyond. */
static void tcp_proxy_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct proxy_reader *r = tcp_of_handle(h)->proxy->r;
    (void)suggested;
    *buf = uv_buf_init((char *)r->buf + r->len, (unsigned)proxy_want(r));
}

/* Header bytes arrived; once it is whole, the stream reads for its user. */
static void tcp_proxy_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct tcp_stream *s = tcp_of_handle(st);
    struct listeners *ls = st->data;
    if (nread <= 0) {
        tcp_on_read(st, nread, buf);
        return;
    }
    if (transport_proxy_read(s->proxy, &s->tcp, ls->log, (size_t)nread) < 0) {
        uv_read_stop(st);
        ls->ev->ended(tcp_user(s), "invalid PROXY protocol header");
        return;
    }
    if (!s->proxy->r) {
        uv_read_stop(st);
        if (uv_read_start(st, tcp_on_alloc, tcp_on_read) < 0)
            ls->ev->ended(tcp_user(s), "read start failed");
    }
}

static int tcp_read_start(struct transport *t)
{
    struct tcp_stream *s = (struct tcp_stream *)t;
    if (s->proxy && s->proxy->r)
        return uv_read_start((uv_stream_t *)&s->tcp, tcp_proxy_alloc, tcp_proxy_on_read);
    return uv_read_start((uv_stream_t *)&s->tcp, tcp_on_alloc, tcp_on_read);
}

static void tcp_read_stop(struct transport *t)
{
    struct tcp_stream *s = (struct tcp_stream *)t;
    uv_read_stop((uv_stream_t *)&s->tcp);
}

static int tcp_try_write(struct transport *t, const uint8_t *data, size_t len)
{
    struct tcp_stream *s = (struct tcp_stream *)t;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
    return n == UV_EAGAIN || n == UV_ENOSYS ? 0 : n;
}

/* libuv calls this before the close callback even when uv_close cancelled the write. */
static void tcp_on_write(uv_write_t *req, int status)
{
    struct tcp_write *w = (struct tcp_write *)req;
    struct tcp_stream *s = tcp_of_handle(req->handle);
    struct listeners *ls = s->tcp.data;
    uint8_t *buf = w->buf;
    free(w);
    ls->ev->written(tcp_user(s), buf, status < 0 ? uv_strerror(status) : NULL);
}

static int tcp_write(struct transport *t, uint8_t *buf, const uint8_t *data, size_t len)
{
    struct tcp_stream *s = (struct tcp_stream *)t;
    struct tcp_write *w = malloc(sizeof(*w)); /* only now: most streams never need one */
    if (!w)
        return UV_ENOMEM;
    w->buf = buf;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, tcp_on_write);
    if (rc < 0)
        free(w);
    return rc;
}

static void tcp_on_close(uv_handle_t *h)
{
    struct tcp_stream *s = tcp_of_handle(h);
    struct listeners *ls = h->data;
    if (ls)
        ls->ev->closed(tcp_user(s));
    transport_proxy_free(s->proxy);
    free(s);
}

static void tcp_close(struct transport *t)
{
    struct tcp_stream *s = (struct tcp_stream *)t;
    uv_read_stop((uv_stream_t *)&s->tcp);
    uv_close((uv_handle_t *)&s->tcp, tcp_on_close);
}

static const char *tcp_peer(const struct transport *t, char *buf, size_t len)
{
    const struct tcp_stream *s = (const struct tcp_stream *)t;
    if (s->proxy && s->proxy->peer[0]) {
        snprintf(buf, len, "%s", s->proxy->peer);
        return buf;
    }
    return tcp_peer_name(&s->tcp, buf, len);
}

struct transport_proxy *transport_proxy_new(void)
{
    struct transport_proxy *p = calloc(1, sizeof(*p));
    if (p && !(p->r = calloc(1, sizeof(*p->r)))) {
        free(p);
        return NULL;
    }
    return p;
}

void transport_proxy_free(struct transport_proxy *p)
{
    if (!p)
        return;
    free(p->r);
    free(p);
}

int transport_proxy_read(struct transport_proxy *p, const uv_tcp_t *tcp, const struct logger *log,
                         size_t n)
{
    char peer[64];
    int rc = proxy_feed(p->r, n, p->peer, sizeof(p->peer));
    if (rc < 0) {
        p->peer[0] = '\0';
        log_info(log, "connection from %s closed: no valid PROXY protocol v2 header",
                 tcp_peer_name(tcp, peer, sizeof(peer)));
    }
    if (rc != 0) {
        free(p->r);
        p->r = NULL;
    }
    return rc < 0 ? -1 : 0;
}

const char *tcp_peer_name(const uv_tcp_t *tcp, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    char ip[48] = "?";
    int port = 0;
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &sl) == 0) {
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

static const struct transport_ops tcp_ops = {
    .read_start = tcp_read_start,
    .read_stop = tcp_read_stop,
    .try_write = tcp_try_write,
    .write = tcp_write,
    .close = tcp_close,
    .peer = tcp_peer,
};

/* A connection is waiting on a listening socket: accept it and hand it to the user. */
static void tcp_on_connection(uv_stream_t *server, int status)
{
    struct listener *l = server->data;
    struct listeners *ls = l->streams;
    if (status < 0 || !l->accepting)
        return;
    struct tcp_stream *s = calloc(1, TCP_USER_OFFSET + ls->user_size);
    if (!s) {
        log_error(ls->log, "out of memory accepting a connection");
        return;
    }
    s->base.ops = &tcp_ops;
    if ((l->proxy && !(s->proxy = transport_proxy_new())) || uv_tcp_init(ls->loop, &s->tcp) < 0) {
        transport_proxy_free(s->proxy);
        free(s);
        return;
    }
    s->tcp.data = NULL; /* no events until the user has it */
    if (uv_accept(server, (uv_stream_t *)&s->tcp) < 0) {
        uv_close((uv_handle_t *)&s->tcp, tcp_on_close);
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    s->tcp.data = ls;
    if (ls->ev->accepted(ls->ctx, &s->base, tcp_user(s)) < 0) {
        s->tcp.data = NULL;
        uv_close((uv_handle_t *)&s->tcp, tcp_on_close);
    }
}

int tcp_listen(struct listener *l, const struct sockaddr *addr)
{
    int rc = uv_tcp_init(l->set->loop, &l->tcp);
    if (rc < 0)
        return rc;
    l->tcp.data = l;
    l->inited = true;
    if ((rc = uv_tcp_bind(&l->tcp, addr, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&l->tcp, 4096,
                        l->tls ? tls_on_connection : tcp_on_connection)) < 0)
        return rc;
    l->accepting = true;
    return 0;
}

void tcp_listener_close(struct listener *l, uv_close_cb cb)
{
    uv_close((uv_handle_t *)&l->tcp, cb);
}
