/*
 * membership.c - SWIM + Lifeguard membership: lifecycle, public accessors, the member table, the
 * rules for merging a state record learned from the network, and the broadcast (piggyback) queue.
 *
 * Merge rules (name = identity; incarnation orders the claims about one member):
 *
 *   alive(i)    accepted if i > ours (a higher incarnation may also carry a new address), or the
 *               member is new
 *   suspect(i)  accepted if i >= ours and the member is alive; for a suspect member, a suspicion
 *               with the same incarnation from another node is a Lifeguard confirmation that
 *               shortens the timeout
 *   dead(i)     accepted if i >= ours and the member is not already dead or left; from a push-pull
 *               a remote "dead" only makes the member suspect (one stale view must not kill a
 *               member)
 *   left(i)     accepted if i >= ours
 *
 * Any claim about ourselves that is newer than our state, or non-alive at our incarnation, is
 * refuted by broadcasting alive with a higher incarnation (unless we are leaving).
 */
#include "membership_int.h"
#include "hash.h"

#include <math.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *member_state_name(enum member_state s)
{
    switch (s) {
    case MEMBER_ALIVE:
        return "alive";
    case MEMBER_SUSPECT:
        return "suspect";
    case MEMBER_DEAD:
        return "dead";
    case MEMBER_LEFT:
        return "left";
    }
    return "unknown";
}

/* xorshift64*: per-instance randomness for shuffles and target choice (no global state). */
uint64_t membership_rand(struct membership *m)
{
    uint64_t x = m->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    m->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* To remember which nodes confirmed a suspicion without storing their names. */
uint64_t membership_hash(const char *s)
{
    return hash_fnv1a_str(s);
}

struct mb_node *membership_node(const struct membership *m, const char *name)
{
    for (size_t i = 0; i < m->n_nodes; i++)
        if (strcmp(m->nodes[i]->pub.name, name) == 0)
            return m->nodes[i];
    return NULL;
}

/* Members that count for timeouts and retransmit limits: alive or suspect, self included. */
size_t membership_live_count(const struct membership *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_nodes; i++)
        if (m->nodes[i]->pub.state == MEMBER_ALIVE || m->nodes[i]->pub.state == MEMBER_SUSPECT)
            n++;
    return n;
}

void membership_state_of(const struct mb_node *n, struct mb_state *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", n->pub.name);
    snprintf(out->host, sizeof(out->host), "%s", n->pub.host);
    out->port = n->pub.port;
    out->incarnation = n->pub.incarnation;
    out->state = n->pub.state;
}

/* A cluster of more than one node whose gossip anyone on the network can read and forge: said once. */
static void membership_warn_clear(struct membership *m)
{
    if (m->keys || m->clear_warned)
        return;
    m->clear_warned = true;
    log_warn(m->log, "cluster gossip is not encrypted: set --cluster-key-file");
}

/* Tell the owner about a change; old is MEMBER_DEAD for a member never seen before. */
static void notify(struct membership *m, const struct mb_node *n, enum member_state old)
{
    if (m->on_change)
        m->on_change(m->ctx, &n->pub, old);
}

/* Change a member's state, resetting suspicion bookkeeping. Does not notify. */
void membership_set_state(struct membership *m, struct mb_node *n, enum member_state st)
{
    if (n->pub.state != st)
        n->state_since = uv_now(m->loop);
    n->pub.state = st;
    if (st != MEMBER_SUSPECT) {
        n->suspect_deadline = 0;
        n->n_confirm = 0;
    }
}

