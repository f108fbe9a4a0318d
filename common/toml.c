/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "toml-internal.h"
#include "utf8.h"

/*
 * One pass over the text, building the tree as it goes. The text is checked
 * up front for NUL bytes, control characters, lone CRs and invalid UTF-8, so
 * the parser proper only ever sees clean input and "\n" or "\r\n" line ends.
 *
 * TOML's rules about which table may be extended by what are kept in flags
 * on each table (see T_*): a [header] may define a table that only existed
 * as the parent of an earlier header, once; dotted keys may create tables
 * and add to tables they created (or to such implicit parents, which then
 * count as defined by dotted keys), never to one defined by a header; inline
 * tables and static arrays take nothing more. A header may pass through
 * any table on its way, and through an array of tables into its last element.
 *
 * Tables (toml-tree.c) are arrays of entries in document order; from
 * INDEX_MIN keys on each also has an open-addressing hash index, so a flat
 * file with thousands of keys in one table still parses in linear time.
 * Numbers and dates are recognized in toml-scalar.c. (The hash is not seeded:
 * the input is a root-owned config file, not a network peer's.)
 *
 * Two choices beyond TOML 1.0: "\u0000" is refused, so every string is a C
 * string; date-times are kept as the text written, checked only for shape
 * and field ranges. Recursion is bounded by TOML_DEPTH_MAX (see parse_value).
 */

typedef struct Parser {
        const char *p, *end;
        unsigned line;
        char *err;
        size_t errlen;
} Parser;

/* A key as parsed: its parts, and the text as written for error messages. */
typedef struct Key {
        char *part[TOML_DEPTH_MAX];
        size_t n;
        const char *text;
        int len;
        unsigned line;
} Key;

typedef struct Buf {
        char *s;
        size_t n, cap;
} Buf;

static void key_done(Key *k) {
        for (size_t i = 0; i < k->n; i++)
                free(k->part[i]);
}

static void buf_done(Buf *b) {
        free(b->s);
}

_printf_(3, 4) static int fail(Parser *P, unsigned line, const char *fmt, ...) {
        va_list ap;
        int n;

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

static int check_text(Parser *P) {
        const unsigned char *s = (const unsigned char *) P->p, *end = (const unsigned char *) P->end;
        unsigned line = 1;

        while (s < end) {
                unsigned c = *s;
                size_t n;

                if (c == '\n')
                        line++;
                else if (c == '\r' && (s + 1 == end || s[1] != '\n'))
                        return fail(P, line, "carriage return not followed by a line feed");
                else if (c == 0)
                        return fail(P, line, "NUL byte");
                else if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f)
                        return fail(P, line, "control character U+%04X", c);
                if (c < 0x80) {
                        s++;
                        continue;
                }
                n = utf8_sequence_length((const char *) s, (size_t) (end - s));
                if (n == 0)
                        return fail(P, line, "invalid UTF-8");
                s += n;
        }
        return 0;
}

static int peek(const Parser *P) {
        return P->p < P->end ? (unsigned char) *P->p : -1;
}

static bool at(const Parser *P, const char *s) {
        size_t n = strlen(s);
        return (size_t) (P->end - P->p) >= n && memcmp(P->p, s, n) == 0;
}

static bool at_eol(const Parser *P) {
        int c = peek(P);
        return c < 0 || c == '\n' || c == '\r' || c == '#';
}

static void skip_ws(Parser *P) {
        while (P->p < P->end && (*P->p == ' ' || *P->p == '\t'))
                P->p++;
}

static void skip_comment(Parser *P) {
        if (peek(P) == '#')
                while (P->p < P->end && *P->p != '\n' && *P->p != '\r')
                        P->p++;
}

static bool newline(Parser *P) {
        if (!at(P, "\n") && !at(P, "\r\n"))
                return false;
        P->p += *P->p == '\r' ? 2 : 1;
        P->line++;
        return true;
}

/* Blanks, comments and line ends, as allowed between array elements. */
static void skip_blank(Parser *P) {
        do {
                skip_ws(P);
                skip_comment(P);
        } while (newline(P));
}


static bool is_bare(int c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || toml_is_digit(c) || c == '_' || c == '-';
}

/* What booleans, numbers and date-times are made of. */
static bool is_bare_value(int c) {
        return is_bare(c) || c == '+' || c == '.' || c == ':';
}

