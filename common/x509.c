/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base64.h"
#include "cleanup.h"
#include "hash.h"
#include "x509.h"

DEFINE_POINTER_CLEANUP(X509, X509_free)
DEFINE_POINTER_CLEANUP(BIO, BIO_free_all)

/* Parsing stops here; a config map value is at most 1 MiB anyway. */
#define MAX_CERTS CERT_BUNDLE_MAX_CERTS

static bool contains(const void *data, size_t size, const char *needle) {
        return memmem(data, size, needle, strlen(needle)) != NULL;
}

int x509_time_to_unix(const ASN1_TIME *t, time_t *ret) {
        struct tm tm = {};

        assert(ret);

        if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
                return -EBADMSG;
        *ret = timegm(&tm);
        return 0;
}

char *x509_name_oneline(const X509_NAME *n) {
        _cleanup_(BIO_free_allp) BIO *b = BIO_new(BIO_s_mem());
        char *p;
        long l;

        assert(n);

        if (!b || X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) < 0)
                return NULL;
        l = BIO_get_mem_data(b, &p);
        return strndup(p, l > 0 ? (size_t) l : 0);
}

CertBundle *cert_bundle_free(CertBundle *b) {
        if (!b)
                return NULL;
        for (size_t i = 0; i < b->n_certs; i++)
                free(b->certs[i].subject);
        free(b->certs);
        free(b->pem);
        free(b);
        return NULL;
}

/* Append x to the bundle unless a certificate with the same DER is there. */
static int bundle_add(CertBundle *b, BIO *out, X509 *x) {
        _cleanup_free_ unsigned char *der = NULL;
        char fp[65];
        int len;

        len = i2d_X509(x, &der);
        if (len <= 0)
                return -EBADMSG;
        sha256_hex(der, (size_t) len, fp);
        for (size_t i = 0; i < b->n_certs; i++)
                if (streq(b->certs[i].fingerprint, fp))
                        return 0;
        if (b->n_certs >= MAX_CERTS)
                return -E2BIG;
        /* OpenSSL reads a certificate whose validity dates are malformed,
         * but no runtime would use it, and it does not survive a PEM
         * round trip: refuse it rather than write it. (Found by fuzzing.) */
        time_t nb, na;
        if (x509_time_to_unix(X509_get0_notBefore(x), &nb) < 0 || x509_time_to_unix(X509_get0_notAfter(x), &na) < 0)
                return -EBADMSG;

        CertInfo *n = realloc(b->certs, (b->n_certs + 1) * sizeof *n);
        if (!n)
                return -ENOMEM;
        b->certs = n;

        CertInfo *ci = &b->certs[b->n_certs];
        *ci = (CertInfo){};
        memcpy(ci->fingerprint, fp, sizeof fp);
        ci->not_before = nb;
        ci->not_after = na;
        ci->is_ca = X509_check_ca(x) > 0;
        ci->subject = x509_name_oneline(X509_get_subject_name(x));
        if (!ci->subject)
                return -ENOMEM;
        b->n_certs++;

        if (PEM_write_bio_X509(out, x) != 1)
                return -ENOMEM;
        return 0;
}

/* Reasons naming a certificate by its place are made here; like the static
 * ones they stay valid until the next cert_bundle_parse() (the agent is
 * single-threaded, and the caller copies the reason at once). */
static char reason_buf[256];

static const char *reason_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *reason_printf(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(reason_buf, sizeof reason_buf, fmt, ap);
        va_end(ap);
        return reason_buf;
}

/* OpenSSL's reason for the last error, for an operator to act on. */
static const char *openssl_reason(void) {
        const char *why = ERR_reason_error_string(ERR_peek_last_error());

        return why ? why : "not a valid X.509 certificate";
}

static bool is_cert_block(const char *name) {
        return streq(name, PEM_STRING_X509) || streq(name, PEM_STRING_X509_OLD);
}

static size_t count(const void *data, size_t size, const char *needle) {
        const char *p = data, *end = p + size;
        size_t n = 0, l = strlen(needle);

        while (p < end && (p = memmem(p, (size_t) (end - p), needle, l))) {
                n++;
                p += l;
        }
        return n;
}

/* A bundle is all or nothing: every PEM certificate block must parse, or
 * the value is refused naming the one that did not. (PEM_read_bio_X509()
 * in a loop stopped quietly at the first bad block, and the certificates
 * before it were written as if they were the whole bundle.) Blocks of
 * other types (a CRL, parameters) and text between blocks are skipped. */
