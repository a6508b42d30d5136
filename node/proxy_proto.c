/*
 * proxy_proto.c - PROXY protocol v2 headers: the fixed 16 bytes (signature, version and command,
 * family and protocol, length), then the addresses of TCP over IPv4 or IPv6; TLVs are skipped.
 */
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "proxy_proto.h"

static const uint8_t proxy_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* The source of a TCP address block as "ip:port" (v6: 16-byte addresses). */
static int proxy_source(const uint8_t *a, size_t alen, int v6, char *addr, size_t addrlen)
{
    char ip[64];
    size_t need = v6 ? 36 : 12, al = v6 ? 16 : 4;
    if (alen < need)
        return -1;
    if (uv_inet_ntop(v6 ? AF_INET6 : AF_INET, a, ip, sizeof(ip)) != 0)
        return -1;
    unsigned port = (unsigned)a[2 * al] << 8 | a[2 * al + 1];
    snprintf(addr, addrlen, "%s:%u", ip, port);
    return 0;
}

int proxy_parse(const uint8_t *buf, size_t len, char *addr, size_t addrlen)
{
    size_t sl = len < sizeof(proxy_sig) ? len : sizeof(proxy_sig);
    if (addrlen)
        addr[0] = '\0';
    if (memcmp(buf, proxy_sig, sl) != 0)
        return -1;
    if (len >= 13 && ((buf[12] >> 4) != 2 || (buf[12] & 0x0F) > 1))
        return -1; /* version 2; command LOCAL (0) or PROXY (1) */
    if (len < 16)
        return 0;
    size_t body = (size_t)buf[14] << 8 | buf[15];
    if (16 + body > PROXY_MAX_HEADER)
        return -1;
    if (len < 16 + body)
        return 0;
    int cmd = buf[12] & 0x0F, fam = buf[13] >> 4, proto = buf[13] & 0x0F;
    if (cmd == 1 && (fam == 1 || fam == 2)) {
        if (proto != 1) /* STREAM: what a TCP listener gets */
            return -1;
        if (proxy_source(buf + 16, body, fam == 2, addr, addrlen) < 0)
            return -1;
    }
    return (int)(16 + body);
}

size_t proxy_want(const struct proxy_reader *r)
{
    if (r->len < 16)
        return 16 - r->len;
    size_t total = 16 + ((size_t)r->buf[14] << 8 | r->buf[15]);
    return total > PROXY_MAX_HEADER ? 1 : total - r->len; /* too long: refused once parsed */
}

int proxy_feed(struct proxy_reader *r, size_t n, char *addr, size_t addrlen)
{
    r->len += n;
    int rc = proxy_parse(r->buf, r->len, addr, addrlen);
    return rc < 0 ? -1 : rc > 0 ? 1 : 0;
}
