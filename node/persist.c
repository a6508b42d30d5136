/*
 * persist.c - the broker's durable state (persist.h): record encoding, the sessions changed this
 * turn, the acknowledgements held for the disk, and the restore at start.
 */
#include "persist_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker_internal.h"
#include "codec.h"
#include "conn_int.h"
#include "session.h"

#define PERSIST_VERSION 1

/* ---- Encoding ---- */

static void pbuf_need(struct persist *p, size_t n)
{
    if (p->oom || p->len + n <= p->cap)
        return;
    size_t cap = p->cap ? p->cap : 256;
    while (cap < p->len + n)
        cap *= 2;
    uint8_t *nb = realloc(p->buf, cap);
    if (!nb) {
        p->oom = true;
        return;
    }
    p->buf = nb;
    p->cap = cap;
}

static void pbuf_put(struct persist *p, const void *data, size_t n)
{
    pbuf_need(p, n);
    if (p->oom || n == 0)
        return;
    memcpy(p->buf + p->len, data, n);
    p->len += n;
}

static void pbuf_u8(struct persist *p, uint8_t v)
{
    pbuf_put(p, &v, 1);
}

static void pbuf_u16(struct persist *p, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    pbuf_put(p, b, 2);
}

static void pbuf_u32(struct persist *p, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    pbuf_put(p, b, 4);
}

static void pbuf_u64(struct persist *p, uint64_t v)
{
    pbuf_u32(p, (uint32_t)(v >> 32));
    pbuf_u32(p, (uint32_t)v);
}

/* Wall-clock milliseconds: expiry deadlines are kept as wall time, so a restart does not extend
 * them. */
static uint64_t persist_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A message: qos, retain, expiry (wall ms, 0 never), topic, properties, payload. */
static void persist_put_msg(struct broker *b, struct persist *p, const struct message *m)
{
    uint64_t expire = 0;
    if (m->expire_at) {
        uint64_t now = broker_now_ms(b);
        expire = persist_wall_ms() + (m->expire_at > now ? m->expire_at - now : 0);
    }
    pbuf_u8(p, m->qos);
    pbuf_u8(p, m->retain);
    pbuf_u64(p, expire);
    pbuf_u16(p, m->topic_len);
    pbuf_put(p, m->topic, m->topic_len);
    pbuf_u32(p, m->props_len);
    pbuf_put(p, m->props, m->props_len);
    pbuf_u32(p, (uint32_t)m->payload_len);
    pbuf_put(p, m->payload, m->payload_len);
}

/* ---- Decoding (a record that does not parse is skipped, logged, never trusted) ---- */

struct prd {
    const uint8_t *p, *end;
    bool bad;
};

static const uint8_t *prd_take(struct prd *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *at = r->p;
    r->p += n;
    return at;
}

static uint64_t prd_uint(struct prd *r, size_t n)
{
    const uint8_t *at = prd_take(r, n);
    uint64_t v = 0;
    for (size_t i = 0; at && i < n; i++)
        v = v << 8 | at[i];
    return v;
}

/* A message decoded (one reference), or NULL: malformed (r->bad), or out of memory. */
static struct message *persist_get_msg(struct broker *b, struct prd *r)
{
    uint8_t qos = (uint8_t)prd_uint(r, 1);
    bool retain = prd_uint(r, 1) != 0;
    uint64_t expire = prd_uint(r, 8);
    size_t tl = (size_t)prd_uint(r, 2);
    const uint8_t *topic = prd_take(r, tl);
    size_t pl = (size_t)prd_uint(r, 4);
    const uint8_t *props = prd_take(r, pl);
    size_t nl = (size_t)prd_uint(r, 4);
    const uint8_t *payload = prd_take(r, nl);
    /* A record may come from a peer (a session replica, a moved session): checked as a PUBLISH. */
    if (r->bad || qos > 2 || !codec_topic_name_valid((const char *)topic, tl)) {
        r->bad = true;
        return NULL;
    }
    uint64_t expire_at = 0;
    if (expire) {
        uint64_t wall = persist_wall_ms();
        expire_at = broker_now_ms(b) + (expire > wall ? expire - wall : 0);
        if (expire_at == 0)
            expire_at = 1;
    }
    return message_new5((const char *)topic, tl, payload, nl, qos, retain, props, pl, expire_at);
}

