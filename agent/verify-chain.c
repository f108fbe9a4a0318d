/* SPDX-License-Identifier: MIT */
/*
 * The verifier's pure parts: the verdict on a presented chain, the reason
 * of a failed connection, and the schedule's arithmetic. No loop, no
 * network: tests call them directly (tests/unit/test-verify.c).
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "verify.h"
#include "x509.h"
#include "utf8.h"

/* What the report keeps of a reason (docs/report-format.md). */
#define REASON_MAX 512

DEFINE_POINTER_CLEANUP(X509_STORE, X509_STORE_free)
DEFINE_POINTER_CLEANUP(X509_STORE_CTX, X509_STORE_CTX_free)
DEFINE_POINTER_CLEANUP(BIO, BIO_free_all)

/* One printable line of at most REASON_MAX bytes: a reason goes into a
 * journal field, a metric-free JSON string and a report. */
static char *reason_line(const char *s) {
        size_t n = strnlen(s, REASON_MAX);
        char *c = strndup(s, n);

        if (!c)
                return NULL;
        utf8_one_line(c);
        while (n > 0 && c[n - 1] == ' ')
                c[--n] = 0;
        return c;
}

/* The bundle's certificates, in order; -EBADMSG when it holds none. */
static int bundle_certs(const char *pem, size_t size, STACK_OF(X509) **ret) {
        STACK_OF(X509) *certs = sk_X509_new_null();
        _cleanup_(BIO_free_allp) BIO *in = NULL;

        if (!certs)
                return -ENOMEM;
        in = BIO_new_mem_buf(pem, (int) size);
        if (!in) {
                sk_X509_free(certs);
                return -ENOMEM;
        }
        for (;;) {
                X509 *x = PEM_read_bio_X509(in, NULL, NULL, NULL);

                if (!x)
                        break;
                if (sk_X509_push(certs, x) <= 0) {
                        X509_free(x);
                        sk_X509_pop_free(certs, X509_free);
                        return -ENOMEM;
                }
        }
        ERR_clear_error();
        if (sk_X509_num(certs) == 0) {
                sk_X509_free(certs);
                return -EBADMSG;
        }
        *ret = certs;
        return 0;
}

/* A store holding certs[from, to). */
static int store_of(STACK_OF(X509) *certs, int from, int to, X509_STORE **ret) {
        _cleanup_(X509_STORE_freep) X509_STORE *store = X509_STORE_new();

        if (!store)
                return -ENOMEM;
        for (int i = from; i < to; i++)
                if (X509_STORE_add_cert(store, sk_X509_value(certs, i)) != 1)
                        return -ENOMEM;
        *ret = TAKE_PTR(store);
        return 0;
}

static bool is_ipv4(const char *host) {
        struct in_addr a;
        return inet_pton(AF_INET, host, &a) == 1;
}

/* Verify chain (leaf first) for host against store as a Go client would;
 * 1 valid, 0 not (*ret_error says why), -ENOMEM. */
static int verify_against(STACK_OF(X509) *chain, X509 *leaf, X509_STORE *store, const char *host, time_t now,
                          int *ret_error) {
        _cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = X509_STORE_CTX_new();
        X509_VERIFY_PARAM *param;
        int ok;

        if (!ctx || X509_STORE_CTX_init(ctx, store, leaf, chain) != 1)
                return -ENOMEM;
        /* What a TLS client checks of a server: the serverAuth purpose. */
        if (X509_STORE_CTX_set_default(ctx, "ssl_server") != 1)
                return -ENOMEM;
        param = X509_STORE_CTX_get0_param(ctx);
        /* Go (crypto/x509), which containerd, CRI-O and podman use, treats
         * every certificate in the pool as an anchor, intermediates and
         * leaves included; it matches names only against the SAN, and a
         * wildcard only as a whole left-most label. */
        X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
        /* Go refuses SHA-1 signatures and RSA keys under 1024 bits; at
         * security level 1 OpenSSL refuses them too ("CA signature digest
         * algorithm too weak", "EE certificate key too weak"). */
        X509_VERIFY_PARAM_set_auth_level(param, 1);
        if (now)
                X509_VERIFY_PARAM_set_time(param, now);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
                                                       X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
        if ((is_ipv4(host) ? X509_VERIFY_PARAM_set1_ip_asc(param, host)
                           : X509_VERIFY_PARAM_set1_host(param, host, 0)) != 1)
                return -ENOMEM;

        ok = X509_verify_cert(ctx);
        ERR_clear_error();
        if (ok == 1)
                return 1;
        *ret_error = X509_STORE_CTX_get_error(ctx);
        return 0;
}