static int parse_pem(CertBundle *b, BIO *out, const void *data, size_t size, const char **reason) {
        _cleanup_(BIO_free_allp) BIO *in = BIO_new_mem_buf(data, (int) size);
        size_t total = count(data, size, "-----BEGIN " PEM_STRING_X509 "-----") +
                       count(data, size, "-----BEGIN " PEM_STRING_X509_OLD "-----");
        size_t i = 0;
        int r;

        if (!in)
                return -ENOMEM;
        if (total > MAX_CERTS) {
                *reason = reason_printf("more than %u certificates (the bundle has %zu)", MAX_CERTS, total);
                return -E2BIG;
        }
        ERR_clear_error();
        for (;;) {
                char *name = NULL, *header = NULL;
                unsigned char *der = NULL;
                long len = 0;

                if (PEM_read_bio(in, &name, &header, &der, &len) != 1) {
                        unsigned long e = ERR_peek_last_error();
                        bool end = ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;

                        ERR_clear_error();
                        /* Every BEGIN line read as a block: OpenSSL skips
                         * one with text after it, and what follows it was
                         * taken for the whole bundle. (Found by fuzzing.) */
                        if (end && i < total) {
                                *reason = reason_printf("%zu of %zu certificate blocks could not be read (a BEGIN or END line with other text on it?)",
                                                        total - i, total);
                                return -EBADMSG;
                        }
                        if (end)
                                return 0;
                        /* A block whose base64 or END line is broken: its
                         * type is unknown, but every certificate read so far
                         * was counted. */
                        if (i < total)
                                *reason = reason_printf("certificate %zu of %zu could not be parsed: malformed PEM (bad base64 or no END line)",
                                                        i + 1, total);
                        else
                                *reason = reason_printf("a PEM block after certificate %zu of %zu could not be read (bad base64 or no END line)",
                                                        i, total);
                        return -EBADMSG;
                }

                _cleanup_free_ char *name_free = name, *header_free = header;
                _cleanup_free_ unsigned char *der_free = der;
                if (!is_cert_block(name))
                        continue;
                i++;

                const unsigned char *p = der;
                _cleanup_(X509_freep) X509 *x = d2i_X509(NULL, &p, len);
                if (!x) {
                        *reason = reason_printf("certificate %zu of %zu could not be parsed: %s", i, total,
                                                openssl_reason());
                        ERR_clear_error();
                        return -EBADMSG;
                }
                r = bundle_add(b, out, x);
                if (r == -EBADMSG)
                        *reason = reason_printf("certificate %zu of %zu could not be parsed: malformed validity dates",
                                                i, total);
                else if (r == -E2BIG)
                        *reason = reason_printf("more than %u certificates", MAX_CERTS);
                if (r < 0)
                        return r;
        }
}

