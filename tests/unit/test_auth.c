/*
 * test_auth.c - mosquitto_passwd files. data/passwd_pbkdf2.txt and data/passwd_sha512.txt were
 * written by the real mosquitto_passwd 2.0 (-b -c, and -H sha512); data/passwd_mixed.txt by
 * Python's hashlib (1000 iterations, a 64-byte salt, CRLF, comments). Runs with tests/unit as the
 * working directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth.h"

static bool check(const struct auth *auth, const char *user, const char *pass)
{
    return auth_check(auth, user, pass, strlen(pass));
}

static struct auth *load_ok(const char *path)
{
    char err[256] = "";
    struct auth *auth = auth_load(path, err, sizeof(err));

    if (auth == NULL)
        fail_msg("auth_load(%s): %s", path, err);
    return auth;
}

static void test_pbkdf2_right_password(void **state)
{
    struct auth *auth = load_ok("data/passwd_pbkdf2.txt");

    (void)state;
    assert_true(check(auth, "alice", "alicepass"));
    assert_true(check(auth, "bob", "b0b s3cret:with colon"));
    assert_true(check(auth, "\xc3\xa9mile", "p\xc3\xa4ssw\xc3\xb6rd"));
    auth_free(auth);
}

static void test_pbkdf2_wrong_password(void **state)
{
    struct auth *auth = load_ok("data/passwd_pbkdf2.txt");

    (void)state;
    assert_false(check(auth, "alice", "alicepas"));
    assert_false(check(auth, "alice", "alicepass "));
    assert_false(check(auth, "alice", "Alicepass"));
    assert_false(check(auth, "alice", "b0b s3cret:with colon")); /* bob's password */
    assert_false(check(auth, "bob", "alicepass"));
    /* The length counts, not a terminator. (A trailing NUL byte would not count: HMAC pads its key
     * with zeros, so PBKDF2 cannot tell "x" from "x\0", in Mosquitto too.) */
    assert_false(auth_check(auth, "alice", "alicepassX", 10));
    assert_false(auth_check(auth, "alice", "alicepass", 8));
    assert_true(auth_check(auth, "alice", "alicepassXYZ", 9));
    auth_free(auth);
}

static void test_unknown_user(void **state)
{
    struct auth *auth = load_ok("data/passwd_pbkdf2.txt");

    (void)state;
    assert_false(check(auth, "mallory", "alicepass"));
    assert_false(check(auth, "alic", "alicepass"));
    assert_false(check(auth, "alice2", "alicepass"));
    assert_false(check(auth, "", "alicepass"));
    assert_false(auth_check(auth, NULL, "alicepass", 9));
    assert_false(auth_check(NULL, "alice", "alicepass", 9));
    auth_free(auth);
}

static void test_empty_password(void **state)
{
    struct auth *auth = load_ok("data/passwd_pbkdf2.txt");

    (void)state;
    /* "empty" was created with an empty password by mosquitto_passwd. */
    assert_true(check(auth, "empty", ""));
    assert_true(auth_check(auth, "empty", NULL, 0)); /* CONNECT without a password */
    assert_false(check(auth, "empty", " "));
    /* Users with a password are not matched by an empty or absent one. */
    assert_false(check(auth, "alice", ""));
    assert_false(auth_check(auth, "alice", NULL, 0));
    auth_free(auth);
}

static void test_sha512_format(void **state)
{
    struct auth *auth = load_ok("data/passwd_sha512.txt");

    (void)state;
    assert_true(check(auth, "carol", "carolpass"));
    assert_true(check(auth, "dave", "davepass"));
    assert_false(check(auth, "carol", "davepass"));
    assert_false(check(auth, "dave", "davepas"));
    assert_false(check(auth, "carol", ""));
    assert_false(check(auth, "alice", "alicepass"));
    auth_free(auth);
}

static void test_iterations_salt64_crlf_comments(void **state)
{
    struct auth *auth = load_ok("data/passwd_mixed.txt");

    (void)state;
    assert_true(check(auth, "iter1000", "iterpass"));
    assert_false(check(auth, "iter1000", "iterpasss"));
    assert_true(check(auth, "salt64", "longsalt"));
    assert_false(check(auth, "salt64", "longsal"));
    auth_free(auth);
}

static void test_long_password(void **state)
{
    char path[] = "/tmp/sol_passwd_XXXXXX";
    char cmd[512];
    struct auth *auth;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    /* A long password, made by the real tool; checked with its exact length. */
    snprintf(cmd, sizeof(cmd), "mosquitto_passwd -b -c %s long '%0200d' >/dev/null 2>&1", path, 7);
    if (system(cmd) != 0) {
        unlink(path);
        skip();
    }
    auth = load_ok(path);
    unlink(path);
    {
        char pass[201];
        snprintf(pass, sizeof(pass), "%0200d", 7);
        assert_true(check(auth, "long", pass));
        pass[199] = '8';
        assert_false(check(auth, "long", pass));
        assert_false(auth_check(auth, "long", pass, 199));
    }
    auth_free(auth);
}

