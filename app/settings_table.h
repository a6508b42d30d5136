/*
 * settings_table.h - the table of every setting (settings_table.c) and what works on one setting at a
 * time: find it by key or short flag, validate a value and store it in struct sol_settings, and
 * --help, which prints the whole table. settings.c walks the three sources (file, environment, flags)
 * with these and checks the settings that only make sense together; nothing outside app/ includes
 * this header.
 */
#ifndef SOL_SETTINGS_TABLE_H
#define SOL_SETTINGS_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "settings.h"

#ifndef SOL_VERSION
#define SOL_VERSION "0.0.0"
#endif

enum opt_type {
    OPT_STR,
    OPT_U16,
    OPT_SIZE,
    OPT_UINT,
    OPT_BOOL,
    OPT_LEVEL,
    OPT_POLICY,
    OPT_SHARE,
    OPT_LIST /* a string each occurrence appends to, space-separated (--listener) */
};

struct settings_opt {
    const char *name; /* config key form, underscores */
    enum opt_type type;
    size_t offset;
    size_t size;            /* OPT_STR: buffer size */
    unsigned long long min; /* numeric range, inclusive */
    unsigned long long max;
    bool nonempty;           /* OPT_STR: an empty value is invalid */
    const char *metavar;     /* for --help */
    const char *help;        /* one line for --help */
    const char *default_txt; /* --help default when it is not a constant */
};

/* Where a value came from, for error messages. */
struct settings_src {
    const char *prefix; /* "" or "config file F line N: " */
    const char *name;   /* "--port", "SOL_PORT" or the key as written */
};

/* Room for one entry per setting in settings.c's per-setting arrays (where each value came from);
 * settings_table.c refuses to compile a table larger than this. */
#define SETTINGS_MAX_OPTS 64

/* Every setting, settings_nopts of them, in --help order. */
extern const struct settings_opt settings_opts[];
extern const size_t settings_nopts;

/* Find a setting by key; '-' and '_' are interchangeable. Returns its index or -1. */
int settings_find(const char *key, size_t len);

/* Index of a setting in settings_opts (the name must exist). */
size_t settings_index(const char *name);

/* The setting a short flag stands for ("-p": "port", "-c": "config"), or NULL. */
const char *settings_short_name(const char *flag);

/* Validate value for opt and store it in cfg. On error writes one line naming src into err and
 * returns -1. */
int settings_set(struct sol_settings *cfg, const struct settings_opt *opt, const char *value,
                 const struct settings_src *src, char *err, size_t errlen);

/* --help: every flag with its one-line description and default. */
void settings_usage(FILE *out, const char *prog);

#endif
