/*
 * seal.c - sealed gossip (seal.h): AES-256-GCM with OpenSSL EVP, the key file, the replay window.
 */
#include "seal.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

/* Big-endian, so that the header means the same on every host. */
static void seal_put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* The inverse of seal_put64. */
static uint64_t seal_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* A key is 44 base64 characters with one '=' of padding; anything else (including the 33rd byte
 * EVP_DecodeBlock counts for the padding) is refused, so a truncated paste is caught. */
int seal_key_parse(const char *line, uint8_t key[SEAL_KEY_LEN])
{
    uint8_t buf[48];
    size_t n = strlen(line);
    while (n > 0 && isspace((unsigned char)line[n - 1]))
        n--;
    while (n > 0 && isspace((unsigned char)*line)) {
        line++;
        n--;
    }
    if (n != 44 || line[43] != '=' || line[42] == '=')
        return -1;
    for (size_t i = 0; i < 43; i++)
        if (!isalnum((unsigned char)line[i]) && line[i] != '+' && line[i] != '/')
            return -1;
    if (EVP_DecodeBlock(buf, (const unsigned char *)line, 44) != 33)
        return -1;
    memcpy(key, buf, SEAL_KEY_LEN);
    return 0;
}

/* One pass over the file; a keyring half-read is never returned (kr is untouched on error). */
int seal_keyring_load(struct seal_keyring *kr, const char *path, const char *label, char *err,
                      size_t errlen)
{
    struct seal_keyring tmp;
    char line[256];
    unsigned lineno = 0;
    int rc = -1;

    memset(&tmp, 0, sizeof(tmp));
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        const char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        if (tmp.n_keys == SEAL_MAX_KEYS) {
            snprintf(err, errlen, "%s line %u: more than %d keys", path, lineno, SEAL_MAX_KEYS);
            goto cleanup;
        }
        if (seal_key_parse(p, tmp.keys[tmp.n_keys]) != 0) {
            snprintf(err, errlen, "%s line %u: not a base64-encoded %d-byte key", path, lineno,
                     SEAL_KEY_LEN);
            goto cleanup;
        }
        tmp.n_keys++;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        goto cleanup;
    }
    if (tmp.n_keys == 0) {
        snprintf(err, errlen, "%s line %u: no key in the file", path, lineno);
        goto cleanup;
    }
    snprintf(tmp.label, sizeof(tmp.label), "%s", label ? label : "");
    if (RAND_bytes((unsigned char *)&tmp.sender_id, sizeof(tmp.sender_id)) != 1) {
        snprintf(err, errlen, "%s: no randomness for the sender id", path);
        goto cleanup;
    }
    *kr = tmp;
    rc = 0;
cleanup:
    fclose(f);
    OPENSSL_cleanse(&tmp, sizeof(tmp));
    return rc;
}

/* Encrypt (enc 1) or decrypt (enc 0) with one key; the tag is written or checked. Returns 0 when
 * the operation (and, decrypting, the tag) succeeded. */
static int seal_gcm(int enc, const uint8_t *key, const char *label, const uint8_t *nonce,
                    const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    int n = 0, rc = -1;
    uint8_t version = SEAL_VERSION;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return -1;
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1)
        goto cleanup;
    if (label[0] &&
        EVP_CipherUpdate(ctx, NULL, &n, (const uint8_t *)label, (int)strlen(label)) != 1)
        goto cleanup;
    if (EVP_CipherUpdate(ctx, NULL, &n, &version, 1) != 1 ||
        EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1)
        goto cleanup;
    if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, tag) != 1)
        goto cleanup;
    if (EVP_CipherFinal_ex(ctx, out + n, &n) != 1)
        goto cleanup;
    if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN, tag) != 1)
        goto cleanup;
    rc = 0;
cleanup:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

/* The header goes in front of the gossip bytes in out's ciphertext area, then everything is
 * encrypted in place. */
long seal_seal(struct seal_keyring *kr, uint64_t now_ms, const uint8_t *in, size_t len,
               uint8_t *out, size_t cap)
{
    if (!kr || kr->n_keys == 0 || len > cap || cap - len < SEAL_OVERHEAD || len > (1u << 30))
        return -1;
    uint8_t *nonce = out + 1, *body = out + 1 + SEAL_NONCE_LEN;
    size_t body_len = SEAL_HEADER_LEN + len;
    out[0] = SEAL_VERSION;
    if (RAND_bytes(nonce, SEAL_NONCE_LEN) != 1)
        return -1;
    kr->counter++;
    seal_put64(body, kr->sender_id);
    seal_put64(body + 8, now_ms);
    seal_put64(body + 16, kr->counter);
    memmove(body + SEAL_HEADER_LEN, in, len);
    if (seal_gcm(1, kr->keys[0], kr->label, nonce, body, body_len, body, body + body_len) != 0)
        return -1;
    return (long)(1 + SEAL_NONCE_LEN + body_len + SEAL_TAG_LEN);
}

