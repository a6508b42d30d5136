/*
 * cluster_status.c - what the cluster tells operators: /cluster (JSON), its half of /metrics
 * (members, routes, peers, gossip; Prometheus text format 0.0.4), its condition for /readyz, and
 * the $SYS/broker/cluster/... topics. It attaches to the node's endpoint (ops/ops.h), which serves
 * /healthz and the broker's metrics itself.
 */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"

struct status_members {
    struct cluster *c;
    cJSON *arr;
};

static void status_add_member(const struct member *mb, void *ctx)
{
    struct status_members *sm = ctx;
    char addr[96];
    if (!cluster_member_listed(sm->c, mb))
        return; /* not authenticated (yet): never shown */
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return;
    snprintf(addr, sizeof(addr), "%s:%u", mb->host, mb->port);
    cJSON_AddStringToObject(o, "name", mb->name);
    cJSON_AddStringToObject(o, "address", addr);
    cJSON_AddStringToObject(o, "state", member_state_name(mb->state));
    cJSON_AddNumberToObject(o, "incarnation", (double)mb->incarnation);
    /* Where its MQTT clients connect: ours from the settings, a peer's from its heartbeats. */
    struct peer *p = strcmp(mb->name, sm->c->self) ? cluster_peer_find(sm->c, mb->name) : NULL;
    const char *client = p ? p->client_addr : sm->c->cfg->advertise_address;
    if (client[0])
        cJSON_AddStringToObject(o, "client_address", client);
    cJSON_AddItemToArray(sm->arr, o);
}

/* /cluster: this node's view of the membership (only itself while clustering is off). */
static int status_cluster_json(void *ctx, struct http_response *resp)
{
    struct cluster *c = ctx;
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_CreateArray();
    if (!root || !arr) {
        cJSON_Delete(root);
        cJSON_Delete(arr);
        return -1;
    }
    cJSON_AddStringToObject(root, "self", c->self);
    cJSON_AddItemToObject(root, "members", arr);
    struct status_members sm = {c, arr};
    if (c->ms) {
        membership_foreach(c->ms, status_add_member, &sm);
    } else {
        struct member me = {.state = MEMBER_ALIVE, .port = c->cfg->cluster_port};
        snprintf(me.name, sizeof(me.name), "%s", c->self);
        snprintf(me.host, sizeof(me.host), "%s",
                 c->cfg->cluster_bind[0] ? c->cfg->cluster_bind : broker_config(c->b)->bind);
        status_add_member(&me, &sm);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s)
        return -1;
    resp->status = 200;
    resp->content_type = "application/json";
    resp->body = s;
    resp->body_len = strlen(s);
    return 0;
}

/* One labelled series per peer; field selects the counter. */
static void metric_per_peer(struct prom *t, struct cluster *c, const char *name, const char *help,
                            size_t offset)
{
    prom_head(t, name, "counter", help);
    for (struct peer *p = c->peers; p; p = p->next) {
        char esc[160];
        prom_label_escape(p->name, esc, sizeof(esc));
        uint64_t v = *(const uint64_t *)((const char *)p + offset);
        prom_printf(t, "%s{peer=\"%s\"} %llu\n", name, esc, (unsigned long long)v);
    }
}

