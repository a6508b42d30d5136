/*
 * transport_int.h - the transport module's own state, shared by listener.c (the list) and
 * transport_tcp.c (TCP sockets and streams). Included by nothing else: transport.h is the face.
 */
#ifndef SOL_TRANSPORT_INT_H
#define SOL_TRANSPORT_INT_H

#include "transport.h"

/* One listening socket. Every kind planned (TCP, TLS, WebSocket) listens on TCP; kind picks what
 * its accepted streams speak. */
struct listener {
    uv_tcp_t tcp; /* tcp.data: this struct */
    struct listeners *set;
    struct listener *next;
    enum transport_kind kind;
    bool inited;    /* tcp must be closed */
    bool accepting; /* bound and listening */
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

#endif
