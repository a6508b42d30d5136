/*
 * fuzz_gossip.c - libFuzzer target for the SWIM receive path: every input is one UDP datagram fed
 * through membership_receive() as if it came from one of a few peers, then the loop runs once so
 * timers and replies it scheduled execute too. libFuzzer needs state across inputs, hence the
 * statics (test-only).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "membership.h"
static uv_loop_t loop; /* one membership for the whole fuzzing run */
static struct membership *m;
static struct logger lg = {LOG_LEVEL_ERROR};
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!m) {
        uv_loop_init(&loop);
        struct cluster_config cfg;
        memset(&cfg, 0, sizeof cfg);
        strcpy(cfg.node_name, "fz");
        strcpy(cfg.cluster_bind, "127.0.0.1");
        cfg.cluster_port = 30000 + getpid() % 20000;
        cfg.gossip_interval_ms = 200;
        cfg.probe_timeout_ms = 100;
        cfg.suspicion_mult = 4;
        cfg.dns_interval_ms = 2000;
        cfg.leave_timeout_ms = 1000;
        char err[128];
        m = membership_start(&loop, &cfg, &lg, NULL, NULL, err, sizeof err);
        if (!m)
            abort();
    }
    struct sockaddr_in src = {0};
    src.sin_family = AF_INET;
    src.sin_port = htons(1000 + (size % 5));
    src.sin_addr.s_addr = htonl(0x7f000001 + (size % 3));
    membership_receive(m, data, size, (struct sockaddr *)&src);
    uv_run(&loop, UV_RUN_NOWAIT);
    return 0;
}
