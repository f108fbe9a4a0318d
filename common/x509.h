/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Certificate bundles: parse PEM, base64-of-PEM, base64-of-DER and DER
 * (one or more certificates) with OpenSSL, refuse anything holding a private
 * key, and re-emit a normalized PEM bundle with duplicates removed.
 */

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

typedef struct CertInfo {
        char fingerprint[65]; /* sha256 of the DER, hex */
        char *subject;        /* one-line RFC 2253 subject */
        time_t not_before;
        time_t not_after;
        bool is_ca;           /* basicConstraints CA:TRUE */
} CertInfo;

typedef struct CertBundle {
        char *pem; /* normalized PEM, NUL-terminated */
        size_t pem_size;
        CertInfo *certs;
        size_t n_certs;
} CertBundle;

/* A bundle holds at most this many certificates (before duplicates are removed). */
#define CERT_BUNDLE_MAX_CERTS 512u

/* Parse data into a bundle, all or nothing. On refusal returns a negative
 * errno and sets *ret_reason to a human-readable reason, valid until the
 * next call (copy it):
 *   -EPERM   the value holds a private key
 *   -ENOENT  no certificate found (empty value)
 *   -E2BIG   more than CERT_BUNDLE_MAX_CERTS certificates
 *   -EBADMSG garbage, or a certificate OpenSSL cannot parse ("certificate 2
 *            of 3 could not be parsed: ..."): none of the others is kept */
int cert_bundle_parse(const void *data, size_t size, CertBundle **ret, const char **ret_reason);

CertBundle *cert_bundle_free(CertBundle *b);
static inline void cert_bundle_freep(CertBundle **b) {
        if (*b)
                cert_bundle_free(*b);
}

/* Earliest notAfter / latest notBefore of the bundle. */
time_t cert_bundle_not_after(const CertBundle *b);
time_t cert_bundle_not_before(const CertBundle *b);

/* An ASN.1 time (notBefore, notAfter) as unix seconds; -EBADMSG when malformed. */
int x509_time_to_unix(const ASN1_TIME *t, time_t *ret);

/* A certificate name as one RFC 2253 line ("CN=x,O=y"), malloc'd; NULL on OOM. */
char *x509_name_oneline(const X509_NAME *n);
