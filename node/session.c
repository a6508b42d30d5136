/*
 * session.c - MQTT sessions (session.h is the face): subscriptions, outbound QoS 1/2 in flight,
 * the queue for offline or busy clients, and inbound QoS 2 packet ids awaiting PUBREL.
 */
#include <stdlib.h>
#include <string.h>

#include "broker_core.h"
#include "buf.h"
#include "conn.h"
#include "flow.h"
#include "idset.h"
#include "session.h"
#include "strmap.h"
#include "share.h"
#include "persist.h"
#include "topic.h"

struct session_sub {
    char *filter;
    uint32_t subid; /* MQTT 5 Subscription Identifier, 0 = none */
    uint8_t opts;   /* SUB_QOS | SUB_NO_LOCAL | SUB_RETAIN_AS_PUBLISHED (session.h) */
};

enum inflight_state {
    INFLIGHT_PUBLISH_SENT = 0, /* QoS 1 awaiting PUBACK, QoS 2 awaiting PUBREC */
    INFLIGHT_PUBREL_SENT = 1,  /* QoS 2 awaiting PUBCOMP */
};

struct inflight {
    struct message *msg;       /* NULL once PUBREL was sent */
    struct share_group *share; /* came through this shared subscription: redelivered if lost */
    uint16_t id;
    uint8_t qos;
    uint8_t state;
    bool retain; /* a retained message sent for a new subscription */
    bool resend; /* resumed beyond the new connection's Receive Maximum: re-sent on an ack */
};

struct queued {
    struct message *msg;
    struct share_group *share; /* as struct inflight's */
    uint32_t bytes; /* its PUBLISH encoding at qos, counted in the session's queued_bytes */
    uint8_t qos;
    bool retain;
};

/* A session's QoS 1/2 state, allocated the first time it has any: most sessions (idle devices,
 * QoS 0 subscribers) never do, and one of those holds a pointer to an empty, read-only instance
 * instead (session_qos_none), so readers need no NULL checks. */
struct session_qos {
    struct inflight *inflight; /* ring: ninflight entries from ihead, icap (a power of two) slots */
    struct queued *queue;      /* ring: qlen entries from qhead, qcap slots */
    struct idset out_ids;      /* packet ids in inflight */
    struct idset rx_ids;       /* inbound QoS 2 ids received, PUBREL not yet */
    size_t queued_bytes;       /* encoded size of what waits in queue */
    uint32_t ihead, ninflight, icap;
    uint32_t nrel;    /* in-flight entries waiting for PUBCOMP: the first nrel of the ring */
    uint32_t nresend; /* entries with resend set */
    uint32_t qhead, qlen, qcap;
    uint16_t next_id;
};

struct session {
    /* Pointers first, small counters packed last: there is one of these per client, online or not.
     */
    char *client_id;
    char *username;    /* of the connection now or last attached; NULL = anonymous */
    struct conn *conn; /* NULL while offline; always active (CONNACK sent) while attached */
    struct session_sub *subs;
    struct strmap sub_index; /* filter -> its index in subs + 1 (keys are subs[i].filter) */
    struct session_qos *q;   /* never NULL (see struct session_qos) */
    uint64_t match_gen;      /* the last routing pass that reached it (struct session_match) */
    struct flow_gate gate;   /* publishers paused because this session is behind */
    uint64_t progress_ms;    /* last time it was under backlog_high or took bytes or an ack */
    uint64_t expire_at;      /* offline with a finite expiry interval: when it ends; else 0 */
    struct message *will;    /* offline: a will waiting for its Will Delay Interval */
    uint64_t will_at;        /* ... published then (or when the session ends first) */
    size_t id_len;
    uint32_t nsubs, subs_cap;
    uint32_t match_idx;  /* its entry in that pass's struct session_match */
    uint32_t expiry_s;   /* Session Expiry Interval (0 = clean, SESSION_NEVER_EXPIRES) */
    uint32_t nsubids;    /* subscriptions with a Subscription Identifier */
    uint32_t dirty_slot; /* persist.c: its place in the turn's changed list + 1; 0 = none */
    bool stored;         /* persist.c: the store holds a record of it */
    bool clean;
    bool stalled; /* no progress for stall-timeout (or over session-max-bytes): pauses nobody */
};

/* The table: client id -> struct session (keys are the sessions' client_id). */
struct sessions {
    struct strmap map;
    size_t expiring; /* offline sessions with a finite expiry interval (sessions_expire looks) */
    size_t wills;    /* sessions holding a delayed will (sessions_expire looks) */
};

/* The k-th in-flight entry, oldest first (k < s->q->ninflight). */
static inline struct inflight *session_inflight_at(const struct session *s, uint32_t k)
{
    return &s->q->inflight[(s->q->ihead + k) & (s->q->icap - 1)];
}

/* What a session without QoS 1/2 state points at: all empty, and in read-only memory, so a write
 * that forgot session_qos_mut faults at once instead of corrupting every session. */
static const struct session_qos session_qos_none = {.next_id = 1};

/* The session's QoS 1/2 state, allocated on first use. NULL on allocation failure. */
static struct session_qos *session_qos_mut(struct session *s)
{
    if (s->q != &session_qos_none)
        return s->q;
    struct session_qos *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->next_id = 1;
    s->q = q;
    return q;
}

