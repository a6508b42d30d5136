/*
 * retain.c - the retained-message store: a level trie from topic name to value.
 *
 * Each node keeps its children in a levelmap (an open-addressing hash table, see levelmap.h), so a
 * topic level with 100,000 siblings costs one hash lookup.
 * A node holding a value also holds its full topic, NUL-terminated, for the visit callback.
 *
 * Lookups by filter walk the trie without recursion: nodes know their parent, a '+' level moves on
 * to the next sibling by finding the current child's slot again, and the filter position of the
 * parent level is recovered by scanning back to the previous '/'. The visit callback must not
 * modify the store.
 *
 * Values with a deadline are also in a binary min-heap of (deadline, node); each such node knows
 * its slot, so a replace or clear moves or removes its entry in O(log n) and the heap never holds a
 * node that is gone. The slot lives with the value's topic copy, not in the node: the many nodes
 * that hold no value (inner levels) do not grow.
 */
#include "retain.h"
#include "levelmap.h"
#include "topic.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* What a node holding a value has besides it: one allocation. */
struct rtopic {
    uint32_t due; /* the value's slot in the expiry heap + 1; 0: it never expires */
    char name[];  /* the full topic, NUL-terminated */
};

struct rnode {
    struct rnode *parent;
    struct levelmap kids;
    void *value;             /* NULL: no retained message here */
    struct rtopic *topic;    /* while value is set */
    struct levelmap_key key; /* this node's level (bytes follow); key.user is the topic's length */
};
LEVELMAP_KEY_LAST(struct rnode, key);

/* One value with a deadline. */
struct rdue {
    uint64_t at;
    struct rnode *node;
};

struct retain_store {
    struct rnode *root;
    retain_release_fn release;
    size_t count;
    struct rdue *due; /* min-heap by at: the values that expire */
    size_t ndue, due_cap;
};

/* ---- children ---- */

/* The node that embeds key k, or NULL. */
static inline struct rnode *rnode_of(struct levelmap_key *k)
{
    return k ? (struct rnode *)((char *)k - offsetof(struct rnode, key)) : NULL;
}

/* The child of node named s[0..n), or NULL. */
static struct rnode *kids_find(const struct rnode *node, const char *s, size_t n)
{
    return rnode_of(levelmap_find(&node->kids, s, n, levelmap_hash(s, n)));
}

/* First child of node in slot order from slot pos on, skipping '$' levels if asked; or NULL. */
static struct rnode *kids_next(const struct rnode *node, uint32_t pos, bool skip_dollar)
{
    struct levelmap_key *k;
    while ((k = levelmap_next(&node->kids, &pos)) != NULL)
        if (!(skip_dollar && k->len > 0 && levelmap_key_level(k)[0] == '$'))
            return rnode_of(k);
    return NULL;
}

/* The sibling after child in its parent's slot order. */
static struct rnode *kids_after(const struct rnode *node, const struct rnode *child,
                                bool skip_dollar)
{
    return kids_next(node, levelmap_slot(&node->kids, &child->key) + 1, skip_dollar);
}

/* ---- nodes ---- */

static struct rnode *rnode_new(struct rnode *parent, const char *s, size_t n, uint32_t h)
{
    struct rnode *node = calloc(1, sizeof(*node) + n);
    if (node == NULL)
        return NULL;
    node->parent = parent;
    levelmap_key_set(&node->key, s, n, h);
    return node;
}

/* Remove empty nodes from node upwards (never the root). */
static void rnode_prune(struct retain_store *store, struct rnode *node)
{
    while (node != store->root && node->value == NULL && node->kids.count == 0) {
        struct rnode *parent = node->parent;
        levelmap_remove(&parent->kids, &node->key);
        levelmap_clear(&node->kids); /* an empty table may be left by a failed insert */
        free(node);
        node = parent;
    }
}

/* The node for exactly topic, or NULL. */
static struct rnode *rnode_find(const struct retain_store *store, const char *topic, size_t len)
{
    struct rnode *node = store->root;
    size_t pos = 0;
    for (;;) {
        size_t end = levelmap_level_end(topic, pos, len);
        node = kids_find(node, topic + pos, end - pos);
        if (node == NULL || end == len)
            return node;
        pos = end + 1;
    }
}

/* The node for topic, building the path as needed; on allocation failure prunes and returns NULL.
 */
static struct rnode *rnode_make(struct retain_store *store, const char *topic, size_t len)
{
    struct rnode *node = store->root;
    size_t pos = 0;
    for (;;) {
        size_t end = levelmap_level_end(topic, pos, len);
        const char *s = topic + pos;
        size_t n = end - pos;
        uint32_t h = levelmap_hash(s, n);
        struct rnode *child = rnode_of(levelmap_find(&node->kids, s, n, h));
        if (child == NULL) {
            if (levelmap_reserve(&node->kids) < 0 || (child = rnode_new(node, s, n, h)) == NULL) {
                rnode_prune(store, node);
                return NULL;
            }
            levelmap_insert(&node->kids, &child->key);
        }
        node = child;
        if (end == len)
            return node;
        pos = end + 1;
    }
}

