/*
 * test_topic_match.c - topic name and filter validation, single-filter matching, and the same
 * match table (plus random filters and names) run through the subscription tree.
 *
 * Only the public API of topic.h is used; test_topic_tree.c tests the tree's structure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "topic_test.h"

/* ---- validation ---- */

static void test_name_valid(void **state)
{
    (void)state;
    assert_true(topic_name_valid(S("a")));
    assert_true(topic_name_valid(S("sport/tennis/player1")));
    assert_true(topic_name_valid(S("/")));
    assert_true(topic_name_valid(S("/finance")));
    assert_true(topic_name_valid(S("a//b/")));
    assert_true(topic_name_valid(S("$SYS/broker/uptime")));
    assert_true(topic_name_valid(S(" ")));
    /* [MQTT-4.7.1-1] no wildcards in topic names */
    assert_false(topic_name_valid(S("+")));
    assert_false(topic_name_valid(S("#")));
    assert_false(topic_name_valid(S("sport/+/x")));
    assert_false(topic_name_valid(S("sport/#")));
    assert_false(topic_name_valid(S("a+b")));
    assert_false(topic_name_valid(S("a#")));
    /* [MQTT-4.7.3-1] at least one character */
    assert_false(topic_name_valid("", 0));
    assert_false(topic_name_valid("abc", 0));
    assert_false(topic_name_valid(NULL, 0));
    assert_false(topic_name_valid(NULL, 3));
}

static void test_name_not_nul_terminated(void **state)
{
    (void)state;
    /* The length is what counts: a '+' just past the end is not part of the name. */
    const char buf[] = {'a', '/', 'b', '+'};
    assert_true(topic_name_valid(buf, 3));
    assert_false(topic_name_valid(buf, 4));
    const char f[] = {'a', '/', '#', '/'};
    assert_true(topic_filter_valid(f, 3));
    assert_false(topic_filter_valid(f, 4));
}

static void test_length_limit(void **state)
{
    (void)state;
    size_t max = 65535;
    char *buf = malloc(max + 2);
    assert_non_null(buf);
    memset(buf, 'x', max + 1);
    buf[max + 1] = '\0';
    /* [MQTT-4.7.3-3] at most 65535 bytes */
    assert_true(topic_name_valid(buf, max));
    assert_false(topic_name_valid(buf, max + 1));
    assert_true(topic_filter_valid(buf, max));
    assert_false(topic_filter_valid(buf, max + 1));
    buf[max - 1] = '#';
    buf[max - 2] = '/';
    assert_true(topic_filter_valid(buf, max));
    free(buf);
}