/* ---- The table ---- */

struct sessions *sessions_new(void)
{
    struct sessions *ss = calloc(1, sizeof(*ss));
    if (ss)
        strmap_init(&ss->map);
    return ss;
}

struct sessions_collect {
    struct session **v;
    size_t n;
};

static void sessions_collect_one(const char *key, size_t len, void *value, void *ctx)
{
    struct sessions_collect *c = ctx;
    c->v[c->n++] = value;
}

/* Destroying a session deletes its entry, which no iteration may do: collect them first. */
void sessions_free(struct broker *b, struct sessions *ss)
{
    if (!ss)
        return;
    struct sessions_collect c = {malloc((ss->map.count + 1) * sizeof(*c.v)), 0};
    if (c.v) {
        strmap_foreach(&ss->map, sessions_collect_one, &c);
        for (size_t i = 0; i < c.n; i++) {
            /* The broker is going away, the sessions are not ending: a delayed will is not
             * published from a broker already torn down. */
            if (c.v[i]->will) {
                message_unref(c.v[i]->will);
                c.v[i]->will = NULL;
                ss->wills--;
            }
            session_destroy(b, c.v[i]);
        }
        free(c.v);
    }
    strmap_destroy(&ss->map);
    free(ss);
}

struct sessions_visit {
    void (*fn)(struct session *s, void *ctx);
    void *ctx;
};

static void sessions_visit_one(const char *key, size_t len, void *value, void *ctx)
{
    struct sessions_visit *v = ctx;
    v->fn(value, v->ctx);
}

void sessions_foreach(struct broker *b, void (*fn)(struct session *s, void *ctx), void *ctx)
{
    struct sessions_visit v = {fn, ctx};
    strmap_foreach(&broker_sessions(b)->map, sessions_visit_one, &v);
}

/* ---- Life cycle ---- */

struct session *session_get(struct broker *b, const char *client_id, size_t len)
{
    return strmap_get(&broker_sessions(b)->map, client_id, len);
}

struct session *session_create(struct broker *b, const char *client_id, size_t len, bool clean)
{
    struct session *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->client_id = malloc(len + 1);
    if (!s->client_id)
        goto fail;
    memcpy(s->client_id, client_id, len);
    s->client_id[len] = '\0';
    s->id_len = len;
    s->clean = clean;
    s->q = (struct session_qos *)&session_qos_none;
    if (strmap_put(&broker_sessions(b)->map, s->client_id, len, s) < 0)
        goto fail;
    broker_core(b)->stats.sessions++;
    return s;
fail:
    free(s->client_id);
    free(s);
    return NULL;
}

/* An offline session stops counting as expiring (attached again, or destroyed). */
static void session_unexpire(struct broker *b, struct session *s)
{
    if (s->expire_at) {
        s->expire_at = 0;
        broker_sessions(b)->expiring--;
    }
}

/* The delayed will goes out now: its delay passed, or its session ends first [MQTT-3.1.3-9]. */
static void session_will_publish(struct broker *b, struct session *s)
{
    struct message *will = s->will;
    if (!will)
        return;
    s->will = NULL;
    broker_sessions(b)->wills--;
    broker_publish(b, will, true);
    message_unref(will);
}

void session_will_later(struct broker *b, struct session *s, struct message *will, uint32_t delay_s)
{
    if (s->will) { /* cannot be: attached sessions hold none; to be safe, the newer wins */
        message_unref(s->will);
        broker_sessions(b)->wills--;
    }
    s->will = message_ref(will);
    s->will_at = broker_now_ms(b) + (uint64_t)delay_s * 1000;
    broker_sessions(b)->wills++;
    persist_session_changed(b, s); /* the store keeps the pending will too */
}

void session_destroy(struct broker *b, struct session *s)
{
    persist_session_gone(b, s);
    session_will_publish(b, s);
    session_unexpire(b, s);
    broker_flow_release(b, &s->gate);
    for (size_t i = 0; i < s->nsubs; i++) {
        const char *f = s->subs[i].filter;
        broker_unsubscribe(b, s, f, strlen(f));
        broker_core(b)->stats.subscriptions--;
        free(s->subs[i].filter);
    }
    for (uint32_t k = 0; k < s->q->ninflight; k++)
        if (session_inflight_at(s, k)->msg)
            message_unref(session_inflight_at(s, k)->msg);
    for (size_t i = 0; i < s->q->qlen; i++)
        message_unref(s->q->queue[(s->q->qhead + i) % s->q->qcap].msg);
    strmap_del(&broker_sessions(b)->map, s->client_id, s->id_len);
    broker_core(b)->stats.sessions--;
    strmap_destroy(&s->sub_index);
    free(s->subs);
    if (s->q != &session_qos_none) {
        free(s->q->inflight);
        free(s->q->queue);
        idset_clear(&s->q->out_ids);
        idset_clear(&s->q->rx_ids);
        free(s->q);
    }
    free(s->username);
    free(s->client_id);
    free(s);
}

