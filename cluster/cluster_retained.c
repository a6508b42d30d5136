/*
 * cluster_retained.c - retained-message replication: stamps, last writer wins, tombstones and
 * their reaping (docs/cluster.md, "Retained messages").
 *
 * Every retained set or clear is stamped with a hybrid logical clock and its origin node, and every
 * node keeps the last writer by (stamp, origin). The stamps live here, in one map from topic to
 * stamp, not in the node's messages: a live value's stamp, or a clear's (a tombstone, so an older
 * set arriving late cannot resurrect the topic). The map is a levelmap keyed by the whole topic:
 * an 8-byte slot per stamp, and each stamp one allocation of 16 bytes plus its topic, the origin a
 * 15-bit index into the node names seen (docs/benchmarks.md, "Retained messages: memory per
 * topic").
 *
 * Tombstones are reaped under a floor. Each heartbeat compares digests of the retained values; a
 * node whose quiet digest equalled every live peer's in one round announces as its "stable" stamp
 * its clock at that round's digest: every change stamped at or below it is then held by every live
 * node (or superseded there), and the node's own later changes are stamped above it. The floor is
 * the least stable stamp of this node and every peer (a dead one for CLUSTER_TOMB_DEAD_GRACE_MS,
 * so a partition that heals in time brings back nothing that was cleared while it lasted).
 * Tombstones at or below the floor are dropped; a set at or below it for a topic with no stamp
 * here is stale (its clear was reaped): it is refused, and its sender told to clear it too.
 *
 * A retained message whose MQTT 5 expiry ends is removed by each node's broker on its own (the
 * expiry travels with the value, so every copy ends within the link's latency of the others):
 * nothing is sent, and the stamp stays here without a value, so a peer's copy of the same stamp
 * (not yet swept there) cannot come back in a sync. Such a stamp goes like a tombstone once the
 * floor passes it. A sweep counts as a change for the digest's quiet rule, so the moment two nodes
 * differ by a message one of them swept first never counts as a miss (docs/cluster.md).
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cluster_int.h"
#include "levelmap.h"

/* One allocation: the stamp, then its topic's bytes and a NUL (the map's key, so the topic is held
 * once here). key.user holds the origin's index in struct retained's origins and the tombstone
 * bit: a stamp is 16 bytes where a pointer and a flag would take 24. */
struct rstamp {
    uint64_t hlc;
    struct levelmap_key key;
};
LEVELMAP_KEY_LAST(struct rstamp, key);

#define RSTAMP_CLEARED 0x8000u /* key.user: a tombstone */
#define RSTAMP_ORIGIN 0x7fffu  /* key.user: the origin's index */
_Static_assert(CLUSTER_ORIGINS_MAX <= RSTAMP_ORIGIN + 1, "an origin index must fit in 15 bits");

struct retained {
    struct levelmap stamps; /* topic -> struct rstamp: every retained value, unreaped clears */
    char **origins;         /* node names seen as origins, each once */
    size_t norigins, origins_cap;
    uint64_t ntombs, tomb_bytes, reaped;
    uint64_t floor;      /* monotonic: tombstones at or below it are gone */
    uint64_t stable;     /* what this node announces (see the top of this file) */
    uint64_t digest_hlc; /* c->hlc when r->digest was computed */
    uint64_t round;      /* heartbeats (digests) so far; a peer agreed in round p->agreed_round */
    uint64_t digest;     /* of our retained values, computed at the last heartbeat */
    bool digest_quiet;   /* ... and no retained change for a heartbeat period before it */
    uint64_t changed;    /* loop ms of the last retained change here */
    uint64_t expired;    /* broker_retain_expired at the last heartbeat */
    size_t orphans;      /* value stamps whose value is gone (expired), at the last digest */
};

/* $SYS topics are each node's own (the broker retains its statistics there): never replicated. */
static bool topic_is_sys(const char *topic, size_t len)
{
    return len >= 4 && memcmp(topic, "$SYS", 4) == 0;
}

