/* SPDX-License-Identifier: MIT */
/* The TOML reader's lexer: the up-front check of the text, error messages,
 * strings with their escapes, and keys. */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "toml-lex.h"
#include "utf8.h"

int toml_fail(Parser *P, unsigned line, const char *fmt, ...) {
        va_list ap;
        int n;

        assert(P);
        assert(fmt);

        if (!P->err || P->errlen == 0)
                return -EBADMSG;
        n = snprintf(P->err, P->errlen, "line %u: ", line);
        if (n >= 0 && (size_t) n < P->errlen) {
                va_start(ap, fmt);
                vsnprintf(P->err + n, P->errlen - (size_t) n, fmt, ap);
                va_end(ap);
        }
        return -EBADMSG;
}

static int buf_put(Buf *b, const char *s, size_t n) {
        if (b->n + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap * 2 : 32;
                char *m;
                while (cap < b->n + n + 1)
                        cap *= 2;
                m = realloc(b->s, cap);
                if (!m)
                        return -ENOMEM;
                b->s = m;
                b->cap = cap;
        }
        memcpy(b->s + b->n, s, n);
        b->n += n;
        b->s[b->n] = 0;
        return 0;
}

static int buf_put_utf8(Buf *b, uint32_t c) {
        size_t n = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
        char u[4];

        /* The lead byte is 0xxxxxxx, 110xxxxx, 1110xxxx or 11110xxx; then 10xxxxxx each. */
        u[0] = (char) ((n == 1 ? 0 : (0xf00 >> n) & 0xff) | c >> (6 * (n - 1)));
        for (size_t i = 1; i < n; i++)
                u[i] = (char) (0x80 | ((c >> (6 * (n - 1 - i))) & 0x3f));
        return buf_put(b, u, n);
}

int toml_check_text(Parser *P) {
        const unsigned char *s, *end;
        unsigned line = 1;

        assert(P);

        s = (const unsigned char *) P->p;
        end = (const unsigned char *) P->end;
        while (s < end) {
                unsigned c = *s;
                size_t n;

                if (c == '\n')
                        line++;
                else if (c == '\r' && (s + 1 == end || s[1] != '\n'))
                        return toml_fail(P, line, "carriage return not followed by a line feed");
                else if (c == 0)
                        return toml_fail(P, line, "NUL byte");
                else if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f)
                        return toml_fail(P, line, "control character U+%04X", c);
                if (c < 0x80) {
                        s++;
                        continue;
                }
                n = utf8_sequence_length((const char *) s, (size_t) (end - s));
                if (n == 0)
                        return toml_fail(P, line, "invalid UTF-8");
                s += n;
        }
        return 0;
}

/* After a backslash in a basic string. */
static int parse_escape(Parser *P, Buf *b) {
        static const char plain[] = "b\bt\tn\nf\fr\r\"\"\\\\";
        int c = peek(P);
        uint32_t u = 0;
        size_t len;

        for (size_t i = 0; c > 0 && plain[i]; i += 2)
                if (plain[i] == c) {
                        P->p++;
                        return buf_put(b, &plain[i + 1], 1);
                }
        if (c != 'u' && c != 'U')
                return toml_fail(P, P->line, "invalid escape sequence in string");
        len = c == 'u' ? 4 : 8;
        P->p++;
        for (size_t i = 0; i < len; i++) {
                int d = P->p + i < P->end ? toml_hex_value((unsigned char) P->p[i]) : -1;
                if (d < 0)
                        return toml_fail(P, P->line, "\\%c needs %zu hex digits", c, len);
                u = u << 4 | (uint32_t) d;
        }
        P->p += len;
        if (u == 0)
                return toml_fail(P, P->line, "\\u0000 is not allowed in strings");
        if (u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff))
                return toml_fail(P, P->line, "escape \\%c%.*s is not a Unicode scalar value", c, (int) len, P->p - len);
        return buf_put_utf8(b, u);
}

/* Any of the four string forms; P->p is at the opening quote. */
int toml_parse_string(Parser *P, Buf *b) {
        assert(P);
        assert(b);
        assert(peek(P) == '"' || peek(P) == '\'');

        char q = *P->p;
        char q3[4] = { q, q, q, 0 };
        bool multi = at(P, q3), basic = q == '"';
        unsigned line = P->line;
        int r;

        P->p += multi ? 3 : 1;
        if (multi)
                newline(P); /* a line end right after the opening quotes is not part of the string */
        r = buf_put(b, "", 0);
        while (r >= 0) {
                const char *s = P->p;
                int c = peek(P);

                if (c < 0 || (!multi && (c == '\n' || c == '\r')))
                        return toml_fail(P, line, "unterminated string");
                if (c == q) {
                        size_t n = 0;
                        if (!multi) {
                                P->p++;
                                return 0;
                        }
                        while (P->p + n < P->end && P->p[n] == q)
                                n++;
                        /* Up to two quotes may stand right before the closing three. */
                        if (n > 5)
                                return toml_fail(P, P->line, "too many quotes at the end of a multi-line string");
                        P->p += n;
                        r = buf_put(b, s, n >= 3 ? n - 3 : n);
                        if (n >= 3)
                                return r;
                } else if (c == '\\' && basic) {
                        P->p++;
                        if (multi) {
                                /* A line-ending backslash eats all blanks and line ends after it. */
                                const char *save = P->p;
                                skip_ws(P);
                                if (newline(P)) {
                                        do
                                                skip_ws(P);
                                        while (newline(P));
                                        continue;
                                }
                                P->p = save;
                        }
                        r = parse_escape(P, b);
                } else if (newline(P))
                        r = buf_put(b, "\n", 1);
                else {
                        while (P->p < P->end && *P->p != q && *P->p != '\n' && *P->p != '\r' &&
                               !(basic && *P->p == '\\'))
                                P->p++;
                        r = buf_put(b, s, (size_t) (P->p - s));
                }
        }
        return r;
}

int toml_parse_key(Parser *P, Key *k) {
        int r;

        assert(P);
        assert(k);

        k->text = P->p;
        k->line = P->line;
        for (;;) {
                int c;

                skip_ws(P);
                c = peek(P);
                if (k->n >= TOML_DEPTH_MAX)
                        return toml_fail(P, k->line, "key with more than %d parts", TOML_DEPTH_MAX);
                if (c == '"' || c == '\'') {
                        _cleanup_(buf_done) Buf b = {};
                        if (at(P, "\"\"\"") || at(P, "'''"))
                                return toml_fail(P, P->line, "a multi-line string cannot be a key");
                        r = toml_parse_string(P, &b);
                        if (r < 0)
                                return r;
                        k->part[k->n++] = TAKE_PTR(b.s);
                } else if (is_bare(c)) {
                        const char *s = P->p;
                        while (P->p < P->end && is_bare(*P->p))
                                P->p++;
                        k->part[k->n] = strndup(s, (size_t) (P->p - s));
                        if (!k->part[k->n++])
                                return -ENOMEM;
                } else
                        return toml_fail(P, P->line, k->n == 0 ? "expected a key" : "expected a key after '.'");
                k->len = (int) (P->p - k->text);
                skip_ws(P);
                if (peek(P) != '.')
                        return 0;
                P->p++;
        }
}
