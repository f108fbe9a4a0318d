/* SPDX-License-Identifier: MIT */
/*
 * The verifier's pure parts: the verdict on a chain with a bundle (certs
 * made here, in process: a root, an intermediate and leaves), the reason
 * of a failed connection, and the schedule's jitter and bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "cleanup.h"
#include "random.h"
#include "status.h"
#include "verify-internal.h"

typedef struct Pki {
        EVP_PKEY *key;
        X509 *root, *inter, *leaf, *leaf_direct, *leaf_ip, *other;
} Pki;

static Pki pki;

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
        X509V3_CTX ctx;
        X509_EXTENSION *e;

        X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
        e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        assert_non_null(e);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
}

/* A certificate for cn signed by issuer (NULL: self-signed), valid from an
 * hour ago for days; san NULL makes a CA. One key for all: the chain is
 * told apart by names, which is what X509_verify_cert walks first. */
static X509 *mkcert_signed(const char *cn, X509 *issuer, const char *san, long days, EVP_PKEY *key,
                           EVP_PKEY *signer, const EVP_MD *md);

static X509 *mkcert_full(const char *cn, X509 *issuer, const char *san, long days, EVP_PKEY *key, const EVP_MD *md) {
        return mkcert_signed(cn, issuer, san, days, key, pki.key, md);
}

static X509 *mkcert_signed(const char *cn, X509 *issuer, const char *san, long days, EVP_PKEY *key,
                           EVP_PKEY *signer, const EVP_MD *md) {
        static long serial = 100;
        X509 *x = X509_new();

        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), days * 24 * 3600);
        X509_set_pubkey(x, key);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *) cn, -1,
                                   -1, 0);
        X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
        if (san) {
                add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
                add_ext(x, issuer, NID_ext_key_usage, "serverAuth");
                add_ext(x, issuer, NID_subject_alt_name, san);
        } else {
                add_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:TRUE");
                add_ext(x, issuer ? issuer : x, NID_key_usage, "critical,keyCertSign,cRLSign");
        }
        assert_true(X509_sign(x, signer, md) > 0);
        return x;
}

static X509 *mkcert(const char *cn, X509 *issuer, const char *san, long days) {
        return mkcert_full(cn, issuer, san, days, pki.key, EVP_sha256());
}

static int setup(void **unused) {
        (void) unused;
        pki.key = EVP_EC_gen("P-256");
        pki.root = mkcert("Test Root", NULL, NULL, 3650);
        pki.inter = mkcert("Test Intermediate", pki.root, NULL, 3650);
        pki.leaf = mkcert("reg.example.com", pki.inter, "DNS:reg.example.com", 90);
        pki.leaf_direct = mkcert("direct.example.com", pki.root, "DNS:direct.example.com", 90);
        pki.leaf_ip = mkcert("127.0.0.1", pki.root, "IP:127.0.0.1", 90);
        pki.other = mkcert("Other Root", NULL, NULL, 3650);
        return 0;
}

static int teardown(void **unused) {
        (void) unused;
        X509_free(pki.root);
        X509_free(pki.inter);
        X509_free(pki.leaf);
        X509_free(pki.leaf_direct);
        X509_free(pki.leaf_ip);
        X509_free(pki.other);
        EVP_PKEY_free(pki.key);
        return 0;
}

/* The PEM of the given certificates, NULL-terminated list. */
static char *pem_of(X509 *first, ...) {
        BIO *b = BIO_new(BIO_s_mem());
        va_list ap;
        char *p, *out;
        long len;

        va_start(ap, first);
        for (X509 *x = first; x; x = va_arg(ap, X509 *))
                PEM_write_bio_X509(b, x);
        va_end(ap);
        len = BIO_get_mem_data(b, &p);
        out = strndup(p, (size_t) len);
        BIO_free(b);
        return out;
}

