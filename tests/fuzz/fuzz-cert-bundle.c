/* SPDX-License-Identifier: MIT */
/* libFuzzer target: any config map value must parse or be refused, never crash. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        CertBundle *b = NULL;
        const char *reason = NULL;

        if (cert_bundle_parse(data, size, &b, &reason) >= 0) {
                /* What we would write must itself parse to the same bundle. */
                CertBundle *again = NULL;
                if (cert_bundle_parse(b->pem, b->pem_size, &again, &reason) < 0 ||
                    again->pem_size != b->pem_size || memcmp(again->pem, b->pem, b->pem_size) != 0)
                        __builtin_trap();
                cert_bundle_free(again);
                cert_bundle_free(b);
        } else if (!reason)
                __builtin_trap();
        return 0;
}
