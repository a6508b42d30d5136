/*
 * solbench.c - MQTT load generator: the run phases and the event loop (the client flows they drive
 * are bench_mqtt.c).
 *
 * Phases: SETUP (connect everyone, paced; subscribers SUBSCRIBE), SYNC (each publisher sends route
 * probes until every subscriber got one: a cluster learns routes asynchronously, and a message
 * published before that would be "lost" for the wrong reason), RUN (publish for --duration or
 * --count, flat out or at --rate), DRAIN (stop publishing, wait for what is still on its way), then
 * the report. Runs with no publishers SETUP and then HOLD their connections for --hold seconds.
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define NS 1000000000ull
#define SYNC_INTERVAL_NS (100ull * 1000000ull)
/* Stop generating for a publisher whose socket is this far behind. */
#define OUT_HIGH_WATER (1u << 20)
/* Flat out: about this much new data per publisher per loop turn. */
#define BURST_BYTES (64u * 1024)

/* Record the first fatal error; the loop ends and the report says why. */
void bench_fail(struct bench *b, const char *fmt, ...)
{
    if (!b->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->err, sizeof(b->err), fmt, ap);
        va_end(ap);
    }
    b->exit_code = 1;
    b->phase = PH_DONE;
}

/* A connection failed (refused, reset, protocol error): idle ones are counted, others end the
 * run. A close during teardown is expected and ignored. */
static void conn_failed(struct bench *b, struct conn *c, int err)
{
    if (c->state == CS_FAILED || c->state == CS_CLOSED)
        return;
    bool was_pending = c->state != CS_READY && c->state != CS_NEW;
    bool was_ready = c->state == CS_READY;
    io_close(&b->io, c);
    c->state = CS_FAILED;
    if (was_pending && b->pending > 0)
        b->pending--;
    if (c->role == ROLE_IDLE) {
        b->failed_idle++;
        if (was_ready)
            b->ready_idle--;
        return;
    }
    const char *why = b->io.tls_err[0] ? b->io.tls_err
                      : err == -EPROTO ? "protocol error or refused"
                                       : strerror(err < 0 ? -err : err);
    bench_fail(b, "%s %u failed: %s", conn_role_name(c), c->index, why);
}

/* Start connects up to --max-pending in flight, each from 127.0.0.(1 + i % src_addrs). */
static void start_connects(struct bench *b)
{
    while (b->next_start < b->nconns && b->pending < b->o.max_pending && b->phase != PH_DONE) {
        struct conn *c = b->order[b->next_start];
        uint32_t src = b->o.src_addrs > 1 ? htonl(0x7f000001u + c->addr_index % b->o.src_addrs) : 0;
        const struct sockaddr_in *dst = c->role == ROLE_SUB ? &b->sub_addr : &b->pub_addr;
        b->next_start++;
        b->pending++;
        int rc = io_connect(&b->io, c, src, dst);
        if (rc < 0) {
            c->state = CS_TCP; /* counted as pending until conn_failed */
            conn_failed(b, c, rc);
        }
    }
}

/* The TCP handshake finished (or failed): with --tls start the TLS handshake, else (or once it
 * is done) send CONNECT. Later events of a handshake in progress come here too. */
static void on_tcp_done(struct bench *b, struct conn *c)
{
    int rc = c->state == CS_TLS ? 0 : io_connect_result(&b->io, c);
    if (rc == 0 && b->io.tls) {
        rc = io_tls_handshake(&b->io, c);
        if (rc == 0)
            return;
        rc = rc < 0 ? rc : 0;
    }
    if (rc == 0)
        rc = bench_mqtt_connect(b, c) < 0 ? -ENOMEM : 0;
    if (rc < 0)
        conn_failed(b, c, rc);
}

/* Slowest subscriber's progress on publisher i: the highest sequence number all of them reached. */
static uint64_t slowest_sub(const struct bench *b, uint32_t i)
{
    uint64_t low = UINT64_MAX;
    for (uint32_t j = 0; j < b->o.nsub; j++)
        if (b->subs[j].pairs[i].next_seq < low)
            low = b->subs[j].pairs[i].next_seq;
    return low;
}

/* RUN: how many messages publisher p may generate this turn, by rate, window, lag and count.
 * Open loop, only the publisher's own state counts (its rate, its window of unacknowledged QoS 1/2
 * PUBLISHes, its count, its socket): never what the subscribers received. */
