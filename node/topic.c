/*
 * topic.c - topic validation and the subscription tree (MQTT 3.1.1 section 4.7).
 *
 * The tree is a trie with one node per filter level. A node keeps its exact-level children in an
 * open-addressing hash table (linear probing, power-of-two capacity, backward-shift deletion), and
 * its
 * '+' and '#' children in two separate pointers, so matching one topic level costs one hash lookup
 * plus two pointer checks however many children a node has. Subscriptions at a node are an array of
 * (subscriber, qos) sorted by subscriber pointer, so subscribe/unsubscribe are a binary search.
 *
 * Matching walks the trie depth-first without recursion and without allocating: every node knows
 * its parent, and the position in the topic name of the level being matched is recomputed on the
 * way back up, so a topic of 32768 empty levels needs no stack.
 */
#include "topic.h"

#include <stdlib.h>
#include <string.h>

#define TOPIC_MAX_LEN 65535

enum tnode_kind { TNODE_ROOT, TNODE_EXACT, TNODE_PLUS, TNODE_HASH };

struct tsub {
    void *subscriber;
    uint8_t qos;
};

struct tnode {
    struct tnode *parent;
    struct tnode *plus; /* the '+' child */
    struct tnode *hash; /* the '#' child (a leaf: '#' is always last) */
    union {
        struct tnode **table; /* cap > 1: open addressing, power-of-two size */
        struct tnode *one;    /* cap == 1: a single child held inline */
    } kids;                   /* exact children */
    struct tsub *subs;        /* sorted by subscriber pointer */
    uint32_t nkids, cap;
    uint32_t nsubs, subcap;
    uint32_t hval; /* hash of level, for exact children */
    uint16_t len;  /* length of level */
    uint8_t kind;
    char level[]; /* not NUL-terminated */
};

struct topic_tree {
    struct tnode *root;
    size_t nsubs;    /* (filter, subscriber) pairs */
    size_t nfilters; /* nodes with at least one subscription */
};

/* ---- validation and single-filter matching ---- */

/* A PUBLISH topic name: 1..65535 bytes, no wildcard characters. */
bool topic_name_valid(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > TOPIC_MAX_LEN)
        return false;
    return memchr(name, '+', len) == NULL && memchr(name, '#', len) == NULL;
}

