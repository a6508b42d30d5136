/*
 * main.c - the sol program: settings, the broker, the cluster, the operators' endpoint, signals,
 * orderly shutdown.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "broker.h"
#include "cluster.h"
#include "crash.h"
#include "ops.h"
#include "settings.h"

extern char **environ;

/* Everything main owns; lives on main's stack for the life of the loop. */
struct sol_main {
    uv_loop_t *loop;
    struct broker *broker;
    struct cluster *cluster;
    struct ops *ops;
    uv_signal_t sigterm, sigint, sighup;
    bool stopping;
};

/* Left the cluster: stop it, the operators' endpoint and the signal handlers; the loop then runs
 * out of handles and returns. */
static void main_on_left(void *ctx)
{
    struct sol_main *m = ctx;
    cluster_stop(m->cluster); /* detaches from the endpoint: before ops_stop */
    m->cluster = NULL;
    ops_stop(m->ops);
    m->ops = NULL;
    uv_close((uv_handle_t *)&m->sigterm, NULL);
    uv_close((uv_handle_t *)&m->sigint, NULL);
    uv_close((uv_handle_t *)&m->sighup, NULL);
}

/* Clients are gone (their wills published and forwarded while the cluster was still attached): now
 * announce leave, so peers mark this node left rather than dead. */
static void main_on_broker_closed(void *ctx)
{
    struct sol_main *m = ctx;
    cluster_leave(m->cluster, main_on_left, m);
}

/* SIGTERM / SIGINT: stop listening and close every client (they reconnect elsewhere), then leave. */
static void main_on_signal(uv_signal_t *h, int signum)
{
    struct sol_main *m = h->data;
    if (m->stopping)
        return;
    m->stopping = true;
    log_info(broker_logger(m->broker), "signal %d: shutting down", signum);
    broker_shutdown(m->broker, main_on_broker_closed, m);
}

/* SIGHUP: re-read what can change without a restart: TLS listeners' certificate, key and CA
 * (new connections only) and the cluster's gossip keys. */
static void main_on_hup(uv_signal_t *h, int signum)
{
    struct sol_main *m = h->data;
    char err[512] = "";
    (void)signum;
    if (m->stopping)
        return;
    if (broker_reload_tls(m->broker, err, sizeof(err)) < 0)
        log_error(broker_logger(m->broker), "SIGHUP: TLS reload failed, keeping the old: %s", err);
    else
        log_info(broker_logger(m->broker), "SIGHUP: TLS certificates reloaded");
    cluster_reload_keys(m->cluster);
}

int main(int argc, char **argv)
{
    struct sol_settings cfg;
    char err[512] = "";
    signal(SIGPIPE, SIG_IGN);
    crash_report_install(); /* a node that dies says where (crash.h) */
    int rc = settings_load(&cfg, argc, argv, environ, err, sizeof(err));
    if (rc == SETTINGS_EXIT_OK)
        return 0;
    if (rc != SETTINGS_OK) {
        fprintf(stderr, "sol: %s\n", err);
        return 2;
    }
    struct sol_main m = {.loop = uv_default_loop()};
    m.broker = broker_new(m.loop, &cfg.node, err, sizeof(err));
    if (!m.broker) {
        fprintf(stderr, "sol: %s\n", err);
        return 2;
    }
    /* A listener that cannot start is a setting to change, like a bad value: exit 2, naming it. */
    if (broker_start(m.broker, err, sizeof(err)) < 0) {
        /* The message names the setting: the bad --bind, or the port as the user gave it. */
        fprintf(stderr, "sol: %s\n", err);
        broker_free(m.broker);
        return 2;
    }
    /* The endpoint first, so that the cluster can attach to it; it listens after the cluster, so
     * that a busy cluster port is the one reported when both are. */
    m.ops = ops_new(m.loop, m.broker);
    if (!m.ops) {
        fprintf(stderr, "sol: out of memory\n");
        return 2;
    }
    m.cluster = cluster_start(m.loop, m.broker, m.ops, &cfg.cluster, err, sizeof(err));
    if (!m.cluster || ops_start(m.ops, &cfg.ops, err, sizeof(err)) != 0) {
        fprintf(stderr, "sol: %s\n", err);
        ops_stop(m.ops); /* nothing else holds it: exit 2, not a leak report */
        return 2;
    }
    /* Both are off unless asked for (settings.h): say how to turn them on. */
    if (cfg.cluster.cluster_port == 0)
        log_info(broker_logger(m.broker),
                 "clustering off (--seeds, --cluster-port or --cluster-bind turn it on)");
    if (cfg.ops.http_port == 0)
        log_info(broker_logger(m.broker),
                 "HTTP endpoint off (--http-port PORT serves /metrics, /readyz, /cluster)");
    uv_signal_init(m.loop, &m.sigterm);
    uv_signal_init(m.loop, &m.sigint);
    uv_signal_init(m.loop, &m.sighup);
    m.sigterm.data = m.sigint.data = m.sighup.data = &m;
    uv_signal_start(&m.sigterm, main_on_signal, SIGTERM);
    uv_signal_start(&m.sigint, main_on_signal, SIGINT);
    uv_signal_start(&m.sighup, main_on_hup, SIGHUP);
    uv_run(m.loop, UV_RUN_DEFAULT);
    broker_free(m.broker);
    uv_loop_close(m.loop);
    return 0;
}
