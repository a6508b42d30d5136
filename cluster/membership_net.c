/*
 * membership_net.c - the gossip UDP socket: encoding and sending Envelopes with piggybacked
 * broadcasts, receiving, validating and dispatching them. Anything that does not decode or validate
 * (garbage, a truncated or foreign protobuf, an oversized datagram, a datagram claiming to come
 * from ourselves) is dropped, counted in decode_errors and logged at most once per source address
 * per minute. With a keyring every datagram is sealed on the way out and opened on the way in
 * (seal.h); what does not open is dropped, counted in gossip_rejected and logged the same way.
 */
#include "membership_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gossip.pb-c.h"

#define MB_PIGGY_MAX 16     /* records per datagram */
#define MB_RECORDS_MAX 2048 /* records accepted in one push-pull */

/* ---- addresses ---- */

int membership_addr_parse(const char *host, uint16_t port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0)
        return 0;
    memset(out, 0, sizeof(*out));
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0)
        return 0;
    return -1;
}

bool membership_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

void membership_addr_host(const struct sockaddr_storage *a, char *host, size_t len, uint16_t *port)
{
    host[0] = '\0';
    *port = 0;
    if (a->ss_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)a, host, len);
        *port = ntohs(((const struct sockaddr_in *)a)->sin_port);
    } else if (a->ss_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)a, host, len);
        *port = ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
    }
}

bool membership_is_self_addr(const struct membership *m, const struct sockaddr_storage *a)
{
    if (!m->wildcard && membership_addr_equal(a, &m->nodes[0]->addr))
        return true;
    for (unsigned i = 0; i < m->n_self_addrs; i++)
        if (membership_addr_equal(a, &m->self_addrs[i]))
            return true;
    return false;
}

/* ---- sending ---- */

/* Seal timestamps are wall-clock: the receiver compares them with its own clock. */
static uint64_t net_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct send_req {
    uv_udp_send_t req;
    struct membership *m;
    uint8_t data[];
};

static void send_done(uv_udp_send_t *req, int status)
{
    struct send_req *sr = (struct send_req *)req;
    struct membership *m = sr->m;
    (void)status;
    free(sr);
    m->pending_reqs--;
    membership_maybe_free(m);
}

/* Pack env into the scratch buffer and send it; a full socket buffer falls back to a queued send.
 */
static void send_env(struct membership *m, const struct sockaddr_storage *to, Gossip__Envelope *env)
{
    if (m->stopping)
        return;
    size_t len = protobuf_c_message_get_packed_size(&env->base);
    if (len > MB_MAX_DGRAM) {
        log_warn(m->log, "membership: datagram of %zu bytes not sent (limit %d)", len,
                 MB_MAX_DGRAM);
        return;
    }
    protobuf_c_message_pack(&env->base, m->txbuf);
    uint8_t *out = m->txbuf;
    if (m->keys) {
        long n = seal_seal(m->keys, net_wall_ms(), m->txbuf, len, m->sealbuf,
                           MB_MAX_DGRAM + SEAL_OVERHEAD);
        if (n < 0) {
            log_warn(m->log, "membership: datagram not sent: sealing failed");
            return;
        }
        out = m->sealbuf;
        len = (size_t)n;
    }
    uv_buf_t b = uv_buf_init((char *)out, (unsigned)len);
    int rc = uv_udp_try_send(&m->udp, &b, 1, (const struct sockaddr *)to);
    if (rc == UV_EAGAIN || rc == UV_ENOSYS) {
        struct send_req *sr = malloc(sizeof(*sr) + len);
        if (!sr)
            return;
        sr->m = m;
        memcpy(sr->data, out, len);
        b = uv_buf_init((char *)sr->data, (unsigned)len);
        rc = uv_udp_send(&sr->req, &m->udp, &b, 1, (const struct sockaddr *)to, send_done);
        if (rc != 0) {
            free(sr);
        } else {
            m->pending_reqs++;
            rc = 0;
        }
    }
    if (rc < 0) {
        log_debug(m->log, "membership: send failed: %s", uv_strerror(rc));
        return;
    }
    m->stats.gossip_sent++;
}

