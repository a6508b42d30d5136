/*
 * http.h - a minimal HTTP/1.1 server on the libuv loop for operators (ops.h says what it serves).
 * Requests are parsed with http-parser; each connection serves requests in order and closes on
 * error or when the client asks. The server does not know what the endpoints mean: it asks the
 * handler for a response.
 */
#ifndef SOL_HTTP_H
#define SOL_HTTP_H

#include <stddef.h>
#include <uv.h>

#include "log.h"

struct http_response {
    int status;               /* 200, 404, 503, ... */
    const char *content_type; /* e.g. "application/json" */
    char *body;               /* malloc'd by the handler; the server frees it */
    size_t body_len;
};

/* Fill *resp for a GET of path (query string stripped). Return 0, or -1 on allocation failure (-> 500). */
typedef int (*http_handler_fn)(void *ctx, const char *method, const char *path,
                               struct http_response *resp);

struct http_server;

/* Listen on bind:port (an IP address) and answer each GET through fn(ctx, ...). Returns NULL with a
 * reason in err ("http ADDR:PORT: address already in use", ...). log is borrowed for the life of
 * the server. */
struct http_server *http_server_start(uv_loop_t *loop, const char *bind, int port,
                                      http_handler_fn fn, void *ctx, const struct logger *log,
                                      char *err, size_t errlen);
/* Close the listener and all connections; frees the server once libuv has closed the handles. */
void http_server_stop(struct http_server *s);

#endif
