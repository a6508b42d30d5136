/*
 * config.c - the node's settings: their defaults and the words that name them. Reading them from
 * flags, environment and file is app/settings.c's, which knows every module's settings.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

const char *config_log_level_name(enum log_level level)
{
    switch (level) {
    case LOG_LEVEL_ERROR:
        return "error";
    case LOG_LEVEL_WARN:
        return "warn";
    case LOG_LEVEL_INFO:
        return "info";
    case LOG_LEVEL_DEBUG:
        return "debug";
    }
    return "unknown";
}

/* The documented defaults (config.h), one place for --help and for a node started without any. */
void config_defaults(struct sol_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->bind, sizeof(cfg->bind), "0.0.0.0");
    cfg->port = 1883;
    cfg->max_qos = 2;
    cfg->allow_anonymous = true;
    cfg->max_packet_size = 1048576;
    cfg->max_connections = 100000;
    cfg->max_inflight = 256;
    cfg->max_queued = 1000;
    cfg->log_level = LOG_LEVEL_INFO;
    cfg->sys_interval = 10;
    cfg->overload_policy = OVERLOAD_BACKPRESSURE;
    cfg->backlog_high = 1 << 20;
    cfg->backlog_low = 256 << 10;
    cfg->stall_timeout_ms = 2000;
    cfg->session_max_bytes = 64 << 20;
    cfg->max_conn_memory = 1ULL << 30;
    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "./data");
    snprintf(cfg->durability, sizeof(cfg->durability), "sync");
}

/* One wording for every listener that cannot start, whichever module owns it: the setting first,
 * so that "--cluster-port 7946: listen tcp://...: Address in use" says what to change. */
void config_name_setting(char *err, size_t errlen, const char *origin, const char *strip)
{
    char detail[256];
    const char *d = err;
    size_t n = strip ? strlen(strip) : 0;

    if (origin[0] == '\0' || errlen == 0)
        return;
    if (n && strncmp(d, strip, n) == 0)
        d += n;
    snprintf(detail, sizeof(detail), "%s", d);
    snprintf(err, errlen, "%s: %s", origin, detail);
}