static void env_init(struct membership *m, Gossip__Envelope *env)
{
    const struct mb_node *self = m->nodes[0];
    gossip__envelope__init(env);
    env->version = 1;
    env->from_name = (char *)self->pub.name;
    env->from_host = m->wildcard ? (char *)"" : (char *)self->pub.host;
    env->from_port = self->pub.port;
}

static void record_init(Gossip__MemberState *r, const struct mb_state *s)
{
    gossip__member_state__init(r);
    r->name = (char *)s->name;
    r->host = (char *)s->host;
    r->port = s->port;
    r->incarnation = s->incarnation;
    r->status = (Gossip__MemberStatus)s->state;
    r->from = (char *)s->from;
}

/* Storage for the records of one outgoing datagram. */
struct piggy {
    Gossip__MemberState recs[MB_PIGGY_MAX];
    Gossip__MemberState *ptrs[MB_PIGGY_MAX];
    size_t chosen[MB_PIGGY_MAX];
    unsigned n_chosen;
};

/* Attach first (if any) and then the least-sent queued broadcasts, within MB_PIGGYBACK_BYTES. */
static void piggyback(struct membership *m, Gossip__Envelope *env, struct piggy *pg,
                      const struct mb_state *first)
{
    size_t budget = MB_PIGGYBACK_BYTES;
    unsigned n = 0;
    pg->n_chosen = 0;
    if (first) {
        record_init(&pg->recs[n], first);
        budget -= protobuf_c_message_get_packed_size(&pg->recs[n].base) + 3;
        pg->ptrs[n] = &pg->recs[n];
        n++;
    }
    while (n < MB_PIGGY_MAX) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < m->n_bq; i++) {
            bool taken = first && strcmp(m->bq[i].s.name, first->name) == 0;
            for (unsigned j = 0; j < pg->n_chosen && !taken; j++)
                taken = pg->chosen[j] == i;
            if (!taken && (best == SIZE_MAX || m->bq[i].transmits < m->bq[best].transmits))
                best = i;
        }
        if (best == SIZE_MAX)
            break;
        record_init(&pg->recs[n], &m->bq[best].s);
        size_t sz = protobuf_c_message_get_packed_size(&pg->recs[n].base) + 3;
        if (sz > budget)
            break;
        budget -= sz;
        pg->ptrs[n] = &pg->recs[n];
        pg->chosen[pg->n_chosen++] = best;
        n++;
    }
    env->n_gossip = n;
    env->gossip = n ? pg->ptrs : NULL;
}

/* After sending: count transmissions; drop broadcasts sent MULT * ceil(log10(n + 1)) times. */
static void piggyback_done(struct membership *m, struct piggy *pg)
{
    if (!pg->n_chosen)
        return;
    double live = (double)membership_live_count(m);
    unsigned limit = MB_RETRANSMIT_MULT * (unsigned)ceil(log10(live + 1.0));
    for (unsigned j = 0; j < pg->n_chosen; j++)
        m->bq[pg->chosen[j]].transmits++;
    size_t w = 0;
    for (size_t i = 0; i < m->n_bq; i++)
        if (m->bq[i].transmits < limit)
            m->bq[w++] = m->bq[i];
    m->n_bq = w;
}

void membership_send_ping(struct membership *m, const struct sockaddr_storage *to, uint32_t seq,
                          const char *target)
{
    Gossip__Envelope env;
    Gossip__Ping ping;
    struct piggy pg;
    env_init(m, &env);
    gossip__ping__init(&ping);
    ping.seq = seq;
    ping.target = (char *)target;
    env.body_case = GOSSIP__ENVELOPE__BODY_PING;
    env.ping = &ping;
    /* Lifeguard buddy system: a suspect learns it is suspected from the probe itself. */
    const struct mb_node *n = membership_node(m, target);
    struct mb_state sus;
    const struct mb_state *first = NULL;
    if (n && n->pub.state == MEMBER_SUSPECT) {
        membership_state_of(n, &sus);
        first = &sus;
    }
    piggyback(m, &env, &pg, first);
    send_env(m, to, &env);
    piggyback_done(m, &pg);
}