static STACK_OF(X509) *chain_of(X509 *first, ...) {
        STACK_OF(X509) *sk = sk_X509_new_null();
        va_list ap;

        va_start(ap, first);
        for (X509 *x = first; x; x = va_arg(ap, X509 *)) {
                X509_up_ref(x);
                sk_X509_push(sk, x);
        }
        va_end(ap);
        return sk;
}

/* The verdict on chain for host with bundle; the reason ("" when none). */
static VerifyStateType verdict(STACK_OF(X509) *chain, const char *bundle, const char *host, char *reason,
                               size_t reason_size) {
        _cleanup_(registry_verification_done) RegistryVerification v = {};

        assert_int_equal(verify_chain(chain, bundle, strlen(bundle), host, 0, &v), 0);
        snprintf(reason, reason_size, "%s", v.reason ? v.reason : "");
        sk_X509_pop_free(chain, X509_free);
        return v.state;
}

static void test_right_ca_verifies(void **unused) {
        _cleanup_free_ char *bundle = pem_of(pki.root, NULL);
        _cleanup_(registry_verification_done) RegistryVerification v = {};
        STACK_OF(X509) *chain = chain_of(pki.leaf, pki.inter, NULL);
        time_t na;

        (void) unused;
        assert_int_equal(verify_chain(chain, bundle, strlen(bundle), "reg.example.com", 0, &v), 0);
        assert_int_equal(v.state, VERIFY_VERIFIED);
        assert_null(v.reason);
        /* The issuer of what the server presented first, as one line. */
        assert_string_equal(v.issuer, "CN=Test Intermediate");
        assert_int_equal(x509_time_to_unix(X509_get0_notAfter(pki.leaf), &na), 0);
        assert_int_equal(v.server_not_after, na);
        sk_X509_pop_free(chain, X509_free);
}

static void test_wrong_ca_is_a_mismatch(void **unused) {
        _cleanup_free_ char *bundle = pem_of(pki.other, NULL);
        char why[256];

        (void) unused;
        assert_int_equal(verdict(chain_of(pki.leaf, pki.inter, NULL), bundle, "reg.example.com", why, sizeof why),
                         VERIFY_MISMATCH);
        assert_string_equal(why, "unable to get local issuer certificate");
        assert_int_equal(verdict(chain_of(pki.leaf_direct, NULL), bundle, "direct.example.com", why, sizeof why),
                         VERIFY_MISMATCH);
        assert_string_equal(why, "unable to get local issuer certificate");
}

static void test_name_is_checked(void **unused) {
        _cleanup_free_ char *bundle = pem_of(pki.root, NULL);
        char why[256];

        (void) unused;
        assert_int_equal(verdict(chain_of(pki.leaf, pki.inter, NULL), bundle, "other.example.com", why, sizeof why),
                         VERIFY_MISMATCH);
        assert_string_equal(why, "hostname mismatch");
        /* Not the subject's CN either, as Go: only the SAN names a host. */
        assert_int_equal(verdict(chain_of(pki.leaf_ip, NULL), bundle, "127.0.0.1", why, sizeof why),
                         VERIFY_VERIFIED);
        assert_int_equal(verdict(chain_of(pki.leaf_ip, NULL), bundle, "127.0.0.2", why, sizeof why),
                         VERIFY_MISMATCH);
        assert_string_equal(why, "IP address mismatch");
}

/* The host rules Go applies: names only in the SAN (a CN is never a host
 * name, even with no DNS SAN), and a wildcard only as a whole label. */
static void test_host_rules_are_go_s(void **unused) {
        _cleanup_free_ char *bundle = pem_of(pki.root, NULL);
        X509 *cn_only = mkcert("cn.example.com", pki.root, "IP:10.0.0.1", 90);
        X509 *partial = mkcert("wild", pki.root, "DNS:reg*.example.com", 90);
        X509 *whole = mkcert("wild", pki.root, "DNS:*.example.com", 90);
        char why[256];

        (void) unused;
        assert_int_equal(verdict(chain_of(cn_only, NULL), bundle, "cn.example.com", why, sizeof why), VERIFY_MISMATCH);
        assert_string_equal(why, "hostname mismatch");
        assert_int_equal(verdict(chain_of(partial, NULL), bundle, "registry.example.com", why, sizeof why),
                         VERIFY_MISMATCH);
        assert_string_equal(why, "hostname mismatch");
        assert_int_equal(verdict(chain_of(whole, NULL), bundle, "registry.example.com", why, sizeof why),
                         VERIFY_VERIFIED);
        X509_free(cn_only);
        X509_free(partial);
        X509_free(whole);
}