/* Queue a record for piggybacking; it replaces any queued record about the same member. */
void membership_queue_bcast(struct membership *m, const struct mb_state *s)
{
    for (size_t i = 0; i < m->n_bq; i++) {
        if (strcmp(m->bq[i].s.name, s->name) == 0) {
            m->bq[i].s = *s;
            m->bq[i].transmits = 0;
            return;
        }
    }
    if (m->n_bq == m->cap_bq) {
        size_t cap = m->cap_bq ? m->cap_bq * 2 : 16;
        struct mb_bcast *bq = realloc(m->bq, cap * sizeof(*bq));
        if (!bq) {
            log_warn(m->log, "membership: out of memory queueing a broadcast");
            return;
        }
        m->bq = bq;
        m->cap_bq = cap;
    }
    m->bq[m->n_bq].s = *s;
    m->bq[m->n_bq].transmits = 0;
    m->n_bq++;
}

/* Add a member we just learned about; NULL on allocation failure. */
static struct mb_node *node_add(struct membership *m, const struct mb_state *s)
{
    struct sockaddr_storage addr;
    if (membership_addr_parse(s->host, s->port, &addr) != 0)
        return NULL;
    if (m->n_nodes == m->cap_nodes) {
        size_t cap = m->cap_nodes ? m->cap_nodes * 2 : 16;
        struct mb_node **nodes = realloc(m->nodes, cap * sizeof(*nodes));
        if (!nodes)
            return NULL;
        m->nodes = nodes;
        m->cap_nodes = cap;
    }
    struct mb_node *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    snprintf(n->pub.name, sizeof(n->pub.name), "%s", s->name);
    snprintf(n->pub.host, sizeof(n->pub.host), "%s", s->host);
    n->pub.port = s->port;
    n->pub.incarnation = s->incarnation;
    n->pub.state = MEMBER_ALIVE;
    n->addr = addr;
    n->state_since = uv_now(m->loop);
    n->last_heard = n->state_since;
    /* Insert at a random position after self so probing order stays unpredictable (SWIM). */
    size_t pos = 1 + (size_t)(membership_rand(m) % m->n_nodes); /* 1 .. n_nodes */
    m->nodes[m->n_nodes] = n;
    if (pos < m->n_nodes) {
        m->nodes[m->n_nodes] = m->nodes[pos];
        m->nodes[pos] = n;
    }
    m->n_nodes++;
    return n;
}

/* Update a member's address from a record with a higher incarnation. Returns true if it changed. */
static bool node_readdress(struct mb_node *n, const struct mb_state *s)
{
    if (!s->host[0] || (strcmp(n->pub.host, s->host) == 0 && n->pub.port == s->port))
        return false;
    struct sockaddr_storage addr;
    if (membership_addr_parse(s->host, s->port, &addr) != 0)
        return false;
    snprintf(n->pub.host, sizeof(n->pub.host), "%s", s->host);
    n->pub.port = s->port;
    n->addr = addr;
    return true;
}

/* A claim about ourselves: refute it if it is newer than what we said, or says we are not alive. */
static void apply_self(struct membership *m, const struct mb_state *s)
{
    struct mb_node *self = m->nodes[0];
    if (m->leaving)
        return;
    bool newer = s->incarnation > self->pub.incarnation;
    bool accuses = s->incarnation == self->pub.incarnation && s->state != MEMBER_ALIVE;
    /* Our previous life at another address (a restart before anyone noticed): claim our new one. */
    bool moved = !m->wildcard && s->incarnation == self->pub.incarnation && s->host[0] &&
                 (strcmp(s->host, self->pub.host) != 0 || s->port != self->pub.port);
    if (!newer && !accuses && !moved)
        return;
    if (s->state == MEMBER_SUSPECT || s->state == MEMBER_DEAD) {
        /* Lifeguard: being suspected hints that we are the slow one. */
        if (m->awareness < MB_MAX_AWARENESS)
            m->awareness++;
    }
    log_info(m->log, "membership: refuting %s about us at incarnation %llu (from %s)",
             member_state_name(s->state), (unsigned long long)s->incarnation,
             s->from[0] ? s->from : "?");
    self->pub.incarnation = s->incarnation + 1;
    struct mb_state alive;
    membership_state_of(self, &alive);
    if (m->wildcard)
        alive.host[0] = '\0';
    membership_queue_bcast(m, &alive);
}

