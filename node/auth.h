/*
 * auth.h - password file compatible with mosquitto_passwd: "user:$7$ITER$SALT_B64$HASH_B64" lines
 * (PBKDF2-SHA512, OpenSSL does the crypto) and "$6$SALT_B64$HASH_B64" (salted SHA512) lines.
 */
#ifndef SOL_AUTH_H
#define SOL_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct auth;

/* Load the file. Returns NULL and writes "FILE:LINE: reason" into err on error. */
struct auth *auth_load(const char *path, char *err, size_t errlen);
void auth_free(struct auth *auth);

/* True if user exists and password (binary, len bytes) matches its hash. Constant-time compare. */
bool auth_check(const struct auth *auth, const char *username, const char *password, size_t len);

#endif