/* What Go refuses whatever the pool: SHA-1 signatures, RSA under 1024 bits. */
static void test_weak_certificates_are_refused(void **unused) {
        _cleanup_free_ char *bundle = pem_of(pki.root, NULL);
        EVP_PKEY *small = EVP_RSA_gen(512);
        X509 *sha1 = mkcert_full("weak.example.com", pki.root, "DNS:weak.example.com", 90, pki.key, EVP_sha1());
        X509 *rsa512 = NULL;
        char why[256];

        (void) unused;
        assert_non_null(small);
        rsa512 = mkcert_full("weak.example.com", pki.root, "DNS:weak.example.com", 90, small, EVP_sha256());
        assert_int_equal(verdict(chain_of(sha1, NULL), bundle, "weak.example.com", why, sizeof why), VERIFY_MISMATCH);
        assert_string_equal(why, "CA signature digest algorithm too weak");
        assert_int_equal(verdict(chain_of(rsa512, NULL), bundle, "weak.example.com", why, sizeof why), VERIFY_MISMATCH);
        assert_string_equal(why, "EE certificate key too weak");
        X509_free(sha1);
        X509_free(rsa512);
        EVP_PKEY_free(small);
}

/* A CA rotated under the same name, no key identifiers: the bundle holds
 * old and new. Go tries both whatever the order; so must the verdict. */
static void test_same_name_rotation_either_order(void **unused) {
        EVP_PKEY *old_key = EVP_EC_gen("P-256"), *new_key = EVP_EC_gen("P-256");
        X509 *old_ca = mkcert_signed("Corp Root", NULL, NULL, 3650, old_key, old_key, EVP_sha256());
        X509 *new_ca = mkcert_signed("Corp Root", NULL, NULL, 3650, new_key, new_key, EVP_sha256());
        X509 *leaf = mkcert_signed("reg.corp.example", new_ca, "DNS:reg.corp.example", 90, pki.key, new_key,
                                   EVP_sha256());
        _cleanup_free_ char *old_first = pem_of(old_ca, new_ca, NULL), *new_first = pem_of(new_ca, old_ca, NULL);
        _cleanup_free_ char *old_only = pem_of(old_ca, NULL);
        char why[256];

        (void) unused;
        assert_int_equal(verdict(chain_of(leaf, NULL), new_first, "reg.corp.example", why, sizeof why),
                         VERIFY_VERIFIED);
        assert_int_equal(verdict(chain_of(leaf, NULL), old_first, "reg.corp.example", why, sizeof why),
                         VERIFY_VERIFIED);
        /* The old one alone is a mismatch, with OpenSSL's first answer. */
        assert_int_equal(verdict(chain_of(leaf, NULL), old_only, "reg.corp.example", why, sizeof why),
                         VERIFY_MISMATCH);
        assert_string_equal(why, "certificate signature failure");
        X509_free(leaf);
        X509_free(old_ca);
        X509_free(new_ca);
        EVP_PKEY_free(old_key);
        EVP_PKEY_free(new_key);
}

