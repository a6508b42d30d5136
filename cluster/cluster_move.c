/*
 * cluster_move.c - the session-move window, closed.
 *
 * When a persistent session moves from this node (the old one) to another (a takeover), peers
 * keep sending its messages here until the new node's routes reach them. So the old node keeps a
 * stub of the session for CLUSTER_MOVE_STUB_MS: its filters stay in this node's routes (their
 * removal is sent when the stub ends) and every PUBLISH that reaches this node and matches them,
 * local or from a peer, is passed to the new node for that session alone (StubPublish), with the
 * number its first node gave it.
 *
 * The new node may also have had the message directly, when the publisher's node already knew
 * its routes. Every PUBLISH it receives from a peer while a moved-in session is young is recorded
 * by number (per peer, numbers rise along one ordered stream). A stub copy from origin O numbered
 * q is a duplicate exactly when q was recorded from O; it is decided once O's stream to us has
 * passed q (the highest number received, or O's heartbeat's publish_seq), so a direct copy still
 * on its way cannot be missed. A copy of our own message is one we delivered ourselves if it was
 * published after the session arrived.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"
#include "strmap.h"

/* A session that moved away from here: where to, and its filters. */
struct move_stub {
    struct move_stub *next;
    char *id;
    struct peer *to;
    uint64_t expires;
    char **filters;
    size_t n, cap;
};

/* A session that moved in here, young enough for stub copies to arrive. */
struct move_in {
    struct move_in *next;
    char *id;
    uint64_t self_seq; /* our own numbers above it were delivered to it here */
    uint64_t until;
    /* Per peer, the highest number received from it when the session arrived: only numbers
     * recorded above it were delivered to the session here. */
    struct move_start {
        struct peer *p;
        uint64_t hi;
    } * starts;
    size_t nstarts;
};

/* A stub copy waiting for its origin's stream to pass its number. */
struct move_wait {
    struct move_wait *next;
    char *id;
    struct move_in *in;
    struct message *m;
    struct peer *origin;
    uint64_t seq;
    uint64_t deadline;
};

struct moves {
    struct move_stub *stubs;
    struct topic_tree *stub_tree; /* stub filters -> struct move_stub */
    struct strmap held;           /* filter -> count of stubs holding its route */
    struct move_in *ins;
    struct move_wait *waits;
    uint64_t forwarded, delivered, duplicates;
};

int move_init(struct cluster *c)
{
    c->moves = calloc(1, sizeof(*c->moves));
    if (!c->moves || !(c->moves->stub_tree = topic_tree_new()))
        return -1;
    strmap_init(&c->moves->held);
    return 0;
}

static void move_stub_free(struct move_stub *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->filters[i]);
    free(s->filters);
    free(s->id);
    free(s);
}

static bool move_recorded(const struct peer *p, uint64_t seq);

static void move_in_free(struct move_in *in)
{
    free(in->starts);
    free(in->id);
    free(in);
}

static void move_wait_free(struct move_wait *w)
{
    message_unref(w->m);
    free(w->id);
    free(w);
}

void move_free(struct cluster *c)
{
    struct moves *mv = c->moves;
    if (!mv)
        return;
    while (mv->stubs) {
        struct move_stub *s = mv->stubs;
        mv->stubs = s->next;
        move_stub_free(s);
    }
    while (mv->ins) {
        struct move_in *in = mv->ins;
        mv->ins = in->next;
        move_in_free(in);
    }
    while (mv->waits) {
        struct move_wait *w = mv->waits;
        mv->waits = w->next;
        move_wait_free(w);
    }
    for (size_t i = 0; i < mv->held.cap; i++)
        if (mv->held.slots[i].key)
            free((void *)mv->held.slots[i].key);
    strmap_destroy(&mv->held);
    topic_tree_free(mv->stub_tree);
    free(mv); /* the peers' recorded numbers go with the peers */
    c->moves = NULL;
}

/* ---- the old node ---- */

static void move_stub_unhold(struct cluster *c, struct move_stub *s)
{
    for (size_t i = 0; i < s->n; i++) {
        topic_tree_unsubscribe(c->moves->stub_tree, s->filters[i], strlen(s->filters[i]), s);
        move_route_release(c, s->filters[i]);
    }
}

