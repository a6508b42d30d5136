/*
 * bench_props.c - the MQTT 5 User Properties solbench puts on every PUBLISH (--user-props) and the
 * subscriber's check of them.
 *
 * The block is built once with props_write and then only stamped: each value is the message's
 * sequence number in hex, written in place, so a PUBLISH costs the publisher a few bytes of
 * formatting, not a property encoder run. The value ties the properties to their message: a broker
 * that dropped, reordered, truncated or mixed up properties between messages fails the check.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Layout of one property: identifier 0x26, name length 3, "kNN", value length 8, 8 hex digits. */
#define PROP_NAME_LEN 3
#define PROP_VALUE_LEN 8
#define PROP_VALUE_OFF (1 + 2 + PROP_NAME_LEN + 2)

static void props_hex32(char *out, uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = PROP_VALUE_LEN - 1; i >= 0; i--) {
        out[i] = digits[v & 15];
        v >>= 4;
    }
}

/* "kNN": written by hand because the check runs on every delivery. */
static void props_name(char *out, uint32_t i)
{
    out[0] = 'k';
    out[1] = (char)('0' + i / 10);
    out[2] = (char)('0' + i % 10);
}

uint8_t *bench_props_new(uint32_t n)
{
    if (n == 0 || n > BENCH_USER_PROPS_MAX)
        return NULL;
    char names[BENCH_USER_PROPS_MAX][PROP_NAME_LEN];
    const char *zeros = "00000000";
    struct mqtt_str_pair pairs[BENCH_USER_PROPS_MAX];
    for (uint32_t i = 0; i < n; i++) {
        props_name(names[i], i);
        pairs[i] = (struct mqtt_str_pair){{names[i], PROP_NAME_LEN}, {zeros, PROP_VALUE_LEN}};
    }
    struct props_build pb = {.user = pairs, .user_count = n};
    size_t len = props_len(&pb);
    /* Stamping writes at fixed offsets: the writer must lay the block out as this file assumes. */
    if (len != (size_t)n * BENCH_PROP_SIZE)
        return NULL;
    uint8_t *out = malloc(len);
    if (out)
        props_write(out, &pb);
    return out;
}

void bench_props_stamp(uint8_t *props, uint32_t n, uint64_t seq)
{
    char hex[PROP_VALUE_LEN];
    props_hex32(hex, (uint32_t)seq);
    for (uint32_t i = 0; i < n; i++)
        memcpy(props + (size_t)i * BENCH_PROP_SIZE + PROP_VALUE_OFF, hex, PROP_VALUE_LEN);
}

bool bench_props_check(const struct props_view *v, uint32_t n, uint64_t seq)
{
    if (v->user_count != n)
        return false;
    char hex[PROP_VALUE_LEN], name[PROP_NAME_LEN];
    props_hex32(hex, (uint32_t)seq);
    struct mqtt_str_pair up;
    size_t pos = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!props_user_next(v, &pos, &up))
            return false;
        props_name(name, i);
        if (up.name.len != PROP_NAME_LEN || memcmp(up.name.data, name, PROP_NAME_LEN) ||
            up.value.len != PROP_VALUE_LEN || memcmp(up.value.data, hex, PROP_VALUE_LEN))
            return false;
    }
    return true;
}

/* --self-test: a stamped block parses as a PUBLISH's properties and passes the check; another
 * sequence number, a missing property or a changed name does not. Returns 0, or -1 with err. */
int bench_props_selftest(char *err, size_t errlen)
{
    const uint32_t n = 3;
    uint8_t buf[1 + 3 * BENCH_PROP_SIZE];
    uint8_t *props = bench_props_new(n);
    if (!props) {
        snprintf(err, errlen, "self-test: bench_props_new failed");
        return -1;
    }
    bench_props_stamp(props, n, 0x123456789ull);
    buf[0] = (uint8_t)(n * BENCH_PROP_SIZE); /* a one-byte Variable Byte Integer: < 128 */
    memcpy(buf + 1, props, n * BENCH_PROP_SIZE);
    free(props);
    struct props_view v, shorter;
    size_t used;
    const char *why = NULL;
    if (props_parse(buf, sizeof(buf), MQTT_PUBLISH, &v, &used) != CODEC_OK || used != sizeof(buf))
        why = "the block does not parse";
    else if (!bench_props_check(&v, n, 0x123456789ull))
        why = "the block fails its own check";
    else if (bench_props_check(&v, n, 0x123456788ull))
        why = "another sequence number passes";
    else if (bench_props_check(&v, n - 1, 0x123456789ull))
        why = "a count of n - 1 passes";
    if (!why) {
        buf[0] = (uint8_t)((n - 1) * BENCH_PROP_SIZE);
        if (props_parse(buf, sizeof(buf) - BENCH_PROP_SIZE, MQTT_PUBLISH, &shorter, &used) !=
                CODEC_OK ||
            bench_props_check(&shorter, n, 0x123456789ull))
            why = "a missing property passes";
        buf[0] = (uint8_t)(n * BENCH_PROP_SIZE);
        buf[1 + BENCH_PROP_SIZE + 4] = 'x'; /* second name "k01" -> "kx1" */
        if (!why && (props_parse(buf, sizeof(buf), MQTT_PUBLISH, &v, &used) != CODEC_OK ||
                     bench_props_check(&v, n, 0x123456789ull)))
            why = "a changed name passes";
    }
    if (why)
        snprintf(err, errlen, "self-test failed: user properties: %s", why);
    return why ? -1 : 0;
}
