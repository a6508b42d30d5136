/*
 * cluster_publish.c - PUBLISH forwarding.
 *
 * A local PUBLISH is encoded once and queued once for each peer with at least one matching filter,
 * at the QoS it was published with (the receiving broker applies each subscriber's granted QoS).
 * What arrives from a peer is delivered locally and never forwarded again. A retained PUBLISH (or
 * clear) also goes to every other peer, stamped by cluster_retained.c, which merges what arrives.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"
#include "codec.h"

/* Pointers into msg and st: the protobuf-c view of one message, for the chunked senders. */
void publish_fill(Cl__Publish *pb, const struct message *msg, const struct wire_stamp *st,
                  uint64_t now)
{
    pb->topic = msg->topic;
    pb->payload.data = msg->payload;
    pb->payload.len = msg->payload_len;
    pb->qos = msg->qos;
    pb->retain = msg->retain;
    pb->props.data = msg->props;
    pb->props.len = msg->props_len;
    pb->expiry_ms = wire_expiry_left(msg, now);
    if (st) {
        pb->origin = (char *)st->origin; /* NUL-terminated: an interned node name */
        pb->hlc = st->hlc;
    }
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
    out->stamp.origin = pb->origin;
    out->stamp.origin_len = pb->origin ? strlen(pb->origin) : 0;
    out->stamp.hlc = pb->hlc;
    out->seq = pb->seq;
    out->props = pb->props.data;
    out->props_len = pb->props.len;
    out->expiry_ms = pb->expiry_ms;
    for (size_t i = 0; i < pb->n_shares && out->nshares < WIRE_SHARES_MAX; i++) {
        out->shares[out->nshares] = (const uint8_t *)pb->shares[i];
        out->shares_len[out->nshares++] = strlen(pb->shares[i]);
    }
    out->shares_only = pb->shares_only;
    out->share_last_hop = pb->share_last_hop;
}

bool publish_moved_sub_valid(const Cl__SessionSub *s)
{
    size_t len = s->filter ? strlen(s->filter) : 0;
    return len && len <= UINT16_MAX && topic_filter_valid(s->filter, len) && (s->qos & 3) <= 2 &&
           s->qos <= 0x0f;
}

bool publish_moved_msg(const Cl__SessionMsg *sm, uint64_t now, struct message **out)
{
    *out = NULL;
    bool pubrel = sm->state == SESSION_MSG_PUBREL_SENT;
    if (sm->msg && !pubrel) {
        struct wire_publish wp;
        publish_from_pb(sm->msg, &wp);
        *out = publish_to_message(&wp, sm->msg->retain, now);
    }
    bool bad = sm->qos < 1 || sm->qos > 2 || sm->state > SESSION_MSG_PUBREL_SENT ||
               sm->packet_id > UINT16_MAX || (pubrel && (sm->qos != 2 || !sm->packet_id)) ||
               (!pubrel && !*out);
    if (bad && *out) {
        message_unref(*out);
        *out = NULL;
    }
    return !bad;
}

/* Checked like a client's PUBLISH: a peer's bytes are not trusted to be a valid topic (the
 * properties are passed on as they came: the publisher's node validated them). */
struct message *publish_to_message(const struct wire_publish *wp, bool retain, uint64_t now)
{
    size_t tlen = wp->topic_len;
    if (!wp->topic || wp->qos > 2 || !codec_topic_name_valid(wp->topic, tlen))
        return NULL;
    uint64_t expire_at = wp->expiry_ms ? now + wp->expiry_ms : 0;
    return message_new5(wp->topic, tlen, wp->payload, wp->payload_len, (uint8_t)wp->qos, retain,
                        wp->props, wp->props_len, expire_at);
}

/* Whether picks name peer p. */
static bool publish_picked(const struct share_pick *picks, size_t n, const struct peer *p)
{
    for (size_t i = 0; i < n; i++)
        if (picks[i].peer == p)
            return true;
    return false;
}

/* A QoS 1/2 PUBLISH for a dead peer's held routes: into its log only, sent if it comes back. */
static void publish_hold(struct cluster *c, struct peer *p, const struct message *msg,
                         const struct wire_stamp *st, uint64_t seq)
{
    struct wire_plan pl;
    size_t n = wire_publish_plan(&pl, c->self, c->self_len, CL__ENVELOPE__BODY_PUBLISH, msg, st,
                                 seq, uv_now(c->loop));
    uint8_t *out = peerlog_reserve(p, seq, n);
    if (out)
        wire_write_planned(out, &pl, msg, seq);
}