void session_attach(struct broker *b, struct session *s, struct conn *c, char *username, bool clean)
{
    session_unexpire(b, s);
    if (s->will) { /* reconnected within the Will Delay Interval: not published [MQTT-3.1.3-9] */
        message_unref(s->will);
        s->will = NULL;
        broker_sessions(b)->wills--;
    }
    s->clean = clean;
    s->expiry_s = clean ? 0 : SESSION_NEVER_EXPIRES;
    free(s->username);
    s->username = username;
    s->conn = c;
    persist_session_changed(b, s);
}

void session_set_expiry(struct session *s, uint32_t seconds)
{
    s->expiry_s = seconds;
    s->clean = seconds == 0;
}

uint32_t session_expiry(const struct session *s)
{
    return s->expiry_s;
}

static void session_drop(struct broker *b, uint64_t *reason);
static void session_inflight_remove(struct session *s, uint32_t k);

/* A session that ends (not one that moves) gives what it holds from shared subscriptions to
 * other members of the groups: what is queued, and the QoS 1 PUBLISHes it was sent (they may
 * reach both, at least once as QoS 1 allows); a QoS 2 one it was sent stays with it. */
static void session_share_one(struct broker *b, struct session *s, struct share_group *g,
                              struct message *msg)
{
    struct share_pick pick;
    int rc = share_redeliver(b, g, msg, s, &pick);
    if (rc > 0)
        broker_share_forward(b, msg, &pick);
    else if (rc < 0)
        session_drop(b, &broker_core(b)->stats.dropped_share_no_member);
}

static void session_share_redeliver(struct broker *b, struct session *s)
{
    for (uint32_t k = 0; k < s->q->ninflight; k++) {
        struct inflight *f = session_inflight_at(s, k);
        /* A QoS 2 PUBLISH this member was sent may have reached it: no other member gets it
         * [MQTT-4.8.2-5] (exactly once wins over delivery). A QoS 1 one is sent again. */
        if (f->share && f->msg && f->state == INFLIGHT_PUBLISH_SENT && f->qos == 1)
            session_share_one(b, s, f->share, f->msg);
    }
    for (uint32_t i = 0; i < s->q->qlen; i++) {
        struct queued *e = &s->q->queue[(s->q->qhead + i) % s->q->qcap];
        if (e->share)
            session_share_one(b, s, e->share, e->msg);
    }
}

void session_detach(struct broker *b, struct session *s)
{
    s->conn = NULL;
    s->stalled = false;
    broker_flow_release(b, &s->gate); /* an offline session pauses nobody */
    if (s->clean) {
        session_share_redeliver(b, s);
        session_destroy(b, s);
        return;
    }
    if (s->expiry_s != SESSION_NEVER_EXPIRES) { /* [MQTT-3.1.2-23] */
        s->expire_at = broker_now_ms(b) + (uint64_t)s->expiry_s * 1000;
        if (!s->expire_at)
            s->expire_at = 1;
        broker_sessions(b)->expiring++;
    }
    persist_session_changed(b, s);
}

void session_restore_expiry(struct broker *b, struct session *s, uint32_t seconds)
{
    session_unexpire(b, s);
    session_set_expiry(s, seconds ? seconds : SESSION_NEVER_EXPIRES);
    if (!s->conn && s->expiry_s != SESSION_NEVER_EXPIRES) {
        s->expire_at = broker_now_ms(b) + (uint64_t)s->expiry_s * 1000;
        broker_sessions(b)->expiring++;
    }
}

struct sessions_expire_pass {
    uint64_t now;
    struct session **due;
    size_t n, cap;
};

static void sessions_expire_one(struct session *s, void *ctx)
{
    struct sessions_expire_pass *p = ctx;
    bool will_due = s->will && s->will_at <= p->now;
    if (!will_due && (!s->expire_at || s->expire_at > p->now))
        return;
    size_t ncap = buf_grow((void **)&p->due, p->cap, p->n + 1, sizeof(*p->due), SIZE_MAX);
    if (!ncap)
        return; /* the next pass tries again */
    p->cap = ncap;
    p->due[p->n++] = s;
}

/* Collected first, destroyed after: the table must not change while it is walked. */
void sessions_expire(struct broker *b, uint64_t now)
{
    if (broker_sessions(b)->expiring == 0 && broker_sessions(b)->wills == 0)
        return;
    struct sessions_expire_pass p = {now, NULL, 0, 0};
    sessions_foreach(b, sessions_expire_one, &p);
    for (size_t i = 0; i < p.n; i++) {
        struct session *s = p.due[i];
        if (s->will && s->will_at <= now) {
            session_will_publish(b, s);
            persist_session_changed(b, s); /* published: no longer in its record */
        }
        if (s->expire_at && s->expire_at <= now) {
            log_debug(broker_log(b), "session %s expired", s->client_id);
            session_share_redeliver(b, s);
            session_destroy(b, s);
        }
    }
    free(p.due);
}

const char *session_client_id(const struct session *s)
{
    return s->client_id;
}

const char *session_username(const struct session *s)
{
    return s->username;
}

struct conn *session_conn(const struct session *s)
{
    return s->conn;
}

bool session_is_persistent(const struct session *s)
{
    return !s->clean;
}

/* ---- Subscriptions ---- */

