/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <string.h>
#include <time.h>

#include "certgen.h"
#include "cleanup.h"
#include "fs.h"
#include "x509.h"

static CertBundle *parse_ok(const void *data, size_t size) {
        CertBundle *b = NULL;
        const char *reason = NULL;
        int r = cert_bundle_parse(data, size, &b, &reason);
        if (r < 0)
                fail_msg("refused: %s", reason);
        return b;
}

static int parse_fail(const void *data, size_t size, const char **reason) {
        CertBundle *b = NULL;
        int r = cert_bundle_parse(data, size, &b, reason);
        assert_true(r < 0);
        assert_null(b);
        assert_non_null(*reason);
        return r;
}

static char *base64(const void *data, size_t size) {
        char *out = malloc(size * 2 + 4);
        EVP_EncodeBlock((unsigned char *) out, data, (int) size);
        return out;
}

static void test_pem_single(void **state) {
        _cleanup_free_ char *pem = certgen_pem("Single");
        _cleanup_(cert_bundle_freep) CertBundle *b = parse_ok(pem, strlen(pem));

        (void) state;
        assert_int_equal(b->n_certs, 1);
        assert_string_equal(b->pem, pem); /* already normal: unchanged */
        assert_non_null(strstr(b->certs[0].subject, "CN=Single"));
        assert_true(b->certs[0].is_ca);
        assert_true(cert_bundle_not_after(b) > time(NULL));
}

static void test_pem_bundle_dedup_and_noise(void **state) {
        _cleanup_free_ char *a = certgen_pem("A"), *b2 = certgen_pem("B");
        _cleanup_free_ char *in = NULL;
        _cleanup_(cert_bundle_freep) CertBundle *b = NULL;

        (void) state;
        /* Comments, CRLF-free text between blocks and a duplicate of A. */
        assert_true(asprintf(&in, "# registry CAs\n%s\nsome text\n%s%s", a, b2, a) > 0);
        b = parse_ok(in, strlen(in));
        assert_int_equal(b->n_certs, 2);
        assert_non_null(strstr(b->certs[0].subject, "CN=A"));
        assert_non_null(strstr(b->certs[1].subject, "CN=B"));
        /* Normalized output: exactly the two PEM blocks, in input order. */
        assert_int_equal(b->pem_size, strlen(a) + strlen(b2));
        assert_memory_equal(b->pem, a, strlen(a));
        assert_null(strstr(b->pem, "registry CAs"));
}

static void test_base64_of_pem(void **state) {
        _cleanup_free_ char *pem = certgen_pem("B64");
        _cleanup_free_ char *b64 = base64(pem, strlen(pem));
        _cleanup_free_ char *wrapped = NULL;
        _cleanup_(cert_bundle_freep) CertBundle *b = parse_ok(b64, strlen(b64));

        (void) state;
        assert_int_equal(b->n_certs, 1);
        assert_string_equal(b->pem, pem);

        /* Line-wrapped base64 with a trailing newline, as kubectl writes it. */
        size_t n = strlen(b64);
        wrapped = malloc(n + n / 76 + 3);
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
                wrapped[o++] = b64[i];
                if (i % 76 == 75)
                        wrapped[o++] = '\n';
        }
        wrapped[o++] = '\n';
        wrapped[o] = 0;
        _cleanup_(cert_bundle_freep) CertBundle *w = parse_ok(wrapped, o);
        assert_string_equal(w->pem, pem);
}

static void test_der_and_base64_der(void **state) {
        size_t n;
        _cleanup_free_ char *der = certgen("DER", -60, 3600, true, &n);
        _cleanup_free_ char *b64 = base64(der, n);
        _cleanup_(cert_bundle_freep) CertBundle *b = parse_ok(der, n);
        _cleanup_(cert_bundle_freep) CertBundle *b2 = parse_ok(b64, strlen(b64));

        (void) state;
        assert_int_equal(b->n_certs, 1);
        assert_non_null(strstr(b->pem, "-----BEGIN CERTIFICATE-----"));
        assert_string_equal(b->pem, b2->pem);
}

