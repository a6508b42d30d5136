/*
 * test_ops.c - the operators' endpoint without a cluster: /healthz, /readyz (the broker's and each
 * attached part's condition), /metrics (the broker's, then each part's, in attach order), a part's
 * own path, detach, HTTP off when http_port is 0, a busy port reported naming the setting. The
 * loop runs on a thread; the test talks to it with blocking sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker.h"
#include "server_test.h"
#include "ops.h"

struct fixture {
    uv_loop_t loop;
    struct server_test_loop lt;
    struct broker *b;
    struct ops *ops;
    struct ops_config cfg;
    bool running;
};

/* A part as the cluster would be: an endpoint, one metric, a readiness word. */
struct part {
    const char *name;
    atomic_bool ready;
};

static int part_serve(void *ctx, struct http_response *resp)
{
    struct part *p = ctx;
    resp->status = 200;
    resp->content_type = "application/json";
    resp->body = strdup(p->name);
    resp->body_len = resp->body ? strlen(p->name) : 0;
    return resp->body ? 0 : -1;
}

static void part_metrics(void *ctx, struct prom *t)
{
    struct part *p = ctx;
    char name[64];
    snprintf(name, sizeof(name), "test_%s_total", p->name);
    prom_u64(t, name, "counter", "A part's metric.", 7);
}

static const char *part_not_ready(void *ctx)
{
    struct part *p = ctx;
    return atomic_load(&p->ready) ? NULL : "leaving";
}

static void on_stop(void *ctx)
{
    struct fixture *f = ctx;
    ops_stop(f->ops);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct sol_config node;
    char err[256];
    if (!f)
        return -1;
    uv_loop_init(&f->loop);
    config_defaults(&node);
    node.log_level = LOG_LEVEL_ERROR;
    node.sys_interval = 0;
    f->b = broker_new(&f->loop, &node, err, sizeof(err)); /* not started: not listening */
    f->ops = f->b ? ops_new(&f->loop, f->b) : NULL;
    if (!f->ops)
        return -1;
    ops_config_defaults(&f->cfg);
    snprintf(f->cfg.bind, sizeof(f->cfg.bind), "127.0.0.1");
    *state = f;
    return 0;
}

/* Listen on a free port. */
static void listen_free(struct fixture *f)
{
    char err[256];
    srand((unsigned)getpid());
    for (int i = 0; i < 50; i++) {
        f->cfg.http_port = (uint16_t)(20000 + rand() % 40000);
        if (ops_start(f->ops, &f->cfg, err, sizeof(err)) == 0)
            break;
        f->cfg.http_port = 0;
    }
    assert_int_not_equal(f->cfg.http_port, 0);
}

/* Listen and run the loop on its thread (parts are attached before: the loop owns them after). */
static void start(struct fixture *f)
{
    listen_free(f);
    assert_int_equal(server_test_start(&f->lt, &f->loop, on_stop, f), 0);
    f->running = true;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->running) {
        server_test_stop(&f->lt);
    } else {
        ops_stop(f->ops);
    }
    broker_free(f->b);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&f->loop);
    free(f);
    return rc == 0 ? 0 : -1; /* every handle closed */
}

/* One GET on a fresh connection (Connection: close); the whole response into buf. */
static void get(const struct fixture *f, const char *path, char *buf, size_t cap)
{
    int fd = server_test_connect(f->cfg.http_port);
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nConnection: close\r\n\r\n", path);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    size_t len = 0;
    ssize_t r;
    while (len + 1 < cap && (r = recv(fd, buf + len, cap - 1 - len, 0)) > 0)
        len += (size_t)r;
    buf[len] = '\0';
    close(fd);
}

/* GET path; the response must contain each of the NULL-terminated strings. */
static void expect_get(const struct fixture *f, const char *path, ...)
{
    char buf[16384];
    va_list ap;
    const char *want;
    get(f, path, buf, sizeof(buf));
    va_start(ap, path);
    while ((want = va_arg(ap, const char *)) != NULL)
        if (!strstr(buf, want))
            fail_msg("GET %s: no '%s' in:\n%s", path, want, buf);
    va_end(ap);
}

