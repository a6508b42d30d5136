/*
 * listener.c - the list of listeners: every configured address started in one place, the read
 * buffer their streams share, reloading the TLS ones' certificates, and closing them all at
 * shutdown. The sockets themselves are transport_tcp.c's, TLS is transport_tls.c's, WebSocket
 * (over either) transport_ws.c's.
 */
#include <stdlib.h>
#include <string.h>

#include "transport_int.h"

struct listeners *listeners_new(uv_loop_t *loop, const struct logger *log,
                                const struct transport_events *ev, size_t user_size, void *ctx)
{
    struct listeners *ls = calloc(1, sizeof(*ls));
    if (!ls)
        return NULL;
    ls->read_buf = malloc(TRANSPORT_READ_CHUNK);
    if (!ls->read_buf) {
        free(ls);
        return NULL;
    }
    ls->loop = loop;
    ls->log = log;
    ls->ev = ev;
    ls->user_size = user_size;
    ls->ctx = ctx;
    return ls;
}

/* Start one listener; the list keeps it (to close it) even when it fails. */
static int listener_start(struct listeners *ls, const struct listener_config *cfg, char *err,
                          size_t errlen)
{
    struct sockaddr_storage addr;
    int rc;
    if (strchr(cfg->bind, ':'))
        rc = uv_ip6_addr(cfg->bind, cfg->port, (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(cfg->bind, cfg->port, (struct sockaddr_in *)&addr);
    if (rc < 0) {
        errf(err, errlen, "invalid bind address '%s'", cfg->bind);
        return -1;
    }
    struct listener *l = calloc(1, sizeof(*l));
    if (!l) {
        errf(err, errlen, "out of memory");
        return -1;
    }
    l->set = ls;
    l->streams = ls;
    l->kind = cfg->kind;
    l->proxy = cfg->proxy_protocol;
    l->next = ls->list;
    ls->list = l;
    if ((cfg->kind == TRANSPORT_TLS || cfg->kind == TRANSPORT_WSS) &&
        tls_listener_init(l, cfg, err, errlen) < 0)
        return -1;
    if ((cfg->kind == TRANSPORT_WS || cfg->kind == TRANSPORT_WSS) &&
        ws_listener_init(l, cfg, err, errlen) < 0)
        return -1;
    if ((rc = tcp_listen(l, (const struct sockaddr *)&addr)) < 0) {
        const char *origin = cfg->origin ? cfg->origin : "";
        errf(err, errlen, "%s%scannot listen on %s:%u: %s", origin, origin[0] ? ": " : "",
             cfg->bind, cfg->port, transport_strerror(rc));
        return -1;
    }
    return 0;
}

int listeners_start(struct listeners *ls, const struct listener_config *cfg, size_t n, char *err,
                    size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        if (listener_start(ls, &cfg[i], err, errlen) < 0)
            return -1;
    return 0;
}

/* SIGHUP: every TLS listener loads its files again; the first failure is reported, the others
 * still reload. */
int listeners_reload(struct listeners *ls, char *err, size_t errlen)
{
    int rc = 0;
    for (struct listener *l = ls->list; l; l = l->next)
        if (l->tls && tls_listener_reload(l, rc < 0 ? NULL : err, rc < 0 ? 0 : errlen) < 0)
            rc = -1;
    return rc;
}

bool listeners_open(const struct listeners *ls)
{
    for (const struct listener *l = ls->list; l; l = l->next)
        if (l->accepting)
            return true;
    return false;
}

static void listeners_finish(struct listeners *ls)
{
    if (ls->closing == 0 && ls->done) {
        void (*done)(void *) = ls->done;
        ls->done = NULL;
        done(ls->done_ctx);
    }
}

static void listener_on_close(uv_handle_t *h)
{
    struct listener *l = h->data;
    l->set->closing--;
    listeners_finish(l->set);
}

void listeners_close(struct listeners *ls, void (*done)(void *ctx), void *ctx)
{
    ls->done = done;
    ls->done_ctx = ctx;
    for (struct listener *l = ls->list; l; l = l->next) {
        l->accepting = false;
        if (l->inited) {
            l->inited = false;
            ls->closing++;
            tcp_listener_close(l, listener_on_close);
        }
    }
    listeners_finish(ls);
}

void listeners_free(struct listeners *ls)
{
    if (!ls)
        return;
    while (ls->list) {
        struct listener *l = ls->list;
        ls->list = l->next;
        tls_listener_free(l);
        ws_listener_free(l);
        free(l);
    }
    free(ls->read_buf);
    free(ls);
}
