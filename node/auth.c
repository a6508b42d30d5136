/*
 * auth.c - mosquitto_passwd password files.
 *
 * Each line is "user:$7$ITERATIONS$SALT$HASH" (PBKDF2-HMAC-SHA512, 64-byte key) or
 * "user:$6$SALT$HASH" (SHA512 of password then salt), salt and hash in padded base64. Lines
 * starting with '#' and blank lines are skipped, like Mosquitto does; anything else malformed is an
 * error with its line number. Entries are sorted by name so a check is a binary search, and hashes
 * are compared in constant time.
 */
#include "auth.h"
#include "buf.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define AUTH_HASH_LEN 64 /* SHA512 */
#define AUTH_SALT_MAX 64
#define AUTH_B64_MAX 128 /* encoded length of anything we accept */

enum auth_kind { AUTH_SHA512 = 6, AUTH_PBKDF2 = 7 };

struct auth_entry {
    char *user;
    enum auth_kind kind;
    int iterations;
    size_t salt_len;
    unsigned char salt[AUTH_SALT_MAX];
    unsigned char hash[AUTH_HASH_LEN];
};

struct auth {
    struct auth_entry *v; /* sorted by user */
    size_t n, cap;
};

void auth_free(struct auth *auth)
{
    if (auth == NULL)
        return;
    for (size_t i = 0; i < auth->n; i++) {
        OPENSSL_cleanse(auth->v[i].hash, sizeof(auth->v[i].hash));
        free(auth->v[i].user);
    }
    free(auth->v);
    free(auth);
}

/*
 * Decode padded base64 of len chars into out (at most max bytes). EVP_DecodeBlock counts the
 * padding as zero bytes, so the '=' are subtracted. Returns the decoded length, or -1.
 */
static int auth_b64_decode(const char *in, size_t len, unsigned char *out, size_t max)
{
    unsigned char buf[AUTH_B64_MAX / 4 * 3];
    int n, pad = 0;

    if (len == 0 || len % 4 != 0 || len > AUTH_B64_MAX)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '=') {
            if (i + 2 < len) /* padding only in the last two places */
                return -1;
            pad++;
        } else if (pad > 0 || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                (c >= '0' && c <= '9') || c == '+' || c == '/')) {
            return -1;
        }
    }
    n = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)len);
    if (n < 0 || n - pad < 0 || (size_t)(n - pad) > max)
        return -1;
    memcpy(out, buf, (size_t)(n - pad));
    return n - pad;
}

/* Split off the next '$'-terminated field of *s; NULL if there is none. */
static char *auth_field(char **s)
{
    char *start = *s;
    char *end = strchr(start, '$');

    if (end == NULL)
        return NULL;
    *end = '\0';
    *s = end + 1;
    return start;
}

/* Parse "$7$ITER$SALT$HASH" or "$6$SALT$HASH" into e. Returns 0, or -1 with reason. */
static int auth_parse_hash(char *h, struct auth_entry *e, char *reason, size_t rlen)
{
    char *kind, *iter = NULL, *salt, *hash;
    int n;

    if (h[0] != '$') {
        snprintf(reason, rlen, "password is not a mosquitto_passwd hash (expected $6$ or $7$)");
        return -1;
    }
    h++;
    kind = auth_field(&h);
    if (kind == NULL || (strcmp(kind, "6") != 0 && strcmp(kind, "7") != 0)) {
        snprintf(reason, rlen, "unsupported hash type (expected $6$ or $7$)");
        return -1;
    }
    e->kind = kind[0] == '7' ? AUTH_PBKDF2 : AUTH_SHA512;
    if (e->kind == AUTH_PBKDF2) {
        char *end;
        long v;

        iter = auth_field(&h);
        if (iter == NULL || iter[0] < '0' || iter[0] > '9') {
            snprintf(reason, rlen, "missing iteration count");
            return -1;
        }
        errno = 0;
        v = strtol(iter, &end, 10);
        if (errno != 0 || *end != '\0' || v < 1 || v > INT_MAX) {
            snprintf(reason, rlen, "invalid iteration count '%s'", iter);
            return -1;
        }
        e->iterations = (int)v;
    }
    salt = auth_field(&h);
    hash = h;
    if (salt == NULL) {
        snprintf(reason, rlen, "missing salt or hash");
        return -1;
    }
    n = auth_b64_decode(salt, strlen(salt), e->salt, sizeof(e->salt));
    if (n != 12 && n != AUTH_HASH_LEN) { /* the salt sizes Mosquitto writes and accepts */
        snprintf(reason, rlen, "invalid salt (expected base64 of 12 or 64 bytes)");
        return -1;
    }
    e->salt_len = (size_t)n;
    n = auth_b64_decode(hash, strlen(hash), e->hash, sizeof(e->hash));
    if (n != AUTH_HASH_LEN) {
        snprintf(reason, rlen, "invalid hash (expected base64 of 64 bytes)");
        return -1;
    }
    return 0;
}