/* End the stubs of id: it moved again, or came back here. */
static void move_stub_drop_id(struct cluster *c, const char *id)
{
    for (struct move_stub **pp = &c->moves->stubs; *pp;) {
        struct move_stub *s = *pp;
        if (strcmp(s->id, id) != 0) {
            pp = &s->next;
            continue;
        }
        *pp = s->next;
        c->nmove_stubs--;
        move_stub_unhold(c, s);
        move_stub_free(s);
    }
}

struct move_stub *move_stub_begin(struct cluster *c, struct peer *to, const char *id)
{
    struct move_stub *s = calloc(1, sizeof(*s));
    if (!s || !(s->id = strdup(id))) {
        free(s);
        return NULL;
    }
    s->to = to;
    return s;
}

void move_stub_filter(struct cluster *c, struct move_stub *s, const char *filter)
{
    struct moves *mv = c->moves;
    if (!s || s->n == SIZE_MAX / sizeof(char *) - 1)
        return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        char **nf = realloc(s->filters, cap * sizeof(*nf));
        if (!nf)
            return;
        s->filters = nf;
        s->cap = cap;
    }
    size_t len = strlen(filter);
    char *f = strdup(filter);
    if (!f || topic_tree_subscribe(mv->stub_tree, f, len, s, 0) < 0) {
        free(f);
        return;
    }
    s->filters[s->n++] = f;
    /* Hold its route: counted per filter, the key owned by the map. */
    uintptr_t n = (uintptr_t)strmap_get(&mv->held, f, len);
    if (n) {
        strmap_put(&mv->held, f, len, (void *)(n + 1));
        return;
    }
    char *key = strdup(f);
    if (key && strmap_put(&mv->held, key, len, (void *)(uintptr_t)1) != 0)
        free(key);
}

void move_stub_end(struct cluster *c, struct move_stub *s, bool moved)
{
    if (!s)
        return;
    if (!moved || s->n == 0 || !s->to) {
        move_stub_unhold(c, s);
        move_stub_free(s);
        return;
    }
    move_stub_drop_id(c, s->id); /* an older stub of it would pass each message on twice */
    s->expires = uv_now(c->loop) + CLUSTER_MOVE_STUB_MS;
    s->next = c->moves->stubs;
    c->moves->stubs = s;
    c->nmove_stubs++;
}

bool move_route_held(struct cluster *c, const char *filter, size_t len)
{
    return c->moves && strmap_get(&c->moves->held, filter, len) != NULL;
}

void move_route_release(struct cluster *c, const char *filter)
{
    struct moves *mv = c->moves;
    size_t len = strlen(filter);
    uintptr_t n = (uintptr_t)strmap_get(&mv->held, filter, len);
    if (n > 1) {
        strmap_put(&mv->held, filter, len, (void *)(n - 1));
        return;
    }
    if (n == 1) {
        const struct strmap_slot *slot = NULL;
        for (size_t i = 0; i < mv->held.cap; i++)
            if (mv->held.slots[i].key && mv->held.slots[i].len == len &&
                memcmp(mv->held.slots[i].key, filter, len) == 0)
                slot = &mv->held.slots[i];
        char *key = slot ? (char *)slot->key : NULL;
        strmap_del(&mv->held, filter, len);
        free(key);
    }
    routes_local_settle(c, filter, len);
}

/* Collects the distinct stubs a topic matches. */
struct stub_match {
    struct move_stub *found[16];
    size_t n;
};

static void move_stub_matched(void *subscriber, uint8_t qos, void *ctx)
{
    (void)qos;
    struct stub_match *sm = ctx;
    for (size_t i = 0; i < sm->n; i++)
        if (sm->found[i] == subscriber)
            return;
    if (sm->n < sizeof(sm->found) / sizeof(sm->found[0]))
        sm->found[sm->n++] = subscriber;
}