/* Add or update a subscription [MQTT-3.8.4-3: an identical filter replaces the old one]. 0 or -1.
 * The filter is found through the session's index, so a SUBSCRIBE of thousands of filters costs
 * linear, not quadratic, time. */
int session_subscribe(struct broker *b, struct session *s, const char *filter, size_t len,
                      uint8_t opts, uint32_t subid)
{
    uintptr_t at = (uintptr_t)strmap_get(&s->sub_index, filter, len);
    persist_session_changed(b, s);
    if (at) {
        struct session_sub *e = &s->subs[at - 1];
        s->nsubids += (subid != 0) - (e->subid != 0);
        e->opts = opts;
        e->subid = subid;
        return broker_subscribe(b, s, filter, len, opts, false);
    }
    size_t ncap = buf_grow((void **)&s->subs, s->subs_cap, (size_t)s->nsubs + 1, sizeof(*s->subs),
                           UINT32_MAX);
    if (!ncap)
        return -1;
    s->subs_cap = (uint32_t)ncap;
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, filter, len);
    copy[len] = '\0';
    if (strmap_put(&s->sub_index, copy, len, (void *)(uintptr_t)(s->nsubs + 1)) < 0)
        goto fail;
    if (broker_subscribe(b, s, filter, len, opts, true) < 0) {
        strmap_del(&s->sub_index, copy, len);
        goto fail;
    }
    s->subs[s->nsubs] = (struct session_sub){copy, subid, opts};
    s->nsubs++;
    s->nsubids += subid != 0;
    broker_core(b)->stats.subscriptions++;
    return 0;
fail:
    free(copy);
    return -1;
}

bool session_has_subids(const struct session *s)
{
    return s->nsubids != 0;
}

size_t session_subids(const struct session *s, const char *topic, size_t len, uint32_t *out,
                      size_t max, const struct session *publisher)
{
    size_t n = 0;
    for (uint32_t i = 0; i < s->nsubs && s->nsubids && n < max; i++) {
        const struct session_sub *e = &s->subs[i];
        if (!e->subid || (s == publisher && (e->opts & SUB_NO_LOCAL)))
            continue;
        const char *f = e->filter; /* a shared subscription matches by its own filter */
        size_t fl = strlen(f);
        if (!share_parse(e->filter, fl, &f, &fl)) {
            f = e->filter;
            fl = strlen(f);
        }
        if (topic_match(f, fl, topic, len))
            out[n++] = e->subid;
    }
    return n;
}

bool session_subscribed(const struct session *s, const char *filter, size_t len)
{
    return strmap_get(&s->sub_index, filter, len) != NULL;
}

/* Remove a subscription; true if there was one. The last entry moves into its slot. */
bool session_unsubscribe(struct broker *b, struct session *s, const char *filter, size_t len)
{
    uintptr_t at = (uintptr_t)strmap_del(&s->sub_index, filter, len);
    if (!at)
        return false;
    persist_session_changed(b, s);
    size_t i = at - 1;
    broker_unsubscribe(b, s, filter, len);
    broker_core(b)->stats.subscriptions--;
    s->nsubids -= s->subs[i].subid != 0;
    free(s->subs[i].filter);
    s->subs[i] = s->subs[--s->nsubs];
    /* Re-pointing an existing key never grows the table, so this cannot fail. */
    if (i < s->nsubs)
        strmap_put(&s->sub_index, s->subs[i].filter, strlen(s->subs[i].filter),
                   (void *)(uintptr_t)(i + 1));
    return true;
}

/* One routing pass: each session once, its entry's QoS the highest of its matching filters, Retain
 * As Published if any of them asks for it; a No Local subscription does not match its own
 * session's PUBLISH [MQTT-3.8.3-3]. */
void session_match_add(void *subscriber, uint8_t opts, void *ctx)
{
    struct session_match *m = ctx;
    struct session *s = subscriber;
    uint8_t qos = opts & SUB_QOS;
    if ((opts & SUB_NO_LOCAL) && s == m->publisher)
        return;
    if (s->match_gen == m->gen) {
        struct session_matched *e = &m->v[s->match_idx];
        if (qos > e->qos)
            e->qos = qos;
        e->rap |= (opts & SUB_RETAIN_AS_PUBLISHED) != 0;
        return;
    }
    size_t ncap = buf_grow((void **)&m->v, m->cap, m->n + 1, sizeof(*m->v), SIZE_MAX);
    if (!ncap)
        return;
    m->cap = ncap;
    s->match_gen = m->gen;
    s->match_idx = (uint32_t)m->n;
    m->v[m->n++] = (struct session_matched){s, qos, (opts & SUB_RETAIN_AS_PUBLISHED) != 0};
}

/* ---- Outbound messages ---- */

/* Room for one more entry in the in-flight ring: it starts small and doubles (a power of two,
 * re-linearised) up to max-inflight, so a session that never has much in flight holds little. */
static int session_inflight_reserve(struct broker *b, struct session *s)
{
    if (s->q->ninflight < s->q->icap)
        return 0;
    if (!session_qos_mut(s))
        return -1;
    uint32_t ncap = s->q->icap ? s->q->icap * 2 : 8;
    struct inflight *n = malloc(ncap * sizeof(*n));
    if (!n)
        return -1;
    for (uint32_t k = 0; k < s->q->ninflight; k++)
        n[k] = *session_inflight_at(s, k);
    free(s->q->inflight);
    s->q->inflight = n;
    s->q->icap = ncap;
    s->q->ihead = 0;
    (void)b;
    return 0;
}

