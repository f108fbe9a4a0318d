/* SPDX-License-Identifier: MIT */
/* libFuzzer target: key decoding never crashes, and what it accepts is a
 * name made only of host characters with at most one ':' port. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trust.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *key = strndup((const char *) data, size), *name = NULL;
        const char *reason = NULL;

        if (!key)
                return 0;
        if (registry_from_key(key, &name, &reason) >= 0) {
                char *colon = strchr(name, ':');
                if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:") != strlen(name) ||
                    (colon && (strchr(colon + 1, ':') || atoi(colon + 1) < 1 || atoi(colon + 1) > 65535)))
                        __builtin_trap();
                free(name);
        } else if (!reason)
                __builtin_trap();
        free(key);
        return 0;
}
