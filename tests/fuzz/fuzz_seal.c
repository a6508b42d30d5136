/*
 * fuzz_seal.c - libFuzzer target for opening sealed gossip (cluster/seal.h): every input is opened
 * as a received datagram with a fixed two-key keyring, then sealed and opened again, which must
 * give the input back. The keyring and replay window persist across inputs (test-only statics),
 * as they do on a node.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "seal.h"

#define FUZZ_NOW 1700000000000ULL

static struct seal_keyring kr;
static struct seal_replay rp;
static uint8_t out[65536 + SEAL_OVERHEAD];
static uint8_t sealed[65536 + SEAL_OVERHEAD];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = 0;
    if (kr.n_keys == 0) {
        memset(kr.keys[0], 0x11, SEAL_KEY_LEN);
        memset(kr.keys[1], 0x22, SEAL_KEY_LEN);
        kr.n_keys = 2;
        strcpy(kr.label, "sol");
        kr.sender_id = 7;
    }
    if (size > 65536)
        return 0;
    (void)seal_open(&kr, &rp, FUZZ_NOW, data, size, out, sizeof(out), &n);
    long len = seal_seal(&kr, FUZZ_NOW, data, size, sealed, sizeof(sealed));
    if (len < 0)
        abort();
    if (seal_open(&kr, &rp, FUZZ_NOW, sealed, (size_t)len, out, sizeof(out), &n) != SEAL_OK ||
        n != size || memcmp(out, data, size) != 0)
        abort();
    return 0;
}
