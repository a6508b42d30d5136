/*
 * cluster_tls.c - mutual TLS on node links (nng's tls+tcp transport, mbedtls underneath).
 *
 * With --cluster-certfile/--cluster-keyfile/--cluster-cafile set, the cluster port listens on
 * tls+tcp and every peer is dialed over tls+tcp; both ends present their certificate and require
 * one signed by the CA (NNG_TLS_AUTH_MODE_REQUIRED), so a connection without a trusted certificate
 * never carries a frame. A dialer expects the server's certificate to name the peer's node name
 * (CN or DNS subjectAltName), so a certificate for another name fails the handshake. A peer is
 * trusted (listed as a member, its frames handled) only once a link dialed to it authenticated.
 * nng 1.5.2 does not hand the client certificate's name to the listener (no NNG_OPT_TLS_PEER_CN):
 * the listener checks the CA alone; the name is bound by our own dial, and frames naming a peer are
 * taken only from a link coming from that peer's address (docs/cluster.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"

/* Read a whole PEM file into a NUL-terminated string; NULL (why in err) if it cannot be read. */
static char *tls_read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f) {
        snprintf(err, errlen, "cannot open %s", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || n > 1024 * 1024 ||
        fseek(f, 0, SEEK_SET) != 0) {
        snprintf(err, errlen, "cannot read %s", path);
        goto cleanup;
    }
    buf = malloc((size_t)n + 1);
    if (!buf) {
        snprintf(err, errlen, "out of memory reading %s", path);
        goto cleanup;
    }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        snprintf(err, errlen, "cannot read %s", path);
        free(buf);
        buf = NULL;
        goto cleanup;
    }
    buf[n] = '\0';
cleanup:
    fclose(f);
    return buf;
}

/* A TLS config of either mode from the loaded files: our certificate and key, the CA, peer
 * certificates required. server_name (client mode only) is the name the server must prove. */
static nng_tls_config *tls_config_new(const struct cluster_tls *t, nng_tls_mode mode,
                                      const char *server_name, char *err, size_t errlen)
{
    nng_tls_config *cfg = NULL;
    int rv;
    const char *what = "allocate";
    if ((rv = nng_tls_config_alloc(&cfg, mode)) != 0)
        goto fail;
    what = "CA (cluster_cafile)";
    if ((rv = nng_tls_config_ca_chain(cfg, t->ca, NULL)) != 0)
        goto fail;
    what = "certificate and key (cluster_certfile, cluster_keyfile)";
    if ((rv = nng_tls_config_own_cert(cfg, t->cert, t->key, NULL)) != 0)
        goto fail;
    what = "authentication mode";
    if ((rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0)
        goto fail;
    what = "server name";
    if (server_name && (rv = nng_tls_config_server_name(cfg, server_name)) != 0)
        goto fail;
    return cfg;
fail:
    snprintf(err, errlen, "cluster TLS: %s: %s", what, nng_strerror(rv));
    if (cfg)
        nng_tls_config_free(cfg);
    return NULL;
}

/* Load the three files into t and check that they make a usable server config; t is left empty on
 * error. */
static int tls_load(struct cluster_tls *t, const struct cluster_config *cfg, char *err,
                    size_t errlen)
{
    memset(t, 0, sizeof(*t));
    t->cert = tls_read_file(cfg->cluster_certfile, err, errlen);
    t->key = t->cert ? tls_read_file(cfg->cluster_keyfile, err, errlen) : NULL;
    t->ca = t->key ? tls_read_file(cfg->cluster_cafile, err, errlen) : NULL;
    if (t->ca)
        t->server = tls_config_new(t, NNG_TLS_MODE_SERVER, NULL, err, errlen);
    if (t->server)
        return 0;
    cluster_tls_free(t);
    return -1;
}

/* Free what t holds (its server config: the listener keeps its own hold). */
void cluster_tls_free(struct cluster_tls *t)
{
    if (t->server)
        nng_tls_config_free(t->server);
    free(t->cert);
    free(t->key);
    free(t->ca);
    memset(t, 0, sizeof(*t));
}

int cluster_tls_init(struct cluster *c, char *err, size_t errlen)
{
    c->tls_on = c->cfg->cluster_certfile[0] != '\0';
    if (!c->tls_on)
        return 0;
    return tls_load(&c->tls, c->cfg, err, errlen);
}

const char *cluster_tls_scheme(const struct cluster *c)
{
    return c->tls_on ? "tls+tcp" : "tcp";
}

int cluster_tls_listener(struct cluster *c, nng_stream_listener *l, char *err, size_t errlen)
{
    if (!c->tls_on)
        return 0;
    int rv = nng_stream_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, c->tls.server);
    if (rv != 0) {
        snprintf(err, errlen, "cluster TLS: listener: %s", nng_strerror(rv));
        return -1;
    }
    return 0;
}

