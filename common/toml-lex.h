/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Inside the TOML reader: the lexer (toml-lex.c) that the parser (toml.c)
 * drives. A Parser is a cursor over text that toml_check_text() has found
 * clean, so the helpers below only ever see "\n" or "\r\n" line ends;
 * strings and keys come out as C strings.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "toml-internal.h"

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

static inline void key_done(Key *k) {
        for (size_t i = 0; i < k->n; i++)
                free(k->part[i]);
}

static inline void buf_done(Buf *b) {
        free(b->s);
}

/* Write "line N: " and the message into P's error buffer, if it has one; returns -EBADMSG. */
int toml_fail(Parser *P, unsigned line, const char *fmt, ...) _printf_(3, 4);
/* Refuse what TOML forbids everywhere (NUL bytes, control characters, lone
 * CRs, invalid UTF-8), so the parser proper need not care. */
int toml_check_text(Parser *P);
/* Any of the four string forms, unescaped into b; P->p is at the opening quote. */
int toml_parse_string(Parser *P, Buf *b);
/* A bare, quoted or dotted key into k (at most TOML_DEPTH_MAX parts); k->text
 * and k->len are the key as written, for messages. */
int toml_parse_key(Parser *P, Key *k);

static inline int peek(const Parser *P) {
        return P->p < P->end ? (unsigned char) *P->p : -1;
}

static inline bool at(const Parser *P, const char *s) {
        size_t n = strlen(s);
        return (size_t) (P->end - P->p) >= n && memcmp(P->p, s, n) == 0;
}

static inline bool at_eol(const Parser *P) {
        int c = peek(P);
        return c < 0 || c == '\n' || c == '\r' || c == '#';
}

static inline void skip_ws(Parser *P) {
        while (P->p < P->end && (*P->p == ' ' || *P->p == '\t'))
                P->p++;
}

static inline void skip_comment(Parser *P) {
        if (peek(P) == '#')
                while (P->p < P->end && *P->p != '\n' && *P->p != '\r')
                        P->p++;
}

static inline bool newline(Parser *P) {
        if (!at(P, "\n") && !at(P, "\r\n"))
                return false;
        P->p += *P->p == '\r' ? 2 : 1;
        P->line++;
        return true;
}

/* Blanks, comments and line ends, as allowed between array elements. */
static inline void skip_blank(Parser *P) {
        do {
                skip_ws(P);
                skip_comment(P);
        } while (newline(P));
}

static inline bool is_bare(int c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || toml_is_digit(c) || c == '_' || c == '-';
}
