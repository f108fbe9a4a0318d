/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Logging. Under systemd (JOURNAL_STREAM set and pointing at our stderr) each
 * event goes to the journal with structured fields; otherwise one line per
 * event on stderr: "LEVEL message KEY=value ...". Never pass a secret.
 *
 *   log_info("Applied registry", "REGISTRY=%s", name, "TARGET=%s", t, NULL);
 *
 * The variadic tail is pairs of (format, value) for structured fields, each
 * format of the shape "FIELD=%s" (or %d/%u/%lld), terminated by NULL.
 * log_*_errno() take a negative errno and return it, so callers can write
 * "return log_error_errno(r, ...);".
 */

#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>

#include "cleanup.h"

/* Set the program name and the highest priority printed (LOG_DEBUG..LOG_ERR). */
void log_setup(const char *ident, int max_level);
int log_get_max_level(void);

/* Log msg (a plain string, not a format) with structured fields ("K=%s", v, ..., NULL). */
void log_full(int level, const char *msg, ...) __attribute__((sentinel));

/* Log a printf-style message with no structured fields. */
void log_fmt(int level, const char *fmt, ...) _printf_(2, 3);

/* Like log_fmt, with ": <strerror(-error)>" appended; returns error (negative). */
int log_errno(int level, int error, const char *fmt, ...) _printf_(3, 4);

/* A failure that repeats (a peer down for an hour) is said at warning level
 * once, then at debug while it stays the same (same status and error);
 * a success clears it (log_repeat_clear: true when there was one, so the
 * caller can say "works again"). */
typedef struct LogRepeat {
        bool failing;
        long status;
        int error;
} LogRepeat;

void log_repeat(LogRepeat *lr, long status, int error, const char *fmt, ...) _printf_(4, 5);
bool log_repeat_clear(LogRepeat *lr);

#define log_debug(...) log_fmt(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_fmt(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_fmt(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_fmt(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_fmt(LOG_ERR, __VA_ARGS__)
#define log_warning_errno(e, ...) log_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...) log_errno(LOG_ERR, (e), __VA_ARGS__)
#define log_debug_errno(e, ...) log_errno(LOG_DEBUG, (e), __VA_ARGS__)
