/*
 * cluster_wire.c - the hot path of the cluster's wire format, by hand.
 *
 * A forwarded PUBLISH is by far the most frequent envelope; encoding and decoding it through
 * protobuf-c's reflective pack/unpack (a size pass, a pack pass, an allocation per field on the way
 * in) cost more than the rest of the forwarding path together. These functions write and read the
 * very same protobuf wire format for Envelope{sender, publish|retain: Publish} (cluster.proto), and
 * split a Frame into its envelopes without copying; every other kind still goes through protobuf-c.
 * The unit test checks both directions against protobuf-c.
 *
 * The reader checks every length against the buffer: a malformed input is an error return, never a
 * read out of bounds.
 */
#include <string.h>

#include "cluster_int.h"

/* Wire types. */
#define WT_VARINT 0
#define WT_I64 1
#define WT_LEN 2
#define WT_I32 5

/* Inline: it is on the per-message path. */
static inline size_t varint_put(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

size_t pb_varint(uint8_t *out, uint64_t v)
{
    return varint_put(out, v);
}

/* Frame field 1 (envelopes), length-delimited. */
size_t wire_frame_entry(uint8_t *out, size_t len)
{
    out[0] = 1 << 3 | WT_LEN;
    return 1 + varint_put(out + 1, len);
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t field_len_size(unsigned field, size_t len)
{
    return varint_len((uint64_t)field << 3 | WT_LEN) + varint_len(len) + len;
}

static size_t field_varint_size(unsigned field, uint64_t v)
{
    return v ? varint_len((uint64_t)field << 3 | WT_VARINT) + varint_len(v) : 0;
}

static uint8_t *put_len(uint8_t *out, unsigned field, const void *data, size_t len)
{
    out += varint_put(out, (uint64_t)field << 3 | WT_LEN);
    out += varint_put(out, len);
    if (len)
        memcpy(out, data, len);
    return out + len;
}

static uint8_t *put_varint(uint8_t *out, unsigned field, uint64_t v)
{
    if (!v)
        return out; /* proto3: defaults are not written */
    out += varint_put(out, (uint64_t)field << 3 | WT_VARINT);
    return out + varint_put(out, v);
}

uint64_t wire_expiry_left(const struct message *msg, uint64_t now)
{
    if (!msg->expire_at)
        return 0;
    return msg->expire_at > now ? msg->expire_at - now : 1;
}

/* Size of the Publish message body for msg (proto3: empty and zero fields omitted). */
static size_t publish_size(const struct message *msg, const struct wire_stamp *st, uint64_t seq,
                           uint64_t expiry_ms)
{
    size_t n = field_len_size(1, msg->topic_len);
    if (msg->payload_len)
        n += field_len_size(2, msg->payload_len);
    n += field_varint_size(3, msg->qos) + field_varint_size(4, msg->retain);
    if (st && st->origin_len)
        n += field_len_size(5, st->origin_len);
    n += field_varint_size(6, st ? st->hlc : 0) + field_varint_size(7, seq);
    if (msg->props_len)
        n += field_len_size(8, msg->props_len);
    return n + field_varint_size(9, expiry_ms);
}

/* Whether a pick for the plan's peer was passed on once already (Publish.share_last_hop). */
static bool plan_last_hop(const struct wire_plan *pl)
{
    for (size_t i = 0; i < pl->npicks; i++)
        if (pl->picks[i].peer == pl->peer && pl->picks[i].last_hop)
            return true;
    return false;
}

/* The share keys of picks naming peer, and their bytes on the wire. */
static size_t plan_shares_size(const struct wire_plan *pl)
{
    size_t n = 0;
    for (size_t i = 0; i < pl->npicks; i++)
        if (pl->picks[i].peer == pl->peer)
            n += field_len_size(10, pl->picks[i].key_len);
    return n + field_varint_size(11, pl->shares_only) + field_varint_size(12, plan_last_hop(pl));
}

size_t wire_plan_shares(struct wire_plan *pl, const struct share_pick *picks, size_t n,
                        const void *peer, bool shares_only)
{
    pl->picks = picks;
    pl->npicks = n;
    pl->peer = peer;
    pl->shares_only = shares_only;
    pl->body_len += plan_shares_size(pl);
    pl->total = (pl->sender_len ? field_len_size(1, pl->sender_len) : 0) +
                field_len_size(pl->body_field, pl->body_len);
    return pl->total;
}

size_t wire_publish_plan(struct wire_plan *pl, const char *sender, size_t sender_len,
                         unsigned body_field, const struct message *msg,
                         const struct wire_stamp *st, uint64_t seq, uint64_t now)
{
    pl->sender = sender;
    pl->sender_len = sender_len;
    pl->body_field = body_field;
    pl->st = st;
    pl->picks = NULL;
    pl->npicks = 0;
    pl->peer = NULL;
    pl->shares_only = false;
    pl->expiry_ms = wire_expiry_left(msg, now);
    pl->body_len = publish_size(msg, st, seq, pl->expiry_ms);
    pl->total =
        (sender_len ? field_len_size(1, sender_len) : 0) + field_len_size(body_field, pl->body_len);
    return pl->total;
}

void wire_write_planned(uint8_t *out, const struct wire_plan *pl, const struct message *msg,
                        uint64_t seq)
{
    if (pl->sender_len)
        out = put_len(out, 1, pl->sender, pl->sender_len);
    out += varint_put(out, (uint64_t)pl->body_field << 3 | WT_LEN);
    out += varint_put(out, pl->body_len);
    out = put_len(out, 1, msg->topic, msg->topic_len);
    if (msg->payload_len)
        out = put_len(out, 2, msg->payload, msg->payload_len);
    out = put_varint(out, 3, msg->qos);
    out = put_varint(out, 4, msg->retain);
    if (pl->st && pl->st->origin_len)
        out = put_len(out, 5, pl->st->origin, pl->st->origin_len);
    out = put_varint(out, 6, pl->st ? pl->st->hlc : 0);
    out = put_varint(out, 7, seq);
    if (msg->props_len)
        out = put_len(out, 8, msg->props, msg->props_len);
    out = put_varint(out, 9, pl->expiry_ms);
    for (size_t i = 0; i < pl->npicks; i++)
        if (pl->picks[i].peer == pl->peer)
            out = put_len(out, 10, pl->picks[i].key, pl->picks[i].key_len);
    out = put_varint(out, 11, pl->shares_only);
    put_varint(out, 12, plan_last_hop(pl));
}

struct wbuf *wire_pack_publish(const char *sender, unsigned body_field, const struct message *msg,
                               const struct wire_stamp *st, uint64_t seq, uint64_t now)
{
    struct wire_plan pl;
    struct wbuf *w =
        wbuf_new(wire_publish_plan(&pl, sender, strlen(sender), body_field, msg, st, seq, now));
    if (w)
        wire_write_planned(w->data, &pl, msg, seq);
    return w;
}

/* ---- reading ---- */

struct reader {
    const uint8_t *p, *end;
};

static int get_varint_slow(struct reader *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return -1;
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1; /* more than 10 bytes */
}

/* Tags, lengths and small numbers are nearly always one byte. */
static inline int get_varint(struct reader *r, uint64_t *v)
{
    if (r->p < r->end && *r->p < 0x80) {
        *v = *r->p++;
        return 0;
    }
    return get_varint_slow(r, v);
}

/* Next field: its number and wire type; for WT_LEN its bytes, for WT_VARINT its value. */
static int next_field(struct reader *r, unsigned *field, unsigned *wt, const uint8_t **data,
                      size_t *len, uint64_t *value)
{
    uint64_t tag;
    if (get_varint(r, &tag) != 0 || (tag >> 3) == 0 || (tag >> 3) > 536870911u)
        return -1;
    *field = (unsigned)(tag >> 3);
    *wt = (unsigned)(tag & 7);
    switch (*wt) {
    case WT_VARINT:
        return get_varint(r, value);
    case WT_I64:
    case WT_I32: {
        size_t n = *wt == WT_I64 ? 8 : 4;
        if ((size_t)(r->end - r->p) < n)
            return -1;
        r->p += n;
        return 0;
    }
    case WT_LEN: {
        uint64_t n;
        if (get_varint(r, &n) != 0 || n > (uint64_t)(r->end - r->p))
            return -1;
        *data = r->p;
        *len = (size_t)n;
        r->p += n;
        return 0;
    }
    default:
        return -1; /* groups and reserved types: not in our schema */
    }
}

int wire_next_envelope(const uint8_t **pos, const uint8_t *end, const uint8_t **env, size_t *len)
{
    struct reader r = {*pos, end};
    while (r.p < r.end) {
        unsigned field, wt;
        uint64_t v;
        const uint8_t *d = NULL;
        size_t n = 0;
        if (next_field(&r, &field, &wt, &d, &n, &v) != 0)
            return -1;
        if (field == 1 && wt == WT_LEN) {
            *pos = r.p;
            *env = d;
            *len = n;
            return 1;
        }
        /* an unknown field of a newer sender: skipped, as protobuf does */
    }
    *pos = r.p;
    return 0;
}

/* A length-delimited value at r: its bytes. */
static inline int get_bytes(struct reader *r, const uint8_t **d, size_t *len)
{
    uint64_t n;
    if (get_varint(r, &n) != 0 || n > (uint64_t)(r->end - r->p))
        return -1;
    *d = r->p;
    *len = (size_t)n;
    r->p += n;
    return 0;
}

/* The fields we write have one-byte tags: those are decoded inline; anything else (a newer sender's
 * field, another encoder's choices) goes through the general reader. */
static int parse_publish(const uint8_t *p, size_t n, struct wire_publish *out)
{
    struct reader r = {p, p + n};
    while (r.p < r.end) {
        const uint8_t *d;
        size_t len;
        uint64_t v;
        switch (*r.p) {
        case 0x0a: /* 1 topic */
            r.p++;
            if (get_bytes(&r, &d, &len) != 0)
                return -1;
            out->topic = (const char *)d;
            out->topic_len = len;
            continue;
        case 0x12: /* 2 payload */
            r.p++;
            if (get_bytes(&r, &out->payload, &out->payload_len) != 0)
                return -1;
            continue;
        case 0x18: /* 3 qos */
            r.p++;
            if (get_varint(&r, &out->qos) != 0)
                return -1;
            continue;
        case 0x20: /* 4 retain */
            r.p++;
            if (get_varint(&r, &v) != 0)
                return -1;
            out->retain = v != 0;
            continue;
        case 0x2a: /* 5 origin */
            r.p++;
            if (get_bytes(&r, &d, &len) != 0)
                return -1;
            out->stamp.origin = (const char *)d;
            out->stamp.origin_len = len;
            continue;
        case 0x30: /* 6 hlc */
            r.p++;
            if (get_varint(&r, &out->stamp.hlc) != 0)
                return -1;
            continue;
        case 0x38: /* 7 seq */
            r.p++;
            if (get_varint(&r, &out->seq) != 0)
                return -1;
            continue;
        case 0x42: /* 8 props */
            r.p++;
            if (get_bytes(&r, &out->props, &out->props_len) != 0)
                return -1;
            continue;
        case 0x48: /* 9 expiry_ms */
            r.p++;
            if (get_varint(&r, &out->expiry_ms) != 0)
                return -1;
            continue;
        case 0x52: /* 10 shares */
            r.p++;
            if (get_bytes(&r, &d, &len) != 0)
                return -1;
            if (out->nshares < WIRE_SHARES_MAX) {
                out->shares[out->nshares] = d;
                out->shares_len[out->nshares++] = len;
            }
            continue;
        case 0x58: /* 11 shares_only */
            r.p++;
            if (get_varint(&r, &v) != 0)
                return -1;
            out->shares_only = v != 0;
            continue;
        case 0x60: /* 12 share_last_hop */
            r.p++;
            if (get_varint(&r, &v) != 0)
                return -1;
            out->share_last_hop = v != 0;
            continue;
        default:
            break;
        }
        unsigned field, wt;
        if (next_field(&r, &field, &wt, &d, &len, &v) != 0 || field <= 12)
            return -1; /* malformed, or a known field with the wrong wire type */
    }
    return 0;
}

/* An empty bytes field unpacked by protobuf-c (a Handover's kept envelope) has no data: p is NULL
 * and NULL + 0 is undefined, so the end is only computed from a real pointer. */
int wire_parse_envelope(const uint8_t *p, size_t n, struct wire_envelope *out)
{
    struct reader r = {p, p ? p + n : p};
    out->sender = NULL;
    out->sender_len = 0;
    out->body_field = 0;
    int kind = 0;
    while (r.p < r.end) {
        unsigned field, wt;
        uint64_t v;
        const uint8_t *d = NULL;
        size_t len = 0;
        if (next_field(&r, &field, &wt, &d, &len, &v) != 0)
            return -1;
        if (field == 1) {
            if (wt != WT_LEN)
                return -1;
            out->sender = (const char *)d;
            out->sender_len = len;
        } else if ((field == CL__ENVELOPE__BODY_PUBLISH || field == CL__ENVELOPE__BODY_RETAIN) &&
                   wt == WT_LEN) {
            memset(&out->pub, 0, sizeof(out->pub));
            if (parse_publish(d, len, &out->pub) != 0)
                return -1;
            out->body_field = field;
            kind = 1;
        } else if (field >= 10) {
            kind = 0; /* another body (a oneof: the last one read wins, as in protobuf) */
            out->body_field = field;
        }
    }
    return kind;
}
