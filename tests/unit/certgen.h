/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Test helper: make a self-signed CA certificate in memory with a chosen
 * validity window, as PEM or DER, so value-parsing tests need no fixtures
 * and can cover expired and not-yet-valid certificates.
 */

#include <stdbool.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

static EVP_PKEY *certgen_key(void) {
        static EVP_PKEY *key;
        if (!key)
                key = EVP_EC_gen("P-256");
        return key;
}

/* Offsets in seconds from now. der: DER instead of PEM. */
static inline char *certgen(const char *cn, long not_before, long not_after, bool der, size_t *ret_size) {
        X509 *x = X509_new();
        X509_NAME *name;
        X509_EXTENSION *ext;
        X509V3_CTX ctx;
        BIO *b = BIO_new(BIO_s_mem());
        static long serial = 1;
        char *p, *out;
        long len;

        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
        X509_gmtime_adj(X509_getm_notBefore(x), not_before);
        X509_gmtime_adj(X509_getm_notAfter(x), not_after);
        X509_set_pubkey(x, certgen_key());
        name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1, 0);
        X509_set_issuer_name(x, name);
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
        X509_sign(x, certgen_key(), EVP_sha256());

        if (der)
                i2d_X509_bio(b, x);
        else
                PEM_write_bio_X509(b, x);
        len = BIO_get_mem_data(b, &p);
        out = malloc((size_t) len + 1);
        memcpy(out, p, (size_t) len);
        out[len] = 0;
        *ret_size = (size_t) len;
        BIO_free(b);
        X509_free(x);
        return out;
}

static inline char *certgen_pem(const char *cn) {
        size_t n;
        return certgen(cn, -3600, 365L * 24 * 3600, false, &n);
}

/* The PEM of the test key: a value that must be refused. */
static inline char *certgen_key_pem(void) {
        BIO *b = BIO_new(BIO_s_mem());
        char *p, *out;
        long len;

        PEM_write_bio_PrivateKey(b, certgen_key(), NULL, NULL, 0, NULL, NULL);
        len = BIO_get_mem_data(b, &p);
        out = strndup(p, (size_t) len);
        BIO_free(b);
        return out;
}
