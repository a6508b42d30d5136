/*
 * bench_report.c - solbench's report: a human summary and one machine-readable RESULT line.
 *
 * Rates: sent_rate is data messages over the publishing window; recv_rate is distinct messages
 * received (over all subscribers) from the start of publishing to the last arrival, drain included,
 * so a broker that buffers instead of delivering gains nothing. CPU is solbench's own, over the
 * same span, so a reader can tell whether the load generator was the bottleneck.
 */
#include "bench.h"

#include <stdio.h>

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Human summary (unless --quiet) and the RESULT line. Returns the exit code. */
int bench_report(struct bench *b)
{
    const struct bench_opts *o = &b->o;
    uint64_t sent = 0, acked = 0;
    for (uint32_t i = 0; i < o->npub; i++) {
        sent += b->pubs[i].seq;
        acked += b->pubs[i].acked;
    }
    uint64_t expected = sent * o->nsub;
    uint64_t lost = expected > b->unique ? expected - b->unique : 0;
    double run_s = b->t_run_start
                       ? (double)((b->t_run_end ? b->t_run_end : b->t_end) - b->t_run_start) / 1e9
                       : 0;
    double recv_s =
        b->t_last_recv > b->t_run_start ? (double)(b->t_last_recv - b->t_run_start) / 1e9 : 0;
    double wall_s = b->t_run_start ? (double)(b->t_end - b->t_run_start) / 1e9
                                   : (double)(b->t_end - b->t_start) / 1e9;
    double user = tv_s(b->ru_end.ru_utime) - tv_s(b->ru_start.ru_utime);
    double sys = tv_s(b->ru_end.ru_stime) - tv_s(b->ru_start.ru_stime);
    double sent_rate = run_s > 0 ? (double)sent / run_s : 0;
    double recv_rate = recv_s > 0 ? (double)b->unique / recv_s : 0;
    double p50 = (double)hist_percentile(&b->hist, 50) / 1e3;
    double p99 = (double)hist_percentile(&b->hist, 99) / 1e3;
    double pmax = (double)b->hist.max / 1e3;
    double cpu_pct = wall_s > 0 ? 100.0 * (user + sys) / wall_s : 0;
    /* Properties that did not arrive as sent fail the run: the property path is what an MQTT 5 run
     * with --user-props measures, so it must be seen to work, not assumed to. */
    if (b->prop_bad && !b->err[0])
        snprintf(b->err, sizeof(b->err), "%llu deliveries without the User Properties sent",
                 (unsigned long long)b->prop_bad);
    if (!o->quiet) {
        printf("solbench run %08x: %u pub -> %u sub, QoS %u/%u, %zu B, %s topics, %s subs, "
               "%u idle, MQTT %s",
               o->run_id, o->npub, o->nsub, o->qos, o->sub_qos, o->size,
               o->shared_topic ? "shared" : "per-pub", o->wildcard ? "wildcard" : "exact", o->nidle,
               o->mqtt5 ? "5" : "3.1.1");
        if (o->mqtt5)
            printf(", %u user properties", o->user_props);
        printf("\n");
        if (o->mqtt5 && b->recv_max)
            printf("  broker    Receive Maximum %u%s\n", b->recv_max,
                   o->qos && b->recv_max < o->window ? ": the publishers' window" : "");
        if (o->npub && o->nsub) {
            if (o->open_loop)
                printf("  mode      open loop: publishers never wait for subscribers%s\n",
                       o->qos ? "; QoS 1/2 bounded by --window" : "");
            else
                printf("  mode      closed loop: at most %llu deliveries on their way\n",
                       (unsigned long long)o->max_lag);
        }
        if (o->npub)
            printf("  sent      %llu msgs in %.2f s (%.0f msg/s)%s\n", (unsigned long long)sent,
                   run_s, sent_rate, o->qos ? ", acknowledged:" : "");
        if (o->npub && o->qos)
            printf("            %llu acked, %llu unexpected acks, %llu failure reasons\n",
                   (unsigned long long)acked, (unsigned long long)b->bad_acks,
                   (unsigned long long)b->ack_fail);
        if (o->npub && o->nsub) {
            printf("  received  %llu of %llu expected in %.2f s (%.0f msg/s)\n",
                   (unsigned long long)b->unique, (unsigned long long)expected, recv_s, recv_rate);
            printf("  lost %llu  dup %llu  out-of-order %llu  foreign %llu\n",
                   (unsigned long long)lost, (unsigned long long)b->dup, (unsigned long long)b->ooo,
                   (unsigned long long)b->foreign);
            if (o->mqtt5)
                printf("  props     %llu deliveries without the User Properties sent\n",
                       (unsigned long long)b->prop_bad);
            printf("  latency   p50 %.1f us  p99 %.1f us  max %.1f us\n", p50, p99, pmax);
        }
        if (o->nidle)
            printf("  idle      %llu connected, %llu failed\n", (unsigned long long)b->ready_idle,
                   (unsigned long long)b->failed_idle);
        printf("  cpu       user %.2f s  sys %.2f s  (%.0f%% of one core)  reads %llu  writes "
               "%llu\n",
               user, sys, cpu_pct, (unsigned long long)(b->io.reads - b->reads_start),
               (unsigned long long)(b->io.writes - b->writes_start));
        if (b->err[0])
            printf("  error     %s\n", b->err);
    }
    printf("RESULT run=%08x pubs=%u subs=%u idle=%u qos=%u sub_qos=%u size=%zu rate=%.0f "
           "open_loop=%d max_lag=%llu window=%u duration_s=%.3f sent=%llu expected=%llu recv=%llu "
           "delivered=%llu sent_rate=%.0f "
           "recv_rate=%.0f lost=%llu dup=%llu ooo=%llu foreign=%llu bad_acks=%llu p50_us=%.1f "
           "p99_us=%.1f max_us=%.1f idle_ok=%llu idle_failed=%llu cpu_user_s=%.3f "
           "cpu_sys_s=%.3f cpu_pct=%.1f mqtt=%s user_props=%u prop_bad=%llu ack_fail=%llu "
           "recv_max=%u clean=%d tls=%s errors=%d\n",
           o->run_id, o->npub, o->nsub, o->nidle, o->qos, o->sub_qos, o->size, o->rate,
           o->open_loop ? 1 : 0, (unsigned long long)o->max_lag, o->window, run_s,
           (unsigned long long)sent, (unsigned long long)expected, (unsigned long long)b->unique,
           (unsigned long long)b->delivered, sent_rate, recv_rate, (unsigned long long)lost,
           (unsigned long long)b->dup, (unsigned long long)b->ooo, (unsigned long long)b->foreign,
           (unsigned long long)b->bad_acks, p50, p99, pmax, (unsigned long long)b->ready_idle,
           (unsigned long long)b->failed_idle, user, sys, cpu_pct, o->mqtt5 ? "5" : "3.1.1",
           o->user_props, (unsigned long long)b->prop_bad, (unsigned long long)b->ack_fail,
           b->recv_max, o->sub_persistent ? 0 : 1,
           o->tls ? (b->io.tls_desc[0] ? b->io.tls_desc : "1") : "0", b->err[0] ? 1 : 0);
    fflush(stdout);
    if (b->err[0]) {
        fprintf(stderr, "solbench: %s\n", b->err);
        return 1;
    }
    if (o->check && (lost || b->dup)) {
        fprintf(stderr, "solbench: check failed: lost=%llu dup=%llu\n", (unsigned long long)lost,
                (unsigned long long)b->dup);
        return 3;
    }
    return 0;
}
