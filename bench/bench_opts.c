/*
 * bench_opts.c - solbench command line: every option, its default and its bounds.
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: solbench [options]\n"
    "MQTT 3.1.1 and 5 load generator: publishers, subscribers and idle connections on one epoll\n"
    "loop.\n"
    "\n"
    "Brokers\n"
    "  --host ADDR            broker address for publishers and idle connections [127.0.0.1]\n"
    "  --port PORT            its port [1883]\n"
    "  --sub-host ADDR        broker address for subscribers (e.g. another cluster node) [--host]\n"
    "  --sub-port PORT        its port [--port]\n"
    "Load\n"
    "  --pubs N               publishers [1]\n"
    "  --subs M               subscribers; each receives every publisher's messages [1]\n"
    "  --qos Q                publish QoS 0, 1 or 2 [0]\n"
    "  --sub-qos Q            subscription QoS [--qos]\n"
    "  --size BYTES           payload size, at least 32 (the header) [64]\n"
    "  --topic per-pub|shared one topic per publisher, or one for all [per-pub]\n"
    "  --sub exact|wildcard   subscribe to the exact topics, or with one wildcard filter [exact]\n"
    "  --window W             QoS 1/2: max unacknowledged messages per publisher [100]; for QoS 2\n"
    "                         keep it within the broker's inbound limit (Mosquitto drops\n"
    "                         QoS 2 PUBLISHes beyond max_inflight_messages)\n"
    "  --duration SEC         publish for this long [10]\n"
    "  --count N              or publish N messages per publisher\n"
    "  --rate R               fixed total rate in msgs/s (latency mode); 0 = flat out [0]\n"
    "  --open-loop            publishers never wait for subscribers, as devices do: they send as\n"
    "                         fast as the broker's socket takes them (or at --rate); QoS 1/2 is\n"
    "                         bounded only by --window. What the broker cannot deliver counts\n"
    "                         as lost. Same as --max-lag 0\n"
    "  --max-lag N            closed loop: at most N deliveries on their way (sent, not yet\n"
    "                         received) over all publishers and subscribers, shared out evenly\n"
    "                         per publisher, so broker queues stay bounded; 0 = open loop\n"
    "                         [10000]\n"
    "Protocol\n"
    "  --mqtt5                MQTT 5 for every client (CONNECT level 5, v5 packets and acks);\n"
    "                         publishers keep within the broker's Receive Maximum [3.1.1]\n"
    "  --user-props N         MQTT 5: N User Properties of 16 bytes each on every PUBLISH, each\n"
    "                         value the message's sequence number; subscribers check them on\n"
    "                         every message, a mismatch fails the run (prop_bad) [0]\n"
    "Connections\n"
    "  --idle K               idle connections (CONNECT, then nothing but keepalive) [0]\n"
    "  --src-addrs N          bind sources to 127.0.0.1..N to pass the ephemeral port limit [1]\n"
    "  --max-pending N        connects in flight at once [256]\n"
    "  --hold SEC             with no publishers: hold the connections this long [5]\n"
    "  --keepalive SEC        CONNECT keepalive; pings sent at half of it [60]\n"
    "Phases\n"
    "  --connect-timeout SEC  all connections up and subscribed within this [60]\n"
    "  --sync-timeout SEC     route probes must reach every subscriber within this [10]\n"
    "  --drain-timeout SEC    after publishing, wait at most this for outstanding messages;\n"
    "                         0 = no limit [10; open loop: 0]\n"
    "  --drain-idle SEC       ... or until nothing arrived for this long [2]; the drain also\n"
    "                         ends once every expected message arrived\n"
    "Output\n"
    "  --run-id HEX           run id (random by default); other runs' messages are ignored\n"
    "  --topic-prefix P       [solbench]\n"
    "  --check                exit 3 if any message was lost or duplicated\n"
    "  --quiet                only the RESULT line\n"
    "  --self-test            check the accounting code against known inputs and exit\n"
    "  --help\n"
    "\n"
    "Prints a summary and one line 'RESULT key=value ...'. Exit 0 ok, 1 run error, 2 usage, 3 "
    "check.\n";

enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_SUB_HOST,
    OPT_SUB_PORT,
    OPT_PUBS,
    OPT_SUBS,
    OPT_QOS,
    OPT_SUB_QOS,
    OPT_SIZE,
    OPT_TOPIC,
    OPT_SUB,
    OPT_WINDOW,
    OPT_DURATION,
    OPT_COUNT,
    OPT_RATE,
    OPT_MAX_LAG,
    OPT_OPEN_LOOP,
    OPT_IDLE,
    OPT_SRC_ADDRS,
    OPT_MAX_PENDING,
    OPT_HOLD,
    OPT_KEEPALIVE,
    OPT_CONNECT_TIMEOUT,
    OPT_SYNC_TIMEOUT,
    OPT_DRAIN_TIMEOUT,
    OPT_DRAIN_IDLE,
    OPT_RUN_ID,
    OPT_PREFIX,
    OPT_CHECK,
    OPT_QUIET,
    OPT_SELF_TEST,
    OPT_MQTT5,
    OPT_USER_PROPS,
    OPT_CLEAN,
    OPT_CLIENT_PREFIX,
    OPT_TLS,
    OPT_CAFILE,
    OPT_TLS_NAME,
    OPT_HELP,
};

static const struct option long_opts[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"sub-host", required_argument, NULL, OPT_SUB_HOST},
    {"sub-port", required_argument, NULL, OPT_SUB_PORT},
    {"pubs", required_argument, NULL, OPT_PUBS},
    {"subs", required_argument, NULL, OPT_SUBS},
    {"qos", required_argument, NULL, OPT_QOS},
    {"sub-qos", required_argument, NULL, OPT_SUB_QOS},
    {"size", required_argument, NULL, OPT_SIZE},
    {"topic", required_argument, NULL, OPT_TOPIC},
    {"sub", required_argument, NULL, OPT_SUB},
    {"window", required_argument, NULL, OPT_WINDOW},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"count", required_argument, NULL, OPT_COUNT},
    {"rate", required_argument, NULL, OPT_RATE},
    {"max-lag", required_argument, NULL, OPT_MAX_LAG},
    {"open-loop", no_argument, NULL, OPT_OPEN_LOOP},
    {"idle", required_argument, NULL, OPT_IDLE},
    {"src-addrs", required_argument, NULL, OPT_SRC_ADDRS},
    {"max-pending", required_argument, NULL, OPT_MAX_PENDING},
    {"hold", required_argument, NULL, OPT_HOLD},
    {"keepalive", required_argument, NULL, OPT_KEEPALIVE},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"sync-timeout", required_argument, NULL, OPT_SYNC_TIMEOUT},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT},
    {"drain-idle", required_argument, NULL, OPT_DRAIN_IDLE},
    {"run-id", required_argument, NULL, OPT_RUN_ID},
    {"topic-prefix", required_argument, NULL, OPT_PREFIX},
    {"check", no_argument, NULL, OPT_CHECK},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"self-test", no_argument, NULL, OPT_SELF_TEST},
    {"mqtt5", no_argument, NULL, OPT_MQTT5},
    {"user-props", required_argument, NULL, OPT_USER_PROPS},
    {"clean", required_argument, NULL, OPT_CLEAN},
    {"client-prefix", required_argument, NULL, OPT_CLIENT_PREFIX},
    {"tls", no_argument, NULL, OPT_TLS},
    {"cafile", required_argument, NULL, OPT_CAFILE},
    {"tls-name", required_argument, NULL, OPT_TLS_NAME},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Unsigned integer in [lo, hi], whole string. */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Non-negative finite number of seconds (or msgs/s) up to hi. */
