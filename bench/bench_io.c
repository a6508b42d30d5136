/*
 * bench_io.c - solbench's socket layer: non-blocking TCP on one level-triggered epoll set.
 *
 * The point is to cost the broker under test as few syscalls as possible on our side too:
 *  - reads go into one big scratch buffer shared by all connections, and every whole packet in it
 * is decoded before the next read; only a trailing partial packet is kept per connection (carry);
 *  - writes are appended to a per-connection output buffer and flushed once per loop turn, so many
 *    PUBLISH/PUBACK packets leave in one send().
 * With --tls the same buffers go through OpenSSL on the same non-blocking sockets: reads fill the
 * scratch buffer record by record until OpenSSL would block, writes hand it the whole pending output
 * (partial writes on, so a full socket leaves the rest for EPOLLOUT as with plain TCP).
 */
#include "bench.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* The broker only ever sends us packets as large as ours; this bounds a hostile length field. */
#define IO_MAX_PACKET (16u << 20)
/* A TLS read asks for at least one whole record of plaintext, so none is left half read inside
 * OpenSSL where epoll cannot see it. */
#define IO_TLS_RECORD (16u * 1024 + 256)

int io_init(struct bench_io *io, size_t max_conns, size_t scratch_cap)
{
    memset(io, 0, sizeof(*io));
    io->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (io->epfd < 0)
        return -errno;
    io->scratch = malloc(scratch_cap);
    io->dirty = calloc(max_conns ? max_conns : 1, sizeof(*io->dirty));
    if (!io->scratch || !io->dirty) {
        io_free(io);
        return -ENOMEM;
    }
    io->scratch_cap = scratch_cap;
    io->dirty_cap = max_conns ? max_conns : 1;
    return 0;
}

void io_free(struct bench_io *io)
{
    if (io->epfd >= 0)
        close(io->epfd);
    SSL_CTX_free(io->tls);
    io->tls = NULL;
    free(io->scratch);
    free(io->dirty);
    io->epfd = -1;
    io->scratch = NULL;
    io->dirty = NULL;
}

/* Register interest in writability only while there is something we could not write. */
static int io_set_out(struct bench_io *io, struct conn *c, bool want)
{
    if (c->want_out == want)
        return 0;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(io->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        return -errno;
    c->want_out = want;
    return 0;
}

int io_connect(struct bench_io *io, struct conn *c, uint32_t src_ip_be,
               const struct sockaddr_in *dst)
{
    int err, one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (src_ip_be) {
        /* Choose the port at connect() time, per 4-tuple: many 127.0.0.x sources then each get
         * their own ephemeral port range. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr.s_addr = src_ip_be};
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0)
            goto fail;
    }
    if (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) < 0 && errno != EINPROGRESS)
        goto fail;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(io->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        goto fail;
    c->fd = fd;
    c->want_out = true;
    c->state = CS_TCP;
    return 0;
fail:
    err = -errno;
    close(fd);
    return err;
}

int io_connect_result(struct bench_io *io, struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    if (err)
        return -err;
    /* Keep EPOLLOUT only if output is already waiting (the CONNECT queued before completion). */
    return io_set_out(io, c, io_pending(c) > 0);
}

uint8_t *io_reserve(struct bench_io *io, struct conn *c, size_t n)
{
    (void)io;
    if (c->out_cap - c->out_len >= n)
        return c->out + c->out_len;
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_cap - c->out_len >= n)
            return c->out + c->out_len;
    }
    size_t cap = c->out_cap ? c->out_cap : 128;
    while (cap - c->out_len < n)
        cap *= 2;
    if (cap > UINT32_MAX)
        return NULL;
    uint8_t *p = realloc(c->out, cap);
    if (!p)
        return NULL;
    c->out = p;
    c->out_cap = (uint32_t)cap;
    return c->out + c->out_len;
}

void io_commit(struct bench_io *io, struct conn *c, size_t n)
{
    c->out_len += (uint32_t)n;
    if (!c->dirty && io->ndirty < io->dirty_cap) {
        c->dirty = true;
        io->dirty[io->ndirty++] = c;
    }
}

/* TLS: hand OpenSSL everything pending, a record at a time; *n is what it took. 0, 1 (the socket
 * is full: wait for EPOLLOUT) or -EPIPE. A retry after "would block" starts at the same byte, as
 * OpenSSL asks (the buffer may have moved: SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). */
