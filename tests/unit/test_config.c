/*
 * test_config.c - flags, environment, config file, precedence, validation errors, --help,
 * --version. Runs with tests/unit as the working directory (fixtures in data/).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "settings.h"

#ifndef SOL_VERSION
#define SOL_VERSION "0.0.0"
#endif

#define MAXARGS 128

/* Every flag --help must list (one per setting, plus --config). */
static const char *all_flags[] = {
    "--config",
    "--bind",
    "--port",
    "--listener",
    "--certfile",
    "--keyfile",
    "--cafile",
    "--capath",
    "--require-certificate",
    "--use-identity-as-username",
    "--tls-min-version",
    "--ciphers",
    "--ws-origins",
    "--proxy-protocol",
    "--trust-x-forwarded-for",
    "--acl-file",
    "--password-file",
    "--allow-anonymous",
    "--max-packet-size",
    "--max-connections",
    "--max-inflight",
    "--max-queued",
    "--log-level",
    "--sys-interval",
    "--overload-policy",
    "--backlog-high",
    "--backlog-low",
    "--stall-timeout-ms",
    "--session-max-bytes",
    "--max-conn-memory",
    "--data-dir",
    "--durability",
    "--node-name",
    "--cluster-bind",
    "--cluster-port",
    "--seeds",
    "--http-port",
    "--gossip-interval-ms",
    "--probe-timeout-ms",
    "--suspicion-mult",
    "--dns-interval-ms",
    "--leave-timeout-ms",
    "--help",
    "--version",
};

/* Build argv from a NULL-terminated list and run config_load with env (may be NULL). */
static int load(struct sol_settings *cfg, char **env, char *err, size_t errlen, ...)
{
    char *argv[MAXARGS];
    int argc = 0;
    va_list ap;
    char *a;

    argv[argc++] = "sol";
    va_start(ap, errlen);
    while ((a = va_arg(ap, char *)) != NULL && argc < MAXARGS - 1)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    return settings_load(cfg, argc, argv, env, err, errlen);
}

/* Expect an error whose text equals want exactly. */
static void expect_error(int rc, const char *err, const char *want)
{
    assert_int_equal(rc, SETTINGS_ERROR);
    assert_string_equal(err, want);
}

/* Run config_load with stdout redirected into buf. */
static int load_capture(struct sol_settings *cfg, char *buf, size_t buflen, const char *arg)
{
    char *argv[] = {"sol", (char *)arg, NULL};
    char err[256];
    FILE *tmp = tmpfile();
    int saved, rc;
    size_t n;

    assert_non_null(tmp);
    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDOUT_FILENO) >= 0);
    rc = settings_load(cfg, 2, argv, NULL, err, sizeof(err));
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    rewind(tmp);
    n = fread(buf, 1, buflen - 1, tmp);
    buf[n] = '\0';
    fclose(tmp);
    return rc;
}

static void test_defaults(void **state)
{
    struct sol_settings cfg;
    char host[256] = "";
    char err[256];

    (void)state;
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), NULL), SETTINGS_OK);
    assert_string_equal(cfg.node.bind, "0.0.0.0");
    assert_int_equal(cfg.node.port, 1883);
    assert_string_equal(cfg.node.acl_file, "");
    assert_string_equal(cfg.node.password_file, "");
    assert_true(cfg.node.allow_anonymous);
    assert_int_equal(cfg.node.max_packet_size, 1048576);
    assert_int_equal(cfg.node.max_connections, 100000);
    assert_int_equal(cfg.node.max_inflight, 256);
    assert_int_equal(cfg.node.max_queued, 1000);
    assert_int_equal(cfg.node.log_level, LOG_LEVEL_INFO);
    assert_int_equal(cfg.node.sys_interval, 10);
    assert_int_equal(cfg.node.overload_policy, OVERLOAD_BACKPRESSURE);
    assert_int_equal(cfg.node.backlog_high, 1 << 20);
    assert_int_equal(cfg.node.backlog_low, 256 << 10);
    assert_int_equal(cfg.node.stall_timeout_ms, 2000);
    assert_string_equal(cfg.node.data_dir, "./data");
    assert_string_equal(cfg.node.durability, "sync");
    assert_int_equal(gethostname(host, sizeof(host)), 0);
    host[sizeof(cfg.cluster.node_name) - 1] = '\0';
    assert_string_equal(cfg.cluster.node_name, host);
    assert_string_equal(cfg.cluster.cluster_bind, "0.0.0.0");
    assert_int_equal(cfg.cluster.cluster_port, 0); /* only MQTT listens unless more is asked for */
    assert_string_equal(cfg.cluster.seeds, "");
    assert_int_equal(cfg.ops.http_port, 0);
    assert_int_equal(cfg.cluster.gossip_interval_ms, 200);
    assert_int_equal(cfg.cluster.probe_timeout_ms, 100);
    assert_int_equal(cfg.cluster.suspicion_mult, 4);
    assert_int_equal(cfg.cluster.dns_interval_ms, 2000);
    assert_int_equal(cfg.cluster.leave_timeout_ms, 1000);
}

