/*
 * settings.c - settings from flags, SOL_* environment variables and a "key value" config file, for
 * every module (settings.h).
 *
 * One table describes every setting (name, type, range, help, and the field of whichever module's
 * struct holds it). The same table drives the flag parser, the environment scan, the file parser
 * and --help, so a setting cannot exist in one source and not another. Precedence is flag > env >
 * file > default: we apply the file first, then the environment, then flags, each overwriting the
 * previous.
 *
 * The cluster and HTTP listeners start only where asked for (cluster_config.h, ops.h), so that a
 * port the user never chose cannot stop the broker; settings_load records where each listener's
 * port came from, for the error that names it when the port is busy.
 */
#include "settings.h"
#include "log.h"
#include "seal.h"
#include <openssl/crypto.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SOL_VERSION
#define SOL_VERSION "0.0.0"
#endif

enum opt_type {
    OPT_STR,
    OPT_U16,
    OPT_SIZE,
    OPT_UINT,
    OPT_BOOL,
    OPT_LEVEL,
    OPT_POLICY,
    OPT_SHARE,
    OPT_LIST /* a string each occurrence appends to, space-separated (--listener) */
};

struct settings_opt {
    const char *name; /* config key form, underscores */
    enum opt_type type;
    size_t offset;
    size_t size;            /* OPT_STR: buffer size */
    unsigned long long min; /* numeric range, inclusive */
    unsigned long long max;
    bool nonempty;           /* OPT_STR: an empty value is invalid */
    const char *metavar;     /* for --help */
    const char *help;        /* one line for --help */
    const char *default_txt; /* --help default when it is not a constant */
};

#define FIELD(f) offsetof(struct sol_settings, f), sizeof(((struct sol_settings *)0)->f)

