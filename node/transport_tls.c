/*
 * transport_tls.c - TLS over TCP: a listener's SSL_CTX (certificate, key, CA, versions, ciphers,
 * reloaded on SIGHUP), and the stream ops of an accepted TLS connection.
 *
 * OpenSSL never touches the socket: ciphertext read by libuv goes into a memory BIO (rbio) and the
 * handshake or SSL_read takes it from there; what OpenSSL produces lands in another memory BIO
 * (wbio) that we move to the socket with uv_try_write / uv_write. Nothing blocks the loop.
 *
 * A stream is one allocation: struct tls_stream, then the user's state. The handshake runs before
 * the user sees a byte and must finish within TLS_HANDSHAKE_MS. Writes: try_write encrypts and
 * takes everything while the socket keeps up (no ciphertext queued), else 0; write encrypts the
 * user's bytes at once (or after the handshake) and hands the buffer back once all ciphertext
 * queued so far is on the socket.
 */
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "transport_int.h"

/* A client that has not finished its handshake by then is closed. */
#define TLS_HANDSHAKE_MS 10000

/* A TLS listener's settings (copied: they are read again on reload) and its current context. */
struct tls_listener {
    char certfile[256], keyfile[256], cafile[256], capath[256], ciphers[256];
    bool require_certificate, use_identity;
    int min_version;
    SSL_CTX *ctx; /* one reference; every SSL made from it holds another */
};

struct tls_stream {
    struct transport base;
    uv_tcp_t tcp; /* tcp.data: the list, or NULL for a refused stream (no events) */
    uv_timer_t
        timer; /* the handshake deadline, then "deliver what is decrypted" after read_start */
    struct listeners *ls;
    struct listener *l;
    SSL *ssl;
    BIO *rbio, *wbio;  /* owned by ssl */
    uint8_t *user_buf; /* a background write's buffer, handed back once queued_writes is 0 */
    const uint8_t *held;
    size_t held_len;               /* bytes of a write waiting for the handshake */
    int queued_writes;             /* our uv_writes of ciphertext not yet completed */
    int open_handles;              /* tcp and timer: freed when both closed */
    struct transport_proxy *proxy; /* its listener's proxy setting: read before the handshake */
    bool handshaken, reading, ended, closing;
};

#define TLS_USER_OFFSET                                                                            \
    ((sizeof(struct tls_stream) + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1))

struct tls_write {
    uv_write_t req;
    struct tls_stream *s;
    uint8_t data[]; /* the ciphertext */
};

static inline void *tls_user(struct tls_stream *s)
{
    return (char *)s + TLS_USER_OFFSET;
}

/* OpenSSL's last error as text (empty queue: fallback). */
static const char *tls_errstr(char *buf, size_t len, const char *fallback)
{
    unsigned long e = ERR_get_error();
    if (!e)
        return fallback;
    ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

static int tls_on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg);

