/*
 * server_test.h - for cmocka tests of servers on a libuv loop (test_http.c, test_ops.c): run the
 * loop on a thread of its own, stop whatever runs on it from the loop thread, and connect to it
 * with a plain blocking socket.
 */
#ifndef SOL_SERVER_TEST_H
#define SOL_SERVER_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <uv.h>

struct server_test_loop {
    uv_loop_t *loop;
    uv_async_t stop;
    pthread_t thread;
    void (*on_stop)(void *ctx); /* closes the server's handles, on the loop thread */
    void *ctx;
};

/* The test's stop request, run on the loop: once on_stop has closed the server, the loop runs out
 * of handles and the thread ends. */
static inline void server_test_on_stop(uv_async_t *a)
{
    struct server_test_loop *t = a->data;
    t->on_stop(t->ctx);
    uv_close((uv_handle_t *)a, NULL);
}

static inline void *server_test_run(void *arg)
{
    struct server_test_loop *t = arg;
    uv_run(t->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Run loop on a new thread; t must stay where it is until server_test_stop returns. */
static inline int server_test_start(struct server_test_loop *t, uv_loop_t *loop,
                                    void (*on_stop)(void *ctx), void *ctx)
{
    t->loop = loop;
    t->on_stop = on_stop;
    t->ctx = ctx;
    t->stop.data = t;
    if (uv_async_init(loop, &t->stop, server_test_on_stop) != 0)
        return -1;
    return pthread_create(&t->thread, NULL, server_test_run, t) == 0 ? 0 : -1;
}

/* Call on_stop on the loop thread and wait for the loop to return. */
static inline void server_test_stop(struct server_test_loop *t)
{
    uv_async_send(&t->stop);
    pthread_join(t->thread, NULL);
}

/* A blocking connection to 127.0.0.1:port that gives up reading after 2 s. */
static inline int server_test_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

#endif
