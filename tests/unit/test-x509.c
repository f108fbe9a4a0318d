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
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