/* The sender's slot, or the least recently heard one to take over. */
static size_t seal_replay_slot(struct seal_replay *rp, uint64_t sender)
{
    size_t pick = 0;
    for (size_t i = 0; i < SEAL_SENDERS; i++)
        if (rp->slots[i].highest != 0 && rp->slots[i].sender_id == sender)
            return i;
    for (size_t i = 0; i < SEAL_SENDERS; i++) {
        if (rp->slots[i].highest == 0)
            return i;
        if (rp->slots[i].last_ms < rp->slots[pick].last_ms)
            pick = i;
    }
    return pick;
}

/* Accept a counter once: ahead of the highest slides the window; behind it checks the bit. */
static enum seal_result seal_replay_check(struct seal_replay *rp, uint64_t sender, uint64_t counter,
                                          uint64_t now_ms)
{
    if (counter == 0)
        return SEAL_ERR_REPLAY;
    size_t i = seal_replay_slot(rp, sender);
    if (rp->slots[i].highest == 0 || rp->slots[i].sender_id != sender) {
        rp->slots[i].sender_id = sender;
        rp->slots[i].highest = counter;
        rp->slots[i].bits = 1;
    } else if (counter > rp->slots[i].highest) {
        uint64_t shift = counter - rp->slots[i].highest;
        rp->slots[i].bits = shift >= SEAL_WINDOW ? 1 : (rp->slots[i].bits << shift) | 1;
        rp->slots[i].highest = counter;
    } else {
        uint64_t behind = rp->slots[i].highest - counter;
        if (behind >= SEAL_WINDOW || (rp->slots[i].bits >> behind) & 1)
            return SEAL_ERR_REPLAY;
        rp->slots[i].bits |= 1ULL << behind;
    }
    rp->slots[i].last_ms = now_ms;
    return SEAL_OK;
}

/* Every key is tried: during a rotation peers seal with either the old or the new first key. */
enum seal_result seal_open(const struct seal_keyring *kr, struct seal_replay *rp, uint64_t now_ms,
                           const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
    uint8_t tag[SEAL_TAG_LEN];
    if (len < SEAL_OVERHEAD)
        return SEAL_ERR_SHORT;
    if (len > (1u << 30)) /* EVP lengths are ints */
        return SEAL_ERR_SPACE;
    if (in[0] != SEAL_VERSION)
        return SEAL_ERR_VERSION;
    size_t body_len = len - 1 - SEAL_NONCE_LEN - SEAL_TAG_LEN;
    if (cap < body_len)
        return SEAL_ERR_SPACE;
    memcpy(tag, in + len - SEAL_TAG_LEN, SEAL_TAG_LEN);
    const uint8_t *nonce = in + 1, *body = in + 1 + SEAL_NONCE_LEN;
    size_t k;
    for (k = 0; k < kr->n_keys; k++)
        if (seal_gcm(0, kr->keys[k], kr->label, nonce, body, body_len, out, tag) == 0)
            break;
    if (k == kr->n_keys)
        return SEAL_ERR_AUTH;
    uint64_t sender = seal_get64(out), ts = seal_get64(out + 8), counter = seal_get64(out + 16);
    if (ts > now_ms + SEAL_MAX_AGE_MS || now_ms > ts + SEAL_MAX_AGE_MS)
        return SEAL_ERR_STALE;
    enum seal_result r = seal_replay_check(rp, sender, counter, now_ms);
    if (r != SEAL_OK)
        return r;
    *outlen = body_len - SEAL_HEADER_LEN;
    memmove(out, out + SEAL_HEADER_LEN, *outlen);
    return SEAL_OK;
}

/* Gossip Envelopes never start with this byte and carry no cleartext of this size. */
bool seal_looks_sealed(const uint8_t *in, size_t len)
{
    return len >= SEAL_OVERHEAD && in[0] == SEAL_VERSION;
}

const char *seal_result_name(enum seal_result r)
{
    switch (r) {
    case SEAL_OK:
        return "ok";
    case SEAL_ERR_SHORT:
        return "too short to be sealed";
    case SEAL_ERR_VERSION:
        return "not sealed (or an unknown seal version)";
    case SEAL_ERR_AUTH:
        return "no cluster key opens it (wrong key or label, or tampered)";
    case SEAL_ERR_STALE:
        return "timestamp more than 30 s off";
    case SEAL_ERR_REPLAY:
        return "replayed";
    case SEAL_ERR_SPACE:
        return "too large";
    case SEAL_ERR_CRYPTO:
        return "crypto failure";
    }
    return "unknown";
}
