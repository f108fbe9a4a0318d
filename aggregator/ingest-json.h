/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A parsed JSON document as one flat array of values, for reading reports
 * fast. jansson parses a 6 KB agent report in ~150 us (its lexer takes the
 * text a byte at a time through a callback, every value and key is its own
 * allocation, every object a hash table): at thousands of reports a second
 * that was most of the aggregator's CPU.
 *
 * jv_parse() reads the plain JSON agents send (printable ASCII strings
 * without escapes, integers without sign, fraction or exponent, no
 * duplicate keys, nesting at most JV_FAST_MAX_DEPTH) itself: one pass, the
 * strings left in (a copy of) the text, one array for the values. Anything
 * else (an escape, a non-ASCII byte, a real number, a syntax error, ...)
 * goes to jansson, as before, and jansson's tree is copied into the same
 * shape: jansson still decides what is valid JSON and words every error,
 * so what is accepted and what is said is the same as ever, only faster
 * for the usual report.
 *
 * Values are in document order; a value's children follow it, and `skip`
 * steps over a value with everything in it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JV_FAST_MAX_DEPTH 32U
/* Objects with more members go to jansson (its hash table finds
 * duplicates; the fast path compares every pair). */
#define JV_FAST_MAX_MEMBERS 64U

typedef enum JvType {
        JV_NULL,
        JV_TRUE,
        JV_FALSE,
        JV_INTEGER,
        JV_REAL,
        JV_STRING,
        JV_ARRAY,
        JV_OBJECT,
} JvType;

typedef struct Jv {
        JvType type;
        uint32_t n;           /* members of an object, elements of an array */
        uint32_t skip;        /* this value and everything in it, in values */
        const char *key;      /* the member's name, when inside an object */
        union {
                int64_t integer;
                double real;
                const char *string; /* NUL-terminated, no NUL inside */
        };
} Jv;

typedef struct JvDoc {
        Jv *values;           /* values[0] is the root */
        size_t n_values, alloc;
        char *text;           /* the strings point in here */
        bool fast;            /* read by the fast path, not through jansson */
} JvDoc;

/* Parse size bytes at data (an object or array at the top, as jansson
 * without JSON_DECODE_ANY, duplicate keys refused). On invalid JSON,
 * -EBADMSG and jansson's words in *ret_error (free it): "invalid JSON at
 * line L column C: text". -ENOMEM. */
int jv_parse(const char *data, size_t size, JvDoc *ret, char **ret_error);
void jv_doc_done(JvDoc *d);

/* jv_parse() through jansson always, as it is for what the fast path
 * leaves: for tests that compare the two. */
int jv_parse_jansson(const char *data, size_t size, JvDoc *ret, char **ret_error);

static inline const Jv *jv_root(const JvDoc *d) {
        return d->n_values > 0 ? &d->values[0] : NULL;
}

/* The member of object o named key; NULL when o is no object or has none. */
const Jv *jv_get(const Jv *o, const char *key);

static inline bool jv_is_object(const Jv *v) { return v && v->type == JV_OBJECT; }
static inline bool jv_is_array(const Jv *v) { return v && v->type == JV_ARRAY; }
static inline bool jv_is_string(const Jv *v) { return v && v->type == JV_STRING; }
static inline bool jv_is_integer(const Jv *v) { return v && v->type == JV_INTEGER; }
static inline bool jv_is_null(const Jv *v) { return v && v->type == JV_NULL; }
static inline bool jv_is_boolean(const Jv *v) { return v && (v->type == JV_TRUE || v->type == JV_FALSE); }
static inline bool jv_is_true(const Jv *v) { return v && v->type == JV_TRUE; }

/* NULL for anything but a string, as json_string_value(). */
static inline const char *jv_string(const Jv *v) { return jv_is_string(v) ? v->string : NULL; }
/* 0 for anything but an integer, as json_integer_value(). */
static inline int64_t jv_integer(const Jv *v) { return jv_is_integer(v) ? v->integer : 0; }
/* Members of an object, elements of an array, 0 for anything else. */
static inline size_t jv_size(const Jv *v) {
        return v && (v->type == JV_OBJECT || v->type == JV_ARRAY) ? v->n : 0;
}

/* for (i, e) over the elements of array a; for (key, v) over the members of
 * object o, in document order. */
#define jv_array_foreach(a, i, e) \
        for ((i) = 0, (e) = jv_is_array(a) ? (a) + 1 : NULL; (e) && (i) < (a)->n; (i)++, (e) += (e)->skip)
#define jv_object_foreach(o, k, v, i) \
        for ((i) = 0, (v) = jv_is_object(o) ? (o) + 1 : NULL; (v) && (i) < (o)->n && ((k) = (v)->key, 1); \
             (i)++, (v) += (v)->skip)
