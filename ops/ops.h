/*
 * ops.h - the operators' HTTP endpoint of a node, clustered or not: /healthz, /readyz and /metrics
 * (the broker's metrics), plus whatever other modules attach: the cluster adds /cluster, its
 * metrics and its readiness condition (struct ops_part). Served on --http-port; off by default.
 *
 * Loop thread only. The endpoint reads the broker through broker.h and knows nothing of the
 * cluster.
 */
#ifndef SOL_OPS_H
#define SOL_OPS_H

#include <stdint.h>
#include <uv.h>

#include "broker.h"
#include "config.h"
#include "http.h"
#include "prom.h"

/* The endpoint's settings (app/settings.c fills them). */
struct ops_config {
    /* Where HTTP listens: settings_load gives it the cluster's address (cluster_bind, which
     * itself follows the MQTT bind), so that operators find both on one address. */
    char bind[64];
    uint16_t http_port; /* default 0 = no HTTP endpoint */

    /* Not a setting: filled by settings_load with http_port as the user gave it, for the error
     * that names it when the port is busy. Empty while HTTP is off. */
    struct {
        char http_port[CONFIG_ORIGIN_LEN];
    } origin;
};

/* Fill cfg with the defaults: bind "0.0.0.0", HTTP off. */
void ops_config_defaults(struct ops_config *cfg);

/* What another module adds to the endpoint. Any function may be NULL. Called on the loop thread
 * while a request is answered; ctx is the module's. */
struct ops_part {
    void *ctx;
    /* An endpoint of its own: GET path fills *resp as http.h says (0, or -1 -> 500). */
    const char *path;
    int (*serve)(void *ctx, struct http_response *resp);
    /* Appends its metrics to /metrics, after the broker's. */
    void (*metrics)(void *ctx, struct prom *t);
    /* NULL when it is ready to take clients, else the word /readyz answers 503 with
     * ("starting", "leaving"). */
    const char *(*not_ready)(void *ctx);
};

struct ops;

/* An endpoint for broker b (borrowed; it must outlive the endpoint), serving nothing until
 * ops_start. Returns NULL when out of memory. */
struct ops *ops_new(uv_loop_t *loop, struct broker *b);

/* Add a part (copied; part->path must stay valid). Parts answer in the order attached. Returns 0,
 * or -1 when out of memory. */
int ops_attach(struct ops *o, const struct ops_part *part);

/* Remove every part attached with ctx (a module that stops before the endpoint). */
void ops_detach(struct ops *o, void *ctx);

/* Listen on cfg->bind:cfg->http_port when http_port is not 0 (else do nothing). Returns 0, or -1
 * with err naming the setting ("--http-port 8080: http 0.0.0.0:8080: address already in use"). */
int ops_start(struct ops *o, const struct ops_config *cfg, char *err, size_t errlen);

/* Stop serving and free o (the server's handles close on the loop afterwards). NULL is a no-op. */
void ops_stop(struct ops *o);

#endif