static struct rstamp *rstamp_of(struct levelmap_key *k)
{
    return k ? (struct rstamp *)((char *)k - offsetof(struct rstamp, key)) : NULL;
}

/* NUL-terminated: it goes into a protobuf string as it is. */
static const char *rstamp_topic(const struct rstamp *s)
{
    return levelmap_key_level(&s->key);
}

static bool rstamp_cleared(const struct rstamp *s)
{
    return (s->key.user & RSTAMP_CLEARED) != 0;
}

static const char *rstamp_origin(const struct retained *r, const struct rstamp *s)
{
    return r->origins[s->key.user & RSTAMP_ORIGIN];
}

static struct rstamp *stamp_get(const struct retained *r, const char *topic, size_t len)
{
    return rstamp_of(levelmap_find(&r->stamps, topic, len, levelmap_hash(topic, len)));
}

/* The next stamp in slot order from *pos (start at 0), NULL at the end; no change meanwhile. */
static struct rstamp *stamp_next(const struct retained *r, uint32_t *pos)
{
    return rstamp_of(levelmap_next(&r->stamps, pos));
}

int retained_init(struct cluster *c)
{
    struct retained *r = calloc(1, sizeof(*r)); /* a zeroed levelmap is an empty map */
    if (!r)
        return -1;
    c->retained = r;
    return 0;
}

void retained_free(struct cluster *c)
{
    struct retained *r = c->retained;
    if (!r)
        return;
    uint32_t pos = 0;
    for (struct rstamp *s; (s = stamp_next(r, &pos));)
        free(s);
    levelmap_clear(&r->stamps);
    for (size_t i = 0; i < r->norigins; i++)
        free(r->origins[i]);
    free(r->origins);
    free(r);
    c->retained = NULL;
}

/* Node names are few: one copy each, named in a stamp by its index, instead of 64 bytes a stamp.
 * -1 when out of memory or past CLUSTER_ORIGINS_MAX names. */
static int origin_intern(struct retained *r, const char *name, size_t len)
{
    for (size_t i = 0; i < r->norigins; i++)
        if (strncmp(r->origins[i], name, len) == 0 && r->origins[i][len] == '\0')
            return (int)i;
    if (r->norigins >= CLUSTER_ORIGINS_MAX)
        return -1;
    size_t cap = buf_grow((void **)&r->origins, r->origins_cap, r->norigins + 1,
                          sizeof(*r->origins), CLUSTER_ORIGINS_MAX);
    if (!cap)
        return -1;
    r->origins_cap = cap;
    char *s = strndup(name, len);
    if (!s)
        return -1;
    r->origins[r->norigins] = s;
    return (int)r->norigins++;
}

static void tomb_count(struct retained *r, size_t topic_len, int delta)
{
    r->ntombs += (uint64_t)(int64_t)delta;
    r->tomb_bytes += (uint64_t)(int64_t)delta *
                     (topic_len + 1 + sizeof(struct rstamp) + sizeof(struct levelmap_key *));
}

static void stamp_remove(struct retained *r, struct rstamp *s)
{
    if (rstamp_cleared(s))
        tomb_count(r, s->key.len, -1);
    levelmap_remove(&r->stamps, &s->key);
    free(s);
}

/* Record topic's new stamp; a clear at or below the floor needs no tombstone. -1 when out of
 * memory (the topic then has no stamp: it reads as stamped 0). */
static int stamp_put(struct retained *r, const char *topic, size_t len, uint64_t hlc, int origin,
                     bool cleared)
{
    struct rstamp *s = stamp_get(r, topic, len);
    if (cleared && hlc <= r->floor) {
        if (s)
            stamp_remove(r, s);
        return 0;
    }
    if (!s) {
        if (len > UINT16_MAX) /* never: MQTT and the peers' decoder bound a topic by 65535 */
            return -1;
        if (!(s = malloc(sizeof(*s) + len + 1)))
            return -1;
        if (levelmap_reserve(&r->stamps) != 0) {
            free(s);
            return -1;
        }
        levelmap_key_set(&s->key, topic, len, levelmap_hash(topic, len));
        ((char *)s)[sizeof(*s) + len] = '\0'; /* after the bytes levelmap_key_set copied */
        s->key.user = 0;
        levelmap_insert(&r->stamps, &s->key);
    }
    if (rstamp_cleared(s) != cleared)
        tomb_count(r, len, cleared ? 1 : -1);
    s->hlc = hlc;
    s->key.user = (uint16_t)((unsigned)origin | (cleared ? RSTAMP_CLEARED : 0));
    return 0;
}