static int io_tls_write(struct bench_io *io, struct conn *c, size_t pending, size_t *n)
{
    *n = 0;
    while (*n < pending) {
        size_t w = 0;
        io->writes++;
        if (SSL_write_ex(c->ssl, c->out + c->out_off + *n, pending - *n, &w) == 1) {
            *n += w;
            continue;
        }
        int e = SSL_get_error(c->ssl, 0);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
            return 1;
        snprintf(io->tls_err, sizeof(io->tls_err), "TLS write: %s",
                 ERR_reason_error_string(ERR_peek_last_error()) ?: "connection closed");
        ERR_clear_error();
        return -EPIPE;
    }
    return 0;
}

/* One send() of everything pending; a short write leaves the rest for EPOLLOUT. */
static int io_write_once(struct bench_io *io, struct conn *c)
{
    size_t pending = io_pending(c);
    if (pending == 0)
        return io_set_out(io, c, false);
    ssize_t n;
    if (c->ssl) {
        size_t w;
        int rc = io_tls_write(io, c, pending, &w);
        if (rc < 0)
            return rc;
        n = (ssize_t)w;
    } else {
        n = send(c->fd, c->out + c->out_off, pending, MSG_NOSIGNAL | MSG_DONTWAIT);
        io->writes++;
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return io_set_out(io, c, true);
            return -errno;
        }
    }
    io->bytes_out += (uint64_t)n;
    if ((size_t)n == pending) {
        c->out_off = c->out_len = 0;
        return io_set_out(io, c, false);
    }
    c->out_off += (uint32_t)n;
    return io_set_out(io, c, true);
}

void io_flush(struct bench_io *io, struct bench *b, io_fail_fn fail)
{
    for (size_t i = 0; i < io->ndirty; i++) {
        struct conn *c = io->dirty[i];
        c->dirty = false;
        /* Closed, or still connecting / already waiting for EPOLLOUT: written when writable. */
        if (c->fd < 0 || c->state == CS_TCP || c->state == CS_TLS || c->want_out)
            continue;
        int rc = io_write_once(io, c);
        if (rc < 0)
            fail(b, c, rc);
    }
    io->ndirty = 0;
}

int io_write_ready(struct bench_io *io, struct conn *c)
{
    return io_write_once(io, c);
}

/* Keep the trailing partial packet of scratch[off..total) for the next read. */
static int io_save_carry(struct conn *c, const uint8_t *p, size_t n)
{
    if (n > c->carry_cap) {
        size_t cap = c->carry_cap ? c->carry_cap : 256;
        while (cap < n)
            cap *= 2;
        uint8_t *q = realloc(c->carry, cap);
        if (!q)
            return -ENOMEM;
        c->carry = q;
        c->carry_cap = (uint32_t)cap;
    }
    if (n)
        memmove(c->carry, p, n);
    c->carry_len = (uint32_t)n;
    return 0;
}

/* Read into buf[0..room): *n bytes; *more if there may be more right now (the buffer filled).
 * Plain TCP: one recv(). TLS: records until OpenSSL would block or less than one record's room is
 * left. Returns 0, or -errno (ECONNRESET for an orderly close). */
static int io_recv(struct bench_io *io, struct conn *c, uint8_t *buf, size_t room, size_t *n,
                   bool *more)
{
    *n = 0;
    *more = false;
    if (!c->ssl) {
        ssize_t r = recv(c->fd, buf, room, MSG_DONTWAIT);
        io->reads++;
        if (r == 0)
            return -ECONNRESET;
        if (r < 0)
            return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -errno;
        *n = (size_t)r;
        *more = *n == room;
        return 0;
    }
    while (room - *n >= IO_TLS_RECORD) {
        size_t got = 0;
        io->reads++;
        if (SSL_read_ex(c->ssl, buf + *n, room - *n, &got) == 1) {
            *n += got;
            continue;
        }
        int e = SSL_get_error(c->ssl, 0);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        if (*n > 0) /* hand over what came first; the error shows on the next read */
            break;
        if (e != SSL_ERROR_ZERO_RETURN)
            snprintf(io->tls_err, sizeof(io->tls_err), "TLS read: %s",
                     ERR_reason_error_string(ERR_peek_last_error()) ?: "connection closed");
        ERR_clear_error();
        return e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL ? -ECONNRESET : -EPROTO;
    }
    *more = true;
    return 0;
}

