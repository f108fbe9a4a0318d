/* SPDX-License-Identifier: MIT */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>

#include "hash.h"

struct Sha256 {
        EVP_MD_CTX *ctx;
};

Sha256 *sha256_begin(void) {
        Sha256 *h = calloc(1, sizeof *h);
        if (!h)
                return NULL;
        h->ctx = EVP_MD_CTX_new();
        if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
                EVP_MD_CTX_free(h->ctx);
                free(h);
                return NULL;
        }
        return h;
}

void sha256_feed(Sha256 *h, const void *data, size_t size) {
        if (h)
                EVP_DigestUpdate(h->ctx, data, size);
}

void sha256_end(Sha256 *h, char ret[65]) {
        unsigned char md[32];
        unsigned len = 0;

        ret[0] = 0;
        if (!h)
                return;
        if (EVP_DigestFinal_ex(h->ctx, md, &len) == 1)
                for (unsigned i = 0; i < len && i < 32; i++)
                        snprintf(ret + 2 * i, 3, "%02x", md[i]);
        EVP_MD_CTX_free(h->ctx);
        free(h);
}

void sha256_hex(const void *data, size_t size, char ret[65]) {
        Sha256 *h = sha256_begin();
        sha256_feed(h, data, size);
        sha256_end(h, ret);
}