/* ---- the expiry heap ---- */

/* Put d in slot i and tell its node. */
static void due_place(struct retain_store *store, size_t i, struct rdue d)
{
    store->due[i] = d;
    d.node->topic->due = (uint32_t)(i + 1);
}

/* Restore the heap order for the entry in slot i, which may be too early or too late for it. */
static void due_fix(struct retain_store *store, size_t i)
{
    struct rdue d = store->due[i];
    while (i > 0 && store->due[(i - 1) / 2].at > d.at) {
        due_place(store, i, store->due[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= store->ndue)
            break;
        if (k + 1 < store->ndue && store->due[k + 1].at < store->due[k].at)
            k++;
        if (store->due[k].at >= d.at)
            break;
        due_place(store, i, store->due[k]);
        i = k;
    }
    due_place(store, i, d);
}

/* Room for one more entry, so that setting a deadline cannot fail half-way. -1 when out of
 * memory. */
static int due_reserve(struct retain_store *store)
{
    if (store->ndue < store->due_cap)
        return 0;
    size_t cap = store->due_cap ? store->due_cap * 2 : 64;
    if (cap > UINT32_MAX - 1) /* a slot + 1 must fit in rtopic.due */
        return -1;
    struct rdue *d = realloc(store->due, cap * sizeof(*d));
    if (d == NULL)
        return -1;
    store->due = d;
    store->due_cap = cap;
    return 0;
}

/* Take node's entry out of the heap (it has one). A heap down to a quarter gives half its room
 * back, so a burst of expiring values leaves no lasting footprint (if that fails it just stays). */
static void due_remove(struct retain_store *store, struct rnode *node)
{
    size_t i = node->topic->due - 1;
    node->topic->due = 0;
    struct rdue last = store->due[--store->ndue];
    if (i < store->ndue) {
        store->due[i] = last;
        due_fix(store, i);
    }
    if (store->due_cap > 64 && store->ndue <= store->due_cap / 4) {
        struct rdue *d = realloc(store->due, store->due_cap / 2 * sizeof(*d));
        if (d != NULL) {
            store->due = d;
            store->due_cap /= 2;
        }
    }
}

/* Give node's value the deadline at (0: none); room was reserved if it had no entry yet. */
static void due_set(struct retain_store *store, struct rnode *node, uint64_t at)
{
    uint32_t slot = node->topic->due;
    if (at == 0) {
        if (slot)
            due_remove(store, node);
        return;
    }
    size_t i = slot ? slot - 1 : store->ndue++;
    store->due[i] = (struct rdue){at, node};
    due_fix(store, i);
}

/* ---- the store ---- */

struct retain_store *retain_new(retain_release_fn release)
{
    struct retain_store *store = calloc(1, sizeof(*store));
    if (store == NULL)
        return NULL;
    store->root = rnode_new(NULL, NULL, 0, 0);
    if (store->root == NULL) {
        free(store);
        return NULL;
    }
    store->release = release;
    return store;
}

/* Free every node and release every value, without recursion: pending nodes are threaded into a
 * list through their parent pointers. */
void retain_free(struct retain_store *store)
{
    if (store == NULL)
        return;
    struct rnode *todo = store->root;
    todo->parent = NULL;
    while (todo != NULL) {
        struct rnode *node = todo;
        todo = node->parent;
        uint32_t pos = 0;
        struct levelmap_key *key;
        while ((key = levelmap_next(&node->kids, &pos)) != NULL) {
            rnode_of(key)->parent = todo;
            todo = rnode_of(key);
        }
        if (node->value && store->release)
            store->release(node->value);
        free(node->topic);
        levelmap_clear(&node->kids);
        free(node);
    }
    free(store->due);
    free(store);
}

/* Release node's value, out of the heap too, and prune the branch. */
static void rnode_clear(struct retain_store *store, struct rnode *node)
{
    void *old = node->value;
    if (node->topic->due)
        due_remove(store, node);
    node->value = NULL;
    free(node->topic);
    node->topic = NULL;
    store->count--;
    rnode_prune(store, node);
    if (store->release)
        store->release(old);
}

/* Set or clear topic's retained value. An invalid topic name is refused like a failed allocation
 * (-1, value not taken). */
int retain_set(struct retain_store *store, const char *topic, size_t len, void *value)
{
    return retain_set_until(store, topic, len, value, 0);
}

/* The one set: the heap's room is reserved before anything changes, so a failure leaves the store
 * as it was. */
int retain_set_until(struct retain_store *store, const char *topic, size_t len, void *value,
                     uint64_t expire_at)
{
    if (store == NULL || !topic_name_valid(topic, len))
        return -1;
    if (value == NULL) {
        struct rnode *node = rnode_find(store, topic, len);
        if (node != NULL && node->value != NULL)
            rnode_clear(store, node); /* [MQTT-3.3.1-10], [MQTT-3.3.1-11] */
        return 0;
    }
    if (expire_at && due_reserve(store) < 0)
        return -1;
    struct rnode *node = rnode_make(store, topic, len);
    if (node == NULL)
        return -1;
    if (node->value != NULL) {
        void *old = node->value;
        node->value = value;
        due_set(store, node, expire_at);
        if (store->release)
            store->release(old);
        return 0;
    }
    struct rtopic *copy = malloc(sizeof(*copy) + len + 1);
    if (copy == NULL) {
        rnode_prune(store, node);
        return -1;
    }
    copy->due = 0;
    memcpy(copy->name, topic, len);
    copy->name[len] = '\0';
    node->topic = copy;
    node->key.user = (uint16_t)len;
    node->value = value;
    store->count++;
    due_set(store, node, expire_at);
    return 0;
}

/* The heap's top is the earliest deadline: the sweep looks at nothing that is not due. */
size_t retain_expire(struct retain_store *store, uint64_t now, size_t max, retain_visit_fn fn,
                     void *ctx)
{
    size_t n = 0;
    while (store != NULL && n < max && store->ndue > 0 && store->due[0].at <= now) {
        struct rnode *node = store->due[0].node;
        if (fn != NULL)
            fn(node->topic->name, node->key.user, node->value, ctx);
        rnode_clear(store, node);
        n++;
    }
    return n;
}

void *retain_get(const struct retain_store *store, const char *topic, size_t len)
{
    if (store == NULL || !topic_name_valid(topic, len))
        return NULL;
    struct rnode *node = rnode_find(store, topic, len);
    return node ? node->value : NULL;
}

static void rnode_visit(const struct rnode *node, retain_visit_fn fn, void *ctx)
{
    if (node->value != NULL)
        fn(node->topic->name, node->key.user, node->value, ctx);
}

/* Visit top and all its descendants, preorder, without recursion. With skip_dollar, top's own
 * children whose level starts with '$' are left out (a leading '#' [MQTT-4.7.2-1]). */
static void rnode_visit_subtree(const struct rnode *top, bool skip_dollar, retain_visit_fn fn,
                                void *ctx)
{
    rnode_visit(top, fn, ctx);
    const struct rnode *node = kids_next(top, 0, skip_dollar);
    while (node != NULL) {
        rnode_visit(node, fn, ctx);
        const struct rnode *next = kids_next(node, 0, false);
        while (next == NULL && node != top) {
            const struct rnode *parent = node->parent;
            next = kids_after(parent, node, skip_dollar && parent == top);
            node = parent;
        }
        node = next;
    }
}

/*
 * Visit the values matching filter. An exact level follows one child; '+' goes through every child
 * in turn (coming back up to the '+' level moves to the next sibling); '#' visits the node it is
 * reached from and everything below it. At the root, '+' and '#' skip '$' topics [MQTT-4.7.2-1].
 */
void retain_match(const struct retain_store *store, const char *filter, size_t len,
                  retain_visit_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL || !topic_filter_valid(filter, len))
        return;
    const struct rnode *root = store->root;
    const struct rnode *node = root;
    const struct rnode *next;
    size_t pos = 0; /* start of the filter level node is about to consume; len + 1 when used up */
    size_t end;

enter:
    if (pos > len) {
        rnode_visit(node, fn, ctx);
        goto up;
    }
    end = levelmap_level_end(filter, pos, len);
    if (end - pos == 1 && filter[pos] == '#') {
        rnode_visit_subtree(node, node == root, fn, ctx); /* [MQTT-4.7.1-2] */
        goto up;
    }
    if (end - pos == 1 && filter[pos] == '+')
        next = kids_next(node, 0, node == root);
    else
        next = kids_find(node, filter + pos, end - pos);
    if (next != NULL) {
        node = next;
        pos = end + 1;
        goto enter;
    }
up:
    if (node == root)
        return;
    end = pos - 1;
    pos = levelmap_level_start(filter, end);
    next = node;
    node = node->parent;
    if (end - pos == 1 && filter[pos] == '+') {
        next = kids_after(node, next, node == root);
        if (next != NULL) {
            pos = end + 1;
            node = next;
            goto enter;
        }
    }
    goto up;
}

void retain_foreach(const struct retain_store *store, retain_visit_fn fn, void *ctx)
{
    if (store != NULL && fn != NULL)
        rnode_visit_subtree(store->root, false, fn, ctx);
}

size_t retain_count(const struct retain_store *store)
{
    return store ? store->count : 0;
}
