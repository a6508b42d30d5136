/*
 * test_http.c - the operators' HTTP server: status line and headers, query stripped, keep-alive and
 * close, pipelined requests answered in order, 405 for other methods, 400 and close on garbage, 431
 * and close on an oversized request, 500 when the handler fails, a busy port reported. The server's
 * loop runs on a thread; the test talks to it with plain blocking sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
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

#include "http.h"
#include "server_test.h"

struct fixture {
    uv_loop_t loop;
    struct server_test_loop lt;
    struct http_server *srv;
    int port;
    struct logger log;
    char last_path[256];
    int calls;
};

/* Handler: /fail -> -1 (500), /json -> 200 JSON, /missing -> 404, anything else -> 200 echoing the
 * path. */
static int handler(void *ctx, const char *method, const char *path, struct http_response *resp)
{
    struct fixture *f = ctx;
    f->calls++;
    snprintf(f->last_path, sizeof(f->last_path), "%s", path);
    if (strcmp(method, "GET") != 0)
        return -1;
    if (strcmp(path, "/fail") == 0)
        return -1;
    char body[300];
    if (strcmp(path, "/json") == 0) {
        resp->content_type = "application/json";
        snprintf(body, sizeof(body), "{\"ok\":true}");
    } else {
        resp->content_type = "text/plain";
        snprintf(body, sizeof(body), "path=%s", path);
    }
    resp->status = strcmp(path, "/missing") == 0 ? 404 : 200;
    resp->body = strdup(body);
    if (!resp->body)
        return -1;
    resp->body_len = strlen(body);
    return 0;
}

static void on_stop(void *ctx)
{
    struct fixture *f = ctx;
    http_server_stop(f->srv);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    f->log.level = LOG_LEVEL_ERROR;
    uv_loop_init(&f->loop);
    char err[256];
    srand((unsigned)getpid());
    for (int i = 0; i < 50 && !f->srv; i++) {
        f->port = 20000 + rand() % 40000;
        f->srv = http_server_start(&f->loop, "127.0.0.1", f->port, handler, f, &f->log, err,
                                   sizeof(err));
    }
    if (!f->srv)
        return -1;
    if (server_test_start(&f->lt, &f->loop, on_stop, f) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    server_test_stop(&f->lt);
    int rc = uv_loop_close(&f->loop);
    free(f);
    return rc == 0 ? 0 : -1; /* every handle closed: the server freed itself */
}

static void send_all(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

/* Read until the peer closes, `want` bytes of responses have arrived as counted by complete
 * responses, or the timeout. Returns bytes read; *closed tells whether the server closed. */
static size_t read_responses(int fd, char *buf, size_t cap, int want_responses, bool *closed)
{
    size_t len = 0;
    *closed = false;
    for (;;) {
        int complete = 0;
        const char *p = buf;
        buf[len] = '\0';
        while ((p = strstr(p, "HTTP/1.1 ")) != NULL) {
            const char *cl = strstr(p, "Content-Length: ");
            const char *end = strstr(p, "\r\n\r\n");
            if (!cl || !end || (size_t)(end + 4 - buf) > len)
                break;
            size_t body = strtoul(cl + 16, NULL, 10);
            if ((size_t)(end + 4 - buf) + body > len)
                break;
            complete++;
            p = end + 4 + body;
        }
        if (want_responses >= 0 && complete >= want_responses)
            return len;
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n == 0) {
            *closed = true;
            return len;
        }
        if (n < 0)
            return len;
        len += (size_t)n;
    }
}

static int count(const char *hay, const char *needle)
{
    int c = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        c++;
    return c;
}

static void test_get_keepalive_and_query(void **state)
{
    struct fixture *f = *state;
    int fd = server_test_connect(f->port);
    const char *req = "GET /json?x=1&y=2 HTTP/1.1\r\nHost: t\r\n\r\n";
    send_all(fd, req, strlen(req));
    char buf[8192];
    bool closed;
    read_responses(fd, buf, sizeof(buf), 1, &closed);
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(buf, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(buf, "Content-Length: 11\r\n"));
    assert_non_null(strstr(buf, "Connection: keep-alive\r\n"));
    assert_non_null(strstr(buf, "\r\n\r\n{\"ok\":true}"));
    assert_string_equal(f->last_path, "/json");
    /* Same connection, second request. */
    req = "GET /missing HTTP/1.1\r\n\r\n";
    send_all(fd, req, strlen(req));
    read_responses(fd, buf, sizeof(buf), 1, &closed);
    assert_non_null(strstr(buf, "HTTP/1.1 404 Not Found\r\n"));
    assert_false(closed);
    close(fd);
}

static void test_pipelined_in_order(void **state)
{
    struct fixture *f = *state;
    int fd = server_test_connect(f->port);
    const char *req = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n";
    send_all(fd, req, strlen(req));
    char buf[8192];
    bool closed;
    read_responses(fd, buf, sizeof(buf), 3, &closed);
    assert_int_equal(count(buf, "HTTP/1.1 200 OK"), 3);
    char *a = strstr(buf, "path=/a");
    char *b = strstr(buf, "path=/b");
    char *c = strstr(buf, "path=/c");
    assert_true(a && b && c && a < b && b < c);
    close(fd);
}

static void test_connection_close_stops_pipeline(void **state)
{
    struct fixture *f = *state;
    int fd = server_test_connect(f->port);
    const char *req = "GET /a HTTP/1.1\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    send_all(fd, req, strlen(req));
    char buf[8192];
    bool closed;
    read_responses(fd, buf, sizeof(buf), -1, &closed);
    assert_true(closed);
    assert_int_equal(count(buf, "HTTP/1.1 "), 1);
    assert_non_null(strstr(buf, "Connection: close\r\n"));
    assert_null(strstr(buf, "path=/b"));
    close(fd);
}

static void test_http10_closes(void **state)
{
    struct fixture *f = *state;
    int fd = server_test_connect(f->port);
    const char *req = "GET /x HTTP/1.0\r\n\r\n";
    send_all(fd, req, strlen(req));
    char buf[8192];
    bool closed;
    read_responses(fd, buf, sizeof(buf), -1, &closed);
    assert_true(closed);
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(buf, "Connection: close\r\n"));
    close(fd);
}