/* The next packet id not used by a message in flight [MQTT-2.3.1-2]. */
static uint16_t session_next_id(struct session *s)
{
    for (;;) {
        uint16_t id = s->q->next_id++;
        if (s->q->next_id == 0)
            s->q->next_id = 1;
        if (!idset_has(&s->q->out_ids, id))
            return id;
    }
}

/* Put msg in flight and send it. The caller checked the window has room. Takes a reference.
 * -1 if out of memory (nothing changed). */
static int session_send_inflight(struct broker *b, struct session *s, struct message *msg,
                                 uint8_t qos, bool retain, struct share_group *share)
{
    if (session_inflight_reserve(b, s) < 0)
        return -1;
    uint16_t id = session_next_id(s);
    if (idset_add(&s->q->out_ids, id) < 0)
        return -1;
    struct inflight *f = session_inflight_at(s, s->q->ninflight++);
    f->msg = message_ref(msg);
    f->qos = qos;
    f->id = id;
    f->state = INFLIGHT_PUBLISH_SENT;
    f->retain = retain;
    f->resend = false;
    f->share = share;
    conn_send_publish(s->conn, msg, qos, f->id, false, retain);
    return 0;
}

static bool session_can_send(const struct broker *b, const struct session *s)
{
    return s->conn && s->q->ninflight < broker_cfg(b)->max_inflight &&
           s->q->ninflight < conn_receive_max(s->conn);
}

/* Whether this session's publishers are held back for it (flow.h) instead of its messages being
 * dropped: an online subscriber that is not stalled, under the back-pressure policy. */
static bool session_exerts_backpressure(const struct broker *b, const struct session *s)
{
    return s->conn && !s->stalled && broker_cfg(b)->overload_policy == OVERLOAD_BACKPRESSURE;
}

/* Unsent bytes for this subscriber: its queue and its connection's output. */
static size_t session_backlog(const struct session *s)
{
    return s->q->queued_bytes + (s->conn ? conn_backlog(s->conn) : 0);
}

static void session_drop(struct broker *b, uint64_t *reason)
{
    (*reason)++;
    broker_core(b)->stats.msgs_dropped++;
}

/* Stop exerting back-pressure (no progress for stall-timeout, or over session-max-bytes): its
 * publishers resume; from now on its QoS 0 past the watermark is dropped and its queue is bounded
 * by max-queued, until it catches up (session_progress). Logged once per stall. */
static void session_stall(struct broker *b, struct session *s, const char *why)
{
    s->stalled = true;
    broker_core(b)->stats.sessions_stalled++;
    log_warn(broker_log(b),
             "client %s stalled (%s, %zu bytes behind): no longer slows its publishers; QoS 0 "
             "dropped, QoS 1/2 queued up to max-queued",
             s->client_id, why, session_backlog(s));
    broker_flow_release(b, &s->gate);
}

/* After a delivery: a subscriber over backlog_high bytes or max-queued queued messages holds back
 * the source of this delivery, unless that would close a cycle of waits (its own connection, or
 * one that waits on this source: flow.h) or it has made no progress for stall-timeout or is over
 * the hard cap. */
static void session_after_deliver(struct broker *b, struct session *s)
{
    if (!session_exerts_backpressure(b, s))
        return;
    size_t backlog = session_backlog(s);
    uint64_t now = broker_now_ms(b);
    if (backlog < broker_cfg(b)->backlog_high && s->q->qlen < broker_cfg(b)->max_queued) {
        s->progress_ms = now;
        return;
    }
    if (backlog > broker_cfg(b)->session_max_bytes) {
        session_stall(b, s, "over session-max-bytes");
        return;
    }
    if (now - s->progress_ms > broker_cfg(b)->stall_timeout_ms) {
        session_stall(b, s, "no progress for stall-timeout-ms");
        return;
    }
    broker_flow_block(b, &s->gate, conn_flow_source(s->conn));
}

void session_progress(struct broker *b, struct session *s)
{
    uint64_t now = broker_now_ms(b);
    /* How close healthy subscribers come to the stall timeout (what to tune it by). */
    if (flow_gate_busy(&s->gate) &&
        now - s->progress_ms > broker_core(b)->stats.progress_gap_max_ms)
        broker_core(b)->stats.progress_gap_max_ms = now - s->progress_ms;
    s->progress_ms = now;
    if (session_backlog(s) > broker_cfg(b)->backlog_low ||
        s->q->qlen > broker_cfg(b)->max_queued / 2)
        return;
    if (s->stalled) {
        s->stalled = false;
        log_info(broker_log(b), "client %s caught up: slows its publishers again when behind",
                 s->client_id);
    }
    broker_flow_release(b, &s->gate);
}

void session_touch(struct broker *b, struct session *s)
{
    s->progress_ms = broker_now_ms(b);
}