/* Quote at most this much of a bad value in a message. */
static int clip(size_t n) {
        return n > 40 ? 40 : (int) n;
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
                return fail(P, P->line, "invalid escape sequence in string");
        len = c == 'u' ? 4 : 8;
        P->p++;
        for (size_t i = 0; i < len; i++) {
                int d = P->p + i < P->end ? toml_hex_value((unsigned char) P->p[i]) : -1;
                if (d < 0)
                        return fail(P, P->line, "\\%c needs %zu hex digits", c, len);
                u = u << 4 | (uint32_t) d;
        }
        P->p += len;
        if (u == 0)
                return fail(P, P->line, "\\u0000 is not allowed in strings");
        if (u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff))
                return fail(P, P->line, "escape \\%c%.*s is not a Unicode scalar value", c, (int) len, P->p - len);
        return buf_put_utf8(b, u);
}

/* Any of the four string forms; P->p is at the opening quote. */
static int parse_string(Parser *P, Buf *b) {
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
                        return fail(P, line, "unterminated string");
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
                                return fail(P, P->line, "too many quotes at the end of a multi-line string");
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

static int parse_key(Parser *P, Key *k) {
        int r;

        k->text = P->p;
        k->line = P->line;
        for (;;) {
                int c;

                skip_ws(P);
                c = peek(P);
                if (k->n >= TOML_DEPTH_MAX)
                        return fail(P, k->line, "key with more than %d parts", TOML_DEPTH_MAX);
                if (c == '"' || c == '\'') {
                        _cleanup_(buf_done) Buf b = {};
                        if (at(P, "\"\"\"") || at(P, "'''"))
                                return fail(P, P->line, "a multi-line string cannot be a key");
                        r = parse_string(P, &b);
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
                        return fail(P, P->line, k->n == 0 ? "expected a key" : "expected a key after '.'");
                k->len = (int) (P->p - k->text);
                skip_ws(P);
                if (peek(P) != '.')
                        return 0;
                P->p++;
        }
}

static const char *type_name(const TomlValue *v) {
        static const char *const names[] = {
                [TOML_TABLE] = "a table",       [TOML_ARRAY] = "an array",    [TOML_STRING] = "a string",
                [TOML_INTEGER] = "an integer",  [TOML_FLOAT] = "a float",     [TOML_BOOLEAN] = "a boolean",
                [TOML_DATETIME] = "a date-time",
        };
        if (v->type == TOML_TABLE && (v->flags & T_CLOSED))
                return "an inline table";
        if (v->type == TOML_ARRAY && !(v->flags & T_AOT))
                return "a static array";
        return names[v->type];
}

/* Step from t into the table named by part i of k, creating it if absent: on the way to
 * a [header]'s table, or (dotted) to the table a dotted key adds to. */
static int descend(Parser *P, TomlValue *t, Key *k, size_t i, bool dotted, TomlValue **ret) {
        TomlValue *v = toml_table_lookup(t, k->part[i]);
        int r;

        if (!v) {
                _cleanup_(toml_freep) TomlValue *n = toml_value_new(TOML_TABLE, dotted ? T_DOTTED : T_IMPLICIT);
                if (!n)
                        return -ENOMEM;
                r = toml_table_add(t, &k->part[i], n);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(n);
                return 0;
        }
        if (!dotted && v->type == TOML_ARRAY && (v->flags & T_AOT)) {
                /* [a.b] after [[a]] continues the last table of a. */
                *ret = v->array.v[v->array.n - 1];
                return 0;
        }
        if (v->type != TOML_TABLE || (v->flags & T_CLOSED))
                return fail(P, k->line, "'%s' in '%.*s' is %s and cannot be extended", k->part[i], k->len,
                            k->text, type_name(v));
        if (dotted) {
                if (v->flags & T_HEADER)
                        return fail(P, k->line, "table '%s' was defined by a [header]; dotted keys cannot add to it",
                                    k->part[i]);
                v->flags = T_DOTTED;
        }
        *ret = v;
        return 0;
}

static int parse_value(Parser *P, TomlValue **ret, unsigned level);

static int parse_keyval(Parser *P, TomlValue *t, unsigned level) {
        _cleanup_(key_done) Key k = {};
        _cleanup_(toml_freep) TomlValue *v = NULL;
        int r;

        r = parse_key(P, &k);
        if (r < 0)
                return r;
        if (peek(P) != '=')
                return fail(P, k.line, "expected '=' after key '%.*s'", k.len, k.text);
        P->p++;
        skip_ws(P);
        if (at_eol(P) || peek(P) == ',' || peek(P) == '}')
                return fail(P, k.line, "key '%.*s' has no value", k.len, k.text);
        for (size_t i = 0; i + 1 < k.n; i++) {
                r = descend(P, t, &k, i, true, &t);
                if (r < 0)
                        return r;
        }
        if (toml_table_lookup(t, k.part[k.n - 1]))
                return fail(P, k.line, "duplicate key '%.*s'", k.len, k.text);
        r = parse_value(P, &v, level + (unsigned) k.n);
        if (r < 0)
                return r;
        r = toml_table_add(t, &k.part[k.n - 1], v);
        if (r < 0)
                return r;
        TAKE_PTR(v);
        return 0;
}

static int parse_array(Parser *P, TomlValue **ret, unsigned level) {
        _cleanup_(toml_freep) TomlValue *a = toml_value_new(TOML_ARRAY, T_CLOSED);
        unsigned line = P->line;
        int r;

        if (!a)
                return -ENOMEM;
        P->p++;
        for (;;) {
                _cleanup_(toml_freep) TomlValue *v = NULL;

                skip_blank(P);
                if (peek(P) == ']')
                        break;
                if (peek(P) < 0)
                        return fail(P, line, "unterminated array");
                r = parse_value(P, &v, level + 1);
                if (r < 0)
                        return r;
                r = toml_array_add(a, v);
                if (r < 0)
                        return r;
                TAKE_PTR(v);
                skip_blank(P);
                if (peek(P) == ',') {
                        P->p++;
                        continue;
                }
                if (peek(P) == ']')
                        break;
                if (peek(P) < 0)
                        return fail(P, line, "unterminated array");
                return fail(P, P->line, "expected ',' or ']' in array");
        }
        P->p++;
        *ret = TAKE_PTR(a);
        return 0;
}

static int parse_inline_table(Parser *P, TomlValue **ret, unsigned level) {
        _cleanup_(toml_freep) TomlValue *t = toml_value_new(TOML_TABLE, 0);
        unsigned line = P->line;
        int r;

        if (!t)
                return -ENOMEM;
        P->p++;
        skip_ws(P);
        if (peek(P) == '}')
                P->p++;
        else
                for (;;) {
                        int c;

                        skip_ws(P);
                        if (at_eol(P))
                                return fail(P, line, "unterminated inline table (it must end on the line it starts)");
                        r = parse_keyval(P, t, level);
                        if (r < 0)
                                return r;
                        skip_ws(P);
                        c = peek(P);
                        if (c == '}') {
                                P->p++;
                                break;
                        }
                        if (c == ',') {
                                P->p++;
                                skip_ws(P);
                                if (peek(P) == '}')
                                        return fail(P, P->line, "trailing comma in inline table");
                                continue;
                        }
                        if (at_eol(P))
                                return fail(P, line, "unterminated inline table (it must end on the line it starts)");
                        return fail(P, P->line, "expected ',' or '}' in inline table");
                }
        t->flags = T_CLOSED;
        *ret = TAKE_PTR(t);
        return 0;
}

/* Booleans, numbers and date-times: a run of the characters they can hold. */
static int parse_bare_value(Parser *P, TomlValue **ret) {
        _cleanup_(toml_freep) TomlValue *v = toml_value_new(TOML_BOOLEAN, 0);
        const char *s = P->p;
        size_t n;
        int r;

        if (!v)
                return -ENOMEM;
        while (P->p < P->end && is_bare_value(*P->p))
                P->p++;
        /* A date and a time may be separated by a space: 1979-05-27 07:32:00Z */
        if (P->p - s == 10 && toml_is_date(s) && P->end - P->p > 3 && P->p[0] == ' ' && toml_is_digit(P->p[1]) &&
            toml_is_digit(P->p[2]) && P->p[3] == ':')
                for (P->p++; P->p < P->end && is_bare_value(*P->p);)
                        P->p++;
        n = (size_t) (P->p - s);
        if (n == 0)
                return fail(P, P->line, "expected a value");
        if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0))
                v->b = n == 4;
        else if (toml_is_datetime(s, n)) {
                v->type = TOML_DATETIME;
                v->s = strndup(s, n);
                if (!v->s)
                        return -ENOMEM;
        } else if ((r = toml_parse_integer(s, n, &v->i)) != -EINVAL) {
                if (r < 0)
                        return fail(P, P->line, "integer %.*s does not fit in 64 bits", clip(n), s);
                v->type = TOML_INTEGER;
        } else if ((r = toml_parse_float(s, n, &v->f)) != -EINVAL) {
                if (r == -ERANGE)
                        return fail(P, P->line, "float %.*s is out of range", clip(n), s);
                if (r < 0)
                        return r;
                v->type = TOML_FLOAT;
        } else
                return fail(P, P->line, "invalid value '%.*s'", clip(n), s);
        *ret = TAKE_PTR(v);
        return 0;
}

