/* SPDX-License-Identifier: MIT */
/* libFuzzer target: any config map value (PEM, base64 of PEM or DER, DER)
 * must parse or be refused with a reason, never crash; what parses
 * re-parses to the same bundle.
 *
 * FUZZ_STRICT=1 (make FUZZ_STRICT=1 fuzz) also demands what the hardening
 * work makes true: a PEM bundle is all or nothing, so every certificate
 * block in the value is in the bundle. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "x509.h"

#ifndef FUZZ_STRICT
#define FUZZ_STRICT 0
#endif

/* The first END line at or after p: one that starts a line, as OpenSSL's
 * PEM reader reads it ("-----END" inside a data line is data to it). */
static const uint8_t *end_line(const uint8_t *p, const uint8_t *stop, const char *end) {
        const uint8_t *start = p;

        while ((p = memmem(p, (size_t) (stop - p), end, strlen(end)))) {
                if (p > start && p[-1] == '\n')
                        return p;
                p++;
        }
        return NULL;
}

/* Whether every BEGIN CERTIFICATE ... END CERTIFICATE block of the value
 * parses by itself. */
static bool every_block_parses(const uint8_t *data, size_t size) {
        static const char begin[] = "-----BEGIN CERTIFICATE-----", end[] = "-----END CERTIFICATE-----";
        const uint8_t *p = data, *stop = data + size;

        while ((p = memmem(p, (size_t) (stop - p), begin, strlen(begin)))) {
                const uint8_t *e = end_line(p, stop, end);
                CertBundle *one = NULL;
                const char *why = NULL;

                if (!e)
                        return false;
                e += strlen(end);
                if (cert_bundle_parse(p, (size_t) (e - p), &one, &why) < 0)
                        return false;
                cert_bundle_free(one);
                p = e;
        }
        return true;
}

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
                if (FUZZ_STRICT && !every_block_parses(data, size))
                        __builtin_trap();
                cert_bundle_free(b);
        } else if (!reason)
                __builtin_trap();
        return 0;
}
