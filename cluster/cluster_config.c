/*
 * cluster_config.c - the cluster's default settings (cluster_config.h).
 */
#include "cluster_config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A node is named after its host unless told otherwise, so that a cluster of hosts needs no names
 * given; clustering itself stays off until asked for (cluster_port 0). */
void cluster_config_defaults(struct cluster_config *cfg)
{
    char host[256];

    memset(cfg, 0, sizeof(*cfg));
    if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "sol");
    host[sizeof(host) - 1] = '\0';
    snprintf(cfg->node_name, sizeof(cfg->node_name), "%.*s", (int)sizeof(cfg->node_name) - 1, host);
    snprintf(cfg->cluster_bind, sizeof(cfg->cluster_bind), "0.0.0.0");
    cfg->gossip_interval_ms = 200;
    cfg->probe_timeout_ms = 100;
    cfg->suspicion_mult = 4;
    cfg->dns_interval_ms = 2000;
    cfg->leave_timeout_ms = 1000;
    snprintf(cfg->cluster_label, sizeof(cfg->cluster_label), "sol");
}