/* A value whose innermost table is level tables below the key's own section. */
static int parse_value(Parser *P, TomlValue **ret, unsigned level) {
        int c = peek(P);

        if ((c == '[' || c == '{') && level > TOML_DEPTH_MAX)
                return fail(P, P->line, "nested deeper than %d levels", TOML_DEPTH_MAX);
        if (c == '[')
                return parse_array(P, ret, level);
        if (c == '{')
                return parse_inline_table(P, ret, level);
        if (c == '"' || c == '\'') {
                _cleanup_(buf_done) Buf b = {};
                TomlValue *v;
                int r = parse_string(P, &b);
                if (r < 0)
                        return r;
                v = toml_value_new(TOML_STRING, 0);
                if (!v)
                        return -ENOMEM;
                v->s = TAKE_PTR(b.s);
                *ret = v;
                return 0;
        }
        return parse_bare_value(P, ret);
}

/* [a.b] or [[a.b]]: make *current the table that the following keys go to. */
static int parse_header(Parser *P, TomlValue *root, TomlValue **current) {
        _cleanup_(key_done) Key k = {};
        bool aot = at(P, "[[");
        unsigned line = P->line;
        TomlValue *t = root, *v;
        int r;

        P->p += aot ? 2 : 1;
        r = parse_key(P, &k);
        if (r < 0)
                return r;
        if (!at(P, aot ? "]]" : "]"))
                return fail(P, line, "expected '%s' after table name", aot ? "]]" : "]");
        P->p += aot ? 2 : 1;
        for (size_t i = 0; i + 1 < k.n; i++) {
                r = descend(P, t, &k, i, false, &t);
                if (r < 0)
                        return r;
        }
        v = toml_table_lookup(t, k.part[k.n - 1]);
        if (aot) {
                _cleanup_(toml_freep) TomlValue *e = toml_value_new(TOML_TABLE, T_HEADER);
                _cleanup_(toml_freep) TomlValue *a = NULL;
                if (!e)
                        return -ENOMEM;
                if (v && (v->type != TOML_ARRAY || !(v->flags & T_AOT)))
                        return fail(P, line, "'%.*s' is already %s, not an array of tables", k.len, k.text,
                                    type_name(v));
                if (!v) {
                        v = a = toml_value_new(TOML_ARRAY, T_AOT);
                        if (!a)
                                return -ENOMEM;
                }
                r = toml_array_add(v, e);
                if (r < 0)
                        return r;
                *current = TAKE_PTR(e);
                if (a) {
                        r = toml_table_add(t, &k.part[k.n - 1], a);
                        if (r < 0)
                                return r;
                        TAKE_PTR(a);
                }
                return 0;
        }
        if (!v) {
                _cleanup_(toml_freep) TomlValue *n = toml_value_new(TOML_TABLE, T_HEADER);
                if (!n)
                        return -ENOMEM;
                r = toml_table_add(t, &k.part[k.n - 1], n);
                if (r < 0)
                        return r;
                *current = TAKE_PTR(n);
                return 0;
        }
        if (v->type != TOML_TABLE || (v->flags & T_CLOSED))
                return fail(P, line, "'%.*s' is already %s", k.len, k.text, type_name(v));
        if (v->flags & T_DOTTED)
                return fail(P, line, "table '%.*s' is already defined by dotted keys", k.len, k.text);
        if (v->flags & T_HEADER)
                return fail(P, line, "table '%.*s' is defined twice", k.len, k.text);
        v->flags = T_HEADER;
        *current = v;
        return 0;
}