void membership_send_ack(struct membership *m, const struct sockaddr_storage *to, uint32_t seq,
                         const struct mb_state *first)
{
    Gossip__Envelope env;
    Gossip__Ack ack;
    struct piggy pg;
    env_init(m, &env);
    gossip__ack__init(&ack);
    ack.seq = seq;
    env.body_case = GOSSIP__ENVELOPE__BODY_ACK;
    env.ack = &ack;
    piggyback(m, &env, &pg, first);
    send_env(m, to, &env);
    piggyback_done(m, &pg);
}

void membership_send_nack(struct membership *m, const struct sockaddr_storage *to, uint32_t seq)
{
    Gossip__Envelope env;
    Gossip__Nack nack;
    env_init(m, &env);
    gossip__nack__init(&nack);
    nack.seq = seq;
    env.body_case = GOSSIP__ENVELOPE__BODY_NACK;
    env.nack = &nack;
    send_env(m, to, &env);
}

void membership_send_ping_req(struct membership *m, const struct sockaddr_storage *to, uint32_t seq,
                              const struct mb_node *target)
{
    Gossip__Envelope env;
    Gossip__PingReq req;
    env_init(m, &env);
    gossip__ping_req__init(&req);
    req.seq = seq;
    req.target = (char *)target->pub.name;
    req.target_host = (char *)target->pub.host;
    req.target_port = target->pub.port;
    env.body_case = GOSSIP__ENVELOPE__BODY_PING_REQ;
    env.ping_req = &req;
    send_env(m, to, &env);
}

/* A datagram with no body, only gossip: dissemination fan-out and leave notices. */
void membership_send_gossip(struct membership *m, const struct sockaddr_storage *to,
                            const struct mb_state *first)
{
    Gossip__Envelope env;
    struct piggy pg;
    env_init(m, &env);
    piggyback(m, &env, &pg, first);
    if (env.n_gossip == 0)
        return;
    send_env(m, to, &env);
    piggyback_done(m, &pg);
}

/* Push-pull: our full state (self first), as much as fits in one datagram. */
int membership_send_states(struct membership *m, const struct sockaddr_storage *to, bool join,
                           bool response)
{
    size_t n = m->n_nodes;
    Gossip__MemberState *recs = calloc(n, sizeof(*recs));
    Gossip__MemberState **ptrs = calloc(n, sizeof(*ptrs));
    struct mb_state *states = calloc(n, sizeof(*states));
    int rc = -1;
    if (!recs || !ptrs || !states)
        goto out;
    Gossip__Envelope env;
    Gossip__PushPull pp;
    env_init(m, &env);
    gossip__push_pull__init(&pp);
    pp.join = join;
    pp.response = response;
    size_t budget = MB_MAX_DGRAM - 256;
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        membership_state_of(m->nodes[i], &states[used]);
        if (i == 0 && m->wildcard)
            states[used].host[0] = '\0';
        record_init(&recs[used], &states[used]);
        size_t sz = protobuf_c_message_get_packed_size(&recs[used].base) + 4;
        if (sz > budget)
            break;
        budget -= sz;
        ptrs[used] = &recs[used];
        used++;
    }
    pp.n_states = used;
    pp.states = ptrs;
    env.body_case = GOSSIP__ENVELOPE__BODY_PUSH_PULL;
    env.push_pull = &pp;
    send_env(m, to, &env);
    rc = 0;
out:
    free(recs);
    free(ptrs);
    free(states);
    return rc;
}

/* ---- receiving ---- */

