/*
 * crash.h - a crash report: on a fatal signal, the signal and the stack go to stderr (the log)
 * before the process dies as it would have, so a node that vanishes says where.
 */
#ifndef SOL_CRASH_H
#define SOL_CRASH_H

/* Install the report for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT (once, at start-up). A no-op
 * under AddressSanitizer, whose own report is better. Returns 0, or -1 if the handlers could not be
 * installed (the broker runs on without them). */
int crash_report_install(void);

#endif