static int parse_double(const char *s, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0) || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int copy_str(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= cap)
        return -1;
    memcpy(dst, s, n + 1);
    return 0;
}

static void opts_defaults(struct bench_opts *o)
{
    memset(o, 0, sizeof(*o));
    strcpy(o->host, "127.0.0.1");
    o->port = 1883;
    o->npub = 1;
    o->nsub = 1;
    o->sub_qos = 0xff; /* "same as --qos" until parsed */
    o->size = 64;
    o->window = 100;
    o->duration = 10;
    o->max_lag = 10000;
    o->src_addrs = 1;
    o->max_pending = 256;
    o->hold = 5;
    o->keepalive = 60;
    o->connect_timeout = 60;
    o->sync_timeout = 10;
    o->drain_timeout = 10;
    o->drain_idle = 2;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    o->run_id = (uint32_t)(ts.tv_nsec ^ (ts.tv_sec << 20) ^ ((long)getpid() << 8));
    strcpy(o->prefix, "solbench");
}

/* Apply one option; returns 0 or -1 (bad value). */
static int opts_apply(struct bench_opts *o, int opt, const char *arg)
{
    uint64_t u;
    switch (opt) {
    case OPT_HOST:
        return copy_str(o->host, sizeof(o->host), arg);
    case OPT_SUB_HOST:
        return copy_str(o->sub_host, sizeof(o->sub_host), arg);
    case OPT_PREFIX:
        if (strpbrk(arg, "+#"))
            return -1;
        return copy_str(o->prefix, sizeof(o->prefix), arg);
    case OPT_PORT:
    case OPT_SUB_PORT:
        if (parse_u64(arg, 1, 65535, &u) < 0)
            return -1;
        *(opt == OPT_PORT ? &o->port : &o->sub_port) = (uint16_t)u;
        return 0;
    case OPT_PUBS:
    case OPT_SUBS:
    case OPT_IDLE:
        if (parse_u64(arg, 0, 1000000, &u) < 0)
            return -1;
        *(opt == OPT_PUBS ? &o->npub : opt == OPT_SUBS ? &o->nsub : &o->nidle) = (uint32_t)u;
        return 0;
    case OPT_QOS:
    case OPT_SUB_QOS:
        if (parse_u64(arg, 0, 2, &u) < 0)
            return -1;
        *(opt == OPT_QOS ? &o->qos : &o->sub_qos) = (uint8_t)u;
        return 0;
    case OPT_SIZE:
        if (parse_u64(arg, BENCH_HDR_SIZE, 256 * 1024, &u) < 0)
            return -1;
        o->size = (size_t)u;
        return 0;
    case OPT_TOPIC:
        if (strcmp(arg, "per-pub") && strcmp(arg, "shared"))
            return -1;
        o->shared_topic = !strcmp(arg, "shared");
        return 0;
    case OPT_SUB:
        if (strcmp(arg, "exact") && strcmp(arg, "wildcard"))
            return -1;
        o->wildcard = !strcmp(arg, "wildcard");
        return 0;
    case OPT_WINDOW:
        if (parse_u64(arg, 1, 65000, &u) < 0)
            return -1;
        o->window = (uint32_t)u;
        return 0;
    case OPT_COUNT:
        return parse_u64(arg, 1, 1ull << 34, &o->count);
    case OPT_MAX_LAG:
        o->max_lag_set = true;
        return parse_u64(arg, 0, 1ull << 34, &o->max_lag);
    case OPT_OPEN_LOOP:
        o->open_loop = true;
        return 0;
    case OPT_SRC_ADDRS:
        if (parse_u64(arg, 1, 254, &u) < 0)
            return -1;
        o->src_addrs = (uint32_t)u;
        return 0;
    case OPT_MAX_PENDING:
        if (parse_u64(arg, 1, 100000, &u) < 0)
            return -1;
        o->max_pending = (uint32_t)u;
        return 0;
    case OPT_KEEPALIVE:
        if (parse_u64(arg, 0, 65535, &u) < 0)
            return -1;
        o->keepalive = (uint16_t)u;
        return 0;
    case OPT_RUN_ID: {
        char *end;
        errno = 0;
        unsigned long v = strtoul(arg, &end, 16);
        if (errno || !*arg || *end || v > UINT32_MAX)
            return -1;
        o->run_id = (uint32_t)v;
        return 0;
    }
    case OPT_DURATION:
        return parse_double(arg, 86400, &o->duration);
    case OPT_RATE:
        return parse_double(arg, 1e9, &o->rate);
    case OPT_HOLD:
        return parse_double(arg, 86400, &o->hold);
    case OPT_CONNECT_TIMEOUT:
        return parse_double(arg, 86400, &o->connect_timeout);
    case OPT_SYNC_TIMEOUT:
        return parse_double(arg, 86400, &o->sync_timeout);
    case OPT_DRAIN_TIMEOUT:
        o->drain_tmo_set = true;
        return parse_double(arg, 86400, &o->drain_timeout);
    case OPT_DRAIN_IDLE:
        return parse_double(arg, 86400, &o->drain_idle);
    case OPT_CHECK:
        o->check = true;
        return 0;
    case OPT_QUIET:
        o->quiet = true;
        return 0;
    case OPT_SELF_TEST:
        o->self_test = true;
        return 0;
    case OPT_MQTT5:
        o->mqtt5 = true;
        return 0;
    case OPT_USER_PROPS:
        if (parse_u64(arg, 0, BENCH_USER_PROPS_MAX, &u) < 0)
            return -1;
        o->user_props = (uint32_t)u;
        return 0;
    case OPT_CLEAN:
        if (parse_u64(arg, 0, 1, &u) < 0)
            return -1;
        o->sub_persistent = u == 0;
        return 0;
    case OPT_CLIENT_PREFIX:
        if (strpbrk(arg, "+#/"))
            return -1;
        return copy_str(o->client_prefix, sizeof(o->client_prefix), arg);
    case OPT_TLS:
        o->tls = true;
        return 0;
    case OPT_CAFILE:
        return copy_str(o->cafile, sizeof(o->cafile), arg);
    case OPT_TLS_NAME:
        return copy_str(o->tls_name, sizeof(o->tls_name), arg);
    }
    return -1;
}

