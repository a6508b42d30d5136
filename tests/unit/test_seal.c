/* test_seal.c - sealed gossip (cluster/seal.h): round trip, refusals (wrong key, label, tampering,
 * truncation, replay, stale time), key rotation, the key file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "seal.h"

#define NOW 1700000000000ULL

static const char seal_msg[] = "gossip envelope bytes";

/* A keyring from raw key bytes (each key filled with one byte value). */
static void ring(struct seal_keyring *kr, const char *label, const uint8_t *fills, size_t n)
{
    memset(kr, 0, sizeof(*kr));
    for (size_t i = 0; i < n; i++)
        memset(kr->keys[i], fills[i], SEAL_KEY_LEN);
    kr->n_keys = n;
    snprintf(kr->label, sizeof(kr->label), "%s", label);
    kr->sender_id = 42;
}

/* Seal seal_msg with kr at now; returns the sealed length. */
static size_t seal_one(struct seal_keyring *kr, uint64_t now, uint8_t *out, size_t cap)
{
    long n = seal_seal(kr, now, (const uint8_t *)seal_msg, sizeof(seal_msg), out, cap);
    assert_true(n == (long)(sizeof(seal_msg) + SEAL_OVERHEAD));
    return (size_t)n;
}

/* Open and return the result, checking the bytes on success. */
static enum seal_result open_one(const struct seal_keyring *kr, struct seal_replay *rp,
                                 uint64_t now, const uint8_t *in, size_t len)
{
    uint8_t out[256];
    size_t n = 0;
    enum seal_result r = seal_open(kr, rp, now, in, len, out, sizeof(out), &n);
    if (r == SEAL_OK) {
        assert_int_equal(n, sizeof(seal_msg));
        assert_memory_equal(out, seal_msg, n);
    }
    return r;
}

/* What one node seals, another with the same key and label opens, byte for byte. */
static void test_round_trip(void **state)
{
    (void)state;
    struct seal_keyring a, b;
    struct seal_replay rp = {0};
    uint8_t buf[256];
    ring(&a, "sol", (const uint8_t[]){1}, 1);
    ring(&b, "sol", (const uint8_t[]){1}, 1);
    size_t n = seal_one(&a, NOW, buf, sizeof(buf));
    assert_int_equal(buf[0], SEAL_VERSION);
    assert_true(seal_looks_sealed(buf, n));
    assert_int_equal(open_one(&b, &rp, NOW + 10, buf, n), SEAL_OK);
    /* no room */
    assert_true(seal_seal(&a, NOW, (const uint8_t *)seal_msg, sizeof(seal_msg), buf, 20) < 0);
}

/* A different key or label does not open it. */
static void test_wrong_key_label(void **state)
{
    (void)state;
    struct seal_keyring a, b, c;
    struct seal_replay rp = {0};
    uint8_t buf[256];
    ring(&a, "sol", (const uint8_t[]){1}, 1);
    ring(&b, "sol", (const uint8_t[]){2}, 1);
    ring(&c, "other", (const uint8_t[]){1}, 1);
    size_t n = seal_one(&a, NOW, buf, sizeof(buf));
    assert_int_equal(open_one(&b, &rp, NOW, buf, n), SEAL_ERR_AUTH);
    assert_int_equal(open_one(&c, &rp, NOW, buf, n), SEAL_ERR_AUTH);
    assert_int_equal(open_one(&a, &rp, NOW, buf, n), SEAL_OK);
}

/* Every bit of every region (version, nonce, ciphertext, tag) matters. */
static void test_flipped_bits(void **state)
{
    (void)state;
    struct seal_keyring a;
    struct seal_replay rp = {0};
    uint8_t buf[256], copy[256];
    ring(&a, "sol", (const uint8_t[]){7}, 1);
    size_t n = seal_one(&a, NOW, buf, sizeof(buf));
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, buf, n);
            copy[i] ^= (uint8_t)(1u << bit);
            enum seal_result r = open_one(&a, &rp, NOW, copy, n);
            assert_true(r == (i == 0 ? SEAL_ERR_VERSION : SEAL_ERR_AUTH));
        }
    }
    assert_int_equal(open_one(&a, &rp, NOW, buf, n), SEAL_OK);
}

/* Shorter than the overhead, or cut anywhere: refused, never read past the end. */
static void test_truncated(void **state)
{
    (void)state;
    struct seal_keyring a;
    struct seal_replay rp = {0};
    uint8_t buf[256];
    ring(&a, "sol", (const uint8_t[]){3}, 1);
    size_t n = seal_one(&a, NOW, buf, sizeof(buf));
    for (size_t len = 0; len < n; len++) {
        uint8_t *cut = malloc(len ? len : 1);
        assert_non_null(cut);
        memcpy(cut, buf, len);
        enum seal_result r = open_one(&a, &rp, NOW, cut, len);
        assert_true(r == (len < SEAL_OVERHEAD ? SEAL_ERR_SHORT : SEAL_ERR_AUTH));
        free(cut);
    }
}