void session_check_stall(struct broker *b, struct session *s, uint64_t now)
{
    if (flow_gate_busy(&s->gate) && now - s->progress_ms > broker_cfg(b)->stall_timeout_ms)
        session_stall(b, s, "no progress for stall-timeout-ms");
}

/* Append to the queue. An online subscriber that is keeping up is never dropped for: its queue is
 * bounded by back-pressure (backlog_high, session-max-bytes). Offline, stalled or under the drop
 * policy it holds at most max-queued; what does not fit is dropped and counted. */
static void session_enqueue(struct broker *b, struct session *s, struct message *msg, uint8_t qos,
                            bool retain, struct share_group *share)
{
    if (s->q->qlen >= broker_cfg(b)->max_queued && !session_exerts_backpressure(b, s)) {
        session_drop(b, &broker_core(b)->stats.dropped_queue_full);
        return;
    }
    size_t bytes;
    if (!session_qos_mut(s) || !message_wire(msg, qos, &bytes, NULL)) {
        session_drop(b, &broker_core(b)->stats.dropped_no_memory);
        return;
    }
    if (s->q->qlen == s->q->qcap) {
        size_t ncap = s->q->qcap ? s->q->qcap * 2 : 16;
        struct queued *nq = malloc(ncap * sizeof(*nq));
        if (!nq) {
            session_drop(b, &broker_core(b)->stats.dropped_no_memory);
            return;
        }
        for (size_t i = 0; i < s->q->qlen; i++)
            nq[i] = s->q->queue[(s->q->qhead + i) % s->q->qcap];
        free(s->q->queue);
        s->q->queue = nq;
        s->q->qcap = ncap;
        s->q->qhead = 0;
    }
    s->q->queue[(s->q->qhead + s->q->qlen) % s->q->qcap] =
        (struct queued){message_ref(msg), share, (uint32_t)bytes, qos, retain};
    s->q->qlen++;
    s->q->queued_bytes += bytes;
}

/* Hand one message to a session at the QoS it gets: QoS 0 only to an online client; QoS 1/2 in
 * flight if the window allows, else queued. A subscriber that falls behind slows the publisher
 * (session_after_deliver); one that stalled (or any, under the drop policy) has live QoS 0 past
 * backlog_high dropped, counted. The retained messages a SUBSCRIBE asked for are always sent
 * [MQTT-3.3.1-6], bounded by the retained store itself. */
static void session_deliver_tagged(struct broker *b, struct session *s, struct message *msg,
                                   uint8_t qos, bool retain, struct share_group *share)
{
    if (message_expired(msg, broker_now_ms(b))) { /* [MQTT-3.3.2-5] */
        broker_core(b)->stats.msgs_expired++;
        return;
    }
    if (s->conn && !conn_publish_fits(s->conn, msg, qos)) { /* [MQTT-3.1.2-24/25] */
        session_drop(b, &broker_core(b)->stats.dropped_too_large);
        return;
    }
    if (qos == 0) {
        struct conn *c = s->conn;
        if (!c)
            return;
        if (!retain && !session_exerts_backpressure(b, s) &&
            session_backlog(s) >= broker_cfg(b)->backlog_high) {
            session_drop(b, &broker_core(b)->stats.dropped_qos0_stalled);
            return;
        }
        conn_send_publish(c, msg, 0, 0, false, retain);
    } else if (s->q->qlen > 0 || !session_can_send(b, s) ||
               session_send_inflight(b, s, msg, qos, retain, share) < 0) {
        session_enqueue(b, s, msg, qos, retain, share);
    }
    if (qos)
        persist_session_changed(b, s);
    session_after_deliver(b, s);
}

void session_deliver(struct broker *b, struct session *s, struct message *msg, uint8_t qos,
                     bool retain)
{
    session_deliver_tagged(b, s, msg, qos, retain, NULL);
}

void session_deliver_shared(struct broker *b, struct session *s, struct message *msg, uint8_t qos,
                            bool retain, struct share_group *g)
{
    session_deliver_tagged(b, s, msg, qos, retain, g);
}

size_t session_unacked(const struct session *s)
{
    return (size_t)s->q->ninflight + s->q->qlen;
}

bool session_ready(const struct broker *b, const struct session *s, uint8_t qos)
{
    if (!s->conn)
        return false;
    return qos == 0 || (s->q->qlen == 0 && session_can_send(b, s));
}

/* Move queued messages into flight while the window has room; one whose Message Expiry Interval
 * ended while it waited is not sent [MQTT-3.3.2-5]. */
static void session_pump(struct broker *b, struct session *s)
{
    uint64_t now = broker_now_ms(b);
    while (s->q->qlen && session_can_send(b, s)) {
        struct queued q = s->q->queue[s->q->qhead];
        if (message_expired(q.msg, now))
            broker_core(b)->stats.msgs_expired++;
        else if (session_send_inflight(b, s, q.msg, q.qos, q.retain, q.share) < 0)
            return; /* out of memory: it stays queued; the next ack tries again */
        s->q->qhead = (s->q->qhead + 1) % s->q->qcap;
        s->q->qlen--;
        s->q->queued_bytes -= q.bytes;
        message_unref(q.msg);
    }
}

/* A client reattached to its persistent session: re-send what was in flight, in order (PUBRELs in
 * PUBREC order, then PUBLISHes with DUP in sending order [MQTT-4.4.0-1]), then drain the queue. */