/* Build a context from the listener's files: every error names the file or setting. */
static SSL_CTX *tls_ctx_new(const struct tls_listener *t, char *err, size_t errlen)
{
    char e[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        errf(err, errlen, "TLS: out of memory");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, t->min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"sol", 3);
    if (SSL_CTX_use_certificate_chain_file(ctx, t->certfile) != 1) {
        errf(err, errlen, "certfile: cannot load '%s': %s", t->certfile,
             tls_errstr(e, sizeof(e), "unreadable"));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, t->keyfile, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        errf(err, errlen, "keyfile: cannot load '%s': %s", t->keyfile,
             tls_errstr(e, sizeof(e), "unreadable"));
        goto fail;
    }
    if ((t->cafile[0] || t->capath[0]) &&
        SSL_CTX_load_verify_locations(ctx, t->cafile[0] ? t->cafile : NULL,
                                      t->capath[0] ? t->capath : NULL) != 1) {
        errf(err, errlen, "cafile/capath: cannot load '%s': %s",
             t->cafile[0] ? t->cafile : t->capath, tls_errstr(e, sizeof(e), "unreadable"));
        goto fail;
    }
    if (t->ciphers[0] && SSL_CTX_set_cipher_list(ctx, t->ciphers) != 1) {
        errf(err, errlen, "ciphers: invalid cipher list '%s'", t->ciphers);
        goto fail;
    }
    SSL_CTX_set_alpn_select_cb(ctx, tls_on_alpn, NULL);
    if (t->require_certificate)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    else if (t->cafile[0] || t->capath[0])
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

/* Copy one path setting; NULL counts as "". */
static void tls_copy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

int tls_listener_init(struct listener *l, const struct listener_config *cfg, char *err,
                      size_t errlen)
{
    struct tls_listener *t = calloc(1, sizeof(*t));
    if (!t) {
        errf(err, errlen, "out of memory");
        return -1;
    }
    tls_copy(t->certfile, sizeof(t->certfile), cfg->certfile);
    tls_copy(t->keyfile, sizeof(t->keyfile), cfg->keyfile);
    tls_copy(t->cafile, sizeof(t->cafile), cfg->cafile);
    tls_copy(t->capath, sizeof(t->capath), cfg->capath);
    tls_copy(t->ciphers, sizeof(t->ciphers), cfg->ciphers);
    t->require_certificate = cfg->require_certificate;
    t->use_identity = cfg->use_identity_as_username;
    t->min_version = cfg->tls_min_version;
    l->tls = t; /* freed with the listener even when the context fails */
    t->ctx = tls_ctx_new(t, err, errlen);
    return t->ctx ? 0 : -1;
}

int tls_listener_reload(struct listener *l, char *err, size_t errlen)
{
    SSL_CTX *ctx = tls_ctx_new(l->tls, err, errlen);
    if (!ctx)
        return -1;
    SSL_CTX_free(l->tls->ctx); /* open streams' SSLs keep their reference to the old one */
    l->tls->ctx = ctx;
    return 0;
}

void tls_listener_free(struct listener *l)
{
    if (!l->tls)
        return;
    SSL_CTX_free(l->tls->ctx);
    free(l->tls);
    l->tls = NULL;
}

static void tls_on_close(uv_handle_t *h)
{
    struct tls_stream *s = h->data;
    if (--s->open_handles > 0)
        return;
    if (s->ls) {
        if (s->user_buf)
            s->ls->ev->written(tls_user(s), s->user_buf, "connection closed");
        s->ls->ev->closed(tls_user(s));
    }
    SSL_free(s->ssl);
    transport_proxy_free(s->proxy);
    free(s);
}

/* Close both handles; the stream is freed when both are. */
static void tls_close_handles(struct tls_stream *s)
{
    s->closing = true;
    uv_read_stop((uv_stream_t *)&s->tcp);
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->tcp, tls_on_close);
    uv_close((uv_handle_t *)&s->timer, tls_on_close);
}

/* Tell the user the stream ended, once; it closes it. Before it has been told anything (the
 * handshake failed) it is told too: it owns the stream from accepted on. */
static void tls_end(struct tls_stream *s, const char *why)
{
    if (s->ended || s->closing)
        return;
    s->ended = true;
    uv_read_stop((uv_stream_t *)&s->tcp);
    uv_timer_stop(&s->timer);
    s->ls->ev->ended(tls_user(s), why);
}

static void tls_on_write(uv_write_t *req, int status)
{
    struct tls_write *w = (struct tls_write *)req;
    struct tls_stream *s = w->s;
    free(w);
    s->queued_writes--;
    if (status < 0 && !s->closing)
        tls_end(s, uv_strerror(status));
    if (s->queued_writes == 0 && s->user_buf && !s->held_len && !s->closing) {
        uint8_t *buf = s->user_buf;
        s->user_buf = NULL;
        s->ls->ev->written(tls_user(s), buf, status < 0 ? uv_strerror(status) : NULL);
    }
}

