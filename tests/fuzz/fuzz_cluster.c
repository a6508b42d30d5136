/*
 * fuzz_cluster.c - libFuzzer target for what a node decodes of a frame from the cluster port.
 *
 * Every input is one Frame (one nng message). It is split with wire_next_envelope as
 * cluster_handle_frame splits it; each envelope is read in place by wire_parse_envelope (the
 * PUBLISH fast path) and unpacked by protobuf-c, and what the receiver decodes further from a kind,
 * without a live cluster, is decoded too, with the receiver's own checks in front:
 *  - Publish/Retain, StubPublish, RetainSync items, TakeoverReply messages: publish_to_message;
 *  - Handover answers: each kept Publish envelope through wire_parse_envelope and
 *    publish_to_message, as handover_apply does;
 *  - RouteDelta / RouteSync filters: into a route tree (validated like routes_tree_add, removals
 *    not), matched against the frame's PUBLISH topics;
 *  - ReplicaPut: the session snapshot restored into a broker (node/persist.c's reader, as a
 *    promotion does), then taken over again (what a takeover reply sends), so nothing stays;
 *  - TakeoverReply: its subscriptions, messages and ids restored the same way;
 * and a PUBLISH both decoders take must read alike in both.
 * The dispatch itself (cluster.c) needs members, peers and links; it is not linked here.
 * libFuzzer needs state across inputs for the broker, hence the statics (test-only).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "cluster_int.h"
#include "config.h"
#include "message.h"
#include "share.h"
#include "topic.h"

#define FUZZ_CLIENT "fz"

static uv_loop_t loop; /* one broker, never started, for the whole run */
static struct broker *b;

/* What the decoders hand on: counted, so that the compiler keeps the calls. */
static size_t fuzz_sink;

/* A decoded Publish as the receiver would build its message; NULL when it rejects it. */
static struct message *fuzz_message(const struct wire_publish *wp, bool retain)
{
    struct message *m = publish_to_message(wp, retain, 1000);
    if (m)
        fuzz_sink += m->topic_len + m->payload_len;
    return m;
}

/* A protobuf-c Publish (StubPublish, RetainSync, a moved message): viewed and built. */
static void fuzz_pb_publish(const Cl__Publish *pb, bool retain)
{
    struct wire_publish wp;
    if (!pb)
        return;
    publish_from_pb(pb, &wp);
    struct message *m = fuzz_message(&wp, retain);
    if (m)
        message_unref(m);
}

/* A filter from the wire into the route tree, checked as routes_tree_add checks it. */
static void fuzz_route_add(struct topic_tree *t, const char *f)
{
    const char *gf;
    size_t gl, len = strlen(f);
    if (len == 0 || len > UINT16_MAX || !topic_filter_valid(f, len))
        return;
    topic_tree_subscribe(t, f, len, &fuzz_sink, 0);
    if (share_parse(f, len, &gf, &gl))
        fuzz_sink += gl;
}

/* One kept envelope of a Handover answer, read as handover_apply reads it. */
static void fuzz_handover_entry(const uint8_t *env, size_t len)
{
    struct wire_envelope we;
    if (wire_parse_envelope(env, len, &we) != 1 || we.body_field != CL__ENVELOPE__BODY_PUBLISH)
        return;
    struct message *m = fuzz_message(&we.pub, false);
    if (m)
        message_unref(m);
}