/* The non-default values used by the "every setting" tests, checked field by field. */
static void check_all_set(const struct sol_settings *cfg, const char *acl_file)
{
    assert_string_equal(cfg->node.bind, "127.0.0.5");
    assert_int_equal(cfg->node.port, 1999);
    assert_string_equal(cfg->node.acl_file, acl_file);
    assert_string_equal(cfg->node.password_file, "/etc/sol/passwd");
    assert_false(cfg->node.allow_anonymous);
    assert_int_equal(cfg->node.max_packet_size, 4096);
    assert_int_equal(cfg->node.max_connections, 77);
    assert_int_equal(cfg->node.max_inflight, 33);
    assert_int_equal(cfg->node.max_queued, 0);
    assert_int_equal(cfg->node.log_level, LOG_LEVEL_DEBUG);
    assert_int_equal(cfg->node.sys_interval, 0);
    assert_string_equal(cfg->cluster.node_name, "node-a");
    assert_string_equal(cfg->cluster.cluster_bind, "127.0.0.6");
    assert_int_equal(cfg->cluster.cluster_port, 0);
    assert_string_equal(cfg->cluster.seeds, "a.example:7946,10.0.0.2:7000");
    assert_int_equal(cfg->ops.http_port, 0);
    assert_int_equal(cfg->cluster.gossip_interval_ms, 300);
    assert_int_equal(cfg->cluster.probe_timeout_ms, 150);
    assert_int_equal(cfg->cluster.suspicion_mult, 6);
    assert_int_equal(cfg->cluster.dns_interval_ms, 5000);
    assert_int_equal(cfg->cluster.leave_timeout_ms, 0);
    assert_string_equal(cfg->node.data_dir, "/var/lib/sol-test");
    assert_string_equal(cfg->node.durability, "async");
}

static void test_every_flag_space_form(void **state)
{
    struct sol_settings cfg;
    char err[256];

    (void)state;
    assert_int_equal(
        load(&cfg, NULL, err, sizeof(err), "--bind", "127.0.0.5", "--port", "1999", "--acl-file",
             "/etc/sol/acl", "--password-file", "/etc/sol/passwd", "--allow-anonymous", "no",
             "--max-packet-size", "4096", "--max-connections", "77", "--max-inflight", "33",
             "--max-queued", "0", "--log-level", "debug", "--sys-interval", "0", "--node-name",
             "node-a", "--cluster-bind", "127.0.0.6", "--cluster-port", "0", "--seeds",
             "a.example:7946,10.0.0.2:7000", "--http-port", "0", "--gossip-interval-ms", "300",
             "--probe-timeout-ms", "150", "--suspicion-mult", "6", "--dns-interval-ms", "5000",
             "--leave-timeout-ms", "0", "--data-dir", "/var/lib/sol-test", "--durability", "async",
             NULL),
        SETTINGS_OK);
    check_all_set(&cfg, "/etc/sol/acl");
}

static void test_every_flag_equals_form(void **state)
{
    struct sol_settings cfg;
    char err[256];

    (void)state;
    assert_int_equal(
        load(&cfg, NULL, err, sizeof(err), "--bind=127.0.0.5", "--port=1999",
             "--acl-file=/etc/sol/acl", "--password-file=/etc/sol/passwd",
             "--allow-anonymous=false", "--max-packet-size=4096", "--max-connections=77",
             "--max-inflight=33", "--max-queued=0", "--log-level=debug", "--sys-interval=0",
             "--node-name=node-a", "--cluster-bind=127.0.0.6", "--cluster-port=0",
             "--seeds=a.example:7946,10.0.0.2:7000", "--http-port=0", "--gossip-interval-ms=300",
             "--probe-timeout-ms=150", "--suspicion-mult=6", "--dns-interval-ms=5000",
             "--leave-timeout-ms=0", "--data-dir=/var/lib/sol-test", "--durability=async", NULL),
        SETTINGS_OK);
    check_all_set(&cfg, "/etc/sol/acl");
}

static void test_underscore_flags_accepted(void **state)
{
    struct sol_settings cfg;
    char err[256];

    (void)state;
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "--max_inflight", "7", NULL), SETTINGS_OK);
    assert_int_equal(cfg.node.max_inflight, 7);
}

static void test_every_env(void **state)
{
    struct sol_settings cfg;
    char err[256];
    char *env[] = {"PATH=/usr/bin",
                   "SOL_BIND=127.0.0.5",
                   "SOL_PORT=1999",
                   "SOL_ACL_FILE=/etc/sol/acl",
                   "SOL_PASSWORD_FILE=/etc/sol/passwd",
                   "SOL_ALLOW_ANONYMOUS=off",
                   "SOL_MAX_PACKET_SIZE=4096",
                   "SOL_MAX_CONNECTIONS=77",
                   "SOL_MAX_INFLIGHT=33",
                   "SOL_MAX_QUEUED=0",
                   "SOL_LOG_LEVEL=debug",
                   "SOL_SYS_INTERVAL=0",
                   "SOL_NODE_NAME=node-a",
                   "SOL_CLUSTER_BIND=127.0.0.6",
                   "SOL_CLUSTER_PORT=0",
                   "SOL_SEEDS=a.example:7946,10.0.0.2:7000",
                   "SOL_HTTP_PORT=0",
                   "SOL_GOSSIP_INTERVAL_MS=300",
                   "SOL_PROBE_TIMEOUT_MS=150",
                   "SOL_SUSPICION_MULT=6",
                   "SOL_DNS_INTERVAL_MS=5000",
                   "SOL_LEAVE_TIMEOUT_MS=0",
                   "SOL_DATA_DIR=/var/lib/sol-test",
                   "SOL_DURABILITY=async",
                   NULL};

    (void)state;
    assert_int_equal(load(&cfg, env, err, sizeof(err), NULL), SETTINGS_OK);
    check_all_set(&cfg, "/etc/sol/acl");
}

