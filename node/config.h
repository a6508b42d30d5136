/*
 * config.h - every setting of a node, from three sources: flags > SOL_* environment > config file.
 *
 * Each setting has one name used three ways: flag --max-inflight, config key max_inflight (a dash also
 * accepted: max-inflight), environment SOL_MAX_INFLIGHT. The config file is "key value" lines, '#' comments.
 */
#ifndef SOL_CONFIG_H
#define SOL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* What a subscriber that cannot keep up does to its publishers (--overload-policy). */
enum overload_policy {
    OVERLOAD_BACKPRESSURE = 0, /* pause the publishers that feed it (default) */
    OVERLOAD_DROP, /* never pause: QoS 0 past the watermark and a full queue are dropped */
};

#define CONFIG_MAX_SEEDS 64

/* The cluster port once clustering is on (seeds or cluster_bind set) and cluster_port is not. */
#define CONFIG_CLUSTER_PORT 7946

/* Room for where a listener's port came from, e.g. "port 1884 (config file F line 3)". */
#define CONFIG_ORIGIN_LEN 320

struct sol_config {
    /* MQTT listener */
    char bind[64];            /* default "0.0.0.0" */
    uint16_t port;            /* default 1883 */
    char acl_file[256];       /* "" = no ACL: everything allowed */
    char password_file[256];  /* "" = no password file */
    bool allow_anonymous;     /* default true */
    size_t max_packet_size;   /* default 1048576 (bytes of remaining length) */
    size_t max_connections;   /* default 100000; 0 = unlimited */
    uint16_t max_inflight;    /* default 256: outbound QoS 1/2 messages in flight per client */
    size_t max_queued;        /* default 1000: messages queued per offline or slow session */
    unsigned max_qos;         /* default 2: highest QoS granted or accepted (Mosquitto's max_qos) */
    enum log_level log_level; /* default info; flag values: error|warn|info|debug */
    unsigned sys_interval;    /* seconds between $SYS updates, default 10; 0 = off */

    /* Overload (docs/overload.md) */
    enum overload_policy overload_policy; /* default backpressure */
    size_t backlog_high;       /* a session this many bytes behind pauses its publishers (1 MiB) */
    size_t backlog_low;        /* ... which resume once it is back under this (256 KiB) */
    unsigned stall_timeout_ms; /* no progress this long: stop pausing publishers for it (2000) */
    size_t session_max_bytes;  /* hard per-session backlog cap: over it, as stalled (64 MiB) */
    size_t max_conn_memory;    /* all connections' input + output buffers (1 GiB); 0 = no cap */

    /* Cluster (used by cluster/; no seeds = a cluster of one) */
    char node_name[64];    /* default: hostname */
    char cluster_bind[64]; /* default: same as bind */
    /* The port clustering uses; default 0 = clustering off. config_load sets CONFIG_CLUSTER_PORT
     * when cluster_bind or non-empty seeds is set and cluster_port is not (an explicit 0 stays). */
    uint16_t cluster_port;
    char seeds[1024];            /* comma-separated host:port list; host may be a DNS name */
    uint16_t http_port;          /* default 0 = no HTTP endpoint */
    unsigned gossip_interval_ms; /* probe period, default 200 */
    unsigned probe_timeout_ms;   /* direct probe timeout, default 100 */
    unsigned suspicion_mult;     /* suspicion timeout multiplier (Lifeguard), default 4 */
    unsigned dns_interval_ms;    /* re-resolve seeds, default 2000 */
    unsigned leave_timeout_ms;   /* how long SIGTERM waits to announce leave, default 1000 */

    /* Not settings: filled by config_load with each listener's port as the user gave it (flag,
     * SOL_* variable or config file line, or "(default)"), so that a port that cannot be bound is
     * reported naming the setting to change. Empty for a listener that is off. */
    struct {
        char port[CONFIG_ORIGIN_LEN];
        char cluster_port[CONFIG_ORIGIN_LEN];
        char http_port[CONFIG_ORIGIN_LEN];
    } origin;
};

/* Outcome of parsing. CONFIG_EXIT_OK: --help or --version printed, exit 0. */
enum config_result { CONFIG_OK = 0, CONFIG_EXIT_OK = 1, CONFIG_ERROR = -1 };

/* Fill cfg with defaults. */
void config_defaults(struct sol_config *cfg);

/* Parse argv, environment (envp-style array, NULL-terminated; pass environ) and the config file
 * (--config, -c or SOL_CONFIG); -p is --port, as in Mosquitto. On error writes one line naming the
 * setting into err (errlen bytes) and returns CONFIG_ERROR; the caller prints it and exits 2.
 * --help and --version print to stdout and return CONFIG_EXIT_OK. */
int config_load(struct sol_config *cfg, int argc, char **argv, char **envp, char *err,
                size_t errlen);

const char *config_log_level_name(enum log_level level);

#endif
