/*
 * cluster_status.c - what the operators' HTTP endpoint says: /healthz, /readyz, /cluster (JSON) and
 * /metrics (Prometheus text format 0.0.4). The server (http.c) parses requests and calls this
 * handler.
 */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"

/* A growing text buffer; on allocation failure it stops growing and reports failure at the end. */
struct text {
    char *s;
    size_t len, cap;
    bool failed;
};

static void text_printf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_printf(struct text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if (t->s && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 4096;
        while (cap <= t->len + (size_t)n)
            cap *= 2;
        char *s = realloc(t->s, cap);
        if (!s) {
            t->failed = true;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
}

static int status_text(struct http_response *resp, int status, const char *body)
{
    resp->status = status;
    resp->content_type = "text/plain; charset=utf-8";
    resp->body = strdup(body);
    resp->body_len = resp->body ? strlen(body) : 0;
    return resp->body ? 0 : -1;
}

static void status_add_member(const struct member *mb, void *ctx)
{
    cJSON *arr = ctx;
    char addr[96];
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return;
    snprintf(addr, sizeof(addr), "%s:%u", mb->host, mb->port);
    cJSON_AddStringToObject(o, "name", mb->name);
    cJSON_AddStringToObject(o, "address", addr);
    cJSON_AddStringToObject(o, "state", member_state_name(mb->state));
    cJSON_AddNumberToObject(o, "incarnation", (double)mb->incarnation);
    cJSON_AddItemToArray(arr, o);
}

static int status_cluster_json(struct cluster *c, struct http_response *resp)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_CreateArray();
    if (!root || !arr) {
        cJSON_Delete(root);
        cJSON_Delete(arr);
        return -1;
    }
    cJSON_AddStringToObject(root, "self", c->self);
    cJSON_AddItemToObject(root, "members", arr);
    if (c->ms) {
        membership_foreach(c->ms, status_add_member, arr);
    } else {
        struct member me = {.state = MEMBER_ALIVE, .port = c->cfg->cluster_port};
        snprintf(me.name, sizeof(me.name), "%s", c->self);
        snprintf(me.host, sizeof(me.host), "%s",
                 c->cfg->cluster_bind[0] ? c->cfg->cluster_bind : c->cfg->bind);
        status_add_member(&me, arr);
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

/* Prometheus label values escape backslash, quote and newline. Node names are plain, but be safe.
 */
static void label_escape(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (; *in && o + 3 < outlen; in++) {
        if (*in == '\\' || *in == '"' || *in == '\n') {
            out[o++] = '\\';
            out[o++] = *in == '\n' ? 'n' : *in;
        } else {
            out[o++] = *in;
        }
    }
    out[o] = '\0';
}

static void metric_head(struct text *t, const char *name, const char *type, const char *help)
{
    text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric_u64(struct text *t, const char *name, const char *type, const char *help,
                       uint64_t v)
{
    metric_head(t, name, type, help);
    text_printf(t, "%s %llu\n", name, (unsigned long long)v);
}

/* One labelled series per peer; field selects the counter. */
static void metric_per_peer(struct text *t, struct cluster *c, const char *name, const char *help,
                            size_t offset)
{
    metric_head(t, name, "counter", help);
    for (struct peer *p = c->peers; p; p = p->next) {
        char esc[160];
        label_escape(p->name, esc, sizeof(esc));
        uint64_t v = *(const uint64_t *)((const char *)p + offset);
        text_printf(t, "%s{peer=\"%s\"} %llu\n", name, esc, (unsigned long long)v);
    }
}

static int status_metrics(struct cluster *c, struct http_response *resp)
{
    struct text t = {0};
    struct broker_stats bs;
    struct membership_stats ms = {0};
    broker_get_stats(c->b, &bs);
    if (c->ms)
        membership_get_stats(c->ms, &ms);

    metric_u64(&t, "sol_connections", "gauge", "Clients connected now.", bs.clients_connected);
    metric_u64(&t, "sol_connections_total", "counter", "Connections accepted.",
               bs.connections_total);
    metric_u64(&t, "sol_messages_received_total", "counter", "PUBLISH packets from clients.",
               bs.msgs_received);
    metric_u64(&t, "sol_messages_sent_total", "counter", "PUBLISH packets to clients.",
               bs.msgs_sent);
    metric_u64(&t, "sol_bytes_received_total", "counter", "Bytes from clients.", bs.bytes_received);
    metric_u64(&t, "sol_bytes_sent_total", "counter", "Bytes to clients.", bs.bytes_sent);
    metric_head(&t, "sol_messages_dropped_total", "counter",
                "Messages dropped, by reason (docs/overload.md).");
    text_printf(&t, "sol_messages_dropped_total{reason=\"qos0_stalled\"} %llu\n",
                (unsigned long long)bs.dropped_qos0_stalled);
    text_printf(&t, "sol_messages_dropped_total{reason=\"queue_full\"} %llu\n",
                (unsigned long long)bs.dropped_queue_full);
    text_printf(&t, "sol_messages_dropped_total{reason=\"no_memory\"} %llu\n",
                (unsigned long long)bs.dropped_no_memory);
    text_printf(&t, "sol_messages_dropped_total{reason=\"peer_gone\"} %llu\n",
                (unsigned long long)bs.dropped_peer_gone);
    text_printf(&t, "sol_messages_dropped_total{reason=\"peer_queue_full\"} %llu\n",
                (unsigned long long)bs.dropped_peer_full);
    metric_u64(&t, "sol_publishers_paused", "gauge",
               "Publishers (client connections, peer links) paused by back-pressure now.",
               bs.publishers_paused);
    metric_u64(&t, "sol_publisher_pauses_total", "counter",
               "Times a publisher was paused for a subscriber or peer that was behind.",
               bs.pause_events);
    metric_head(&t, "sol_publisher_paused_seconds_total", "counter",
                "Time publishers spent paused (pauses that ended).");
    text_printf(&t, "sol_publisher_paused_seconds_total %.3f\n", bs.paused_ms_total / 1000.0);
    metric_u64(&t, "sol_subscribers_stalled_total", "counter",
               "Times a subscriber made no progress for stall-timeout-ms (or passed "
               "session-max-bytes) and stopped pausing its publishers.",
               bs.sessions_stalled);
    metric_u64(&t, "sol_subscriber_progress_gap_max_ms", "gauge",
               "Longest a subscriber that was pausing publishers went without progress and "
               "recovered (compare with stall-timeout-ms).",
               bs.progress_gap_max_ms);
    metric_u64(&t, "sol_connections_closed_memory_total", "counter",
               "Connections closed because all buffers together passed max-conn-memory.",
               bs.conns_memory_closed);
    metric_u64(&t, "sol_connection_buffer_bytes", "gauge",
               "Bytes held in client connections' packet and output buffers.",
               bs.conn_buffer_bytes);
    metric_u64(&t, "sol_subscriptions", "gauge", "Local (filter, session) pairs.",
               bs.subscriptions);
    metric_u64(&t, "sol_retained_messages", "gauge", "Retained messages held.", bs.retained);
    struct cluster_metric rm[RETAINED_METRICS];
    retained_metrics(c, rm);
    for (size_t i = 0; i < RETAINED_METRICS; i++)
        metric_u64(&t, rm[i].name, rm[i].type, rm[i].help, rm[i].value);

    metric_head(&t, "sol_cluster_members", "gauge", "Known members by state (self included).");
    static const enum member_state states[] = {MEMBER_ALIVE, MEMBER_SUSPECT, MEMBER_DEAD,
                                               MEMBER_LEFT};
    for (size_t i = 0; i < 4; i++) {
        size_t n = c->ms ? membership_count(c->ms, states[i]) : states[i] == MEMBER_ALIVE;
        text_printf(&t, "sol_cluster_members{state=\"%s\"} %zu\n", member_state_name(states[i]), n);
    }
    size_t routes = 0, paused_links = 0;
    uint64_t tx_dropped = 0;
    for (struct peer *p = c->peers; p; p = p->next) {
        routes += topic_tree_filter_count(p->routes);
        pthread_mutex_lock(&p->mu);
        tx_dropped += p->tx_dropped;
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_lock(&c->in_mu);
    for (struct rx_link *l = c->links; l; l = l->next)
        paused_links += l->paused;
    pthread_mutex_unlock(&c->in_mu);
    metric_u64(&t, "sol_routes", "gauge", "Remote filters known (sum over peers).", routes);
    metric_u64(&t, "sol_local_routes", "gauge", "Filters with local subscribers.",
               topic_tree_filter_count(c->local));
    metric_per_peer(&t, c, "sol_cluster_messages_forwarded_total", "PUBLISHes forwarded to a peer.",
                    offsetof(struct peer, fwd_msgs));
    metric_per_peer(&t, c, "sol_cluster_bytes_forwarded_total",
                    "Bytes of PUBLISHes forwarded to a peer.", offsetof(struct peer, fwd_bytes));
    metric_per_peer(&t, c, "sol_cluster_messages_received_total", "PUBLISHes received from a peer.",
                    offsetof(struct peer, rx_msgs));
    metric_per_peer(&t, c, "sol_cluster_bytes_received_total",
                    "Topic and payload bytes of PUBLISHes received from a peer.",
                    offsetof(struct peer, rx_bytes));
    metric_per_peer(&t, c, "sol_cluster_envelopes_sent_total",
                    "Cluster messages of every kind queued for a peer.",
                    offsetof(struct peer, sent_msgs));
    metric_per_peer(&t, c, "sol_cluster_envelopes_received_total",
                    "Cluster messages of every kind received from a peer.",
                    offsetof(struct peer, rx_envelopes));
    metric_u64(&t, "sol_cluster_send_dropped_total", "counter",
               "Cluster messages dropped unsent (peer gone or its queue full).", tx_dropped);
    metric_head(&t, "sol_cluster_peer_queue_bytes", "gauge",
                "Bytes queued for a peer, not yet taken by its connection.");
    for (struct peer *p = c->peers; p; p = p->next) {
        pthread_mutex_lock(&p->mu);
        size_t q = p->stage_len + p->out_len - p->out_head;
        pthread_mutex_unlock(&p->mu);
        text_printf(&t, "sol_cluster_peer_queue_bytes{peer=\"%s\"} %zu\n", p->name, q);
    }
    metric_u64(&t, "sol_cluster_peer_stalls_total", "counter",
               "Times a peer's queue made no progress for stall-timeout-ms while it held "
               "publishers back, so it stopped holding them back.",
               c->peer_stalls);
    metric_u64(&t, "sol_cluster_links_paused", "gauge",
               "Inbound peer links not read now because a local subscriber they feed is behind.",
               paused_links);
    metric_head(&t, "sol_gossip_messages_total", "counter", "Gossip datagrams.");
    text_printf(&t, "sol_gossip_messages_total{direction=\"sent\"} %llu\n",
                (unsigned long long)ms.gossip_sent);
    text_printf(&t, "sol_gossip_messages_total{direction=\"received\"} %llu\n",
                (unsigned long long)ms.gossip_received);
    uint64_t in_dropped = c->in_dropped;
    metric_u64(
        &t, "sol_cluster_decode_errors_total", "counter",
        "Bad cluster input dropped: undecodable or invalid frames, strangers, gossip garbage.",
        c->decode_errors + ms.decode_errors);
    metric_u64(&t, "sol_cluster_stranger_messages_total", "counter",
               "Cluster messages from nodes not in membership.", c->strangers);
    metric_u64(&t, "sol_gossip_decode_errors_total", "counter", "Gossip datagrams dropped as bad.",
               ms.decode_errors);
    metric_u64(&t, "sol_cluster_inbox_dropped_total", "counter",
               "Cluster frames dropped on receipt: always 0, receiving pushes back instead.",
               in_dropped);
    if (t.failed) {
        free(t.s);
        return -1;
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body = t.s;
    resp->body_len = t.len;
    return 0;
}

/* A member name usable as one topic level. */
static bool status_name_is_level(const char *name)
{
    return name[0] && !strpbrk(name, "/+#");
}

void status_sys_member(struct cluster *c, const struct member *m)
{
    char topic[160], val[96];
    if (m && status_name_is_level(m->name)) {
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
        size_t n = c->ms ? membership_count(c->ms, states[i]) : states[i] == MEMBER_ALIVE;
        snprintf(topic, sizeof(topic), "$SYS/broker/cluster/members/%s",
                 member_state_name(states[i]));
        snprintf(val, sizeof(val), "%zu", n);
        broker_sys_set(c->b, topic, val);
    }
}

int status_http_handler(void *ctx, const char *method, const char *path, struct http_response *resp)
{
    struct cluster *c = ctx;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return status_text(resp, 405, "method not allowed\n");
    if (strcmp(path, "/healthz") == 0)
        return status_text(resp, 200, "ok\n");
    if (strcmp(path, "/readyz") == 0)
        return cluster_ready(c) ? status_text(resp, 200, "ready\n")
                                : status_text(resp, 503, c->leaving ? "leaving\n" : "starting\n");
    if (strcmp(path, "/cluster") == 0)
        return status_cluster_json(c, resp);
    if (strcmp(path, "/metrics") == 0)
        return status_metrics(c, resp);
    return status_text(resp, 404, "not found\n");
}
