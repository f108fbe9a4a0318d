/* SPDX-License-Identifier: MIT */
/* The TOML reader's values: tables (in document order, with a hash index
 * from INDEX_MIN keys on), arrays, scalars, and the accessors of toml.h. */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "toml-internal.h"

TomlValue *toml_value_new(TomlType type, unsigned flags) {
        TomlValue *v = calloc(1, sizeof *v);
        if (v) {
                v->type = type;
                v->flags = flags;
        }
        return v;
}

TomlValue *toml_free(TomlValue *v) {
        if (!v)
                return NULL;
        if (v->type == TOML_TABLE) {
                for (size_t i = 0; i < v->table.n; i++) {
                        free(v->table.e[i].key);
                        toml_free(v->table.e[i].value);
                }
                free(v->table.e);
                free(v->table.index);
        } else if (v->type == TOML_ARRAY) {
                for (size_t i = 0; i < v->array.n; i++)
                        toml_free(v->array.v[i]);
                free(v->array.v);
        } else if (v->type == TOML_STRING || v->type == TOML_DATETIME)
                free(v->s);
        free(v);
        return NULL;
}

static uint32_t hash(const char *s) {
        uint32_t h = 2166136261u; /* FNV-1a */
        for (; *s; s++)
                h = (h ^ (unsigned char) *s) * 16777619u;
        return h;
}

TomlValue *toml_table_lookup(const TomlValue *t, const char *key) {
        assert(t);
        assert(t->type == TOML_TABLE);
        assert(key);

        if (t->table.index) {
                size_t mask = t->table.index_cap - 1;
                for (size_t h = hash(key) & mask; t->table.index[h]; h = (h + 1) & mask) {
                        const Entry *e = &t->table.e[t->table.index[h] - 1];
                        if (streq(e->key, key))
                                return e->value;
                }
                return NULL;
        }
        for (size_t i = 0; i < t->table.n; i++)
                if (streq(t->table.e[i].key, key))
                        return t->table.e[i].value;
        return NULL;
}

static void index_insert(TomlValue *t, size_t i) {
        size_t mask = t->table.index_cap - 1, h = hash(t->table.e[i].key) & mask;
        while (t->table.index[h])
                h = (h + 1) & mask;
        t->table.index[h] = (uint32_t) (i + 1);
}

/* Add key = v to t. On success takes *key (leaving NULL) and v; on failure both stay with the caller. */
int toml_table_add(TomlValue *t, char **key, TomlValue *v) {
        size_t n;

        assert(t);
        assert(t->type == TOML_TABLE);
        assert(key && *key);
        assert(v);

        n = t->table.n;
        if (n == t->table.cap) {
                size_t cap = n ? n * 2 : 4;
                Entry *e = realloc(t->table.e, cap * sizeof *e);
                if (!e)
                        return -ENOMEM;
                t->table.e = e;
                t->table.cap = cap;
        }
        if (n + 1 > INDEX_MIN && 2 * (n + 1) > t->table.index_cap) {
                size_t cap = t->table.index_cap ? t->table.index_cap * 2 : 4 * INDEX_MIN;
                uint32_t *ix = calloc(cap, sizeof *ix);
                if (!ix)
                        return -ENOMEM;
                free(t->table.index);
                t->table.index = ix;
                t->table.index_cap = cap;
                for (size_t i = 0; i < n; i++)
                        index_insert(t, i);
        }
        t->table.e[n] = (Entry){ TAKE_PTR(*key), v };
        t->table.n++;
        if (t->table.index)
                index_insert(t, n);
        return 0;
}

int toml_array_add(TomlValue *a, TomlValue *v) {
        assert(a);
        assert(a->type == TOML_ARRAY);
        assert(v);

        if (a->array.n == a->array.cap) {
                size_t cap = a->array.cap ? a->array.cap * 2 : 4;
                TomlValue **m = realloc(a->array.v, cap * sizeof *m);
                if (!m)
                        return -ENOMEM;
                a->array.v = m;
                a->array.cap = cap;
        }
        a->array.v[a->array.n++] = v;
        return 0;
}

TomlType toml_type(const TomlValue *v) {
        assert(v);
        return v->type;
}

const TomlValue *toml_table_get(const TomlValue *table, const char *key) {
        if (!table || table->type != TOML_TABLE || !key)
                return NULL;
        return toml_table_lookup(table, key);
}

const TomlValue *toml_get(const TomlValue *table, ...) {
        const char *key;
        va_list ap;

        va_start(ap, table);
        while (table && (key = va_arg(ap, const char *)))
                table = toml_table_get(table, key);
        va_end(ap);
        return table;
}

size_t toml_table_size(const TomlValue *table) {
        return table && table->type == TOML_TABLE ? table->table.n : 0;
}

const char *toml_table_key_at(const TomlValue *table, size_t i) {
        return i < toml_table_size(table) ? table->table.e[i].key : NULL;
}

const TomlValue *toml_table_value_at(const TomlValue *table, size_t i) {
        return i < toml_table_size(table) ? table->table.e[i].value : NULL;
}

size_t toml_array_size(const TomlValue *array) {
        return array && array->type == TOML_ARRAY ? array->array.n : 0;
}

const TomlValue *toml_array_at(const TomlValue *array, size_t i) {
        return i < toml_array_size(array) ? array->array.v[i] : NULL;
}

const char *toml_string(const TomlValue *v) {
        return v && v->type == TOML_STRING ? v->s : NULL;
}

const char *toml_datetime(const TomlValue *v) {
        return v && v->type == TOML_DATETIME ? v->s : NULL;
}

int toml_integer(const TomlValue *v, int64_t *ret) {
        assert(ret);

        if (!v || v->type != TOML_INTEGER)
                return -EINVAL;
        *ret = v->i;
        return 0;
}

int toml_boolean(const TomlValue *v, bool *ret) {
        assert(ret);

        if (!v || v->type != TOML_BOOLEAN)
                return -EINVAL;
        *ret = v->b;
        return 0;
}

int toml_float(const TomlValue *v, double *ret) {
        assert(ret);

        if (!v || v->type != TOML_FLOAT)
                return -EINVAL;
        *ret = v->f;
        return 0;
}