/* Move what OpenSSL wrote to wbio onto the socket: as much as it takes now, the rest queued. */
static int tls_flush(struct tls_stream *s)
{
    size_t pending;
    while ((pending = BIO_ctrl_pending(s->wbio)) > 0) {
        struct tls_write *w = malloc(sizeof(*w) + pending);
        if (!w)
            return UV_ENOMEM;
        int n = BIO_read(s->wbio, w->data, (int)pending);
        if (n <= 0) {
            free(w);
            return 0;
        }
        uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
        int done = 0;
        if (s->queued_writes == 0) {
            done = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
            if (done == UV_EAGAIN || done == UV_ENOSYS)
                done = 0;
            if (done < 0) {
                free(w);
                return done;
            }
        }
        if (done == n) {
            free(w);
            continue;
        }
        b = uv_buf_init((char *)w->data + done, (unsigned)(n - done));
        w->s = s;
        int rc = uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, tls_on_write);
        if (rc < 0) {
            free(w);
            return rc;
        }
        s->queued_writes++;
    }
    return 0;
}

/* Encrypt all of data into wbio (a memory BIO takes everything). */
static int tls_encrypt(struct tls_stream *s, const uint8_t *data, size_t len)
{
    while (len > 0) {
        int n = SSL_write(s->ssl, data, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n <= 0) {
            ERR_clear_error();
            return UV_EPROTO;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Hand decrypted records to the user while it reads. */
static void tls_deliver(struct tls_stream *s)
{
    char e[160];
    while (s->reading && !s->ended && !s->closing) {
        uint8_t *p = NULL;
        size_t len = 0;
        if (s->ls->ev->read_buf(tls_user(s), &p, &len) < 0) {
            tls_end(s, "out of memory");
            return;
        }
        if (!p) {
            p = s->ls->read_buf;
            len = TRANSPORT_READ_CHUNK;
        }
        int n = SSL_read(s->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n > 0) {
            s->ls->ev->data(tls_user(s), p, (size_t)n);
            continue;
        }
        int rc = SSL_get_error(s->ssl, n);
        if (rc == SSL_ERROR_WANT_READ)
            break;
        tls_end(s, rc == SSL_ERROR_ZERO_RETURN ? "connection closed by client"
                                               : tls_errstr(e, sizeof(e), "TLS error"));
        return;
    }
    if (!s->closing && tls_flush(s) < 0)
        tls_end(s, "write failed");
}

/* Drive the handshake with what arrived; once done, pending writes go out and data flows. */
static void tls_handshake(struct tls_stream *s)
{
    char e[160], peer[64];
    int n = SSL_do_handshake(s->ssl);
    if (tls_flush(s) < 0) {
        tls_end(s, "write failed");
        return;
    }
    if (n != 1) {
        if (SSL_get_error(s->ssl, n) == SSL_ERROR_WANT_READ)
            return;
        const char *why = tls_errstr(e, sizeof(e), "TLS handshake failed");
        log_info(s->ls->log, "TLS handshake with %s failed: %s",
                 tcp_peer_name(&s->tcp, peer, sizeof(peer)), why);
        tls_end(s, "TLS handshake failed");
        return;
    }
    s->handshaken = true;
    uv_timer_stop(&s->timer);
    if (s->held_len) {
        const uint8_t *d = s->held;
        size_t len = s->held_len;
        s->held_len = 0;
        if (tls_encrypt(s, d, len) < 0 || tls_flush(s) < 0) {
            tls_end(s, "write failed");
            return;
        }
        if (s->queued_writes == 0 && s->user_buf) {
            uint8_t *buf = s->user_buf;
            s->user_buf = NULL;
            s->ls->ev->written(tls_user(s), buf, NULL);
        }
    }
    if (!s->reading)
        uv_read_stop((uv_stream_t *)&s->tcp); /* the user reads when it is ready */
}

static void tls_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct tls_stream *s = h->data;
    (void)suggested;
    if (s->proxy && s->proxy->r) { /* the PROXY header first, never beyond it */
        struct proxy_reader *r = s->proxy->r;
        *buf = uv_buf_init((char *)r->buf + r->len, (unsigned)proxy_want(r));
        return;
    }
    *buf = uv_buf_init((char *)s->ls->read_buf, TRANSPORT_READ_CHUNK);
}

/* Ciphertext arrived in the shared buffer: into rbio, then the handshake or the user's data. */
static void tls_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct tls_stream *s = st->data;
    if (nread == 0 || s->closing || s->ended)
        return;
    if (nread < 0) {
        tls_end(s, nread == UV_EOF ? "connection closed by client" : uv_strerror((int)nread));
        return;
    }
    if (s->proxy && s->proxy->r) {
        if (transport_proxy_read(s->proxy, &s->tcp, s->ls->log, (size_t)nread) < 0)
            tls_end(s, "invalid PROXY protocol header");
        return;
    }
    if (BIO_write(s->rbio, buf->base, (int)nread) != (int)nread) {
        tls_end(s, "out of memory");
        return;
    }
    if (!s->handshaken) {
        tls_handshake(s);
        if (!s->handshaken || s->ended || s->closing)
            return;
    }
    tls_deliver(s);
}

/* The handshake deadline passed, or (after the handshake) read_start asked for what is buffered. */
static void tls_on_timer(uv_timer_t *h)
{
    struct tls_stream *s = h->data;
    char peer[64];
    if (s->closing || s->ended)
        return;
    if (!s->handshaken) {
        log_info(s->ls->log, "TLS handshake with %s timed out",
                 tcp_peer_name(&s->tcp, peer, sizeof(peer)));
        tls_end(s, "TLS handshake timed out");
        return;
    }
    if (s->user_buf && !s->queued_writes) {
        uint8_t *buf = s->user_buf;
        s->user_buf = NULL;
        s->ls->ev->written(tls_user(s), buf, NULL);
        if (s->closing || s->ended)
            return;
    }
    tls_deliver(s);
}

static int tls_read_start(struct transport *t)
{
    struct tls_stream *s = (struct tls_stream *)t;
    s->reading = true;
    if (!s->handshaken)
        return 0; /* the handshake reads already */
    int rc = uv_read_start((uv_stream_t *)&s->tcp, tls_on_alloc, tls_on_read);
    if (rc == 0 && SSL_pending(s->ssl) + BIO_ctrl_pending(s->rbio) > 0)
        uv_timer_start(&s->timer, tls_on_timer, 0, 0); /* not from inside the user's call */
    return rc;
}

static void tls_read_stop(struct transport *t)
{
    struct tls_stream *s = (struct tls_stream *)t;
    s->reading = false;
    if (s->handshaken)
        uv_read_stop((uv_stream_t *)&s->tcp);
}

static int tls_try_write(struct transport *t, const uint8_t *data, size_t len)
{
    struct tls_stream *s = (struct tls_stream *)t;
    if (!s->handshaken || s->queued_writes || s->user_buf || s->closing)
        return 0;
    int rc = tls_encrypt(s, data, len);
    if (rc == 0)
        rc = tls_flush(s);
    return rc < 0 ? rc : (int)len;
}

static int tls_write(struct transport *t, uint8_t *buf, const uint8_t *data, size_t len)
{
    struct tls_stream *s = (struct tls_stream *)t;
    if (s->user_buf || s->closing)
        return UV_EBUSY;
    s->user_buf = buf;
    if (!s->handshaken) {
        s->held = data;
        s->held_len = len;
        return 0;
    }
    int rc = tls_encrypt(s, data, len);
    if (rc == 0)
        rc = tls_flush(s);
    if (rc < 0) {
        s->user_buf = NULL;
        return rc;
    }
    if (s->queued_writes == 0) /* all on the socket already: reported from the loop, not here */
        uv_timer_start(&s->timer, tls_on_timer, 0, 0);
    return 0;
}

static void tls_close(struct transport *t)
{
    struct tls_stream *s = (struct tls_stream *)t;
    if (s->closing)
        return;
    if (s->handshaken && !s->queued_writes) { /* a close_notify, if the socket takes it now */
        SSL_shutdown(s->ssl);
        tls_flush(s);
    }
    ERR_clear_error();
    tls_close_handles(s);
}

static const char *tls_peer(const struct transport *t, char *buf, size_t len)
{
    const struct tls_stream *s = (const struct tls_stream *)t;
    if (s->proxy && s->proxy->peer[0]) {
        snprintf(buf, len, "%s", s->proxy->peer);
        return buf;
    }
    return tcp_peer_name(&((const struct tls_stream *)t)->tcp, buf, len);
}

/* The client certificate's subject CN, when the listener uses it as the username ("" when the
 * certificate has none). */
static const char *tls_identity(const struct transport *t, char *buf, size_t len)
{
    const struct tls_stream *s = (const struct tls_stream *)t;
    if (!s->l->tls->use_identity || !s->handshaken)
        return NULL;
    X509 *cert = SSL_get1_peer_certificate(s->ssl);
    int n =
        cert ? X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, (int)len)
             : -1;
    X509_free(cert);
    if (n <= 0 || (size_t)n >= len || memchr(buf, '\0', (size_t)n))
        buf[0] = '\0'; /* wanted but missing (or not a plain name): the client is refused */
    return buf;
}