/* The same datagram twice is refused; out of order within the window is fine once. */
static void test_replay(void **state)
{
    (void)state;
    struct seal_keyring a;
    struct seal_replay rp = {0};
    uint8_t d1[256], d2[256], d3[256];
    ring(&a, "sol", (const uint8_t[]){4}, 1);
    size_t n1 = seal_one(&a, NOW, d1, sizeof(d1));
    size_t n2 = seal_one(&a, NOW, d2, sizeof(d2));
    size_t n3 = seal_one(&a, NOW, d3, sizeof(d3));
    assert_int_equal(open_one(&a, &rp, NOW, d1, n1), SEAL_OK);
    assert_int_equal(open_one(&a, &rp, NOW, d1, n1), SEAL_ERR_REPLAY);
    assert_int_equal(open_one(&a, &rp, NOW, d3, n3), SEAL_OK);
    assert_int_equal(open_one(&a, &rp, NOW, d2, n2), SEAL_OK);
    assert_int_equal(open_one(&a, &rp, NOW, d2, n2), SEAL_ERR_REPLAY);
    assert_int_equal(open_one(&a, &rp, NOW, d3, n3), SEAL_ERR_REPLAY);
    /* far behind the window */
    uint8_t old[256];
    size_t no = seal_one(&a, NOW, old, sizeof(old));
    for (int i = 0; i < SEAL_WINDOW + 1; i++) {
        uint8_t x[256];
        size_t nx = seal_one(&a, NOW, x, sizeof(x));
        assert_int_equal(open_one(&a, &rp, NOW, x, nx), SEAL_OK);
    }
    assert_int_equal(open_one(&a, &rp, NOW, old, no), SEAL_ERR_REPLAY);
}

/* More than 30 s old, or from 30 s in the future: refused. */
static void test_old_timestamp(void **state)
{
    (void)state;
    struct seal_keyring a;
    struct seal_replay rp = {0};
    uint8_t buf[256];
    ring(&a, "sol", (const uint8_t[]){5}, 1);
    size_t n = seal_one(&a, NOW, buf, sizeof(buf));
    assert_int_equal(open_one(&a, &rp, NOW + SEAL_MAX_AGE_MS + 1, buf, n), SEAL_ERR_STALE);
    assert_int_equal(open_one(&a, &rp, NOW - SEAL_MAX_AGE_MS - 1, buf, n), SEAL_ERR_STALE);
    assert_int_equal(open_one(&a, &rp, NOW + SEAL_MAX_AGE_MS - 1, buf, n), SEAL_OK);
}

/* Rotation: a node whose first key is new still opens what a node with only the old key seals,
 * and the other way round once the old node knows the new key second. */
static void test_rotation(void **state)
{
    (void)state;
    struct seal_keyring oldk, newk, newonly;
    struct seal_replay rp = {0};
    uint8_t buf[256];
    ring(&oldk, "sol", (const uint8_t[]){10}, 1);
    ring(&newk, "sol", (const uint8_t[]){11, 10}, 2);
    ring(&newonly, "sol", (const uint8_t[]){11}, 1);
    size_t n = seal_one(&oldk, NOW, buf, sizeof(buf));
    assert_int_equal(open_one(&newk, &rp, NOW, buf, n), SEAL_OK);
    assert_int_equal(open_one(&newonly, &rp, NOW, buf, n), SEAL_ERR_AUTH);
    newk.sender_id = 43;
    n = seal_one(&newk, NOW, buf, sizeof(buf));
    assert_int_equal(open_one(&newonly, &rp, NOW, buf, n), SEAL_OK);
    assert_int_equal(open_one(&oldk, &rp, NOW, buf, n), SEAL_ERR_AUTH);
}

/* Write text to a temp file; returns its path (static buffer). */
static const char *key_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/test_seal_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* The key file: keys in order, comments and blank lines skipped, bad lines named. */
static void test_key_file(void **state)
{
    (void)state;
    struct seal_keyring kr;
    char err[256];
    const char *k1 = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const char *k2 = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
    char text[256];
    snprintf(text, sizeof(text), "# keys\n%s\n\n%s\r\n", k1, k2);
    const char *p = key_file(text);
    assert_int_equal(seal_keyring_load(&kr, p, "sol", err, sizeof(err)), 0);
    unlink(p);
    assert_int_equal(kr.n_keys, 2);
    assert_int_equal(kr.keys[0][0], 1);
    assert_int_equal(kr.keys[1][31], 2);
    assert_string_equal(kr.label, "sol");

    snprintf(text, sizeof(text), "%s\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ==\n", k1);
    p = key_file(text); /* 31 bytes */
    assert_int_equal(seal_keyring_load(&kr, p, "sol", err, sizeof(err)), -1);
    unlink(p);
    assert_non_null(strstr(err, "line 2"));
    p = key_file("not base64 at all!!\n");
    assert_int_equal(seal_keyring_load(&kr, p, "sol", err, sizeof(err)), -1);
    unlink(p);
    assert_non_null(strstr(err, "line 1"));
    p = key_file("\n");
    assert_int_equal(seal_keyring_load(&kr, p, "sol", err, sizeof(err)), -1);
    unlink(p);
    assert_int_equal(seal_keyring_load(&kr, "/nonexistent/keys", "sol", err, sizeof(err)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),   cmocka_unit_test(test_wrong_key_label),
        cmocka_unit_test(test_flipped_bits), cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_replay),       cmocka_unit_test(test_old_timestamp),
        cmocka_unit_test(test_rotation),     cmocka_unit_test(test_key_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