/* An issuer as long as a certificate allows is cut to one bounded line. */
static void test_long_issuer_is_cut(void **unused) {
        _cleanup_free_ char *bundle = pem_of(pki.other, NULL);
        _cleanup_(registry_verification_done) RegistryVerification v = {};
        X509 *ca = mkcert("Long", NULL, NULL, 3650), *leaf;
        STACK_OF(X509) *chain;

        (void) unused;
        for (int i = 0; i < 300; i++)
                X509_NAME_add_entry_by_txt(X509_get_subject_name(ca), "OU", MBSTRING_ASC,
                                           (const unsigned char *) "a long organisational unit", -1, -1, 0);
        leaf = mkcert("reg.example.com", ca, "DNS:reg.example.com", 90);
        chain = chain_of(leaf, NULL);
        assert_int_equal(verify_chain(chain, bundle, strlen(bundle), "reg.example.com", 0, &v), 0);
        assert_int_equal(v.state, VERIFY_MISMATCH);
        assert_non_null(v.issuer);
        assert_true(strlen(v.issuer) <= 512);
        assert_null(strchr(v.issuer, '\n'));
        sk_X509_pop_free(chain, X509_free);
        X509_free(leaf);
        X509_free(ca);
}

/* Go's pool: any certificate in the bundle is an anchor. */
static void test_partial_chains(void **unused) {
        _cleanup_free_ char *root = pem_of(pki.root, NULL), *inter = pem_of(pki.inter, NULL),
                             *leaf = pem_of(pki.leaf, NULL), *both = pem_of(pki.other, pki.inter, NULL);
        char why[256];

        (void) unused;
        assert_int_equal(verdict(chain_of(pki.leaf, pki.inter, NULL), inter, "reg.example.com", why, sizeof why),
                         VERIFY_VERIFIED);
        assert_int_equal(verdict(chain_of(pki.leaf, pki.inter, NULL), leaf, "reg.example.com", why, sizeof why),
                         VERIFY_VERIFIED);
        assert_int_equal(verdict(chain_of(pki.leaf, NULL), leaf, "reg.example.com", why, sizeof why),
                         VERIFY_VERIFIED);
        assert_int_equal(verdict(chain_of(pki.leaf, NULL), both, "reg.example.com", why, sizeof why),
                         VERIFY_VERIFIED);
        /* A pinned leaf still has to name the host. */
        assert_int_equal(verdict(chain_of(pki.leaf, NULL), leaf, "other.example.com", why, sizeof why),
                         VERIFY_MISMATCH);
        /* A server that leaves out its intermediate, and a root-only bundle:
         * nothing fetches the missing link (no AIA), in Go or here. */
        assert_int_equal(verdict(chain_of(pki.leaf, NULL), root, "reg.example.com", why, sizeof why),
                         VERIFY_MISMATCH);
        assert_string_equal(why, "unable to get local issuer certificate");
}

static void test_expired_and_empty(void **unused) {
        _cleanup_free_ char *bundle = pem_of(pki.root, NULL);
        _cleanup_(registry_verification_done) RegistryVerification v = {};
        STACK_OF(X509) *chain = chain_of(pki.leaf_direct, NULL);

        (void) unused;
        /* A year on, the 90-day leaf has expired. */
        assert_int_equal(verify_chain(chain, bundle, strlen(bundle), "direct.example.com", time(NULL) + 365 * 86400, &v), 0);
        assert_int_equal(v.state, VERIFY_MISMATCH);
        assert_string_equal(v.reason, "certificate has expired");
        sk_X509_pop_free(chain, X509_free);

        assert_int_equal(verify_chain(NULL, bundle, strlen(bundle), "x", 0, &v), 0);
        assert_int_equal(v.state, VERIFY_MISMATCH);
        assert_string_equal(v.reason, "the server presented no certificate");
        assert_null(v.issuer);

        /* A ca.crt that is no bundle: no verdict at all. */
        assert_int_equal(verify_chain(NULL, "garbage", 7, "x", 0, &v), -EBADMSG);
        assert_int_equal(v.state, VERIFY_NOT_CHECKED);
}