int bench_opts_parse(struct bench_opts *o, int argc, char **argv)
{
    opts_defaults(o);
    optind = 1;
    for (;;) {
        int idx = 0;
        int opt = getopt_long(argc, argv, "", long_opts, &idx);
        if (opt == -1)
            break;
        if (opt == OPT_HELP) {
            fputs(usage, stdout);
            return 1;
        }
        if (opt == '?' || opt == ':') {
            fputs(usage, stderr);
            return -1;
        }
        if (opts_apply(o, opt, optarg) < 0) {
            fprintf(stderr, "solbench: bad value for --%s: '%s'\n", long_opts[idx].name, optarg);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "solbench: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (o->sub_qos == 0xff)
        o->sub_qos = o->qos;
    if (!o->sub_host[0])
        strcpy(o->sub_host, o->host);
    if (!o->sub_port)
        o->sub_port = o->port;
    if (o->self_test)
        return 0;
    if ((o->cafile[0] || o->tls_name[0]) && !o->tls) {
        fprintf(stderr, "solbench: --cafile and --tls-name need --tls\n");
        return -1;
    }
    if (o->user_props > 0 && !o->mqtt5) {
        fprintf(stderr, "solbench: --user-props needs --mqtt5 (3.1.1 has no properties)\n");
        return -1;
    }
    if (o->open_loop && o->max_lag_set && o->max_lag > 0) {
        fprintf(stderr,
                "solbench: --open-loop and --max-lag %llu contradict each other (open loop "
                "is --max-lag 0)\n",
                (unsigned long long)o->max_lag);
        return -1;
    }
    if (o->open_loop || o->max_lag == 0) {
        o->open_loop = true;
        o->max_lag = 0;
        if (!o->drain_tmo_set) /* wait as long as messages keep arriving (--drain-idle) */
            o->drain_timeout = 0;
    }
    if (o->npub + o->nsub + o->nidle == 0) {
        fprintf(stderr, "solbench: nothing to do: --pubs, --subs and --idle are all 0\n");
        return -1;
    }
    if (o->count == 0 && o->duration <= 0 && o->npub > 0) {
        fprintf(stderr, "solbench: --duration must be > 0 (or give --count)\n");
        return -1;
    }
    return 0;
}