static void test_every_file_key(void **state)
{
    struct sol_settings cfg;
    char err[256];

    (void)state;
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "--config", "data/config_full.conf", NULL),
                     SETTINGS_OK);
    check_all_set(&cfg, "/etc/sol/acl with space");
}

static void test_config_from_env(void **state)
{
    struct sol_settings cfg;
    char err[256];
    char *env[] = {"SOL_CONFIG=data/config_full.conf", NULL};

    (void)state;
    assert_int_equal(load(&cfg, env, err, sizeof(err), NULL), SETTINGS_OK);
    check_all_set(&cfg, "/etc/sol/acl with space");
}

static void test_config_flag_beats_env(void **state)
{
    struct sol_settings cfg;
    char err[256];
    char *env[] = {"SOL_CONFIG=data/config_full.conf", NULL};

    (void)state;
    assert_int_equal(load(&cfg, env, err, sizeof(err), "--config=data/config_port_1000.conf", NULL),
                     SETTINGS_OK);
    assert_int_equal(cfg.node.port, 1000);
    assert_int_equal(cfg.node.max_inflight, 256); /* config_full.conf was not read */
}

static void test_crlf_file(void **state)
{
    struct sol_settings cfg;
    char err[256];

    (void)state;
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "--config", "data/config_crlf.conf", NULL),
                     SETTINGS_OK);
    assert_int_equal(cfg.node.port, 1000);
    assert_int_equal(cfg.node.max_inflight, 5);
}

static void test_precedence(void **state)
{
    struct sol_settings cfg;
    char err[256];
    char *env_port[] = {"SOL_PORT=2000", NULL};
    char *env_other[] = {"SOL_MAX_QUEUED=5", NULL};

    (void)state;
    /* flag > env > file */
    assert_int_equal(load(&cfg, env_port, err, sizeof(err), "--config",
                          "data/config_port_1000.conf", "--port", "3000", NULL),
                     SETTINGS_OK);
    assert_int_equal(cfg.node.port, 3000);
    /* env > file */
    assert_int_equal(
        load(&cfg, env_port, err, sizeof(err), "--config", "data/config_port_1000.conf", NULL),
        SETTINGS_OK);
    assert_int_equal(cfg.node.port, 2000);
    /* file > default */
    assert_int_equal(
        load(&cfg, env_other, err, sizeof(err), "--config", "data/config_port_1000.conf", NULL),
        SETTINGS_OK);
    assert_int_equal(cfg.node.port, 1000);
    assert_int_equal(cfg.node.max_queued, 5);
    /* flag > env without a file; the flag given before --config still wins over the file */
    assert_int_equal(load(&cfg, env_port, err, sizeof(err), "--port=4000", "--config",
                          "data/config_port_1000.conf", NULL),
                     SETTINGS_OK);
    assert_int_equal(cfg.node.port, 4000);
    /* last flag wins */
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "--port=4000", "--port=4001", NULL),
                     SETTINGS_OK);
    assert_int_equal(cfg.node.port, 4001);
}

static void test_cluster_bind_follows_bind(void **state)
{
    struct sol_settings cfg;
    char err[256];
    char *env[] = {"SOL_BIND=127.0.0.8", NULL};

    (void)state;
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "--bind", "127.0.0.7", NULL), SETTINGS_OK);
    assert_string_equal(cfg.cluster.cluster_bind, "127.0.0.7");
    assert_int_equal(load(&cfg, env, err, sizeof(err), NULL), SETTINGS_OK);
    assert_string_equal(cfg.cluster.cluster_bind, "127.0.0.8");
    assert_int_equal(
        load(&cfg, NULL, err, sizeof(err), "--config", "data/config_port_1000.conf", NULL),
        SETTINGS_OK);
    assert_string_equal(cfg.cluster.cluster_bind, "127.0.0.9");
    assert_int_equal(load(&cfg, env, err, sizeof(err), "--cluster-bind", "127.0.0.1", NULL),
                     SETTINGS_OK);
    assert_string_equal(cfg.node.bind, "127.0.0.8");
    assert_string_equal(cfg.cluster.cluster_bind, "127.0.0.1");
}