static const struct settings_opt settings_opts[] = {
    {"bind", OPT_STR, FIELD(node.bind), 0, 0, true, "ADDR", "MQTT listener address", NULL},
    {"port", OPT_U16, FIELD(node.port), 1, 65535, false, "PORT", "MQTT listener TCP port", NULL},
    /* More listeners and TLS (settings_tls checks them together). */
    {"listener", OPT_LIST, FIELD(node.listeners), 0, 0, true, "URL",
     "one more listener: mqtt://ADDR:PORT, mqtts://ADDR:PORT, ws://ADDR:PORT/PATH or "
     "wss://ADDR:PORT/PATH; repeatable",
     "none"},
    {"certfile", OPT_STR, FIELD(node.certfile), 0, 0, false, "FILE",
     "PEM server certificate (chain) for mqtts listeners", NULL},
    {"keyfile", OPT_STR, FIELD(node.keyfile), 0, 0, false, "FILE", "PEM key of --certfile", NULL},
    {"cafile", OPT_STR, FIELD(node.cafile), 0, 0, false, "FILE",
     "PEM CA(s) client certificates are verified against", NULL},
    {"capath", OPT_STR, FIELD(node.capath), 0, 0, false, "DIR",
     "directory of hashed CA certificates (c_rehash)", NULL},
    {"require_certificate", OPT_BOOL, FIELD(node.require_certificate), 0, 0, false, "BOOL",
     "mqtts clients must present a certificate signed by --cafile/--capath", NULL},
    {"use_identity_as_username", OPT_BOOL, FIELD(node.use_identity_as_username), 0, 0, false,
     "BOOL", "the client certificate's CN is the username (needs --require-certificate)", NULL},
    {"tls_min_version", OPT_STR, FIELD(node.tls_min_version), 0, 0, true, "VERSION",
     "1.2|1.3: oldest TLS version accepted", NULL},
    {"ciphers", OPT_STR, FIELD(node.ciphers), 0, 0, false, "LIST",
     "OpenSSL cipher list for TLS 1.2; empty = OpenSSL's default", NULL},
    {"ws_origins", OPT_STR, FIELD(node.ws_origins), 0, 0, false, "LIST",
     "ws/wss: Origin values allowed, comma-separated; empty = any", NULL},
    {"proxy_protocol", OPT_BOOL, FIELD(node.proxy_protocol), 0, 0, false, "BOOL",
     "--listener connections start with a PROXY v2 header (behind a load balancer)", NULL},
    {"trust_x_forwarded_for", OPT_BOOL, FIELD(node.trust_x_forwarded_for), 0, 0, false, "BOOL",
     "ws/wss: the first X-Forwarded-For address is the client's", NULL},
    {"acl_file", OPT_STR, FIELD(node.acl_file), 0, 0, false, "FILE",
     "Mosquitto acl_file; empty = allow all", NULL},
    {"password_file", OPT_STR, FIELD(node.password_file), 0, 0, false, "FILE",
     "mosquitto_passwd file; empty = none", NULL},
    {"allow_anonymous", OPT_BOOL, FIELD(node.allow_anonymous), 0, 0, false, "BOOL",
     "accept clients that send no username", NULL},
    {"max_packet_size", OPT_SIZE, FIELD(node.max_packet_size), 1, 268435455, false, "BYTES",
     "largest remaining length accepted", NULL},
    {"max_connections", OPT_SIZE, FIELD(node.max_connections), 0, 4294967295ULL, false, "N",
     "client connections; 0 = unlimited", NULL},
    {"max_inflight", OPT_U16, FIELD(node.max_inflight), 1, 65535, false, "N",
     "outbound QoS 1/2 in flight per client", NULL},
    {"max_queued", OPT_SIZE, FIELD(node.max_queued), 0, 4294967295ULL, false, "N",
     "queued per offline/slow session", NULL},
    {"max_qos", OPT_UINT, FIELD(node.max_qos), 0, 2, false, "QOS",
     "highest QoS granted to SUBSCRIBE and accepted in PUBLISH", NULL},
    {"max_keepalive", OPT_U16, FIELD(node.max_keepalive), 0, 65535, false, "SECONDS",
     "longest keepalive a client may use (MQTT 5: Server Keep Alive; 3.1.1: refused); 0 = any",
     NULL},
    {"log_level", OPT_LEVEL, FIELD(node.log_level), 0, 0, false, "LEVEL", "error|warn|info|debug",
     NULL},
    {"sys_interval", OPT_UINT, FIELD(node.sys_interval), 0, 86400, false, "SECONDS",
     "seconds between $SYS updates; 0 = off", NULL},
    {"overload_policy", OPT_POLICY, FIELD(node.overload_policy), 0, 0, false, "POLICY",
     "backpressure|drop: what a subscriber that falls behind does to its publishers", NULL},
    {"shared_policy", OPT_SHARE, FIELD(node.shared_policy), 0, 0, false, "POLICY",
     "round_robin|random|local_first|hash_clientid: which member of a shared group gets a message",
     NULL},
    {"backlog_high", OPT_SIZE, FIELD(node.backlog_high), 1024, 1ULL << 40, false, "BYTES",
     "session backlog that pauses its publishers", NULL},
    {"backlog_low", OPT_SIZE, FIELD(node.backlog_low), 0, 1ULL << 40, false, "BYTES",
     "session backlog under which they resume", NULL},
    {"stall_timeout_ms", OPT_UINT, FIELD(node.stall_timeout_ms), 1, 3600000, false, "MS",
     "a subscriber without progress this long no longer pauses publishers", NULL},
    {"session_max_bytes", OPT_SIZE, FIELD(node.session_max_bytes), 1024, 1ULL << 40, false, "BYTES",
     "hard per-session backlog cap (then treated as stalled)", NULL},
    {"max_conn_memory", OPT_SIZE, FIELD(node.max_conn_memory), 0, 1ULL << 44, false, "BYTES",
     "cap on all connections' packet and output buffers; 0 = none", NULL},
    {"data_dir", OPT_STR, FIELD(node.data_dir), 0, 0, true, "DIR",
     "where the durable store lives (retained messages, persistent sessions)", NULL},
    {"durability", OPT_STR, FIELD(node.durability), 0, 0, true, "MODE",
     "sync|async|none: acknowledge QoS 1/2 after the fsync, before it, or keep nothing", NULL},
    {"node_name", OPT_STR, FIELD(cluster.node_name), 0, 0, true, "NAME",
     "this node's name in the cluster", "the hostname"},
    {"cluster_bind", OPT_STR, FIELD(cluster.cluster_bind), 0, 0, true, "ADDR",
     "cluster listener address", "same as --bind"},
    {"cluster_port", OPT_U16, FIELD(cluster.cluster_port), 0, 65535, false, "PORT",
     "cluster port (UDP + TCP); 0 = clustering off", "off; 7946 once clustering is on"},
    {"seeds", OPT_STR, FIELD(cluster.seeds), 0, 0, false, "LIST",
     "host:port,... to join; empty = alone", NULL},
    {"advertise_address", OPT_STR, FIELD(cluster.advertise_address), 0, 0, false, "HOST:PORT",
     "where clients reach this node (MQTT 5 Server Reference when a peer shuts down)",
     "the cluster address and --port"},
    {"http_port", OPT_U16, FIELD(ops.http_port), 0, 65535, false, "PORT",
     "HTTP /metrics, /readyz, /cluster port; 0 = off", "off"},
    {"gossip_interval_ms", OPT_UINT, FIELD(cluster.gossip_interval_ms), 1, 60000, false, "MS",
     "membership probe period", NULL},
    {"probe_timeout_ms", OPT_UINT, FIELD(cluster.probe_timeout_ms), 1, 60000, false, "MS",
     "direct probe timeout", NULL},
    {"suspicion_mult", OPT_UINT, FIELD(cluster.suspicion_mult), 1, 100, false, "N",
     "suspicion timeout multiplier", NULL},
    {"dns_interval_ms", OPT_UINT, FIELD(cluster.dns_interval_ms), 1, 86400000, false, "MS",
     "seed DNS re-resolve period", NULL},
    {"leave_timeout_ms", OPT_UINT, FIELD(cluster.leave_timeout_ms), 0, 60000, false, "MS",
     "SIGTERM wait to announce leave", NULL},
    {"cluster_key_file", OPT_STR, FIELD(cluster.cluster_key_file), 0, 0, false, "FILE",
     "gossip keys, one base64 32-byte key a line, first seals (SIGHUP re-reads)", "off"},
    {"cluster_label", OPT_STR, FIELD(cluster.cluster_label), 0, 0, true, "LABEL",
     "sealed gossip's additional data: the same on every node of a cluster", NULL},
    {"cluster_certfile", OPT_STR, FIELD(cluster.cluster_certfile), 0, 0, false, "FILE",
     "node link TLS: this node's certificate (PEM, naming the node name)", "off"},
    {"cluster_keyfile", OPT_STR, FIELD(cluster.cluster_keyfile), 0, 0, false, "FILE",
     "node link TLS: its private key (PEM)", "off"},
    {"cluster_cafile", OPT_STR, FIELD(cluster.cluster_cafile), 0, 0, false, "FILE",
     "node link TLS: the CA that signs every node's certificate (PEM)", "off"},
};

