/*
 * cluster_publish.c - PUBLISH forwarding and retained-message replication.
 *
 * A local PUBLISH is encoded once and queued once for each peer with at least one matching filter,
 * at the QoS it was published with (the receiving broker applies each subscriber's granted QoS).
 * What arrives from a peer is delivered locally and never forwarded again. A retained PUBLISH (or
 * clear) also goes to every other peer, stamped with a hybrid logical clock and its origin node;
 * every node keeps the last writer by (stamp, origin), and remembers clears as tombstones so an
 * older set arriving late cannot resurrect a topic.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"
#include "codec.h"

/* Bounded copy of a node name (no printf on the per-message path). */
static void origin_copy(char dst[64], const char *src)
{
    size_t n = src ? strnlen(src, 63) : 0;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

void publish_fill(Cl__Publish *pb, struct message *msg)
{
    pb->topic = msg->topic;
    pb->payload.data = msg->payload;
    pb->payload.len = msg->payload_len;
    pb->qos = msg->qos;
    pb->retain = msg->retain;
    pb->origin = msg->origin;
    pb->hlc = msg->hlc;
}

void publish_from_pb(const Cl__Publish *pb, struct wire_publish *out)
{
    memset(out, 0, sizeof(*out));
    out->topic = pb->topic;
    out->topic_len = pb->topic ? strlen(pb->topic) : 0;
    out->payload = pb->payload.data;
    out->payload_len = pb->payload.len;
    out->qos = pb->qos;
    out->retain = pb->retain;
    out->origin = pb->origin;
    out->origin_len = pb->origin ? strlen(pb->origin) : 0;
    out->hlc = pb->hlc;
    out->seq = pb->seq;
}

/* Checked like a client's PUBLISH: a peer's bytes are not trusted to be a valid topic. */
struct message *publish_to_message(const struct wire_publish *wp, bool retain)
{
    size_t tlen = wp->topic_len;
    if (!wp->topic || wp->qos > 2 || !codec_topic_name_valid(wp->topic, tlen) ||
        wp->origin_len >= sizeof(((struct message *)0)->origin))
        return NULL;
    struct message *m =
        message_new(wp->topic, tlen, wp->payload, wp->payload_len, (uint8_t)wp->qos, retain);
    if (!m)
        return NULL;
    m->hlc = wp->hlc;
    if (wp->origin_len)
        memcpy(m->origin, wp->origin, wp->origin_len);
    m->origin[wp->origin_len] = '\0';
    return m;
}

static void tomb_set(struct cluster *c, const char *topic, size_t len, uint64_t hlc,
                     const char *origin)
{
    struct tomb *t = malloc(sizeof(*t));
    if (!t)
        return;
    t->hlc = hlc;
    origin_copy(t->origin, origin);
    if (retain_set(c->tombs, topic, len, t) != 0)
        free(t);
}

/* Record what this node's retained store now holds for a topic the broker itself just set or
 * cleared. */
static void retained_stamp_local(struct cluster *c, struct message *msg)
{
    c->retained_changed = uv_now(c->loop);
    msg->hlc = hlc_next(&c->hlc, cluster_wall_ms());
    origin_copy(msg->origin, c->self);
    if (msg->payload_len == 0)
        tomb_set(c, msg->topic, msg->topic_len, msg->hlc, c->self);
    else
        retain_set(c->tombs, msg->topic, msg->topic_len, NULL);
}

void publish_hook(void *ctx, struct message *msg)
{
    struct cluster *c = ctx;
    if (msg->retain) /* a live PUBLISH needs no stamp or origin: only retained state is merged */
        retained_stamp_local(c, msg);

    /* Encoded once, straight into the first peer's stage, and copied into the others'; a retained
     * message goes as a PUBLISH to peers with a matching route and as a Retain to the others. */
    uint64_t seq = ++c->seq;
    const uint8_t *enc[2] = {NULL, NULL}; /* [0] PUBLISH, [1] Retain */
    struct wire_plan plan[2];
    size_t len[2] = {0, 0};
    for (struct peer *p = c->peers; p; p = p->next) {
        if (!p->open)
            continue;
        int k = topic_tree_has_match(p->routes, msg->topic, msg->topic_len) ? 0
                : msg->retain                                               ? 1
                                                                            : -1;
        if (k < 0)
            continue;
        if (!len[k])
            len[k] = wire_publish_plan(
                &plan[k], c->self, c->self_len,
                k == 0 ? CL__ENVELOPE__BODY_PUBLISH : CL__ENVELOPE__BODY_RETAIN, msg, seq);
        uint8_t *out = peer_stage(p, len[k]);
        if (!out) {
            p->pub_dropped_full += k == 0;
            continue;
        }
        if (enc[k])
            memcpy(out, enc[k], len[k]);
        else
            wire_write_planned(out, &plan[k], msg, seq);
        enc[k] = out; /* stays valid: this peer's stage is not touched again in this call */
        if (k == 0) {
            p->fwd_msgs++;
            p->fwd_bytes += len[k];
        }
        peer_after_forward(p);
    }
}

/* $SYS topics are each node's own (the broker retains its statistics there): never replicated. */
static bool topic_is_sys(const char *topic, size_t len)
{
    return len >= 4 && memcmp(topic, "$SYS", 4) == 0;
}

/* Last writer wins against whatever the broker holds, or the tombstone of a clear. */
static void retained_apply(struct cluster *c, const char *from, struct message *m)
{
    if (topic_is_sys(m->topic, m->topic_len))
        return;
    if (!hlc_plausible(m->hlc, cluster_wall_ms())) {
        cluster_bad_input(c, from, "a retained message stamped too far in the future");
        return;
    }
    hlc_merge(&c->hlc, m->hlc);
    uint64_t have_hlc = 0;
    const char *have_origin = "";
    struct message *cur = broker_retain_get(c->b, m->topic, m->topic_len);
    struct tomb *t = retain_get(c->tombs, m->topic, m->topic_len);
    if (cur) {
        have_hlc = cur->hlc;
        have_origin = cur->origin;
    } else if (t) {
        have_hlc = t->hlc;
        have_origin = t->origin;
    } else if (m->payload_len == 0) {
        tomb_set(c, m->topic, m->topic_len, m->hlc, m->origin);
        c->retained_changed = uv_now(c->loop);
        return; /* nothing to clear, but remember the clear */
    }
    if (!lww_newer(m->hlc, m->origin, have_hlc, have_origin))
        return;
    c->retained_changed = uv_now(c->loop);
    if (m->payload_len == 0)
        tomb_set(c, m->topic, m->topic_len, m->hlc, m->origin);
    else if (t)
        retain_set(c->tombs, m->topic, m->topic_len, NULL);
    if (cur || m->payload_len > 0) {
        if (broker_retain_apply(c->b, m) != 0)
            log_error(c->log, "cluster: cannot store retained %s", m->topic);
    }
}

void publish_on_remote(struct cluster *c, struct peer *p, const struct wire_publish *wp,
                       bool deliver)
{
    if (deliver) {
        /* A live delivery: retain flag clear [MQTT-3.3.1-9]. */
        struct message *m = publish_to_message(wp, false);
        if (!m) {
            cluster_bad_input(c, p->name, "an invalid PUBLISH");
            return;
        }
        p->rx_msgs++;
        p->rx_bytes += m->topic_len + m->payload_len;
        /* A local subscriber that is behind pauses the link this came on (flow.h): its next
         * frames wait, and TCP pushes back on the sending node. */
        broker_flow_enter(c->b, c->rx_current ? &c->rx_current->src : NULL);
        broker_deliver_remote(c->b, m);
        broker_flow_leave(c->b);
        message_unref(m);
    }
    if (!deliver && !wp->retain) {
        cluster_bad_input(c, p->name, "a retained-message envelope without the retain flag");
        return;
    }
    if (wp->retain) {
        /* The stored copy is its own message (the delivered one may sit in session queues). */
        struct message *r = publish_to_message(wp, true);
        if (!r) {
            if (!deliver)
                cluster_bad_input(c, p->name, "an invalid retained message");
            return;
        }
        retained_apply(c, p->name, r);
        message_unref(r);
    }
}

/* ---- digest: anti-entropy for retained messages ---- */

static uint64_t digest_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t digest_entry(const char *topic, size_t len, uint64_t hlc, const char *origin,
                             bool tomb)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)topic[i]) * 0x100000001b3ull;
    for (const char *o = origin; *o; o++)
        h = (h ^ (uint8_t)*o) * 0x100000001b3ull;
    return digest_mix(h ^ digest_mix(hlc) ^ (tomb ? 0x5bd1e995u : 0));
}