void session_resume(struct broker *b, struct session *s)
{
    /* The new connection's limits hold for what was in flight too: one larger than its Maximum
     * Packet Size is dropped as if sent [MQTT-3.1.2-25]; past its Receive Maximum a PUBLISH waits
     * for an ack before it is re-sent [MQTT-4.9.0-1]. */
    uint32_t quota = conn_receive_max(s->conn), sent = 0;
    persist_session_changed(b, s);
    if (s->q->ninflight == 0) { /* also a session without QoS 1/2 state: read-only, untouched */
        session_pump(b, s);
        return;
    }
    s->q->nresend = 0;
    for (uint32_t k = 0; k < s->q->ninflight;) {
        struct inflight *f = session_inflight_at(s, k);
        if (f->state != INFLIGHT_PUBLISH_SENT) {
            conn_send_ack(s->conn, MQTT_PUBREL, f->id);
            sent++;
        } else if (!conn_publish_fits(s->conn, f->msg, f->qos)) {
            session_drop(b, &broker_core(b)->stats.dropped_too_large);
            message_unref(f->msg);
            idset_del(&s->q->out_ids, f->id);
            session_inflight_remove(s, k);
            continue;
        } else if (sent < quota) {
            f->resend = false;
            conn_send_publish(s->conn, f->msg, f->qos, f->id, true, f->retain);
            sent++;
        } else {
            f->resend = true;
            s->q->nresend++;
        }
        k++;
    }
    session_pump(b, s);
}

/* An ack freed quota: the oldest PUBLISH held back at resume goes out (DUP, its id). */
static void session_resend_next(struct session *s)
{
    for (uint32_t k = 0; k < s->q->ninflight && s->q->nresend; k++) {
        struct inflight *f = session_inflight_at(s, k);
        if (f->resend) {
            f->resend = false;
            s->q->nresend--;
            if (s->conn)
                conn_send_publish(s->conn, f->msg, f->qos, f->id, true, f->retain);
            return;
        }
    }
}

/* Move ring entry `from` to position `to` (to <= from), shifting those between up by one. */
static void session_inflight_move_up(struct session *s, uint32_t from, uint32_t to)
{
    struct inflight f = *session_inflight_at(s, from);
    for (uint32_t k = from; k > to; k--)
        *session_inflight_at(s, k) = *session_inflight_at(s, k - 1);
    *session_inflight_at(s, to) = f;
}

/* Remove ring entry k, keeping the others' order: whichever side of it is shorter moves. Acks
 * arrive mostly in sending order, so k is usually 0 (or the first PUBLISH after the PUBRELs). */
static void session_inflight_remove(struct session *s, uint32_t k)
{
    if (k < s->q->ninflight / 2) {
        session_inflight_move_up(s, k, 0); /* entry k to the front, then drop the front */
        s->q->ihead = (s->q->ihead + 1) & (s->q->icap - 1);
    } else {
        for (uint32_t m = k; m + 1 < s->q->ninflight; m++)
            *session_inflight_at(s, m) = *session_inflight_at(s, m + 1);
    }
    s->q->ninflight--;
}

/* PUBREC for in-flight entry k: the message is done [MQTT-4.3.3-1], only the id stays until
 * PUBCOMP. The window keeps PUBREL entries first (nrel of them), in the order their PUBRECs came
 * [MQTT-4.6.0-4], then PUBLISH entries in the order they were sent [MQTT-4.6.0-1]: a re-send on
 * reconnect walks it front to back. */
static void session_pubrec(struct session *s, uint32_t k)
{
    struct inflight *f = session_inflight_at(s, k);
    message_unref(f->msg);
    f->msg = NULL;
    f->state = INFLIGHT_PUBREL_SENT;
    session_inflight_move_up(s, k, s->q->nrel);
    s->q->nrel++;
}

/* An acknowledgement for an outbound message: PUBACK ends QoS 1, PUBREC moves QoS 2 to PUBREL
 * (which the caller sends), PUBCOMP ends QoS 2. Returns true if it matched a message in flight.
 * An id not in flight costs one set lookup; one in flight is looked for where its kind sits
 * (PUBCOMP among the PUBRELs at the front, the others after them). */
bool session_ack(struct broker *b, struct session *s, enum mqtt_type type, uint16_t id)
{
    if (!idset_has(&s->q->out_ids, id))
        return false;
    persist_session_changed(b, s);
    uint32_t k = type == MQTT_PUBCOMP ? 0 : s->q->nrel;
    uint32_t end = type == MQTT_PUBCOMP ? s->q->nrel : s->q->ninflight;
    while (k < end && session_inflight_at(s, k)->id != id)
        k++;
    if (k == end) /* in flight, but in the other part: a repeated PUBREC is answered again */
        return type == MQTT_PUBREC;
    struct inflight *f = session_inflight_at(s, k);
    if (type == MQTT_PUBREC) {
        if (f->qos != 2)
            return false;
        if (f->resend) { /* it was received before the reconnect */
            f->resend = false;
            s->q->nresend--;
        }
        session_pubrec(s, k);
        return true;
    }
    if (type == MQTT_PUBACK && f->qos != 1)
        return false;
    message_unref(f->msg);
    idset_del(&s->q->out_ids, id);
    if (type == MQTT_PUBCOMP)
        s->q->nrel--;
    if (f->resend)
        s->q->nresend--; /* acknowledged before it was re-sent: it was received, then */
    session_inflight_remove(s, k);
    s->progress_ms = broker_now_ms(b);
    if (s->q->nresend)
        session_resend_next(s);
    session_pump(b, s);
    return true;
}