static void test_single_node(void **state)
{
    struct fixture *f = *state;
    char buf[16384];
    start(f);
    expect_get(f, "/healthz", "HTTP/1.1 200 OK\r\n", "\r\n\r\nok\n", NULL);
    /* the MQTT listener is not up */
    expect_get(f, "/readyz", "HTTP/1.1 503 ", "\r\n\r\nstarting\n", NULL);
    expect_get(f, "/metrics", "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n",
               "\n# TYPE sol_connections gauge\nsol_connections 0\n",
               "sol_messages_dropped_total{reason=\"peer_queue_full\"} 0\n",
               "sol_retained_messages 0\n", NULL);
    get(f, "/metrics", buf, sizeof(buf));
    assert_null(strstr(buf, "sol_cluster"));
    expect_get(f, "/cluster", "HTTP/1.1 404 ", NULL);
}

static void test_parts(void **state)
{
    struct fixture *f = *state;
    static struct part gone = {.name = "gone"}, a = {.name = "a"}, b = {.name = "b"};
    char buf[16384];
    atomic_store(&gone.ready, true);
    atomic_store(&a.ready, true);
    atomic_store(&b.ready, false);
    struct ops_part pg = {&gone, "/gone", part_serve, part_metrics, part_not_ready};
    struct ops_part pa = {&a, "/a", part_serve, part_metrics, part_not_ready};
    struct ops_part pb = {&b, NULL, NULL, part_metrics, part_not_ready};
    assert_int_equal(ops_attach(f->ops, &pg), 0);
    assert_int_equal(ops_attach(f->ops, &pa), 0);
    assert_int_equal(ops_attach(f->ops, &pb), 0);
    ops_detach(f->ops, &gone);
    start(f);

    expect_get(f, "/a", "Content-Type: application/json\r\n", "\r\n\r\na", NULL);
    expect_get(f, "/gone", "HTTP/1.1 404 ", NULL);
    /* A part's word comes before the broker's. */
    expect_get(f, "/readyz", "\r\n\r\nleaving\n", NULL);
    atomic_store(&b.ready, true);
    expect_get(f, "/readyz", "\r\n\r\nstarting\n", NULL);
    /* The broker's metrics, then each part's in attach order; a detached part's are gone. */
    get(f, "/metrics", buf, sizeof(buf));
    const char *broker = strstr(buf, "sol_retained_messages 0\n");
    const char *ma = strstr(buf, "# HELP test_a_total A part's metric.\n# TYPE test_a_total "
                                 "counter\ntest_a_total 7\n");
    const char *mb = strstr(buf, "test_b_total 7\n");
    assert_non_null(broker);
    assert_non_null(ma);
    assert_non_null(mb);
    assert_true(broker < ma && ma < mb);
    assert_null(strstr(buf, "test_gone_total"));
}

/* On the test's thread, the loop not running: a failed start closes its handle on the loop. */
static void test_off_and_busy(void **state)
{
    struct fixture *f = *state;
    char err[256];
    /* Port 0: nothing listens, nothing fails. */
    assert_int_equal(ops_start(f->ops, &f->cfg, err, sizeof(err)), 0);
    listen_free(f);
    struct ops *other = ops_new(&f->loop, f->b);
    struct ops_config busy = f->cfg;
    assert_non_null(other);
    snprintf(busy.origin.http_port, sizeof(busy.origin.http_port), "--http-port %u",
             busy.http_port);
    assert_int_equal(ops_start(other, &busy, err, sizeof(err)), -1);
    char want[128];
    snprintf(want, sizeof(want), "--http-port %u: http 127.0.0.1:%u: ", busy.http_port,
             busy.http_port);
    assert_memory_equal(err, want, strlen(want));
    ops_stop(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_single_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_off_and_busy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