/* The cluster's half of /metrics, after the broker's (ops/metrics.c). */
static void status_metrics(void *ctx, struct prom *t)
{
    struct cluster *c = ctx;
    struct membership_stats ms = {0};
    if (c->ms)
        membership_get_stats(c->ms, &ms);

    struct cluster_metric rm[RETAINED_METRICS];
    retained_metrics(c, rm);
    for (size_t i = 0; i < RETAINED_METRICS; i++)
        prom_u64(t, rm[i].name, rm[i].type, rm[i].help, rm[i].value);
    struct cluster_metric pm[REPLICA_METRICS];
    replica_metrics(c, pm);
    for (size_t i = 0; i < REPLICA_METRICS; i++)
        prom_u64(t, pm[i].name, pm[i].type, pm[i].help, pm[i].value);
    struct cluster_metric mm[MOVE_METRICS];
    move_metrics(c, mm);
    for (size_t i = 0; i < MOVE_METRICS; i++)
        prom_u64(t, mm[i].name, mm[i].type, mm[i].help, mm[i].value);
    struct cluster_metric hm[HANDOVER_METRICS];
    handover_metrics(c, hm);
    for (size_t i = 0; i < HANDOVER_METRICS; i++)
        prom_u64(t, hm[i].name, hm[i].type, hm[i].help, hm[i].value);

    prom_head(t, "sol_cluster_members", "gauge", "Known members by state (self included).");
    static const enum member_state states[] = {MEMBER_ALIVE, MEMBER_SUSPECT, MEMBER_DEAD,
                                               MEMBER_LEFT};
    for (size_t i = 0; i < 4; i++) {
        size_t n = cluster_members_listed(c, states[i]);
        prom_printf(t, "sol_cluster_members{state=\"%s\"} %zu\n", member_state_name(states[i]), n);
    }
    size_t routes = 0, held = 0, paused_links = 0;
    uint64_t tx_dropped = 0, kept = 0, kept_bytes = 0, dups = 0;
    for (struct peer *p = c->peers; p; p = p->next) {
        if (p->holding)
            held += topic_tree_filter_count(p->routes);
        else
            routes += topic_tree_filter_count(p->routes);
        kept += p->log_count;
        kept_bytes += p->log_len - p->log_head;
        dups += p->pub_dups;
        pthread_mutex_lock(&p->mu);
        tx_dropped += p->tx_dropped;
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_lock(&c->in_mu);
    for (struct rx_link *l = c->links; l; l = l->next)
        paused_links += l->paused;
    pthread_mutex_unlock(&c->in_mu);
    prom_u64(t, "sol_routes", "gauge", "Remote filters known (sum over peers).", routes);
    prom_u64(t, "sol_cluster_routes_held", "gauge",
             "Filters of dead peers kept to store messages for them until they return.", held);
    prom_u64(t, "sol_cluster_kept_messages", "gauge",
             "QoS 1/2 messages forwarded or held for peers and not confirmed by them yet.", kept);
    prom_u64(t, "sol_cluster_kept_bytes", "gauge", "Bytes of those messages.", kept_bytes);
    prom_u64(t, "sol_cluster_duplicates_skipped_total", "counter",
             "Messages a peer sent again after a partition that were had already.", dups);
    prom_u64(t, "sol_local_routes", "gauge", "Filters with local subscribers.",
             topic_tree_filter_count(c->local));
    metric_per_peer(t, c, "sol_cluster_messages_forwarded_total", "PUBLISHes forwarded to a peer.",
                    offsetof(struct peer, fwd_msgs));
    metric_per_peer(t, c, "sol_cluster_bytes_forwarded_total",
                    "Bytes of PUBLISHes forwarded to a peer.", offsetof(struct peer, fwd_bytes));
    metric_per_peer(t, c, "sol_cluster_messages_received_total", "PUBLISHes received from a peer.",
                    offsetof(struct peer, rx_msgs));
    metric_per_peer(t, c, "sol_cluster_bytes_received_total",
                    "Topic and payload bytes of PUBLISHes received from a peer.",
                    offsetof(struct peer, rx_bytes));
    metric_per_peer(t, c, "sol_cluster_envelopes_sent_total",
                    "Cluster messages of every kind queued for a peer.",
                    offsetof(struct peer, sent_msgs));
    metric_per_peer(t, c, "sol_cluster_envelopes_received_total",
                    "Cluster messages of every kind received from a peer.",
                    offsetof(struct peer, rx_envelopes));
    prom_u64(t, "sol_cluster_send_dropped_total", "counter",
             "Cluster messages dropped unsent (peer gone or its queue full).", tx_dropped);
    prom_head(t, "sol_cluster_peer_queue_bytes", "gauge",
              "Bytes queued for a peer, not yet taken by its connection.");
    for (struct peer *p = c->peers; p; p = p->next) {
        pthread_mutex_lock(&p->mu);
        size_t q = p->stage_len + p->out_len - p->out_head;
        pthread_mutex_unlock(&p->mu);
        prom_printf(t, "sol_cluster_peer_queue_bytes{peer=\"%s\"} %zu\n", p->name, q);
    }
    prom_u64(t, "sol_cluster_peer_stalls_total", "counter",
             "Times a peer's queue made no progress for stall-timeout-ms while it held "
             "publishers back, so it stopped holding them back.",
             c->peer_stalls);
    prom_u64(t, "sol_cluster_links_paused", "gauge",
             "Inbound peer links not read now because a local subscriber they feed is behind.",
             paused_links);
    prom_head(t, "sol_gossip_messages_total", "counter", "Gossip datagrams.");
    prom_printf(t, "sol_gossip_messages_total{direction=\"sent\"} %llu\n",
                (unsigned long long)ms.gossip_sent);
    prom_printf(t, "sol_gossip_messages_total{direction=\"received\"} %llu\n",
                (unsigned long long)ms.gossip_received);
    uint64_t in_dropped = c->in_dropped;
    prom_u64(t, "sol_cluster_decode_errors_total", "counter",
             "Bad cluster input dropped: undecodable or invalid frames, strangers, gossip garbage.",
             c->decode_errors + ms.decode_errors);
    prom_u64(t, "sol_cluster_stranger_messages_total", "counter",
             "Cluster messages from nodes not in membership.", c->strangers);
    prom_u64(t, "sol_gossip_decode_errors_total", "counter", "Gossip datagrams dropped as bad.",
             ms.decode_errors);
    prom_u64(t, "sol_cluster_gossip_rejected_total", "counter",
             "Gossip datagrams refused by sealing: unsealed with a key, sealed without one, "
             "no key opens it, stale or replayed.",
             ms.gossip_rejected);
    prom_u64(t, "sol_cluster_inbox_dropped_total", "counter",
             "Cluster frames dropped on receipt: always 0, receiving pushes back instead.",
             in_dropped);
}

/* A member name usable as one topic level. */
static bool status_name_is_level(const char *name)
{
    return name[0] && !strpbrk(name, "/+#");
}

void status_sys_member(struct cluster *c, const struct member *m)
{
    char topic[160], val[96];
    if (m && status_name_is_level(m->name) && cluster_member_listed(c, m)) {
        snprintf(topic, sizeof(topic), "$SYS/broker/cluster/node/%s/state", m->name);
        broker_sys_set(c->b, topic, member_state_name(m->state));
        snprintf(topic, sizeof(topic), "$SYS/broker/cluster/node/%s/address", m->name);
        snprintf(val, sizeof(val), "%s:%u", m->host, m->port);
        broker_sys_set(c->b, topic, val);
        snprintf(topic, sizeof(topic), "$SYS/broker/cluster/node/%s/incarnation", m->name);
        snprintf(val, sizeof(val), "%llu", (unsigned long long)m->incarnation);
        broker_sys_set(c->b, topic, val);
    }
    broker_sys_set(c->b, "$SYS/broker/cluster/self", c->self);
    static const enum member_state states[] = {MEMBER_ALIVE, MEMBER_SUSPECT, MEMBER_DEAD,
                                               MEMBER_LEFT};
    for (size_t i = 0; i < 4; i++) {
        size_t n = cluster_members_listed(c, states[i]);
        snprintf(topic, sizeof(topic), "$SYS/broker/cluster/members/%s",
                 member_state_name(states[i]));
        snprintf(val, sizeof(val), "%zu", n);
        broker_sys_set(c->b, topic, val);
    }
}

/* /readyz asks this before it looks at the broker: a leaving node or one not synced yet with its
 * peers is not where clients should go. */
static const char *status_not_ready(void *ctx)
{
    struct cluster *c = ctx;
    if (cluster_ready(c))
        return NULL;
    return c->leaving ? "leaving" : "starting";
}

int status_attach(struct cluster *c)
{
    struct ops_part part = {
        .ctx = c,
        .path = "/cluster",
        .serve = status_cluster_json,
        .metrics = status_metrics,
        .not_ready = status_not_ready,
    };
    return c->ops ? ops_attach(c->ops, &part) : 0;
}