static void test_booleans(void **state)
{
    static const char *yes[] = {"true", "yes", "1", "on", "TRUE", "Yes"};
    static const char *no[] = {"false", "no", "0", "off", "FALSE", "Off"};
    struct sol_settings cfg;
    char err[256];
    char arg[64];

    (void)state;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        snprintf(arg, sizeof(arg), "--allow-anonymous=%s", no[i]);
        assert_int_equal(load(&cfg, NULL, err, sizeof(err), arg, NULL), SETTINGS_OK);
        assert_false(cfg.node.allow_anonymous);
        snprintf(arg, sizeof(arg), "--allow-anonymous=%s", yes[i]);
        assert_int_equal(load(&cfg, NULL, err, sizeof(err), "--allow-anonymous=no", arg, NULL),
                         SETTINGS_OK);
        assert_true(cfg.node.allow_anonymous);
    }
    /* A bare boolean flag means true; the next flag is not taken as its value. */
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "--allow-anonymous=no", "--allow-anonymous",
                          "--port", "5", NULL),
                     SETTINGS_OK);
    assert_true(cfg.node.allow_anonymous);
    assert_int_equal(cfg.node.port, 5);
    expect_error(load(&cfg, NULL, err, sizeof(err), "--allow-anonymous=maybe", NULL), err,
                 "invalid value 'maybe' for --allow-anonymous (expected "
                 "true/false/yes/no/1/0/on/off)");
}

static void test_log_levels(void **state)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    struct sol_settings cfg;
    char err[256];
    char arg[64];

    (void)state;
    for (int l = LOG_LEVEL_ERROR; l <= LOG_LEVEL_DEBUG; l++) {
        snprintf(arg, sizeof(arg), "--log-level=%s", names[l]);
        assert_int_equal(load(&cfg, NULL, err, sizeof(err), arg, NULL), SETTINGS_OK);
        assert_int_equal(cfg.node.log_level, l);
        assert_string_equal(config_log_level_name((enum log_level)l), names[l]);
    }
    expect_error(load(&cfg, NULL, err, sizeof(err), "--log-level", "verbose", NULL), err,
                 "invalid value 'verbose' for --log-level (expected error|warn|info|debug)");
}

static void test_number_validation(void **state)
{
    struct sol_settings cfg;
    char err[256];
    char *env_bad[] = {"SOL_PORT=abc", NULL};
    char *env_empty[] = {"SOL_MAX_INFLIGHT=", NULL};

    (void)state;
    expect_error(load(&cfg, NULL, err, sizeof(err), "--port", "abc", NULL), err,
                 "invalid value 'abc' for --port (expected an integer 1-65535)");
    expect_error(load(&cfg, NULL, err, sizeof(err), "--port=0", NULL), err,
                 "invalid value '0' for --port (expected an integer 1-65535)");
    expect_error(load(&cfg, NULL, err, sizeof(err), "--port=65536", NULL), err,
                 "invalid value '65536' for --port (expected an integer 1-65535)");
    expect_error(load(&cfg, NULL, err, sizeof(err), "--port=-1", NULL), err,
                 "invalid value '-1' for --port (expected an integer 1-65535)");
    expect_error(load(&cfg, NULL, err, sizeof(err), "--port= 80", NULL), err,
                 "invalid value ' 80' for --port (expected an integer 1-65535)");
    expect_error(load(&cfg, NULL, err, sizeof(err), "--port=80x", NULL), err,
                 "invalid value '80x' for --port (expected an integer 1-65535)");
    expect_error(load(&cfg, NULL, err, sizeof(err), "--max-queued=99999999999999999999999", NULL),
                 err,
                 "invalid value '99999999999999999999999' for --max-queued (expected an integer "
                 "0-4294967295)");
    expect_error(load(&cfg, NULL, err, sizeof(err), "--max-inflight=0", NULL), err,
                 "invalid value '0' for --max-inflight (expected an integer 1-65535)");
    expect_error(load(&cfg, NULL, err, sizeof(err), "--max-packet-size=268435456", NULL), err,
                 "invalid value '268435456' for --max-packet-size (expected an integer "
                 "1-268435455)");
    expect_error(load(&cfg, NULL, err, sizeof(err), "--suspicion-mult=0", NULL), err,
                 "invalid value '0' for --suspicion-mult (expected an integer 1-100)");
    expect_error(load(&cfg, NULL, err, sizeof(err), "--gossip-interval-ms=0", NULL), err,
                 "invalid value '0' for --gossip-interval-ms (expected an integer 1-60000)");
    expect_error(load(&cfg, env_bad, err, sizeof(err), NULL), err,
                 "invalid value 'abc' for SOL_PORT (expected an integer 1-65535)");
    expect_error(load(&cfg, env_empty, err, sizeof(err), NULL), err,
                 "invalid value '' for SOL_MAX_INFLIGHT (expected an integer 1-65535)");
    /* Upper bounds are accepted. */
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "--port=65535", "--max-packet-size",
                          "268435455", "--max-connections=0", NULL),
                     SETTINGS_OK);
    assert_int_equal(cfg.node.port, 65535);
    assert_int_equal(cfg.node.max_packet_size, 268435455);
    assert_int_equal(cfg.node.max_connections, 0);
}

