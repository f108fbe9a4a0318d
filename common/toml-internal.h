/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Inside the TOML reader (toml.c, the parser; toml-lex.c, its lexer, with
 * toml-lex.h; toml-tree.c, the values and their accessors; toml-scalar.c,
 * numbers and dates): not for its users, who have toml.h.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "toml.h"

enum {
        T_IMPLICIT = 1 << 0, /* table created as the parent of a [header], not yet defined */
        T_HEADER = 1 << 1,   /* table defined by [header], or an element of [[header]] */
        T_DOTTED = 1 << 2,   /* table defined by a dotted key, a.b = 1 */
        T_CLOSED = 1 << 3,   /* inline table or static array: immutable */
        T_AOT = 1 << 4,      /* array made by [[header]] */
};

#define INDEX_MIN 8

typedef struct Entry {
        char *key;
        TomlValue *value;
} Entry;

struct TomlValue {
        TomlType type;
        unsigned flags;
        union {
                struct {
                        Entry *e;
                        size_t n, cap;
                        uint32_t *index; /* entry number + 1, 0 = free slot */
                        size_t index_cap;
                } table;
                struct {
                        TomlValue **v;
                        size_t n, cap;
                } array;
                char *s; /* TOML_STRING, TOML_DATETIME */
                int64_t i;
                double f;
                bool b;
        };
};

/* A new value of type with flags (T_*); NULL on allocation failure. */
TomlValue *toml_value_new(TomlType type, unsigned flags);
/* The value of key in table t, or NULL. */
TomlValue *toml_table_lookup(const TomlValue *t, const char *key);
/* Add key = v to t. On success takes *key (leaving NULL) and v; on failure both stay with the caller. */
int toml_table_add(TomlValue *t, char **key, TomlValue *v);
/* Append v to array a (which then owns it). */
int toml_array_add(TomlValue *a, TomlValue *v);

static inline bool toml_is_digit(int c) {
        return c >= '0' && c <= '9';
}

/* The value of a hex digit, -1 for anything else. */
static inline int toml_hex_value(int c) {
        if (toml_is_digit(c))
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* YYYY-MM-DD at s, which has at least 10 bytes. */
bool toml_is_date(const char *s);
/* Local time, local date, local or offset date-time (RFC 3339, seconds required). */
bool toml_is_datetime(const char *s, size_t n);
/* -EINVAL: not integer syntax; -ERANGE: an integer beyond int64_t. */
int toml_parse_integer(const char *s, size_t n, int64_t *ret);
/* -EINVAL: not float syntax; -ERANGE: a finite float too large for a double. */
int toml_parse_float(const char *s, size_t n, double *ret);
