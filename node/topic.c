/*
 * topic.c - topic validation and the subscription tree (MQTT 3.1.1 section 4.7).
 *
 * The tree is a trie with one node per filter level. A node keeps its exact-level children in a
 * levelmap (an open-addressing hash table, see levelmap.h), and its '+' and '#' children in two
 * separate pointers, so matching one topic level costs one hash lookup plus two pointer checks
 * however many children a node has. Subscriptions at a node are an array of
 * (subscriber, qos) sorted by subscriber pointer, so subscribe/unsubscribe are a binary search.
 *
 * Matching walks the trie depth-first without recursion and without allocating: every node knows
 * its parent, and the position in the topic name of the level being matched is recomputed on the
 * way back up, so a topic of 32768 empty levels needs no stack.
 */
#include "topic.h"
#include "buf.h"
#include "levelmap.h"

#include <stddef.h>
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
    struct tnode *plus;   /* the '+' child */
    struct tnode *hash;   /* the '#' child (a leaf: '#' is always last) */
    struct levelmap kids; /* exact children */
    struct tsub *subs;    /* sorted by subscriber pointer */
    uint32_t nsubs, subcap;
    struct levelmap_key key; /* this node's level (bytes follow); key.user is its tnode_kind */
};
LEVELMAP_KEY_LAST(struct tnode, key);

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

/* Match one filter against one name, level by level. Invalid input never matches. */
bool topic_match(const char *filter, size_t flen, const char *name, size_t nlen)
{
    if (!topic_filter_valid(filter, flen) || !topic_name_valid(name, nlen))
        return false;
    if (name[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
        return false; /* [MQTT-4.7.2-1] */
    size_t fi = 0, ni = 0;
    for (;;) {
        size_t fe = levelmap_level_end(filter, fi, flen);
        if (fe - fi == 1 && filter[fi] == '#')
            return true;
        size_t ne = levelmap_level_end(name, ni, nlen);
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

/* ---- children ---- */

/* The node that embeds key k, or NULL. */
static inline struct tnode *tnode_of(struct levelmap_key *k)
{
    return k ? (struct tnode *)((char *)k - offsetof(struct tnode, key)) : NULL;
}

/* The exact child of node named s[0..n) with hash h, or NULL. */
static inline struct tnode *kids_find(const struct tnode *node, const char *s, size_t n, uint32_t h)
{
    return tnode_of(levelmap_find(&node->kids, s, n, h));
}

/* ---- nodes ---- */

static inline uint8_t tnode_kind(const struct tnode *node)
{
    return (uint8_t)node->key.user;
}

static struct tnode *tnode_new(struct tnode *parent, uint8_t kind, const char *s, size_t n,
                               uint32_t h)
{
    struct tnode *node = calloc(1, sizeof(*node) + n);
    if (node == NULL)
        return NULL;
    node->parent = parent;
    levelmap_key_set(&node->key, s, n, h);
    node->key.user = kind;
    return node;
}

static bool tnode_empty(const struct tnode *node)
{
    return node->nsubs == 0 && node->kids.count == 0 && node->plus == NULL && node->hash == NULL;
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
        uint32_t pos = 0;
        struct levelmap_key *key;
        while ((key = levelmap_next(&node->kids, &pos)) != NULL) {
            tnode_of(key)->parent = todo;
            todo = tnode_of(key);
        }
        levelmap_clear(&node->kids);
        free(node->subs);
        free(node);
    }
}

/* Remove empty nodes from node upwards (never the root). */
static void tree_prune(struct tnode *node)
{
    while (tnode_kind(node) != TNODE_ROOT && tnode_empty(node)) {
        struct tnode *parent = node->parent;
        if (tnode_kind(node) == TNODE_PLUS)
            parent->plus = NULL;
        else if (tnode_kind(node) == TNODE_HASH)
            parent->hash = NULL;
        else
            levelmap_remove(&parent->kids, &node->key);
        levelmap_clear(&node->kids); /* an empty table may be left by a failed insert */
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
    uint32_t h = levelmap_hash(s, n);
    struct tnode *child = kids_find(node, s, n, h);
    if (child != NULL || !create)
        return child;
    if (levelmap_reserve(&node->kids) < 0)
        return NULL;
    child = tnode_new(node, kind, s, n, h);
    if (child == NULL)
        return NULL;
    levelmap_insert(&node->kids, &child->key);
    return child;
}

/* The node for filter, creating the path if create is set. On allocation failure the partly
 * built path is pruned and NULL returned. */
static struct tnode *tree_path(struct topic_tree *tree, const char *filter, size_t len, bool create)
{
    struct tnode *node = tree->root;
    size_t pos = 0;
    for (;;) {
        size_t end = levelmap_level_end(filter, pos, len);
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
    /* Most filters have one or two subscribers: a first block of two. */
    size_t cap = buf_grow_from((void **)&node->subs, node->subcap, node->nsubs + 1,
                               sizeof(*node->subs), UINT32_MAX, 2);
    if (cap == 0) {
        tree_prune(node);
        return -1;
    }
    node->subcap = (uint32_t)cap;
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
    size_t end = 0;

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
    end = levelmap_level_end(name, pos, len);
    if (node->kids.count) {
        const struct tnode *child =
            kids_find(node, name + pos, end - pos, levelmap_hash(name + pos, end - pos));
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
    /* Going back up only matters at an ancestor with a '+' child still to try (entered from its
     * exact child). Find it through the parent pointers first and scan the name back just that
     * many levels: with no such ancestor, as for most topics, the walk ends here with no scan. */
    for (size_t levels = 1;; levels++) {
        if (node == root)
            return false;
        bool from_exact = tnode_kind(node) == TNODE_EXACT;
        node = node->parent;
        if (from_exact && node->plus && !(dollar && node == root)) {
            while (levels-- > 0) {
                end = pos - 1;
                pos = levelmap_level_start(name, end);
            }
            goto try_plus;
        }
    }
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