static void digest_msg(struct message *msg, void *ctx)
{
    if (!topic_is_sys(msg->topic, msg->topic_len))
        *(uint64_t *)ctx ^= digest_entry(msg->topic, msg->topic_len, msg->hlc, msg->origin, false);
}

static void digest_tomb(const char *topic, size_t len, void *value, void *ctx)
{
    const struct tomb *t = value;
    *(uint64_t *)ctx ^= digest_entry(topic, len, t->hlc, t->origin, true);
}

uint64_t retained_digest(struct cluster *c)
{
    uint64_t x = 0;
    broker_retain_foreach(c->b, digest_msg, &x);
    retain_foreach(c->tombs, digest_tomb, &x);
    return x;
}

/* ---- full retained sync ---- */

struct retain_chunk {
    struct cluster *c;
    struct peer *p;
    Cl__Publish *items;
    Cl__Publish **ptrs;
    struct message **held; /* references kept while the chunk is built */
    size_t n, cap, bytes;
    bool failed;
};

static void retained_flush(struct retain_chunk *rc, bool last)
{
    Cl__RetainSync s = CL__RETAIN_SYNC__INIT;
    Cl__Envelope env = CL__ENVELOPE__INIT;
    for (size_t i = 0; i < rc->n; i++)
        rc->ptrs[i] = &rc->items[i];
    s.items = rc->ptrs;
    s.n_items = rc->n;
    s.last = last;
    env.body_case = CL__ENVELOPE__BODY_RETAIN_SYNC;
    env.retain_sync = &s;
    struct wbuf *w = cluster_pack(rc->c, &env);
    if (w)
        peer_send(rc->p, w);
    wbuf_unref(w);
    for (size_t i = 0; i < rc->n; i++) {
        if (rc->held[i])
            message_unref(rc->held[i]);
        else
            free(rc->items[i].topic);
    }
    rc->n = 0;
    rc->bytes = 0;
}