static void test_refusals(void **state) {
        _cleanup_free_ char *key = certgen_key_pem();
        _cleanup_free_ char *pem = certgen_pem("with key");
        _cleanup_free_ char *both = NULL;
        _cleanup_free_ char *b64key = base64(key, strlen(key));
        const char *reason;

        (void) state;
        assert_int_equal(parse_fail(key, strlen(key), &reason), -EPERM);
        assert_non_null(strstr(reason, "private key"));
        /* A certificate does not excuse a key next to it. */
        assert_true(asprintf(&both, "%s%s", pem, key) > 0);
        assert_int_equal(parse_fail(both, strlen(both), &reason), -EPERM);
        /* Nor does base64 hide it. */
        assert_int_equal(parse_fail(b64key, strlen(b64key), &reason), -EPERM);

        assert_int_equal(parse_fail("", 0, &reason), -ENOENT);
        assert_int_equal(parse_fail(" \n\t", 3, &reason), -ENOENT);
        assert_int_equal(parse_fail("hello world", 11, &reason), -EBADMSG);
        assert_int_equal(parse_fail("aGVsbG8=", 8, &reason), -EBADMSG); /* base64 of "hello" */
        assert_int_equal(parse_fail("\x30\x03\x01\x02\x03", 5, &reason), -EBADMSG);

        /* A PEM armour around garbage. */
        const char *bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_int_equal(parse_fail(bad, strlen(bad), &reason), -EBADMSG);
        /* PEM with no certificate block at all. */
        const char *crl = "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n";
        assert_int_equal(parse_fail(crl, strlen(crl), &reason), -ENOENT);
}

static void test_truncated_der(void **state) {
        size_t n;
        _cleanup_free_ char *der = certgen("DER", -60, 3600, true, &n);
        const char *reason;

        (void) state;
        assert_int_equal(parse_fail(der, n - 10, &reason), -EBADMSG);
}

static void test_expired_parses(void **state) {
        size_t n;
        _cleanup_free_ char *pem = certgen("Expired", -7200, -3600, false, &n);
        _cleanup_(cert_bundle_freep) CertBundle *b = parse_ok(pem, n);

        (void) state;
        /* Parsing does not judge validity; the trust set flags it. */
        assert_true(cert_bundle_not_after(b) < time(NULL));
}

/* Found by tests/fuzz/fuzz-cert-bundle: DER whose notAfter is "26112,...".
 * OpenSSL reads it, but it must be refused, not written. */
static void test_malformed_validity_refused(void **state) {
        _cleanup_free_ char *der = NULL;
        const char *reason;
        size_t n;

        (void) state;
        assert_int_equal(read_file_at(AT_FDCWD, "tests/data/x509-bad-validity.der", true, 1 << 20, &der, &n), 0);
        assert_int_equal(parse_fail(der, n, &reason), -EBADMSG);
}

/* The certificate after the BEGIN line made undecodable, its base64 still valid. */
static char *corrupt(const char *pem) {
        char *c = strdup(pem);
        char *body = strchr(c, '\n') + 1;
        memcpy(body, "AAAA", 4);
        return c;
}

/* A bundle is all or nothing: a bad certificate in the middle refuses the
 * value, naming it, where the certificates before it used to be kept and
 * written as if they were all. */