static void apply_alive(struct membership *m, struct mb_node *n, const struct mb_state *s)
{
    if (!n) {
        if (!s->host[0] || s->port == 0)
            return;
        if (m->n_nodes >= MB_MAX_MEMBERS) {
            uint64_t now = uv_now(m->loop);
            if (!m->full_warned_at || now - m->full_warned_at >= MB_WARN_EVERY_MS) {
                m->full_warned_at = now ? now : 1;
                log_warn(m->log, "membership: %zu members known; ignoring new ones such as %s",
                         m->n_nodes, s->name);
            }
            return;
        }
        n = node_add(m, s);
        if (!n) {
            log_warn(m->log, "membership: cannot add member %s", s->name);
            return;
        }
        log_info(m->log, "membership: %s joined at %s:%u (incarnation %llu)", s->name, s->host,
                 s->port, (unsigned long long)s->incarnation);
        membership_warn_clear(m);
        membership_queue_bcast(m, s);
        notify(m, n, MEMBER_DEAD);
        return;
    }
    if (s->incarnation <= n->pub.incarnation)
        return;
    enum member_state old = n->pub.state;
    bool moved = node_readdress(n, s);
    n->pub.incarnation = s->incarnation;
    membership_set_state(m, n, MEMBER_ALIVE);
    n->last_heard = uv_now(m->loop);
    struct mb_state fwd;
    membership_state_of(n, &fwd);
    membership_queue_bcast(m, &fwd);
    if (old != MEMBER_ALIVE || moved) {
        log_info(m->log, "membership: %s is alive at %s:%u (incarnation %llu, was %s)", n->pub.name,
                 n->pub.host, n->pub.port, (unsigned long long)n->pub.incarnation,
                 member_state_name(old));
        notify(m, n, old);
    }
}

static void apply_suspect(struct membership *m, struct mb_node *n, const struct mb_state *s)
{
    if (!n || s->incarnation < n->pub.incarnation)
        return;
    if (n->pub.state == MEMBER_DEAD || n->pub.state == MEMBER_LEFT)
        return;
    if (n->pub.state == MEMBER_SUSPECT) {
        n->pub.incarnation = s->incarnation;
        if (membership_suspicion_confirm(m, n, s->from))
            membership_queue_bcast(m, s);
        return;
    }
    n->pub.incarnation = s->incarnation;
    membership_set_state(m, n, MEMBER_SUSPECT);
    membership_suspicion_start(m, n, s->from);
    log_info(m->log, "membership: %s is suspect (incarnation %llu, from %s)", n->pub.name,
             (unsigned long long)s->incarnation, s->from[0] ? s->from : "?");
    membership_queue_bcast(m, s);
    notify(m, n, MEMBER_ALIVE);
}

static void apply_down(struct membership *m, struct mb_node *n, const struct mb_state *s)
{
    if (!n || s->incarnation < n->pub.incarnation || n->pub.state == s->state)
        return;
    if (n->pub.state == MEMBER_LEFT && s->incarnation == n->pub.incarnation)
        return; /* a leave is final for its incarnation */
    enum member_state old = n->pub.state;
    n->pub.incarnation = s->incarnation;
    membership_set_state(m, n, s->state);
    log_info(m->log, "membership: %s is %s (incarnation %llu, from %s)", n->pub.name,
             member_state_name(s->state), (unsigned long long)s->incarnation,
             s->from[0] ? s->from : "?");
    struct mb_state fwd = *s;
    if (!fwd.host[0]) {
        snprintf(fwd.host, sizeof(fwd.host), "%s", n->pub.host);
        fwd.port = n->pub.port;
    }
    membership_queue_bcast(m, &fwd);
    notify(m, n, old);
}

