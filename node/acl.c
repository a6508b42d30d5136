/*
 * acl.c - Mosquitto-compatible acl_file.
 *
 * Rules are kept in three groups: the anonymous section (lines before the first "user"), one
 * section per user name (sections of the same name are merged, as Mosquitto does), and the
 * patterns, which apply to every client. A check looks at the client's section and at the patterns:
 * any matching deny refuses, otherwise a matching grant with the requested access allows, otherwise
 * access is refused.
 *
 * For a topic name (PUBLISH, delivery) a rule matches when its filter matches the name. For a
 * SUBSCRIBE the broker passes the requested filter; a rule matches when its filter covers the
 * requested one, i.e. every topic the requested filter can match is also matched by the rule's
 * filter.
 */
#include "acl.h"
#include "buf.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topic.h"

#define ACL_DENY 0u
#define ACL_SUBST_STACK 512

struct acl_rule {
    char *filter;
    size_t len;
    unsigned access; /* ACL_READ | ACL_WRITE, or ACL_DENY */
    bool has_c;      /* pattern with a whole "%c" level */
    bool has_u;      /* pattern with a whole "%u" level */
};

struct acl_rules {
    struct acl_rule *v;
    size_t n, cap;
};

struct acl_user {
    char *name;
    struct acl_rules rules;
};

struct acl {
    struct acl_rules anon;  /* lines before the first "user" line */
    struct acl_user *users; /* sorted by name once loaded */
    size_t nusers, usercap;
    struct acl_rules patterns; /* "pattern" lines, for every client */
};

static void acl_rules_free(struct acl_rules *rules)
{
    for (size_t i = 0; i < rules->n; i++)
        free(rules->v[i].filter);
    free(rules->v);
}

void acl_free(struct acl *acl)
{
    if (acl == NULL)
        return;
    acl_rules_free(&acl->anon);
    acl_rules_free(&acl->patterns);
    for (size_t i = 0; i < acl->nusers; i++) {
        free(acl->users[i].name);
        acl_rules_free(&acl->users[i].rules);
    }
    free(acl->users);
    free(acl);
}

/* True if the filter has a level that is exactly word ("%c" or "%u"). */
static bool acl_has_level(const char *filter, size_t len, const char *word)
{
    size_t start = 0;

    while (start <= len) {
        const char *slash = memchr(filter + start, '/', len - start);
        size_t end = slash != NULL ? (size_t)(slash - filter) : len;

        if (end - start == 2 && memcmp(filter + start, word, 2) == 0)
            return true;
        start = end + 1;
    }
    return false;
}

/* Append a rule (a copy of filter) to rules. Returns -1 on allocation failure. */
static int acl_rules_add(struct acl_rules *rules, const char *filter, unsigned access, bool pattern)
{
    struct acl_rule *r;
    size_t len = strlen(filter);

    size_t cap =
        buf_grow((void **)&rules->v, rules->cap, rules->n + 1, sizeof(*rules->v), SIZE_MAX);
    if (cap == 0)
        return -1;
    rules->cap = cap;
    r = &rules->v[rules->n];
    r->filter = malloc(len + 1);
    if (r->filter == NULL)
        return -1;
    memcpy(r->filter, filter, len + 1);
    r->len = len;
    r->access = access;
    r->has_c = pattern && acl_has_level(filter, len, "%c");
    r->has_u = pattern && acl_has_level(filter, len, "%u");
    rules->n++;
    return 0;
}

/* The rules of user name, creating the section if it is new. NULL on allocation failure. */
static struct acl_rules *acl_user_section(struct acl *acl, const char *name)
{
    struct acl_user *u;

    for (size_t i = 0; i < acl->nusers; i++) {
        if (strcmp(acl->users[i].name, name) == 0)
            return &acl->users[i].rules;
    }
    size_t cap = buf_grow((void **)&acl->users, acl->usercap, acl->nusers + 1, sizeof(*acl->users),
                          SIZE_MAX);
    if (cap == 0)
        return NULL;
    acl->usercap = cap;
    u = &acl->users[acl->nusers];
    memset(u, 0, sizeof(*u));
    u->name = strdup(name);
    if (u->name == NULL)
        return NULL;
    acl->nusers++;
    return &u->rules;
}

static char *acl_trim(char *s)
{
    size_t len;

    while (*s == ' ' || *s == '\t')
        s++;
    len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    return s;
}

/* Split the first space-separated word off s; returns the rest (trimmed, maybe ""). */
static char *acl_word(char *s)
{
    size_t n = strcspn(s, " \t");

    if (s[n] == '\0')
        return s + n;
    s[n] = '\0';
    return acl_trim(s + n + 1);
}

/* Access word to bits; returns false if it is not one. */
static bool acl_access_word(const char *w, unsigned *access)
{
    if (strcmp(w, "read") == 0)
        *access = ACL_READ;
    else if (strcmp(w, "write") == 0)
        *access = ACL_WRITE;
    else if (strcmp(w, "readwrite") == 0)
        *access = ACL_READ | ACL_WRITE;
    else if (strcmp(w, "deny") == 0)
        *access = ACL_DENY;
    else
        return false;
    return true;
}

