/*
 * metrics.h - the broker's half of /metrics: what any node, clustered or not, says about its
 * clients, messages, overload and memory. Read from broker_get_stats only; the cluster appends
 * its own half through ops.h.
 */
#ifndef SOL_METRICS_H
#define SOL_METRICS_H

#include "broker.h"
#include "prom.h"

/* Append the broker's metrics to t (names, labels and order are what dashboards scrape). */
void metrics_broker(struct prom *t, const struct broker *b);

#endif
