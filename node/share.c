/*
 * share.c - shared subscriptions (share.h): the groups, their local and remote members, and the
 * choice of one member per message.
 *
 * The groups sit in a topic tree of their own, keyed by their filter (one tree subscriber per
 * group), so routing a message costs one more match; a topic that matches no group costs no more
 * than that match. A group's candidates are its local members, then its peers: the policy picks a
 * starting point among them and the first with room in its window wins; when none has room, the
 * one at the starting point takes it (it queues), so nothing is dropped for a busy group.
 */
#include "share.h"

#include <stdlib.h>
#include <string.h>

#include "broker_core.h"
#include "buf.h"
#include "hash.h"
#include "session.h"
#include "strmap.h"
#include "topic.h"

/* A member this many QoS 1/2 messages behind (unacknowledged) is passed over while another keeps
 * up. */
#define SHARE_BEHIND 8

struct share_member {
    struct session *s;
    uint8_t opts; /* session.h SUB_*: its QoS and Retain As Published */
};

struct share_group {
    char *key; /* "$share/{group}/{filter}", NUL-terminated; the map's key */
    size_t key_len;
    const char *filter; /* inside key */
    size_t filter_len;
    struct share_member *m;
    size_t n, cap;
    void **peers; /* peers with members of their own */
    size_t np, pcap;
    size_t rr; /* round robin: where the next search starts */
};

struct shares {
    struct strmap map;        /* key -> struct share_group */
    struct topic_tree *tree;  /* filter -> struct share_group */
    struct share_group **hit; /* scratch: the groups one message matched */
    size_t nhit, hitcap;
    uint64_t rng;
};

bool share_parse(const char *s, size_t len, const char **filter, size_t *filter_len)
{
    static const char prefix[] = "$share/";
    size_t pl = sizeof(prefix) - 1;
    if (len <= pl || memcmp(s, prefix, pl) != 0)
        return false;
    const char *g = s + pl, *slash = memchr(g, '/', len - pl);
    if (!slash || slash == g)
        return false; /* no filter, or an empty group [MQTT-4.8.2-1] */
    for (const char *p = g; p < slash; p++)
        if (*p == '+' || *p == '#')
            return false; /* [MQTT-4.8.2-2] */
    *filter = slash + 1;
    *filter_len = len - (size_t)(*filter - s);
    return *filter_len > 0 && topic_filter_valid(*filter, *filter_len);
}

struct shares *shares_new(void)
{
    struct shares *sh = calloc(1, sizeof(*sh));
    if (!sh || !(sh->tree = topic_tree_new())) {
        free(sh);
        return NULL;
    }
    sh->rng = 0x9e3779b97f4a7c15ULL;
    return sh;
}

static void share_group_free(const char *key, size_t len, void *value, void *ctx)
{
    (void)key;
    (void)len;
    (void)ctx;
    struct share_group *g = value;
    free(g->m);
    free(g->peers);
    free(g->key);
    free(g);
}

void shares_free(struct shares *sh)
{
    if (!sh)
        return;
    strmap_foreach(&sh->map, share_group_free, NULL);
    strmap_destroy(&sh->map);
    topic_tree_free(sh->tree);
    free(sh->hit);
    free(sh);
}

/* The group key, created if absent (NULL: bad key or no memory). */
static struct share_group *share_group_get(struct shares *sh, const char *key, size_t len,
                                           bool create)
{
    struct share_group *g = strmap_get(&sh->map, key, len);
    const char *f;
    size_t flen;
    if (g || !create || !share_parse(key, len, &f, &flen))
        return g;
    if (!(g = calloc(1, sizeof(*g))) || !(g->key = malloc(len + 1)))
        goto fail;
    memcpy(g->key, key, len);
    g->key[len] = '\0';
    g->key_len = len;
    g->filter = g->key + (f - key);
    g->filter_len = flen;
    if (strmap_put(&sh->map, g->key, len, g) < 0)
        goto fail;
    if (topic_tree_subscribe(sh->tree, g->filter, flen, g, 0) < 0) {
        strmap_del(&sh->map, g->key, len);
        goto fail;
    }
    return g;
fail:
    if (g)
        free(g->key);
    free(g);
    return NULL;
}

/* A group with no member left anywhere goes. */
static void share_group_maybe_free(struct shares *sh, struct share_group *g)
{
    if (g->n || g->np)
        return;
    topic_tree_unsubscribe(sh->tree, g->filter, g->filter_len, g);
    strmap_del(&sh->map, g->key, g->key_len);
    share_group_free(NULL, 0, g, NULL);
}