/* Parse one line. *section is the rules "topic" lines go to. Returns 0, or -1 with reason. */
static int acl_parse_line(struct acl *acl, struct acl_rules **section, char *line, char *reason,
                          size_t rlen)
{
    char *kw = acl_trim(line);
    char *rest, *filter;
    unsigned access = ACL_READ | ACL_WRITE;
    bool pattern;

    if (kw[0] == '\0' || kw[0] == '#')
        return 0;
    rest = acl_word(kw);
    if (strcmp(kw, "user") == 0) {
        if (rest[0] == '\0') {
            snprintf(reason, rlen, "'user' without a name");
            return -1;
        }
        *section = acl_user_section(acl, rest);
        if (*section == NULL) {
            snprintf(reason, rlen, "out of memory");
            return -1;
        }
        return 0;
    }
    if (strcmp(kw, "topic") != 0 && strcmp(kw, "pattern") != 0) {
        snprintf(reason, rlen, "unknown keyword '%s' (expected topic, pattern or user)", kw);
        return -1;
    }
    pattern = kw[0] == 'p';
    if (rest[0] == '\0') {
        snprintf(reason, rlen, "'%s' without a topic filter", kw);
        return -1;
    }
    filter = acl_word(rest);
    if (filter[0] == '\0') {
        /* One word: the filter itself, readwrite; unless it is an access word with no filter. */
        if (acl_access_word(rest, &access)) {
            snprintf(reason, rlen, "'%s %s' without a topic filter", kw, rest);
            return -1;
        }
        filter = rest;
        access = ACL_READ | ACL_WRITE;
    } else if (!acl_access_word(rest, &access)) {
        snprintf(reason, rlen, "unknown access '%s' (expected read, write, readwrite or deny)",
                 rest);
        return -1;
    }
    if (!topic_filter_valid(filter, strlen(filter))) {
        snprintf(reason, rlen, "invalid topic filter '%s'", filter);
        return -1;
    }
    if (acl_rules_add(pattern ? &acl->patterns : *section, filter, access, pattern) != 0) {
        snprintf(reason, rlen, "out of memory");
        return -1;
    }
    return 0;
}

static int acl_user_cmp(const void *a, const void *b)
{
    return strcmp(((const struct acl_user *)a)->name, ((const struct acl_user *)b)->name);
}

/* Read and parse the whole file; sort the user sections for lookup. */
struct acl *acl_load(const char *path, char *err, size_t errlen)
{
    struct acl *acl;
    struct acl_rules *section;
    FILE *f;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned lineno = 0;
    char reason[256];

