/*
 * ops.c - the operators' endpoint (ops.h): which path means what, readiness, and the parts other
 * modules attach. The HTTP server (http.c) parses requests and calls ops_handle; the broker's
 * metrics are metrics.c's.
 */
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "metrics.h"

struct ops {
    uv_loop_t *loop;
    struct broker *b;
    struct http_server *http;
    struct ops_part *parts;
    size_t nparts, cap;
};

/* HTTP stays off unless asked for, so that a port nobody chose cannot stop the broker. */
void ops_config_defaults(struct ops_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->bind, sizeof(cfg->bind), "0.0.0.0");
}

struct ops *ops_new(uv_loop_t *loop, struct broker *b)
{
    struct ops *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->loop = loop;
    o->b = b;
    return o;
}

int ops_attach(struct ops *o, const struct ops_part *part)
{
    size_t cap = buf_grow((void **)&o->parts, o->cap, o->nparts + 1, sizeof(*o->parts), SIZE_MAX);
    if (!cap)
        return -1;
    o->cap = cap;
    o->parts[o->nparts++] = *part;
    return 0;
}

/* Keeps the others in the order they were attached: /metrics lists them so. */
void ops_detach(struct ops *o, void *ctx)
{
    size_t kept = 0;
    for (size_t i = 0; i < o->nparts; i++)
        if (o->parts[i].ctx != ctx)
            o->parts[kept++] = o->parts[i];
    o->nparts = kept;
}

/* A short plain-text answer (the health and readiness words, errors). */
static int ops_text(struct http_response *resp, int status, const char *body)
{
    resp->status = status;
    resp->content_type = "text/plain; charset=utf-8";
    resp->body = strdup(body);
    resp->body_len = resp->body ? strlen(body) : 0;
    return resp->body ? 0 : -1;
}

/* /readyz: 200 once every part is ready and the broker takes clients; else 503 with the first
 * part's reason, or "starting" while the MQTT listener is not up. */
static int ops_readyz(struct ops *o, struct http_response *resp)
{
    char body[64];
    for (size_t i = 0; i < o->nparts; i++) {
        const char *why = o->parts[i].not_ready ? o->parts[i].not_ready(o->parts[i].ctx) : NULL;
        if (why) {
            snprintf(body, sizeof(body), "%s\n", why);
            return ops_text(resp, 503, body);
        }
    }
    if (!broker_listening(o->b))
        return ops_text(resp, 503, "starting\n");
    return ops_text(resp, 200, "ready\n");
}

/* /metrics: the broker's, then each part's, as one Prometheus text. */
static int ops_metrics(struct ops *o, struct http_response *resp)
{
    struct prom t = {0};
    metrics_broker(&t, o->b);
    for (size_t i = 0; i < o->nparts; i++)
        if (o->parts[i].metrics)
            o->parts[i].metrics(o->parts[i].ctx, &t);
    if (t.failed) {
        free(t.s);
        return -1;
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body = t.s;
    resp->body_len = t.len;
    return 0;
}

/* The server's handler (http.h): one path, one answer. */
static int ops_handle(void *ctx, const char *method, const char *path, struct http_response *resp)
{
    struct ops *o = ctx;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return ops_text(resp, 405, "method not allowed\n");
    if (strcmp(path, "/healthz") == 0)
        return ops_text(resp, 200, "ok\n");
    if (strcmp(path, "/readyz") == 0)
        return ops_readyz(o, resp);
    if (strcmp(path, "/metrics") == 0)
        return ops_metrics(o, resp);
    for (size_t i = 0; i < o->nparts; i++)
        if (o->parts[i].path && o->parts[i].serve && strcmp(path, o->parts[i].path) == 0)
            return o->parts[i].serve(o->parts[i].ctx, resp);
    return ops_text(resp, 404, "not found\n");
}

int ops_start(struct ops *o, const struct ops_config *cfg, char *err, size_t errlen)
{
    if (cfg->http_port == 0)
        return 0;
    o->http = http_server_start(o->loop, cfg->bind, cfg->http_port, ops_handle, o,
                                broker_logger(o->b), err, errlen);
    if (!o->http) {
        config_name_setting(err, errlen, cfg->origin.http_port, NULL);
        return -1;
    }
    return 0;
}

/* The server stops reading at once (no handler call after this), so o can go now. */
void ops_stop(struct ops *o)
{
    if (!o)
        return;
    http_server_stop(o->http);
    free(o->parts);
    free(o);
}
