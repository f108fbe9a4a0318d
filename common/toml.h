/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A small, strict reader for TOML 1.0: enough for containerd's config.toml
 * and hosts.toml, with no writer. The whole document is parsed into a tree
 * of immutable values; anything TOML 1.0 forbids (duplicate keys, tables
 * defined twice, invalid UTF-8, ...) is refused with the line it is on.
 *
 * Accessors take NULL and answer "absent", so lookups chain:
 *   toml_string(toml_get(root, "plugins", "io.containerd.grpc.v1.cri", "registry", "config_path", NULL))
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Larger documents are refused with -EFBIG. */
#define TOML_SIZE_MAX (1024 * 1024)
/* Deepest nesting of arrays and inline tables, and most parts in one key. */
#define TOML_DEPTH_MAX 64

typedef enum TomlType {
        TOML_TABLE,
        TOML_ARRAY,
        TOML_STRING,
        TOML_INTEGER,
        TOML_FLOAT,
        TOML_BOOLEAN,
        TOML_DATETIME,
} TomlType;

typedef struct TomlValue TomlValue;

/* Parse text (size bytes, need not be NUL-terminated; a NUL byte inside is an error) into a root table.
 * On bad input returns -EBADMSG and, if err != NULL, writes "line N: what is wrong" into err (errlen bytes,
 * always NUL-terminated). -ENOMEM on allocation failure. Input larger than TOML_SIZE_MAX -> -EFBIG.
 * *ret is only set on success. */
int toml_parse(const char *text, size_t size, TomlValue **ret, char *err, size_t errlen);
/* Free a tree returned by toml_parse(); accepts NULL, returns NULL. */
TomlValue *toml_free(TomlValue *v);
static inline void toml_freep(TomlValue **v) {
        toml_free(*v);
}
/* The type of v, which must not be NULL. */
TomlType toml_type(const TomlValue *v);
/* The value of key in table; NULL if absent or table is not a table. */
const TomlValue *toml_table_get(const TomlValue *table, const char *key);
/* Follow a NULL-terminated list of keys from table; NULL if any step is missing or not a table. */
const TomlValue *toml_get(const TomlValue *table, ...) __attribute__((sentinel));
/* Number of keys in table (0 if not a table). */
size_t toml_table_size(const TomlValue *table);
/* The i-th key of table, in document order of first definition; NULL if out of range. */
const char *toml_table_key_at(const TomlValue *table, size_t i);
/* The value of the i-th key of table; NULL if out of range. */
const TomlValue *toml_table_value_at(const TomlValue *table, size_t i);
/* Number of elements of array, static or of tables (0 if not an array). */
size_t toml_array_size(const TomlValue *array);
/* The i-th element of array; NULL if out of range. */
const TomlValue *toml_array_at(const TomlValue *array, size_t i);
/* NUL-terminated UTF-8, NULL if v is not a string (strings holding \u0000 are refused at parse time). */
const char *toml_string(const TomlValue *v);
/* Store an integer in *ret; -EINVAL if v is not an integer. */
int toml_integer(const TomlValue *v, int64_t *ret);
/* Store a boolean in *ret; -EINVAL if v is not a boolean. */
int toml_boolean(const TomlValue *v, bool *ret);
/* Store a float (inf and nan included) in *ret; -EINVAL if v is not a float (integers are not). */
int toml_float(const TomlValue *v, double *ret);
/* The text of a date, time or date-time as written, NULL if v is none of those. */
const char *toml_datetime(const TomlValue *v);
