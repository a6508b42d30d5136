/*
 * metrics.c - the broker's metrics in the Prometheus text format (metrics.h). The names, help
 * texts, labels and order are an interface: deploy/grafana-dashboard.json and tests/deploy read
 * them.
 */
#include "metrics.h"

/* The broker's statistics as one snapshot, so that the lines agree with each other. */
void metrics_broker(struct prom *t, const struct broker *b)
{
    struct broker_stats bs;
    broker_get_stats(b, &bs);

    prom_u64(t, "sol_connections", "gauge", "Clients connected now.", bs.clients_connected);
    prom_u64(t, "sol_connections_total", "counter", "Connections accepted.", bs.connections_total);
    prom_u64(t, "sol_messages_received_total", "counter", "PUBLISH packets from clients.",
             bs.msgs_received);
    prom_u64(t, "sol_messages_sent_total", "counter", "PUBLISH packets to clients.", bs.msgs_sent);
    prom_u64(t, "sol_bytes_received_total", "counter", "Bytes from clients.", bs.bytes_received);
    prom_u64(t, "sol_bytes_sent_total", "counter", "Bytes to clients.", bs.bytes_sent);
    prom_head(t, "sol_messages_dropped_total", "counter",
              "Messages dropped, by reason (docs/overload.md).");
    const struct {
        const char *reason;
        uint64_t n;
    } dropped[] = {
        {"qos0_stalled", bs.dropped_qos0_stalled},
        {"queue_full", bs.dropped_queue_full},
        {"no_memory", bs.dropped_no_memory},
        {"peer_gone", bs.dropped_peer_gone},
        {"peer_queue_full", bs.dropped_peer_full},
        {"too_large", bs.dropped_too_large},
        {"share_no_member", bs.dropped_share_no_member},
    };
    for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
        prom_printf(t, "sol_messages_dropped_total{reason=\"%s\"} %llu\n", dropped[i].reason,
                    (unsigned long long)dropped[i].n);
    prom_u64(t, "sol_messages_expired_total", "counter",
             "Messages not sent to a subscriber because their Message Expiry Interval ended first.",
             bs.msgs_expired);
    prom_u64(t, "sol_publishers_paused", "gauge",
             "Publishers (client connections, peer links) paused by back-pressure now.",
             bs.publishers_paused);
    prom_u64(t, "sol_publisher_pauses_total", "counter",
             "Times a publisher was paused for a subscriber or peer that was behind.",
             bs.pause_events);
    prom_head(t, "sol_publisher_paused_seconds_total", "counter",
              "Time publishers spent paused (pauses that ended).");
    prom_printf(t, "sol_publisher_paused_seconds_total %.3f\n", bs.paused_ms_total / 1000.0);
    prom_u64(t, "sol_subscribers_stalled_total", "counter",
             "Times a subscriber made no progress for stall-timeout-ms (or passed "
             "session-max-bytes) and stopped pausing its publishers.",
             bs.sessions_stalled);
    prom_u64(t, "sol_subscriber_progress_gap_max_ms", "gauge",
             "Longest a subscriber that was pausing publishers went without progress and "
             "recovered (compare with stall-timeout-ms).",
             bs.progress_gap_max_ms);
    prom_u64(t, "sol_connections_closed_memory_total", "counter",
             "Connections closed because all buffers together passed max-conn-memory.",
             bs.conns_memory_closed);
    prom_u64(t, "sol_connection_buffer_bytes", "gauge",
             "Bytes held in client connections' packet and output buffers.", bs.conn_buffer_bytes);
    prom_u64(t, "sol_subscriptions", "gauge", "Local (filter, session) pairs.", bs.subscriptions);
    prom_u64(t, "sol_retained_messages", "gauge", "Retained messages held.", bs.retained);
    prom_u64(t, "sol_retained_expired_total", "counter",
             "Retained messages removed, from memory and the store, when their Message Expiry "
             "Interval ended.",
             bs.retained_expired);

    struct store_stats ss;
    uint64_t held;
    broker_store_stats(b, &ss, &held);
    prom_u64(t, "sol_store_bytes", "gauge", "Bytes of the durable store on disk.", ss.size);
    prom_u64(t, "sol_store_batches_total", "counter", "Write batches written to the store.",
             ss.batches);
    prom_u64(t, "sol_store_records_total", "counter", "Records (puts and deletes) written.",
             ss.records);
    prom_u64(t, "sol_store_fsyncs_total", "counter", "Batches written with an fsync.", ss.syncs);
    prom_u64(t, "sol_store_fsync_microseconds_total", "counter",
             "Time spent writing and syncing batches.", ss.sync_us_total);
    prom_u64(t, "sol_store_fsync_microseconds_max", "gauge", "Slowest batch write and sync.",
             ss.sync_us_max);
    prom_u64(t, "sol_store_fsync_microseconds_last", "gauge", "Latest batch write and sync.",
             ss.sync_us_last);
    prom_u64(t, "sol_store_write_errors_total", "counter",
             "Failed batch writes (retried; acknowledgements wait).", ss.errors);
    prom_u64(t, "sol_store_acks_held", "gauge",
             "Acknowledgements waiting for their batch to be durable.", held);
}
