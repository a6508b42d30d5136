/* cluster_clock.c - the cluster's pure decisions: hybrid logical clock, last-writer-wins,
 * route-version gap detection. No I/O and no state of their own, so they are unit-tested alone. */
#include <string.h>

#include "cluster_int.h"

/* Wall ms shifted into the high 48 bits; the low 16 bits count stamps within one millisecond. */
uint64_t hlc_next(uint64_t *last, uint64_t wall_ms)
{
    uint64_t now = wall_ms << 16;
    uint64_t t = now > *last ? now : *last + 1;
    *last = t;
    return t;
}

/* A peer's stamp moves our clock forward so that our next write orders after what we have seen. */
void hlc_merge(uint64_t *last, uint64_t remote)
{
    if (remote > *last)
        *last = remote;
}

/* A stamp far ahead of our wall clock would win every later write and drag our clock with it. */
bool hlc_plausible(uint64_t stamp, uint64_t wall_ms)
{
    return (stamp >> 16) <= wall_ms + CLUSTER_HLC_MAX_AHEAD_MS;
}

/* Strictly newer by stamp, then by node name; an identical pair is not newer (a duplicate). */
bool lww_newer(uint64_t hlc_a, const char *origin_a, uint64_t hlc_b, const char *origin_b)
{
    if (hlc_a != hlc_b)
        return hlc_a > hlc_b;
    return strcmp(origin_a ? origin_a : "", origin_b ? origin_b : "") > 0;
}

/* A delta applies only on top of exactly the version it was made from; an old one is a duplicate;
 * anything else (a gap, another generation, nothing held yet) needs the full set. */
enum route_step route_delta_step(bool synced, uint64_t have_gen, uint64_t have_ver, uint64_t gen,
                                 uint64_t base, uint64_t ver)
{
    if (!synced || gen != have_gen)
        return ROUTE_RESYNC;
    if (base == have_ver && ver > base)
        return ROUTE_APPLY;
    if (ver <= have_ver)
        return ROUTE_IGNORE;
    return ROUTE_RESYNC;
}

/* Heartbeats follow the deltas on the same ordered stream, so any difference means something was
 * lost. */
bool route_version_stale(bool synced, uint64_t have_gen, uint64_t have_ver, uint64_t gen,
                         uint64_t ver)
{
    return !synced || gen != have_gen || ver != have_ver;
}
