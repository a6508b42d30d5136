/* test_cluster_clock.c - the cluster's pure decisions: hybrid logical clock, last-writer-wins
 * order, route-version gap detection, protobuf varints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cluster_int.h"

/* Stamps grow strictly even within one millisecond, and when the wall clock steps back. */
static void test_hlc_monotonic(void **state)
{
    (void)state;
    uint64_t last = 0;
    uint64_t a = hlc_next(&last, 1000);
    uint64_t b = hlc_next(&last, 1000);
    uint64_t c = hlc_next(&last, 999); /* clock stepped back */
    uint64_t d = hlc_next(&last, 1001);
    assert_true(a < b);
    assert_true(b < c);
    assert_true(c < d);
    assert_int_equal(a >> 16, 1000);
    assert_int_equal(d, (uint64_t)1001 << 16); /* wall time caught up: counter resets */
}

/* After seeing a peer's stamp from a clock ahead of ours, our next write still orders after it. */
static void test_hlc_merge(void **state)
{
    (void)state;
    uint64_t last = 0;
    hlc_next(&last, 1000);
    uint64_t remote = ((uint64_t)5000 << 16) | 7;
    hlc_merge(&last, remote);
    uint64_t next = hlc_next(&last, 1001);
    assert_true(next > remote);
    uint64_t before = last;
    hlc_merge(&last, 3); /* an older stamp does not move the clock back */
    assert_int_equal(last, before);
}

static void test_hlc_plausible(void **state)
{
    (void)state;
    uint64_t wall = 1700000000000ull;
    assert_true(hlc_plausible(wall << 16, wall));
    assert_true(hlc_plausible(((wall + CLUSTER_HLC_MAX_AHEAD_MS) << 16) | 0xffff, wall));
    assert_false(hlc_plausible((wall + CLUSTER_HLC_MAX_AHEAD_MS + 1) << 16, wall));
    assert_false(hlc_plausible(UINT64_MAX, wall));
}

static void test_lww_order(void **state)
{
    (void)state;
    assert_true(lww_newer(2, "a", 1, "z"));
    assert_false(lww_newer(1, "z", 2, "a"));
    /* Same stamp: the greater node name wins, on every node. */
    assert_true(lww_newer(5, "n2", 5, "n1"));
    assert_false(lww_newer(5, "n1", 5, "n2"));
    /* An identical write is a duplicate, not newer. */
    assert_false(lww_newer(5, "n1", 5, "n1"));
    /* Anything beats "nothing held" (stamp 0, no origin). */
    assert_true(lww_newer(1, "n1", 0, ""));
    assert_false(lww_newer(0, "", 0, NULL));
}

static void test_route_delta_steps(void **state)
{
    (void)state;
    /* Nothing held yet, or another generation (the sender restarted): full sync. */
    assert_int_equal(route_delta_step(false, 0, 0, 7, 0, 1), ROUTE_RESYNC);
    assert_int_equal(route_delta_step(true, 7, 3, 8, 0, 1), ROUTE_RESYNC);
    /* The next delta applies. */
    assert_int_equal(route_delta_step(true, 7, 3, 7, 3, 4), ROUTE_APPLY);
    /* A duplicate or an old one is ignored. */
    assert_int_equal(route_delta_step(true, 7, 3, 7, 2, 3), ROUTE_IGNORE);
    assert_int_equal(route_delta_step(true, 7, 3, 7, 0, 1), ROUTE_IGNORE);
    /* A gap (a delta lost in between) needs the full set. */
    assert_int_equal(route_delta_step(true, 7, 3, 7, 4, 5), ROUTE_RESYNC);
    /* A malformed delta (not moving forward) from exactly our version is not applied as progress.
     */
    assert_int_equal(route_delta_step(true, 7, 3, 7, 3, 3), ROUTE_IGNORE);
}

static void test_route_version_stale(void **state)
{
    (void)state;
    assert_false(route_version_stale(true, 7, 3, 7, 3));
    assert_true(route_version_stale(true, 7, 3, 7, 4)); /* lost the last delta */
    assert_true(route_version_stale(true, 7, 3, 9, 3)); /* restarted */
    assert_true(route_version_stale(false, 0, 0, 7, 0));
}

static void test_varint(void **state)
{
    (void)state;
    uint8_t b[10];
    assert_int_equal(pb_varint(b, 0), 1);
    assert_int_equal(b[0], 0);
    assert_int_equal(pb_varint(b, 300), 2);
    assert_int_equal(b[0], 0xac);
    assert_int_equal(b[1], 0x02);
    assert_int_equal(pb_varint(b, UINT64_MAX), 10);
    assert_int_equal(b[9], 0x01);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hlc_monotonic),
        cmocka_unit_test(test_hlc_merge),
        cmocka_unit_test(test_hlc_plausible),
        cmocka_unit_test(test_lww_order),
        cmocka_unit_test(test_route_delta_steps),
        cmocka_unit_test(test_route_version_stale),
        cmocka_unit_test(test_varint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
