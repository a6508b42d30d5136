/*
 * test_acl.c - Mosquitto acl_file parsing and checks: anonymous and user sections, patterns with %c
 * and %u, deny over grant, read vs write, wildcards, subscribe-filter coverage, syntax errors. Runs
 * with tests/unit as the working directory (fixtures in data/).
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

#include "acl.h"

/* acl_check on a NUL-terminated topic. */
static bool can(const struct acl *acl, const char *id, const char *user, const char *topic,
                enum acl_access access)
{
    return acl_check(acl, id, user, topic, strlen(topic), access);
}

#define R ACL_READ
#define W ACL_WRITE

static int setup_main(void **state)
{
    char err[256] = "";
    struct acl *acl = acl_load("data/acl_main.acl", err, sizeof(err));

    if (acl == NULL) {
        fprintf(stderr, "acl_load: %s\n", err);
        return -1;
    }
    *state = acl;
    return 0;
}

static int teardown_main(void **state)
{
    acl_free(*state);
    return 0;
}

static void test_no_acl_allows_everything(void **state)
{
    (void)state;
    assert_true(can(NULL, "c", NULL, "any/topic", R));
    assert_true(can(NULL, "c", "u", "$SYS/x", W));
    assert_true(can(NULL, "c", "u", "#", R));
}

static void test_anonymous_section(void **state)
{
    const struct acl *acl = *state;

    assert_true(can(acl, "anon1", NULL, "public/news", R));
    assert_true(can(acl, "anon1", NULL, "public", R)); /* "public/#" matches its parent */
    assert_false(can(acl, "anon1", NULL, "public/news", W));
    assert_true(can(acl, "anon1", NULL, "anon/in", W)); /* surrounding spaces ignored */
    assert_false(can(acl, "anon1", NULL, "anon/in", R));
    assert_true(can(acl, "anon1", NULL, "$SYS/broker/uptime", R)); /* no access word = readwrite */
    assert_true(can(acl, "anon1", NULL, "$SYS/broker/uptime", W));
    assert_false(can(acl, "anon1", NULL, "a/x", R)); /* alice's grant is not for anonymous */
    /* Anonymous lines do not apply to clients with a username. */
    assert_false(can(acl, "c", "alice", "public/news", R));
    assert_false(can(acl, "c", "bob", "anon/in", W));
    assert_false(can(acl, "c", "nobody", "public/news", R));
}

static void test_filter_with_spaces(void **state)
{
    const struct acl *acl = *state;

    assert_true(can(acl, "anon1", NULL, "my topic/with space", R));
    assert_false(can(acl, "anon1", NULL, "my topic/with", R));
    assert_false(can(acl, "anon1", NULL, "my", R));
}

static void test_user_section(void **state)
{
    const struct acl *acl = *state;

    assert_true(can(acl, "c1", "alice", "a/b/c", R));
    assert_true(can(acl, "c1", "alice", "a/b/c", W));
    assert_true(can(acl, "c1", "alice", "a", W));
    assert_false(can(acl, "c1", "bob", "a/b/c", R));
    assert_false(can(acl, "c1", NULL, "a/b/c", R));
    assert_true(can(acl, "c2", "bob", "b/only", R));
    assert_false(can(acl, "c2", "bob", "b/only", W));
    assert_false(can(acl, "c2", "bob", "b/only/more", R));
    /* Sections of the same name are merged. */
    assert_true(can(acl, "c1", "alice", "merged/x", R));
    /* Names are compared exactly. */
    assert_false(can(acl, "c1", "Alice", "a/b", R));
    assert_false(can(acl, "c1", "alic", "a/b", R));
    assert_false(can(acl, "c1", "", "a/b", R));
}

static void test_user_without_lines_is_denied(void **state)
{
    const struct acl *acl = *state;

    /* carol has a section with no lines, zoe has none: only patterns can grant them anything. */
    assert_false(can(acl, "x", "carol", "a/b", R));
    assert_false(can(acl, "x", "carol", "public/news", R));
    assert_false(can(acl, "x", "zoe", "anything", W));
    assert_true(can(acl, "x", "carol", "dev/x/data", W)); /* pattern still applies */
}

