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
int config_listener_parse(const char *url, size_t len, struct config_listener *out, char *err,
                          size_t errlen)
{
    static const struct {
        const char *scheme;
        bool tls, ws;
    } schemes[] = {{"mqtt://", false, false},
                   {"mqtts://", true, false},
                   {"ws://", false, true},
                   {"wss://", true, true}};
    const char *p = NULL, *end = url + len;
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]) && !p; i++) {
        size_t sl = strlen(schemes[i].scheme);
        if (len > sl && strncmp(url, schemes[i].scheme, sl) == 0) {
            p = url + sl;
            out->tls = schemes[i].tls;
            out->ws = schemes[i].ws;
        }
    }
    if (!p)
        goto bad;
    snprintf(out->path, sizeof(out->path), "/mqtt");
    const char *slash = memchr(p, '/', (size_t)(end - p));
    if (slash) {
        if (!out->ws || (size_t)(end - slash) >= sizeof(out->path))
            goto bad;
        for (const char *c = slash; c < end; c++)
            if (*c <= ' ' || *c > '~' || *c == '?' || *c == '#')
                goto bad;
        memcpy(out->path, slash, (size_t)(end - slash));
        out->path[end - slash] = '\0';
        end = slash;
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
    if (v == 0 || ae <= a || (size_t)(ae - a) >= sizeof(out->addr))
        goto bad;
    memcpy(out->addr, a, (size_t)(ae - a));
    out->addr[ae - a] = '\0';
    out->port = (uint16_t)v;
    return 0;
bad:
    snprintf(err, errlen,
             "invalid listener '%.*s' (expected mqtt://ADDR:PORT, mqtts://ADDR:PORT, "
             "ws://ADDR:PORT/PATH or wss://ADDR:PORT/PATH)",
             (int)len, url);
    return -1;
}

/* Here rather than in settings.c, so that the rules stay beside the fields they are about. */
const char *config_tls_check(const struct sol_config *n, char *why, size_t len)
{
    struct config_listener l;
    bool any_tls = false;

    for (const char *p = n->listeners; *p != '\0';) {
        size_t ul = strcspn(p, " ");
        if (config_listener_parse(p, ul, &l, why, len) < 0)
            return "listener";
        any_tls |= l.tls;
        p += ul + (p[ul] == ' ');
    }
    const char *need = !n->certfile[0] ? "certfile" : !n->keyfile[0] ? "keyfile" : NULL;
    if (any_tls && need) {
        snprintf(why, len, "needed by an mqtts:// or wss:// listener");
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
