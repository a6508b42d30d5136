/*
 * membership_seeds.c - seeds: "host:port[,host:port...]" where host is an IP literal ([v6] in
 * brackets) or a DNS name that may resolve to many addresses (a Kubernetes headless Service). Every
 * seed is resolved again periodically (every dns_interval_ms; every MB_JOIN_RETRY_MS until joined)
 * and a join (push-pull request) goes to each resolved address that is neither this node nor a
 * member we know alive. A resolution error is logged and retried, never fatal.
 */
#include "membership_int.h"

#include <stdlib.h>
#include <string.h>

/* Split one "host:port" item (surrounding spaces already trimmed) into s. */
static int seed_parse_one(const char *item, size_t len, struct mb_seed *s)
{
    const char *colon;
    const char *host = item;
    size_t host_len;
    if (len > 0 && item[0] == '[') {
        const char *close = memchr(item, ']', len);
        if (!close || (size_t)(close - item) + 1 >= len || close[1] != ':')
            return -1;
        host = item + 1;
        host_len = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = NULL;
        for (size_t i = 0; i < len; i++)
            if (item[i] == ':')
                colon = item + i;
        if (!colon)
            return -1;
        host_len = (size_t)(colon - item);
    }
    size_t port_len = len - (size_t)(colon + 1 - item);
    if (host_len == 0 || host_len >= sizeof(s->host) || port_len == 0 || port_len > 5)
        return -1;
    unsigned port = 0;
    for (size_t i = 0; i < port_len; i++) {
        char c = colon[1 + i];
        if (c < '0' || c > '9')
            return -1;
        port = port * 10 + (unsigned)(c - '0');
    }
    if (port == 0 || port > 65535)
        return -1;
    memcpy(s->host, host, host_len);
    s->host[host_len] = '\0';
    snprintf(s->port, sizeof(s->port), "%u", port);
    return 0;
}

int membership_seeds_parse(struct membership *m, const char *list, char *err, size_t errlen)
{
    size_t count = 1;
    for (const char *p = list; *p; p++)
        count += *p == ',';
    m->seeds = calloc(count, sizeof(*m->seeds));
    if (!m->seeds) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p;
        const char *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (b > a) {
            if (seed_parse_one(a, (size_t)(b - a), &m->seeds[m->n_seeds]) != 0) {
                snprintf(err, errlen, "seeds: '%.*s' is not host:port", (int)(b - a), a);
                return -1;
            }
            m->n_seeds++;
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

static bool known_live_addr(const struct membership *m, const struct sockaddr_storage *a)
{
    for (size_t i = 1; i < m->n_nodes; i++) {
        const struct mb_node *n = m->nodes[i];
        if ((n->pub.state == MEMBER_ALIVE || n->pub.state == MEMBER_SUSPECT) &&
            membership_addr_equal(&n->addr, a))
            return true;
    }
    return false;
}

/* Send a join to every resolved seed address that is not us and not a live member. */
static void seeds_join(struct membership *m)
{
    bool any_other = false;
    bool all_resolved = true;
    for (size_t i = 0; i < m->n_seeds; i++) {
        struct mb_seed *s = &m->seeds[i];
        all_resolved &= s->resolved;
        for (unsigned j = 0; j < s->n_addrs; j++) {
            if (membership_is_self_addr(m, &s->addrs[j]))
                continue;
            any_other = true;
            /* Until joined, ask every seed again (a join or its answer may have been lost). */
            if (!m->joined || !known_live_addr(m, &s->addrs[j]))
                membership_send_states(m, &s->addrs[j], true, false);
        }
    }
    if (!m->joined && all_resolved && !any_other) {
        m->joined = true;
        log_info(m->log, "membership: the seeds resolve only to this node: a cluster of one");
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct membership *m = req->data;
    struct mb_seed *s = NULL;
    for (size_t i = 0; i < m->n_seeds && !s; i++)
        if (m->seeds[i].req == req)
            s = &m->seeds[i];
    free(req);
    m->pending_reqs--;
    if (s)
        s->req = NULL;
    if (m->stopping || !s) {
        uv_freeaddrinfo(res);
        membership_maybe_free(m);
        return;
    }
    if (status < 0) {
        log_debug(m->log, "membership: seed %s: %s (will retry)", s->host, uv_strerror(status));
        uv_freeaddrinfo(res);
        return;
    }
    unsigned n = 0;
    for (struct addrinfo *ai = res; ai && n < MB_SEED_ADDRS; ai = ai->ai_next) {
        struct sockaddr_storage a;
        memset(&a, 0, sizeof(a));
        if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(struct sockaddr_in))
            memcpy(&a, ai->ai_addr, sizeof(struct sockaddr_in));
        else if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(struct sockaddr_in6))
            memcpy(&a, ai->ai_addr, sizeof(struct sockaddr_in6));
        else
            continue;
        bool dup = false;
        for (unsigned j = 0; j < n && !dup; j++)
            dup = membership_addr_equal(&s->addrs[j], &a);
        if (!dup)
            s->addrs[n++] = a;
    }
    uv_freeaddrinfo(res);
    s->n_addrs = n;
    s->resolved = true;
    seeds_join(m);
}

/* Timer: resolve every seed (one request in flight per seed) and join what is already known. */
void membership_dns_cb(uv_timer_t *t)
{
    struct membership *m = t->data;
    if (m->stopping || m->leaving)
        return;
    uint64_t now = uv_now(m->loop);
    if (!m->joined && now - m->start_ms >= MB_JOIN_GRACE_MS) {
        m->joined = true;
        log_warn(m->log,
                 "membership: no seed answered within %d ms; serving as a cluster of one "
                 "until one does",
                 MB_JOIN_GRACE_MS);
    }
    seeds_join(m);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    for (size_t i = 0; i < m->n_seeds; i++) {
        struct mb_seed *s = &m->seeds[i];
        if (s->req)
            continue;
        s->req = malloc(sizeof(*s->req));
        if (!s->req)
            continue;
        s->req->data = m;
        int rc = uv_getaddrinfo(m->loop, s->req, on_resolved, s->host, s->port, &hints);
        if (rc != 0) {
            log_debug(m->log, "membership: seed %s: %s (will retry)", s->host, uv_strerror(rc));
            free(s->req);
            s->req = NULL;
            continue;
        }
        m->pending_reqs++;
    }
    unsigned period = m->cfg.dns_interval_ms;
    if (!m->joined && period > MB_JOIN_RETRY_MS)
        period = MB_JOIN_RETRY_MS;
    uv_timer_start(&m->dns_timer, membership_dns_cb, period, 0);
}