static void test_read_vs_write(void **state)
{
    const struct acl *acl = *state;

    assert_true(can(acl, "c", "alice", "r/1", R));
    assert_false(can(acl, "c", "alice", "r/1", W));
    assert_true(can(acl, "c", "alice", "w/1", W));
    assert_false(can(acl, "c", "alice", "w/1", R));
    assert_false(can(acl, "c", "alice", "w/1/2", W)); /* '+' is one level */
    /* Both bits requested: both must be granted by one rule. */
    assert_false(can(acl, "c", "alice", "r/1", R | W));
    assert_true(can(acl, "c", "alice", "a/1", R | W));
}

static void test_deny_wins(void **state)
{
    const struct acl *acl = *state;

    assert_false(can(acl, "c", "alice", "a/secret", R));
    assert_false(can(acl, "c", "alice", "a/secret", W));
    assert_true(can(acl, "c", "alice", "a/secret/sub", R)); /* deny is exact, not a prefix */
    assert_true(can(acl, "c", "alice", "a/secrets", R));
    /* A pattern deny overrides a pattern grant and a user grant. */
    assert_true(can(acl, "dev1", "alice", "dev/dev1/state", W));
    assert_false(can(acl, "dev1", "alice", "dev/dev1/locked", W));
    assert_false(can(acl, "dev1", NULL, "dev/dev1/locked", R));
}

static void test_wildcards(void **state)
{
    const struct acl *acl = *state;

    assert_true(can(acl, "c", "alice", "sensors/kitchen/temp", R));
    assert_true(can(acl, "c", "alice", "sensors//temp", W)); /* '+' matches an empty level */
    assert_false(can(acl, "c", "alice", "sensors/kitchen/humidity", R));
    assert_false(can(acl, "c", "alice", "sensors/a/b/temp", R));
    /* "a/#" does not reach a '$' topic, and '#' in a grant is not a prefix match on a level. */
    assert_false(can(acl, "c", "alice", "$SYS/a", R));
    assert_false(can(acl, "c", "alice", "ab/c", R));
}

static void test_patterns(void **state)
{
    const struct acl *acl = *state;

    /* %c */
    assert_true(can(acl, "dev1", NULL, "dev/dev1/x/y", R));
    assert_true(can(acl, "dev1", "bob", "dev/dev1", W));
    assert_false(can(acl, "dev1", NULL, "dev/dev2/x", R));
    assert_false(can(acl, "dev2", "bob", "dev/dev1/x", W));
    /* %u: only for clients with a username */
    assert_true(can(acl, "any", "bob", "users/bob/inbox", R));
    assert_false(can(acl, "any", "bob", "users/bob/inbox", W));
    assert_false(can(acl, "any", "bob", "users/alice/inbox", R));
    assert_false(can(acl, "any", NULL, "users//inbox", R));
    assert_false(can(acl, "any", NULL, "users/%u/inbox", R));
    /* %c that is not a whole level is literal text (Mosquitto 2). */
    assert_false(can(acl, "dev1", NULL, "literal/xdev1", W));
    assert_true(can(acl, "dev1", NULL, "literal/x%c", W));
    /* An id or name containing '/' never equals one level. */
    assert_false(can(acl, "dev1/x", NULL, "dev/dev1/x/y", R));
    /* A wildcard in the id or username is refused outright when patterns exist. */
    assert_false(can(acl, "+", NULL, "dev/anything/x", R));
    assert_false(can(acl, "#", NULL, "dev/#", R));
    assert_false(can(acl, "c", "#", "users/x/inbox", R));
    assert_false(can(acl, "c", "alice+", "public/news", R));
    /* Without a client id, %c patterns never match. */
    assert_false(can(acl, NULL, NULL, "dev//x", R));
}

