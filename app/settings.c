/*
 * settings.c - settings from flags, SOL_* environment variables and a "key value" config file, for
 * every module (settings.h).
 *
 * One table describes every setting (settings_table.c: name, type, range, help, and the field of
 * whichever module's struct holds it). The flag parser, the environment scan and the file parser
 * here all look settings up and store values through it, so a setting cannot exist in one source
 * and not another. Precedence is flag > env > file > default: we apply the file first, then the
 * environment, then flags, each overwriting the previous. This file also remembers where each value
 * came from, to name it in errors, and checks the settings that only make sense together.
 *
 * The cluster and HTTP listeners start only where asked for (cluster_config.h, ops.h), so that a
 * port the user never chose cannot stop the broker; settings_load records where each listener's
 * port came from, for the error that names it when the port is busy.
 */
#include "settings.h"
#include "log.h"
#include "seal.h"
#include "settings_table.h"
#include <openssl/crypto.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum settings_source {
    SETTINGS_SRC_DEFAULT = 0,
    SETTINGS_SRC_FILE,
    SETTINGS_SRC_ENV,
    SETTINGS_SRC_FLAG
};

/* Where each setting's value came from: whether it was set explicitly, and how to name it. */
struct settings_seen {
    enum settings_source src[SETTINGS_MAX_OPTS];
    unsigned line[SETTINGS_MAX_OPTS];    /* SETTINGS_SRC_FILE: line number */
    const char *flag[SETTINGS_MAX_OPTS]; /* SETTINGS_SRC_FLAG: the spelling used, if short (-p) */
    const char *path;                    /* the config file, if read */
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
        for (size_t i = 0; i < settings_nopts; i++) {
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
        name = settings_short_name(arg);
        if (name != NULL) {
            short_flag = arg;
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