static void test_other_methods_405(void **state)
{
    struct fixture *f = *state;
    int fd = server_test_connect(f->port);
    int calls = f->calls;
    const char *req = "POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /y HTTP/1.1\r\n\r\n";
    send_all(fd, req, strlen(req));
    char buf[8192];
    bool closed;
    read_responses(fd, buf, sizeof(buf), 2, &closed);
    assert_non_null(strstr(buf, "HTTP/1.1 405 Method Not Allowed\r\n"));
    assert_non_null(strstr(buf, "Allow: GET\r\n"));
    assert_non_null(strstr(buf, "path=/y")); /* the body was skipped, the next request served */
    assert_int_equal(f->calls, calls + 1);   /* the handler never saw the POST */
    close(fd);
}

static void test_garbage_400_and_close(void **state)
{
    struct fixture *f = *state;
    int fd = server_test_connect(f->port);
    const char *req = "\x01\x02 NOT HTTP\r\n\r\n";
    send_all(fd, req, strlen(req));
    char buf[8192];
    bool closed;
    read_responses(fd, buf, sizeof(buf), -1, &closed);
    assert_true(closed);
    assert_non_null(strstr(buf, "HTTP/1.1 400 Bad Request\r\n"));
    close(fd);
}

static void test_oversized_431_and_close(void **state)
{
    struct fixture *f = *state;
    int fd = server_test_connect(f->port);
    char req[12000];
    int n = snprintf(req, sizeof(req), "GET /x HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'a', 9000);
    n += 9000;
    n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n\r\n");
    send_all(fd, req, (size_t)n);
    char buf[8192];
    bool closed;
    read_responses(fd, buf, sizeof(buf), -1, &closed);
    assert_true(closed);
    assert_non_null(strstr(buf, "HTTP/1.1 431 "));
    close(fd);
}

static void test_handler_failure_500(void **state)
{
    struct fixture *f = *state;
    int fd = server_test_connect(f->port);
    const char *req = "GET /fail HTTP/1.1\r\n\r\n";
    send_all(fd, req, strlen(req));
    char buf[8192];
    bool closed;
    read_responses(fd, buf, sizeof(buf), 1, &closed);
    assert_non_null(strstr(buf, "HTTP/1.1 500 Internal Server Error\r\n"));
    close(fd);
}

static void test_request_split_byte_by_byte(void **state)
{
    struct fixture *f = *state;
    int fd = server_test_connect(f->port);
    const char *req = "GET /slow/path?q HTTP/1.1\r\nHost: t\r\n\r\n";
    for (size_t i = 0; req[i]; i++)
        send_all(fd, req + i, 1);
    char buf[8192];
    bool closed;
    read_responses(fd, buf, sizeof(buf), 1, &closed);
    assert_non_null(strstr(buf, "path=/slow/path"));
    close(fd);
}

static void test_port_in_use(void **state)
{
    struct fixture *f = *state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256] = "";
    struct http_server *s =
        http_server_start(&loop, "127.0.0.1", f->port, handler, f, &f->log, err, sizeof(err));
    assert_null(s);
    assert_true(strlen(err) > 0);
    assert_null(http_server_start(&loop, "not-an-ip", 1, handler, f, &f->log, err, sizeof(err)));
    uv_run(&loop, UV_RUN_DEFAULT); /* let the failed listener close */
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_keepalive_and_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_close_stops_pipeline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http10_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_methods_405, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_400_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_431_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_failure_500, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_split_byte_by_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_in_use, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