/* ---- Sessions ---- */

static void persist_visit_sub(void *ctx, const char *filter, uint8_t opts, uint32_t subid)
{
    struct persist *p = ctx;
    size_t n = strlen(filter);
    pbuf_u8(p, 'S');
    pbuf_u16(p, (uint16_t)n);
    pbuf_put(p, filter, n);
    pbuf_u8(p, opts);
    pbuf_u32(p, subid);
}

struct persist_visit {
    struct broker *b;
    struct persist *p;
};

static void persist_visit_msg(void *ctx, struct message *msg, const struct session_msg_info *info)
{
    struct persist_visit *v = ctx;
    struct persist *p = v->p;
    pbuf_u8(p, 'M');
    pbuf_u16(p, info->id);
    pbuf_u8(p, info->qos);
    pbuf_u8(p, info->state);
    pbuf_u8(p, info->retain);
    pbuf_u8(p, msg != NULL);
    if (msg)
        persist_put_msg(v->b, p, msg);
}

static void persist_visit_rx(void *ctx, uint16_t id)
{
    struct persist_visit *v = ctx;
    pbuf_u8(v->p, 'R');
    pbuf_u16(v->p, id);
}

static void persist_visit_next(void *ctx, uint16_t id)
{
    struct persist_visit *v = ctx;
    pbuf_u8(v->p, 'N');
    pbuf_u16(v->p, id);
}

static void persist_visit_expiry(void *ctx, uint32_t s)
{
    struct persist_visit *v = ctx;
    pbuf_u8(v->p, 'E');
    pbuf_u32(v->p, s);
}

/* A pending delayed will: when it goes out (wall ms, so it survives a restart), then it. */
static void persist_visit_will(void *ctx, struct message *msg, uint64_t will_at)
{
    struct persist_visit *v = ctx;
    uint64_t now = broker_now_ms(v->b);
    pbuf_u8(v->p, 'W');
    pbuf_u64(v->p, persist_wall_ms() + (will_at > now ? will_at - now : 0));
    persist_put_msg(v->b, v->p, msg);
}

static void persist_visit_sub_v(void *ctx, const char *filter, uint8_t opts, uint32_t subid)
{
    struct persist_visit *v = ctx;
    persist_visit_sub(v->p, filter, opts, subid);
}

/* The key of a record: kind byte then name, into p's scratch at its start. */
static size_t persist_key(struct persist *p, char kind, const char *name, size_t len)
{
    p->len = 0;
    p->oom = false;
    pbuf_u8(p, (uint8_t)kind);
    pbuf_put(p, name, len);
    return p->len;
}

/* Write s's whole snapshot: key, then the value after it in the same scratch. */
static void persist_write_session(struct broker *b, struct persist *p, struct session *s)
{
    const char *id = session_client_id(s);
    size_t klen = persist_key(p, 's', id, strlen(id));
    pbuf_u8(p, PERSIST_VERSION);
    struct persist_visit pv = {b, p};
    struct session_visitor v = {&pv,
                                persist_visit_sub_v,
                                persist_visit_msg,
                                persist_visit_rx,
                                persist_visit_next,
                                persist_visit_expiry,
                                persist_visit_will};
    session_snapshot(s, &v);
    if (p->oom) {
        log_error(&b->core.log, "store: out of memory writing session %s", id);
        return;
    }
    store_put(p->store, p->buf, klen, p->buf + klen, p->len - klen);
    session_stored_set(s, true);
    if (b->hooks.on_session_state)
        b->hooks.on_session_state(b->hooks.ctx, id, p->buf + klen, p->len - klen, p->rep_open);
}