#define SETTINGS_NOPTS (sizeof(settings_opts) / sizeof(settings_opts[0]))

/* Mosquitto's short flags. */
static const struct {
    const char *flag;
    const char *name; /* config key, or "config" */
} settings_short[] = {{"-p", "port"}, {"-c", "config"}};

#define SETTINGS_NSHORT (sizeof(settings_short) / sizeof(settings_short[0]))

enum settings_source {
    SETTINGS_SRC_DEFAULT = 0,
    SETTINGS_SRC_FILE,
    SETTINGS_SRC_ENV,
    SETTINGS_SRC_FLAG
};

/* Where each setting's value came from: whether it was set explicitly, and how to name it. */
struct settings_seen {
    enum settings_source src[SETTINGS_NOPTS];
    unsigned line[SETTINGS_NOPTS];    /* SETTINGS_SRC_FILE: line number */
    const char *flag[SETTINGS_NOPTS]; /* SETTINGS_SRC_FLAG: the spelling used, if short (-p) */
    const char *path;                 /* the config file, if read */
};

/* Where a value came from, for error messages. */
struct settings_src {
    const char *prefix; /* "" or "config file F line N: " */
    const char *name;   /* "--port", "SOL_PORT" or the key as written */
};

/* Every module's defaults; the addresses that follow the MQTT bind start out as it. */
void settings_defaults(struct sol_settings *s)
{
    memset(s, 0, sizeof(*s));
    config_defaults(&s->node);
    cluster_config_defaults(&s->cluster);
    ops_config_defaults(&s->ops);
    memcpy(s->cluster.cluster_bind, s->node.bind, sizeof(s->cluster.cluster_bind));
    memcpy(s->ops.bind, s->cluster.cluster_bind, sizeof(s->ops.bind));
}

/* Find a setting by key; '-' and '_' are interchangeable. Returns its index or -1. */
static int settings_find(const char *key, size_t len)
{
    for (size_t i = 0; i < SETTINGS_NOPTS; i++) {
        const char *n = settings_opts[i].name;
        size_t j = 0;

        for (; j < len && n[j] != '\0'; j++) {
            char c = key[j] == '-' ? '_' : key[j];
            if (c != n[j])
                break;
        }
        if (j == len && n[j] == '\0')
            return (int)i;
    }
    return -1;
}

/* Parse a plain decimal number (no sign, no spaces, no suffix). */
static bool settings_parse_ull(const char *s, unsigned long long *out)
{
    char *end;

    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return errno == 0 && *end == '\0';
}

