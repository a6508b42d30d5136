/*
 * sys.c - $SYS/broker/... statistics topics, named as Mosquitto's so existing dashboards work. They
 * are retained, published locally every sys_interval seconds, and never sent to the cluster (each
 * node reports itself).
 */
#include <stdio.h>
#include <string.h>

#include "broker_internal.h"

/* Publish one retained $SYS value to local subscribers only (the cluster mirrors membership here).
 */
void broker_sys_set(struct broker *b, const char *topic, const char *value)
{
    struct message *msg =
        message_new(topic, strlen(topic), (const uint8_t *)value, strlen(value), 0, true);
    if (!msg)
        return;
    broker_publish(b, msg, false);
    message_unref(msg);
}

static void sys_set_u64(struct broker *b, const char *topic, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    broker_sys_set(b, topic, buf);
}

void sys_publish(struct broker *b)
{
    struct broker_stats st;
    broker_get_stats(b, &st);
    char buf[64];
    snprintf(buf, sizeof(buf), "sol version %s", SOL_VERSION);
    broker_sys_set(b, "$SYS/broker/version", buf);
    snprintf(buf, sizeof(buf), "%llu seconds",
             (unsigned long long)((broker_now_ms(b) - b->start_ms) / 1000));
    broker_sys_set(b, "$SYS/broker/uptime", buf);
    sys_set_u64(b, "$SYS/broker/clients/connected", st.clients_connected);
    sys_set_u64(b, "$SYS/broker/clients/active", st.clients_connected);
    sys_set_u64(b, "$SYS/broker/clients/maximum", st.clients_maximum);
    sys_set_u64(b, "$SYS/broker/clients/total", st.sessions);
    sys_set_u64(b, "$SYS/broker/clients/disconnected",
                st.sessions > st.clients_connected ? st.sessions - st.clients_connected : 0);
    sys_set_u64(b, "$SYS/broker/messages/received", st.msgs_received);
    sys_set_u64(b, "$SYS/broker/messages/sent", st.msgs_sent);
    sys_set_u64(b, "$SYS/broker/publish/messages/received", st.msgs_received);
    sys_set_u64(b, "$SYS/broker/publish/messages/sent", st.msgs_sent);
    sys_set_u64(b, "$SYS/broker/publish/messages/dropped", st.msgs_dropped);
    sys_set_u64(b, "$SYS/broker/publish/messages/dropped/qos0_stalled", st.dropped_qos0_stalled);
    sys_set_u64(b, "$SYS/broker/publish/messages/dropped/queue_full", st.dropped_queue_full);
    sys_set_u64(b, "$SYS/broker/publish/messages/dropped/no_memory", st.dropped_no_memory);
    sys_set_u64(b, "$SYS/broker/publish/messages/dropped/peer_gone", st.dropped_peer_gone);
    sys_set_u64(b, "$SYS/broker/publish/messages/dropped/peer_queue_full", st.dropped_peer_full);
    sys_set_u64(b, "$SYS/broker/publish/messages/expired", st.msgs_expired);
    sys_set_u64(b, "$SYS/broker/publish/messages/dropped/too_large", st.dropped_too_large);
    sys_set_u64(b, "$SYS/broker/publish/messages/dropped/share_no_member",
                st.dropped_share_no_member);
    sys_set_u64(b, "$SYS/broker/publishers/paused", st.publishers_paused);
    sys_set_u64(b, "$SYS/broker/publishers/pauses", st.pause_events);
    sys_set_u64(b, "$SYS/broker/publishers/paused_ms", st.paused_ms_total);
    sys_set_u64(b, "$SYS/broker/subscribers/stalled", st.sessions_stalled);
    sys_set_u64(b, "$SYS/broker/connections/closed_memory", st.conns_memory_closed);
    sys_set_u64(b, "$SYS/broker/bytes/received", st.bytes_received);
    sys_set_u64(b, "$SYS/broker/bytes/sent", st.bytes_sent);
    sys_set_u64(b, "$SYS/broker/subscriptions/count", st.subscriptions);
    sys_set_u64(b, "$SYS/broker/retained messages/count", st.retained);
    sys_set_u64(b, "$SYS/broker/retained messages/expired", st.retained_expired);
}