static uint64_t publish_budget(const struct bench *b, const struct publisher *p, uint64_t burst)
{
    const struct bench_opts *o = &b->o;
    uint64_t n = burst;
    if (o->rate > 0) {
        double per_pub = o->rate / o->npub;
        uint64_t due = (uint64_t)((double)(b->now - b->t_run_start) / 1e9 * per_pub) + 1;
        n = due > p->seq ? due - p->seq : 0;
    }
    if (o->qos > 0)
        n = n < p->window - p->unacked ? n : p->window - p->unacked;
    if (!o->open_loop && o->max_lag > 0 && o->nsub > 0) {
        /* Refill only once half the lag has drained: big writes, not a trickle of small ones. */
        uint64_t lag = b->lag_per_pub;
        uint64_t limit = slowest_sub(b, p->c.index) + lag;
        uint64_t room = limit > p->seq ? limit - p->seq : 0;
        if (room < (lag + 1) / 2 && o->rate <= 0)
            room = 0;
        n = n < room ? n : room;
    }
    if (o->count > 0)
        n = o->count > p->seq ? (n < o->count - p->seq ? n : o->count - p->seq) : 0;
    if (io_pending(&p->c) > OUT_HIGH_WATER)
        n = 0;
    return n;
}

static bool all_published(const struct bench *b)
{
    for (uint32_t i = 0; i < b->o.npub; i++)
        if (b->pubs[i].seq < b->o.count)
            return false;
    return true;
}

/* DRAIN is over when every subscriber has every message and every publish was acknowledged. */
static bool all_delivered(const struct bench *b)
{
    uint64_t expected = 0;
    for (uint32_t i = 0; i < b->o.npub; i++) {
        if (b->pubs[i].unacked > 0)
            return false;
        expected += b->pubs[i].seq * b->o.nsub;
    }
    return b->unique >= expected;
}

/* DRAIN ends when everything expected arrived (and was acknowledged), when nothing arrived or was
 * acknowledged for --drain-idle, or after --drain-timeout (0 = no limit, the open-loop default: a
 * broker that buffered gets all the time it needs, and its rate shows it). */
static bool drain_done(const struct bench *b)
{
    const struct bench_opts *o = &b->o;
    uint64_t now = b->now, idle_ns = (uint64_t)(o->drain_idle * 1e9);
    if (all_delivered(b))
        return true;
    if (o->drain_timeout > 0 && now - b->t_drain_start > (uint64_t)(o->drain_timeout * 1e9))
        return true;
    /* A delivery stamps t_last_event with the clock read when it is decoded, after b->now was
     * taken for this loop turn: "later than now" is "just now", not 2^64 ns ago. */
    uint64_t quiet = now > b->t_last_event ? now - b->t_last_event : 0;
    return quiet > idle_ns && now - b->t_drain_start > idle_ns;
}

static void enter_run(struct bench *b)
{
    b->phase = PH_RUN;
    b->t_run_start = b->t_last_event = b->now;
    getrusage(RUSAGE_SELF, &b->ru_start);
    b->reads_start = b->io.reads;
    b->writes_start = b->io.writes;
}

static void enter_drain(struct bench *b)
{
    b->phase = PH_DRAIN;
    b->t_run_end = b->t_drain_start = b->now;
}