static bool settings_parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"true", "yes", "1", "on"};
    static const char *no[] = {"false", "no", "0", "off"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static bool settings_parse_policy(const char *s, enum overload_policy *out)
{
    if (strcmp(s, "backpressure") == 0)
        *out = OVERLOAD_BACKPRESSURE;
    else if (strcmp(s, "drop") == 0)
        *out = OVERLOAD_DROP;
    else
        return false;
    return true;
}

static const char *const settings_share_names[] = {"round_robin", "random", "local_first",
                                                   "hash_clientid"};

static bool settings_parse_share(const char *s, unsigned *out)
{
    for (unsigned i = 0; i < sizeof(settings_share_names) / sizeof(settings_share_names[0]); i++)
        if (strcmp(s, settings_share_names[i]) == 0) {
            *out = i;
            return true;
        }
    return false;
}

static bool settings_parse_level(const char *s, enum log_level *out)
{
    for (int l = LOG_LEVEL_ERROR; l <= LOG_LEVEL_DEBUG; l++) {
        if (strcasecmp(s, config_log_level_name((enum log_level)l)) == 0) {
            *out = (enum log_level)l;
            return true;
        }
    }
    return false;
}

/* Validate value for opt and store it in cfg. On error writes one line naming src. */
static int settings_set(struct sol_settings *cfg, const struct settings_opt *opt, const char *value,
                        const struct settings_src *src, char *err, size_t errlen)
{
    char *field = (char *)cfg + opt->offset;
    unsigned long long n;
    bool b;
    enum log_level level;

    switch (opt->type) {
    case OPT_STR:
        if (opt->nonempty && value[0] == '\0') {
            errf(err, errlen, "%sinvalid value '' for %s (expected a non-empty value)", src->prefix,
                 src->name);
            return -1;
        }
        if (strlen(value) >= opt->size) {
            errf(err, errlen, "%svalue for %s is too long (at most %zu characters)", src->prefix,
                 src->name, opt->size - 1);
            return -1;
        }
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case OPT_LIST:
        n = strlen(field);
        if (n + (n > 0) + strlen(value) >= opt->size || value[0] == '\0') {
            errf(err, errlen, "%sinvalid value '%s' for %s (empty, or too many listeners)",
                 src->prefix, value, src->name);
            return -1;
        }
        snprintf(field + n, opt->size - n, "%s%s", n > 0 ? " " : "", value);
        return 0;
    case OPT_U16:
    case OPT_SIZE:
    case OPT_UINT:
        if (!settings_parse_ull(value, &n) || n < opt->min || n > opt->max) {
            errf(err, errlen, "%sinvalid value '%s' for %s (expected an integer %llu-%llu)",
                 src->prefix, value, src->name, opt->min, opt->max);
            return -1;
        }
        if (opt->type == OPT_U16)
            *(uint16_t *)field = (uint16_t)n;
        else if (opt->type == OPT_SIZE)
            *(size_t *)field = (size_t)n;
        else
            *(unsigned *)field = (unsigned)n;
        return 0;
    case OPT_BOOL:
        if (!settings_parse_bool(value, &b)) {
            errf(err, errlen, "%sinvalid value '%s' for %s (expected true/false/yes/no/1/0/on/off)",
                 src->prefix, value, src->name);
            return -1;
        }
        *(bool *)field = b;
        return 0;
    case OPT_LEVEL:
        if (!settings_parse_level(value, &level)) {
            errf(err, errlen, "%sinvalid value '%s' for %s (expected error|warn|info|debug)",
                 src->prefix, value, src->name);
            return -1;
        }
        *(enum log_level *)field = level;
        return 0;
    case OPT_POLICY:
        if (!settings_parse_policy(value, (enum overload_policy *)field)) {
            errf(err, errlen, "%sinvalid value '%s' for %s (expected backpressure|drop)",
                 src->prefix, value, src->name);
            return -1;
        }
        return 0;
    case OPT_SHARE:
        if (!settings_parse_share(value, (unsigned *)field)) {
            errf(err, errlen,
                 "%sinvalid value '%s' for %s (expected round_robin|random|local_first|"
                 "hash_clientid)",
                 src->prefix, value, src->name);
            return -1;
        }
        return 0;
    }
    return -1;
}

/* Strip leading and trailing whitespace in place; returns the new start. */
static char *settings_trim(char *s)
{
    size_t len;

    while (isspace((unsigned char)*s))
        s++;
    len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    return s;
}

/* Apply one "key value" line of the config file. */
static int settings_file_line(struct sol_settings *cfg, struct settings_seen *seen,
                              const char *path, unsigned lineno, char *line, char *err,
                              size_t errlen)
{
    char prefix[512];
    char *key = settings_trim(line);
    char *value;
    size_t keylen;
    int idx;
    struct settings_src src;

    if (key[0] == '\0' || key[0] == '#')
        return 0;
    keylen = strcspn(key, " \t");
    value = key + keylen;
    if (*value != '\0')
        *value++ = '\0';
    value = settings_trim(value);
    snprintf(prefix, sizeof(prefix), "config file %s line %u: ", path, lineno);
    idx = settings_find(key, keylen);
    if (idx < 0) {
        errf(err, errlen, "%sunknown key '%s'", prefix, key);
        return -1;
    }
    if (value[0] == '\0' && settings_opts[idx].type != OPT_STR) {
        errf(err, errlen, "%smissing value for %s", prefix, key);
        return -1;
    }
    src.prefix = prefix;
    src.name = key;
    if (settings_set(cfg, &settings_opts[idx], value, &src, err, errlen) != 0)
        return -1;
    seen->src[idx] = SETTINGS_SRC_FILE;
    seen->line[idx] = lineno;
    return 0;
}

/* Read the config file line by line, applying each setting. */
static int settings_file_load(struct sol_settings *cfg, struct settings_seen *seen,
                              const char *path, char *err, size_t errlen)
{
    FILE *f;
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    int rc = 0;

    f = fopen(path, "r");
    if (f == NULL) {
        errf(err, errlen, "cannot read config file '%s': %s", path, strerror(errno));
        return -1;
    }
    while (getline(&line, &cap, f) != -1) {
        lineno++;
        rc = settings_file_line(cfg, seen, path, lineno, line, err, errlen);
        if (rc != 0)
            goto out;
    }
    if (ferror(f)) {
        errf(err, errlen, "cannot read config file '%s': %s", path, strerror(errno));
        rc = -1;
    }
out:
    free(line);
    fclose(f);
    return rc;
}

/* Apply every SOL_<NAME> variable naming a setting; other SOL_* variables are ignored. */
static int settings_env_load(struct sol_settings *cfg, struct settings_seen *seen, char **envp,
                             char *err, size_t errlen)
{
    char name[64];
    struct settings_src src = {"", name};

    for (size_t e = 0; envp != NULL && envp[e] != NULL; e++) {
        const char *var = envp[e];
        const char *eq = strchr(var, '=');
        size_t namelen;

        if (strncmp(var, "SOL_", 4) != 0 || eq == NULL)
            continue;
        namelen = (size_t)(eq - var);
        for (size_t i = 0; i < SETTINGS_NOPTS; i++) {
            const char *n = settings_opts[i].name;
            size_t j;

            if (strlen(n) + 4 != namelen)
                continue;
            for (j = 0; n[j] != '\0'; j++) {
                if (var[4 + j] != toupper((unsigned char)n[j]))
                    break;
            }
            if (n[j] != '\0')
                continue;
            snprintf(name, sizeof(name), "%.*s", (int)namelen, var);
            if (settings_set(cfg, &settings_opts[i], eq + 1, &src, err, errlen) != 0)
                return -1;
            seen->src[i] = SETTINGS_SRC_ENV;
            break;
        }
    }
    return 0;
}

/* Value of environment variable name in envp, or NULL. */
static const char *settings_getenv(char **envp, const char *name)
{
    size_t len = strlen(name);

    for (size_t e = 0; envp != NULL && envp[e] != NULL; e++) {
        if (strncmp(envp[e], name, len) == 0 && envp[e][len] == '=')
            return envp[e] + len + 1;
    }
    return NULL;
}

static void settings_print_default(FILE *out, const struct settings_opt *opt,
                                   const struct sol_settings *def)
{
    const char *field = (const char *)def + opt->offset;

    if (opt->default_txt != NULL) {
        fprintf(out, "%s", opt->default_txt);
        return;
    }
    switch (opt->type) {
    case OPT_STR:
    case OPT_LIST:
        fprintf(out, field[0] != '\0' ? "%s" : "empty", field);
        break;
    case OPT_U16:
        fprintf(out, "%u", (unsigned)*(const uint16_t *)field);
        break;
    case OPT_SIZE:
        fprintf(out, "%zu", *(const size_t *)field);
        break;
    case OPT_UINT:
        fprintf(out, "%u", *(const unsigned *)field);
        break;
    case OPT_BOOL:
        fprintf(out, "%s", *(const bool *)field ? "true" : "false");
        break;
    case OPT_LEVEL:
        fprintf(out, "%s", config_log_level_name(*(const enum log_level *)field));
        break;
    case OPT_POLICY:
        fprintf(out, "%s",
                *(const enum overload_policy *)field == OVERLOAD_DROP ? "drop" : "backpressure");
        break;
    case OPT_SHARE:
        fprintf(out, "%s", settings_share_names[*(const unsigned *)field % 4]);
        break;
    }
}

/* The short flag for a setting (-p for port), or NULL. */
static const char *settings_short_of(const char *name)
{
    for (size_t i = 0; i < SETTINGS_NSHORT; i++) {
        if (strcmp(settings_short[i].name, name) == 0)
            return settings_short[i].flag;
    }
    return NULL;
}

/* --help: every flag with its one-line description and default. */
static void settings_usage(FILE *out, const char *prog)
{
    struct sol_settings def;
    char flag[64];

    settings_defaults(&def);
    fprintf(out, "Usage: %s [OPTIONS]\n\n", prog);
    fprintf(out, "sol %s, a clustered MQTT 3.1.1 broker.\n\n", SOL_VERSION);
    fprintf(
        out,
        "Every option is also a config file key (max_inflight 20, a dash also accepted) and an\n"
        "environment variable (SOL_MAX_INFLIGHT=20). Precedence: flag > environment > file > "
        "default.\n"
        "Only the MQTT listener is on by default: the cluster listener starts once --seeds,\n"
        "--cluster-port or --cluster-bind is set, the HTTP endpoint once --http-port is.\n\n");
    fprintf(out, "  %-26s %s\n", "--config FILE, -c FILE",
            "read settings from FILE (also SOL_CONFIG)");
    for (size_t i = 0; i < SETTINGS_NOPTS; i++) {
        const struct settings_opt *opt = &settings_opts[i];
        const char *short_flag = settings_short_of(opt->name);
        int n = snprintf(flag, sizeof(flag), "--");

        for (const char *c = opt->name; *c != '\0' && n < (int)sizeof(flag) - 1; c++)
            flag[n++] = *c == '_' ? '-' : *c;
        if (short_flag != NULL)
            snprintf(flag + n, sizeof(flag) - (size_t)n, " %s, %s %s", opt->metavar, short_flag,
                     opt->metavar);
        else
            snprintf(flag + n, sizeof(flag) - (size_t)n, " %s", opt->metavar);
        fprintf(out, "  %-26s %s (default: ", flag, opt->help);
        settings_print_default(out, opt, &def);
        fprintf(out, ")\n");
    }
    fprintf(out, "  %-26s %s\n", "--help, -h", "print this help and exit");
    fprintf(out, "  %-26s %s\n", "--version", "print the version and exit");
}

/*
 * Walk argv. With apply false: reject unknown options and missing values, handle --help/--version
 * and find --config. With apply true: store every flag's value (they were already checked for
 * shape).
 */
static int settings_argv(struct sol_settings *cfg, struct settings_seen *seen, int argc,
                         char **argv, bool apply, const char **config_path, char *err,
                         size_t errlen)
{
    const char *prog = argc > 0 && argv[0] != NULL ? argv[0] : "sol";

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *name, *eq = NULL, *value = NULL, *short_flag = NULL;
        size_t namelen;
        int idx;
        struct settings_src src;
        char flag[80];

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            settings_usage(stdout, prog);
            return SETTINGS_EXIT_OK;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("sol %s\n", SOL_VERSION);
            return SETTINGS_EXIT_OK;
        }
        for (size_t s = 0; s < SETTINGS_NSHORT; s++) {
            if (strcmp(arg, settings_short[s].flag) == 0) {
                short_flag = arg;
                name = settings_short[s].name;
            }
        }
        if (short_flag != NULL) {
            namelen = strlen(name);
            snprintf(flag, sizeof(flag), "%s", short_flag);
        } else {
            if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
                errf(err, errlen, "unexpected argument '%s'", arg);
                return SETTINGS_ERROR;
            }
            name = arg + 2;
            eq = strchr(name, '=');
            namelen = eq != NULL ? (size_t)(eq - name) : strlen(name);
            snprintf(flag, sizeof(flag), "--%.*s", (int)namelen, name);
            if (eq != NULL)
                value = eq + 1;
        }

        if (namelen == 6 && strncmp(name, "config", 6) == 0) {
            if (value == NULL) {
                if (i + 1 >= argc) {
                    errf(err, errlen, "missing value for %s", flag);
                    return SETTINGS_ERROR;
                }
                value = argv[++i];
            }
            if (value[0] == '\0') {
                errf(err, errlen, "invalid value '' for %s (expected a file name)", flag);
                return SETTINGS_ERROR;
            }
            *config_path = value;
            continue;
        }
        idx = settings_find(name, namelen);
        if (idx < 0) {
            errf(err, errlen, "unknown option %s", flag);
            return SETTINGS_ERROR;
        }
        if (value == NULL) {
            if (settings_opts[idx].type == OPT_BOOL && (i + 1 >= argc || argv[i + 1][0] == '-')) {
                value = "true"; /* a bare boolean flag turns the setting on */
            } else if (i + 1 >= argc) {
                errf(err, errlen, "missing value for %s", flag);
                return SETTINGS_ERROR;
            } else {
                value = argv[++i];
            }
        }
        if (!apply)
            continue;
        src.prefix = "";
        src.name = flag;
        if (settings_set(cfg, &settings_opts[idx], value, &src, err, errlen) != 0)
            return SETTINGS_ERROR;
        seen->src[idx] = SETTINGS_SRC_FLAG;
        seen->flag[idx] = short_flag;
    }
    return SETTINGS_OK;
}