void retained_local(struct cluster *c, const struct message *msg, struct wire_stamp *out)
{
    struct retained *r = c->retained;
    r->changed = uv_now(c->loop);
    out->hlc = hlc_next(&c->hlc, cluster_wall_ms());
    out->origin = c->self;
    out->origin_len = c->self_len;
    if (topic_is_sys(msg->topic, msg->topic_len))
        return;
    int self = origin_intern(r, c->self, c->self_len);
    if (self < 0 || stamp_put(r, msg->topic, msg->topic_len, out->hlc, self, msg->payload_len == 0))
        log_error(c->log, "cluster: out of memory stamping retained %s", msg->topic);
}

/* A set that lost to a reaped clear: tell its sender to clear it as well (the smallest stamp that
 * beats it, so a newer value there still wins), or the two sets would differ for good. */
static void retained_clear_back(struct cluster *c, struct peer *p, const struct message *m,
                                uint64_t hlc)
{
    struct message v;
    message_view_init(&v, m->topic, m->topic_len, NULL, 0, 0, true);
    struct wire_stamp st = {hlc + 1, c->self, c->self_len};
    struct wbuf *w = wire_pack_publish(c->self, CL__ENVELOPE__BODY_RETAIN, &v, &st, 0, 0);
    if (w)
        peer_send(p, w);
    wbuf_unref(w);
}

/* Last writer wins against the stamp held here (a value's or a tombstone's), or the floor. */
static void retained_apply(struct cluster *c, struct peer *p, const struct wire_stamp *st,
                           struct message *m)
{
    struct retained *r = c->retained;
    if (topic_is_sys(m->topic, m->topic_len))
        return;
    char origin[64];
    if (st->origin_len >= sizeof(origin) || memchr(st->origin, '\0', st->origin_len)) {
        cluster_bad_input(c, p->name, "a retained message with an invalid origin");
        return;
    }
    memcpy(origin, st->origin, st->origin_len);
    origin[st->origin_len] = '\0';
    if (!hlc_plausible(st->hlc, cluster_wall_ms())) {
        cluster_bad_input(c, p->name, "a retained message stamped too far in the future");
        return;
    }
    hlc_merge(&c->hlc, st->hlc);
    bool clear = m->payload_len == 0;
    const struct rstamp *have = stamp_get(r, m->topic, m->topic_len);
    if (!have && st->hlc <= r->floor) {
        if (!clear)
            retained_clear_back(c, p, m, st->hlc);
        return; /* stale: a clear of it was held everywhere, and reaped */
    }
    if (have && !lww_newer(st->hlc, origin, have->hlc, rstamp_origin(r, have)))
        return;
    bool had_value = have && !rstamp_cleared(have);
    int o = origin_intern(r, origin, st->origin_len);
    if (o < 0) {
        cluster_bad_input(c, p->name, "a retained message from one origin too many");
        return;
    }
    r->changed = uv_now(c->loop);
    if (stamp_put(r, m->topic, m->topic_len, st->hlc, o, clear) != 0)
        log_error(c->log, "cluster: out of memory stamping retained %s", m->topic);
    if ((had_value || !clear) && broker_retain_apply(c->b, m) != 0)
        log_error(c->log, "cluster: cannot store retained %s", m->topic);
}

void retained_on_remote(struct cluster *c, struct peer *p, const struct wire_publish *wp)
{
    /* The stored copy is its own message (a delivered one may sit in session queues). */
    struct message *m = publish_to_message(wp, true, uv_now(c->loop));
    if (!m) {
        cluster_bad_input(c, p->name, "an invalid retained message");
        return;
    }
    retained_apply(c, p, &wp->stamp, m);
    message_unref(m);
}