/* Merge one record learned from the network (see the rules at the top of this file). */
void membership_apply(struct membership *m, const struct mb_state *s, bool from_pushpull)
{
    if (strcmp(s->name, m->nodes[0]->pub.name) == 0) {
        apply_self(m, s);
        return;
    }
    struct mb_node *n = membership_node(m, s->name);
    switch (s->state) {
    case MEMBER_ALIVE:
        apply_alive(m, n, s);
        break;
    case MEMBER_SUSPECT:
        apply_suspect(m, n, s);
        break;
    case MEMBER_DEAD:
        if (from_pushpull) {
            struct mb_state sus = *s;
            sus.state = MEMBER_SUSPECT;
            apply_suspect(m, n, &sus);
        } else {
            apply_down(m, n, s);
        }
        break;
    case MEMBER_LEFT:
        apply_down(m, n, s);
        break;
    }
    membership_arm_deadlines(m);
}

/* ---- lifecycle ---- */

static bool is_wildcard(const char *host)
{
    return host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
}

/* Count down handles and requests; free everything when the last one is gone. */
void membership_maybe_free(struct membership *m)
{
    if (!m->stopping || m->open_handles > 0 || m->pending_reqs > 0)
        return;
    for (size_t i = 0; i < m->n_nodes; i++)
        free(m->nodes[i]);
    free(m->nodes);
    free(m->bq);
    free(m->seeds);
    free(m->rxbuf);
    free(m->txbuf);
    free(m->sealbuf);
    if (m->keys)
        OPENSSL_cleanse(m->keys, sizeof(*m->keys));
    free(m->keys);
    free(m->replay);
    free(m);
}

void membership_handle_closed(uv_handle_t *h)
{
    struct membership *m = h->data;
    m->open_handles--;
    membership_maybe_free(m);
}

/* The keyring, its replay window and the sealing buffer, when a key file is set; a cluster that
 * joins others without one is told, once, that anyone on the network can read and forge gossip. */
static int membership_keys_open(struct membership *m, char *err, size_t errlen)
{
    if (m->cfg.cluster_key_file[0] == '\0') {
        if (m->cfg.seeds[0] != '\0')
            membership_warn_clear(m);
        return 0;
    }
    m->keys = calloc(1, sizeof(*m->keys));
    m->replay = calloc(1, sizeof(*m->replay));
    m->sealbuf = malloc(MB_MAX_DGRAM + SEAL_OVERHEAD);
    if (!m->keys || !m->replay || !m->sealbuf) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char why[256];
    if (seal_keyring_load(m->keys, m->cfg.cluster_key_file, m->cfg.cluster_label, why,
                          sizeof(why)) != 0) {
        snprintf(err, errlen, "invalid --cluster-key-file: %s", why);
        return -1;
    }
    log_info(m->log, "membership: gossip sealed with %zu key(s) from %s", m->keys->n_keys,
             m->cfg.cluster_key_file);
    return 0;
}

/* Sender id and counter stay: peers' replay windows keep accepting this node's datagrams. */
int membership_reload_keys(struct membership *m, char *err, size_t errlen)
{
    struct seal_keyring kr;
    if (!m || !m->keys)
        return 0;
    if (seal_keyring_load(&kr, m->cfg.cluster_key_file, m->cfg.cluster_label, err, errlen) != 0)
        return -1;
    memcpy(m->keys->keys, kr.keys, sizeof(kr.keys));
    m->keys->n_keys = kr.n_keys;
    OPENSSL_cleanse(&kr, sizeof(kr));
    log_info(m->log, "membership: gossip keys re-read, %zu key(s) from %s", m->keys->n_keys,
             m->cfg.cluster_key_file);
    return 0;
}

