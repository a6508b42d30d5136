/*
 * topic_test.h - helpers shared by the subscription tree's cmocka tests (test_topic_match.c,
 * test_topic_tree.c): collect what topic_tree_match reports.
 */
#ifndef SOL_TOPIC_TEST_H
#define SOL_TOPIC_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "topic.h"

/* A string literal or variable as the two arguments (pointer, length). */
#define S(x) (x), strlen(x)

/* What one match call reported: (subscriber, qos) pairs in call order. */
struct hits {
    size_t n;
    size_t cap;
    void **subs;
    uint8_t *qos;
};

static inline void hits_add(void *subscriber, uint8_t qos, void *ctx)
{
    struct hits *h = ctx;
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->subs = realloc(h->subs, h->cap * sizeof(*h->subs));
        h->qos = realloc(h->qos, h->cap * sizeof(*h->qos));
        assert_non_null(h->subs);
        assert_non_null(h->qos);
    }
    h->subs[h->n] = subscriber;
    h->qos[h->n] = qos;
    h->n++;
}

static inline void hits_reset(struct hits *h)
{
    free(h->subs);
    free(h->qos);
    memset(h, 0, sizeof(*h));
}

static inline void match(const struct topic_tree *t, const char *name, struct hits *h)
{
    hits_reset(h);
    topic_tree_match(t, name, strlen(name), hits_add, h);
}

/* How many times subscriber was reported, and with which QoS the last time. */
static inline size_t hits_count(const struct hits *h, void *subscriber, int *qos)
{
    size_t c = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (h->subs[i] == subscriber) {
            c++;
            if (qos)
                *qos = h->qos[i];
        }
    }
    return c;
}

#endif