static void test_many_users_lookup(void **state)
{
    char err[256];
    char path[] = "/tmp/sol_passwd_many_XXXXXX";
    char name[32];
    int fd = mkstemp(path);
    FILE *out, *in;
    char line[512];
    struct auth *auth;

    (void)state;
    assert_true(fd >= 0);
    out = fdopen(fd, "w");
    assert_non_null(out);
    /* Reuse alice's real hash under 300 names (in reverse order): lookup must find each one. */
    in = fopen("data/passwd_pbkdf2.txt", "r");
    assert_non_null(in);
    assert_non_null(fgets(line, sizeof(line), in));
    fclose(in);
    assert_true(strncmp(line, "alice:", 6) == 0);
    for (int i = 300; i > 0; i--)
        fprintf(out, "user%03d:%s", i, line + 6);
    fclose(out);
    auth = auth_load(path, err, sizeof(err));
    unlink(path);
    assert_non_null(auth);
    for (int i = 1; i <= 300; i++) {
        snprintf(name, sizeof(name), "user%03d", i);
        assert_true(check(auth, name, "alicepass"));
    }
    assert_false(check(auth, "user000", "alicepass"));
    assert_false(check(auth, "user301", "alicepass"));
    auth_free(auth);
}

static void expect_load_error(const char *path, const char *want)
{
    char err[256] = "";
    struct auth *auth = auth_load(path, err, sizeof(err));

    if (auth != NULL) {
        auth_free(auth);
        fail_msg("%s loaded, expected error: %s", path, want);
    }
    assert_string_equal(err, want);
}

static void test_malformed_lines(void **state)
{
    (void)state;
    expect_load_error("data/passwd_bad_nocolon.txt",
                      "data/passwd_bad_nocolon.txt:2: missing ':' between user name and password "
                      "hash");
    expect_load_error("data/passwd_bad_emptyuser.txt",
                      "data/passwd_bad_emptyuser.txt:2: empty user name");
    expect_load_error("data/passwd_bad_plaintext.txt",
                      "data/passwd_bad_plaintext.txt:2: password is not a mosquitto_passwd hash "
                      "(expected $6$ or $7$)");
    expect_load_error("data/passwd_bad_type.txt",
                      "data/passwd_bad_type.txt:2: unsupported hash type (expected $6$ or $7$)");
    expect_load_error("data/passwd_bad_iter0.txt",
                      "data/passwd_bad_iter0.txt:2: invalid iteration count '0'");
    expect_load_error("data/passwd_bad_iterx.txt",
                      "data/passwd_bad_iterx.txt:2: invalid iteration count '10x'");
    expect_load_error("data/passwd_bad_iterbig.txt",
                      "data/passwd_bad_iterbig.txt:2: invalid iteration count '99999999999'");
    expect_load_error("data/passwd_bad_noiter.txt",
                      "data/passwd_bad_noiter.txt:2: missing iteration count");
    expect_load_error("data/passwd_bad_nohash.txt",
                      "data/passwd_bad_nohash.txt:2: missing salt or hash");
    expect_load_error("data/passwd_bad_sha6nosalt.txt",
                      "data/passwd_bad_sha6nosalt.txt:2: missing salt or hash");
    expect_load_error("data/passwd_bad_badsalt.txt",
                      "data/passwd_bad_badsalt.txt:2: invalid salt (expected base64 of 12 or 64 "
                      "bytes)");
    expect_load_error("data/passwd_bad_saltlen.txt",
                      "data/passwd_bad_saltlen.txt:2: invalid salt (expected base64 of 12 or 64 "
                      "bytes)");
    expect_load_error(
        "data/passwd_bad_shorthash.txt",
        "data/passwd_bad_shorthash.txt:2: invalid hash (expected base64 of 64 bytes)");
    expect_load_error("data/passwd_bad_hashpad.txt",
                      "data/passwd_bad_hashpad.txt:2: invalid hash (expected base64 of 64 bytes)");
    expect_load_error("data/passwd_bad_extra.txt",
                      "data/passwd_bad_extra.txt:2: invalid hash (expected base64 of 64 bytes)");
    expect_load_error("data/passwd_bad_dup.txt",
                      "data/passwd_bad_dup.txt: user 'alice' appears more than once");
    expect_load_error("data/nope.txt", "data/nope.txt: cannot read: No such file or directory");
    expect_load_error("data", "data: cannot read: Is a directory");
}

static void test_empty_file(void **state)
{
    char err[256];
    struct auth *auth = auth_load("data/acl_empty.acl", err, sizeof(err));

    (void)state;
    assert_non_null(auth);
    assert_false(check(auth, "alice", "alicepass"));
    assert_false(check(auth, "", ""));
    auth_free(auth);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pbkdf2_right_password),
        cmocka_unit_test(test_pbkdf2_wrong_password),
        cmocka_unit_test(test_unknown_user),
        cmocka_unit_test(test_empty_password),
        cmocka_unit_test(test_sha512_format),
        cmocka_unit_test(test_iterations_salt64_crlf_comments),
        cmocka_unit_test(test_long_password),
        cmocka_unit_test(test_many_users_lookup),
        cmocka_unit_test(test_malformed_lines),
        cmocka_unit_test(test_empty_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
