/*
 * crash.c - the crash report (crash.h). The handler uses only async-signal-safe calls (write,
 * backtrace_symbols_fd; backtrace itself is loaded before the first crash), runs on its own stack so
 * a stack overflow is reported too, and re-raises the signal with the default action, so the exit
 * status and any core dump are what they would have been.
 */
#include "crash.h"

#include <execinfo.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define CRASH_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CRASH_UNDER_ASAN 1
#endif
#endif

#define CRASH_FRAMES 64

#ifndef CRASH_UNDER_ASAN
/* Digits of v into out (no printf in a signal handler); returns the length. */
static size_t crash_utoa(char *out, unsigned v)
{
    char tmp[12];
    size_t n = 0, len = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < sizeof(tmp));
    while (n)
        out[len++] = tmp[--n];
    return len;
}

static void crash_handler(int sig)
{
    char line[96];
    const char *head = "sol: fatal signal ";
    size_t len = strlen(head);
    memcpy(line, head, len);
    len += crash_utoa(line + len, (unsigned)sig);
    const char *tail = ", stack follows (addr2line -e sol resolves the offsets):\n";
    size_t tl = strlen(tail);
    memcpy(line + len, tail, tl);
    len += tl;
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
    void *frames[CRASH_FRAMES];
    int n = backtrace(frames, CRASH_FRAMES);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
    signal(sig, SIG_DFL); /* SA_RESETHAND did this already; to be sure for SIGABRT from abort() */
    raise(sig);
}
#endif

int crash_report_install(void)
{
#ifdef CRASH_UNDER_ASAN
    return 0;
#else
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    void *probe[1];
    backtrace(probe, 1); /* loads libgcc now: the first call may allocate, not safe in a handler */
    stack_t ss = {.ss_size = 64 * 1024};
    ss.ss_sp = malloc(ss.ss_size); /* held for the life of the process */
    if (!ss.ss_sp || sigaltstack(&ss, NULL) != 0) {
        free(ss.ss_sp);
        return -1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = crash_handler;
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (sigaction(sigs[i], &sa, NULL) != 0)
            return -1;
    return 0;
#endif
}
