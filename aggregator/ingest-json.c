/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "ingest-json.h"

/* The fast path met something it leaves to jansson. */
#define NOT_MINE 1

static int push(JvDoc *d, JvType type, const char *key, size_t *ret_index) {
        if (d->n_values == d->alloc) {
                size_t a = d->alloc ? d->alloc * 2 : 64;
                Jv *p = realloc(d->values, a * sizeof *p);

                if (!p)
                        return -ENOMEM;
                d->values = p;
                d->alloc = a;
        }
        d->values[d->n_values] = (Jv){ .type = type, .skip = 1, .key = key };
        *ret_index = d->n_values++;
        return 0;
}

static bool is_ws(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_delimiter(char c) {
        return is_ws(c) || c == ',' || c == '}' || c == ']';
}

/* A string without escapes of printable ASCII, NUL-terminated in place;
 * *p is at its opening quote and ends after its closing one. */
static int scan_string(char **p, const char **ret) {
        char *s = *p + 1, *q = s;

        while (*q >= 0x20 && *q < 0x7f && *q != '"' && *q != '\\')
                q++;
        if (*q != '"')
                return NOT_MINE;
        *q = 0;
        *ret = s;
        *p = q + 1;
        return 0;
}

/* Duplicate keys make a report invalid JSON: jansson words that. */
static bool has_duplicate_keys(const Jv *o) {
        const Jv *a = o + 1;

        for (uint32_t i = 0; i < o->n; i++, a += a->skip) {
                const Jv *b = a + a->skip;
                for (uint32_t j = i + 1; j < o->n; j++, b += b->skip)
                        if (a->key[0] == b->key[0] && strcmp(a->key, b->key) == 0)
                                return true;
        }
        return false;
}

/* One scalar or the start of a container at *p, as a new value. */
static int fast_value(JvDoc *d, char **p, const char *key, size_t *stack, unsigned *depth) {
        char *s = *p;
        size_t i;
        int r;

        switch (*s) {
        case '{':
        case '[':
                if (*depth >= JV_FAST_MAX_DEPTH)
                        return NOT_MINE;
                r = push(d, *s == '{' ? JV_OBJECT : JV_ARRAY, key, &i);
                if (r < 0)
                        return r;
                stack[(*depth)++] = i;
                *p = s + 1;
                return 0;
        case '"': {
                const char *v;
                r = scan_string(p, &v);
                if (r != 0)
                        return r;
                r = push(d, JV_STRING, key, &i);
                if (r < 0)
                        return r;
                d->values[i].string = v;
                return 0;
        }
        case 't':
        case 'f':
        case 'n': {
                static const struct { const char *word; JvType type; } words[] = {
                        { "true", JV_TRUE }, { "false", JV_FALSE }, { "null", JV_NULL },
                };
                for (size_t w = 0; w < ELEMENTSOF(words); w++) {
                        size_t n = strlen(words[w].word);
                        if (strncmp(s, words[w].word, n) == 0 && is_delimiter(s[n])) {
                                *p = s + n;
                                return push(d, words[w].type, key, &i);
                        }
                }
                return NOT_MINE;
        }
        default: {
                int64_t v = 0;
                size_t n = 0;

                /* Unsigned integers of up to 18 digits (no overflow); a
                 * leading zero, a sign, a fraction or an exponent are jansson's. */
                while (s[n] >= '0' && s[n] <= '9' && n < 18)
                        v = v * 10 + (s[n++] - '0');
                if (n == 0 || (s[0] == '0' && n > 1) || !is_delimiter(s[n]))
                        return NOT_MINE;
                r = push(d, JV_INTEGER, key, &i);
                if (r < 0)
                        return r;
                d->values[i].integer = v;
                *p = s + n;
                return 0;
        }
        }
}

static int fast_parse(JvDoc *d, const char *data, size_t size) {
        size_t stack[JV_FAST_MAX_DEPTH];
        unsigned depth = 0;
        char *p;
        int r;

        d->text = malloc(size + 1);
        if (!d->text)
                return -ENOMEM;
        memcpy(d->text, data, size);
        d->text[size] = 0;
        /* A NUL in the text would end it early here: jansson's. */
        if (memchr(d->text, 0, size))
                return NOT_MINE;

        p = d->text;
        while (is_ws(*p))
                p++;
        if (*p != '{')
                return NOT_MINE;
        r = fast_value(d, &p, NULL, stack, &depth);
        if (r != 0)
                return r;

        while (depth > 0) {
                Jv *c = &d->values[stack[depth - 1]];
                bool object = c->type == JV_OBJECT;
                const char *key = NULL;

                while (is_ws(*p))
                        p++;
                if (*p == (object ? '}' : ']')) {
                        c->skip = (uint32_t) (d->n_values - stack[depth - 1]);
                        if (object && has_duplicate_keys(c))
                                return NOT_MINE;
                        depth--;
                        p++;
                        continue;
                }
                if (c->n > 0) {
                        if (*p != ',')
                                return NOT_MINE;
                        p++;
                        while (is_ws(*p))
                                p++;
                }
                if (object) {
                        if (*p != '"' || c->n >= JV_FAST_MAX_MEMBERS)
                                return NOT_MINE;
                        r = scan_string(&p, &key);
                        if (r != 0)
                                return r;
                        while (is_ws(*p))
                                p++;
                        if (*p != ':')
                                return NOT_MINE;
                        p++;
                        while (is_ws(*p))
                                p++;
                }
                c->n++;
                r = fast_value(d, &p, key, stack, &depth);
                if (r != 0)
                        return r;
        }
        while (is_ws(*p))
                p++;
        return *p == 0 ? 0 : NOT_MINE;
}

/* jansson's tree, counted: values and the bytes of their strings. */
static void count_tree(const json_t *j, size_t *n, size_t *bytes) {
        const char *k;
        json_t *v;
        size_t i;

        (*n)++;
        if (json_is_string(j))
                *bytes += json_string_length(j) + 1;
        else if (json_is_object(j))
                json_object_foreach((json_t *) j, k, v) {
                        *bytes += strlen(k) + 1;
                        count_tree(v, n, bytes);
                }
        else if (json_is_array(j))
                json_array_foreach(j, i, v)
                        count_tree(v, n, bytes);
}

static char *copy_text(char **cursor, const char *s) {
        size_t n = strlen(s) + 1;
        char *r = *cursor;

        memcpy(r, s, n);
        *cursor += n;
        return r;
}

/* jansson's tree in the flat shape; room was counted. */
static void copy_tree(JvDoc *d, const json_t *j, const char *key, char **cursor) {
        size_t at = d->n_values++, i;
        Jv *v = &d->values[at];
        const char *k;
        json_t *e;

        *v = (Jv){ .key = key };
        switch (json_typeof(j)) {
        case JSON_OBJECT:
                v->type = JV_OBJECT;
                v->n = (uint32_t) json_object_size(j);
                json_object_foreach((json_t *) j, k, e)
                        copy_tree(d, e, copy_text(cursor, k), cursor);
                break;
        case JSON_ARRAY:
                v->type = JV_ARRAY;
                v->n = (uint32_t) json_array_size(j);
                json_array_foreach(j, i, e)
                        copy_tree(d, e, NULL, cursor);
                break;
        case JSON_STRING:
                v->type = JV_STRING;
                v->string = copy_text(cursor, json_string_value(j));
                break;
        case JSON_INTEGER:
                v->type = JV_INTEGER;
                v->integer = json_integer_value(j);
                break;
        case JSON_REAL:
                v->type = JV_REAL;
                v->real = json_real_value(j);
                break;
        case JSON_TRUE:
                v->type = JV_TRUE;
                break;
        case JSON_FALSE:
                v->type = JV_FALSE;
                break;
        case JSON_NULL:
                v->type = JV_NULL;
                break;
        }
        v->skip = (uint32_t) (d->n_values - at);
}

static int jansson_parse(JvDoc *d, const char *data, size_t size, char **ret_error) {
        json_auto_t *root = NULL;
        size_t n = 0, bytes = 0;
        json_error_t err;
        char *cursor;

        root = json_loadb(data, size, JSON_REJECT_DUPLICATES, &err);
        if (!root) {
                if (asprintf(ret_error, "invalid JSON at line %d column %d: %s", err.line, err.column, err.text) < 0)
                        return -ENOMEM;
                return -EBADMSG;
        }
        count_tree(root, &n, &bytes);
        d->values = calloc(n, sizeof *d->values);
        d->text = malloc(bytes ? bytes : 1);
        if (!d->values || !d->text)
                return -ENOMEM;
        d->alloc = n;
        cursor = d->text;
        copy_tree(d, root, NULL, &cursor);
        return 0;
}

void jv_doc_done(JvDoc *d) {
        if (!d)
                return;
        free(d->values);
        free(d->text);
        *d = (JvDoc){};
}

static int parse(const char *data, size_t size, bool fast, JvDoc *ret, char **ret_error) {
        JvDoc d = {};
        int r;

        assert(data || size == 0);
        assert(ret);
        assert(ret_error);

        *ret_error = NULL;
        r = data && fast ? fast_parse(&d, data, size) : NOT_MINE;
        d.fast = r == 0;
        if (r == NOT_MINE) {
                jv_doc_done(&d);
                r = jansson_parse(&d, data, size, ret_error);
        }
        if (r < 0) {
                jv_doc_done(&d);
                return r;
        }
        *ret = d;
        return 0;
}

int jv_parse(const char *data, size_t size, JvDoc *ret, char **ret_error) {
        return parse(data, size, true, ret, ret_error);
}

int jv_parse_jansson(const char *data, size_t size, JvDoc *ret, char **ret_error) {
        return parse(data, size, false, ret, ret_error);
}

const Jv *jv_get(const Jv *o, const char *key) {
        const Jv *v;
        const char *k;
        uint32_t i;

        assert(key);

        /* Most keys differ in their first byte: no call for those. */
        jv_object_foreach(o, k, v, i)
                if (k[0] == key[0] && strcmp(k, key) == 0)
                        return v;
        return NULL;
}