/* A moved session's pieces, checked as takeover_on_reply checks them, restored under FUZZ_CLIENT. */
static void fuzz_takeover_reply(const Cl__TakeoverReply *r)
{
    for (size_t i = 0; i < r->n_subs; i++) {
        if (!publish_moved_sub_valid(r->subs[i]))
            continue;
        broker_session_restore_sub(b, FUZZ_CLIENT, r->subs[i]->filter, (uint8_t)r->subs[i]->qos,
                                   r->subs[i]->subid);
    }
    for (size_t i = 0; i < r->n_msgs; i++) {
        const Cl__SessionMsg *sm = r->msgs[i];
        struct message *m = NULL;
        if (publish_moved_msg(sm, 1000, &m)) {
            struct session_msg_info info = {(uint16_t)sm->packet_id, (uint8_t)sm->qos,
                                            (uint8_t)sm->state, sm->retain};
            broker_session_restore_msg(b, FUZZ_CLIENT, m, &info);
        }
        if (m)
            message_unref(m);
    }
    for (size_t i = 0; i < r->n_rx_ids; i++)
        if (r->rx_ids[i] && r->rx_ids[i] <= UINT16_MAX)
            broker_session_restore_rx_id(b, FUZZ_CLIENT, (uint16_t)r->rx_ids[i]);
    if (r->next_id && r->next_id <= UINT16_MAX)
        broker_session_restore_next_id(b, FUZZ_CLIENT, (uint16_t)r->next_id);
    if (r->session_expiry)
        broker_session_restore_expiry(b, FUZZ_CLIENT, r->session_expiry);
}

/* A restored subscription, as replica_route_add hears of it. */
static void fuzz_on_sub(void *ctx, const char *filter)
{
    (void)ctx;
    fuzz_sink += strlen(filter);
}

/* A visited message of the session taken back (its bytes read, as a reply would encode them). */
static void fuzz_visit_msg(void *ctx, struct message *msg, const struct session_msg_info *info)
{
    (void)ctx;
    if (msg)
        fuzz_sink += msg->topic_len + msg->payload_len;
    fuzz_sink += info->id;
}

/* The body protobuf-c decoded, decoded further as its handler would. */
static void fuzz_body(const Cl__Envelope *e, struct topic_tree *routes)
{
    switch (e->body_case) {
    case CL__ENVELOPE__BODY_ROUTE_DELTA:
        for (size_t i = 0; i < e->route_delta->n_added; i++)
            fuzz_route_add(routes, e->route_delta->added[i]);
        for (size_t i = 0; i < e->route_delta->n_removed; i++) /* not validated by the receiver */
            topic_tree_unsubscribe(routes, e->route_delta->removed[i],
                                   strlen(e->route_delta->removed[i]), &fuzz_sink);
        break;
    case CL__ENVELOPE__BODY_ROUTE_SYNC:
        for (size_t i = 0; i < e->route_sync->n_filters; i++)
            fuzz_route_add(routes, e->route_sync->filters[i]);
        break;
    case CL__ENVELOPE__BODY_PUBLISH:
    case CL__ENVELOPE__BODY_RETAIN:
        fuzz_pb_publish(e->body_case == CL__ENVELOPE__BODY_PUBLISH ? e->publish : e->retain,
                        e->body_case == CL__ENVELOPE__BODY_RETAIN);
        break;
    case CL__ENVELOPE__BODY_RETAIN_SYNC:
        for (size_t i = 0; i < e->retain_sync->n_items; i++)
            fuzz_pb_publish(e->retain_sync->items[i], true);
        break;
    case CL__ENVELOPE__BODY_STUB_PUBLISH:
        fuzz_pb_publish(e->stub_publish->msg, false);
        break;
    case CL__ENVELOPE__BODY_HANDOVER:
        for (size_t i = 0; i < e->handover->n_publishes; i++)
            fuzz_handover_entry(e->handover->publishes[i].data, e->handover->publishes[i].len);
        break;
    case CL__ENVELOPE__BODY_TAKEOVER_REPLY:
        fuzz_takeover_reply(e->takeover_reply);
        break;
    case CL__ENVELOPE__BODY_REPLICA_PUT: {
        const Cl__ReplicaPut *rp = e->replica_put;
        size_t idl = rp->client_id ? strlen(rp->client_id) : 0;
        if (idl == 0 || idl > UINT16_MAX || rp->state.len == 0)
            break; /* refused by replica_on_put before it is kept */
        broker_session_restore_state(b, FUZZ_CLIENT, rp->state.data, rp->state.len, fuzz_on_sub,
                                     NULL);
        break;
    }
    default:
        break;
    }
}

