/*
 * acl.h - Mosquitto-compatible acl_file: "topic [read|write|readwrite|deny] FILTER", "user NAME" sections,
 * "pattern [access] FILTER" lines (applied to every client) with %c (client id) and %u (username).
 * Lines before any "user" line apply to anonymous clients. A matching deny wins over any grant.
 * With no ACL loaded every access is allowed.
 */
#ifndef SOL_ACL_H
#define SOL_ACL_H

#include <stdbool.h>
#include <stddef.h>

enum acl_access { ACL_READ = 1, ACL_WRITE = 2 };

struct acl;

/* Load the file. Returns NULL and writes "FILE:LINE: reason" into err on a syntax error or I/O failure. */
struct acl *acl_load(const char *path, char *err, size_t errlen);
void acl_free(struct acl *acl);

/* May this client read (subscribe/receive) or write (publish) topic? For a SUBSCRIBE the broker passes
 * the filter as topic; a filter is allowed when an ACL filter covers it. username NULL = anonymous. */
bool acl_check(const struct acl *acl, const char *client_id, const char *username,
               const char *topic, size_t topic_len, enum acl_access access);

#endif
