/*
 * retain.c - the retained-message store: a level trie from topic name to value.
 *
 * Each node keeps its children in an open-addressing hash table (linear probing, power-of-two
 * capacity, backward-shift deletion), so a topic level with 100,000 siblings costs one hash lookup.
 * A node holding a value also holds its full topic, NUL-terminated, for the visit callback.
 *
 * Lookups by filter walk the trie without recursion: nodes know their parent, a '+' level moves on
 * to the next sibling by finding the current child's slot again, and the filter position of the
 * parent level is recovered by scanning back to the previous '/'. The visit callback must not
 * modify the store.
 */
#include "retain.h"
#include "topic.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct rnode {
    struct rnode *parent;
    union {
        struct rnode **table; /* cap > 1: open addressing, power-of-two size */
        struct rnode *one;    /* cap == 1: a single child held inline */
    } kids;
    void *value; /* NULL: no retained message here */
    char *topic; /* full topic, NUL-terminated, while value is set */
    uint32_t nkids, cap;
    uint32_t hval;
    uint16_t len;  /* length of level */
    uint16_t tlen; /* length of topic */
    char level[];  /* not NUL-terminated */
};

struct retain_store {
    struct rnode *root;
    retain_release_fn release;
    size_t count;
};

/* ---- level hash table (same scheme as topic.c) ---- */

/* FNV-1a with a final avalanche, so the low bits used as the table index are well mixed. */
static uint32_t level_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

/* End (exclusive) of the level starting at pos: the next '/' or len. */
static size_t level_end(const char *s, size_t pos, size_t len)
{
    const char *slash = pos < len ? memchr(s + pos, '/', len - pos) : NULL;
    return slash ? (size_t)(slash - s) : len;
}

/* Start of the level that ends at end: just after the previous '/', or 0. */
static size_t level_start(const char *s, size_t end)
{
    while (end > 0 && s[end - 1] != '/')
        end--;
    return end;
}

/* The child table. A node with one child holds it inline (cap 1): no allocation and one cache miss
 * less on the many nodes with a single child. */
static struct rnode *const *kids_table(const struct rnode *node)
{
    return node->cap == 1 ? &node->kids.one : node->kids.table;
}

static bool kid_is(const struct rnode *k, const char *s, size_t n, uint32_t h)
{
    return k->hval == h && k->len == n && memcmp(k->level, s, n) == 0;
}

/* The child of node named s[0..n), or NULL. */
static struct rnode *kids_find(const struct rnode *node, const char *s, size_t n, uint32_t h)
{
    if (node->nkids == 0)
        return NULL;
    if (node->cap == 1)
        return kid_is(node->kids.one, s, n, h) ? node->kids.one : NULL;
    uint32_t mask = node->cap - 1;
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        struct rnode *k = node->kids.table[i];
        if (k == NULL)
            return NULL;
        if (kid_is(k, s, n, h))
            return k;
    }
}

/* Slot index of child in node's table (child must be there). */
static uint32_t kids_slot(const struct rnode *node, const struct rnode *child)
{
    struct rnode *const *slots = kids_table(node);
    uint32_t mask = node->cap - 1;
    uint32_t i = child->hval & mask;
    while (slots[i] != child)
        i = (i + 1) & mask;
    return i;
}

/* Put child into a table known to have a free slot. */
static void kids_place(struct rnode **slots, uint32_t cap, struct rnode *child)
{
    uint32_t mask = cap - 1;
    uint32_t i = child->hval & mask;
    while (slots[i] != NULL)
        i = (i + 1) & mask;
    slots[i] = child;
}

/* Move node's children into a table of newcap (at least 4) slots. Returns -1 (nothing changed) on
 * failure. */
static int kids_rehash(struct rnode *node, uint32_t newcap)
{
    struct rnode **slots = calloc(newcap, sizeof(*slots));
    if (slots == NULL)
        return -1;
    struct rnode *const *old = kids_table(node);
    for (uint32_t i = 0; i < node->cap; i++)
        if (old[i] != NULL)
            kids_place(slots, newcap, old[i]);
    if (node->cap > 1)
        free(node->kids.table);
    node->kids.table = slots;
    node->cap = newcap;
    return 0;
}

/* Make room for one more child: inline for the first, then a table with load at most 3/4. */
static int kids_reserve(struct rnode *node)
{
    if (node->cap == 0 || (node->cap == 1 && node->nkids == 0)) {
        node->cap = 1;
        node->kids.one = NULL;
        return 0;
    }
    if (node->cap == 1)
        return kids_rehash(node, 4);
    if ((uint64_t)(node->nkids + 1) * 4 <= (uint64_t)node->cap * 3)
        return 0;
    if (node->cap >= (1u << 30))
        return -1;
    return kids_rehash(node, node->cap * 2);
}

/* Add child after a successful kids_reserve. */
static void kids_insert(struct rnode *node, struct rnode *child)
{
    kids_place(node->cap == 1 ? &node->kids.one : node->kids.table, node->cap, child);
    node->nkids++;
}

/* Drop node's child table (node has no children left). */
static void kids_clear(struct rnode *node)
{
    if (node->cap > 1)
        free(node->kids.table);
    node->kids.table = NULL;
    node->cap = 0;
}

