/*
 * transport.h - byte streams to clients and the listeners that accept them: the layer under MQTT.
 *
 * A transport is one accepted stream (plain TCP, TLS, WebSocket over either: implementations of
 * struct transport_ops). Its user (the MQTT connection, conn.c) sees bytes only:
 * it starts and stops reading, writes, closes and asks for the peer's name through the ops, and
 * hears back through the struct transport_events its listeners were created with. Nothing above
 * this layer touches a socket or a libuv stream.
 *
 * Ownership: a stream and its user's state are one allocation, made by the transport on accept
 * (user_size bytes, zeroed, handed to events->accepted) and freed by it after events->closed.
 * Reads land in one buffer shared by every stream of a struct listeners (single thread: one read at
 * a time) unless the user offers its own (events->read_buf), so an idle stream holds no buffer.
 *
 * Everything runs on the loop's thread. Per read the transport makes two calls through the events
 * (read_buf, data), per flush the user one or two through the ops; none per message.
 */
#ifndef SOL_TRANSPORT_H
#define SOL_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "log.h"

/* One read takes up to this much: a socket's whole kernel buffer, many packets per read. */
#define TRANSPORT_READ_CHUNK (64 * 1024)

struct transport;

/* An implementation (TCP: transport_tcp.c). Errors are negative codes; transport_strerror names
 * them. */
struct transport_ops {
    /* Deliver what arrives through events->read_buf and ->data until read_stop. 0 or an error. */
    int (*read_start)(struct transport *t);
    void (*read_stop)(struct transport *t);
    /* Write what the stream takes now without waiting: the bytes taken (0..len, 0 when it would
     * block) or an error. data stays the caller's. */
    int (*try_write)(struct transport *t, const uint8_t *data, size_t len);
    /* Write data[0..len) in the background. buf, the allocation data points into, belongs to the
     * stream until events->written hands it back (also when the stream closes first). At most one
     * such write at a time. 0, or an error (buf stays the caller's, no event follows). */
    int (*write)(struct transport *t, uint8_t *buf, const uint8_t *data, size_t len);
    /* Close the stream: no events follow but a pending write's written, then closed. */
    void (*close)(struct transport *t);
    /* "ip:port" of the peer in buf (for log lines; computed on demand). Returns buf. */
    const char *(*peer)(const struct transport *t, char *buf, size_t len);
    /* Optional (NULL: none): the name the peer proved, e.g. a TLS client certificate's subject CN
     * when its listener uses it as the username, into buf; NULL when the listener uses none, ""
     * when it does but the peer proved no name (the client is then refused). */
    const char *(*identity)(const struct transport *t, char *buf, size_t len);
};

/* The part of every stream the user sees: the implementation's ops. */
struct transport {
    const struct transport_ops *ops;
};

/* What a transport tells its user (user = the user's state, allocated with the stream). */
struct transport_events {
    /* A stream was accepted on a listener created with ctx. Return 0 to keep it (the user starts
     * reading when it is ready), or -1 to refuse it: it is closed with no further event. */
    int (*accepted)(void *ctx, struct transport *t, void *user);
    /* Where the next read goes: leave *buf NULL to read into the shared buffer (valid during the
     * data call that follows), or point it at len bytes of the user's own. -1: the user's buffer
     * cannot grow; the stream then ends ("out of memory"). */
    int (*read_buf)(void *user, uint8_t **buf, size_t *len);
    /* n > 0 bytes arrived at data (the shared buffer or the user's, as read_buf chose). */
    void (*data)(void *user, uint8_t *data, size_t n);
    /* The stream ended: why = "connection closed by client" or the error. Reading stopped; the user
     * closes it. */
    void (*ended)(void *user, const char *why);
    /* A background write finished: buf comes back (the user frees it). err NULL on success. */
    void (*written)(void *user, uint8_t *buf, const char *err);
    /* ops->close finished: the user releases what its state holds; the allocation is freed after
     * this returns. */
    void (*closed)(void *user);
};

