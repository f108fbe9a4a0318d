/* SPDX-License-Identifier: MIT */
/* The field readers report_parse() and its parts share. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest-internal.h"

/* Set the message and return -EINVAL, so validators can "return fail(...)". */
int ingest_fail(char **ret_message, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(ret_message, fmt, ap) < 0)
                *ret_message = NULL;
        va_end(ap);
        return -EINVAL;
}

/* A copy of s cut to at most max bytes, never inside a UTF-8 sequence
 * (jansson refuses to emit invalid UTF-8). */
char *ingest_strdup_truncated(const char *s, size_t max) {
        size_t n = strlen(s);

        if (n > max) {
                n = max;
                while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
                        n--;
        }
        return strndup(s, n);
}

int ingest_get_uint(const Jv *o, const char *key, bool required, uint64_t max, uint64_t *ret, char **msg) {
        const Jv *v = jv_get(o, key);

        if (!v) {
                if (required)
                        return ingest_fail(msg, "missing field '%s'", key);
                return 0;
        }
        if (!jv_is_integer(v) || jv_integer(v) < 0 || (uint64_t) jv_integer(v) > max)
                return ingest_fail(msg, "'%s' must be an integer from 0 to %llu", key,
                            (unsigned long long) max);
        *ret = (uint64_t) jv_integer(v);
        return 1;
}

/* A string field: 0 when absent (and not required), 1 with *ret set. */
int ingest_get_string(const Jv *o, const char *key, bool required, const char **ret, char **msg) {
        const Jv *v = jv_get(o, key);

        if (!v) {
                if (required)
                        return ingest_fail(msg, "missing field '%s'", key);
                return 0;
        }
        if (!jv_is_string(v))
                return ingest_fail(msg, "'%s' must be a string", key);
        *ret = jv_string(v);
        return 1;
}
