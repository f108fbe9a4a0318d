/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the text helpers every reason, label and log line goes
 * through. utf8_printable() keeps the length, leaves only valid UTF-8 with
 * no control character (C0, DEL, C1), changes nothing that was already
 * printable and is idempotent; utf8_one_line() leaves no line break;
 * hostname_check() accepts only RFC 1123 names; strv_split_comma() and
 * strv_join() round-trip. */
#include <string.h>

#include "fuzz-util.h"
#include "hostname.h"
#include "strv.h"
#include "utf8.h"

/* Valid UTF-8 without control characters, by utf8_sequence_length(). */
static bool printable(const char *s, size_t n) {
        for (size_t i = 0; i < n;) {
                const unsigned char *p = (const unsigned char *) s + i;
                size_t l = utf8_sequence_length(s + i, n - i);
                if (l == 0 || (l == 1 && (*p < 0x20 || *p == 0x7f)) || (l == 2 && p[0] == 0xc2 && p[1] < 0xa0))
                        return false;
                i += l;
        }
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = strndup((const char *) data, size), *t, *u, *joined;
        char **l = NULL;
        const char *why;
        size_t n;

        if (!s)
                return 0;
        n = strlen(s);
        t = strdup(s);
        fuzz_check(t);
        fuzz_check(utf8_printable(t) == t && strlen(t) == n && printable(t, n));
        if (printable(s, n))
                fuzz_check(strcmp(s, t) == 0);
        u = strdup(t);
        fuzz_check(u && strcmp(utf8_printable(u), t) == 0);
        free(u);
        free(t);

        t = strdup(s);
        fuzz_check(t && utf8_one_line(t) == t && strlen(t) == n && printable(t, n) && !strpbrk(t, "\n\r"));
        free(t);

        why = hostname_check(s, n);
        if (!why) {
                fuzz_check(n >= 1 && n <= 253 && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == n);
                fuzz_check(s[0] != '.' && s[0] != '-' && s[n - 1] != '.' && s[n - 1] != '-' && !strstr(s, "..") &&
                           !strstr(s, ".-") && !strstr(s, "-."));
        } else
                fuzz_check(*why);

        if (strv_split_comma(s, &l) >= 0) {
                for (char **p = l; p && *p; p++)
                        fuzz_check(!strchr(*p, ','));
                joined = strv_join(l, ",");
                if (joined) {
                        char **again = NULL;
                        fuzz_check(strv_split_comma(joined, &again) >= 0 && strv_length(again) == strv_length(l));
                        for (size_t i = 0; i < strv_length(l); i++)
                                fuzz_check(strcmp(l[i], again[i]) == 0);
                        strv_free(again);
                        free(joined);
                }
                strv_free(l);
        }
        free(s);
        return 0;
}