/* Warn about a dropped datagram at most once per source per minute. */
static void drop_warn(struct membership *m, const struct sockaddr_storage *src, const char *why)
{
    uint64_t now = uv_now(m->loop);
    struct mb_warn *slot = NULL;
    for (int i = 0; i < MB_WARN_SLOTS; i++) {
        if (membership_addr_equal(&m->warns[i].src, src)) {
            slot = &m->warns[i];
            break;
        }
        if (!slot || m->warns[i].last < slot->last)
            slot = &m->warns[i];
    }
    if (membership_addr_equal(&slot->src, src) && slot->last && now - slot->last < MB_WARN_EVERY_MS)
        return;
    slot->src = *src;
    slot->last = now ? now : 1;
    char host[64];
    uint16_t port;
    membership_addr_host(src, host, sizeof(host), &port);
    log_warn(m->log,
             "membership: dropped datagram from %s:%u: %s (further ones from it are not logged "
             "for a minute)",
             host, port, why);
}

bool membership_valid_name(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len >= MB_NAME_MAX)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return false; /* printable ASCII only: names end up in logs and JSON */
    return true;
}

static bool valid_host(const char *host, uint32_t port)
{
    struct sockaddr_storage a;
    if (port == 0 || port > 65535)
        return false;
    if (host[0] == '\0')
        return true;
    return strlen(host) < MB_HOST_MAX && membership_addr_parse(host, (uint16_t)port, &a) == 0;
}

static bool valid_record(const Gossip__MemberState *r)
{
    return membership_valid_name(r->name) && valid_host(r->host, r->port) && (int)r->status >= 0 &&
           (int)r->status <= 3 && (!r->from[0] || membership_valid_name(r->from));
}

/* Check everything a handler will rely on; return a reason, or NULL if the envelope is good. */
static const char *validate(const Gossip__Envelope *env)
{
    if (env->version != 1)
        return "unknown protocol version";
    if (!membership_valid_name(env->from_name) || !valid_host(env->from_host, env->from_port))
        return "bad sender";
    if (env->n_gossip > MB_PIGGY_MAX * 4)
        return "too many gossip records";
    for (size_t i = 0; i < env->n_gossip; i++)
        if (!valid_record(env->gossip[i]))
            return "bad gossip record";
    switch (env->body_case) {
    case GOSSIP__ENVELOPE__BODY__NOT_SET:
        return env->n_gossip ? NULL : "empty message";
    case GOSSIP__ENVELOPE__BODY_PING:
        return !env->ping->target[0] || membership_valid_name(env->ping->target) ? NULL
                                                                                 : "bad ping";
    case GOSSIP__ENVELOPE__BODY_ACK:
    case GOSSIP__ENVELOPE__BODY_NACK:
        return NULL;
    case GOSSIP__ENVELOPE__BODY_PING_REQ:
        if (!membership_valid_name(env->ping_req->target) || !env->ping_req->target_host[0] ||
            !valid_host(env->ping_req->target_host, env->ping_req->target_port))
            return "bad ping-req";
        return NULL;
    case GOSSIP__ENVELOPE__BODY_PUSH_PULL:
        if (env->push_pull->n_states > MB_RECORDS_MAX)
            return "push-pull too large";
        for (size_t i = 0; i < env->push_pull->n_states; i++)
            if (!valid_record(env->push_pull->states[i]))
                return "bad push-pull record";
        return NULL;
    default:
        return "unknown message";
    }
}

/* Convert a wire record; an empty host on the sender's own record means the datagram source. */
static void record_to_state(const Gossip__MemberState *r, const Gossip__Envelope *env,
                            const struct sockaddr_storage *src, struct mb_state *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", r->name);
    snprintf(s->host, sizeof(s->host), "%s", r->host);
    s->port = (uint16_t)r->port;
    s->incarnation = r->incarnation;
    s->state = (enum member_state)r->status;
    snprintf(s->from, sizeof(s->from), "%s", r->from);
    if (!s->host[0] && strcmp(r->name, env->from_name) == 0) {
        uint16_t port;
        membership_addr_host(src, s->host, sizeof(s->host), &port);
    }
}

static void remember_self_addr(struct membership *m, const struct sockaddr_storage *src)
{
    if (membership_is_self_addr(m, src))
        return;
    if (m->n_self_addrs < MB_SELF_ADDRS)
        m->self_addrs[m->n_self_addrs++] = *src;
}