/* Index of a setting in settings_opts (the name must exist). */
static size_t settings_index(const char *name)
{
    int idx = settings_find(name, strlen(name));

    return idx < 0 ? 0 : (size_t)idx;
}

/* A setting named as the user gave it: "--seeds", "-p", "SOL_SEEDS" or "seeds (config file F
 * line N)"; one left at its default is named by its long flag. */
static void settings_spelling(char *out, size_t len, const struct settings_seen *seen, size_t idx)
{
    const char *name = settings_opts[idx].name;
    size_t n = 0;

    switch (seen->src[idx]) {
    case SETTINGS_SRC_FILE:
        snprintf(out, len, "%s (config file %s line %u)", name, seen->path, seen->line[idx]);
        return;
    case SETTINGS_SRC_ENV:
        n = (size_t)snprintf(out, len, "SOL_");
        for (const char *c = name; *c != '\0' && n + 1 < len; c++)
            out[n++] = (char)toupper((unsigned char)*c);
        out[n < len ? n : len - 1] = '\0';
        return;
    case SETTINGS_SRC_FLAG:
    case SETTINGS_SRC_DEFAULT:
        if (seen->flag[idx] != NULL) {
            snprintf(out, len, "%s", seen->flag[idx]);
            return;
        }
        n = (size_t)snprintf(out, len, "--");
        for (const char *c = name; *c != '\0' && n + 1 < len; c++)
            out[n++] = *c == '_' ? '-' : *c;
        out[n < len ? n : len - 1] = '\0';
        return;
    }
}

