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
    snprintf(cfg->tls_min_version, sizeof(cfg->tls_min_version), "1.2");
}

/* --listener's URL shapes, in one place for settings (checked at start-up) and the broker. */
int config_listener_parse(const char *url, size_t len, bool *tls, char *addr, size_t addrlen,
                          uint16_t *port, char *err, size_t errlen)
{
    const char *p = url, *end = url + len;
    if (len >= 5 && (strncmp(url, "ws://", 5) == 0 || strncmp(url, "wss://", 6) == 0)) {
        snprintf(err, errlen, "'%.*s': WebSocket listeners (ws://, wss://) are not supported yet",
                 (int)len, url);
        return -1;
    }
    if (len > 7 && strncmp(url, "mqtt://", 7) == 0) {
        *tls = false;
        p += 7;
    } else if (len > 8 && strncmp(url, "mqtts://", 8) == 0) {
        *tls = true;
        p += 8;
    } else {
        goto bad;
    }
    const char *colon = end;
    while (colon > p && colon[-1] != ':')
        colon--;
    if (colon <= p + 1 || colon == end)
        goto bad;
    const char *a = p, *ae = colon - 1;
    if (*a == '[' && ae[-1] == ']')
        a++, ae--;
    unsigned long v = 0;
    for (const char *c = colon; c < end; c++) {
        if (*c < '0' || *c > '9' || (v = v * 10 + (unsigned long)(*c - '0')) > 65535)
            goto bad;
    }
    if (v == 0 || ae <= a || (size_t)(ae - a) >= addrlen)
        goto bad;
    memcpy(addr, a, (size_t)(ae - a));
    addr[ae - a] = '\0';
    *port = (uint16_t)v;
    return 0;
bad:
    snprintf(err, errlen,
             "invalid listener '%.*s' (expected mqtt://ADDR:PORT or mqtts://ADDR:PORT)", (int)len,
             url);
    return -1;
}

/* Here rather than in settings.c, so that the rules stay beside the fields they are about. */
const char *config_tls_check(const struct sol_config *n, char *why, size_t len)
{
    char addr[64];
    bool tls, any_tls = false;
    uint16_t port;

    for (const char *p = n->listeners; *p != '\0';) {
        size_t l = strcspn(p, " ");
        if (config_listener_parse(p, l, &tls, addr, sizeof(addr), &port, why, len) < 0)
            return "listener";
        any_tls |= tls;
        p += l + (p[l] == ' ');
    }
    const char *need = !n->certfile[0] ? "certfile" : !n->keyfile[0] ? "keyfile" : NULL;
    if (any_tls && need) {
        snprintf(why, len, "needed by an mqtts:// listener");
        return need;
    }
    if (strcmp(n->tls_min_version, "1.2") != 0 && strcmp(n->tls_min_version, "1.3") != 0) {
        snprintf(why, len, "invalid value '%s' (expected 1.2 or 1.3)", n->tls_min_version);
        return "tls_min_version";
    }
    if (n->use_identity_as_username && !n->require_certificate) {
        snprintf(why, len, "only valid with --require-certificate true");
        return "use_identity_as_username";
    }
    if (n->require_certificate && !n->cafile[0] && !n->capath[0]) {
        snprintf(why, len, "needs --cafile or --capath to verify client certificates");
        return "require_certificate";
    }
    return NULL;
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