void retained_on_sync(struct cluster *c, struct peer *p, const Cl__RetainSync *s)
{
    for (size_t i = 0; i < s->n_items; i++) {
        struct wire_publish wp;
        publish_from_pb(s->items[i], &wp);
        retained_on_remote(c, p, &wp);
    }
    if (s->last)
        p->retained_synced = true;
}

/* ---- digest: anti-entropy for retained values ---- */

static uint64_t digest_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t digest_entry(const char *topic, size_t len, uint64_t hlc, const char *origin)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)topic[i]) * 0x100000001b3ull;
    for (const char *o = origin; *o; o++)
        h = (h ^ (uint8_t)*o) * 0x100000001b3ull;
    return digest_mix(h ^ digest_mix(hlc));
}

struct digest_walk {
    const struct retained *r;
    uint64_t x;
    size_t stamped; /* values with a stamp here */
};

/* The stamp of a value the broker retains (0 and "" if it has none); false for $SYS. */
static bool value_stamp(const struct retained *r, const struct message *msg, uint64_t *hlc,
                        const char **origin)
{
    if (topic_is_sys(msg->topic, msg->topic_len))
        return false;
    const struct rstamp *s = stamp_get(r, msg->topic, msg->topic_len);
    *hlc = s ? s->hlc : 0;
    *origin = s ? rstamp_origin(r, s) : "";
    return true;
}

static void digest_msg(struct message *msg, void *ctx)
{
    struct digest_walk *d = ctx;
    uint64_t hlc;
    const char *origin;
    if (!value_stamp(d->r, msg, &hlc, &origin))
        return;
    d->x ^= digest_entry(msg->topic, msg->topic_len, hlc, origin);
    d->stamped += hlc != 0; /* a stamp is never 0 (hlc_next; 0 is under any floor) */
}

/* Order-independent digest of the retained values (without $SYS). Tombstones are left out: two
 * nodes holding the same values agree whether or not each still remembers a clear, so the nodes
 * need not reap in step. Stamps without a value (expired) are left out too, and counted. */
static uint64_t retained_digest(struct cluster *c)
{
    struct retained *r = c->retained;
    struct digest_walk d = {r, 0, 0};
    broker_retain_foreach(c->b, digest_msg, &d);
    size_t values = r->stamps.count - (size_t)r->ntombs;
    r->orphans = values > d.stamped ? values - d.stamped : 0;
    return d.x;
}

/* ---- the floor ---- */

/* Whether st is a tombstone, or the stamp of a value this node's broker no longer holds (expired):
 * both are dropped under the floor. */
static bool stamp_valueless(const struct cluster *c, const struct rstamp *st)
{
    return rstamp_cleared(st) ||
           (c->retained->orphans && !broker_retain_get(c->b, rstamp_topic(st), st->key.len));
}

/* Drop the tombstones and valueless stamps at or below the floor (collected first: the map is not
 * changed while it is walked; what cannot be collected for want of memory is reaped at a later
 * heartbeat). */
static void retained_reap(struct cluster *c)
{
    struct retained *r = c->retained;
    struct rstamp **dead = NULL;
    size_t n = 0, cap = 0, tombs = 0;
    uint32_t pos = 0;
    for (struct rstamp *st; (st = stamp_next(r, &pos));) {
        if (st->hlc > r->floor || !stamp_valueless(c, st))
            continue;
        size_t ncap = buf_grow((void **)&dead, cap, n + 1, sizeof(*dead), SIZE_MAX);
        if (!ncap)
            break;
        cap = ncap;
        dead[n++] = st;
        tombs += rstamp_cleared(st);
    }
    for (size_t i = 0; i < n; i++)
        stamp_remove(r, dead[i]);
    r->reaped += tombs;
    size_t gone = n - tombs; /* valueless stamps */
    r->orphans = r->orphans > gone ? r->orphans - gone : 0;
    free(dead);
}

static bool peer_is_live(const struct peer *p)
{
    return p->state == MEMBER_ALIVE || p->state == MEMBER_SUSPECT;
}