int verify_chain(STACK_OF(X509) *chain, const char *bundle_pem, size_t bundle_size, const char *host, time_t now,
                 RegistryVerification *ret) {
        _cleanup_(X509_STORE_freep) X509_STORE *store = NULL;
        STACK_OF(X509) *certs = NULL;
        X509 *leaf;
        int r, error = X509_V_OK;

        assert(bundle_pem);
        assert(host);
        assert(ret);

        registry_verification_done(ret);
        r = bundle_certs(bundle_pem, bundle_size, &certs);
        if (r < 0)
                return r;
        r = store_of(certs, 0, sk_X509_num(certs), &store);
        if (r < 0)
                goto finish;

        ret->state = VERIFY_MISMATCH;
        if (!chain || sk_X509_num(chain) == 0) {
                r = (ret->reason = strdup("the server presented no certificate")) ? 0 : -ENOMEM;
                goto finish;
        }

        leaf = sk_X509_value(chain, 0);
        {
                /* An issuer name can be as long as a certificate: one line, cut. */
                _cleanup_free_ char *issuer = x509_name_oneline(X509_get_issuer_name(leaf));
                if (!issuer || !(ret->issuer = reason_line(issuer))) {
                        r = -ENOMEM;
                        goto finish;
                }
        }
        if (x509_time_to_unix(X509_get0_notAfter(leaf), &ret->server_not_after) < 0)
                ret->server_not_after = 0;

        r = verify_against(chain, leaf, store, host, now, &error);
        /* OpenSSL takes the first anchor whose name matches the issuer; Go
         * tries every certificate of the pool. Two CAs of one name (a
         * rotation without key identifiers) would then fail in one order
         * and pass in the other: try each certificate alone before saying
         * mismatch, keeping the first answer's reason. */
        for (int i = 0; r == 0 && sk_X509_num(certs) > 1 && i < sk_X509_num(certs); i++) {
                _cleanup_(X509_STORE_freep) X509_STORE *one = NULL;
                int ignored;

                r = store_of(certs, i, i + 1, &one);
                if (r >= 0)
                        r = verify_against(chain, leaf, one, host, now, &ignored);
        }
        if (r < 0)
                goto finish;
        if (r == 1) {
                ret->state = VERIFY_VERIFIED;
                r = 0;
                goto finish;
        }
        ret->reason = reason_line(X509_verify_cert_error_string(error));
        r = ret->reason ? 0 : -ENOMEM;
finish:
        sk_X509_pop_free(certs, X509_free);
        return r;
}

char *verify_unreachable_reason(CURLcode code, long os_errno, const char *errbuf, uint64_t timeout_usec) {
        _cleanup_free_ char *s = NULL;
        int k;

        switch (code) {
        case CURLE_COULDNT_RESOLVE_HOST:
                k = asprintf(&s, "could not resolve the host name");
                break;
        case CURLE_COULDNT_CONNECT:
                /* curl's own text says how many milliseconds it took. */
                k = os_errno > 0 ? asprintf(&s, "connect: %s", strerror((int) os_errno))
                                 : asprintf(&s, "connect: %s", curl_easy_strerror(code));
                break;
        case CURLE_OPERATION_TIMEDOUT:
                k = asprintf(&s, "no TLS handshake within %llu s",
                             (unsigned long long) ((timeout_usec + USEC_PER_SEC - 1) / USEC_PER_SEC));
                break;
        default:
                /* A TLS alert or a dropped connection: curl's buffer names
                 * OpenSSL's error, with no timing in it. */
                k = errbuf && *errbuf ? asprintf(&s, "%s: %s", curl_easy_strerror(code), errbuf)
                                      : asprintf(&s, "%s", curl_easy_strerror(code));
                break;
        }
        if (k < 0)
                return NULL;
        return reason_line(s);
}

int verify_split_registry(const char *registry, char **ret_host, unsigned *ret_port) {
        const char *colon;
        unsigned long port = 443;
        char *host, *end;

        assert(registry);
        assert(ret_host);
        assert(ret_port);

        colon = strrchr(registry, ':');
        if (colon) {
                errno = 0;
                port = strtoul(colon + 1, &end, 10);
                if (errno || end == colon + 1 || *end || port < 1 || port > 65535)
                        return -EINVAL;
        }
        host = colon ? strndup(registry, (size_t) (colon - registry)) : strdup(registry);
        if (!host)
                return -ENOMEM;
        if (!*host) {
                free(host);
                return -EINVAL;
        }
        *ret_host = host;
        *ret_port = (unsigned) port;
        return 0;
}

uint64_t verify_first_delay_usec(uint64_t interval_usec, uint64_t r) {
        uint64_t spread = interval_usec / 10;

        if (spread > VERIFY_FIRST_SPREAD_USEC)
                spread = VERIFY_FIRST_SPREAD_USEC;
        return r % (spread + 1);
}