/* Advance the phase machine and generate this turn's messages. */
static void bench_step(struct bench *b)
{
    const struct bench_opts *o = &b->o;
    uint64_t now = b->now;
    switch (b->phase) {
    case PH_SETUP:
        if (b->next_start == b->nconns && b->pending == 0) {
            b->t_setup_done = now;
            if (!o->quiet)
                printf("setup: %u publishers, %u subscribers, %llu/%u idle connected in %.2f s\n",
                       o->npub, o->nsub, (unsigned long long)b->ready_idle, o->nidle,
                       (double)(now - b->t_start) / 1e9);
            if (o->nidle > 0) {
                printf("IDLE_READY connected=%llu failed=%llu\n", (unsigned long long)b->ready_idle,
                       (unsigned long long)b->failed_idle);
            }
            fflush(stdout);
            if (o->npub == 0) {
                b->phase = PH_HOLD;
                getrusage(RUSAGE_SELF, &b->ru_start);
            } else if (o->nsub == 0) {
                enter_run(b);
            } else {
                b->phase = PH_SYNC;
                b->t_last_sync = 0;
            }
        } else if (now - b->t_start > (uint64_t)(o->connect_timeout * 1e9)) {
            if (b->ready_pubs < o->npub || b->ready_subs < o->nsub) {
                bench_fail(b, "setup timed out: %llu/%u subscribers, %llu/%u publishers ready",
                           (unsigned long long)b->ready_subs, o->nsub,
                           (unsigned long long)b->ready_pubs, o->npub);
                return;
            }
            for (size_t i = 0; i < b->nconns; i++) /* idle stragglers count as failed */
                if (b->order[i]->state != CS_READY && b->order[i]->state != CS_FAILED)
                    conn_failed(b, b->order[i], -ETIMEDOUT);
            b->next_start = b->nconns;
        }
        return;
    case PH_SYNC:
        if (b->probes_seen == (uint64_t)o->npub * o->nsub) {
            enter_run(b);
            break;
        }
        if (now - b->t_setup_done > (uint64_t)(o->sync_timeout * 1e9)) {
            bench_fail(b,
                       "route probes reached only %llu of %llu (publisher, subscriber) pairs "
                       "within --sync-timeout",
                       (unsigned long long)b->probes_seen, (unsigned long long)o->npub * o->nsub);
            return;
        }
        if (now - b->t_last_sync >= SYNC_INTERVAL_NS) {
            b->t_last_sync = now;
            for (uint32_t i = 0; i < o->npub; i++)
                if (bench_mqtt_publish(b, &b->pubs[i], BENCH_KIND_PROBE) < 0)
                    conn_failed(b, &b->pubs[i].c, -ENOMEM);
        }
        return;
    case PH_RUN:
        break;
    case PH_DRAIN:
        if (drain_done(b))
            b->phase = PH_DONE;
        return;
    case PH_HOLD:
        if (now - b->t_setup_done > (uint64_t)(o->hold * 1e9))
            b->phase = PH_DONE;
        return;
    case PH_DONE:
        return;
    }
    /* PH_RUN */
    if (o->count ? all_published(b) : now - b->t_run_start >= (uint64_t)(o->duration * 1e9)) {
        enter_drain(b);
        return;
    }
    size_t pkt = bench_mqtt_publish_size(b, b->pubs[0].topic_len, o->qos);
    uint64_t burst = BURST_BYTES / pkt + 1;
    b->generated = 0;
    for (uint32_t i = 0; i < o->npub && b->phase == PH_RUN; i++) {
        struct publisher *p = &b->pubs[i];
        if (p->c.state != CS_READY)
            continue;
        uint64_t n = publish_budget(b, p, burst);
        b->generated += n;
        for (uint64_t k = 0; k < n; k++) {
            if (bench_mqtt_publish(b, p, BENCH_KIND_DATA) < 0) {
                conn_failed(b, &p->c, -ENOMEM);
                break;
            }
        }
    }
}

/* PINGREQ on every ready connection at half the keepalive, so long holds stay connected. */
static void send_pings(struct bench *b)
{
    if (b->o.keepalive == 0 || b->now - b->t_last_ping < (uint64_t)b->o.keepalive * NS / 2)
        return;
    b->t_last_ping = b->now;
    for (size_t i = 0; i < b->nconns; i++) {
        struct conn *c = b->order[i];
        uint8_t *p;
        if (c->state == CS_READY && (p = io_reserve(&b->io, c, CODEC_PING_SIZE)))
            io_commit(&b->io, c, codec_encode_pingreq(p));
    }
}

/* How long epoll may sleep (ns): not at all while publishers are generating flat out; at a fixed
 * rate, until the next message is due, so messages leave one by one rather than in ms bursts;
 * otherwise until an event (an ack or a delivery reopens a window) or a 1 ms / 10 ms tick. */
