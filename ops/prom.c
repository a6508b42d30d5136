/*
 * prom.c - the Prometheus text writer (prom.h).
 */
#include "prom.h"

#include <stdarg.h>
#include <stdio.h>

#include "buf.h"

/* Format in place; when the text does not fit, grow by doubling and format again. */
void prom_printf(struct prom *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if (t->s && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = buf_grow((void **)&t->s, t->cap, t->len + (size_t)n + 1, 1, SIZE_MAX);
        if (!cap) {
            t->failed = true;
            return;
        }
        t->cap = cap;
    }
}

/* Node names are plain, but a label value is the scraper's to parse: be safe. */
void prom_label_escape(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (; *in && o + 3 < outlen; in++) {
        if (*in == '\\' || *in == '"' || *in == '\n') {
            out[o++] = '\\';
            out[o++] = *in == '\n' ? 'n' : *in;
        } else {
            out[o++] = *in;
        }
    }
    out[o] = '\0';
}

/* Every metric starts so; one place keeps the two lines in the format's order. */
void prom_head(struct prom *t, const char *name, const char *type, const char *help)
{
    prom_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Most metrics are one counter or gauge without labels. */
void prom_u64(struct prom *t, const char *name, const char *type, const char *help, uint64_t v)
{
    prom_head(t, name, type, help);
    prom_printf(t, "%s %llu\n", name, (unsigned long long)v);
}
