/*
 * fuzz_ws.c - libFuzzer target for a WebSocket listener's input path (node/ws_proto.c).
 *
 * The input is what a client sends: the header block (up to the blank line, at most WS_MAX_HEADER
 * bytes, as transport_ws.c collects it) is checked with ws_upgrade_parse against a policy with an
 * Origin list and X-Forwarded-For trusted, and answered with ws_upgrade_response; what follows is
 * fed to a frame decoder in chunks of varying size (the first byte picks them), as reads deliver
 * it, until the decoder says the connection is over. Anything but a clean refusal (a crash, a
 * leak, a sanitizer report) is a finding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws_proto.h"

/* What the decoder hands on: counted, so that the compiler keeps the calls. */
struct fuzz_out {
    size_t data, out;
};

static void fuzz_data(void *ctx, const uint8_t *p, size_t n)
{
    struct fuzz_out *o = ctx;
    if (n && p[0] == p[n - 1])
        o->data++;
    o->data += n;
}

static int fuzz_send(void *ctx, const uint8_t *p, size_t n)
{
    struct fuzz_out *o = ctx;
    (void)p;
    o->out += n;
    return 0;
}

static const struct ws_sink fuzz_sink = {.data = fuzz_data, .out = fuzz_send};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct ws_policy pol = {
        .path = "/mqtt", .origins = "https://a.example, http://b.example:8080", .trust_xff = true};
    struct fuzz_out o = {0, 0};
    struct ws_upgrade u;
    char resp[512];
    if (size < 1)
        return 0;
    size_t step = 1 + data[0] % 64;
    data++;
    size--;
    size_t lim = size < WS_MAX_HEADER ? size : WS_MAX_HEADER;
    size_t hlen = ws_header_end(data, lim);
    if (hlen) {
        ws_upgrade_parse(data, hlen, &pol, &u);
        if (ws_upgrade_response(&u, resp, sizeof(resp)) == 0)
            abort(); /* 512 bytes always do */
        data += hlen;
        size -= hlen;
    }
    struct ws_frames *f = ws_frames_new(1000, &fuzz_sink, &o);
    if (!f)
        return 0;
    const char *why = NULL;
    while (size > 0) {
        size_t n = size < step ? size : step;
        if (ws_frames_input(f, data, n, &why) != 0)
            break;
        data += n;
        size -= n;
    }
    ws_frames_free(f);
    return 0;
}
