/*
 * fuzz_proxy.c - libFuzzer target for PROXY protocol v2 headers (node/proxy_proto.c).
 *
 * The input is parsed whole with proxy_parse, then read as a stream reads it: through a
 * proxy_reader that never takes more than proxy_want says, until it is done or refused. Both must
 * agree, and a header's length never exceeds the input. Anything else (a crash, a sanitizer
 * report, a disagreement) is a finding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct proxy_reader r;
    char a1[64], a2[64];
    int whole = proxy_parse(data, size, a1, sizeof(a1));
    if (whole > 0 && (size_t)whole > size)
        abort();
    memset(&r, 0, sizeof(r));
    size_t off = 0;
    int rc = 0;
    while (rc == 0 && off < size) {
        size_t n = proxy_want(&r);
        if (n == 0 || r.len + n > sizeof(r.buf))
            abort(); /* never done yet nothing to read, never past the buffer */
        n = n < size - off ? n : size - off;
        memcpy(r.buf + r.len, data + off, n);
        off += n;
        rc = proxy_feed(&r, n, a2, sizeof(a2));
    }
    if ((whole > 0) != (rc == 1) || (whole < 0) != (rc < 0))
        abort();
    if (rc == 1 && ((size_t)whole != off || strcmp(a1, a2) != 0))
        abort();
    return 0;
}