static void test_corrupt_middle_refuses_all(void **state) {
        _cleanup_free_ char *a = certgen_pem("A"), *b2 = certgen_pem("B"), *c = certgen_pem("C");
        _cleanup_free_ char *bad = corrupt(b2), *in = NULL, *last = NULL, *cut = NULL;
        const char *reason;

        (void) state;
        assert_true(asprintf(&in, "%s%s%s", a, bad, c) > 0);
        assert_int_equal(parse_fail(in, strlen(in), &reason), -EBADMSG);
        assert_non_null(strstr(reason, "certificate 2 of 3 could not be parsed: "));
        /* The last one bad. */
        assert_true(asprintf(&last, "%s%s%s", a, c, bad) > 0);
        assert_int_equal(parse_fail(last, strlen(last), &reason), -EBADMSG);
        assert_non_null(strstr(reason, "certificate 3 of 3 could not be parsed: "));
        /* The last one cut short: no END line. */
        assert_true(asprintf(&cut, "%s%.*s", a, (int) (strlen(c) - 30), c) > 0);
        assert_int_equal(parse_fail(cut, strlen(cut), &reason), -EBADMSG);
        assert_string_equal(reason,
                            "certificate 2 of 2 could not be parsed: malformed PEM (bad base64 or no END line)");
}

/* Over the limit says so, not "could not be parsed". */
static void test_over_cert_limit(void **state) {
        _cleanup_free_ char *a = certgen_pem("A");
        size_t n = strlen(a), count = CERT_BUNDLE_MAX_CERTS + 1;
        _cleanup_free_ char *in = malloc(n * count + 1);
        _cleanup_(cert_bundle_freep) CertBundle *b = NULL;
        const char *reason;

        (void) state;
        for (size_t i = 0; i < count; i++)
                memcpy(in + i * n, a, n);
        in[n * count] = 0;
        assert_int_equal(parse_fail(in, n * count, &reason), -E2BIG);
        assert_string_equal(reason, "more than 512 certificates (the bundle has 513)");
        /* At the limit it parses (the copies are one certificate). */
        b = parse_ok(in, n * (count - 1));
        assert_int_equal(b->n_certs, 1);
}

/* NUL bytes are not blanks: a value of NULs was "the value is empty". */
static void test_nul_bytes(void **state) {
        _cleanup_free_ char *a = certgen_pem("A");
        size_t n = strlen(a);
        _cleanup_free_ char *mid = malloc(n + 1);
        const char *reason;

        (void) state;
        assert_int_equal(parse_fail("\0\0\0", 3, &reason), -EBADMSG);
        assert_string_equal(reason, "not PEM, base64 or a DER certificate");
        assert_int_equal(parse_fail("\n\0\n", 3, &reason), -EBADMSG);
        /* A NUL inside the certificate's base64. */
        memcpy(mid, a, n + 1);
        mid[40] = 0;
        assert_int_equal(parse_fail(mid, n, &reason), -EBADMSG);
        assert_non_null(strstr(reason, "certificate 1 of 1 could not be parsed"));
}

/* CRLF line ends (a bundle saved on Windows) parse to the same bundle. */
static void test_crlf_pem(void **state) {
        _cleanup_free_ char *a = certgen_pem("A"), *b2 = certgen_pem("B"), *lf = NULL;
        _cleanup_free_ char *crlf = NULL;
        _cleanup_(cert_bundle_freep) CertBundle *x = NULL, *y = NULL;
        size_t o = 0;

        (void) state;
        assert_true(asprintf(&lf, "%s%s", a, b2) > 0);
        crlf = malloc(strlen(lf) * 2 + 1);
        for (const char *p = lf; *p; p++) {
                if (*p == '\n')
                        crlf[o++] = '\r';
                crlf[o++] = *p;
        }
        crlf[o] = 0;
        x = parse_ok(lf, strlen(lf));
        y = parse_ok(crlf, o);
        assert_int_equal(y->n_certs, 2);
        assert_string_equal(x->pem, y->pem);
}