static void test_string_validation(void **state)
{
    struct sol_settings cfg;
    char err[256];
    char longval[300];
    char arg[320];
    char envvar[320];
    char *env[] = {envvar, NULL};

    (void)state;
    memset(longval, 'n', 64);
    longval[64] = '\0';
    snprintf(arg, sizeof(arg), "--node-name=%s", longval);
    expect_error(load(&cfg, NULL, err, sizeof(err), arg, NULL), err,
                 "value for --node-name is too long (at most 63 characters)");
    longval[63] = '\0'; /* exactly fits */
    snprintf(arg, sizeof(arg), "--node-name=%s", longval);
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), arg, NULL), SETTINGS_OK);
    assert_string_equal(cfg.cluster.node_name, longval);

    memset(longval, 'f', 256);
    longval[256] = '\0';
    snprintf(envvar, sizeof(envvar), "SOL_ACL_FILE=%s", longval);
    expect_error(load(&cfg, env, err, sizeof(err), NULL), err,
                 "value for SOL_ACL_FILE is too long (at most 255 characters)");

    expect_error(load(&cfg, NULL, err, sizeof(err), "--bind=", NULL), err,
                 "invalid value '' for --bind (expected a non-empty value)");
    expect_error(load(&cfg, NULL, err, sizeof(err), "--node-name", "", NULL), err,
                 "invalid value '' for --node-name (expected a non-empty value)");
    /* Files that may be empty (= off) accept an empty value. */
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "--acl-file=", "--seeds=", NULL),
                     SETTINGS_OK);
    assert_string_equal(cfg.node.acl_file, "");
}

static void test_seeds_buffer_limit(void **state)
{
    struct sol_settings cfg;
    char err[256];
    char seeds[1100];
    char arg[1200];

    (void)state;
    memset(seeds, 's', 1023);
    seeds[1023] = '\0';
    snprintf(arg, sizeof(arg), "--seeds=%s", seeds);
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), arg, NULL), SETTINGS_OK);
    assert_int_equal(strlen(cfg.cluster.seeds), 1023);
    seeds[1023] = 's';
    seeds[1024] = '\0';
    snprintf(arg, sizeof(arg), "--seeds=%s", seeds);
    expect_error(load(&cfg, NULL, err, sizeof(err), arg, NULL), err,
                 "value for --seeds is too long (at most 1023 characters)");
}

static void test_argv_errors(void **state)
{
    struct sol_settings cfg;
    char err[256];

    (void)state;
    expect_error(load(&cfg, NULL, err, sizeof(err), "--prot", "1", NULL), err,
                 "unknown option --prot");
    expect_error(load(&cfg, NULL, err, sizeof(err), "--prot=1", NULL), err,
                 "unknown option --prot");
    expect_error(load(&cfg, NULL, err, sizeof(err), "--port", NULL), err,
                 "missing value for --port");
    expect_error(load(&cfg, NULL, err, sizeof(err), "--config", NULL), err,
                 "missing value for --config");
    expect_error(load(&cfg, NULL, err, sizeof(err), "-p", NULL), err, "missing value for -p");
    expect_error(load(&cfg, NULL, err, sizeof(err), "-p", "x", NULL), err,
                 "invalid value 'x' for -p (expected an integer 1-65535)");
    expect_error(load(&cfg, NULL, err, sizeof(err), "-c", NULL), err, "missing value for -c");
    expect_error(load(&cfg, NULL, err, sizeof(err), "-c", "", NULL), err,
                 "invalid value '' for -c (expected a file name)");
    expect_error(load(&cfg, NULL, err, sizeof(err), "-d", NULL), err, "unexpected argument '-d'");
    expect_error(load(&cfg, NULL, err, sizeof(err), "extra", NULL), err,
                 "unexpected argument 'extra'");
    expect_error(load(&cfg, NULL, err, sizeof(err), "--", NULL), err, "unexpected argument '--'");
    /* An unknown option is reported even when the config file is broken. */
    expect_error(load(&cfg, NULL, err, sizeof(err), "--config", "/nope", "--bogus", NULL), err,
                 "unknown option --bogus");
}

/* Mosquitto's -p PORT and -c FILE. */
static void test_short_flags(void **state)
{
    struct sol_settings cfg;
    char err[256];

    (void)state;
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "-p", "1884", NULL), SETTINGS_OK);
    assert_int_equal(cfg.node.port, 1884);
    assert_string_equal(cfg.node.origin.port, "-p 1884");
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "-c", "data/config_port_1000.conf", NULL),
                     SETTINGS_OK);
    assert_int_equal(cfg.node.port, 1000);
    assert_string_equal(cfg.node.origin.port,
                        "port 1000 (config file data/config_port_1000.conf line 1)");
    assert_int_equal(
        load(&cfg, NULL, err, sizeof(err), "-c", "data/config_port_1000.conf", "-p", "7", NULL),
        SETTINGS_OK);
    assert_int_equal(cfg.node.port, 7);
}

/* The cluster listener runs only when asked for (seeds, cluster_bind or cluster_port from any
 * source), HTTP only when http_port is set; each listener's origin names the setting as given. */