/* A listener's port as the user gave it, e.g. "--cluster-port 7000", "SOL_PORT=1884",
 * "port 1884 (config file F line 3)", "--port 1883 (default)". why, if not empty, says what turned
 * clustering on with the default port. A very long config file path is cut short. */
static void settings_origin(char *out, size_t len, const struct settings_seen *seen, size_t idx,
                            unsigned port, const char *why)
{
    char name[CONFIG_ORIGIN_LEN];
    const char *paren;

    settings_spelling(name, sizeof(name), seen, idx);
    switch (seen->src[idx]) {
    case SETTINGS_SRC_ENV:
        errf(out, len, "%s=%u", name, port);
        break;
    case SETTINGS_SRC_FILE:
        paren = strchr(name, ' ');
        if (paren == NULL)
            paren = name + strlen(name);
        errf(out, len, "%.*s %u%s", (int)(paren - name), name, port, paren);
        break;
    case SETTINGS_SRC_FLAG:
        errf(out, len, "%s %u", name, port);
        break;
    case SETTINGS_SRC_DEFAULT:
        if (why[0] != '\0')
            errf(out, len, "%s %u (default; clustering is on because %s is set)", name, port, why);
        else
            errf(out, len, "%s %u (default)", name, port);
        break;
    }
}

/* Which listeners run. The cluster runs when asked for by a non-zero cluster_port, a cluster_bind
 * or non-empty seeds (an explicit cluster_port 0 still turns it off); HTTP when http_port is
 * non-zero, which only an explicit setting makes it. Unasked-for listeners are off so that they
 * cannot collide with another node's on the same host. */
