/*
 * settings_table.c - the one table that describes every setting (name, type, range, help, and the
 * field of whichever module's struct holds it), and the code that reads it one setting at a time:
 * lookup, value validation, --help (settings_table.h). The flag parser, the environment scan and the
 * file parser in settings.c all go through here, so a setting cannot exist in one source and not
 * another.
 */
#include "settings_table.h"
#include "log.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FIELD(f) offsetof(struct sol_settings, f), sizeof(((struct sol_settings *)0)->f)

const struct settings_opt settings_opts[] = {
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

const size_t settings_nopts = SETTINGS_NOPTS;

_Static_assert(SETTINGS_NOPTS <= SETTINGS_MAX_OPTS,
               "more settings than SETTINGS_MAX_OPTS (settings_table.h): raise it");

/* Mosquitto's short flags. */
static const struct {
    const char *flag;
    const char *name; /* config key, or "config" */
} settings_short[] = {{"-p", "port"}, {"-c", "config"}};

#define SETTINGS_NSHORT (sizeof(settings_short) / sizeof(settings_short[0]))

/* One pass over the table: a few dozen settings, looked up a few times at start. */
int settings_find(const char *key, size_t len)
{
    for (size_t i = 0; i < settings_nopts; i++) {
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

/* A name that does not exist is a bug of settings.c; index 0 keeps it from reading out of bounds. */
size_t settings_index(const char *name)
{
    int idx = settings_find(name, strlen(name));

    return idx < 0 ? 0 : (size_t)idx;
}

/* Mosquitto compatibility: -p and -c as its users type them. */
const char *settings_short_name(const char *flag)
{
    for (size_t i = 0; i < SETTINGS_NSHORT; i++) {
        if (strcmp(settings_short[i].flag, flag) == 0)
            return settings_short[i].name;
    }
    return NULL;
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

/* One switch over the value types: every source validates a value the same way, with the same
 * error wording. */
int settings_set(struct sol_settings *cfg, const struct settings_opt *opt, const char *value,
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

/* Generated from the table, so --help cannot miss a setting or show a stale default. */
void settings_usage(FILE *out, const char *prog)
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
    for (size_t i = 0; i < settings_nopts; i++) {
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
