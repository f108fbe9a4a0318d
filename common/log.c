/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <time.h>

#include "cleanup.h"
#include "log.h"
#include "utf8.h"

static const char *log_ident = "nodetrust";
static int log_max_level = LOG_INFO;
static int log_to_journal = -1;

static const char *const level_names[] = {
        [LOG_EMERG] = "EMERG", [LOG_ALERT] = "ALERT", [LOG_CRIT] = "CRIT",
        [LOG_ERR] = "ERROR",   [LOG_WARNING] = "WARN", [LOG_NOTICE] = "NOTICE",
        [LOG_INFO] = "INFO",   [LOG_DEBUG] = "DEBUG",
};

/*
 * systemd sets JOURNAL_STREAM to "DEV:INO" of the stream connected to our
 * stderr. Only when stderr still is that stream do we talk to the journal
 * directly; a redirected stderr (tests, pods) gets plain lines.
 */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_setup(const char *ident, int max_level) {
        assert(ident);

        log_ident = ident;
        log_max_level = max_level;
        log_to_journal = stderr_is_journal();
}

int log_get_max_level(void) {
        return log_max_level;
}

/* One event is one line whatever its text holds (a key from the config
 * map, a file name): control bytes are written as \xHH and bytes that
 * are not UTF-8 as \xHH too, so nothing can forge a second line. The
 * journal needs none of this: its fields are length-delimited. */
static void put_line_safe(FILE *f, const char *s) {
        size_t avail = strlen(s);

        while (avail > 0) {
                size_t n = utf8_sequence_length(s, avail);
                unsigned char c = (unsigned char) *s;

                if (n == 0 || (n == 1 && (c < 0x20 || c == 0x7f || c == '\\'))) {
                        if (c == '\\')
                                fputs("\\\\", f);
                        else
                                fprintf(f, "\\x%02x", c);
                        n = 1;
                } else
                        fwrite(s, 1, n, f);
                s += n;
                avail -= n;
        }
}

static void log_emit(int level, const char *msg, char **fields, size_t n_fields) {
        if (log_to_journal < 0)
                log_to_journal = stderr_is_journal();

        if (log_to_journal) {
                /* MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, then the fields. */
                struct iovec iov[3 + 16];
                char prio[16], ident[64];
                _cleanup_free_ char *m = NULL;
                size_t n = 0;

                if (asprintf(&m, "MESSAGE=%s", msg) < 0)
                        return;
                snprintf(prio, sizeof prio, "PRIORITY=%d", level);
                snprintf(ident, sizeof ident, "SYSLOG_IDENTIFIER=%s", log_ident);
                iov[n++] = (struct iovec){ m, strlen(m) };
                iov[n++] = (struct iovec){ prio, strlen(prio) };
                iov[n++] = (struct iovec){ ident, strlen(ident) };
                for (size_t i = 0; i < n_fields && n < ELEMENTSOF(iov); i++)
                        iov[n++] = (struct iovec){ fields[i], strlen(fields[i]) };
                sd_journal_sendv(iov, (int) n);
                return;
        }

        /* One line per event; fields follow the message as KEY=value. */
        struct timespec ts;
        struct tm tm;
        char when[32];

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);

        /* Built whole, then one write(): stderr is unbuffered, and each
         * piece would be a write of its own (one per character escaped). */
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&line, &size);
        bool whole = f != NULL;

        if (!f) {
                f = stderr; /* out of memory: piece by piece, but said */
                flockfile(f);
        }
        fprintf(f, "%s.%03ldZ %s %s: ", when, ts.tv_nsec / 1000000, level_names[level & 7], log_ident);
        put_line_safe(f, msg);
        for (size_t i = 0; i < n_fields; i++) {
                fputc(' ', f);
                put_line_safe(f, fields[i]);
        }
        fputc('\n', f);
        if (!whole)
                funlockfile(f);
        else if (fclose(f) == 0)
                (void) fwrite(line, 1, size, stderr);
}

void log_full(int level, const char *msg, ...) {
        char *fields[16];
        size_t n = 0;
        va_list ap;

        assert(msg);

        if (level > log_max_level)
                return;

        va_start(ap, msg);
        for (const char *fmt; (fmt = va_arg(ap, const char *));) {
                /* Each field format consumes exactly one argument. */
                char *f = NULL;
                const char *conv = strchr(fmt, '%');
                if (!conv) {
                        f = strdup(fmt);
                } else if (strstr(fmt, "%s")) {
                        const char *v = va_arg(ap, const char *);
                        if (asprintf(&f, fmt, v ? v : "(null)") < 0)
                                f = NULL;
                } else if (strstr(fmt, "%ll") || strstr(fmt, "%" "j")) {
                        long long v = va_arg(ap, long long);
                        if (asprintf(&f, fmt, v) < 0)
                                f = NULL;
                } else {
                        int v = va_arg(ap, int);
                        if (asprintf(&f, fmt, v) < 0)
                                f = NULL;
                }
                if (f && n < ELEMENTSOF(fields))
                        fields[n++] = f;
                else
                        free(f);
        }
        va_end(ap);

        log_emit(level, msg, fields, n);
        for (size_t i = 0; i < n; i++)
                free(fields[i]);
}

void log_fmt(int level, const char *fmt, ...) {
        _cleanup_free_ char *m = NULL;
        va_list ap;

        assert(fmt);

        if (level > log_max_level)
                return;
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        if (m)
                log_emit(level, m, NULL, 0);
}

int log_errno(int level, int error, const char *fmt, ...) {
        _cleanup_free_ char *m = NULL;
        va_list ap;

        assert(fmt);

        if (level > log_max_level)
                return error;
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        if (m) {
                _cleanup_free_ char *full = NULL;
                if (asprintf(&full, "%s: %s", m, strerror(error < 0 ? -error : error)) >= 0)
                        log_emit(level, full, NULL, 0);
        }
        return error;
}

void log_repeat(LogRepeat *lr, long status, int error, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        bool repeat;
        va_list ap;
        int k;

        assert(lr);
        assert(fmt);

        repeat = lr->failing && lr->status == status && lr->error == error;
        va_start(ap, fmt);
        k = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (k < 0)
                return;
        log_fmt(repeat ? LOG_DEBUG : LOG_WARNING, "%s", msg);
        *lr = (LogRepeat){ .failing = true, .status = status, .error = error };
}

bool log_repeat_clear(LogRepeat *lr) {
        bool was;

        assert(lr);

        was = lr->failing;
        lr->failing = false;
        return was;
}