/* nng thread: a pipe to the peer was added, i.e. its TLS handshake passed (certificate from our
 * CA, naming the peer). The peer is trusted from now on. */
static void tls_pipe_added(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    (void)pipe;
    (void)ev;
    struct peer *p = arg;
    atomic_store(&p->verified, true);
}

int cluster_tls_dialer(struct peer *p, nng_dialer d)
{
    struct cluster *c = p->c;
    char err[256];
    if (!c->tls_on)
        return 0;
    nng_tls_config *cfg = tls_config_new(&c->tls, NNG_TLS_MODE_CLIENT, p->name, err, sizeof(err));
    if (!cfg) {
        log_warn(c->log, "cluster: dial %s: %s", p->name, err);
        return NNG_ENOMEM;
    }
    int rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
    nng_tls_config_free(cfg); /* the dialer holds its own reference */
    if (rv == 0)
        rv = nng_pipe_notify(p->sock, NNG_PIPE_EV_ADD_POST, tls_pipe_added, p);
    return rv;
}

bool cluster_peer_trusted(const struct cluster *c, const struct peer *p)
{
    return !c->tls_on || atomic_load(&p->verified);
}

bool cluster_tls_sender_at(const struct cluster *c, const struct peer *p, const char *from)
{
    return !c->tls_on || strcmp(p->host, from) == 0;
}

bool cluster_member_listed(struct cluster *c, const struct member *m)
{
    if (!c->tls_on || strcmp(m->name, c->self) == 0)
        return true;
    struct peer *p = cluster_peer_find(c, m->name);
    return p && cluster_peer_trusted(c, p);
}

struct tls_count {
    struct cluster *c;
    enum member_state state;
    size_t n;
};

/* membership_foreach: count the listed members in one state. */
static void tls_count_one(const struct member *m, void *ctx)
{
    struct tls_count *tc = ctx;
    if (m->state == tc->state && cluster_member_listed(tc->c, m))
        tc->n++;
}

size_t cluster_members_listed(struct cluster *c, enum member_state state)
{
    if (!c->ms)
        return state == MEMBER_ALIVE;
    if (!c->tls_on)
        return membership_count(c->ms, state);
    struct tls_count tc = {c, state, 0};
    membership_foreach(c->ms, tls_count_one, &tc);
    return tc.n;
}

void cluster_tls_tick(struct cluster *c)
{
    if (!c->tls_on || !c->ms)
        return;
    for (struct peer *p = c->peers; p; p = p->next) {
        if (p->listed || !atomic_load(&p->verified))
            continue;
        p->listed = true;
        log_info(c->log, "cluster: node link to %s authenticated (its certificate names it)",
                 p->name);
        const struct member *m = membership_find(c->ms, p->name);
        if (m)
            status_sys_member(c, m);
    }
}

void cluster_tls_reload(struct cluster *c)
{
    char err[512];
    struct cluster_tls t;
    if (!c->tls_on)
        return;
    if (tls_load(&t, c->cfg, err, sizeof(err)) != 0) {
        log_warn(c->log, "cluster: node link certificates not re-read, keeping the old ones: %s",
                 err);
        return;
    }
    int rv = c->rx ? nng_stream_listener_set_ptr(c->rx, NNG_OPT_TLS_CONFIG, t.server) : 0;
    if (rv != 0) {
        log_warn(c->log,
                 "cluster: node link certificates re-read for links we dial; the listener keeps "
                 "the old ones until a restart (%s)",
                 nng_strerror(rv));
    } else {
        log_info(c->log, "cluster: node link certificates re-read");
    }
    cluster_tls_free(&c->tls);
    c->tls = t;
}
