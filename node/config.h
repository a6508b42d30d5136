/*
 * config.h - the node's settings: the MQTT listener, limits, overload, logging. The cluster's
 * settings are in cluster/cluster_config.h, the operator endpoint's in ops/ops.h; app/settings.c
 * reads all of them from flags > SOL_* environment > config file.
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
    OVERLOAD_DROP,             /* never pause: drop QoS 0 past the watermark and on a full queue */
};

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
    uint16_t max_keepalive;   /* longest keepalive accepted, in s; 0 = any (Mosquitto's) */
    unsigned shared_policy;   /* enum share_policy (share.h): default round_robin */

    /* Durable state (persist.h, docs/persistence.md) */
    char data_dir[256]; /* default "./data" (the image: /var/lib/sol) */
    char durability[8]; /* sync (default) | async | none */

    /* More listeners (beside bind:port) and TLS (docs/deploy.md "TLS listeners") */
    char listeners[1024];             /* --listener URLs, space-separated: mqtt://, mqtts://, ws://,
                                       * wss:// */
    char certfile[256], keyfile[256]; /* PEM server certificate (chain) and key for mqtts */
    char cafile[256], capath[256];    /* CAs that client certificates are checked against */
    bool require_certificate;         /* mqtts clients must present a valid certificate */
    bool use_identity_as_username;    /* ... whose subject CN is then the username */
    char tls_min_version[8];          /* "1.2" (default) or "1.3" */
    char ciphers[256];                /* TLS 1.2 cipher list; "" = OpenSSL's default */
    char ws_origins[1024];            /* WebSocket Origin allow-list, comma-separated; "" = any */
    bool proxy_protocol;        /* every --listener connection starts with a PROXY v2 header */
    bool trust_x_forwarded_for; /* ws/wss: X-Forwarded-For's first address is the client's */

    /* Overload (docs/overload.md) */
    enum overload_policy overload_policy; /* default backpressure */
    size_t backlog_high;       /* a session this many bytes behind pauses its publishers (1 MiB) */
    size_t backlog_low;        /* ... which resume once it is back under this (256 KiB) */
    unsigned stall_timeout_ms; /* no progress this long: stop pausing publishers for it (2000) */
    size_t session_max_bytes;  /* hard per-session backlog cap: over it, as stalled (64 MiB) */
    size_t max_conn_memory;    /* all connections' input + output buffers (1 GiB); 0 = no cap */

    /* Not a setting: filled by settings_load with the MQTT port as the user gave it (flag, SOL_*
     * variable or config file line, or "(default)"), so that a port that cannot be bound is
     * reported naming the setting to change. */
    struct {
        char port[CONFIG_ORIGIN_LEN];
    } origin;
};

/* Fill cfg with the node's defaults (origin empty). */
void config_defaults(struct sol_config *cfg);

/* The flag word for a level: "error", "warn", "info", "debug" (static storage). */
const char *config_log_level_name(enum log_level level);

/* A listener that could not start is a setting to change: rewrite err (errlen bytes) as
 * "<origin>: <err>", origin being how the user gave the port (e.g. "--cluster-port 7946"), with
 * strip (if not NULL) removed from the front of the old text. An empty origin leaves err as it is.
 */
/* One --listener URL, parsed. */
struct config_listener {
    bool tls;      /* mqtts:// or wss:// */
    bool ws;       /* ws:// or wss:// */
    char addr[64]; /* ADDR, without the brackets of an [IPv6] */
    uint16_t port;
    char path[128]; /* ws/wss: the HTTP path, default "/mqtt" */
};

/* One --listener URL: "mqtt://ADDR:PORT", "mqtts://ADDR:PORT", "ws://ADDR:PORT[/PATH]" or
 * "wss://ADDR:PORT[/PATH]"; ADDR may be [IPv6]. 0, or -1 with the reason in err. */
int config_listener_parse(const char *url, size_t len, struct config_listener *out, char *err,
                          size_t errlen);

/* The listener and TLS settings checked together: each listener URL, certfile and keyfile for an
 * mqtts listener, tls_min_version 1.2|1.3, use_identity_as_username only with
 * require_certificate, which needs cafile or capath. NULL, or the key at fault with why in why. */
const char *config_tls_check(const struct sol_config *cfg, char *why, size_t len);

void config_name_setting(char *err, size_t errlen, const char *origin, const char *strip);

#endif
