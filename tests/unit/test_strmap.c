/* test_strmap.c - the string hash map: put/get/replace/delete, growth, and deletion keeping probe runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_replace),
        cmocka_unit_test(test_many_and_delete),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