static void test_listeners_only_when_asked(void **state)
{
    struct sol_settings cfg;
    char err[256];
    char *env_seeds[] = {"SOL_SEEDS=a:1", NULL};
    char *env_http[] = {"SOL_HTTP_PORT=8081", NULL};
    char *env_empty_seeds[] = {"SOL_SEEDS=", NULL};

    (void)state;
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "--port", "1884", NULL), SETTINGS_OK);
    assert_int_equal(cfg.cluster.cluster_port, 0);
    assert_int_equal(cfg.ops.http_port, 0);
    assert_string_equal(cfg.node.origin.port, "--port 1884");
    assert_string_equal(cfg.cluster.origin.cluster_port, "");
    assert_string_equal(cfg.ops.origin.http_port, "");

    assert_int_equal(load(&cfg, env_seeds, err, sizeof(err), NULL), SETTINGS_OK);
    assert_int_equal(cfg.cluster.cluster_port, CLUSTER_CONFIG_PORT);
    assert_string_equal(cfg.node.origin.port, "--port 1883 (default)");
    assert_string_equal(cfg.cluster.origin.cluster_port,
                        "--cluster-port 7946 (default; clustering is on because SOL_SEEDS is set)");
    assert_int_equal(cfg.ops.http_port, 0);

    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "--cluster-bind", "127.0.0.2", NULL),
                     SETTINGS_OK);
    assert_int_equal(cfg.cluster.cluster_port, CLUSTER_CONFIG_PORT);
    assert_string_equal(
        cfg.cluster.origin.cluster_port,
        "--cluster-port 7946 (default; clustering is on because --cluster-bind is set)");

    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "--cluster-port", "7000", NULL),
                     SETTINGS_OK);
    assert_int_equal(cfg.cluster.cluster_port, 7000);
    assert_string_equal(cfg.cluster.origin.cluster_port, "--cluster-port 7000");

    /* An explicit 0 keeps clustering off even with seeds; empty seeds ask for nothing. */
    assert_int_equal(load(&cfg, env_seeds, err, sizeof(err), "--cluster-port", "0", NULL),
                     SETTINGS_OK);
    assert_int_equal(cfg.cluster.cluster_port, 0);
    assert_string_equal(cfg.cluster.origin.cluster_port, "");
    assert_int_equal(load(&cfg, env_empty_seeds, err, sizeof(err), NULL), SETTINGS_OK);
    assert_int_equal(cfg.cluster.cluster_port, 0);

    assert_int_equal(load(&cfg, env_http, err, sizeof(err), NULL), SETTINGS_OK);
    assert_int_equal(cfg.ops.http_port, 8081);
    assert_int_equal(cfg.cluster.cluster_port, 0);
    assert_string_equal(cfg.ops.origin.http_port, "SOL_HTTP_PORT=8081");
    assert_int_equal(load(&cfg, env_http, err, sizeof(err), "--http-port", "0", NULL), SETTINGS_OK);
    assert_int_equal(cfg.ops.http_port, 0);
    assert_string_equal(cfg.ops.origin.http_port, "");
}

static void test_file_errors(void **state)
{
    struct sol_settings cfg;
    char err[256];
    char *env[] = {"SOL_CONFIG=/nope/sol.conf", NULL};
    char *env_empty[] = {"SOL_CONFIG=", NULL};

    (void)state;
    expect_error(load(&cfg, NULL, err, sizeof(err), "--config", "/nope", NULL), err,
                 "cannot read config file '/nope': No such file or directory");
    expect_error(load(&cfg, env, err, sizeof(err), NULL), err,
                 "cannot read config file '/nope/sol.conf': No such file or directory");
    expect_error(load(&cfg, env_empty, err, sizeof(err), NULL), err,
                 "invalid value '' for SOL_CONFIG (expected a file name)");
    expect_error(
        load(&cfg, NULL, err, sizeof(err), "--config", "data/config_unknown_key.conf", NULL), err,
        "config file data/config_unknown_key.conf line 4: unknown key 'prot'");
    expect_error(load(&cfg, NULL, err, sizeof(err), "--config", "data/config_bad_value.conf", NULL),
                 err,
                 "config file data/config_bad_value.conf line 2: invalid value 'abc' for "
                 "max_inflight (expected an integer 1-65535)");
    expect_error(
        load(&cfg, NULL, err, sizeof(err), "--config", "data/config_missing_value.conf", NULL), err,
        "config file data/config_missing_value.conf line 1: missing value for port");
    expect_error(
        load(&cfg, NULL, err, sizeof(err), "--config", "data/config_trailing_comment.conf", NULL),
        err,
        "config file data/config_trailing_comment.conf line 1: invalid value '1883 # trailing "
        "comments are not supported' for port (expected an integer 1-65535)");
    expect_error(
        load(&cfg, NULL, err, sizeof(err), "--config", "data/config_config_key.conf", NULL), err,
        "config file data/config_config_key.conf line 1: unknown key 'config'");
    expect_error(load(&cfg, NULL, err, sizeof(err), "--config", "data", NULL), err,
                 "cannot read config file 'data': Is a directory");
}

static void test_unknown_env_ignored(void **state)
{
    struct sol_settings cfg;
    char err[256];
    char *env[] = {"SOL_BIN=/x/sol", "SOL_PROT=abc", "SOL_=1", "SOL_port=abc", "SOL", "HOME=/root",
                   "SOL_PORTS=1",    "XSOL_PORT=1",  NULL};

    (void)state;
    assert_int_equal(load(&cfg, env, err, sizeof(err), NULL), SETTINGS_OK);
    assert_int_equal(cfg.node.port, 1883);
}