static void settings_listeners(struct sol_settings *cfg, const struct settings_seen *seen)
{
    size_t i_port = settings_index("port"), i_cport = settings_index("cluster_port");
    size_t i_cbind = settings_index("cluster_bind"), i_seeds = settings_index("seeds");
    size_t i_hport = settings_index("http_port");
    char why[CONFIG_ORIGIN_LEN] = "";

    struct sol_config *node = &cfg->node;
    struct cluster_config *cl = &cfg->cluster;
    struct ops_config *ops = &cfg->ops;

    settings_origin(node->origin.port, sizeof(node->origin.port), seen, i_port, node->port, "");
    if (seen->src[i_seeds] != SETTINGS_SRC_DEFAULT && cl->seeds[0] != '\0')
        settings_spelling(why, sizeof(why), seen, i_seeds);
    else if (seen->src[i_cbind] != SETTINGS_SRC_DEFAULT)
        settings_spelling(why, sizeof(why), seen, i_cbind);
    if (seen->src[i_cport] == SETTINGS_SRC_DEFAULT && why[0] != '\0')
        cl->cluster_port = CLUSTER_CONFIG_PORT;
    if (cl->cluster_port != 0)
        settings_origin(cl->origin.cluster_port, sizeof(cl->origin.cluster_port), seen, i_cport,
                        cl->cluster_port, why);
    if (ops->http_port != 0)
        settings_origin(ops->origin.http_port, sizeof(ops->origin.http_port), seen, i_hport,
                        ops->http_port, "");
}

/* The listeners and TLS settings that only make sense together (config_tls_check), the error
 * naming the setting as the user gave it. */
static int settings_tls(const struct sol_settings *cfg, const struct settings_seen *seen, char *err,
                        size_t errlen)
{
    char name[CONFIG_ORIGIN_LEN], why[256];
    const char *key = config_tls_check(&cfg->node, why, sizeof(why));

    if (key == NULL)
        return SETTINGS_OK;
    settings_spelling(name, sizeof(name), seen, settings_index(key));
    errf(err, errlen, "%s: %s", name, why);
    return SETTINGS_ERROR;
}

/* A key file that cannot be used is a bad value like any other: refused at start, naming the
 * setting as the user gave it and the line. */
static int settings_check_keys(const struct sol_settings *cfg, const struct settings_seen *seen,
                               char *err, size_t errlen)
{
    struct seal_keyring kr;
    char why[256], name[CONFIG_ORIGIN_LEN];

    if (cfg->cluster.cluster_key_file[0] == '\0')
        return SETTINGS_OK;
    if (seal_keyring_load(&kr, cfg->cluster.cluster_key_file, cfg->cluster.cluster_label, why,
                          sizeof(why)) == 0) {
        OPENSSL_cleanse(&kr, sizeof(kr));
        return SETTINGS_OK;
    }
    settings_spelling(name, sizeof(name), seen, settings_index("cluster_key_file"));
    errf(err, errlen, "invalid %s: %s", name, why);
    return SETTINGS_ERROR;
}