/* End the digest round: stable advances if every live peer agreed in it; the floor follows the
 * least stable stamp of the nodes that may still hold old values. */
static void retained_advance(struct cluster *c, uint64_t now)
{
    struct retained *r = c->retained;
    bool agreed = r->round > 0 && r->digest_quiet;
    for (struct peer *p = c->peers; p; p = p->next) {
        if (peer_is_live(p))
            p->dead_since = 0;
        else if (!p->dead_since)
            p->dead_since = now ? now : 1;
        if (peer_is_live(p) && p->agreed_round != r->round)
            agreed = false;
    }
    if (agreed && r->digest_hlc > r->stable)
        r->stable = r->digest_hlc;
    uint64_t floor = r->stable;
    for (struct peer *p = c->peers; p; p = p->next) {
        if (p->state == MEMBER_LEFT ||
            (!peer_is_live(p) && now - p->dead_since >= CLUSTER_TOMB_DEAD_GRACE_MS))
            continue; /* gone with its state, or away past the grace */
        if (p->retained_stable < floor)
            floor = p->retained_stable;
    }
    if (floor > r->floor) {
        r->floor = floor;
        if (r->ntombs || r->orphans)
            retained_reap(c);
    }
}

void retained_heartbeat(struct cluster *c, Cl__RouteVersion *v)
{
    struct retained *r = c->retained;
    uint64_t now = uv_now(c->loop);
    retained_advance(c, now);
    uint64_t expired = broker_retain_expired(c->b);
    if (expired != r->expired) { /* values went without a stamped change: a change all the same */
        r->expired = expired;
        r->changed = now;
    }
    r->digest = retained_digest(c);
    r->digest_quiet = now - r->changed >= CLUSTER_HEARTBEAT_MS;
    r->digest_hlc = c->hlc;
    r->round++;
    v->retained_digest = r->digest;
    v->retained_quiet = r->digest_quiet;
    v->retained_stable = r->stable;
}

bool retained_on_version(struct cluster *c, struct peer *p, const Cl__RouteVersion *v)
{
    struct retained *r = c->retained;
    /* Merged so that our later stamps order after the floor it helps to set. */
    if (v->retained_stable && !hlc_plausible(v->retained_stable, cluster_wall_ms())) {
        cluster_bad_input(c, p->name, "a retained stable stamp too far in the future");
    } else {
        p->retained_stable = v->retained_stable; /* lower after a restart: the floor stays */
        hlc_merge(&c->hlc, v->retained_stable);
    }
    if (!p->retained_synced)
        return false;
    if (!v->retained_quiet || !r->digest_quiet || v->retained_digest == r->digest) {
        p->digest_misses = 0;
        if (v->retained_quiet && r->digest_quiet && v->retained_digest == r->digest)
            p->agreed_round = r->round;
        return false;
    }
    if (++p->digest_misses < CLUSTER_DIGEST_MISSES)
        return false;
    p->digest_misses = 0;
    return true;
}

void retained_metrics(const struct cluster *c, struct cluster_metric out[RETAINED_METRICS])
{
    const struct retained *r = c->retained;
    const struct cluster_metric m[RETAINED_METRICS] = {
        {"sol_cluster_retained_tombstones", "gauge",
         "Cleared retained topics remembered (reaped once every node has them).", r->ntombs},
        {"sol_cluster_retained_tombstone_bytes", "gauge",
         "Bytes held by those tombstones (topic and stamp).", r->tomb_bytes},
        {"sol_cluster_retained_tombstones_reaped_total", "counter",
         "Tombstones dropped under the retained floor.", r->reaped},
        {"sol_cluster_retained_stable_hlc", "gauge",
         "Clock at the last heartbeat at which this node's retained values equalled every live "
         "peer's: tombstones are reaped up to the least of these.",
         r->stable},
        {"sol_cluster_retained_rounds_total", "counter",
         "Heartbeats at which the retained digest was compared and the floor moved.", r->round},
        /* a stamp for each value and each tombstone */
        {"sol_cluster_retained_sync_entries", "gauge",
         "Entries a full retained sync would send now: values and tombstones.",
         r->stamps.count > r->orphans ? r->stamps.count - r->orphans : 0},
    };
    memcpy(out, m, sizeof(m));
}