    acl = calloc(1, sizeof(*acl));
    if (acl == NULL) {
        errf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    section = &acl->anon;
    f = fopen(path, "r");
    if (f == NULL) {
        errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    while ((n = getline(&line, &cap, f)) != -1) {
        lineno++;
        if (memchr(line, '\0', (size_t)n) != NULL) {
            errf(err, errlen, "%s:%u: NUL byte in line", path, lineno);
            goto fail;
        }
        if (acl_parse_line(acl, &section, line, reason, sizeof(reason)) != 0) {
            errf(err, errlen, "%s:%u: %s", path, lineno, reason);
            goto fail;
        }
    }
    if (ferror(f)) {
        errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    free(line);
    fclose(f);
    if (acl->nusers > 1)
        qsort(acl->users, acl->nusers, sizeof(*acl->users), acl_user_cmp);
    return acl;
fail:
    free(line);
    if (f != NULL)
        fclose(f);
    acl_free(acl);
    return NULL;
}

/* Does grant filter g cover requested filter r (every topic r matches, g matches too)? */
static bool acl_filter_covers(const char *g, size_t glen, const char *r, size_t rlen)
{
    size_t gi = 0, ri = 0;
    bool gdone = false, rdone = false, first = true;

    for (;;) {
        const char *gs, *rs;
        size_t ge, re;

        if (gdone)
            return rdone;
        gs = memchr(g + gi, '/', glen - gi);
        ge = gs != NULL ? (size_t)(gs - g) : glen;
        if (ge - gi == 1 && g[gi] == '#') /* covers the rest, even nothing ("a/#" covers "a") */
            return !(first && rlen > 0 && r[0] == '$');
        if (rdone)
            return false;
        rs = memchr(r + ri, '/', rlen - ri);
        re = rs != NULL ? (size_t)(rs - r) : rlen;
        if (re - ri == 1 && r[ri] == '#')
            return false; /* only '#' covers '#' */
        if (ge - gi == 1 && g[gi] == '+') {
            if (first && re > ri && r[ri] == '$')
                return false; /* [MQTT-4.7.2-1]: '$' topics are not matched by a leading wildcard */
        } else if ((re - ri == 1 && r[ri] == '+') || ge - gi != re - ri ||
                   memcmp(g + gi, r + ri, re - ri) != 0) {
            return false;
        }
        gdone = gs == NULL;
        rdone = rs == NULL;
        gi = ge + 1;
        ri = re + 1;
        first = false;
    }
}

/* Does rule filter f apply to topic (a name, or a requested filter when is_filter)? */
static bool acl_matches(const char *f, size_t flen, const char *topic, size_t tlen, bool is_filter)
{
    if (is_filter)
        return topic_filter_valid(topic, tlen) && acl_filter_covers(f, flen, topic, tlen);
    return topic_match(f, flen, topic, tlen);
}

/* Fold one matching rule into the verdict: returns true if it is a deny. */
static bool acl_apply(const struct acl_rule *r, unsigned access, bool *granted)
{
    if (r->access == ACL_DENY)
        return true;
    if ((r->access & access) == access)
        *granted = true;
    return false;
}

/*
 * Match a pattern rule with %c/%u levels replaced. A value containing '/' cannot equal one level,
 * so the rule does not match (as in Mosquitto 2). Returns 1 match, 0 no match, -1 allocation
 * failure.
 */
static int acl_pattern_matches(const struct acl_rule *r, const char *client_id,
                               const char *username, const char *topic, size_t tlen, bool is_filter)
{
    char stack[ACL_SUBST_STACK];
    char *buf = stack;
    size_t idlen = r->has_c ? strlen(client_id) : 0;
    size_t ulen = r->has_u ? strlen(username) : 0;
    size_t need = r->len + 1, out = 0, start = 0;
    int rc;

    if (!r->has_c && !r->has_u)
        return acl_matches(r->filter, r->len, topic, tlen, is_filter);
    if ((r->has_c && memchr(client_id, '/', idlen) != NULL) ||
        (r->has_u && memchr(username, '/', ulen) != NULL))
        return 0;
    /* Each 2-byte %c/%u level grows by at most the value's length. */
    need += (r->len / 2 + 1) * (idlen > ulen ? idlen : ulen);
    if (need > sizeof(stack)) {
        buf = malloc(need);
        if (buf == NULL)
            return -1;
    }
    while (start <= r->len) {
        const char *slash = memchr(r->filter + start, '/', r->len - start);
        size_t end = slash != NULL ? (size_t)(slash - r->filter) : r->len;
        const char *lev = r->filter + start;
        size_t levlen = end - start;

        if (r->has_c && levlen == 2 && memcmp(lev, "%c", 2) == 0) {
            lev = client_id;
            levlen = idlen;
        } else if (r->has_u && levlen == 2 && memcmp(lev, "%u", 2) == 0) {
            lev = username;
            levlen = ulen;
        }
        memcpy(buf + out, lev, levlen);
        out += levlen;
        if (slash != NULL)
            buf[out++] = '/';
        start = end + 1;
    }
    rc = acl_matches(buf, out, topic, tlen, is_filter) ? 1 : 0;
    if (buf != stack)
        free(buf);
    return rc;
}

/* Binary search of the user sections. */
static const struct acl_rules *acl_find_user(const struct acl *acl, const char *username)
{
    size_t lo = 0, hi = acl->nusers;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(username, acl->users[mid].name);

        if (c == 0)
            return &acl->users[mid].rules;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* The client's own section plus the patterns: a matching deny refuses, else a grant allows. */
bool acl_check(const struct acl *acl, const char *client_id, const char *username,
               const char *topic, size_t topic_len, enum acl_access access)
{
    const struct acl_rules *rules;
    bool is_filter, granted = false;

    if (acl == NULL)
        return true;
    if (topic == NULL || topic_len == 0)
        return false;
    is_filter = memchr(topic, '+', topic_len) != NULL || memchr(topic, '#', topic_len) != NULL;
    rules = username != NULL ? acl_find_user(acl, username) : &acl->anon;
    for (size_t i = 0; rules != NULL && i < rules->n; i++) {
        const struct acl_rule *r = &rules->v[i];

        if (acl_matches(r->filter, r->len, topic, topic_len, is_filter) &&
            acl_apply(r, (unsigned)access, &granted))
            return false;
    }
    if (acl->patterns.n == 0)
        return granted;
    /* A wildcard in the id or name would widen a pattern; Mosquitto refuses such clients. */
    if ((username != NULL && strpbrk(username, "+#") != NULL) ||
        (client_id != NULL && strpbrk(client_id, "+#") != NULL))
        return false;
    for (size_t i = 0; i < acl->patterns.n; i++) {
        const struct acl_rule *r = &acl->patterns.v[i];
        int m;

        if ((r->has_u && username == NULL) || (r->has_c && client_id == NULL))
            continue;
        m = acl_pattern_matches(r, client_id, username, topic, topic_len, is_filter);
        if (m < 0)
            return false; /* out of memory: fail closed */
        if (m == 1 && acl_apply(r, (unsigned)access, &granted))
            return false;
    }
    return granted;
}