void move_stub_forward(struct cluster *c, const struct message *msg, const char *origin,
                       uint64_t seq)
{
    struct stub_match sm = {.n = 0};
    topic_tree_match(c->moves->stub_tree, msg->topic, msg->topic_len, move_stub_matched, &sm);
    if (!sm.n)
        return;
    /* A local PUBLISH is a view of the client's packet (message_view_init): its topic is not
     * NUL-terminated, and protobuf-c encodes a string up to its NUL. */
    char *topic = strndup(msg->topic, msg->topic_len);
    if (!topic) {
        log_error(c->log, "cluster: out of memory passing a PUBLISH on to a moved session");
        return;
    }
    for (size_t i = 0; i < sm.n; i++) {
        struct move_stub *s = sm.found[i];
        if (!s->to->open)
            continue;
        Cl__StubPublish sp = CL__STUB_PUBLISH__INIT;
        Cl__Publish pb = CL__PUBLISH__INIT;
        Cl__Envelope env = CL__ENVELOPE__INIT;
        publish_fill(&pb, msg, NULL, uv_now(c->loop));
        pb.topic = topic;
        pb.retain = false;
        sp.client_id = s->id;
        sp.msg = &pb;
        sp.origin = (char *)origin;
        sp.seq = seq;
        env.body_case = CL__ENVELOPE__BODY_STUB_PUBLISH;
        env.stub_publish = &sp;
        struct wbuf *w = cluster_pack(c, &env);
        if (w) {
            if (peer_send(s->to, w))
                c->moves->forwarded++;
            wbuf_unref(w);
        }
    }
    free(topic);
}

/* ---- the new node ---- */

void move_in_begin(struct cluster *c, const char *id)
{
    struct moves *mv = c->moves;
    struct move_in *in = mv->ins;
    while (in && strcmp(in->id, id) != 0)
        in = in->next;
    move_stub_drop_id(c, id); /* it is here again: nothing to pass on */
    if (!in) {                /* else it came back: its window starts again */
        if (!(in = calloc(1, sizeof(*in))) || !(in->id = strdup(id))) {
            free(in);
            return;
        }
        in->next = mv->ins;
        mv->ins = in;
        c->nmove_ins++;
    }
    size_t n = 0;
    for (struct peer *p = c->peers; p; p = p->next)
        n++;
    free(in->starts);
    in->nstarts = 0;
    if ((in->starts = calloc(n ? n : 1, sizeof(*in->starts))))
        for (struct peer *p = c->peers; p; p = p->next)
            in->starts[in->nstarts++] = (struct move_start){p, p->pub_rx_hi};
    in->self_seq = c->seq;
    in->until = uv_now(c->loop) + 2 * CLUSTER_MOVE_STUB_MS;
}

/* Did the session get origin's message seq directly here, after it arrived? */
static bool move_had(const struct move_in *in, const struct peer *o, uint64_t seq)
{
    uint64_t start = UINT64_MAX;
    for (size_t i = 0; i < in->nstarts; i++)
        if (in->starts[i].p == o)
            start = in->starts[i].hi;
    return seq > start && move_recorded(o, seq);
}

bool move_in_had(const struct cluster *c, const char *id, const struct peer *o, uint64_t seq)
{
    const struct move_in *in = c->moves->ins;
    while (in && strcmp(in->id, id) != 0)
        in = in->next;
    return in && move_had(in, o, seq);
}

void move_record(struct peer *p, uint64_t seq)
{
    if (p->win_n == p->win_cap) {
        if (p->win_cap >= CLUSTER_MOVE_RECORD_MAX)
            return; /* bounded: past it, a stub copy may be delivered twice */
        size_t cap = p->win_cap ? p->win_cap * 2 : 1024;
        uint64_t *n = realloc(p->win_seqs, cap * sizeof(*n));
        if (!n)
            return;
        p->win_seqs = n;
        p->win_cap = cap;
    }
    p->win_seqs[p->win_n++] = seq;
}

static bool move_recorded(const struct peer *p, uint64_t seq)
{
    size_t lo = 0, hi = p->win_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->win_seqs[mid] < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < p->win_n && p->win_seqs[lo] == seq;
}

static void move_deliver(struct cluster *c, const char *id, struct message *m)
{
    if (broker_deliver_session(c->b, id, m))
        c->moves->delivered++;
}