/* Node link TLS takes all three files or none: a cluster half configured would refuse every link
 * (or silently run in the clear). The first one set names the error; a file that cannot be opened
 * is named too (a PEM that does not parse is refused by cluster_start). */
static int settings_check_cluster_tls(const struct sol_settings *cfg,
                                      const struct settings_seen *seen, char *err, size_t errlen)
{
    static const char *const keys[] = {"cluster_certfile", "cluster_keyfile", "cluster_cafile"};
    const char *vals[] = {cfg->cluster.cluster_certfile, cfg->cluster.cluster_keyfile,
                          cfg->cluster.cluster_cafile};
    char name[CONFIG_ORIGIN_LEN], miss[CONFIG_ORIGIN_LEN];
    size_t set = 0, first = 0, missing = 3;

    for (size_t i = 0; i < 3; i++) {
        if (vals[i][0] != '\0' && set++ == 0)
            first = i;
        if (vals[i][0] == '\0' && missing == 3)
            missing = i;
    }
    if (set == 0)
        return SETTINGS_OK;
    for (size_t i = 0; set == 3 && i < 3; i++) {
        FILE *f = fopen(vals[i], "rb");
        if (f) {
            fclose(f);
            continue;
        }
        settings_spelling(name, sizeof(name), seen, settings_index(keys[i]));
        errf(err, errlen, "invalid %s: cannot open %s", name, vals[i]);
        return SETTINGS_ERROR;
    }
    if (set == 3)
        return SETTINGS_OK;
    settings_spelling(name, sizeof(name), seen, settings_index(keys[first]));
    settings_spelling(miss, sizeof(miss), seen, settings_index(keys[missing]));
    errf(err, errlen,
         "%s needs cluster_certfile, cluster_keyfile and cluster_cafile together: %s is not set",
         name, miss);
    return SETTINGS_ERROR;
}

/* Defaults, then the config file, then the environment, then flags. */
int settings_load(struct sol_settings *cfg, int argc, char **argv, char **envp, char *err,
                  size_t errlen)
{
    struct settings_seen seen;
    const char *config_path = NULL;
    int rc;

    memset(&seen, 0, sizeof(seen)); /* every setting SETTINGS_SRC_DEFAULT */
    settings_defaults(cfg);
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    rc = settings_argv(cfg, &seen, argc, argv, false, &config_path, err, errlen);
    if (rc != SETTINGS_OK)
        return rc;
    if (config_path == NULL)
        config_path = settings_getenv(envp, "SOL_CONFIG");
    if (config_path != NULL && config_path[0] == '\0') {
        errf(err, errlen, "invalid value '' for SOL_CONFIG (expected a file name)");
        return SETTINGS_ERROR;
    }
    seen.path = config_path;
    if (config_path != NULL && settings_file_load(cfg, &seen, config_path, err, errlen) != 0)
        return SETTINGS_ERROR;
    if (settings_env_load(cfg, &seen, envp, err, errlen) != 0)
        return SETTINGS_ERROR;
    rc = settings_argv(cfg, &seen, argc, argv, true, &config_path, err, errlen);
    if (rc != SETTINGS_OK)
        return rc;

    /* cluster_bind follows bind unless it was given explicitly; HTTP listens where the cluster does. */
    if (seen.src[settings_index("cluster_bind")] == SETTINGS_SRC_DEFAULT)
        memcpy(cfg->cluster.cluster_bind, cfg->node.bind, sizeof(cfg->cluster.cluster_bind));
    memcpy(cfg->ops.bind, cfg->cluster.cluster_bind, sizeof(cfg->ops.bind));
    if (!cfg->cluster.advertise_address[0] && strcmp(cfg->cluster.cluster_bind, "0.0.0.0") != 0)
        snprintf(cfg->cluster.advertise_address, sizeof(cfg->cluster.advertise_address), "%s:%u",
                 cfg->cluster.cluster_bind, cfg->node.port);
    if (cfg->node.backlog_low >= cfg->node.backlog_high) {
        errf(err, errlen, "invalid value %zu for backlog_low (must be below backlog_high, %zu)",
             cfg->node.backlog_low, cfg->node.backlog_high);
        return SETTINGS_ERROR;
    }
    if (settings_tls(cfg, &seen, err, errlen) != SETTINGS_OK)
        return SETTINGS_ERROR;
    settings_listeners(cfg, &seen);
    if (settings_check_cluster_tls(cfg, &seen, err, errlen) != SETTINGS_OK)
        return SETTINGS_ERROR;
    return settings_check_keys(cfg, &seen, err, errlen);
}
