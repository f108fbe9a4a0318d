/* SPDX-License-Identifier: MIT */
/* The TOML reader's bare scalars: integers, floats, dates and times. */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "toml-internal.h"

static int num2(const char *s) {
        return (s[0] - '0') * 10 + s[1] - '0';
}

static bool all_digits(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!toml_is_digit(s[i]))
                        return false;
        return true;
}

/* YYYY-MM-DD at s, which has at least 10 bytes. */
bool toml_is_date(const char *s) {
        static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        int y, m, d;

        assert(s);

        if (!all_digits(s, 4) || s[4] != '-' || !all_digits(s + 5, 2) || s[7] != '-' || !all_digits(s + 8, 2))
                return false;
        y = num2(s) * 100 + num2(s + 2);
        m = num2(s + 5);
        d = num2(s + 8);
        if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
                return false;
        return m != 2 || d < 29 || (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));
}

/* Length of HH:MM:SS[.fraction] at s, 0 if there is none. */
static size_t time_len(const char *s, size_t n) {
        size_t i = 8;

        if (n < 8 || !all_digits(s, 2) || s[2] != ':' || !all_digits(s + 3, 2) || s[5] != ':' ||
            !all_digits(s + 6, 2) || num2(s) > 23 || num2(s + 3) > 59 || num2(s + 6) > 60)
                return 0;
        if (i < n && s[i] == '.') {
                while (++i < n && toml_is_digit(s[i]))
                        ;
                if (i == 9)
                        return 0;
        }
        return i;
}

/* Local time, local date, local or offset date-time (RFC 3339, seconds required). */
bool toml_is_datetime(const char *s, size_t n) {
        const char *o;
        size_t t;

        assert(s || n == 0);

        if (n >= 3 && s[2] == ':')
                return time_len(s, n) == n;
        if (n < 10 || !toml_is_date(s))
                return false;
        if (n == 10)
                return true;
        if (n < 11 || !strchr("Tt ", s[10]) || (t = time_len(s + 11, n - 11)) == 0)
                return false;
        o = s + 11 + t;
        n -= 11 + t;
        if (n == 0 || (n == 1 && (*o == 'Z' || *o == 'z')))
                return true;
        return n == 6 && (*o == '+' || *o == '-') && all_digits(o + 1, 2) && o[3] == ':' && all_digits(o + 4, 2) &&
               num2(o + 1) <= 23 && num2(o + 4) <= 59;
}

/* Length of a run of digits with single underscores between them, 0 if there is none. */
static size_t digit_run(const char *s, size_t n) {
        size_t i = 0;
        while (i < n && (toml_is_digit(s[i]) || (s[i] == '_' && i > 0 && i + 1 < n && toml_is_digit(s[i + 1]))))
                i++;
        return i;
}

/* -EINVAL: not integer syntax; -ERANGE: an integer beyond int64_t. */
int toml_parse_integer(const char *s, size_t n, int64_t *ret) {
        uint64_t v = 0, limit = INT64_MAX;
        bool neg = false, overflow = false, digit = false;
        unsigned base = 10;
        size_t i = 0;

        /* s[0] is looked at before n is: the parser never asks about "". */
        assert(s);
        assert(n > 0);
        assert(ret);

        if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o' || s[1] == 'b')) {
                base = s[1] == 'x' ? 16 : s[1] == 'o' ? 8 : 2;
                i = 2;
        } else if (s[0] == '+' || s[0] == '-') {
                neg = s[0] == '-';
                limit += neg;
                i = 1;
        }
        if (i == n || (base == 10 && s[i] == '0' && i + 1 < n))
                return -EINVAL; /* empty, or a leading zero */
        for (; i < n; i++) {
                int d = toml_hex_value((unsigned char) s[i]);
                if (s[i] == '_' && digit && i + 1 < n) {
                        digit = false;
                        continue;
                }
                if (d < 0 || (unsigned) d >= base)
                        return -EINVAL;
                if (v > (limit - (unsigned) d) / base)
                        overflow = true;
                else
                        v = v * base + (unsigned) d;
                digit = true;
        }
        if (overflow)
                return -ERANGE;
        *ret = !neg ? (int64_t) v : v > INT64_MAX ? INT64_MIN : -(int64_t) v;
        return 0;
}

/* -EINVAL: not float syntax; -ERANGE: a finite float too large for a double. */
int toml_parse_float(const char *s, size_t n, double *ret) {
        _cleanup_free_ char *copy = NULL;
        bool frac = false, exp = false;
        size_t i, m, o = 0;
        char *end;

        assert(s);
        assert(n > 0);
        assert(ret);

        i = s[0] == '+' || s[0] == '-';
        if (n - i == 3 && (memcmp(s + i, "inf", 3) == 0 || memcmp(s + i, "nan", 3) == 0)) {
                *ret = s[i] == 'n' ? NAN : s[0] == '-' ? -INFINITY : INFINITY;
                return 0;
        }
        m = digit_run(s + i, n - i);
        if (m == 0 || (s[i] == '0' && m > 1))
                return -EINVAL;
        i += m;
        if (i < n && s[i] == '.') {
                m = digit_run(s + i + 1, n - i - 1);
                if (m == 0)
                        return -EINVAL;
                i += 1 + m;
                frac = true;
        }
        if (i < n && (s[i] == 'e' || s[i] == 'E')) {
                i += 1 + (i + 1 < n && (s[i + 1] == '+' || s[i + 1] == '-'));
                m = digit_run(s + i, n - i);
                if (m == 0)
                        return -EINVAL;
                i += m;
                exp = true;
        }
        if (i != n || (!frac && !exp))
                return -EINVAL;
        copy = malloc(n + 1);
        if (!copy)
                return -ENOMEM;
        for (i = 0; i < n; i++)
                if (s[i] != '_')
                        copy[o++] = s[i];
        copy[o] = 0;
        /* The daemons never call setlocale(), so strtod() reads '.' as the decimal point. */
        *ret = strtod(copy, &end);
        if (*end != 0)
                return -EINVAL;
        return isinf(*ret) ? -ERANGE : 0;
}