static void test_help_lists_every_flag(void **state)
{
    struct sol_settings cfg;
    char out[8192];
    char needle[80];

    (void)state;
    assert_int_equal(load_capture(&cfg, out, sizeof(out), "--help"), SETTINGS_EXIT_OK);
    for (size_t i = 0; i < sizeof(all_flags) / sizeof(all_flags[0]); i++) {
        snprintf(needle, sizeof(needle), "  %s", all_flags[i]);
        if (strstr(out, needle) == NULL)
            fail_msg("--help does not list %s", all_flags[i]);
    }
    /* Each setting's line carries its default. */
    assert_non_null(strstr(out, "--port PORT"));
    assert_non_null(strstr(out, "(default: 1883)"));
    assert_non_null(strstr(out, "(default: 0.0.0.0)"));
    assert_non_null(strstr(out, "(default: 1048576)"));
    assert_non_null(strstr(out, "(default: info)"));
    assert_non_null(strstr(out, "(default: true)"));
    assert_non_null(strstr(out, "(default: the hostname)"));
    assert_non_null(strstr(out, "(default: same as --bind)"));
    assert_non_null(strstr(out, "SOL_MAX_INFLIGHT"));
    /* -h is the same. */
    assert_int_equal(load_capture(&cfg, out, sizeof(out), "-h"), SETTINGS_EXIT_OK);
    assert_non_null(strstr(out, "--leave-timeout-ms"));
}

/* --overload-policy takes only its two words; the low watermark must be under the high one. */
static void test_overload_settings(void **state)
{
    struct sol_settings cfg;
    char err[256];

    (void)state;
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "--overload-policy", "drop", NULL),
                     SETTINGS_OK);
    assert_int_equal(cfg.node.overload_policy, OVERLOAD_DROP);
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "--overload-policy", "block", NULL),
                     SETTINGS_ERROR);
    assert_non_null(strstr(err, "--overload-policy"));
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "--backlog-low", "2097152", NULL),
                     SETTINGS_ERROR);
    assert_non_null(strstr(err, "backlog_low"));
}

/* Node link TLS takes its three files together: one alone is refused naming it and the missing one;
 * a file that cannot be opened is refused naming its setting. */
static void test_cluster_tls_files(void **state)
{
    struct sol_settings cfg;
    char err[512];

    (void)state;
    assert_int_equal(
        load(&cfg, NULL, err, sizeof(err), "--cluster-certfile", "data/config_full.conf", NULL),
        SETTINGS_ERROR);
    assert_non_null(strstr(err, "--cluster-certfile"));
    assert_non_null(strstr(err, "--cluster-keyfile is not set"));
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "--cluster-certfile",
                          "data/config_full.conf", "--cluster-keyfile", "data/config_full.conf",
                          "--cluster-cafile", "/nonexistent/ca.crt", NULL),
                     SETTINGS_ERROR);
    assert_non_null(strstr(err, "invalid --cluster-cafile: cannot open /nonexistent/ca.crt"));
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "--cluster-certfile",
                          "data/config_full.conf", "--cluster-keyfile", "data/config_full.conf",
                          "--cluster-cafile", "data/config_full.conf", NULL),
                     SETTINGS_OK);
    assert_string_equal(cfg.cluster.cluster_cafile, "data/config_full.conf");
}

static void test_help_line_per_setting(void **state)
{
    struct sol_settings cfg;
    char out[8192];
    size_t lines = 0;

    (void)state;
    assert_int_equal(load_capture(&cfg, out, sizeof(out), "--help"), SETTINGS_EXIT_OK);
    for (char *p = strstr(out, "\n  --"); p != NULL; p = strstr(p + 1, "\n  --"))
        lines++;
    /* 50 settings + --config + --help + --version, one line each. */
    assert_int_equal(lines, 53);
}

static void test_version(void **state)
{
    struct sol_settings cfg;
    char out[256];

    (void)state;
    assert_int_equal(load_capture(&cfg, out, sizeof(out), "--version"), SETTINGS_EXIT_OK);
    assert_string_equal(out, "sol " SOL_VERSION "\n");
}