/* Parse one line, appending an entry. Returns 0 (also for skipped lines) or -1 with reason. */
static int auth_parse_line(struct auth *auth, char *line, char *reason, size_t rlen)
{
    size_t len = strlen(line);
    char *colon, *user, *hash;
    struct auth_entry *e;

    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                       line[len - 1] == '\t'))
        line[--len] = '\0';
    if (len == 0 || line[0] == '#')
        return 0;
    colon = strchr(line, ':');
    if (colon == NULL) {
        snprintf(reason, rlen, "missing ':' between user name and password hash");
        return -1;
    }
    *colon = '\0';
    user = line;
    hash = colon + 1;
    if (user[0] == '\0') {
        snprintf(reason, rlen, "empty user name");
        return -1;
    }
    size_t cap = buf_grow((void **)&auth->v, auth->cap, auth->n + 1, sizeof(*auth->v), SIZE_MAX);
    if (cap == 0) {
        snprintf(reason, rlen, "out of memory");
        return -1;
    }
    auth->cap = cap;
    e = &auth->v[auth->n];
    memset(e, 0, sizeof(*e));
    if (auth_parse_hash(hash, e, reason, rlen) != 0)
        return -1;
    e->user = strdup(user);
    if (e->user == NULL) {
        snprintf(reason, rlen, "out of memory");
        return -1;
    }
    auth->n++;
    return 0;
}

static int auth_entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct auth_entry *)a)->user, ((const struct auth_entry *)b)->user);
}

/* Read the whole file, then sort the entries and refuse duplicate names. */
struct auth *auth_load(const char *path, char *err, size_t errlen)
{
    struct auth *auth;
    FILE *f;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned lineno = 0;
    char reason[256];

    auth = calloc(1, sizeof(*auth));
    if (auth == NULL) {
        errf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
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
        if (auth_parse_line(auth, line, reason, sizeof(reason)) != 0) {
            errf(err, errlen, "%s:%u: %s", path, lineno, reason);
            goto fail;
        }
    }
    if (ferror(f)) {
        errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    if (auth->n > 1)
        qsort(auth->v, auth->n, sizeof(*auth->v), auth_entry_cmp);
    for (size_t i = 1; i < auth->n; i++) {
        if (strcmp(auth->v[i - 1].user, auth->v[i].user) == 0) {
            errf(err, errlen, "%s: user '%s' appears more than once", path, auth->v[i].user);
            goto fail;
        }
    }
    if (line != NULL)
        OPENSSL_cleanse(line, cap);
    free(line);
    fclose(f);
    return auth;
fail:
    if (line != NULL)
        OPENSSL_cleanse(line, cap);
    free(line);
    if (f != NULL)
        fclose(f);
    auth_free(auth);
    return NULL;
}

/* Hash password the way entry e was hashed. Returns false on a crypto failure. */
static bool auth_hash(const struct auth_entry *e, const char *password, size_t len,
                      unsigned char out[AUTH_HASH_LEN])
{
    EVP_MD_CTX *ctx;
    unsigned int outlen = 0;
    bool ok;

    if (len > INT_MAX)
        return false;
    if (e->kind == AUTH_PBKDF2)
        return PKCS5_PBKDF2_HMAC(password, (int)len, e->salt, (int)e->salt_len, e->iterations,
                                 EVP_sha512(), AUTH_HASH_LEN, out) == 1;
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return false;
    ok = EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 &&
         EVP_DigestUpdate(ctx, password, len) == 1 &&
         EVP_DigestUpdate(ctx, e->salt, e->salt_len) == 1 &&
         EVP_DigestFinal_ex(ctx, out, &outlen) == 1 && outlen == AUTH_HASH_LEN;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* Look the user up, hash the password with its salt and compare in constant time. */
bool auth_check(const struct auth *auth, const char *username, const char *password, size_t len)
{
    const struct auth_entry *e = NULL;
    unsigned char out[AUTH_HASH_LEN];
    size_t lo = 0, hi;
    bool ok;

    if (auth == NULL || username == NULL)
        return false;
    if (password == NULL) {
        password = "";
        len = 0;
    }
    hi = auth->n;
    while (lo < hi && e == NULL) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(username, auth->v[mid].user);

        if (c == 0)
            e = &auth->v[mid];
        else if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (e == NULL && auth->n == 0)
        return false;
    /* An unknown user costs one hash too (with the first entry's parameters), so response time does
     * not tell which user names exist. */
    ok = auth_hash(e != NULL ? e : &auth->v[0], password, len, out) && e != NULL &&
         CRYPTO_memcmp(out, e->hash, AUTH_HASH_LEN) == 0;
    OPENSSL_cleanse(out, sizeof(out));
    return ok;
}