static void test_long_pattern_substitution(void **state)
{
    const struct acl *acl = *state;
    char id[2000];
    char topic[2100];

    memset(id, 'i', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    snprintf(topic, sizeof(topic), "dev/%s/status", id);
    assert_true(can(acl, id, NULL, topic, W));
    snprintf(topic, sizeof(topic), "dev/%s/locked", id);
    assert_false(can(acl, id, NULL, topic, W));
    snprintf(topic, sizeof(topic), "dev/%sj/status", id);
    assert_false(can(acl, id, NULL, topic, W));
}

static void test_subscribe_coverage(void **state)
{
    const struct acl *acl = *state;

    /* alice: readwrite a/#, deny a/secret, read r/#, write w/+, readwrite sensors/+/temp */
    assert_true(can(acl, "c", "alice", "a/#", R));
    assert_true(can(acl, "c", "alice", "a/+/b", R));
    assert_true(can(acl, "c", "alice", "a/+", R));
    assert_true(can(acl, "c", "alice", "a/b/#", R));
    assert_true(can(acl, "c", "alice", "r/#", R));
    assert_true(can(acl, "c", "alice", "sensors/+/temp", R));
    assert_false(can(acl, "c", "alice", "sensors/#", R));
    assert_false(can(acl, "c", "alice", "sensors/+/+", R));
    assert_false(can(acl, "c", "alice", "sensors/+/temp/#", R));
    assert_false(can(acl, "c", "alice", "#", R));
    assert_false(can(acl, "c", "alice", "+/b", R));
    assert_false(can(acl, "c", "alice", "w/+", R)); /* write-only grant */
    /* A deny filter that covers the requested filter refuses it; a broader subscription is allowed
     * (denied messages are filtered at delivery by the read check). */
    assert_true(can(acl, "c", "alice", "a/+", R));
    assert_false(can(acl, "c", "alice", "a/secret", R));
    assert_false(can(acl, "dev1", "alice", "dev/dev1/locked", R));
    /* Pattern coverage. */
    assert_true(can(acl, "dev1", NULL, "dev/dev1/#", R));
    assert_true(can(acl, "dev1", NULL, "dev/dev1/+/x", R));
    assert_false(can(acl, "dev1", NULL, "dev/+/x", R));
    assert_false(can(acl, "dev1", NULL, "dev/#", R));
    /* '$' topics: anonymous "$SYS/#" covers "$SYS/+"; "public/#" covers only its own subtree. */
    assert_true(can(acl, "a", NULL, "$SYS/+", R));
    assert_true(can(acl, "a", NULL, "$SYS/#", R));
    assert_true(can(acl, "a", NULL, "public/+/x", R));
    assert_false(can(acl, "a", NULL, "+/news", R));
    /* An invalid filter is never covered. */
    assert_false(can(acl, "c", "alice", "a/#/b", R));
    assert_false(can(acl, "c", "alice", "a/b+", R));
}

static void test_dollar_topics_and_leading_wildcards(void **state)
{
    char err[256];
    char path[] = "/tmp/sol_acl_dollar_XXXXXX";
    int fd = mkstemp(path);
    FILE *f;
    struct acl *acl;

    (void)state;
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs("topic read #\ntopic write +/x\ntopic write +/+/y\n", f);
    fclose(f);
    acl = acl_load(path, err, sizeof(err));
    unlink(path);
    assert_non_null(acl);
    assert_true(can(acl, "c", NULL, "a/b", R));
    assert_false(can(acl, "c", NULL, "$SYS/a", R));
    assert_true(can(acl, "c", NULL, "y/x", W));
    assert_false(can(acl, "c", NULL, "$y/x", W));
    assert_true(can(acl, "c", NULL, "a/#", R));
    assert_true(can(acl, "c", NULL, "+/+", R));
    assert_true(can(acl, "c", NULL, "#", R));
    assert_false(can(acl, "c", NULL, "$SYS/#", R));
    assert_false(can(acl, "c", NULL, "$SYS/+", R));
    assert_true(can(acl, "c", NULL, "+/x", W));
    assert_true(can(acl, "c", NULL, "a/+/y", W));
    assert_false(can(acl, "c", NULL, "$a/+/y", W));
    acl_free(acl);
}

static void test_crlf_and_comments(void **state)
{
    char err[256];
    struct acl *acl = acl_load("data/acl_crlf.acl", err, sizeof(err));

    (void)state;
    assert_non_null(acl);
    assert_true(can(acl, "c", "dave", "crlf/topic", R));
    assert_false(can(acl, "c", "dave", "crlf/topic", W));
    acl_free(acl);
}

static void test_empty_file_denies_all(void **state)
{
    char err[256];
    struct acl *acl = acl_load("data/acl_empty.acl", err, sizeof(err));

    (void)state;
    assert_non_null(acl);
    assert_false(can(acl, "c", NULL, "a", R));
    assert_false(can(acl, "c", "u", "a", W));
    acl_free(acl);
}

static void test_patterns_only(void **state)
{
    char err[256];
    struct acl *acl = acl_load("data/acl_patterns_only.acl", err, sizeof(err));

    (void)state;
    assert_non_null(acl);
    assert_true(can(acl, "k", NULL, "dev/k/a", R));
    assert_true(can(acl, "k", "someone", "dev/k/a", R));
    assert_false(can(acl, "k", NULL, "dev/k/a", W));
    assert_false(can(acl, "k", NULL, "dev/k/locked", R)); /* pattern deny without substitution */
    acl_free(acl);
}

static void test_many_users(void **state)
{
    char err[256];
    char path[] = "/tmp/sol_acl_users_XXXXXX";
    char name[32], topic[64];
    int fd = mkstemp(path);
    FILE *f;
    struct acl *acl;

    (void)state;
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    for (int i = 500; i > 0; i--)
        fprintf(f, "user u%d\ntopic read t/%d\n", i, i);
    fclose(f);
    acl = acl_load(path, err, sizeof(err));
    unlink(path);
    assert_non_null(acl);
    for (int i = 1; i <= 500; i++) {
        snprintf(name, sizeof(name), "u%d", i);
        snprintf(topic, sizeof(topic), "t/%d", i);
        assert_true(can(acl, "c", name, topic, R));
        snprintf(topic, sizeof(topic), "t/%d", i + 1);
        assert_false(can(acl, "c", name, topic, R));
    }
    assert_false(can(acl, "c", "u0", "t/0", R));
    acl_free(acl);
}

/* acl_load must fail with exactly want. */
static void expect_load_error(const char *path, const char *want)
{
    char err[256] = "";
    struct acl *acl = acl_load(path, err, sizeof(err));

    if (acl != NULL) {
        acl_free(acl);
        fail_msg("%s loaded, expected error: %s", path, want);
    }
    assert_string_equal(err, want);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    expect_load_error("data/acl_bad_keyword.acl",
                      "data/acl_bad_keyword.acl:2: unknown keyword 'foo' (expected topic, pattern "
                      "or user)");
    expect_load_error("data/acl_bad_access.acl",
                      "data/acl_bad_access.acl:3: unknown access 'rw' (expected read, write, "
                      "readwrite or deny)");
    expect_load_error("data/acl_missing_filter.acl",
                      "data/acl_missing_filter.acl:1: 'topic read' without a topic filter");
    expect_load_error("data/acl_missing_all.acl",
                      "data/acl_missing_all.acl:2: 'topic' without a topic filter");
    expect_load_error("data/acl_pattern_missing.acl",
                      "data/acl_pattern_missing.acl:1: 'pattern deny' without a topic filter");
    expect_load_error("data/acl_user_no_name.acl",
                      "data/acl_user_no_name.acl:2: 'user' without a name");
    expect_load_error("data/acl_bad_filter.acl",
                      "data/acl_bad_filter.acl:1: invalid topic filter 'a/#/b'");
    expect_load_error("data/nope.acl", "data/nope.acl: cannot read: No such file or directory");
    expect_load_error("data", "data: cannot read: Is a directory");
}

static void test_nul_byte_line(void **state)
{
    char err[256] = "";
    char path[] = "/tmp/sol_acl_nul_XXXXXX";
    int fd = mkstemp(path);
    struct acl *acl;
    static const char data[] = "topic read a\ntopic read b\0/c\n";

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, sizeof(data) - 1), (ssize_t)(sizeof(data) - 1));
    close(fd);
    acl = acl_load(path, err, sizeof(err));
    assert_null(acl);
    assert_non_null(strstr(err, ":2: NUL byte in line"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_acl_allows_everything),
        cmocka_unit_test_setup_teardown(test_anonymous_section, setup_main, teardown_main),
        cmocka_unit_test_setup_teardown(test_filter_with_spaces, setup_main, teardown_main),
        cmocka_unit_test_setup_teardown(test_user_section, setup_main, teardown_main),
        cmocka_unit_test_setup_teardown(test_user_without_lines_is_denied, setup_main,
                                        teardown_main),
        cmocka_unit_test_setup_teardown(test_read_vs_write, setup_main, teardown_main),
        cmocka_unit_test_setup_teardown(test_deny_wins, setup_main, teardown_main),
        cmocka_unit_test_setup_teardown(test_wildcards, setup_main, teardown_main),
        cmocka_unit_test_setup_teardown(test_patterns, setup_main, teardown_main),
        cmocka_unit_test_setup_teardown(test_long_pattern_substitution, setup_main, teardown_main),
        cmocka_unit_test_setup_teardown(test_subscribe_coverage, setup_main, teardown_main),
        cmocka_unit_test(test_dollar_topics_and_leading_wildcards),
        cmocka_unit_test(test_crlf_and_comments),
        cmocka_unit_test(test_empty_file_denies_all),
        cmocka_unit_test(test_patterns_only),
        cmocka_unit_test(test_many_users),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_nul_byte_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
