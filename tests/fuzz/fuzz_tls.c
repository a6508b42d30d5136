/*
 * fuzz_tls.c - libFuzzer target for what a TLS listener does with a client's first bytes.
 *
 * A server SSL over two memory BIOs, as node/transport_tls.c sets one up (TLS 1.2 and 1.3, ALPN
 * "mqtt" offered, session cache on), is fed the input as ciphertext in chunks of varying size (the
 * first byte picks them), driving the handshake and then SSL_read the way a stream's reads do, and
 * draining what it writes. Anything but a clean failure (a crash, a leak, a sanitizer report) is a
 * finding. The certificate is a self-signed P-256 one made once in memory.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* One self-signed certificate and key for every run (made at the first input). */
static SSL_CTX *fuzz_ctx(void)
{
    static SSL_CTX *ctx;
    if (ctx)
        return ctx;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    ctx = SSL_CTX_new(TLS_server_method());
    if (!key || !cert || !ctx)
        abort();
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    if (!X509_sign(cert, key, EVP_sha256()) || SSL_CTX_use_certificate(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, key) != 1)
        abort();
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"sol", 3);
    X509_free(cert);
    EVP_PKEY_free(key);
    return ctx;
}

/* Move what the server wrote out of its write BIO (to nowhere). */
static void fuzz_drain(BIO *wbio)
{
    unsigned char buf[4096];
    while (BIO_read(wbio, buf, sizeof(buf)) > 0)
        ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char plain[16384];
    SSL *ssl = SSL_new(fuzz_ctx());
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    if (!ssl || !rbio || !wbio)
        abort();
    SSL_set_bio(ssl, rbio, wbio);
    SSL_set_accept_state(ssl);
    size_t chunk = size ? (size_t)data[0] % 64 + 1 : 1;
    bool done = false, failed = false;
    for (size_t off = size ? 1 : 0; off < size && !failed; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        BIO_write(rbio, data + off, (int)n);
        if (!done) {
            int rc = SSL_do_handshake(ssl);
            fuzz_drain(wbio);
            if (rc == 1)
                done = true;
            else if (SSL_get_error(ssl, rc) != SSL_ERROR_WANT_READ)
                failed = true;
        }
        while (done && !failed) {
            int rc = SSL_read(ssl, plain, sizeof(plain));
            if (rc > 0)
                continue;
            failed = SSL_get_error(ssl, rc) != SSL_ERROR_WANT_READ;
            break;
        }
        fuzz_drain(wbio);
    }
    ERR_clear_error();
    SSL_free(ssl);
    return 0;
}