/* ---- full retained sync ---- */

struct retain_chunk {
    struct chunker ck;
    struct retained *r;
    Cl__RetainSync body;
    Cl__Publish *items;
    Cl__Publish **ptrs;
    struct message **held; /* references kept while the chunk is built (NULL: a tombstone, whose
                            * topic is the stamp map's: nothing changes it during the sync) */
    size_t n, cap;
};

static void retained_fill(void *ctx, Cl__Envelope *env, bool last)
{
    struct retain_chunk *rc = ctx;
    cl__retain_sync__init(&rc->body);
    for (size_t i = 0; i < rc->n; i++)
        rc->ptrs[i] = &rc->items[i];
    rc->body.items = rc->ptrs;
    rc->body.n_items = rc->n;
    rc->body.last = last;
    env->body_case = CL__ENVELOPE__BODY_RETAIN_SYNC;
    env->retain_sync = &rc->body;
}

static void retained_release(void *ctx)
{
    struct retain_chunk *rc = ctx;
    for (size_t i = 0; i < rc->n; i++)
        if (rc->held[i])
            message_unref(rc->held[i]);
    rc->n = 0;
}

/* The next item, initialised; NULL when out of memory. */
static Cl__Publish *retained_item(struct retain_chunk *rc, uint64_t hlc, const char *origin)
{
    void **const arrs[] = {(void **)&rc->items, (void **)&rc->ptrs, (void **)&rc->held};
    const size_t elem[] = {sizeof(*rc->items), sizeof(*rc->ptrs), sizeof(*rc->held)};
    if (!chunk_reserve(&rc->ck, &rc->cap, rc->n, arrs, elem, 3))
        return NULL;
    Cl__Publish *pb = &rc->items[rc->n];
    cl__publish__init(pb);
    pb->retain = true;
    pb->hlc = hlc;
    pb->origin = (char *)origin;
    return pb;
}

static void retained_collect_msg(struct message *msg, void *ctx)
{
    struct retain_chunk *rc = ctx;
    uint64_t hlc;
    const char *origin;
    Cl__Publish *pb;
    /* An expired value the sweep has not reached yet is not handed on. */
    if (message_expired(msg, uv_now(rc->ck.c->loop)) || !value_stamp(rc->r, msg, &hlc, &origin) ||
        !(pb = retained_item(rc, hlc, origin)))
        return;
    publish_fill(pb, msg, NULL, uv_now(rc->ck.c->loop)); /* the stamp is set already */
    pb->retain = true;
    rc->held[rc->n++] = message_ref(msg);
    chunk_added(&rc->ck, msg->topic_len + msg->payload_len + 32);
}

static void retained_collect_tombs(struct retain_chunk *rc)
{
    uint32_t pos = 0;
    for (struct rstamp *s; !rc->ck.failed && (s = stamp_next(rc->r, &pos));) {
        Cl__Publish *pb;
        if (!rstamp_cleared(s) || !(pb = retained_item(rc, s->hlc, rstamp_origin(rc->r, s))))
            continue;
        pb->topic = (char *)rstamp_topic(s);
        rc->held[rc->n++] = NULL;
        chunk_added(&rc->ck, s->key.len + 32u);
    }
}

void retained_send_full(struct cluster *c, struct peer *p)
{
    struct retain_chunk rc = {.r = c->retained};
    rc.ck = (struct chunker){c, p, retained_fill, retained_release, &rc, 0, false};
    broker_retain_foreach(c->b, retained_collect_msg, &rc);
    retained_collect_tombs(&rc);
    if (rc.ck.failed)
        log_error(c->log, "cluster: out of memory sending retained messages to %s", p->name);
    bool whole = !rc.ck.failed;
    chunk_flush(&rc.ck, whole);
    free(rc.items);
    free(rc.ptrs);
    free(rc.held);
}