/* One session record back into the broker, through the takeover restore (broker.h). */
static int persist_restore_session(struct broker *b, const char *id, struct prd *r,
                                   void (*on_sub)(void *ctx, const char *filter), void *ctx)
{
    if (prd_uint(r, 1) != PERSIST_VERSION)
        return -1;
    int rc = 0;
    while (!r->bad && r->p < r->end && rc == 0) {
        uint8_t tag = (uint8_t)prd_uint(r, 1);
        if (tag == 'S') {
            size_t n = (size_t)prd_uint(r, 2);
            const uint8_t *f = prd_take(r, n);
            uint8_t opts = (uint8_t)prd_uint(r, 1);
            uint32_t subid = (uint32_t)prd_uint(r, 4);
            char *filter = f ? strndup((const char *)f, n) : NULL;
            if (filter && !r->bad) {
                rc = broker_session_restore_sub(b, id, filter, opts, subid);
                if (rc == 0 && on_sub)
                    on_sub(ctx, filter);
            }
            free(filter);
        } else if (tag == 'E') {
            uint32_t sec = (uint32_t)prd_uint(r, 4);
            if (!r->bad)
                rc = broker_session_restore_expiry(b, id, sec);
        } else if (tag == 'M') {
            struct session_msg_info info;
            info.id = (uint16_t)prd_uint(r, 2);
            info.qos = (uint8_t)prd_uint(r, 1);
            info.state = (uint8_t)prd_uint(r, 1);
            info.retain = prd_uint(r, 1) != 0;
            bool has = prd_uint(r, 1) != 0;
            struct message *m = has ? persist_get_msg(b, r) : NULL;
            if (r->bad || (has && !m)) {
                if (m)
                    message_unref(m);
                return -1;
            }
            if (m && message_expired(m, broker_now_ms(b)))
                b->core.stats.msgs_expired++;
            else
                rc = broker_session_restore_msg(b, id, m, &info);
            if (m)
                message_unref(m);
        } else if (tag == 'R') {
            uint16_t rid = (uint16_t)prd_uint(r, 2);
            if (!r->bad)
                rc = broker_session_restore_rx_id(b, id, rid);
        } else if (tag == 'W') {
            uint64_t at = prd_uint(r, 8), wall = persist_wall_ms();
            struct message *m = persist_get_msg(b, r);
            if (r->bad || !m) {
                if (m)
                    message_unref(m);
                return -1;
            }
            uint64_t left = at > wall ? at - wall : 0;
            rc = broker_session_restore_will(b, id, m, (uint32_t)((left + 999) / 1000));
            message_unref(m);
        } else if (tag == 'N') {
            uint16_t next = (uint16_t)prd_uint(r, 2);
            if (!r->bad)
                rc = broker_session_restore_next_id(b, id, next);
        } else {
            return -1;
        }
    }
    return r->bad ? -1 : rc;
}

/* ---- Restore ---- */

/* A replica this node held for another ('p' record): kept for the cluster (broker_replicas_restored). */
static int persist_keep_replica(struct persist *p, const char *id, const uint8_t *v, size_t len)
{
    struct persist_rep *n = realloc(p->reps, (p->nreps + 1) * sizeof(*n));
    if (!n)
        return -1;
    p->reps = n;
    struct persist_rep *r = &n[p->nreps];
    if (!(r->id = strdup(id)) || !(r->val = malloc(len ? len : 1))) {
        free(r->id);
        return -1;
    }
    memcpy(r->val, v, len);
    r->len = len;
    p->nreps++;
    return 0;
}

struct persist_restore {
    struct broker *b;
    size_t sessions, retained, bad;
};