/* Inbound QoS 2 ids awaiting PUBREL: a set, so a client holding thousands costs O(1) per PUBLISH.
 */
size_t session_rx_qos2_count(const struct session *s)
{
    return s->q->rx_ids.n;
}

bool session_rx_qos2_has(const struct session *s, uint16_t id)
{
    return idset_has(&s->q->rx_ids, id);
}

int session_rx_qos2_add(struct session *s, uint16_t id)
{
    return session_qos_mut(s) ? idset_add(&s->q->rx_ids, id) : -1;
}

void session_rx_qos2_del(struct session *s, uint16_t id)
{
    idset_del(&s->q->rx_ids, id);
}

/* The whole session in one walk, in the order session_restore_* rebuilds it. */
void session_snapshot(const struct session *s, const struct session_visitor *v)
{
    const struct session_qos *q = s->q;
    for (uint32_t i = 0; i < s->nsubs && v->sub; i++)
        v->sub(v->ctx, s->subs[i].filter, s->subs[i].opts, s->subs[i].subid);
    if (v->expiry)
        v->expiry(v->ctx, s->expiry_s);
    for (uint32_t k = 0; k < q->ninflight && v->msg; k++) {
        const struct inflight *f = session_inflight_at(s, k);
        struct session_msg_info info = {f->id, f->qos,
                                        f->state == INFLIGHT_PUBREL_SENT ? SESSION_MSG_PUBREL_SENT
                                                                         : SESSION_MSG_PUBLISH_SENT,
                                        f->retain};
        v->msg(v->ctx, f->msg, &info);
    }
    for (uint32_t i = 0; i < q->qlen && v->msg; i++) {
        const struct queued *e = &q->queue[(q->qhead + i) % q->qcap];
        struct session_msg_info info = {0, e->qos, SESSION_MSG_QUEUED, e->retain};
        v->msg(v->ctx, e->msg, &info);
    }
    uint32_t pos = 0;
    for (uint16_t id; v->rx_id && (id = idset_next(&q->rx_ids, &pos));)
        v->rx_id(v->ctx, id);
    if (v->next_id)
        v->next_id(v->ctx, q->next_id);
    if (v->will && s->will)
        v->will(v->ctx, s->will, s->will_at);
}

/* An in-flight entry as it was on the other node: same id, same state, so the client's PUBACK,
 * PUBREC or PUBCOMP for it completes it here, and a reconnect re-sends it as the spec says
 * (PUBLISH with DUP, or PUBREL). PUBREL-pending entries go after those already here and before any
 * PUBLISH entry, keeping the ring's order. An id already in use here (a session that had state on
 * both nodes) cannot be kept: the message is queued as new; a PUBREL-pending id is then dropped
 * (its message was delivered already). */
int session_restore_msg(struct broker *b, struct session *s, struct message *msg,
                        const struct session_msg_info *info)
{
    if (info->qos < 1 || info->qos > 2)
        return -1;
    bool pubrel = info->state == SESSION_MSG_PUBREL_SENT;
    if (pubrel && info->qos != 2)
        return -1;
    if (!pubrel && !msg)
        return -1;
    bool keep =
        info->state != SESSION_MSG_QUEUED && info->id != 0 && !idset_has(&s->q->out_ids, info->id);
    if (!keep) {
        if (!pubrel)
            session_enqueue(b, s, msg, info->qos, info->retain, NULL);
        return 0;
    }
    if (session_inflight_reserve(b, s) < 0 || idset_add(&s->q->out_ids, info->id) < 0)
        return -1;
    struct inflight *f = session_inflight_at(s, s->q->ninflight++);
    f->msg = pubrel ? NULL : message_ref(msg);
    f->id = info->id;
    f->qos = info->qos;
    f->state = pubrel ? INFLIGHT_PUBREL_SENT : INFLIGHT_PUBLISH_SENT;
    f->retain = info->retain;
    f->share = NULL; /* a moved session's shared messages stay its own */
    f->resend = false;
    if (pubrel) {
        session_inflight_move_up(s, s->q->ninflight - 1, s->q->nrel);
        s->q->nrel++;
    }
    return 0;
}

/* Carry on numbering where the other node was, so ids are not reused while a client may still
 * hold them. */
void session_restore_next_id(struct session *s, uint16_t next_id)
{
    if (next_id && session_qos_mut(s))
        s->q->next_id = next_id;
}

uint32_t session_dirty_get(const struct session *s)
{
    return s->dirty_slot;
}

void session_dirty_set(struct session *s, uint32_t slot)
{
    s->dirty_slot = slot;
}

bool session_stored(const struct session *s)
{
    return s->stored;
}

void session_stored_set(struct session *s, bool stored)
{
    s->stored = stored;
}
