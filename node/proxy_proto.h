/*
 * proxy_proto.h - the PROXY protocol version 2 header a load balancer puts before a connection's
 * bytes (binary form only; HAProxy's proxy-protocol.txt section 2.2): its source address is the
 * client's. Pure: bytes in, an address out; the transports read the header with it.
 */
#ifndef SOL_PROXY_PROTO_H
#define SOL_PROXY_PROTO_H

#include <stddef.h>
#include <stdint.h>

/* The longest header accepted: the 16 fixed bytes, addresses and TLVs. */
#define PROXY_MAX_HEADER 2048

/* Parse the header at the start of buf. Returns its length (> 0) with the source as "ip:port" in
 * addr, or "" when the header names none (a LOCAL connection, e.g. the balancer's health check,
 * or an unspecified family: the socket's own peer stands); 0 while buf holds a valid beginning but
 * not all of it; -1 when it is not a valid v2 header. */
int proxy_parse(const uint8_t *buf, size_t len, char *addr, size_t addrlen);

/* Reading a header off a stream without reading past it. */
struct proxy_reader {
    uint8_t buf[PROXY_MAX_HEADER];
    size_t len;
};

/* How many bytes the next read may take (never beyond the header's end; > 0 until done). */
size_t proxy_want(const struct proxy_reader *r);

/* n more bytes were read to r->buf + r->len: 1 done (addr as proxy_parse), 0 more needed, -1 not
 * a valid header. */
int proxy_feed(struct proxy_reader *r, size_t n, char *addr, size_t addrlen);

#endif