static int persist_restore_one(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct persist_restore *pr = ctx;
    struct broker *b = pr->b;
    struct prd r = {v, v + vl, false};
    char *name = strndup((const char *)k + 1, kl - 1);
    if (!name)
        return -1;
    int rc = -1;
    if (k[0] == 's') {
        rc = persist_restore_session(b, name, &r, NULL, NULL);
        struct session *s = session_get(b, name, strlen(name));
        if (s)
            session_stored_set(s, true); /* so that ending it deletes the record */
        if (rc == 0)
            pr->sessions++;
    } else if (k[0] == 'r') {
        struct message *m = persist_get_msg(b, &r);
        if (m && message_expired(m, broker_now_ms(b))) {
            /* Expired while the broker was down: deleted, not just skipped (issue 12). */
            rc = store_del(b->persist->store, k, kl);
            b->core.stats.retained_expired++;
        } else if (m) {
            rc = broker_retain_apply(b, m);
            pr->retained++;
        }
        if (m)
            message_unref(m);
    } else if (k[0] == 'p') {
        rc = persist_keep_replica(b->persist, name, v, vl);
    }
    if (rc != 0) {
        pr->bad++;
        log_error(&b->core.log, "store: record '%c%s' unreadable: skipped", k[0], name);
    }
    free(name);
    return 0;
}

static void persist_reps_free(struct persist *p)
{
    for (size_t i = 0; i < p->nreps; i++) {
        free(p->reps[i].id);
        free(p->reps[i].val);
    }
    free(p->reps);
    p->reps = NULL;
    p->nreps = 0;
}

void broker_replicas_restored(struct broker *b,
                              void (*fn)(void *ctx, const char *id, const uint8_t *v, size_t len),
                              void *ctx)
{
    struct persist *p = b->persist;
    if (!p)
        return;
    for (size_t i = 0; i < p->nreps; i++)
        fn(ctx, p->reps[i].id, p->reps[i].val, p->reps[i].len);
    persist_reps_free(p);
}

int broker_replica_record(struct broker *b, const char *id, const uint8_t *v, size_t len)
{
    struct persist *p = b->persist;
    if (!p)
        return 0;
    size_t klen = persist_key(p, 'p', id, strlen(id));
    if (p->oom)
        return -1;
    return v ? store_put(p->store, p->buf, klen, v, len) : store_del(p->store, p->buf, klen);
}

int persist_open(struct broker *b, char *err, size_t errlen)
{
    const struct sol_config *cfg = &b->core.cfg;
    enum store_durability mode;
    if (!store_durability_parse(cfg->durability, &mode)) {
        snprintf(err, errlen, "invalid value '%s' for durability (expected sync|async|none)",
                 cfg->durability);
        return -1;
    }
    if (mode == STORE_NONE)
        return 0;
    struct persist *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->mode = mode;
    p->rep_open = 1;
    b->persist = p;
    uint64_t t0 = uv_hrtime();
    p->store = store_open(b->core.loop, cfg->data_dir, mode, &b->core.log, persist_on_committed, b,
                          err, errlen);
    if (!p->store) {
        free(p);
        b->persist = NULL;
        return -1;
    }
    struct persist_restore pr = {b, 0, 0, 0};
    p->restoring = true;
    int rc = store_scan(p->store, "", 0, persist_restore_one, &pr);
    p->restoring = false;
    if (rc != 0) {
        snprintf(err, errlen, "store %s: out of memory while restoring", cfg->data_dir);
        return -1;
    }
    log_info(&b->core.log,
             "store %s (durability %s): restored %zu sessions and %zu retained messages in %llu "
             "ms%s",
             cfg->data_dir, store_durability_name(mode), pr.sessions, pr.retained,
             (unsigned long long)((uv_hrtime() - t0) / 1000000),
             pr.bad ? " (some records unreadable: see above)" : "");
    return 0;
}

void persist_close(struct broker *b)
{
    struct persist *p = b->persist;
    if (!p)
        return;
    persist_turn_end(b);
    store_close(p->store);
    for (size_t i = 0; i < p->ndirty; i++)
        session_dirty_set(p->dirty[i], 0);
    free(p->dirty);
    free(p->held);
    free(p->turns);
    persist_reps_free(p);
    free(p->buf);
    free(p);
    b->persist = NULL;
}