static const struct transport_ops tls_ops = {
    .read_start = tls_read_start,
    .read_stop = tls_read_stop,
    .try_write = tls_try_write,
    .write = tls_write,
    .close = tls_close,
    .peer = tls_peer,
    .identity = tls_identity,
};

/* ALPN: "mqtt" when the client offers it; a client offering only others goes on without. */
static int tls_on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char mqtt[] = "\x04mqtt";
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto((unsigned char **)out, outlen, mqtt, sizeof(mqtt) - 1, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_OK;
    return SSL_TLSEXT_ERR_NOACK;
}

/* Set up a stream's SSL with its two memory BIOs. */
static int tls_stream_ssl(struct tls_stream *s, SSL_CTX *ctx)
{
    if (!(s->ssl = SSL_new(ctx)))
        return -1;
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    if (!s->rbio || !s->wbio) {
        BIO_free(s->rbio);
        BIO_free(s->wbio);
        return -1;
    }
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    SSL_set_accept_state(s->ssl);
    return 0;
}

void tls_on_connection(uv_stream_t *server, int status)
{
    struct listener *l = server->data;
    struct listeners *ls = l->streams;
    if (status < 0 || !l->accepting)
        return;
    struct tls_stream *s = calloc(1, TLS_USER_OFFSET + ls->user_size);
    if (!s) {
        log_error(ls->log, "out of memory accepting a connection");
        return;
    }
    s->base.ops = &tls_ops;
    s->l = l;
    if ((l->proxy && !(s->proxy = transport_proxy_new())) || uv_tcp_init(ls->loop, &s->tcp) < 0) {
        transport_proxy_free(s->proxy);
        free(s);
        return;
    }
    uv_timer_init(ls->loop, &s->timer);
    s->tcp.data = s->timer.data = s;
    s->open_handles = 2;
    if (uv_accept(server, (uv_stream_t *)&s->tcp) < 0 || tls_stream_ssl(s, l->tls->ctx) < 0) {
        tls_close_handles(s);
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    s->ls = ls;
    if (ls->ev->accepted(ls->ctx, &s->base, tls_user(s)) < 0) {
        s->ls = NULL;
        tls_close_handles(s);
        return;
    }
    if (s->closing)
        return;
    uv_timer_start(&s->timer, tls_on_timer, TLS_HANDSHAKE_MS, 0);
    if (uv_read_start((uv_stream_t *)&s->tcp, tls_on_alloc, tls_on_read) < 0)
        tls_end(s, "read start failed");
}