/* Bytes alike, NULL as empty; a protobuf-c string (cstr) ends at a NUL the wire's bytes may hold. */
static bool fuzz_same(const void *w, size_t wlen, const void *pb, size_t pblen, bool cstr)
{
    const char *nul = cstr && wlen ? memchr(w, '\0', wlen) : NULL;
    if (nul)
        wlen = (size_t)(nul - (const char *)w);
    return wlen == pblen && (!wlen || memcmp(w, pb, wlen) == 0);
}

/* The in-place reader and protobuf-c read one PUBLISH alike (cluster_wire.c's claim): a field they
 * disagree on is a finding. Only envelopes both take are compared: the reader alone takes a few
 * protobuf-c refuses (a body field of the wrong wire type before the PUBLISH), which is harmless. */
static void fuzz_agree(const struct wire_envelope *we, const Cl__Envelope *e)
{
    if ((unsigned)e->body_case != we->body_field)
        abort();
    struct wire_publish pb;
    const struct wire_publish *w = &we->pub;
    publish_from_pb(e->body_case == CL__ENVELOPE__BODY_PUBLISH ? e->publish : e->retain, &pb);
    bool same = fuzz_same(we->sender, we->sender_len, e->sender, strlen(e->sender), true) &&
                fuzz_same(w->topic, w->topic_len, pb.topic, pb.topic_len, true) &&
                fuzz_same(w->payload, w->payload_len, pb.payload, pb.payload_len, false) &&
                fuzz_same(w->props, w->props_len, pb.props, pb.props_len, false) &&
                fuzz_same(w->stamp.origin, w->stamp.origin_len, pb.stamp.origin,
                          pb.stamp.origin_len, true) &&
                (uint32_t)w->qos == pb.qos && w->retain == pb.retain &&
                w->stamp.hlc == pb.stamp.hlc && w->seq == pb.seq && w->expiry_ms == pb.expiry_ms &&
                w->nshares == pb.nshares && w->shares_only == pb.shares_only &&
                w->share_last_hop == pb.share_last_hop;
    for (size_t i = 0; same && i < w->nshares; i++)
        same = fuzz_same(w->shares[i], w->shares_len[i], pb.shares[i], pb.shares_len[i], true);
    if (!same)
        abort();
}

/* One envelope, by both decoders; a PUBLISH's topic is matched against the routes read so far. */
static void fuzz_envelope(const uint8_t *env, size_t len, struct topic_tree *routes)
{
    struct wire_envelope we;
    int kind = wire_parse_envelope(env, len, &we);
    if (kind == 1) {
        struct message *m = fuzz_message(&we.pub, we.body_field == CL__ENVELOPE__BODY_RETAIN);
        if (m) {
            fuzz_sink += topic_tree_has_match(routes, m->topic, m->topic_len);
            message_unref(m);
        }
        for (size_t i = 0; i < we.pub.nshares; i++)
            fuzz_sink += we.pub.shares_len[i];
    }
    Cl__Envelope *e = cl__envelope__unpack(NULL, len, env);
    if (!e)
        return;
    if (kind == 1)
        fuzz_agree(&we, e);
    fuzz_body(e, routes);
    cl__envelope__free_unpacked(e, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct session_visitor drop = {
        .sub = NULL, .msg = fuzz_visit_msg, .rx_id = NULL, .next_id = NULL, .expiry = NULL};
    if (!b) {
        struct sol_config cfg;
        char err[256];
        uv_loop_init(&loop);
        config_defaults(&cfg);
        cfg.log_level = LOG_LEVEL_ERROR;
        cfg.sys_interval = 0;
        b = broker_new(&loop, &cfg, err, sizeof(err)); /* not started: not listening */
        if (!b)
            abort();
    }
    struct topic_tree *routes = topic_tree_new();
    if (!routes)
        return 0;
    const uint8_t *pos = data, *end = data + size, *env;
    size_t env_len;
    while (wire_next_envelope(&pos, end, &env, &env_len) == 1)
        fuzz_envelope(env, env_len, routes);
    topic_tree_free(routes);
    broker_session_takeover(b, FUZZ_CLIENT, &drop); /* what was restored goes again */
    uv_run(&loop, UV_RUN_NOWAIT);
    return 0;
}