/* Remove child from node's table with backward-shift deletion; shrink a sparse table. */
static void kids_remove(struct rnode *node, struct rnode *child)
{
    if (node->cap == 1) {
        node->nkids = 0;
        kids_clear(node);
        return;
    }
    struct rnode **slots = node->kids.table;
    uint32_t mask = node->cap - 1;
    uint32_t i = kids_slot(node, child);
    for (uint32_t j = (i + 1) & mask; slots[j] != NULL; j = (j + 1) & mask) {
        uint32_t home = slots[j]->hval & mask;
        /* slots[j] may fill the hole at i unless its home lies cyclically in (i, j]. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            slots[i] = slots[j];
            i = j;
        }
    }
    slots[i] = NULL;
    node->nkids--;
    if (node->nkids == 0)
        kids_clear(node);
    else if (node->cap > 16 && node->nkids < node->cap / 8)
        (void)kids_rehash(node, node->cap / 4); /* best effort */
}

/* First child of node in slot order from slot i on, skipping '$' levels if asked; or NULL. */
static struct rnode *kids_next(const struct rnode *node, uint32_t i, bool skip_dollar)
{
    struct rnode *const *slots = kids_table(node);
    for (; i < node->cap; i++) {
        struct rnode *k = slots[i];
        if (k != NULL && !(skip_dollar && k->len > 0 && k->level[0] == '$'))
            return k;
    }
    return NULL;
}

/* The sibling after child in its parent's slot order. */
static struct rnode *kids_after(const struct rnode *node, const struct rnode *child,
                                bool skip_dollar)
{
    return kids_next(node, kids_slot(node, child) + 1, skip_dollar);
}

/* ---- nodes ---- */

static struct rnode *rnode_new(struct rnode *parent, const char *s, size_t n, uint32_t h)
{
    struct rnode *node = calloc(1, sizeof(*node) + n);
    if (node == NULL)
        return NULL;
    node->parent = parent;
    node->hval = h;
    node->len = (uint16_t)n;
    if (n)
        memcpy(node->level, s, n);
    return node;
}

/* Remove empty nodes from node upwards (never the root). */
static void rnode_prune(struct retain_store *store, struct rnode *node)
{
    while (node != store->root && node->value == NULL && node->nkids == 0) {
        struct rnode *parent = node->parent;
        kids_remove(parent, node);
        kids_clear(node); /* an empty table may be left by a failed insert */
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
        size_t end = level_end(topic, pos, len);
        const char *s = topic + pos;
        node = kids_find(node, s, end - pos, level_hash(s, end - pos));
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
        size_t end = level_end(topic, pos, len);
        const char *s = topic + pos;
        size_t n = end - pos;
        uint32_t h = level_hash(s, n);
        struct rnode *child = kids_find(node, s, n, h);
        if (child == NULL) {
            if (kids_reserve(node) < 0 || (child = rnode_new(node, s, n, h)) == NULL) {
                rnode_prune(store, node);
                return NULL;
            }
            kids_insert(node, child);
        }
        node = child;
        if (end == len)
            return node;
        pos = end + 1;
    }
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
        struct rnode *const *slots = kids_table(node);
        for (uint32_t i = 0; i < node->cap; i++) {
            if (slots[i]) {
                slots[i]->parent = todo;
                todo = slots[i];
            }
        }
        if (node->value && store->release)
            store->release(node->value);
        free(node->topic);
        kids_clear(node);
        free(node);
    }
    free(store);
}

/* Clear topic: release its value and prune the branch. Absent topics are fine. */
static void retain_clear(struct retain_store *store, const char *topic, size_t len)
{
    struct rnode *node = rnode_find(store, topic, len);
    if (node == NULL || node->value == NULL)
        return;
    void *old = node->value;
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
    if (store == NULL || !topic_name_valid(topic, len))
        return -1;
    if (value == NULL) {
        retain_clear(store, topic, len); /* [MQTT-3.3.1-10], [MQTT-3.3.1-11] */
        return 0;
    }
    struct rnode *node = rnode_make(store, topic, len);
    if (node == NULL)
        return -1;
    if (node->value != NULL) {
        void *old = node->value;
        node->value = value;
        if (store->release)
            store->release(old);
        return 0;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        rnode_prune(store, node);
        return -1;
    }
    memcpy(copy, topic, len);
    copy[len] = '\0';
    node->topic = copy;
    node->tlen = (uint16_t)len;
    node->value = value;
    store->count++;
    return 0;
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
        fn(node->topic, node->tlen, node->value, ctx);
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
    end = level_end(filter, pos, len);
    if (end - pos == 1 && filter[pos] == '#') {
        rnode_visit_subtree(node, node == root, fn, ctx); /* [MQTT-4.7.1-2] */
        goto up;
    }
    if (end - pos == 1 && filter[pos] == '+')
        next = kids_next(node, 0, node == root);
    else
        next = kids_find(node, filter + pos, end - pos, level_hash(filter + pos, end - pos));
    if (next != NULL) {
        node = next;
        pos = end + 1;
        goto enter;
    }
up:
    if (node == root)
        return;
    end = pos - 1;
    pos = level_start(filter, end);
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