struct membership *membership_start(uv_loop_t *loop, const struct cluster_config *cfg,
                                    const struct logger *log, membership_change_fn on_change,
                                    void *ctx, char *err, size_t errlen)
{
    if (!membership_valid_name(cfg->node_name)) {
        snprintf(err, errlen, "node name must be 1 to %d printable ASCII characters, no spaces",
                 MB_NAME_MAX - 1);
        return NULL;
    }
    if (cfg->cluster_port == 0) {
        snprintf(err, errlen, "cluster port must not be 0");
        return NULL;
    }
    struct membership *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->loop = loop;
    m->log = log;
    m->cfg = *cfg;
    if (m->cfg.gossip_interval_ms == 0)
        m->cfg.gossip_interval_ms = 200;
    if (m->cfg.probe_timeout_ms == 0 || m->cfg.probe_timeout_ms > m->cfg.gossip_interval_ms)
        m->cfg.probe_timeout_ms = m->cfg.gossip_interval_ms / 2 ? m->cfg.gossip_interval_ms / 2 : 1;
    if (m->cfg.suspicion_mult == 0)
        m->cfg.suspicion_mult = 4;
    if (m->cfg.dns_interval_ms == 0)
        m->cfg.dns_interval_ms = 2000;
    m->on_change = on_change;
    m->ctx = ctx;
    m->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)m;
    if (m->rng == 0)
        m->rng = 0x9E3779B97F4A7C15ULL;
    m->start_ms = uv_now(loop);
    m->rxbuf = malloc(65536);
    m->txbuf = malloc(MB_MAX_DGRAM);
    m->nodes = calloc(16, sizeof(*m->nodes));
    struct mb_node *self = calloc(1, sizeof(*self));
    if (!m->rxbuf || !m->txbuf || !m->nodes || !self) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    m->cap_nodes = 16;
    m->nodes[0] = self;
    m->n_nodes = 1;
    const char *bind = m->cfg.cluster_bind;
    m->wildcard = is_wildcard(bind);
    snprintf(self->pub.name, sizeof(self->pub.name), "%s", m->cfg.node_name);
    snprintf(self->pub.host, sizeof(self->pub.host), "%s", bind[0] ? bind : "0.0.0.0");
    self->pub.port = m->cfg.cluster_port;
    self->pub.state = MEMBER_ALIVE;
    self->state_since = m->start_ms;
    if (membership_addr_parse(self->pub.host, self->pub.port, &self->addr) != 0) {
        snprintf(err, errlen, "cluster bind address '%s' is not an IP address", self->pub.host);
        goto fail;
    }
    if (membership_seeds_parse(m, m->cfg.seeds, err, errlen) != 0)
        goto fail;
    if (membership_keys_open(m, err, errlen) != 0)
        goto fail;
    if (membership_net_open(m, err, errlen) != 0)
        goto fail; /* if the UDP handle was initialised, open_handles is 1: see fail */
    uv_timer_init(loop, &m->tick_timer);
    uv_timer_init(loop, &m->deadline_timer);
    uv_timer_init(loop, &m->dns_timer);
    uv_timer_init(loop, &m->pp_timer);
    m->tick_timer.data = m->deadline_timer.data = m->dns_timer.data = m->pp_timer.data = m;
    m->open_handles += 4;
    m->joined = m->n_seeds == 0;
    m->next_tick_at = m->start_ms + m->cfg.gossip_interval_ms;
    uv_timer_start(&m->tick_timer, membership_tick_cb, m->cfg.gossip_interval_ms, 0);
    uv_timer_start(&m->pp_timer, membership_pp_cb, MB_PUSHPULL_MS, MB_PUSHPULL_MS);
    if (m->n_seeds)
        uv_timer_start(&m->dns_timer, membership_dns_cb, 0, 0);
    log_info(log, "membership: %s gossiping on %s:%u, %zu seed(s)", self->pub.name, self->pub.host,
             self->pub.port, m->n_seeds);
    return m;

fail:
    if (m->open_handles) {
        /* The socket was opened: free through the close callbacks. */
        m->stopping = true;
        uv_close((uv_handle_t *)&m->udp, membership_handle_closed);
        return NULL;
    }
    free(self);
    if (m->nodes)
        m->nodes[0] = NULL;
    m->n_nodes = 0;
    m->stopping = true;
    membership_maybe_free(m);
    return NULL;
}

bool membership_joined(const struct membership *m)
{
    return m->joined;
}