static uint64_t loop_timeout_ns(const struct bench *b)
{
    if (b->phase == PH_RUN && b->o.rate > 0) {
        double per_pub = b->o.rate / b->o.npub;
        uint64_t next = UINT64_MAX;
        for (uint32_t i = 0; i < b->o.npub; i++) {
            uint64_t due = b->t_run_start + (uint64_t)((double)b->pubs[i].seq * 1e9 / per_pub);
            next = due < next ? due : next;
        }
        uint64_t now = bench_now_ns();
        return next > now ? (next - now < 1000000 ? next - now : 1000000) : 0;
    }
    if (b->phase == PH_RUN && b->generated > 0)
        return 0;
    if (b->phase == PH_RUN || b->phase == PH_SYNC)
        return 1000000;
    return 10000000;
}

/* Handle one epoll event. */
static void on_event(struct bench *b, struct conn *c, uint32_t ev)
{
    if (c->fd < 0)
        return;
    if (c->state == CS_TCP || c->state == CS_TLS) {
        if (c->state == CS_TLS || (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            on_tcp_done(b, c);
        return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        int rc = io_read(&b->io, b, c, bench_mqtt_on_packet);
        if (rc < 0) {
            conn_failed(b, c, rc);
            return;
        }
    }
    if ((ev & EPOLLOUT) && c->fd >= 0 && io_write_ready(&b->io, c) < 0)
        conn_failed(b, c, -EPIPE);
}

/* The event loop: events, new connects, phase step, one flush per turn. */
static void bench_loop(struct bench *b)
{
    struct epoll_event evs[512];
    while (b->phase != PH_DONE) {
        uint64_t t = loop_timeout_ns(b);
        struct timespec ts = {.tv_sec = (time_t)(t / NS), .tv_nsec = (long)(t % NS)};
        int n = epoll_pwait2(b->io.epfd, evs, 512, &ts, NULL);
        if (n < 0 && errno != EINTR) {
            bench_fail(b, "epoll_pwait2: %s", strerror(errno));
            break;
        }
        b->now = bench_now_ns();
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                bench_fail(b, "interrupted by a signal");
                break;
            }
            on_event(b, evs[i].data.ptr, evs[i].events);
        }
        start_connects(b);
        bench_step(b);
        send_pings(b);
        io_flush(&b->io, b, conn_failed);
    }
    b->t_end = bench_now_ns();
    getrusage(RUSAGE_SELF, &b->ru_end);
}

/* At teardown a failing socket is about to be closed anyway. */
static void ignore_failure(struct bench *b, struct conn *c, int err)
{
    (void)b;
    (void)c;
    (void)err;
}

/* Send DISCONNECT on every live connection, flush it and close. The 2-byte 3.1.1 DISCONNECT is
 * also MQTT 5's Normal disconnection without properties [MQTT-3.14.2.1]. */
static void bench_teardown(struct bench *b)
{
    for (size_t i = 0; i < b->nconns; i++) {
        struct conn *c = b->order[i];
        uint8_t *p;
        if (c->state == CS_READY && (p = io_reserve(&b->io, c, CODEC_PING_SIZE)))
            io_commit(&b->io, c, codec_encode_disconnect(p));
    }
    io_flush(&b->io, b, ignore_failure);
    for (size_t i = 0; i < b->nconns; i++) {
        io_close(&b->io, b->order[i]);
        if (b->order[i]->state == CS_READY)
            b->order[i]->state = CS_CLOSED;
    }
}

