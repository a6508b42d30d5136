/*
 * broker_retain.c - the broker's retained messages: set or cleared by a PUBLISH (a client's, a
 * peer's, the store's at restore), sent to a new subscription, and removed for good once their
 * Message Expiry Interval is over (memory and store record both; docs/persistence.md).
 */
#include "broker_internal.h"
#include "persist.h"

/* At most this many expired retained messages are removed per tick (4 a second): a million
 * expiring at once are gone in seconds without one long pause of the loop. */
#define BROKER_RETAIN_EXPIRE_BATCH 20000

void broker_retain_release(void *value)
{
    message_unref(value);
}

/* Set or clear (empty payload) the retained message for msg->topic, in memory and in the store
 * [MQTT-3.3.1-5/10/11]; its expiry, if it has one, goes with it into the store's sweep. */
int broker_retain_apply(struct broker *b, struct message *msg)
{
    if (msg->payload_len == 0) {
        persist_retained(b, msg->topic, msg->topic_len, NULL);
        return retain_set(b->retained, msg->topic, msg->topic_len, NULL);
    }
    if (retain_set_until(b->retained, msg->topic, msg->topic_len, message_ref(msg),
                         msg->expire_at) < 0) {
        message_unref(msg);
        return -1;
    }
    persist_retained(b, msg->topic, msg->topic_len, msg);
    return 0;
}

/* One expired retained message, just before the store releases it: its record goes too, so the
 * disk holds no more than memory does. Not gossiped: each node expires its copy on its own
 * (docs/cluster.md, "Retained messages"). */
static void broker_retain_expire_one(const char *topic, size_t len, void *value, void *ctx)
{
    struct broker *b = ctx;
    persist_retained(b, topic, len, NULL);
    b->core.stats.retained_expired++;
}

void broker_retain_sweep(struct broker *b, uint64_t now)
{
    retain_expire(b->retained, now, BROKER_RETAIN_EXPIRE_BATCH, broker_retain_expire_one, b);
}

uint64_t broker_retain_expired(const struct broker *b)
{
    return b->core.stats.retained_expired;
}

struct retained_send {
    struct broker *b;
    struct session *s;
    uint8_t granted;
};

static void broker_send_one_retained(const char *topic, size_t len, void *value, void *ctx)
{
    struct retained_send *rs = ctx;
    struct message *msg = value;
    struct session *s = rs->s;
    if (!broker_acl_allows(rs->b, s, topic, len, ACL_READ))
        return;
    uint8_t qos = msg->qos < rs->granted ? msg->qos : rs->granted;
    /* [MQTT-3.3.1-8] sent with the retain flag set; QoS 1/2 through the session window as any
     * other. */
    session_deliver(rs->b, s, msg, qos, true);
}

void broker_send_retained(struct broker *b, struct session *s, const char *filter, size_t len,
                          uint8_t granted)
{
    struct retained_send rs = {b, s, granted};
    retain_match(b->retained, filter, len, broker_send_one_retained, &rs);
}

struct message *broker_retain_get(const struct broker *b, const char *topic, size_t len)
{
    return retain_get(b->retained, topic, len);
}

struct retain_visit {
    void (*fn)(struct message *msg, void *ctx);
    void *ctx;
};

static void broker_retain_visit(const char *topic, size_t len, void *value, void *ctx)
{
    struct retain_visit *v = ctx;
    v->fn(value, v->ctx);
}

void broker_retain_foreach(const struct broker *b, void (*fn)(struct message *msg, void *ctx),
                           void *ctx)
{
    struct retain_visit v = {fn, ctx};
    retain_foreach(b->retained, broker_retain_visit, &v);
}
