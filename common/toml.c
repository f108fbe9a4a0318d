/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "toml-internal.h"
#include "toml-lex.h"

/*
 * One pass over the text, building the tree as it goes. The text is checked
 * up front for NUL bytes, control characters, lone CRs and invalid UTF-8, so
 * the parser proper only ever sees clean input and "\n" or "\r\n" line ends.
 * That check, strings and keys are the lexer's (toml-lex.c); this file
 * holds the structure: key/value lines, [headers], arrays, inline tables.
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

/* What booleans, numbers and date-times are made of. */
static bool is_bare_value(int c) {
        return is_bare(c) || c == '+' || c == '.' || c == ':';
}

/* Quote at most this much of a bad value in a message. */
static int clip(size_t n) {
        return n > 40 ? 40 : (int) n;
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
                return toml_fail(P, k->line, "'%s' in '%.*s' is %s and cannot be extended", k->part[i], k->len,
                                 k->text, type_name(v));
        if (dotted) {
                if (v->flags & T_HEADER)
                        return toml_fail(P, k->line, "table '%s' was defined by a [header]; dotted keys cannot add to it",
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

        r = toml_parse_key(P, &k);
        if (r < 0)
                return r;
        if (peek(P) != '=')
                return toml_fail(P, k.line, "expected '=' after key '%.*s'", k.len, k.text);
        P->p++;
        skip_ws(P);
        if (at_eol(P) || peek(P) == ',' || peek(P) == '}')
                return toml_fail(P, k.line, "key '%.*s' has no value", k.len, k.text);
        for (size_t i = 0; i + 1 < k.n; i++) {
                r = descend(P, t, &k, i, true, &t);
                if (r < 0)
                        return r;
        }
        if (toml_table_lookup(t, k.part[k.n - 1]))
                return toml_fail(P, k.line, "duplicate key '%.*s'", k.len, k.text);
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
                        return toml_fail(P, line, "unterminated array");
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
                        return toml_fail(P, line, "unterminated array");
                return toml_fail(P, P->line, "expected ',' or ']' in array");
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
                                return toml_fail(P, line, "unterminated inline table (it must end on the line it starts)");
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
                                        return toml_fail(P, P->line, "trailing comma in inline table");
                                continue;
                        }
                        if (at_eol(P))
                                return toml_fail(P, line, "unterminated inline table (it must end on the line it starts)");
                        return toml_fail(P, P->line, "expected ',' or '}' in inline table");
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
                return toml_fail(P, P->line, "expected a value");
        if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0))
                v->b = n == 4;
        else if (toml_is_datetime(s, n)) {
                v->type = TOML_DATETIME;
                v->s = strndup(s, n);
                if (!v->s)
                        return -ENOMEM;
        } else if ((r = toml_parse_integer(s, n, &v->i)) != -EINVAL) {
                if (r < 0)
                        return toml_fail(P, P->line, "integer %.*s does not fit in 64 bits", clip(n), s);
                v->type = TOML_INTEGER;
        } else if ((r = toml_parse_float(s, n, &v->f)) != -EINVAL) {
                if (r == -ERANGE)
                        return toml_fail(P, P->line, "float %.*s is out of range", clip(n), s);
                if (r < 0)
                        return r;
                v->type = TOML_FLOAT;
        } else
                return toml_fail(P, P->line, "invalid value '%.*s'", clip(n), s);
        *ret = TAKE_PTR(v);
        return 0;
}

/* A value whose innermost table is level tables below the key's own section. */
static int parse_value(Parser *P, TomlValue **ret, unsigned level) {
        int c = peek(P);

        if ((c == '[' || c == '{') && level > TOML_DEPTH_MAX)
                return toml_fail(P, P->line, "nested deeper than %d levels", TOML_DEPTH_MAX);
        if (c == '[')
                return parse_array(P, ret, level);
        if (c == '{')
                return parse_inline_table(P, ret, level);
        if (c == '"' || c == '\'') {
                _cleanup_(buf_done) Buf b = {};
                TomlValue *v;
                int r = toml_parse_string(P, &b);
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
        r = toml_parse_key(P, &k);
        if (r < 0)
                return r;
        if (!at(P, aot ? "]]" : "]"))
                return toml_fail(P, line, "expected '%s' after table name", aot ? "]]" : "]");
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
                        return toml_fail(P, line, "'%.*s' is already %s, not an array of tables", k.len, k.text,
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
                return toml_fail(P, line, "'%.*s' is already %s", k.len, k.text, type_name(v));
        if (v->flags & T_DOTTED)
                return toml_fail(P, line, "table '%.*s' is already defined by dotted keys", k.len, k.text);
        if (v->flags & T_HEADER)
                return toml_fail(P, line, "table '%.*s' is defined twice", k.len, k.text);
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
        r = toml_check_text(&P);
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
                        return toml_fail(&P, P.line, "unexpected text after the %s", header ? "table header" : "value");
        }
        *ret = TAKE_PTR(root);
        return 0;
}