static int resolve(const char *host, uint16_t port, struct sockaddr_in *out)
{
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons(port);
    return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

/* Allocate connections, topics and accounting; order subscribers first so routes exist early. */
static int bench_setup(struct bench *b)
{
    const struct bench_opts *o = &b->o;
    if (resolve(o->host, o->port, &b->pub_addr) < 0 ||
        resolve(o->sub_host, o->sub_port, &b->sub_addr) < 0) {
        fprintf(stderr, "solbench: --host/--sub-host must be IPv4 addresses\n");
        return -1;
    }
    b->nconns = (size_t)o->npub + o->nsub + o->nidle;
    b->pubs = calloc(o->npub ? o->npub : 1, sizeof(*b->pubs));
    b->subs = calloc(o->nsub ? o->nsub : 1, sizeof(*b->subs));
    b->idle = calloc(o->nidle ? o->nidle : 1, sizeof(*b->idle));
    b->order = calloc(b->nconns, sizeof(*b->order));
    b->payload = malloc(o->size);
    if (!b->pubs || !b->subs || !b->idle || !b->order || !b->payload)
        return -1;
    memset(b->payload, 'x', o->size);
    size_t k = 0;
    for (uint32_t j = 0; j < o->nsub; j++) {
        struct subscriber *s = &b->subs[j];
        s->c = (struct conn){.fd = -1, .role = ROLE_SUB, .index = j};
        if (o->npub && !(s->pairs = calloc(o->npub, sizeof(*s->pairs))))
            return -1;
        b->order[k++] = &s->c;
    }
    for (uint32_t i = 0; i < o->npub; i++) {
        struct publisher *p = &b->pubs[i];
        p->c = (struct conn){.fd = -1, .role = ROLE_PUB, .index = i};
        p->next_id = 1;
        p->window = o->window;
        int n = o->shared_topic
                    ? snprintf(p->topic, sizeof(p->topic), "%s/%08x/all", o->prefix, o->run_id)
                    : snprintf(p->topic, sizeof(p->topic), "%s/%08x/p/%u", o->prefix, o->run_id, i);
        p->topic_len = (uint16_t)n;
        if (o->qos && !(p->inflight = calloc(65536 / 64, sizeof(uint64_t))))
            return -1;
        b->order[k++] = &p->c;
    }
    for (uint32_t i = 0; i < o->nidle; i++) {
        b->idle[i] = (struct conn){.fd = -1, .role = ROLE_IDLE, .index = i};
        b->order[k++] = &b->idle[i];
    }
    for (size_t i = 0; i < b->nconns; i++)
        b->order[i]->addr_index = (uint32_t)i;
    if (o->npub && o->nsub) {
        b->lag_per_pub = o->max_lag / ((uint64_t)o->npub * o->nsub);
        if (b->lag_per_pub < 2)
            b->lag_per_pub = 2;
    }
    if (o->user_props) {
        if (!(b->props = bench_props_new(o->user_props)))
            return -1;
        b->props_len = (size_t)o->user_props * BENCH_PROP_SIZE;
    }
    hist_init(&b->hist);
    if (io_init(&b->io, b->nconns, 1u << 20) < 0)
        return -1;
    b->io.level = o->mqtt5 ? MQTT_PROTOCOL_LEVEL_5 : MQTT_PROTOCOL_LEVEL_311;
    if (o->tls && io_tls_init(&b->io, o->cafile, o->tls_name, b->err, sizeof(b->err)) < 0) {
        fprintf(stderr, "solbench: %s\n", b->err);
        return -1;
    }
    return 0;
}

static void bench_free(struct bench *b)
{
    for (uint32_t j = 0; b->subs && j < b->o.nsub; j++) {
        for (uint32_t i = 0; b->subs[j].pairs && i < b->o.npub; i++)
            pair_free(&b->subs[j].pairs[i]);
        free(b->subs[j].pairs);
    }
    for (uint32_t i = 0; b->pubs && i < b->o.npub; i++)
        free(b->pubs[i].inflight);
    free(b->pubs);
    free(b->subs);
    free(b->idle);
    free(b->order);
    free(b->payload);
    free(b->props);
    if (b->io.epfd >= 0)
        io_free(&b->io);
    if (b->sigfd >= 0)
        close(b->sigfd);
}

/* SIGINT/SIGTERM arrive as an epoll event (data.ptr NULL) through a signalfd: no handler state. */
static int bench_signals(struct bench *b)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    b->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (b->sigfd < 0)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    return epoll_ctl(b->io.epfd, EPOLL_CTL_ADD, b->sigfd, &ev);
}