static void apply_records(struct membership *m, Gossip__MemberState **recs, size_t n,
                          const Gossip__Envelope *env, const struct sockaddr_storage *src,
                          bool from_pushpull)
{
    for (size_t i = 0; i < n && !m->stopping; i++) {
        struct mb_state s;
        record_to_state(recs[i], env, src, &s);
        membership_apply(m, &s, from_pushpull);
    }
}

/* Token bucket for full-state answers (MB_PP_ANSWERS_PER_S, burst twice that): a flood of requests,
 * possibly with forged sources, cannot turn this node into a 60 KB-per-datagram amplifier. */
static bool pushpull_budget(struct membership *m, uint64_t now)
{
    double burst = 2.0 * MB_PP_ANSWERS_PER_S;
    if (m->pp_refill_at == 0)
        m->pp_tokens = burst;
    else
        m->pp_tokens += (double)(now - m->pp_refill_at) * MB_PP_ANSWERS_PER_S / 1000.0;
    if (m->pp_tokens > burst)
        m->pp_tokens = burst;
    m->pp_refill_at = now ? now : 1;
    if (m->pp_tokens < 1.0) {
        log_debug(m->log, "membership: push-pull answer rate limit reached");
        return false;
    }
    m->pp_tokens -= 1.0;
    return true;
}

