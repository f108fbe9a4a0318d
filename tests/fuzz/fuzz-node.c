/* SPDX-License-Identifier: MIT */
/* libFuzzer target: a Node object from the API server (hostile input like
 * any other) never crashes the node-status parser, and what it takes back
 * is whole: a condition it returns can be patched again. */
#include <stdint.h>
#include <stdlib.h>

#include "node-condition.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        NodeCondition c = {};
        char *uid = NULL;
        time_t transition = 0;

        if (node_parse((const char *) data, size, &uid, &c, &transition) >= 0) {
                json_t *patch = node_condition_patch_json(&c, 1, transition);
                /* Only allocation failure may refuse a parsed condition. */
                json_decref(patch);
                free(uid);
        }
        node_condition_done(&c);
        return 0;
}