int io_read(struct bench_io *io, struct bench *b, struct conn *c, io_packet_fn fn)
{
    /* A few rounds at most, so one busy connection cannot starve the others; but never leave
     * decrypted bytes inside OpenSSL, where epoll cannot see them. */
    for (int round = 0; round < 4 || (c->ssl && SSL_has_pending(c->ssl)); round++) {
        size_t have = c->carry_len;
        if (have >= io->scratch_cap)
            return -EMSGSIZE;
        if (have)
            memcpy(io->scratch, c->carry, have);
        size_t room = io->scratch_cap - have, n;
        bool more;
        int rc = io_recv(io, c, io->scratch + have, room, &n, &more);
        if (rc < 0)
            return rc;
        if (n == 0)
            return 0;
        io->bytes_in += (uint64_t)n;
        size_t total = have + n, off = 0;
        while (off < total) {
            struct mqtt_packet pkt;
            rc = codec_decode_level(io->scratch + off, total - off, IO_MAX_PACKET, io->level, &pkt);
            if (rc == CODEC_INCOMPLETE)
                break;
            if (rc != CODEC_OK)
                return -EPROTO;
            if (fn(b, c, &pkt) < 0)
                return -EPROTO;
            off += pkt.total_len;
        }
        if (c->fd < 0) /* the callback closed it */
            return 0;
        rc = io_save_carry(c, io->scratch + off, total - off);
        if (rc < 0)
            return rc;
        if (!more)
            break;
    }
    return 0;
}

int io_tls_init(struct bench_io *io, const char *cafile, const char *name, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "TLS: cannot create a context");
        return -1;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Read ahead: one recv() takes several records, as plain TCP takes a whole buffer. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024);
    if (cafile && *cafile) {
        if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
            snprintf(err, errlen, "TLS: cannot load --cafile %s: %s", cafile,
                     ERR_reason_error_string(ERR_peek_last_error()) ?: "unknown error");
            SSL_CTX_free(ctx);
            return -1;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (name && *name)
        snprintf(io->tls_name, sizeof(io->tls_name), "%s", name);
    io->tls = ctx;
    return 0;
}

int io_tls_handshake(struct bench_io *io, struct conn *c)
{
    if (!c->ssl) {
        if (!(c->ssl = SSL_new(io->tls)) || SSL_set_fd(c->ssl, c->fd) != 1) {
            snprintf(io->tls_err, sizeof(io->tls_err), "TLS: cannot create a connection");
            return -EPROTO;
        }
        SSL_set_connect_state(c->ssl);
        if (io->tls_name[0] && (SSL_set_tlsext_host_name(c->ssl, io->tls_name) != 1 ||
                                SSL_set1_host(c->ssl, io->tls_name) != 1)) {
            snprintf(io->tls_err, sizeof(io->tls_err), "TLS: bad --tls-name");
            return -EPROTO;
        }
        c->state = CS_TLS;
    }
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        if (!io->tls_desc[0])
            snprintf(io->tls_desc, sizeof(io->tls_desc), "%s/%s", SSL_get_version(c->ssl),
                     SSL_get_cipher_name(c->ssl));
        return io_set_out(io, c, io_pending(c) > 0) < 0 ? -EPROTO : 1;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return io_set_out(io, c, e == SSL_ERROR_WANT_WRITE) < 0 ? -EPROTO : 0;
    long v = SSL_get_verify_result(c->ssl);
    snprintf(io->tls_err, sizeof(io->tls_err), "TLS handshake: %s",
             v != X509_V_OK ? X509_verify_cert_error_string(v)
                            : ERR_reason_error_string(ERR_peek_last_error()) ?: "connection closed");
    ERR_clear_error();
    return -EPROTO;
}

void io_close(struct bench_io *io, struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(io->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->want_out = false;
    SSL_free(c->ssl);
    c->ssl = NULL;
    free(c->out);
    free(c->carry);
    c->out = c->carry = NULL;
    c->out_off = c->out_len = c->out_cap = 0;
    c->carry_len = c->carry_cap = 0;
}