static void test_unreachable_reasons(void **unused) {
        char long_buf[2000];
        char *s;

        (void) unused;
        s = verify_unreachable_reason(CURLE_COULDNT_CONNECT, ECONNREFUSED, "Failed to connect after 3 ms", 0);
        assert_string_equal(s, "connect: Connection refused");
        free(s);
        s = verify_unreachable_reason(CURLE_OPERATION_TIMEDOUT, 0, "Connection timed out after 10001 milliseconds",
                                      10 * USEC_PER_SEC);
        assert_string_equal(s, "no TLS handshake within 10 s");
        free(s);
        s = verify_unreachable_reason(CURLE_COULDNT_RESOLVE_HOST, 0, "Could not resolve host: x", 0);
        assert_string_equal(s, "could not resolve the host name");
        free(s);
        s = verify_unreachable_reason(CURLE_SSL_CONNECT_ERROR, 0, "error:0A000410:SSL routines::sslv3 alert\nhandshake failure", 0);
        assert_non_null(strstr(s, "alert handshake failure"));
        assert_null(strchr(s, '\n'));
        free(s);
        memset(long_buf, 'x', sizeof long_buf - 1);
        long_buf[sizeof long_buf - 1] = 0;
        s = verify_unreachable_reason(CURLE_RECV_ERROR, 0, long_buf, 0);
        assert_true(strlen(s) <= 512);
        free(s);
}

static void test_split_registry(void **unused) {
        char *h = NULL;
        unsigned p = 0;

        (void) unused;
        assert_int_equal(verify_split_registry("reg.example.com:5000", &h, &p), 0);
        assert_string_equal(h, "reg.example.com");
        assert_int_equal(p, 5000);
        free(h);
        assert_int_equal(verify_split_registry("reg.example.com", &h, &p), 0);
        assert_string_equal(h, "reg.example.com");
        assert_int_equal(p, 443);
        free(h);
        assert_int_equal(verify_split_registry("reg:0", &h, &p), -EINVAL);
        assert_int_equal(verify_split_registry("reg:70000", &h, &p), -EINVAL);
        assert_int_equal(verify_split_registry("reg:x", &h, &p), -EINVAL);
        assert_int_equal(verify_split_registry(":5000", &h, &p), -EINVAL);
}

static void test_jitter_bounds(void **unused) {
        const uint64_t i = 21600 * USEC_PER_SEC;
        const uint64_t rs[] = { 0, 1, 12345, UINT64_MAX / 3, UINT64_MAX - 1, UINT64_MAX };

        (void) unused;
        for (size_t k = 0; k < ELEMENTSOF(rs); k++) {
                uint64_t d = jitter_usec(i, rs[k]);
                assert_true(d >= i - i / 10 && d <= i + i / 10);
                /* The first check: soon, within a tenth of the interval and 5 s. */
                assert_true(verify_first_delay_usec(i, rs[k]) <= VERIFY_FIRST_SPREAD_USEC);
                assert_true(verify_first_delay_usec(10 * USEC_PER_SEC, rs[k]) <= USEC_PER_SEC);
        }
        assert_int_equal(jitter_usec(i, 0), i - i / 10);
        assert_int_equal(jitter_usec(i, i / 5), i + i / 10);
        /* A thousand nodes spread over the whole 20% window, not a spike. */
        {
                unsigned buckets[10] = {};
                for (uint64_t k = 0; k < 1000; k++)
                        buckets[(jitter_usec(i, k * 7919 * 1000003ULL) - (i - i / 10)) * 10 / (i / 5 + 1)]++;
                for (size_t b = 0; b < ELEMENTSOF(buckets); b++)
                        assert_true(buckets[b] > 50 && buckets[b] < 150);
        }
        assert_int_equal(jitter_usec(3, 7), 3);
        assert_int_equal(verify_first_delay_usec(0, 7), 0);
}