/* Has origin's stream to us passed seq (so a direct copy would have arrived)? */
static bool move_passed(const struct peer *o, uint64_t seq)
{
    return o->pub_rx_hi >= seq || o->seq_horizon >= seq;
}

void move_on_stub(struct cluster *c, struct peer *p, const Cl__StubPublish *sp)
{
    struct moves *mv = c->moves;
    if (!sp->client_id || !sp->client_id[0] || !sp->msg || !sp->origin) {
        cluster_bad_input(c, p->name, "an invalid stub publish");
        return;
    }
    struct wire_publish wp;
    publish_from_pb(sp->msg, &wp);
    struct message *m = publish_to_message(&wp, false, uv_now(c->loop));
    if (!m) {
        cluster_bad_input(c, p->name, "an invalid stub publish");
        return;
    }
    struct move_in *in = mv->ins;
    while (in && strcmp(in->id, sp->client_id) != 0)
        in = in->next;
    struct peer *o = strcmp(sp->origin, c->self) == 0 ? NULL : cluster_peer_find(c, sp->origin);
    bool dup = false, decided = true;
    if (!in) {
        dup = false; /* not a young move here: nothing to compare with */
    } else if (strcmp(sp->origin, c->self) == 0) {
        dup = sp->seq > in->self_seq; /* we published it after it arrived: it had it */
    } else if (o && o->open) {
        if (move_passed(o, sp->seq))
            dup = move_had(in, o, sp->seq);
        else
            decided = false;
    }
    if (!decided) {
        struct move_wait *w = calloc(1, sizeof(*w));
        if (w && (w->id = strdup(sp->client_id))) {
            w->m = m;
            w->in = in;
            w->origin = o;
            w->seq = sp->seq;
            w->deadline = uv_now(c->loop) + 2 * CLUSTER_HEARTBEAT_MS + 500;
            w->next = mv->waits;
            mv->waits = w;
            return;
        }
        free(w);
    }
    if (dup)
        mv->duplicates++;
    else
        move_deliver(c, sp->client_id, m);
    message_unref(m);
}

void move_tick(struct cluster *c, uint64_t now)
{
    struct moves *mv = c->moves;
    for (struct move_wait **pp = &mv->waits; *pp;) {
        struct move_wait *w = *pp;
        bool passed = w->origin->open && move_passed(w->origin, w->seq);
        if (!passed && w->origin->open && now < w->deadline) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        if (passed && w->in && move_had(w->in, w->origin, w->seq))
            mv->duplicates++;
        else
            move_deliver(c, w->id, w->m);
        move_wait_free(w);
    }
    for (struct move_stub **pp = &mv->stubs; *pp;) {
        struct move_stub *s = *pp;
        if (now < s->expires && s->to->open) {
            pp = &s->next;
            continue;
        }
        *pp = s->next;
        c->nmove_stubs--;
        move_stub_unhold(c, s);
        move_stub_free(s);
    }
    for (struct move_in **pp = &mv->ins; *pp;) {
        struct move_in *in = *pp;
        if (now < in->until) {
            pp = &in->next;
            continue;
        }
        *pp = in->next;
        c->nmove_ins--;
        for (struct move_wait *w = mv->waits; w; w = w->next)
            if (w->in == in)
                w->in = NULL; /* decided without it: delivered */
        move_in_free(in);
    }
    if (!mv->ins && !mv->waits) {
        for (struct peer *p = c->peers; p; p = p->next)
            p->win_n = 0; /* no young move: nothing to compare with */
    }
}

void move_metrics(const struct cluster *c, struct cluster_metric out[MOVE_METRICS])
{
    const struct moves *mv = c->moves;
    out[0] = (struct cluster_metric){"sol_cluster_move_forwarded_total", "counter",
                                     "messages a moved session's old node passed on to its new one",
                                     mv ? mv->forwarded : 0};
    out[1] = (struct cluster_metric){"sol_cluster_move_delivered_total", "counter",
                                     "of those, delivered to the session here (it missed them)",
                                     mv ? mv->delivered : 0};
    out[2] = (struct cluster_metric){"sol_cluster_move_duplicates_total", "counter",
                                     "of those, skipped here: the session had them already",
                                     mv ? mv->duplicates : 0};
}