static void test_filter_valid(void **state)
{
    (void)state;
    static const char *good[] = {
        "#",
        "+",
        "sport/#",
        "sport/tennis/#",
        "sport/tennis/player1/#",
        "+/+",
        "/+",
        "+/tennis/#",
        "sport/+/player1",
        "sport/+",
        "/",
        "//",
        "+/",
        "/#",
        "+/+/+",
        "a/+/b/+/#",
        "$SYS/#",
        "$SYS/+/x",
        "a b/c",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(topic_filter_valid(S(good[i])));
    /* [MQTT-4.7.1-2] '#' alone in its level and the last character */
    assert_false(topic_filter_valid(S("sport/tennis#")));
    assert_false(topic_filter_valid(S("sport/tennis/#/ranking")));
    assert_false(topic_filter_valid(S("#/")));
    assert_false(topic_filter_valid(S("#/a")));
    assert_false(topic_filter_valid(S("##")));
    assert_false(topic_filter_valid(S("a#")));
    assert_false(topic_filter_valid(S("#a")));
    assert_false(topic_filter_valid(S("a/#b")));
    /* [MQTT-4.7.1-3] '+' occupies an entire level */
    assert_false(topic_filter_valid(S("sport+")));
    assert_false(topic_filter_valid(S("sport/+x")));
    assert_false(topic_filter_valid(S("x+/a")));
    assert_false(topic_filter_valid(S("++")));
    assert_false(topic_filter_valid(S("+#")));
    assert_false(topic_filter_valid(S("a/++/b")));
    /* [MQTT-4.7.3-1] at least one character */
    assert_false(topic_filter_valid("", 0));
    assert_false(topic_filter_valid(NULL, 0));
}

/* ---- one filter against one name, and the same table through the tree ---- */

struct match_case {
    const char *filter;
    const char *name;
    bool match;
};

static const struct match_case match_table[] = {
    /* spec 4.7.1.2 examples: "sport/tennis/player1/#" */
    {"sport/tennis/player1/#", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
    {"sport/tennis/player1/#", "sport/tennis/player2", false},
    {"sport/tennis/player1/#", "sport/tennis", false},
    /* [MQTT-4.7.1-2] "sport/#" also matches the parent level "sport" */
    {"sport/#", "sport", true},
    {"sport/#", "sport/", true},
    {"sport/#", "sport/a/b/c", true},
    {"sport/#", "sports", false},
    {"sport/#", "Sport", false},
    {"#", "sport", true},
    {"#", "/", true},
    {"#", "/finance", true},
    {"#", "a/b/c/d/e", true},
    /* spec 4.7.1.3 examples: "sport/tennis/+" */
    {"sport/tennis/+", "sport/tennis/player1", true},
    {"sport/tennis/+", "sport/tennis/player2", true},
    {"sport/tennis/+", "sport/tennis/player1/ranking", false},
    {"sport/tennis/+", "sport/tennis", false},
    /* "sport/+" does not match "sport" but does match "sport/" (empty level) */
    {"sport/+", "sport", false},
    {"sport/+", "sport/", true},
    {"a/+/c", "a//c", true},
    {"+", "a", true},
    {"+", "a/b", false},
    {"+/+", "a/b", true},
    {"+/+", "a", false},
    {"+/#", "a", true},
    {"+/#", "a/b/c", true},
    {"a/+/#", "a/x", true},
    {"a/+/#", "a", false},
    /* "/finance": an empty first level */
    {"+/+", "/finance", true},
    {"/+", "/finance", true},
    {"+", "/finance", false},
    {"/finance", "/finance", true},
    {"finance", "/finance", false},
    {"+/finance", "/finance", true},
    {"+", "/", false},
    {"+/+", "/", true},
    {"/", "/", true},
    {"//", "//", true},
    {"+/+/+", "//", true},
    /* [MQTT-4.7.2-1] a leading wildcard does not match a '$' topic */
    {"#", "$SYS/broker/uptime", false},
    {"#", "$SYS", false},
    {"+/monitor/Clients", "$SYS/monitor/Clients", false},
    {"+", "$SYS", false},
    {"+/#", "$SYS/x", false},
    {"$SYS/#", "$SYS/monitor/Clients", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
    {"$SYS/+/Clients", "$SYS/monitor/Clients", true},
    {"a/+", "a/$b", true},
    {"a/#", "a/$b/c", true},
    {"+/$x", "a/$x", true},
    /* [MQTT-4.7.3-4] case sensitive, no normalisation */
    {"ACCOUNTS", "Accounts", false},
    {"Accounts", "Accounts", true},
    {"a/b", "a//b", false},
    {"a/b", "a/b/", false},
    {"a/b/", "a/b", false},
    {"a/b/", "a/b/", true},
    {"a/b", " a/b", false},
    {"a/b", "a/b ", false},
    {"caf\xc3\xa9", "cafe\xcc\x81", false},
    {"caf\xc3\xa9", "caf\xc3\xa9", true},
    {"sport/tennis/player1", "sport/tennis/player1", true},
    {"sport/tennis/player1", "sport/tennis/player", false},
    {"sport/tennis/player", "sport/tennis/player1", false},
};

#define NCASES (sizeof(match_table) / sizeof(match_table[0]))

static void test_match_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const struct match_case *c = &match_table[i];
        if (topic_match(S(c->filter), S(c->name)) != c->match)
            fail_msg("topic_match(\"%s\", \"%s\") != %d", c->filter, c->name, c->match);
    }
}

static void test_match_table_tree(void **state)
{
    (void)state;
    struct hits h = {0};
    int sub = 0;
    for (size_t i = 0; i < NCASES; i++) {
        const struct match_case *c = &match_table[i];
        struct topic_tree *t = topic_tree_new();
        assert_non_null(t);
        assert_int_equal(topic_tree_subscribe(t, S(c->filter), &sub, 1), 1);
        match(t, c->name, &h);
        if (h.n != (c->match ? 1u : 0u) || topic_tree_has_match(t, S(c->name)) != c->match)
            fail_msg("tree: \"%s\" vs \"%s\": %zu hits, want %d", c->filter, c->name, h.n,
                     c->match);
        if (c->match)
            assert_ptr_equal(h.subs[0], &sub);
        topic_tree_free(t);
    }
    hits_reset(&h);
}

static void test_match_invalid_input(void **state)
{
    (void)state;
    assert_false(topic_match(S("a/#/b"), S("a/x/b")));
    assert_false(topic_match(S("a+"), S("a+")));
    assert_false(topic_match(S("a/+"), S("a/+")));
    assert_false(topic_match("", 0, S("a")));
    assert_false(topic_match(S("#"), "", 0));
    assert_false(topic_match(NULL, 0, NULL, 0));
    /* Filters and names not NUL-terminated: only len bytes count. */
    const char f[] = {'a', '/', '+', 'x'};
    const char n[] = {'a', '/', 'b', 'y'};
    assert_true(topic_match(f, 3, n, 3));
    assert_false(topic_match(f, 4, n, 4));
}

/* A random topic of 1 to 4 levels into buf (at least 16 bytes), each level one of the first
 * nlevels of "a", "b", "", "$s", "+", "#" (4: names only, 6: filters too). */
static void random_topic(char *buf, unsigned nlevels, unsigned *seed)
{
    static const char *levels[] = {"a", "b", "", "$s", "+", "#"};
    buf[0] = '\0';
    int depth = 1 + (int)((*seed = *seed * 1103515245 + 12345) >> 16) % 4;
    for (int d = 0; d < depth; d++) {
        *seed = *seed * 1103515245 + 12345;
        if (d)
            strcat(buf, "/");
        strcat(buf, levels[(*seed >> 16) % nlevels]);
    }
}

/* Random filters and names over a small alphabet: the tree reports exactly what topic_match says.
 */
static void test_tree_random_vs_match(void **state)
{
    (void)state;
    enum { NF = 300, NN = 300 };
    char filters[NF][32];
    char names[NN][32];
    unsigned seed = 12345;
    struct topic_tree *t = topic_tree_new();
    assert_non_null(t);
    char *subs = malloc(NF);
    assert_non_null(subs);

    for (size_t i = 0; i < NF; i++) {
        do
            random_topic(filters[i], 6, &seed);
        while (!topic_filter_valid(S(filters[i])));
        assert_true(topic_tree_subscribe(t, S(filters[i]), &subs[i], 0) >= 0);
    }
    for (size_t i = 0; i < NN; i++) {
        do
            random_topic(names[i], 4, &seed);
        while (!topic_name_valid(S(names[i])));
    }
    struct hits h = {0};
    size_t total = 0;
    for (size_t n = 0; n < NN; n++) {
        match(t, names[n], &h);
        size_t want = 0;
        for (size_t f = 0; f < NF; f++) {
            /* duplicate filters share one subscription per subscriber */
            bool m = topic_match(S(filters[f]), S(names[n]));
            want += m;
            if (hits_count(&h, &subs[f], NULL) != (m ? 1u : 0u))
                fail_msg("filter \"%s\" name \"%s\": want %d", filters[f], names[n], m);
        }
        assert_int_equal(h.n, want);
        assert_int_equal(topic_tree_has_match(t, S(names[n])), want > 0);
        total += want;
    }
    assert_true(total > 0);
    free(subs);
    hits_reset(&h);
    topic_tree_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_valid),          cmocka_unit_test(test_name_not_nul_terminated),
        cmocka_unit_test(test_length_limit),        cmocka_unit_test(test_filter_valid),
        cmocka_unit_test(test_match_table),         cmocka_unit_test(test_match_table_tree),
        cmocka_unit_test(test_match_invalid_input), cmocka_unit_test(test_tree_random_vs_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
