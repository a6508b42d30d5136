/* test_strmap.c - the string hash map: put/get/replace/delete, growth, deletion keeping probe runs,
 * iteration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "strmap.h"

static void test_put_get_replace(void **state)
{
    struct strmap m;
    strmap_init(&m);
    assert_null(strmap_get(&m, "a", 1));
    int one = 1, two = 2;
    assert_int_equal(strmap_put(&m, "a", 1, &one), 0);
    assert_ptr_equal(strmap_get(&m, "a", 1), &one);
    assert_int_equal(strmap_put(&m, "a", 1, &two), 0);
    assert_ptr_equal(strmap_get(&m, "a", 1), &two);
    assert_int_equal(m.count, 1);
    /* Keys are compared by length too: "a" is not a prefix match of "ab". */
    assert_null(strmap_get(&m, "ab", 2));
    strmap_destroy(&m);
}

/* Many keys, then delete every other one: the rest must stay reachable (backward-shift deletion). */
static void test_many_and_delete(void **state)
{
    enum { N = 5000 };
    static char keys[N][16];
    static int vals[N];
    struct strmap m;
    strmap_init(&m);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "client-%d", i);
        vals[i] = i;
        assert_int_equal(strmap_put(&m, keys[i], strlen(keys[i]), &vals[i]), 0);
    }
    assert_int_equal(m.count, N);
    for (int i = 0; i < N; i += 2)
        assert_ptr_equal(strmap_del(&m, keys[i], strlen(keys[i])), &vals[i]);
    assert_int_equal(m.count, N / 2);
    for (int i = 0; i < N; i++) {
        void *v = strmap_get(&m, keys[i], strlen(keys[i]));
        if (i % 2)
            assert_ptr_equal(v, &vals[i]);
        else
            assert_null(v);
    }
    assert_null(strmap_del(&m, "absent", 6));
    strmap_destroy(&m);
}

/* strmap_next visits every entry once, in slot order, and nothing on an empty map. */
static void test_next(void **state)
{
    enum { N = 300 };
    static char keys[N][16];
    static bool seen[N];
    struct strmap m;
    strmap_init(&m);
    size_t pos = 0;
    assert_null(strmap_next(&m, &pos));
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        assert_int_equal(strmap_put(&m, keys[i], strlen(keys[i]), keys[i]), 0);
    }
    for (int i = 0; i < N; i += 3)
        strmap_del(&m, keys[i], strlen(keys[i]));
    const struct strmap_slot *s, *prev = NULL;
    size_t count = 0;
    pos = 0;
    while ((s = strmap_next(&m, &pos)) != NULL) {
        assert_true(prev == NULL || s > prev);
        prev = s;
        int i = atoi((const char *)s->value + 1);
        assert_ptr_equal(s->key, keys[i]);
        assert_true(i % 3 != 0);
        assert_false(seen[i]);
        seen[i] = true;
        count++;
    }
    assert_int_equal(count, m.count);
    assert_int_equal(count, N - (N + 2) / 3);
    strmap_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_replace),
        cmocka_unit_test(test_many_and_delete),
        cmocka_unit_test(test_next),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
