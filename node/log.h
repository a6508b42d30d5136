/*
 * log.h - leveled logging to stderr. The threshold lives in a struct logger owned by struct broker (no global
 * state); modules that log are handed a const pointer to it.
 */
#ifndef SOL_LOG_H
#define SOL_LOG_H

#include <stddef.h>

#include "config.h"

struct logger {
    enum log_level level;
};

/* Write one line "2026-11-27T08:00:00.123Z LEVEL message" to stderr if level passes the threshold. */
void log_write(const struct logger *log, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* printf an error message into a caller's buffer (err NULL or errlen 0: nothing), for functions that
 * return errors rather than print them. */
void errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_error(lg, ...) log_write((lg), LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(lg, ...) log_write((lg), LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(lg, ...) log_write((lg), LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(lg, ...)                                                                         \
    do {                                                                                           \
        if ((lg)->level >= LOG_LEVEL_DEBUG)                                                        \
            log_write((lg), LOG_LEVEL_DEBUG, __VA_ARGS__);                                         \
    } while (0)

#endif