bool persist_on(const struct broker *b)
{
    return b->persist != NULL;
}

/* ---- Changes ---- */

void persist_session_changed(struct broker *b, struct session *s)
{
    struct persist *p = b->persist;
    if (!p || p->restoring || session_dirty_get(s) || !session_is_persistent(s))
        return;
    if (p->ndirty == p->dirty_cap) {
        size_t cap = p->dirty_cap ? p->dirty_cap * 2 : 64;
        struct session **nd = realloc(p->dirty, cap * sizeof(*nd));
        if (!nd) {
            log_error(&b->core.log, "store: out of memory: session %s not written",
                      session_client_id(s));
            return;
        }
        p->dirty = nd;
        p->dirty_cap = cap;
    }
    p->dirty[p->ndirty++] = s;
    session_dirty_set(s, (uint32_t)p->ndirty);
}

void persist_session_gone(struct broker *b, struct session *s)
{
    struct persist *p = b->persist;
    if (!p)
        return;
    uint32_t slot = session_dirty_get(s);
    if (slot) {
        struct session *last = p->dirty[--p->ndirty];
        if (last != s) {
            p->dirty[slot - 1] = last;
            session_dirty_set(last, slot);
        }
        session_dirty_set(s, 0);
    }
    if (p->restoring || !session_stored(s))
        return;
    session_stored_set(s, false);
    const char *id = session_client_id(s);
    size_t klen = persist_key(p, 's', id, strlen(id));
    if (!p->oom)
        store_del(p->store, p->buf, klen);
    if (b->hooks.on_session_state)
        b->hooks.on_session_state(b->hooks.ctx, id, NULL, 0, p->rep_open);
}

void persist_retained(struct broker *b, const char *topic, size_t len, struct message *msg)
{
    struct persist *p = b->persist;
    /* $SYS values describe this process: never kept. */
    if (!p || p->restoring || (len >= 4 && memcmp(topic, "$SYS", 4) == 0))
        return;
    size_t klen = persist_key(p, 'r', topic, len);
    if (msg)
        persist_put_msg(b, p, msg);
    if (p->oom) {
        log_error(&b->core.log, "store: out of memory writing retained %.*s", (int)len, topic);
        return;
    }
    if (msg)
        store_put(p->store, p->buf, klen, p->buf + klen, p->len - klen);
    else
        store_del(p->store, p->buf, klen);
}

void persist_turn_end(struct broker *b)
{
    struct persist *p = b->persist;
    if (!p)
        return;
    for (size_t i = 0; i < p->ndirty; i++) {
        session_dirty_set(p->dirty[i], 0);
        persist_write_session(b, p, p->dirty[i]);
    }
    p->ndirty = 0;
    uint64_t batch = persist_batch(p);
    store_commit(p->store);
    uint64_t seq = p->rep_open++;
    p->hold_turn = false;
    if (b->hooks.on_turn_end)
        b->hooks.on_turn_end(b->hooks.ctx, seq); /* may report it held at once */
    else
        broker_replicated(b, seq);
    /* After the hook marked what this turn received: a turn stored at once confirms it now. */
    persist_turn_written(b, seq, batch);
}

void broker_session_touch(struct broker *b, const char *client_id)
{
    struct session *s = session_get(b, client_id, strlen(client_id));
    if (s)
        persist_session_changed(b, s);
}

int broker_session_restore_state(struct broker *b, const char *client_id, const uint8_t *state,
                                 size_t len, void (*on_sub)(void *ctx, const char *filter),
                                 void *ctx)
{
    struct prd r = {state, state + len, false};
    return persist_restore_session(b, client_id, &r, on_sub, ctx);
}

void broker_store_stats(const struct broker *b, struct store_stats *out, uint64_t *acks_held)
{
    memset(out, 0, sizeof(*out));
    *acks_held = 0;
    if (b->persist) {
        store_get_stats(b->persist->store, out);
        *acks_held = b->persist->held_n;
    }
}