static inline int transport_read_start(struct transport *t)
{
    return t->ops->read_start(t);
}
static inline void transport_read_stop(struct transport *t)
{
    t->ops->read_stop(t);
}
static inline int transport_try_write(struct transport *t, const uint8_t *data, size_t len)
{
    return t->ops->try_write(t, data, len);
}
static inline int transport_write(struct transport *t, uint8_t *buf, const uint8_t *data,
                                  size_t len)
{
    return t->ops->write(t, buf, data, len);
}
static inline void transport_close(struct transport *t)
{
    t->ops->close(t);
}
static inline const char *transport_peer(const struct transport *t, char *buf, size_t len)
{
    return t->ops->peer(t, buf, len);
}

/* The text of a transport error code. */
const char *transport_strerror(int err);

/* ---- Listeners ---- */

enum transport_kind {
    TRANSPORT_TCP = 0, /* plain TCP */
    TRANSPORT_TLS,     /* TLS over TCP (transport_tls.c) */
    TRANSPORT_WS,      /* WebSocket over TCP (transport_ws.c) */
    TRANSPORT_WSS,     /* WebSocket over TLS */
};

/* One configured address clients connect to (read during listeners_start only). */
struct listener_config {
    enum transport_kind kind;
    const char *bind; /* IPv4 or IPv6 address */
    uint16_t port;
    const char *origin; /* the setting that chose the port, as the user gave it (config.h's
                         * origin): it starts an error for a port that cannot be bound. "" = none */
    /* TRANSPORT_TLS and TRANSPORT_WSS only (paths read at start and again on listeners_reload): */
    const char *certfile, *keyfile; /* PEM, required */
    const char *cafile, *capath;    /* client certificates are verified against these ("" = none) */
    const char *ciphers;            /* TLS 1.2 cipher list ("" = OpenSSL's default) */
    bool require_certificate;       /* refuse a client without a valid certificate */
    bool use_identity_as_username;  /* its subject CN is the username (ops->identity) */
    int tls_min_version;            /* 12 or 13 */
    /* TRANSPORT_WS and TRANSPORT_WSS only: */
    const char *ws_path;    /* the upgrade request's path, e.g. "/mqtt" */
    const char *ws_origins; /* Origin allow-list, comma-separated ("" = any origin) */
    bool trust_xff;         /* X-Forwarded-For's first address becomes the peer */
    size_t ws_max_frame;    /* a larger frame closes the connection (1009) */
    /* Any kind: every connection starts with a PROXY protocol v2 header whose source address
     * becomes the peer; one without a valid header is closed. */
    bool proxy_protocol;
};

/* Every listener of a broker, started in one place, sharing one read buffer. */
struct listeners;

/* An empty list whose streams carry user_size bytes of user state and report to ev with ctx; log
 * gets the line for a connection that could not be accepted. NULL when out of memory. */
struct listeners *listeners_new(uv_loop_t *loop, const struct logger *log,
                                const struct transport_events *ev, size_t user_size, void *ctx);
/* Start the n listeners, in order. On the first that fails: -1 with one line in err, e.g.
 * "invalid bind address 'x'" or "<origin>: cannot listen on 127.0.0.1:1883: address already in
 * use" (the ones started stay open until listeners_close). Logs nothing. */
int listeners_start(struct listeners *ls, const struct listener_config *cfg, size_t n, char *err,
                    size_t errlen);
/* Load every TLS listener's certificate, key and CA again into a new context for the connections
 * accepted from now on (open ones keep theirs). 0, or -1 with one line in err (the listeners whose
 * files could not be read keep their old context). */
int listeners_reload(struct listeners *ls, char *err, size_t errlen);
/* Whether at least one listener is accepting. */
bool listeners_open(const struct listeners *ls);
/* Stop accepting (open streams are not touched); done(ctx) runs on the loop once every listening
 * socket is closed (at once when none was open). */
void listeners_close(struct listeners *ls, void (*done)(void *ctx), void *ctx);
/* Free the list; its sockets must have closed (listeners_close's done ran, or none started). */
void listeners_free(struct listeners *ls);

#endif