int toml_parse(const char *text, size_t size, TomlValue **ret, char *err, size_t errlen) {
        _cleanup_(toml_freep) TomlValue *root = NULL;
        Parser P = { .line = 1, .err = err, .errlen = errlen };
        TomlValue *current;
        int r;

        assert(text || size == 0);
        assert(ret);

        if (err && errlen > 0)
                err[0] = 0;
        if (size > TOML_SIZE_MAX) {
                if (err && errlen > 0)
                        snprintf(err, errlen, "document larger than %d bytes", TOML_SIZE_MAX);
                return -EFBIG;
        }
        P.p = text ? text : "";
        P.end = P.p + size;
        if (at(&P, "\xef\xbb\xbf"))
                P.p += 3; /* a byte order mark */
        r = check_text(&P);
        if (r < 0)
                return r;
        current = root = toml_value_new(TOML_TABLE, T_HEADER);
        if (!root)
                return -ENOMEM;
        while (P.p < P.end) {
                skip_ws(&P);
                skip_comment(&P);
                if (newline(&P) || P.p == P.end)
                        continue;
                bool header = peek(&P) == '[';
                r = header ? parse_header(&P, root, &current) : parse_keyval(&P, current, 0);
                if (r < 0)
                        return r;
                skip_ws(&P);
                skip_comment(&P);
                if (P.p < P.end && !newline(&P))
                        return fail(&P, P.line, "unexpected text after the %s", header ? "table header" : "value");
        }
        *ret = TAKE_PTR(root);
        return 0;
}
