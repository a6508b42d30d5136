/*
 * transport_int.h - the transport module's own state, shared by listener.c (the list),
 * transport_tcp.c (TCP sockets and streams), transport_tls.c and transport_ws.c. Included by
 * nothing else: transport.h is the face.
 */
#ifndef SOL_TRANSPORT_INT_H
#define SOL_TRANSPORT_INT_H

#include "proxy_proto.h"
#include "transport.h"

/* One listening socket. Every kind planned (TCP, TLS, WebSocket) listens on TCP; kind picks what
 * its accepted streams speak. */
struct listener {
    uv_tcp_t tcp; /* tcp.data: this struct */
    struct listeners *set;
    struct listener *next;
    enum transport_kind kind;
    bool inited;              /* tcp must be closed */
    bool accepting;           /* bound and listening */
    bool proxy;               /* connections start with a PROXY v2 header */
    struct tls_listener *tls; /* TRANSPORT_TLS, _WSS: its settings and current SSL_CTX */
    struct ws_listener *ws;   /* TRANSPORT_WS, _WSS: its settings and the events of its streams */
    /* Whose events and user state the TCP or TLS streams accepted here carry: the list's (set),
     * or for WebSocket the WebSocket layer's, which carries the list's in turn. */
    struct listeners *streams;
};

struct listeners {
    uv_loop_t *loop;
    const struct logger *log;
    const struct transport_events *ev;
    size_t user_size;
    void *ctx;
    uint8_t *read_buf; /* TRANSPORT_READ_CHUNK bytes, shared by every stream's reads */
    struct listener *list;
    int closing; /* listening sockets whose close has not completed */
    void (*done)(void *ctx);
    void *done_ctx;
};

/* transport_tcp.c: bind and listen (a libuv error code on failure), and close the socket (cb once
 * it is closed). */
int tcp_listen(struct listener *l, const struct sockaddr *addr);
void tcp_listener_close(struct listener *l, uv_close_cb cb);
/* transport_tcp.c: "ip:port" of a connected socket's peer into buf. */
const char *tcp_peer_name(const uv_tcp_t *tcp, char *buf, size_t len);

/* A stream's PROXY header (listener's proxy): being read (r), then the source it named. */
struct transport_proxy {
    struct proxy_reader *r; /* freed once the header is read */
    char peer[64];          /* "ip:port", or "" = the socket's own peer */
};
/* transport_tcp.c: a new one, header still to read (NULL when out of memory); freeing one. */
struct transport_proxy *transport_proxy_new(void);
void transport_proxy_free(struct transport_proxy *p);
/* transport_tcp.c: n header bytes were read for tcp's stream. 0 read on (or done: p->r is NULL
 * then), -1 not a valid header (logged once). */
int transport_proxy_read(struct transport_proxy *p, const uv_tcp_t *tcp, const struct logger *log,
                         size_t n);

/* transport_tls.c: a TLS listener's context from cfg (-1 with one line in err, e.g. naming a file
 * that cannot be read), loading it again, freeing it, and accepting on its socket. */
int tls_listener_init(struct listener *l, const struct listener_config *cfg, char *err,
                      size_t errlen);
int tls_listener_reload(struct listener *l, char *err, size_t errlen);
void tls_listener_free(struct listener *l);
void tls_on_connection(uv_stream_t *server, int status);

/* transport_ws.c: a WebSocket listener's settings and the events its TCP or TLS streams report to
 * (l->streams; -1 with one line in err), and freeing them. */
int ws_listener_init(struct listener *l, const struct listener_config *cfg, char *err,
                     size_t errlen);
void ws_listener_free(struct listener *l);

#endif