int share_join(struct broker *b, struct shares *sh, const char *key, size_t len, struct session *s,
               uint8_t opts)
{
    (void)b;
    struct share_group *g = share_group_get(sh, key, len, true);
    if (!g)
        return -1;
    for (size_t i = 0; i < g->n; i++)
        if (g->m[i].s == s) { /* a re-subscribe: new options */
            g->m[i].opts = opts;
            return 0;
        }
    size_t cap = buf_grow((void **)&g->m, g->cap, g->n + 1, sizeof(*g->m), SIZE_MAX);
    if (!cap) {
        share_group_maybe_free(sh, g);
        return -1;
    }
    g->cap = cap;
    g->m[g->n++] = (struct share_member){s, opts};
    return 0;
}

void share_leave(struct shares *sh, const char *key, size_t len, struct session *s)
{
    struct share_group *g = share_group_get(sh, key, len, false);
    if (!g)
        return;
    for (size_t i = 0; i < g->n; i++)
        if (g->m[i].s == s) {
            g->m[i] = g->m[--g->n];
            break;
        }
    share_group_maybe_free(sh, g);
}

int share_remote(struct shares *sh, const char *key, size_t len, void *peer, bool add)
{
    struct share_group *g = share_group_get(sh, key, len, add);
    if (!g)
        return add ? -1 : 0;
    for (size_t i = 0; i < g->np; i++)
        if (g->peers[i] == peer) {
            if (!add) {
                g->peers[i] = g->peers[--g->np];
                share_group_maybe_free(sh, g);
            }
            return 0;
        }
    if (!add)
        return 0;
    size_t cap = buf_grow((void **)&g->peers, g->pcap, g->np + 1, sizeof(*g->peers), SIZE_MAX);
    if (!cap) {
        share_group_maybe_free(sh, g);
        return -1;
    }
    g->pcap = cap;
    g->peers[g->np++] = peer;
    return 0;
}

struct share_forget {
    void *peer;
    struct share_group **drop;
    size_t n, cap;
};

static void share_forget_one(const char *key, size_t len, void *value, void *ctx)
{
    (void)key;
    (void)len;
    struct share_forget *f = ctx;
    struct share_group *g = value;
    for (size_t i = 0; i < g->np; i++)
        if (g->peers[i] == f->peer) {
            g->peers[i] = g->peers[--g->np];
            break;
        }
    if (g->n || g->np)
        return;
    size_t cap = buf_grow((void **)&f->drop, f->cap, f->n + 1, sizeof(*f->drop), SIZE_MAX);
    if (cap) { /* else it stays, empty, until its next change */
        f->cap = cap;
        f->drop[f->n++] = g;
    }
}

/* Empty groups are freed after the walk: the map must not change under it. */
void share_remote_forget(struct shares *sh, void *peer)
{
    struct share_forget f = {peer, NULL, 0, 0};
    strmap_foreach(&sh->map, share_forget_one, &f);
    for (size_t i = 0; i < f.n; i++)
        share_group_maybe_free(sh, f.drop[i]);
    free(f.drop);
}

static void share_hit(void *subscriber, uint8_t opts, void *ctx)
{
    (void)opts;
    struct shares *sh = ctx;
    size_t cap = buf_grow((void **)&sh->hit, sh->hitcap, sh->nhit + 1, sizeof(*sh->hit), SIZE_MAX);
    if (!cap)
        return; /* out of memory: that group misses the message (counted by the caller) */
    sh->hitcap = cap;
    sh->hit[sh->nhit++] = subscriber;
}

/* xorshift64: the random policy's choices. */
static uint64_t share_rand(struct shares *sh)
{
    sh->rng ^= sh->rng << 13;
    sh->rng ^= sh->rng >> 7;
    sh->rng ^= sh->rng << 17;
    return sh->rng;
}

/* Whether local member m can take msg now (online, window room, the ACL lets it read). */
static bool share_member_ready(struct broker *b, const struct share_member *m,
                               const struct message *msg)
{
    uint8_t qos = msg->qos < (m->opts & SUB_QOS) ? msg->qos : (m->opts & SUB_QOS);
    return session_ready(b, m->s, qos) &&
           broker_acl_allows(b, m->s, msg->topic, msg->topic_len, ACL_READ);
}

/* The candidate index (locals 0..n-1, then peers) that takes msg, or -1 for none; leaving is
 * never chosen, peers_ok false keeps to local members. */