size_t publish_hook(void *ctx, struct message *msg, const struct share_pick *picks, size_t npicks,
                    bool shares_only)
{
    struct cluster *c = ctx;
    size_t routed = 0; /* peers with a subscriber for it */
    struct wire_stamp st, *stp = NULL;
    if (msg->retain && !shares_only) { /* a live PUBLISH needs no stamp: only retained state */
        retained_local(c, msg, &st);
        stp = &st;
    }

    /* Encoded once, straight into the first peer's stage, and copied into the others'; a retained
     * message goes as a PUBLISH to peers with a matching route and as a Retain to the others. A
     * peer picked for shared groups gets its own encoding, with the groups' keys. */
    uint64_t seq = ++c->seq;
    if (c->nmove_stubs && !shares_only) /* a session that just moved away still wants it */
        move_stub_forward(c, msg, c->self, seq);
    const uint8_t *enc[2] = {NULL, NULL}; /* [0] PUBLISH, [1] Retain */
    struct wire_plan plan[2];
    size_t len[2] = {0, 0};
    for (struct peer *p = c->peers; p; p = p->next) {
        if (!p->open) {
            if (p->holding && msg->qos && !shares_only &&
                topic_tree_has_match(p->routes, msg->topic, msg->topic_len))
                publish_hold(c, p, msg, stp, seq);
            continue;
        }
        bool picked = npicks && publish_picked(picks, npicks, p);
        bool routes = !shares_only && topic_tree_has_match(p->routes, msg->topic, msg->topic_len);
        int k = routes || picked ? 0 : msg->retain && !shares_only ? 1 : -1;
        if (k < 0)
            continue;
        routed += routes;
        if (picked) {
            struct wire_plan own;
            /* Stamped like any retained PUBLISH: the peer also stores it (it gets no Retain). */
            size_t n = wire_publish_plan(&own, c->self, c->self_len, CL__ENVELOPE__BODY_PUBLISH,
                                         msg, stp, seq, uv_now(c->loop));
            n = wire_plan_shares(&own, picks, npicks, p, shares_only || !routes);
            uint8_t *out = peer_stage(p, n);
            if (!out) {
                p->pub_dropped_full++;
                continue;
            }
            wire_write_planned(out, &own, msg, seq);
            if (msg->qos) {
                peerlog_add(p, seq, out, n);
                peerlog_forwarded(p, seq);
            }
            p->fwd_msgs++;
            p->fwd_bytes += n;
            peer_after_forward(p);
            continue;
        }
        if (!len[k])
            len[k] =
                wire_publish_plan(&plan[k], c->self, c->self_len,
                                  k == 0 ? CL__ENVELOPE__BODY_PUBLISH : CL__ENVELOPE__BODY_RETAIN,
                                  msg, stp, seq, uv_now(c->loop));
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
        if (k == 0 && msg->qos) {
            peerlog_add(p, seq, out, len[k]);
            peerlog_forwarded(p, seq);
        }
        if (k == 0) {
            p->fwd_msgs++;
            p->fwd_bytes += len[k];
        }
        peer_after_forward(p);
    }
    return routed;
}

void publish_on_remote(struct cluster *c, struct peer *p, const struct wire_publish *wp,
                       bool deliver)
{
    if (deliver) {
        /* A live delivery: the retain flag as published, cleared for every subscription but one
         * with Retain As Published (broker_deliver_matched) [MQTT-3.3.1-9/12]. */
        struct message *m = publish_to_message(wp, wp->retain, uv_now(c->loop));
        if (!m) {
            cluster_bad_input(c, p->name, "an invalid PUBLISH");
            return;
        }
        p->rx_msgs++;
        p->rx_bytes += m->topic_len + m->payload_len;
        /* A local subscriber that is behind pauses the link this came on (flow.h): its next
         * frames wait, and TCP pushes back on the sending node. */
        broker_flow_enter(c->b, c->rx_current ? &c->rx_current->src : NULL);
        if (!wp->shares_only)
            broker_deliver_remote(c->b, m);
        if (c->nmove_stubs && !wp->shares_only)
            move_stub_forward(c, m, p->name, wp->seq);
        for (size_t i = 0; i < wp->nshares; i++) /* the sender chose this node for them */
            broker_deliver_shared(c->b, m, (const char *)wp->shares[i], wp->shares_len[i],
                                  !wp->share_last_hop);
        broker_flow_leave(c->b);
        message_unref(m);
    }
    if (!deliver && !wp->retain) {
        cluster_bad_input(c, p->name, "a retained-message envelope without the retain flag");
        return;
    }
    if (wp->retain)
        retained_on_remote(c, p, wp);
}
