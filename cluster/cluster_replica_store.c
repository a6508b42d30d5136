/*
 * cluster_replica_store.c - the replicas held here are in this node's store too, so that a holder
 * that restarts (or crashes together with the owner) still has them.
 *
 * Each replica is a 'p' record (node/persist.c keeps it opaque): owner, how far the owner had each
 * node's stream, the snapshot. The owner's turn is acknowledged once it is on our disk
 * (peerlog_durable). At start the records are held again, marked restored: when the owner says it
 * has sent all it wants us to hold (an empty ReplicaDrop after its re-send), the restored ones it
 * did not send are stale and go; when the owner is not alive a while after we are ready (it died
 * with us, or while we were down), they are promoted as for a dead owner.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster_replica_int.h"

/* Our store keeps h too ('p' record: owner, origins, snapshot), so that a holder that restarts
 * still has it; the owner's turn is acknowledged once it is on disk (peerlog_durable). */
void replica_record(struct cluster *c, struct replica_held *h)
{
    size_t ol = strlen(h->owner), n = 2 + ol + 2 + h->len;
    for (size_t i = 0; i < h->norigins; i++)
        n += 2 + strlen(h->origins[i].node) + 8;
    uint8_t *v = malloc(n), *at = v;
    if (!v) {
        log_error(c->log, "store: out of memory writing the replica of %s", h->id);
        return;
    }
    *at++ = (uint8_t)(ol >> 8);
    *at++ = (uint8_t)ol;
    memcpy(at, h->owner, ol);
    at += ol;
    *at++ = (uint8_t)(h->norigins >> 8);
    *at++ = (uint8_t)h->norigins;
    for (size_t i = 0; i < h->norigins; i++) {
        size_t l = strlen(h->origins[i].node);
        *at++ = (uint8_t)(l >> 8);
        *at++ = (uint8_t)l;
        memcpy(at, h->origins[i].node, l);
        at += l;
        for (int b = 7; b >= 0; b--)
            *at++ = (uint8_t)(h->origins[i].seq >> (8 * b));
    }
    memcpy(at, h->state, h->len);
    if (broker_replica_record(c->b, h->id, v, n) != 0)
        log_error(c->log, "store: out of memory writing the replica of %s", h->id);
    free(v);
}

/* Read n bytes of a replica record; NULL past its end. */
static const uint8_t *replica_take(const uint8_t **at, const uint8_t *end, size_t n)
{
    if ((size_t)(end - *at) < n)
        return NULL;
    const uint8_t *p = *at;
    *at += n;
    return p;
}

/* A 'p' record from our store at start: held again, until its owner is seen (it sends it anew,
 * or it went elsewhere) or is known gone (promoted). */
static void replica_restore_one(void *ctx, const char *id, const uint8_t *v, size_t len)
{
    struct cluster *c = ctx;
    const uint8_t *at = v, *end = v + len, *b;
    struct replica_held *h = calloc(1, sizeof(*h));
    if (!h || !(h->id = strdup(id)) || !(b = replica_take(&at, end, 2)))
        goto bad;
    size_t ol = (size_t)b[0] << 8 | b[1];
    const uint8_t *owner = replica_take(&at, end, ol);
    if (!owner || ol >= sizeof(h->owner) || !(b = replica_take(&at, end, 2)))
        goto bad;
    memcpy(h->owner, owner, ol);
    size_t no = (size_t)b[0] << 8 | b[1];
    if (no && !(h->origins = calloc(no, sizeof(*h->origins))))
        goto bad;
    for (size_t i = 0; i < no; i++) {
        const uint8_t *lb = replica_take(&at, end, 2), *name, *sq;
        size_t l = lb ? (size_t)lb[0] << 8 | lb[1] : 0;
        if (!lb || !(name = replica_take(&at, end, l)) || l >= sizeof(h->origins->node) ||
            !(sq = replica_take(&at, end, 8)))
            goto bad;
        memcpy(h->origins[i].node, name, l);
        for (int k = 0; k < 8; k++)
            h->origins[i].seq = h->origins[i].seq << 8 | sq[k];
        h->norigins++;
    }
    h->len = (size_t)(end - at);
    if (!h->len || !(h->state = malloc(h->len)))
        goto bad;
    memcpy(h->state, at, h->len);
    if (strmap_put(&c->rep->held, h->id, strlen(h->id), h) != 0)
        goto bad;
    h->restored = true;
    c->rep->nrestored++;
    return;
bad:
    log_error(c->log, "store: the replica of %s kept here is unreadable: skipped", id);
    if (h)
        replica_held_free(h);
    if (broker_replica_record(c->b, id, NULL, 0) != 0)
        log_error(c->log, "store: out of memory deleting the replica of %s", id);
}

void replica_restore(struct cluster *c)
{
    broker_replicas_restored(c->b, replica_restore_one, c);
    if (c->rep->nrestored)
        log_info(c->log, "cluster: %zu session replica(s) of other nodes restored from the store",
                 c->rep->nrestored);
}

/* p is alive: the replicas of its sessions restored from our store are stale (it sends those we
 * still hold anew; the others went elsewhere while we were down). */
void replica_restored_drop(struct cluster *c, struct peer *p)
{
    struct replicas *r = c->rep;
    struct replica_ids l = {0};
    for (size_t i = 0; r->nrestored && i < r->held.cap; i++) {
        struct replica_held *h = r->held.slots[i].key ? r->held.slots[i].value : NULL;
        if (h && h->restored && strcmp(h->owner, p->name) == 0)
            replica_ids_add(&l, h->id);
    }
    for (size_t i = 0; i < l.n; i++) {
        struct replica_held *h = strmap_get(&r->held, l.ids[i], strlen(l.ids[i]));
        if (h)
            replica_held_del(c, h);
    }
    replica_ids_free(&l);
}

/* Restored replicas whose owner is not alive once we are ready and a while passed: it is gone (a
 * dead member is forgotten by the others after a while, so we may never hear of it): promoted. */
void replica_restored_promote(struct cluster *c, uint64_t now)
{
    struct replicas *r = c->rep;
    if (!r->nrestored || !c->ready)
        return;
    if (!r->restored_seen)
        r->restored_seen = now;
    if (now - r->restored_seen < CLUSTER_RESTORED_PROMOTE_MS)
        return;
    struct replica_ids l = {0};
    for (size_t i = 0; i < r->held.cap; i++) {
        struct replica_held *h = r->held.slots[i].key ? r->held.slots[i].value : NULL;
        struct peer *o = h && h->restored ? cluster_peer_find(c, h->owner) : NULL;
        if (h && h->restored &&
            !(o && o->open && (o->state == MEMBER_ALIVE || o->state == MEMBER_SUSPECT)))
            replica_ids_add(&l, h->id);
    }
    for (size_t i = 0; i < l.n; i++) {
        struct replica_held *h = strmap_get(&r->held, l.ids[i], strlen(l.ids[i]));
        if (h)
            replica_promote(c, h, NULL);
    }
    replica_ids_free(&l);
}

int replica_ids_add(struct replica_ids *l, const char *id)
{
    char **n = realloc(l->ids, (l->n + 1) * sizeof(*n));
    if (!n)
        return -1;
    l->ids = n;
    if (!(l->ids[l->n] = strdup(id)))
        return -1;
    l->n++;
    return 0;
}

void replica_ids_free(struct replica_ids *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->ids[i]);
    free(l->ids);
}
