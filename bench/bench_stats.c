/*
 * bench_stats.c - the solbench payload header, the latency histogram and per-pair accounting.
 *
 * Loss, duplication and reordering are counted exactly: each (publisher, subscriber) pair keeps a
 * bitmap of the sequence numbers it received, so a late message and a repeated one are told apart.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Layout: magic(4) run(4) pub(4) kind(1) pad(3) seq(8) send_ns(8) = 32 bytes. */
void bench_hdr_write(uint8_t *buf, const struct bench_hdr *h)
{
    put_le32(buf, BENCH_MAGIC);
    put_le32(buf + 4, h->run_id);
    put_le32(buf + 8, h->pub_id);
    buf[12] = h->kind;
    buf[13] = buf[14] = buf[15] = 0;
    put_le64(buf + 16, h->seq);
    put_le64(buf + 24, h->send_ns);
}

/* Parse a payload written by bench_hdr_write; anything else (short, wrong magic, unknown kind) is
 * not ours. The run id is checked by the caller. */
int bench_hdr_read(const uint8_t *buf, size_t len, struct bench_hdr *h)
{
    if (len < BENCH_HDR_SIZE || get_le32(buf) != BENCH_MAGIC)
        return -1;
    h->run_id = get_le32(buf + 4);
    h->pub_id = get_le32(buf + 8);
    h->kind = buf[12];
    h->seq = get_le64(buf + 16);
    h->send_ns = get_le64(buf + 24);
    if (h->kind != BENCH_KIND_DATA && h->kind != BENCH_KIND_PROBE)
        return -1;
    return 0;
}

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

/* Bucket of v: exact below 128, then 64 linear sub-buckets per power of two. */
static size_t hist_index(uint64_t v)
{
    if (v < (1u << (HIST_SUB_BITS + 1)))
        return (size_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    if (msb > HIST_MAX_EXP)
        return HIST_BUCKETS - 1;
    unsigned e = msb - HIST_SUB_BITS;
    return ((size_t)e << HIST_SUB_BITS) + (size_t)(v >> e);
}

/* Largest value that falls into bucket idx. */
static uint64_t hist_upper(size_t idx)
{
    if (idx < (1u << (HIST_SUB_BITS + 1)))
        return idx;
    unsigned e = (unsigned)(idx >> HIST_SUB_BITS) - 1;
    uint64_t m = idx - ((size_t)e << HIST_SUB_BITS);
    return ((m + 1) << e) - 1;
}

void hist_record(struct hist *h, uint64_t v)
{
    h->buckets[hist_index(v)]++;
    h->count++;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t cum = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        cum += h->buckets[i];
        if (cum >= rank) {
            if (i == HIST_BUCKETS - 1) /* the overflow bucket: only max is known */
                return h->max;
            uint64_t v = hist_upper(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* Grow the bitmap so that bit seq exists (doubling, so amortised O(1) per message). */
static int pair_grow(struct pair *p, uint64_t seq)
{
    uint64_t bits = p->seen_bits ? p->seen_bits : 4096;
    while (bits <= seq)
        bits *= 2;
    uint64_t *n = realloc(p->seen, bits / 8);
    if (!n)
        return -1;
    memset((uint8_t *)n + p->seen_bits / 8, 0, (bits - p->seen_bits) / 8);
    p->seen = n;
    p->seen_bits = bits;
    return 0;
}

int pair_record(struct pair *p, uint64_t seq)
{
    if (seq >= p->seen_bits && pair_grow(p, seq) < 0)
        return PAIR_NOMEM;
    uint64_t mask = 1ull << (seq & 63);
    uint64_t *w = &p->seen[seq >> 6];
    if (*w & mask) {
        p->dup++;
        return PAIR_DUP;
    }
    *w |= mask;
    p->unique++;
    if (seq < p->next_seq) {
        p->ooo++;
        return PAIR_OOO;
    }
    p->next_seq = seq + 1;
    return PAIR_NEW;
}

void pair_free(struct pair *p)
{
    free(p->seen);
    p->seen = NULL;
    p->seen_bits = 0;
}

/* Built-in check of the accounting above (solbench --self-test): the numbers every report rests on.
 * Returns 0, or -1 with the first failure described in err. */
int bench_stats_selftest(char *err, size_t errlen)
{
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(err, errlen, "self-test failed at %s:%d: %s", __FILE__, __LINE__, #cond);     \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)
    uint8_t buf[BENCH_HDR_SIZE + 8];
    struct bench_hdr in = {.run_id = 0xdeadbeef,
                           .pub_id = 7,
                           .seq = 1ull << 40,
                           .send_ns = 123456789,
                           .kind = BENCH_KIND_DATA},
                     out;
    struct pair p = {0};
    struct hist *h = malloc(sizeof(*h));
    CHECK(h != NULL);

    bench_hdr_write(buf, &in);
    CHECK(bench_hdr_read(buf, BENCH_HDR_SIZE, &out) == 0);
    CHECK(out.run_id == in.run_id && out.pub_id == 7 && out.seq == in.seq &&
          out.send_ns == in.send_ns && out.kind == BENCH_KIND_DATA);
    CHECK(bench_hdr_read(buf, BENCH_HDR_SIZE - 1, &out) < 0); /* short */
    buf[0] ^= 1;
    CHECK(bench_hdr_read(buf, BENCH_HDR_SIZE, &out) < 0); /* wrong magic */
    buf[0] ^= 1;
    buf[12] = 9;
    CHECK(bench_hdr_read(buf, BENCH_HDR_SIZE, &out) < 0); /* unknown kind */

    hist_init(h);
    CHECK(hist_percentile(h, 50) == 0);
    for (uint64_t v = 1; v <= 100000; v++)
        hist_record(h, v * 10);
    uint64_t p50 = hist_percentile(h, 50), p99 = hist_percentile(h, 99);
    CHECK(p50 >= 500000 && p50 <= 500000 * 1.02);
    CHECK(p99 >= 990000 && p99 <= 990000 * 1.02);
    CHECK(hist_percentile(h, 100) == 1000000 && h->max == 1000000 && h->min == 10);
    hist_record(h, UINT64_MAX / 2); /* beyond the last bucket: clamped, never out of bounds */
    CHECK(hist_percentile(h, 100) == UINT64_MAX / 2);

    /* 0 1 2 5 3 3 4 100000: 3 and 4 arrive after 5 (out of order), the second 3 is a duplicate. */
    const uint64_t seqs[] = {0, 1, 2, 5, 3, 3, 4, 100000};
    const int want[] = {PAIR_NEW, PAIR_NEW, PAIR_NEW, PAIR_NEW,
                        PAIR_OOO, PAIR_DUP, PAIR_OOO, PAIR_NEW};
    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++)
        CHECK(pair_record(&p, seqs[i]) == want[i]);
    CHECK(p.unique == 7 && p.dup == 1 && p.ooo == 2 && p.next_seq == 100001);
    pair_free(&p);
    free(h);
    return 0;
fail:
    pair_free(&p);
    free(h);
    return -1;
#undef CHECK
}