static long share_pick(struct broker *b, struct shares *sh, struct share_group *g,
                       const struct message *msg, const struct session *from,
                       const struct session *leaving, bool peers_ok)
{
    size_t np = peers_ok ? g->np : 0, total = g->n + np;
    if (total == 0)
        return -1;
    size_t start;
    switch (broker_cfg(b)->shared_policy) {
    case SHARE_RANDOM:
        start = (size_t)(share_rand(sh) % total);
        break;
    case SHARE_HASH_CLIENTID: {
        const char *id = from ? session_client_id(from) : "";
        start = (size_t)(hash_fnv1a_str(id) % total);
        break;
    }
    case SHARE_LOCAL_FIRST:
        start = 0;
        break;
    default:
        start = g->rr++ % total;
        break;
    }
    /* From the starting point, the first candidate with room that keeps up (at most
     * SHARE_BEHIND unacknowledged; a peer counts as keeping up: it chooses among its own), so
     * equal members take strict turns and a slow one is passed over once it falls behind; if
     * every one with room is behind, the least behind. */
    long best = -1, fallback = -1;
    size_t best_load = SIZE_MAX;
    for (size_t i = 0; i < total; i++) {
        size_t k = (start + i) % total;
        if (k >= g->n)
            return (long)k;
        const struct share_member *m = &g->m[k];
        if (m->s == leaving || (m->s == from && (m->opts & SUB_NO_LOCAL)))
            continue;
        if (share_member_ready(b, m, msg)) {
            size_t load = session_unacked(m->s);
            if (load <= SHARE_BEHIND)
                return (long)k;
            if (load < best_load) {
                best = (long)k;
                best_load = load;
            }
        } else if (fallback < 0 &&
                   broker_acl_allows(b, m->s, msg->topic, msg->topic_len, ACL_READ)) {
            fallback = (long)k; /* busy or offline: it queues, if nobody has room */
        }
    }
    return best >= 0 ? best : fallback;
}

/* Hand msg to local member k of g. */
static void share_give(struct broker *b, struct share_group *g, size_t k, struct message *msg)
{
    const struct share_member *m = &g->m[k];
    uint8_t qos = msg->qos < (m->opts & SUB_QOS) ? msg->qos : (m->opts & SUB_QOS);
    session_deliver_shared(b, m->s, msg, qos, msg->retain && (m->opts & SUB_RETAIN_AS_PUBLISHED),
                           g);
}

bool share_any(const struct shares *sh, const char *topic, size_t len)
{
    return sh->map.count && topic_tree_has_match(sh->tree, topic, len);
}

size_t share_route(struct broker *b, struct shares *sh, struct message *msg,
                   const struct session *from, struct share_pick *picks, size_t max, size_t *npicks)
{
    *npicks = 0;
    if (sh->map.count == 0)
        return 0;
    sh->nhit = 0;
    topic_tree_match(sh->tree, msg->topic, msg->topic_len, share_hit, sh);
    size_t reached = 0;
    for (size_t i = 0; i < sh->nhit; i++) {
        struct share_group *g = sh->hit[i];
        long k = share_pick(b, sh, g, msg, from, NULL, *npicks < max);
        if (k < 0)
            continue;
        reached++;
        if ((size_t)k < g->n) {
            share_give(b, g, (size_t)k, msg);
        } else {
            picks[*npicks] =
                (struct share_pick){g->peers[k - (long)g->n], g->key, g->key_len, false};
            (*npicks)++;
        }
    }
    return reached;
}

int share_deliver_local(struct broker *b, struct shares *sh, struct message *msg, const char *key,
                        size_t len, bool may_forward, struct share_pick *pick)
{
    struct share_group *g = share_group_get(sh, key, len, false);
    long k = g ? share_pick(b, sh, g, msg, NULL, NULL, false) : -1;
    if (k >= 0) {
        share_give(b, g, (size_t)k, msg);
        return 0;
    }
    if (!g || !may_forward || g->np == 0)
        return -1;
    /* Its members here are gone: a peer that has some takes it, once. */
    k = share_pick(b, sh, g, msg, NULL, NULL, true);
    if (k < (long)g->n)
        return -1;
    *pick = (struct share_pick){g->peers[k - (long)g->n], g->key, g->key_len, true};
    return 1;
}

int share_redeliver(struct broker *b, struct share_group *g, struct message *msg,
                    const struct session *leaving, struct share_pick *pick)
{
    struct shares *sh = broker_shares(b);
    long k = share_pick(b, sh, g, msg, NULL, leaving, true);
    if (k < 0)
        return -1;
    if ((size_t)k < g->n) {
        share_give(b, g, (size_t)k, msg);
        return 0;
    }
    *pick = (struct share_pick){g->peers[k - (long)g->n], g->key, g->key_len, false};
    return 1;
}
