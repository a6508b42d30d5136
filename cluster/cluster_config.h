/*
 * cluster_config.h - the cluster's settings: this node's name, where the cluster listens, whom it
 * joins, the gossip timings. app/settings.c fills them (flag > SOL_* environment > config file,
 * as for every setting) and hands them to cluster_start; the broker never sees them.
 */
#ifndef SOL_CLUSTER_CONFIG_H
#define SOL_CLUSTER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* The cluster port once clustering is on (seeds or cluster_bind set) and cluster_port is not. */
#define CLUSTER_CONFIG_PORT 7946

struct cluster_config {
    char node_name[64];    /* default: hostname */
    char cluster_bind[64]; /* default: same as the MQTT bind */
    /* The port clustering uses; default 0 = clustering off. settings_load sets CLUSTER_CONFIG_PORT
     * when cluster_bind or non-empty seeds is set and cluster_port is not (an explicit 0 stays). */
    uint16_t cluster_port;
    char seeds[1024]; /* comma-separated host:port list; host may be a DNS name */
    /* host:port clients reach this node's MQTT listener at, sent to MQTT 5 clients of a peer that
     * shuts down (Server Reference). Default: the cluster address with the MQTT port. */
    char advertise_address[256];
    unsigned gossip_interval_ms; /* probe period, default 200 */
    unsigned probe_timeout_ms;   /* direct probe timeout, default 100 */
    unsigned suspicion_mult;     /* suspicion timeout multiplier (Lifeguard), default 4 */
    unsigned dns_interval_ms;    /* re-resolve seeds, default 2000 */
    unsigned leave_timeout_ms;   /* how long SIGTERM waits to announce leave, default 1000 */
    /* Sealed gossip (seal.h): the key file (empty = gossip in the clear) and the label every
     * node of one cluster shares, default "sol". settings_load checks the file once. */
    char cluster_key_file[512];
    char cluster_label[64];
    /* Node link TLS (cluster_net.c): this node's certificate and key, and the CA every node's
     * certificate is signed by. All three or none (settings_load checks); none = links in the
     * clear. A certificate names its node name (CN or a DNS subjectAltName). */
    char cluster_certfile[512];
    char cluster_keyfile[512];
    char cluster_cafile[512];

    /* Not a setting: filled by settings_load with the cluster port as the user gave it (or the
     * setting that turned clustering on), for the error that names it when the port is busy.
     * Empty while clustering is off. */
    struct {
        char cluster_port[CONFIG_ORIGIN_LEN];
    } origin;
};

/* Fill cfg with the cluster's defaults: the hostname (or "sol") as node_name, cluster_bind
 * "0.0.0.0" (settings_load makes it follow the MQTT bind), clustering off. */
void cluster_config_defaults(struct cluster_config *cfg);

#endif