static void dispatch(struct membership *m, const Gossip__Envelope *env,
                     const struct sockaddr_storage *src)
{
    uint64_t now = uv_now(m->loop);
    struct mb_node *sender = membership_node(m, env->from_name);
    struct mb_state view; /* what we believe about a sender we consider dead or left */
    const struct mb_state *tell = NULL;
    if (sender) {
        sender->last_heard = now;
        if (sender->pub.state == MEMBER_DEAD || sender->pub.state == MEMBER_LEFT) {
            membership_state_of(sender, &view);
            tell = &view;
        }
    }
    switch (env->body_case) {
    case GOSSIP__ENVELOPE__BODY_PING:
        if (env->ping->target[0] && strcmp(env->ping->target, m->nodes[0]->pub.name) != 0)
            break; /* meant for whoever had this address before */
        membership_send_ack(m, src, env->ping->seq, tell);
        tell = NULL;
        break;
    case GOSSIP__ENVELOPE__BODY_ACK:
        membership_on_ack(m, env->ack->seq, env->from_name);
        break;
    case GOSSIP__ENVELOPE__BODY_NACK:
        membership_on_nack(m, env->nack->seq);
        break;
    case GOSSIP__ENVELOPE__BODY_PING_REQ: {
        struct sockaddr_storage target;
        if (membership_addr_parse(env->ping_req->target_host, (uint16_t)env->ping_req->target_port,
                                  &target) == 0)
            membership_on_ping_req(m, env->ping_req->seq, env->ping_req->target, &target, src);
        break;
    }
    case GOSSIP__ENVELOPE__BODY_PUSH_PULL:
        apply_records(m, env->push_pull->states, env->push_pull->n_states, env, src, true);
        if (m->stopping)
            return;
        if (!env->push_pull->response && pushpull_budget(m, now))
            membership_send_states(m, src, false, true);
        /* Either direction is a full state exchange with a peer: we are part of its cluster. */
        if (!m->joined) {
            m->joined = true;
            log_info(m->log, "membership: joined the cluster through %s", env->from_name);
        }
        tell = NULL;
        break;
    default:
        break;
    }
    apply_records(m, env->gossip, env->n_gossip, env, src, false);
    if (m->stopping)
        return;
    if (tell && !m->leaving)
        membership_send_gossip(m, src, tell);
    /* A stranger talking to us: exchange full state so both sides learn each other quickly. */
    if (!sender && env->body_case != GOSSIP__ENVELOPE__BODY_PUSH_PULL &&
        now - m->last_unknown_pp >= 500) {
        m->last_unknown_pp = now;
        membership_send_states(m, src, false, false);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct membership *m = h->data;
    (void)suggested;
    *buf = uv_buf_init((char *)m->rxbuf, 65536);
}

/* Count a bad datagram and warn (rate-limited). */
static void bad_input(struct membership *m, const struct sockaddr_storage *src, const char *why)
{
    m->stats.decode_errors++;
    drop_warn(m, src, why);
}

/* Sealed gossip's gate: with keys, open the datagram into sealbuf (*data and *len then point at the
 * gossip bytes); without, refuse one that is sealed. False: dropped and counted. */
static bool unseal(struct membership *m, const struct sockaddr_storage *src, const void **data,
                   size_t *len)
{
    char why[128];
    if (!m->keys) {
        if (!seal_looks_sealed(*data, *len))
            return true;
        snprintf(why, sizeof(why), "sealed gossip, but this node has no --cluster-key-file");
    } else {
        size_t n = 0;
        enum seal_result r = seal_open(m->keys, m->replay, net_wall_ms(), *data, *len, m->sealbuf,
                                       MB_MAX_DGRAM + SEAL_OVERHEAD, &n);
        if (r == SEAL_OK) {
            *data = m->sealbuf;
            *len = n;
            return true;
        }
        snprintf(why, sizeof(why), "sealed gossip refused: %s", seal_result_name(r));
    }
    m->stats.gossip_rejected++;
    drop_warn(m, src, why);
    return false;
}

/* Process one datagram from src (the socket's receive path; also an entry point for fuzzing). */
void membership_receive(struct membership *m, const void *data, size_t len,
                        const struct sockaddr *addr)
{
    if (m->stopping || !addr || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
        return;
    struct sockaddr_storage src;
    memset(&src, 0, sizeof(src));
    memcpy(&src, addr,
           addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    m->stats.gossip_received++;
    if (len > MB_MAX_DGRAM + (m->keys ? SEAL_OVERHEAD : 0)) {
        bad_input(m, &src, "oversized");
        return;
    }
    if (!unseal(m, &src, &data, &len))
        return;
    Gossip__Envelope *env = gossip__envelope__unpack(NULL, len, (const uint8_t *)data);
    if (!env) {
        bad_input(m, &src, "not a gossip message");
        return;
    }
    const char *why = validate(env);
    if (!why && strcmp(env->from_name, m->nodes[0]->pub.name) == 0) {
        why = "claims to come from this node";
        remember_self_addr(m, &src);
    }
    if (why)
        bad_input(m, &src, why);
    else
        dispatch(m, env, &src);
    gossip__envelope__free_unpacked(env, NULL);
}

/* Owns nothing: the buffer is the instance's receive buffer, reused for every datagram. */
static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    struct membership *m = h->data;
    if (m->stopping || nread == 0 || !addr)
        return;
    if (nread < 0) {
        log_debug(m->log, "membership: receive error: %s", uv_strerror((int)nread));
        return;
    }
    if (flags & UV_UDP_PARTIAL) {
        membership_receive(m, buf->base, 65536, addr); /* counted as oversized */
        return;
    }
    membership_receive(m, buf->base, (size_t)nread, addr);
}

int membership_net_open(struct membership *m, char *err, size_t errlen)
{
    int rc = uv_udp_init(m->loop, &m->udp);
    if (rc != 0) {
        snprintf(err, errlen, "cluster socket: %s", uv_strerror(rc));
        return -1;
    }
    m->udp.data = m;
    m->open_handles = 1;
    struct sockaddr_storage bind = m->nodes[0]->addr;
    rc = uv_udp_bind(&m->udp, (const struct sockaddr *)&bind, 0);
    if (rc == 0)
        rc = uv_udp_recv_start(&m->udp, on_alloc, on_recv);
    if (rc != 0) {
        snprintf(err, errlen, "cluster port %s:%u: %s", m->nodes[0]->pub.host,
                 m->nodes[0]->pub.port, uv_strerror(rc));
        return -1;
    }
    int size = 1 << 20;
    uv_recv_buffer_size((uv_handle_t *)&m->udp, &size);
    size = 1 << 20;
    uv_send_buffer_size((uv_handle_t *)&m->udp, &size);
    return 0;
}
