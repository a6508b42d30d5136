/*
 * fuzz_http.c - libFuzzer target for the operators' HTTP endpoint (ops/http.c, ops/ops.c).
 *
 * The parser state, the request limits and the answers live in http.c's connection, read from a
 * libuv TCP stream, so the input goes the way a client's bytes go: over a loopback connection to
 * the real endpoint (/healthz, /readyz, /metrics of a broker that is not started), written at once
 * and followed by the end of input, and the loop runs until the server has closed the connection
 * (it always does: at the end of input, after an error answer, or when asked to). A crash, a
 * sanitizer report, a leak or a connection the server never closes (the run's -timeout) is a
 * finding. libFuzzer needs state across inputs, hence the statics (test-only).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "config.h"
#include "ops.h"

static uv_loop_t loop; /* one endpoint for the whole fuzzing run */
static struct broker *b;
static struct ops *ops;
static struct sockaddr_in addr;

/* One client connection: the input, and whether it is over. */
struct fuzz_client {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uv_shutdown_t shutdown;
    uv_buf_t input;
    char rbuf[4096];
    size_t answered; /* bytes of answers: counted, so that reading them is not optimised out */
    bool closed;
};

static void fuzz_closed(uv_handle_t *h)
{
    struct fuzz_client *cl = h->data;
    cl->closed = true;
}

/* The server's answers are read until it closes (or resets) the connection. */
static void fuzz_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct fuzz_client *cl = h->data;
    (void)suggested;
    *buf = uv_buf_init(cl->rbuf, sizeof(cl->rbuf));
}

static void fuzz_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct fuzz_client *cl = s->data;
    (void)buf;
    if (n > 0)
        cl->answered += (size_t)n;
    else if (n < 0 && !uv_is_closing((uv_handle_t *)s))
        uv_close((uv_handle_t *)s, fuzz_closed);
}

/* A failed write or shutdown (the server closed first) ends the connection too. */
static void fuzz_written(uv_write_t *w, int status)
{
    if (status < 0 && !uv_is_closing((uv_handle_t *)w->handle))
        uv_close((uv_handle_t *)w->handle, fuzz_closed);
}

static void fuzz_shut(uv_shutdown_t *sh, int status)
{
    if (status < 0 && !uv_is_closing((uv_handle_t *)sh->handle))
        uv_close((uv_handle_t *)sh->handle, fuzz_closed);
}

/* Connected: the whole input, then the end of input; the answers are read meanwhile. */
static void fuzz_connected(uv_connect_t *c, int status)
{
    struct fuzz_client *cl = c->data;
    if (status < 0 || uv_read_start((uv_stream_t *)&cl->tcp, fuzz_alloc, fuzz_read) != 0 ||
        (cl->input.len &&
         uv_write(&cl->write, (uv_stream_t *)&cl->tcp, &cl->input, 1, fuzz_written) != 0) ||
        uv_shutdown(&cl->shutdown, (uv_stream_t *)&cl->tcp, fuzz_shut) != 0) {
        if (!uv_is_closing((uv_handle_t *)&cl->tcp))
            uv_close((uv_handle_t *)&cl->tcp, fuzz_closed);
    }
}

/* A broker that is not started and its endpoint, on a free loopback port. */
static void fuzz_start(void)
{
    struct sol_config cfg;
    struct ops_config oc;
    char err[256];
    uv_loop_init(&loop);
    config_defaults(&cfg);
    cfg.log_level = LOG_LEVEL_ERROR;
    cfg.sys_interval = 0;
    b = broker_new(&loop, &cfg, err, sizeof(err));
    ops = b ? ops_new(&loop, b) : NULL;
    if (!ops)
        abort();
    ops_config_defaults(&oc);
    snprintf(oc.bind, sizeof(oc.bind), "127.0.0.1");
    srand((unsigned)getpid());
    for (int i = 0; i < 50; i++) {
        oc.http_port = (uint16_t)(20000 + rand() % 40000);
        if (ops_start(ops, &oc, err, sizeof(err)) == 0) {
            uv_ip4_addr("127.0.0.1", oc.http_port, &addr);
            return;
        }
    }
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ops)
        fuzz_start();
    struct fuzz_client *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return 0;
    cl->input = uv_buf_init((char *)data, (unsigned)size);
    cl->tcp.data = cl;
    cl->connect.data = cl;
    uv_tcp_init(&loop, &cl->tcp);
    if (uv_tcp_connect(&cl->connect, &cl->tcp, (const struct sockaddr *)&addr, fuzz_connected) != 0)
        uv_close((uv_handle_t *)&cl->tcp, fuzz_closed);
    while (!cl->closed)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_NOWAIT); /* the server's side of it closes too */
    free(cl);
    return 0;
}