/* Raise the open-file limit as far as allowed: idle runs need one descriptor per connection. */
static void raise_nofile(size_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need + 64) {
        rl.rlim_cur = need + 64 < rl.rlim_max ? need + 64 : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* --self-test, second half: the publishing and drain decisions of both loop modes, on a made-up
 * 1 -> 1 run whose subscriber is far behind its publisher. Returns 0, or -1 with err filled. */
static int bench_modes_selftest(char *err, size_t errlen)
{
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(err, errlen, "self-test failed at %s:%d: %s", __FILE__, __LINE__, #cond);     \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)
    int rc = -1;
    struct bench *b = calloc(1, sizeof(*b));
    struct pair *pr = calloc(1, sizeof(*pr));
    if (!b || !pr) {
        snprintf(err, errlen, "self-test: out of memory");
        goto out;
    }
    struct publisher pub = {.c = {.fd = -1, .role = ROLE_PUB}, .window = 100};
    struct subscriber sub = {.c = {.fd = -1, .role = ROLE_SUB}, .pairs = pr};
    const uint64_t burst = 1000;
    b->pubs = &pub;
    b->subs = &sub;
    b->o.npub = b->o.nsub = 1;
    b->o.window = 100;
    b->o.drain_idle = 2;
    b->now = b->t_run_start = 100 * NS;

    /* Closed loop (--max-lag 10): a publisher 10 ahead of its subscriber must wait. */
    b->o.max_lag = 10;
    b->lag_per_pub = 10;
    CHECK(publish_budget(b, &pub, burst) == 10);
    pub.seq = 10;
    CHECK(publish_budget(b, &pub, burst) == 0);
    pr->next_seq = 6; /* half the lag drained: refill */
    CHECK(publish_budget(b, &pub, burst) == 6);

    /* Open loop: a million ahead and the subscriber at 6 changes nothing. */
    b->o.open_loop = true;
    b->o.max_lag = 0;
    pub.seq = 1000000;
    CHECK(publish_budget(b, &pub, burst) == burst);
    /* QoS 1: bounded only by the publisher's own window of unacknowledged PUBLISHes. */
    b->o.qos = 1;
    pub.unacked = 40;
    CHECK(publish_budget(b, &pub, burst) == 60);
    pub.unacked = 100;
    CHECK(publish_budget(b, &pub, burst) == 0);
    pub.unacked = 0;
    /* ... and by its message count. */
    b->o.count = 1000005;
    CHECK(publish_budget(b, &pub, burst) == 5);
    pub.seq = b->o.count;
    CHECK(publish_budget(b, &pub, burst) == 0 && all_published(b));

    /* Drain, open loop (no --drain-timeout): still arriving 60 s after the end is not the end. */
    b->o.drain_timeout = 0;
    b->t_drain_start = b->now;
    b->now += 60 * NS;
    b->t_last_event = b->now - NS / 2;
    CHECK(!drain_done(b));
    b->t_last_event = b->now + 1000; /* stamped after this turn's b->now was read */
    CHECK(!drain_done(b));
    b->now += 3 * NS; /* nothing for 3 s > --drain-idle 2 */
    CHECK(drain_done(b));
    b->t_last_event = b->now;
    b->unique = b->o.count; /* everything arrived: done at once */
    CHECK(drain_done(b));
    b->unique = 0;
    b->o.drain_timeout = 10; /* closed-loop default: the timeout ends it */
    CHECK(drain_done(b));
    rc = 0;
out:
    free(pr);
    free(b);
    return rc;
#undef CHECK
}

int main(int argc, char **argv)
{
    struct bench *b = calloc(1, sizeof(*b));
    if (!b) {
        fprintf(stderr, "solbench: out of memory\n");
        return 1;
    }
    b->io.epfd = b->sigfd = -1;
    int rc = bench_opts_parse(&b->o, argc, argv);
    if (rc != 0) {
        free(b);
        return rc > 0 ? 0 : 2;
    }
    if (b->o.self_test) {
        char err[256];
        rc = bench_stats_selftest(err, sizeof(err));
        if (rc == 0)
            rc = bench_modes_selftest(err, sizeof(err));
        if (rc == 0)
            rc = bench_props_selftest(err, sizeof(err));
        printf("%s\n", rc == 0 ? "self-test ok" : err);
        free(b);
        return rc == 0 ? 0 : 1;
    }
    raise_nofile((size_t)b->o.npub + b->o.nsub + b->o.nidle);
    if (bench_setup(b) < 0 || bench_signals(b) < 0) {
        fprintf(stderr, "solbench: setup failed: %s\n", strerror(errno ? errno : ENOMEM));
        bench_free(b);
        free(b);
        return 1;
    }
    if (b->o.rate > 0) /* wake up on time for each message, not up to 50 us late */
        prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    b->t_start = b->now = bench_now_ns();
    getrusage(RUSAGE_SELF, &b->ru_start);
    bench_loop(b);
    bench_teardown(b);
    rc = bench_report(b);
    bench_free(b);
    free(b);
    return rc;
}