/* A SUBSCRIBE filter: 1..65535 bytes, '+' and '#' each fill a whole level, '#' only as the last. */
bool topic_filter_valid(const char *filter, size_t len)
{
    if (filter == NULL || len == 0 || len > TOPIC_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = filter[i];
        if (c != '+' && c != '#')
            continue;
        if (i > 0 && filter[i - 1] != '/')
            return false;
        if (i + 1 < len && filter[i + 1] != '/')
            return false;
        if (c == '#' && i + 1 != len)
            return false;
    }
    return true;
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

/* Match one filter against one name, level by level. Invalid input never matches. */
bool topic_match(const char *filter, size_t flen, const char *name, size_t nlen)
{
    if (!topic_filter_valid(filter, flen) || !topic_name_valid(name, nlen))
        return false;
    if (name[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
        return false; /* [MQTT-4.7.2-1] */
    size_t fi = 0, ni = 0;
    for (;;) {
        size_t fe = level_end(filter, fi, flen);
        if (fe - fi == 1 && filter[fi] == '#')
            return true;
        size_t ne = level_end(name, ni, nlen);
        bool plus = fe - fi == 1 && filter[fi] == '+';
        if (!plus && (fe - fi != ne - ni || memcmp(filter + fi, name + ni, ne - ni) != 0))
            return false;
        if (fe == flen)
            return ne == nlen;
        if (ne == nlen) /* name done, filter not: only a final "/#" still matches [MQTT-4.7.1-2] */
            return flen - fe == 2 && filter[fe + 1] == '#';
        fi = fe + 1;
        ni = ne + 1;
    }
}

/* ---- level hash table ---- */

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

/* The child table. A node with one child holds it inline (cap 1): no allocation and one cache miss
 * less on the many nodes with a single child, like the <id> in "devices/<id>/status". */
static struct tnode **kids_table(struct tnode *node)
{
    return node->cap == 1 ? &node->kids.one : node->kids.table;
}

static bool kid_is(const struct tnode *k, const char *s, size_t n, uint32_t h)
{
    return k->hval == h && k->len == n && memcmp(k->level, s, n) == 0;
}

/* The exact child of node named s[0..n), or NULL. */
static struct tnode *kids_find(const struct tnode *node, const char *s, size_t n, uint32_t h)
{
    if (node->nkids == 0)
        return NULL;
    if (node->cap == 1)
        return kid_is(node->kids.one, s, n, h) ? node->kids.one : NULL;
    uint32_t mask = node->cap - 1;
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        struct tnode *k = node->kids.table[i];
        if (k == NULL)
            return NULL;
        if (kid_is(k, s, n, h))
            return k;
    }
}

/* Put child into a table known to have a free slot. */
static void kids_place(struct tnode **slots, uint32_t cap, struct tnode *child)
{
    uint32_t mask = cap - 1;
    uint32_t i = child->hval & mask;
    while (slots[i] != NULL)
        i = (i + 1) & mask;
    slots[i] = child;
}

/* Move node's children into a table of newcap (at least 4) slots. Returns -1 (nothing changed) on
 * failure. */
static int kids_rehash(struct tnode *node, uint32_t newcap)
{
    struct tnode **slots = calloc(newcap, sizeof(*slots));
    if (slots == NULL)
        return -1;
    struct tnode **old = kids_table(node);
    for (uint32_t i = 0; i < node->cap; i++)
        if (old[i] != NULL)
            kids_place(slots, newcap, old[i]);
    if (node->cap > 1)
        free(old);
    node->kids.table = slots;
    node->cap = newcap;
    return 0;
}

/* Make room for one more exact child: inline for the first, then a table with load at most 3/4. */
static int kids_reserve(struct tnode *node)
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
static void kids_insert(struct tnode *node, struct tnode *child)
{
    kids_place(kids_table(node), node->cap, child);
    node->nkids++;
}

/* Drop node's child table (node has no children left). */
static void kids_clear(struct tnode *node)
{
    if (node->cap > 1)
        free(node->kids.table);
    node->kids.table = NULL;
    node->cap = 0;
}

/* Remove child from node's table (backward-shift deletion keeps probe chains intact). */
static void kids_remove(struct tnode *node, struct tnode *child)
{
    if (node->cap == 1) {
        node->nkids = 0;
        kids_clear(node);
        return;
    }
    struct tnode **slots = node->kids.table;
    uint32_t mask = node->cap - 1;
    uint32_t i = child->hval & mask;
    while (slots[i] != child)
        i = (i + 1) & mask;
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
        (void)kids_rehash(node, node->cap / 4); /* best effort: a failed shrink changes nothing */
}

/* ---- nodes ---- */

static struct tnode *tnode_new(struct tnode *parent, uint8_t kind, const char *s, size_t n,
                               uint32_t h)
{
    struct tnode *node = calloc(1, sizeof(*node) + n);
    if (node == NULL)
        return NULL;
    node->parent = parent;
    node->kind = kind;
    node->hval = h;
    node->len = (uint16_t)n;
    if (n)
        memcpy(node->level, s, n);
    return node;
}

static bool tnode_empty(const struct tnode *node)
{
    return node->nsubs == 0 && node->nkids == 0 && node->plus == NULL && node->hash == NULL;
}

/* Free node and every descendant without recursion: the pending nodes form a list threaded
 * through their parent pointers. */
static void tnode_free_all(struct tnode *top)
{
    struct tnode *todo = top;
    if (top)
        top->parent = NULL;
    while (todo != NULL) {
        struct tnode *node = todo;
        todo = node->parent;
        struct tnode *kids[2] = {node->plus, node->hash};
        for (int k = 0; k < 2; k++) {
            if (kids[k]) {
                kids[k]->parent = todo;
                todo = kids[k];
            }
        }
        struct tnode **slots = kids_table(node);
        for (uint32_t i = 0; i < node->cap; i++) {
            if (slots[i]) {
                slots[i]->parent = todo;
                todo = slots[i];
            }
        }
        kids_clear(node);
        free(node->subs);
        free(node);
    }
}

/* Remove empty nodes from node upwards (never the root). */
static void tree_prune(struct tnode *node)
{
    while (node->kind != TNODE_ROOT && tnode_empty(node)) {
        struct tnode *parent = node->parent;
        if (node->kind == TNODE_PLUS)
            parent->plus = NULL;
        else if (node->kind == TNODE_HASH)
            parent->hash = NULL;
        else
            kids_remove(parent, node);
        kids_clear(node); /* an empty table may be left by a failed insert */
        free(node->subs);
        free(node);
        node = parent;
    }
}

/* Index of subscriber in node->subs, or where it would be inserted; *found tells which. */
static uint32_t subs_search(const struct tnode *node, const void *subscriber, bool *found)
{
    uint32_t lo = 0, hi = node->nsubs;
    uintptr_t key = (uintptr_t)subscriber;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uintptr_t v = (uintptr_t)node->subs[mid].subscriber;
        if (v == key) {
            *found = true;
            return mid;
        }
        if (v < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* ---- the tree ---- */

struct topic_tree *topic_tree_new(void)
{
    struct topic_tree *tree = calloc(1, sizeof(*tree));
    if (tree == NULL)
        return NULL;
    tree->root = tnode_new(NULL, TNODE_ROOT, NULL, 0, 0);
    if (tree->root == NULL) {
        free(tree);
        return NULL;
    }
    return tree;
}

void topic_tree_free(struct topic_tree *tree)
{
    if (tree == NULL)
        return;
    tnode_free_all(tree->root);
    free(tree);
}

/* The child of node for one filter level, created if create is set (NULL if absent or no memory).
 */
static struct tnode *tree_child(struct tnode *node, const char *s, size_t n, bool create)
{
    struct tnode **wild = NULL;
    uint8_t kind = TNODE_EXACT;
    if (n == 1 && s[0] == '+') {
        wild = &node->plus;
        kind = TNODE_PLUS;
    } else if (n == 1 && s[0] == '#') {
        wild = &node->hash;
        kind = TNODE_HASH;
    }
    if (wild != NULL) {
        if (*wild == NULL && create)
            *wild = tnode_new(node, kind, s, n, 0);
        return *wild;
    }
    uint32_t h = level_hash(s, n);
    struct tnode *child = kids_find(node, s, n, h);
    if (child != NULL || !create)
        return child;
    if (kids_reserve(node) < 0)
        return NULL;
    child = tnode_new(node, kind, s, n, h);
    if (child == NULL)
        return NULL;
    kids_insert(node, child);
    return child;
}

/* The node for filter, creating the path if create is set. On allocation failure the partly
 * built path is pruned and NULL returned. */
static struct tnode *tree_path(struct topic_tree *tree, const char *filter, size_t len, bool create)
{
    struct tnode *node = tree->root;
    size_t pos = 0;
    for (;;) {
        size_t end = level_end(filter, pos, len);
        struct tnode *child = tree_child(node, filter + pos, end - pos, create);
        if (child == NULL) {
            if (create)
                tree_prune(node);
            return NULL;
        }
        node = child;
        if (end == len)
            return node;
        pos = end + 1;
    }
}

/* Subscribe: find or build the filter's node, then insert or update the subscriber there. An
 * invalid filter is refused like a failed allocation (-1, nothing changed). */
int topic_tree_subscribe(struct topic_tree *tree, const char *filter, size_t len, void *subscriber,
                         uint8_t qos)
{
    if (tree == NULL || !topic_filter_valid(filter, len))
        return -1;
    struct tnode *node = tree_path(tree, filter, len, true);
    if (node == NULL)
        return -1;
    bool found;
    uint32_t i = subs_search(node, subscriber, &found);
    if (found) {
        node->subs[i].qos = qos; /* [MQTT-3.8.4-3] */
        return 0;
    }
    if (node->nsubs == node->subcap) {
        uint32_t cap = node->subcap ? node->subcap * 2 : 2;
        struct tsub *subs = cap > node->subcap ? realloc(node->subs, cap * sizeof(*subs)) : NULL;
        if (subs == NULL) {
            tree_prune(node);
            return -1;
        }
        node->subs = subs;
        node->subcap = cap;
    }
    memmove(node->subs + i + 1, node->subs + i, (node->nsubs - i) * sizeof(*node->subs));
    node->subs[i].subscriber = subscriber;
    node->subs[i].qos = qos;
    if (node->nsubs++ == 0)
        tree->nfilters++;
    tree->nsubs++;
    return 1;
}

/* Unsubscribe: drop the subscriber from the filter's node and prune what became empty. */
int topic_tree_unsubscribe(struct topic_tree *tree, const char *filter, size_t len,
                           void *subscriber)
{
    if (tree == NULL || !topic_filter_valid(filter, len))
        return 1;
    struct tnode *node = tree_path(tree, filter, len, false);
    if (node == NULL)
        return 1;
    bool found;
    uint32_t i = subs_search(node, subscriber, &found);
    if (!found)
        return 1;
    node->nsubs--;
    memmove(node->subs + i, node->subs + i + 1, (node->nsubs - i) * sizeof(*node->subs));
    tree->nsubs--;
    if (node->nsubs == 0) {
        tree->nfilters--;
        free(node->subs);
        node->subs = NULL;
        node->subcap = 0;
    } else if (node->subcap > 8 && node->nsubs < node->subcap / 4) {
        struct tsub *subs = realloc(node->subs, (node->subcap / 2) * sizeof(*subs));
        if (subs != NULL) { /* a failed shrink keeps the larger array */
            node->subs = subs;
            node->subcap /= 2;
        }
    }
    tree_prune(node);
    return 0;
}

/* Report node's subscriptions; with fn NULL just say whether it has any. */
static bool tnode_report(const struct tnode *node, topic_match_fn fn, void *ctx)
{
    if (node->nsubs == 0)
        return false;
    if (fn == NULL)
        return true;
    for (uint32_t i = 0; i < node->nsubs; i++)
        fn(node->subs[i].subscriber, node->subs[i].qos, ctx);
    return false;
}

/*
 * Depth-first walk of every filter node matching name. At a node that has consumed the levels
 * before pos: its '#' child matches (also when the name is used up: "a/#" matches "a"), then the
 * exact child and the '+' child of the next level are entered in turn. Going back up, the parent's
 * level position is recovered by scanning back to the previous '/', so no stack is needed. With fn
 * NULL, returns true at the first subscription found.
 */
static bool tree_walk(const struct topic_tree *tree, const char *name, size_t len,
                      topic_match_fn fn, void *ctx)
{
    if (tree == NULL || name == NULL || len == 0)
        return false;
    const struct tnode *root = tree->root;
    bool dollar = name[0] == '$'; /* [MQTT-4.7.2-1] no leading wildcard */
    const struct tnode *node = root;
    size_t pos = 0; /* start of the level node is about to consume; len + 1 when name is used up */
    size_t end;

enter:
    if (pos > len) {
        if (tnode_report(node, fn, ctx))
            return true;
        if (node->hash && tnode_report(node->hash, fn, ctx)) /* [MQTT-4.7.1-2] parent level */
            return true;
        goto up;
    }
    if (node->hash && !(dollar && node == root) && tnode_report(node->hash, fn, ctx))
        return true;
    end = level_end(name, pos, len);
    if (node->nkids) {
        const struct tnode *child =
            kids_find(node, name + pos, end - pos, level_hash(name + pos, end - pos));
        if (child) {
            node = child;
            pos = end + 1;
            goto enter;
        }
    }
try_plus:
    if (node->plus && !(dollar && node == root)) {
        node = node->plus;
        pos = end + 1;
        goto enter;
    }
up:
    if (node == root)
        return false;
    end = pos - 1;
    pos = level_start(name, end);
    bool from_exact = node->kind == TNODE_EXACT;
    node = node->parent;
    if (from_exact)
        goto try_plus;
    goto up;
}

void topic_tree_match(const struct topic_tree *tree, const char *name, size_t len,
                      topic_match_fn fn, void *ctx)
{
    if (fn != NULL)
        (void)tree_walk(tree, name, len, fn, ctx);
}

bool topic_tree_has_match(const struct topic_tree *tree, const char *name, size_t len)
{
    return tree_walk(tree, name, len, NULL, NULL);
}

size_t topic_tree_count(const struct topic_tree *tree)
{
    return tree ? tree->nsubs : 0;
}

size_t topic_tree_filter_count(const struct topic_tree *tree)
{
    return tree ? tree->nfilters : 0;
}
