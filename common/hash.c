/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>

#include "hash.h"

struct Sha256 {
        EVP_MD_CTX *ctx;
};

/* OpenSSL 3 looks the implementation up on every EVP_sha256() init (about
 * 35,000 instructions, most of a small file's hash): fetch it once. The
 * process is single-threaded; it lives until exit. */
static const EVP_MD *sha256_md(void) {
        static EVP_MD *md;
        if (!md)
                md = EVP_MD_fetch(NULL, "SHA256", NULL);
        return md ? md : EVP_sha256();
}

Sha256 *sha256_begin(void) {
        Sha256 *h = calloc(1, sizeof *h);
        if (!h)
                return NULL;
        h->ctx = EVP_MD_CTX_new();
        if (!h->ctx || EVP_DigestInit_ex(h->ctx, sha256_md(), NULL) != 1) {
                EVP_MD_CTX_free(h->ctx);
                free(h);
                return NULL;
        }
        return h;
}

void sha256_feed(Sha256 *h, const void *data, size_t size) {
        /* h is NULL when sha256_begin() failed; sha256_end() then gives "". */
        assert(data || size == 0);

        if (h)
                EVP_DigestUpdate(h->ctx, data, size);
}

void sha256_end(Sha256 *h, char ret[65]) {
        unsigned char md[32];
        unsigned len = 0;

        assert(ret);

        ret[0] = 0;
        if (!h)
                return;
        if (EVP_DigestFinal_ex(h->ctx, md, &len) == 1 && len == 32) {
                static const char hex[] = "0123456789abcdef";
                for (unsigned i = 0; i < 32; i++) {
                        ret[2 * i] = hex[md[i] >> 4];
                        ret[2 * i + 1] = hex[md[i] & 15];
                }
                ret[64] = 0;
        }
        EVP_MD_CTX_free(h->ctx);
        free(h);
}

void sha256_hex(const void *data, size_t size, char ret[65]) {
        Sha256 *h;

        assert(data || size == 0);
        assert(ret);

        h = sha256_begin();
        sha256_feed(h, data, size);
        sha256_end(h, ret);
}