/* --listener URLs: ws/wss with and without a path, a path only on ws/wss, [IPv6]. */
static void test_listener_urls(void **state)
{
    struct config_listener l;
    char err[256];

    (void)state;
    assert_int_equal(config_listener_parse("ws://0.0.0.0:8080", 17, &l, err, sizeof(err)), 0);
    assert_true(l.ws && !l.tls && l.port == 8080);
    assert_string_equal(l.path, "/mqtt");
    assert_int_equal(config_listener_parse("wss://[::1]:8443/a/b", 20, &l, err, sizeof(err)), 0);
    assert_true(l.ws && l.tls && l.port == 8443);
    assert_string_equal(l.addr, "::1");
    assert_string_equal(l.path, "/a/b");
    assert_int_equal(config_listener_parse("mqtts://1.2.3.4:8883", 20, &l, err, sizeof(err)), 0);
    assert_true(!l.ws && l.tls);
    assert_int_equal(config_listener_parse("mqtt://1.2.3.4:1883/x", 21, &l, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ws://ADDR:PORT/PATH"));
    assert_int_equal(config_listener_parse("ws://1.2.3.4:1/x?y", 18, &l, err, sizeof(err)), -1);
    assert_int_equal(config_listener_parse("ws://1.2.3.4/x", 14, &l, err, sizeof(err)), -1);
}

static void test_tiny_error_buffer(void **state)
{
    struct sol_settings cfg;
    char err[8];

    (void)state;
    expect_error(load(&cfg, NULL, err, sizeof(err), "--port=abc", NULL), err, "invalid");
    assert_int_equal(load(&cfg, NULL, NULL, 0, "--port=abc", NULL), SETTINGS_ERROR);
}

/* conf/sol.conf documents every key, commented out, with its default. */
static void test_example_conf_documents_every_key(void **state)
{
    struct sol_settings cfg, def;
    char err[256];
    char key[64];
    char *text;
    long size;
    FILE *f = fopen("../../conf/sol.conf", "r");

    (void)state;
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    assert_true(size > 0);
    rewind(f);
    text = malloc((size_t)size + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
    text[size] = '\0';
    fclose(f);
    for (size_t i = 0; i < sizeof(all_flags) / sizeof(all_flags[0]); i++) {
        const char *flag = all_flags[i];
        size_t n = 0;

        if (strcmp(flag, "--config") == 0 || strcmp(flag, "--help") == 0 ||
            strcmp(flag, "--version") == 0)
            continue;
        key[n++] = '\n';
        key[n++] = '#';
        for (const char *c = flag + 2; *c != '\0'; c++)
            key[n++] = *c == '-' ? '_' : *c;
        key[n] = '\0';
        if (strstr(text, key) == NULL)
            fail_msg("conf/sol.conf does not document %s", key + 2);
    }
    free(text);

    /* As shipped (all commented out) it yields the defaults (origin says where they came from). */
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "--config", "../../conf/sol.conf", NULL),
                     SETTINGS_OK);
    settings_defaults(&def);
    memset(&cfg.node.origin, 0, sizeof(cfg.node.origin));
    memset(&cfg.cluster.origin, 0, sizeof(cfg.cluster.origin));
    memset(&cfg.ops.origin, 0, sizeof(cfg.ops.origin));
    assert_memory_equal(&cfg, &def, sizeof(cfg));
}

/* Uncommenting every "#key value" line of conf/sol.conf is valid and changes nothing: the values
 * shown are the real defaults. */
static void test_example_conf_values_are_defaults(void **state)
{
    struct sol_settings cfg, def;
    char err[256];
    char line[512];
    char path[] = "/tmp/sol_conf_XXXXXX";
    int fd = mkstemp(path);
    FILE *in = fopen("../../conf/sol.conf", "r");
    FILE *out;
    int uncommented = 0;

    (void)state;
    assert_true(fd >= 0);
    assert_non_null(in);
    out = fdopen(fd, "w");
    assert_non_null(out);
    while (fgets(line, sizeof(line), in) != NULL) {
        if (line[0] == '#' && line[1] >= 'a' && line[1] <= 'z' && strchr(line, ' ') != NULL) {
            fputs(line + 1, out);
            uncommented++;
        }
    }
    fclose(in);
    fclose(out);
    assert_true(uncommented == 33);
    assert_int_equal(load(&cfg, NULL, err, sizeof(err), "--config", path, NULL), SETTINGS_OK);
    unlink(path);
    settings_defaults(&def);
    memset(&cfg.node.origin, 0, sizeof(cfg.node.origin));
    memset(&cfg.cluster.origin, 0, sizeof(cfg.cluster.origin));
    memset(&cfg.ops.origin, 0, sizeof(cfg.ops.origin));
    assert_memory_equal(&cfg, &def, sizeof(cfg));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_flag_space_form),
        cmocka_unit_test(test_every_flag_equals_form),
        cmocka_unit_test(test_underscore_flags_accepted),
        cmocka_unit_test(test_every_env),
        cmocka_unit_test(test_every_file_key),
        cmocka_unit_test(test_config_from_env),
        cmocka_unit_test(test_config_flag_beats_env),
        cmocka_unit_test(test_crlf_file),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_cluster_bind_follows_bind),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_log_levels),
        cmocka_unit_test(test_number_validation),
        cmocka_unit_test(test_string_validation),
        cmocka_unit_test(test_seeds_buffer_limit),
        cmocka_unit_test(test_argv_errors),
        cmocka_unit_test(test_short_flags),
        cmocka_unit_test(test_listeners_only_when_asked),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_unknown_env_ignored),
        cmocka_unit_test(test_help_lists_every_flag),
        cmocka_unit_test(test_help_line_per_setting),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_listener_urls),
        cmocka_unit_test(test_tiny_error_buffer),
        cmocka_unit_test(test_overload_settings),
        cmocka_unit_test(test_cluster_tls_files),
        cmocka_unit_test(test_example_conf_documents_every_key),
        cmocka_unit_test(test_example_conf_values_are_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
