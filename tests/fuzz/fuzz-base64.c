/* SPDX-License-Identifier: MIT */
/* libFuzzer target: base64 (config map binaryData, secret data, kubeconfig
 * *-data, base64-of-PEM values) decodes or is refused, never reads or
 * writes out of bounds; what decodes is at most 3/4 of the input, NUL
 * terminated; the canonical encoding of any bytes decodes back to them,
 * with or without padding and with line breaks anywhere. */
#include <errno.h>
#include <string.h>

#include "base64.h"
#include "fuzz-util.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t encode(const uint8_t *d, size_t n, char *out, bool pad, size_t wrap) {
        size_t o = 0, col = 0;

        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t) d[i] << 16 | (i + 1 < n ? (uint32_t) d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
                size_t chars = i + 2 < n ? 4 : i + 1 < n ? 3 : 2;
                for (size_t c = 0; c < 4; c++) {
                        if (c >= chars && !pad)
                                break;
                        out[o++] = c < chars ? alphabet[(v >> (18 - 6 * c)) & 63] : '=';
                        if (wrap && ++col % wrap == 0)
                                out[o++] = '\n';
                }
        }
        return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        unsigned char *dec = NULL;
        size_t n = 0;
        char *enc;
        int r;

        /* Hostile text as it comes. */
        r = base64_decode_alloc((const char *) data, size, &dec, &n);
        if (r >= 0) {
                fuzz_check(dec && n <= size / 4 * 3 + 2 && dec[n] == 0);
                free(dec);
        } else
                fuzz_check(r == -EBADMSG || r == -ENOMEM);

        /* Any bytes, encoded the ways Kubernetes and editors write them. */
        enc = malloc(size * 2 + 8);
        if (!enc)
                return 0;
        for (unsigned variant = 0; variant < 3; variant++) {
                size_t len = encode(data, size, enc, variant != 1, variant == 2 ? 76 : 0);
                dec = NULL;
                fuzz_check(base64_decode_alloc(enc, len, &dec, &n) == 0);
                fuzz_check(n == size && memcmp(dec, data, size) == 0);
                free(dec);
        }
        free(enc);
        return 0;
}