static int parse_der(CertBundle *b, BIO *out, const void *data, size_t size, const char **reason) {
        const unsigned char *p = data, *end = p + size;
        size_t i = 0;
        int r;

        /* Concatenated DER certificates; every byte must belong to one. */
        while (p < end) {
                i++;
                _cleanup_(X509_freep) X509 *x = d2i_X509(NULL, &p, end - p);
                if (!x) {
                        /* A first "certificate" that is none may be anything
                         * that happens to start with 0x30. */
                        *reason = i == 1 ? "not PEM, base64 or a DER certificate"
                                         : reason_printf("DER certificate %zu could not be parsed: %s", i,
                                                         openssl_reason());
                        ERR_clear_error();
                        return -EBADMSG;
                }
                r = bundle_add(b, out, x);
                if (r == -EBADMSG)
                        *reason = reason_printf("DER certificate %zu could not be parsed: malformed validity dates", i);
                else if (r == -E2BIG)
                        *reason = reason_printf("more than %u certificates", MAX_CERTS);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_any(CertBundle *b, BIO *out, const void *data, size_t size, bool allow_base64,
                     const char **reason) {
        if (contains(data, size, "PRIVATE KEY-----")) {
                *reason = "the value holds a private key; only CA certificates belong here";
                return -EPERM;
        }
        if (contains(data, size, "-----BEGIN "))
                return parse_pem(b, out, data, size, reason);
        if (size > 0 && ((const unsigned char *) data)[0] == 0x30)
                return parse_der(b, out, data, size, reason);
        if (allow_base64) {
                _cleanup_free_ unsigned char *dec = NULL;
                size_t dec_size = 0;
                if (base64_decode_alloc(data, size, &dec, &dec_size) >= 0)
                        return parse_any(b, out, dec, dec_size, false, reason);
        }
        *reason = "not PEM, base64 or a DER certificate";
        return -EBADMSG;
}

static int bundle_parse(const void *data, size_t size, CertBundle **ret, const char **ret_reason) {
        _cleanup_(cert_bundle_freep) CertBundle *b = calloc(1, sizeof *b);
        _cleanup_(BIO_free_allp) BIO *out = BIO_new(BIO_s_mem());
        const char *reason = NULL;
        char *p;
        long len;
        int r;

        assert(data || size == 0);
        assert(ret);
        assert(ret_reason);

        if (!b || !out)
                return -ENOMEM;

        /* An empty or whitespace-only value is "no certificate", not garbage. */
        bool blank = true;
        for (size_t i = 0; i < size && blank; i++) {
                char c = ((const char *) data)[i];
                /* Not strchr(): it finds the NUL terminator, and a value of
                 * NUL bytes was taken for an empty one. */
                blank = c == ' ' || c == '\t' || c == '\r' || c == '\n';
        }
        if (blank) {
                *ret_reason = "the value is empty";
                return -ENOENT;
        }

        r = parse_any(b, out, data, size, true, &reason);
        if (r < 0) {
                *ret_reason = reason;
                return r;
        }
        if (b->n_certs == 0) {
                *ret_reason = "no certificate in the value";
                return -ENOENT;
        }

        len = BIO_get_mem_data(out, &p);
        b->pem = strndup(p, (size_t) len);
        if (!b->pem)
                return -ENOMEM;
        b->pem_size = (size_t) len;
        *ret = TAKE_PTR(b);
        return 0;
}

time_t cert_bundle_not_after(const CertBundle *b) {
        time_t t = 0;

        assert(b);

        for (size_t i = 0; i < b->n_certs; i++)
                if (t == 0 || b->certs[i].not_after < t)
                        t = b->certs[i].not_after;
        return t;
}

time_t cert_bundle_not_before(const CertBundle *b) {
        time_t t = 0;

        assert(b);

        for (size_t i = 0; i < b->n_certs; i++)
                if (b->certs[i].not_before > t)
                        t = b->certs[i].not_before;
        return t;
}

/* Many registries of a map often hold the same bundle (a company's root),
 * and OpenSSL 3 decodes each certificate's public key while parsing it
 * (some 0.1 ms each): parse a value once, and copy the result for the same
 * bytes again. A few small bundles are kept, the least recently used
 * replaced; refusals are not kept (their reason is made per call). */
#define CACHE_ENTRIES 16
#define CACHE_MAX_VALUE (16U * 1024U)

static struct {
        char key[65]; /* sha256 of the value; "" free */
        CertBundle *bundle;
        uint64_t used;
} cache[CACHE_ENTRIES];
static uint64_t cache_clock;

static int bundle_copy(const CertBundle *b, CertBundle **ret) {
        _cleanup_(cert_bundle_freep) CertBundle *c = calloc(1, sizeof *c);

        if (!c || !(c->pem = malloc(b->pem_size + 1)) || !(c->certs = calloc(b->n_certs, sizeof *c->certs)))
                return -ENOMEM;
        memcpy(c->pem, b->pem, b->pem_size + 1);
        c->pem_size = b->pem_size;
        for (size_t i = 0; i < b->n_certs; i++) {
                c->certs[i] = b->certs[i];
                c->certs[i].subject = strdup(b->certs[i].subject);
                if (!c->certs[i].subject)
                        return -ENOMEM;
                c->n_certs = i + 1;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

int cert_bundle_parse(const void *data, size_t size, CertBundle **ret, const char **ret_reason) {
        CertBundle *copy = NULL;
        size_t victim = 0;
        char key[65];
        int r;

        assert(data || size == 0);
        assert(ret);
        assert(ret_reason);

        if (size > CACHE_MAX_VALUE || size == 0)
                return bundle_parse(data, size, ret, ret_reason);
        sha256_hex(data, size, key);
        for (size_t i = 0; i < CACHE_ENTRIES; i++) {
                if (streq(cache[i].key, key)) {
                        cache[i].used = ++cache_clock;
                        return bundle_copy(cache[i].bundle, ret);
                }
                if (cache[i].used < cache[victim].used)
                        victim = i;
        }
        r = bundle_parse(data, size, ret, ret_reason);
        if (r < 0)
                return r;
        if (bundle_copy(*ret, &copy) < 0)
                return 0; /* parsed all the same; only not kept */
        cert_bundle_free(cache[victim].bundle);
        cache[victim].bundle = copy;
        memcpy(cache[victim].key, key, sizeof key);
        cache[victim].used = ++cache_clock;
        return 0;
}
