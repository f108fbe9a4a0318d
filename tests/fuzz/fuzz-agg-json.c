/* SPDX-License-Identifier: MIT */
/* libFuzzer target, differential: the reports' JSON reader
 * (aggregator/ingest-json.c) gives, for every input, what jansson alone
 * gives: the same verdict, the same words when it refuses, the same tree
 * when it accepts, whether the fast path took the input or not. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest-json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_value(const Jv *a, const Jv *b) {
        if (a->type != b->type || a->n != b->n || a->skip != b->skip || !a->key != !b->key ||
            (a->key && strcmp(a->key, b->key) != 0))
                __builtin_trap();
        if (a->type == JV_STRING && strcmp(a->string, b->string) != 0)
                __builtin_trap();
        if (a->type == JV_INTEGER && a->integer != b->integer)
                __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *e1 = NULL, *e2 = NULL;
        JvDoc fast = {}, slow = {};
        int r1, r2;

        r1 = jv_parse((const char *) data, size, &fast, &e1);
        r2 = jv_parse_jansson((const char *) data, size, &slow, &e2);
        if (r1 != r2 || (r1 == -EBADMSG && strcmp(e1, e2) != 0))
                __builtin_trap();
        if (r1 >= 0) {
                if (fast.n_values != slow.n_values)
                        __builtin_trap();
                for (size_t i = 0; i < fast.n_values; i++)
                        same_value(&fast.values[i], &slow.values[i]);
        }
        jv_doc_done(&fast);
        jv_doc_done(&slow);
        free(e1);
        free(e2);
        return 0;
}
