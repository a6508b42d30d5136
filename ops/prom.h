/*
 * prom.h - a writer of the Prometheus text exposition format (0.0.4), for /metrics: every module
 * that has metrics appends its own to one text (ops.h).
 *
 *     struct prom t = {0};
 *     prom_u64(&t, "sol_connections", "gauge", "Clients connected now.", n);
 *     ...
 *     if (t.failed) { free(t.s); return -1; }   // else t.s (t.len bytes) is the caller's
 */
#ifndef SOL_PROM_H
#define SOL_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The text so far. Zero-initialised it is empty. On allocation failure it stops growing and sets
 * failed; whoever created it frees s either way. */
struct prom {
    char *s;
    size_t len, cap;
    bool failed;
};

/* Append printf-style text (a sample line, or several). */
void prom_printf(struct prom *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append the "# HELP" and "# TYPE" lines of a metric whose samples follow. */
void prom_head(struct prom *t, const char *name, const char *type, const char *help);

/* Append a metric with one unlabelled sample. */
void prom_u64(struct prom *t, const char *name, const char *type, const char *help, uint64_t v);

/* Escape a label value (backslash, quote, newline) into out (outlen bytes, cut short if needed). */
void prom_label_escape(const char *in, char *out, size_t outlen);

#endif