static bool retained_reserve(struct retain_chunk *rc)
{
    if (rc->failed)
        return false;
    if (rc->n < rc->cap)
        return true;
    size_t cap = rc->cap ? rc->cap * 2 : 64;
    Cl__Publish *items = realloc(rc->items, cap * sizeof(*items));
    if (items)
        rc->items = items;
    Cl__Publish **ptrs = realloc(rc->ptrs, cap * sizeof(*ptrs));
    if (ptrs)
        rc->ptrs = ptrs;
    struct message **held = realloc(rc->held, cap * sizeof(*held));
    if (held)
        rc->held = held;
    if (!items || !ptrs || !held) {
        rc->failed = true;
        return false;
    }
    rc->cap = cap;
    return true;
}

static void retained_collect_msg(struct message *msg, void *ctx)
{
    struct retain_chunk *rc = ctx;
    if (topic_is_sys(msg->topic, msg->topic_len) || !retained_reserve(rc))
        return;
    Cl__Publish *pb = &rc->items[rc->n];
    cl__publish__init(pb);
    publish_fill(pb, msg);
    pb->retain = true;
    rc->held[rc->n++] = message_ref(msg);
    rc->bytes += msg->topic_len + msg->payload_len + 32;
    if (rc->bytes >= CLUSTER_CHUNK_MAX)
        retained_flush(rc, false);
}

static void retained_collect_tomb(const char *topic, size_t len, void *value, void *ctx)
{
    struct retain_chunk *rc = ctx;
    struct tomb *t = value;
    if (!retained_reserve(rc))
        return;
    Cl__Publish *pb = &rc->items[rc->n];
    cl__publish__init(pb);
    if (!(pb->topic = strndup(topic, len))) {
        rc->failed = true;
        return;
    }
    pb->retain = true;
    pb->hlc = t->hlc;
    pb->origin = t->origin;
    rc->held[rc->n++] = NULL;
    rc->bytes += len + 32;
    if (rc->bytes >= CLUSTER_CHUNK_MAX)
        retained_flush(rc, false);
}

void retained_send_full(struct cluster *c, struct peer *p)
{
    struct retain_chunk rc = {.c = c, .p = p};
    broker_retain_foreach(c->b, retained_collect_msg, &rc);
    retain_foreach(c->tombs, retained_collect_tomb, &rc);
    if (rc.failed)
        log_error(c->log, "cluster: out of memory sending retained messages to %s", p->name);
    retained_flush(&rc, !rc.failed);
    free(rc.items);
    free(rc.ptrs);
    free(rc.held);
}

void retained_on_sync(struct cluster *c, struct peer *p, const Cl__RetainSync *s)
{
    for (size_t i = 0; i < s->n_items; i++) {
        struct wire_publish wp;
        publish_from_pb(s->items[i], &wp);
        struct message *m = publish_to_message(&wp, true);
        if (!m) {
            cluster_bad_input(c, p->name, "an invalid retained message");
            continue;
        }
        retained_apply(c, p->name, m);
        message_unref(m);
    }
    if (s->last)
        p->retained_synced = true;
}