/* DER: a bad second certificate is named; a truncated first is garbage. */
static void test_der_second_bad(void **state) {
        size_t n;
        _cleanup_free_ char *der = certgen("DER", -60, 3600, true, &n);
        _cleanup_free_ char *two = malloc(n * 2);
        const char *reason;

        (void) state;
        memcpy(two, der, n);
        memcpy(two + n, der, n);
        assert_int_equal(parse_fail(two, 2 * n - 10, &reason), -EBADMSG);
        assert_non_null(strstr(reason, "DER certificate 2 could not be parsed: "));
}

/* The same bytes parse once (a copy after that): the copy is whole and
 * the caller's own; more distinct values than are kept all still parse;
 * a refusal is never kept. */
static void test_same_value_again(void **state) {
        _cleanup_free_ char *a = certgen_pem("Again"), *bad = corrupt(a);
        CertBundle *first, *second;
        const char *reason;

        (void) state;
        first = parse_ok(a, strlen(a));
        second = parse_ok(a, strlen(a));
        assert_ptr_not_equal(first, second);
        assert_ptr_not_equal(first->pem, second->pem);
        assert_ptr_not_equal(first->certs[0].subject, second->certs[0].subject);
        assert_string_equal(first->pem, second->pem);
        assert_int_equal(first->pem_size, second->pem_size);
        assert_string_equal(first->certs[0].fingerprint, second->certs[0].fingerprint);
        assert_string_equal(first->certs[0].subject, second->certs[0].subject);
        assert_int_equal(first->certs[0].not_after, second->certs[0].not_after);
        assert_int_equal(first->certs[0].is_ca, second->certs[0].is_ca);
        /* Freeing one leaves the next copy intact. */
        first->pem[0] = 'X';
        cert_bundle_free(first);
        cert_bundle_free(second);
        second = parse_ok(a, strlen(a));
        assert_memory_equal(second->pem, "-----BEGIN", 10);
        cert_bundle_free(second);

        for (int i = 0; i < 40; i++) {
                char cn[16];
                snprintf(cn, sizeof cn, "C%d", i);
                _cleanup_free_ char *pem = certgen_pem(cn);
                _cleanup_(cert_bundle_freep) CertBundle *b = parse_ok(pem, strlen(pem));
                assert_non_null(strstr(b->certs[0].subject, cn));
        }
        assert_int_equal(parse_fail(bad, strlen(bad), &reason), -EBADMSG);
        assert_int_equal(parse_fail(bad, strlen(bad), &reason), -EBADMSG);
        assert_non_null(strstr(reason, "certificate 1 of 1 could not be parsed: "));
}

/* OpenSSL skips a BEGIN line with text after it, block and all: the
 * certificates after it were taken for the whole bundle. (Found by
 * fuzzing.) */
static void test_begin_line_with_text_refused(void **state) {
        _cleanup_free_ char *a = certgen_pem("A"), *b2 = certgen_pem("B"), *in = NULL;
        const char *reason;
        char *nl;

        (void) state;
        nl = strchr(a, '\n');
        assert_non_null(nl);
        *nl = 0;
        assert_true(asprintf(&in, "%sjunk\n%s\n%s", a, nl + 1, b2) > 0);
        assert_int_equal(parse_fail(in, strlen(in), &reason), -EBADMSG);
        assert_string_equal(reason, "1 of 2 certificate blocks could not be read (a BEGIN or END line with other text on it?)");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_pem_single),
                cmocka_unit_test(test_pem_bundle_dedup_and_noise),
                cmocka_unit_test(test_base64_of_pem),
                cmocka_unit_test(test_der_and_base64_der),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_truncated_der),
                cmocka_unit_test(test_expired_parses),
                cmocka_unit_test(test_malformed_validity_refused),
                cmocka_unit_test(test_corrupt_middle_refuses_all),
                cmocka_unit_test(test_over_cert_limit),
                cmocka_unit_test(test_nul_bytes),
                cmocka_unit_test(test_crlf_pem),
                cmocka_unit_test(test_der_second_bad),
                cmocka_unit_test(test_same_value_again),
                cmocka_unit_test(test_begin_line_with_text_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