/* Announce leave: mark ourselves left with a higher incarnation, tell every live member directly
 * (twice, MB_LEAVE_RESEND_MS apart, against a lost datagram) and keep it in the piggyback queue.
 * done runs from the deadline timer after the second send, or after leave_timeout_ms at the latest.
 */
void membership_leave(struct membership *m, void (*done)(void *ctx), void *ctx)
{
    struct mb_node *self = m->nodes[0];
    if (m->leaving || m->stopping) {
        if (done && !m->leave_done) {
            m->leave_done = done;
            m->leave_ctx = ctx;
            m->leave_deadline = uv_now(m->loop);
            membership_arm_deadlines(m);
        }
        return;
    }
    m->leaving = true;
    m->leave_done = done;
    m->leave_ctx = ctx;
    self->pub.incarnation++;
    membership_set_state(m, self, MEMBER_LEFT);
    struct mb_state st;
    membership_state_of(self, &st);
    snprintf(st.from, sizeof(st.from), "%s", self->pub.name);
    if (m->wildcard)
        st.host[0] = '\0';
    membership_queue_bcast(m, &st);
    for (size_t i = 1; i < m->n_nodes; i++) {
        struct mb_node *n = m->nodes[i];
        if (n->pub.state == MEMBER_ALIVE || n->pub.state == MEMBER_SUSPECT)
            membership_send_gossip(m, &n->addr, &st);
    }
    m->leave_resends = 1;
    unsigned wait = MB_LEAVE_RESEND_MS;
    if (m->cfg.leave_timeout_ms && m->cfg.leave_timeout_ms < wait)
        wait = m->cfg.leave_timeout_ms;
    m->leave_deadline = uv_now(m->loop) + wait;
    log_info(m->log, "membership: leaving at incarnation %llu",
             (unsigned long long)self->pub.incarnation);
    membership_arm_deadlines(m);
}

void membership_stop(struct membership *m)
{
    if (!m || m->stopping)
        return;
    m->stopping = true;
    for (size_t i = 0; i < m->n_seeds; i++)
        if (m->seeds[i].req)
            uv_cancel((uv_req_t *)m->seeds[i].req); /* the callback frees it */
    uv_udp_recv_stop(&m->udp);
    uv_close((uv_handle_t *)&m->udp, membership_handle_closed);
    uv_close((uv_handle_t *)&m->tick_timer, membership_handle_closed);
    uv_close((uv_handle_t *)&m->deadline_timer, membership_handle_closed);
    uv_close((uv_handle_t *)&m->dns_timer, membership_handle_closed);
    uv_close((uv_handle_t *)&m->pp_timer, membership_handle_closed);
}

/* ---- accessors ---- */

const struct member *membership_self(const struct membership *m)
{
    return &m->nodes[0]->pub;
}

void membership_foreach(const struct membership *m, void (*fn)(const struct member *mb, void *ctx),
                        void *ctx)
{
    for (size_t i = 0; i < m->n_nodes; i++)
        fn(&m->nodes[i]->pub, ctx);
}

const struct member *membership_find(const struct membership *m, const char *name)
{
    struct mb_node *n = membership_node(m, name);
    return n ? &n->pub : NULL;
}

size_t membership_count(const struct membership *m, enum member_state state)
{
    size_t c = 0;
    for (size_t i = 0; i < m->n_nodes; i++)
        if (m->nodes[i]->pub.state == state)
            c++;
    return c;
}

void membership_get_stats(const struct membership *m, struct membership_stats *out)
{
    *out = m->stats;
}

/* Suspicion timeout bounds (Lifeguard): min = mult * max(1, log10(n)) * interval; starts at
 * MB_SUSPICION_MAX_MULT * min and falls towards min as independent confirmations arrive. */
uint64_t membership_suspicion_min(const struct membership *m)
{
    double n = (double)membership_live_count(m);
    double scale = n > 10.0 ? log10(n) : 1.0;
    return (uint64_t)(m->cfg.suspicion_mult * scale * m->cfg.gossip_interval_ms);
}