static void test_pick_bounds(void **unused) {
        VerifyCheck c[5] = {};
        VerifyCheck *p[5];
        CURL *fake = (CURL *) &c[0]; /* only compared with NULL */
        uint64_t next;

        (void) unused;
        for (size_t k = 0; k < 5; k++) {
                p[k] = &c[k];
                c[k].due_usec = 100 + 10 * k;
        }
        /* Every slot taken: nothing starts, nothing to wake for. */
        assert_null(verify_pick(p, 5, 2, 2, 1000, &next));
        assert_int_equal(next, UINT64_MAX);
        /* Soonest first. */
        assert_ptr_equal(verify_pick(p, 5, 0, 2, 1000, &next), &c[0]);
        c[0].easy = fake;
        assert_ptr_equal(verify_pick(p, 5, 1, 2, 1000, &next), &c[1]);
        c[1].easy = fake;
        assert_null(verify_pick(p, 5, 2, 2, 1000, &next));
        /* A slot frees: the next due one, but only once due. */
        c[0].easy = NULL;
        c[0].due_usec = 5000;
        assert_ptr_equal(verify_pick(p, 5, 1, 2, 1000, &next), &c[2]);
        assert_null(verify_pick(p, 5, 1, 2, 50, &next));
        assert_int_equal(next, 120);
        for (size_t k = 2; k < 5; k++)
                c[k].due_usec = 9000;
        assert_null(verify_pick(p, 5, 1, 2, 1000, &next));
        assert_int_equal(next, 5000);
        assert_null(verify_pick(p, 0, 0, 2, 1000, &next));
        assert_int_equal(next, UINT64_MAX);
}

/* The one serializer: /status always has the object, nulls included; the
 * report only once a check said something, and only what it said. */
static void test_status_forms(void **unused) {
        RegistryResult r = { .key = (char *) "reg..5000", .registry = (char *) "reg:5000", .state = REGISTRY_APPLIED };
        json_t *j, *v;

        (void) unused;
        j = status_registry_json(&r, STATUS_DETAIL_REPORT);
        assert_null(json_object_get(j, "verification"));
        json_decref(j);
        j = status_registry_json(&r, STATUS_DETAIL_FULL);
        v = json_object_get(j, "verification");
        assert_string_equal(json_string_value(json_object_get(v, "state")), "not_checked");
        assert_true(json_is_null(json_object_get(v, "reason")));
        assert_true(json_is_null(json_object_get(v, "checked_at")));
        json_decref(j);

        r.verify = (RegistryVerification){ .state = VERIFY_MISMATCH, .reason = (char *) "hostname mismatch",
                                           .issuer = (char *) "CN=x", .checked_at = 1795000000 };
        j = status_registry_json(&r, STATUS_DETAIL_REPORT);
        v = json_object_get(j, "verification");
        assert_string_equal(json_string_value(json_object_get(v, "state")), "mismatch");
        assert_string_equal(json_string_value(json_object_get(v, "reason")), "hostname mismatch");
        assert_string_equal(json_string_value(json_object_get(v, "issuer")), "CN=x");
        assert_int_equal(json_integer_value(json_object_get(v, "checked_at")), 1795000000);
        assert_null(json_object_get(v, "server_not_after"));
        json_decref(j);

        /* Not written anywhere (a conflict): no verdict, whatever was kept. */
        r.state = REGISTRY_CONFLICT;
        j = status_registry_json(&r, STATUS_DETAIL_REPORT);
        assert_null(json_object_get(j, "verification"));
        json_decref(j);
        j = status_registry_json(&r, STATUS_DETAIL_FULL);
        assert_true(json_is_null(json_object_get(j, "verification")));
        json_decref(j);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_host_rules_are_go_s),
                cmocka_unit_test(test_weak_certificates_are_refused),
                cmocka_unit_test(test_long_issuer_is_cut),
                cmocka_unit_test(test_same_name_rotation_either_order),
                cmocka_unit_test(test_right_ca_verifies),
                cmocka_unit_test(test_wrong_ca_is_a_mismatch),
                cmocka_unit_test(test_name_is_checked),
                cmocka_unit_test(test_partial_chains),
                cmocka_unit_test(test_expired_and_empty),
                cmocka_unit_test(test_unreachable_reasons),
                cmocka_unit_test(test_split_registry),
                cmocka_unit_test(test_jitter_bounds),
                cmocka_unit_test(test_pick_bounds),
                cmocka_unit_test(test_status_forms),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
