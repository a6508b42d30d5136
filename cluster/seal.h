/*
 * seal.h - sealed gossip: AES-256-GCM over one gossip datagram, with a keyring read from a file
 * and a bounded replay window. Pure functions: no sockets, no loop, no logging; the caller passes
 * the wall clock.
 *
 * A sealed datagram is
 *     version (1) | nonce (12, random) | ciphertext | tag (16)
 * with additional data label | version. The plaintext starts with a header, sender id (8) |
 * timestamp ms (8) | counter (8), all big-endian, then the gossip bytes. A datagram whose
 * timestamp is more than SEAL_MAX_AGE_MS from the receiver's clock, or whose (sender, counter)
 * was seen, is refused.
 */
#ifndef SOL_SEAL_H
#define SOL_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEAL_VERSION 0xA5
#define SEAL_KEY_LEN 32
#define SEAL_MAX_KEYS 8
#define SEAL_LABEL_MAX 64
#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16
#define SEAL_HEADER_LEN 24
#define SEAL_OVERHEAD (1 + SEAL_NONCE_LEN + SEAL_TAG_LEN + SEAL_HEADER_LEN)
#define SEAL_MAX_AGE_MS 30000
#define SEAL_SENDERS 64 /* senders whose replay windows are kept (least recently heard evicted) */
#define SEAL_WINDOW 64  /* counters behind the highest still accepted once */

/* Keys to seal with (keys[0]) and to open with (all), and what a sender puts in its header. */
struct seal_keyring {
    uint8_t keys[SEAL_MAX_KEYS][SEAL_KEY_LEN];
    size_t n_keys;
    char label[SEAL_LABEL_MAX];
    uint64_t sender_id; /* random, per process */
    uint64_t counter;   /* last counter sent */
};

/* Per-sender sliding windows: a fixed table, so memory stays bounded whatever arrives. */
struct seal_replay {
    struct {
        uint64_t sender_id;
        uint64_t highest; /* highest counter accepted; 0 = slot free */
        uint64_t bits;    /* bit i: highest - i accepted */
        uint64_t last_ms;
    } slots[SEAL_SENDERS];
};

enum seal_result {
    SEAL_OK = 0,
    SEAL_ERR_SHORT,   /* shorter than a sealed datagram */
    SEAL_ERR_VERSION, /* unknown version byte */
    SEAL_ERR_AUTH,    /* no key opens it (wrong key, label, or tampered) */
    SEAL_ERR_STALE,   /* timestamp outside the window */
    SEAL_ERR_REPLAY,  /* (sender, counter) seen, or too far behind */
    SEAL_ERR_SPACE,   /* output buffer too small */
    SEAL_ERR_CRYPTO,  /* OpenSSL failed (out of memory, no randomness) */
};

/* Read a key file: one base64 32-byte key per line (blank lines and # comments skipped), the first
 * to seal with. label is copied. Returns 0, or -1 with err naming the line and what is wrong. */
int seal_keyring_load(struct seal_keyring *kr, const char *path, const char *label, char *err,
                      size_t errlen);

/* Parse one line of a key file into key; -1 if it is not base64 of exactly SEAL_KEY_LEN bytes. */
int seal_key_parse(const char *line, uint8_t key[SEAL_KEY_LEN]);

/* Seal in[0..len) into out (cap >= len + SEAL_OVERHEAD) with keys[0], stamped now_ms. Returns the
 * sealed length, or -1 (no key, no room, crypto failure). */
long seal_seal(struct seal_keyring *kr, uint64_t now_ms, const uint8_t *in, size_t len,
               uint8_t *out, size_t cap);

/* Open in[0..len) into out (cap >= len - SEAL_OVERHEAD); *outlen gets the gossip bytes' length.
 * Accepted datagrams are recorded in rp. */
enum seal_result seal_open(const struct seal_keyring *kr, struct seal_replay *rp, uint64_t now_ms,
                           const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *outlen);

/* Whether a datagram looks sealed (for a node without keys to tell sealed from garbage). */
bool seal_looks_sealed(const uint8_t *in, size_t len);

/* A short reason for a result, for the drop log. */
const char *seal_result_name(enum seal_result r);

#endif
