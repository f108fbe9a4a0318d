/* SPDX-License-Identifier: MIT */
/* libFuzzer target: any document parses or is refused with "line N: ...", never
 * crashes; every accessor agrees with the tree it walks. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok) {
        if (!ok)
                __builtin_trap();
}

static void walk(const TomlValue *v, unsigned depth) {
        int64_t i;
        double f;
        bool b;

        check(depth < 4 * TOML_DEPTH_MAX);
        switch (toml_type(v)) {
        case TOML_TABLE:
                check(toml_array_size(v) == 0 && !toml_string(v) && toml_integer(v, &i) == -EINVAL);
                for (size_t k = 0; k < toml_table_size(v); k++) {
                        const char *key = toml_table_key_at(v, k);
                        const TomlValue *e = toml_table_value_at(v, k);
                        /* Keys are unique, so looking one up finds its own value. */
                        check(key && e && toml_table_get(v, key) == e && toml_get(v, key, NULL) == e);
                        walk(e, depth + 1);
                }
                check(!toml_table_key_at(v, toml_table_size(v)) && !toml_table_value_at(v, toml_table_size(v)));
                break;
        case TOML_ARRAY:
                check(toml_table_size(v) == 0 && !toml_table_get(v, "") && !toml_get(v, "x", NULL));
                for (size_t k = 0; k < toml_array_size(v); k++)
                        walk(toml_array_at(v, k), depth + 1);
                check(!toml_array_at(v, toml_array_size(v)));
                break;
        case TOML_STRING:
                check(toml_string(v) && !toml_datetime(v) && toml_boolean(v, &b) == -EINVAL);
                break;
        case TOML_INTEGER:
                check(toml_integer(v, &i) == 0 && toml_float(v, &f) == -EINVAL && !toml_string(v));
                break;
        case TOML_FLOAT:
                check(toml_float(v, &f) == 0 && toml_integer(v, &i) == -EINVAL);
                check(!isinf(f) || (f == INFINITY || f == -INFINITY));
                break;
        case TOML_BOOLEAN:
                check(toml_boolean(v, &b) == 0 && toml_integer(v, &i) == -EINVAL);
                break;
        case TOML_DATETIME:
                check(toml_datetime(v) && strlen(toml_datetime(v)) >= 8 && !toml_string(v));
                break;
        default:
                check(false);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        TomlValue *root = NULL;
        char err[128];
        int r;

        memset(err, 'x', sizeof err);
        r = toml_parse((const char *) data, size, &root, err, sizeof err);
        if (r < 0) {
                check(!root && (r == -EBADMSG || r == -EFBIG || r == -ENOMEM));
                check(memchr(err, 0, sizeof err) && (r != -EBADMSG || strncmp(err, "line ", 5) == 0));
                return 0;
        }
        check(root && toml_type(root) == TOML_TABLE);
        walk(root, 0);
        toml_free(root);
        return 0;
}
