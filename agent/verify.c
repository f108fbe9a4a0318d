/* SPDX-License-Identifier: MIT */
/*
 * The Verifier on the loop: which registries to check and when, one
 * connect-only libcurl transfer per check, and the verdict handed on.
 * The verdict itself is verify-chain.c's.
 */
#include <assert.h>
#include <errno.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "fs.h"
#include "hash.h"
#include "log.h"
#include "plan.h"
#include "random.h"
#include "target.h"
#include "verify-internal.h"

/* A written ca.crt is at most this big (a config map value is 1 MiB). */
#define BUNDLE_MAX (4u * 1024 * 1024)
/* When the ca.crt on disk is not the bundle the State names (being
 * repaired, or removed under us), look again after this. */
#define RETRY_USEC (60 * USEC_PER_SEC)

struct Verifier {
        sd_event *event;
        CurlGlue *glue;
        sd_event_source *timer;
        VerifierOptions o;
        VerifyCheck **checks;
        size_t n_checks;
        unsigned running;
};

static uint64_t now_usec(const Verifier *v) {
        uint64_t t = 0;
        (void) sd_event_now(v->event, CLOCK_MONOTONIC, &t);
        return t;
}

VerifyCheck *verify_pick(VerifyCheck *const *checks, size_t n, unsigned running, unsigned max_parallel, uint64_t now,
                         uint64_t *ret_next) {
        VerifyCheck *best = NULL;

        if (ret_next)
                *ret_next = UINT64_MAX;
        if (running >= max_parallel)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (!checks[i]->easy && (!best || checks[i]->due_usec < best->due_usec))
                        best = checks[i];
        if (!best)
                return NULL;
        if (best->due_usec <= now)
                return best;
        if (ret_next)
                *ret_next = best->due_usec;
        return NULL;
}

static void check_stop(VerifyCheck *c) {
        if (c->easy) {
                curl_glue_remove(c->verifier->glue, c->easy);
                curl_easy_cleanup(c->easy);
                c->easy = NULL;
                c->verifier->running--;
        }
        sk_X509_pop_free(c->chain, X509_free);
        c->chain = NULL;
}

static VerifyCheck *check_free(VerifyCheck *c) {
        if (!c)
                return NULL;
        check_stop(c);
        free(c->registry);
        free(c->host);
        free(c->bundle_path);
        free(c->logged_reason);
        free(c);
        return NULL;
}

static void verifier_arm(Verifier *v) {
        uint64_t next;

        (void) verify_pick(v->checks, v->n_checks, v->running, v->o.max_parallel, 0, &next);
        if (next == UINT64_MAX) {
                (void) sd_event_source_set_enabled(v->timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(v->timer, next);
        (void) sd_event_source_set_enabled(v->timer, SD_EVENT_ONESHOT);
}

/* Called by OpenSSL, inside curl, in place of its own chain check
 * (curl asked for none: VERIFYPEER=0): keep what the server presented,
 * and let the handshake go on whatever it is. CURLINFO_TLS_SSL_PTR cannot
 * give it later: a connect-only transfer's connection is detached from
 * its handle once the multi reports it done. */
static int on_peer_chain(X509_STORE_CTX *ctx, void *arg) {
        VerifyCheck *c = arg;

        sk_X509_pop_free(c->chain, X509_free);
        c->chain = X509_chain_up_ref(X509_STORE_CTX_get0_untrusted(ctx));
        return 1;
}

static CURLcode on_ssl_ctx(CURL *easy, void *ssl_ctx, void *userdata) {
        (void) easy;
        SSL_CTX_set_cert_verify_callback(ssl_ctx, on_peer_chain, userdata);
        return CURLE_OK;
}

/* Log a verdict when it differs from the last one logged: a line per
 * change, never one per check. */
static void check_log(VerifyCheck *c, const RegistryVerification *rv) {
        char *reason = NULL;

        if (c->logged_state == rv->state && streq_ptr(c->logged_reason, rv->reason))
                return;
        if (rv->reason && !(reason = strdup(rv->reason)))
                return;
        free(c->logged_reason);
        c->logged_reason = reason;
        c->logged_state = rv->state;
        log_full(rv->state == VERIFY_VERIFIED ? LOG_INFO : LOG_WARNING,
                 rv->state == VERIFY_VERIFIED   ? "Registry certificate verified with the CA written"
                 : rv->state == VERIFY_MISMATCH ? "Registry certificate does not verify with the CA written"
                                                : "Registry unreachable for verification",
                 "REGISTRY=%s", c->registry, "VERIFICATION=%s", verify_state_to_string(rv->state), "REASON=%s",
                 rv->reason ? rv->reason : "-", "ISSUER=%s", rv->issuer ? rv->issuer : "-", "FINGERPRINT=%s",
                 c->fingerprint, NULL);
}

/* The verdict of a finished handshake, against the ca.crt as it is on
 * disk now. -ESTALE when that is not the bundle the State named. */
static int check_verdict(VerifyCheck *c, RegistryVerification *rv) {
        _cleanup_free_ char *pem = NULL;
        char fp[65];
        size_t size;
        int r;

        r = read_file_in_root(c->verifier->o.root_fd, c->bundle_path, BUNDLE_MAX, &pem, &size);
        if (r < 0)
                return r;
        sha256_hex(pem, size, fp);
        if (!streq(fp, c->fingerprint))
                return -ESTALE;
        return verify_chain(c->chain, pem, size, c->host, 0, rv);
}

static void on_check_done(CURL *easy, CURLcode result, void *userdata) {
        _cleanup_(registry_verification_done) RegistryVerification rv = {};
        VerifyCheck *c = userdata;
        Verifier *v = c->verifier;
        long os_errno = 0;
        int r;

        (void) curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &os_errno);
        curl_easy_cleanup(easy);
        c->easy = NULL;
        v->running--;

        if (result == CURLE_OK) {
                r = check_verdict(c, &rv);
                if (r < 0) {
                        log_debug_errno(r, "Cannot verify %s against %s now, trying again later", c->registry,
                                        c->bundle_path);
                        registry_verification_done(&rv);
                }
        } else {
                rv.state = VERIFY_UNREACHABLE;
                rv.reason = verify_unreachable_reason(result, os_errno, c->errbuf, v->o.timeout_usec);
                r = rv.reason ? 0 : -ENOMEM;
        }
        sk_X509_pop_free(c->chain, X509_free);
        c->chain = NULL;

        c->due_usec = now_usec(v) + (r < 0 ? RETRY_USEC : jitter_usec_random(v->o.interval_usec));
        verifier_arm(v);
        if (r < 0)
                return;

        memcpy(rv.fingerprint, c->fingerprint, sizeof rv.fingerprint);
        rv.checked_at = time(NULL);
        check_log(c, &rv);
        if (v->o.on_result)
                v->o.on_result(c->registry, &rv, v->o.userdata);
}

static int check_start(VerifyCheck *c) {
        Verifier *v = c->verifier;
        _cleanup_free_ char *url = NULL;
        long ms = (long) (v->o.timeout_usec / USEC_PER_MSEC);
        CURL *easy;
        int r;

        if (asprintf(&url, "https://%s:%u/", c->host, c->port) < 0)
                return -ENOMEM;
        easy = curl_easy_init();
        if (!easy)
                return -ENOMEM;
        c->errbuf[0] = 0;
        /* Connect and handshake only, whatever the chain (we check it
         * ourselves), with a fresh connection and no TLS session reuse: a
         * resumed session presents no certificate. */
        if (curl_easy_setopt(easy, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_CONNECT_ONLY, 1L) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_SSL_CTX_DATA, c) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_SSL_SESSIONID_CACHE, 0L) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, ms) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, ms) != CURLE_OK ||
            curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, c->errbuf) != CURLE_OK) {
                curl_easy_cleanup(easy);
                return -EINVAL;
        }
        curl_easy_no_resolver_wait(easy);
        r = curl_glue_add(v->glue, easy, on_check_done, c);
        if (r < 0) {
                curl_easy_cleanup(easy);
                return r;
        }
        c->easy = easy;
        v->running++;
        log_debug("Verifying %s (%s)", c->registry, c->bundle_path);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Verifier *v = userdata;
        VerifyCheck *c;

        (void) s;
        (void) usec;
        while ((c = verify_pick(v->checks, v->n_checks, v->running, v->o.max_parallel, now_usec(v), NULL))) {
                int r = check_start(c);
                if (r < 0) {
                        log_warning_errno(r, "Failed to start verifying %s, trying again later", c->registry);
                        c->due_usec = now_usec(v) + RETRY_USEC;
                }
        }
        verifier_arm(v);
        return 0;
}

int verifier_new(sd_event *event, const VerifierOptions *o, Verifier **ret) {
        Verifier *v;
        int r;

        assert(event);
        assert(o);
        assert(o->root_fd >= 0);
        assert(o->interval_usec > 0);
        assert(o->timeout_usec > 0);
        assert(ret);

        v = calloc(1, sizeof *v);
        if (!v)
                return -ENOMEM;
        v->event = sd_event_ref(event);
        v->o = *o;
        if (v->o.max_parallel == 0)
                v->o.max_parallel = VERIFY_MAX_PARALLEL;

        r = curl_glue_new(event, &v->glue);
        if (r < 0)
                goto fail;
        r = sd_event_add_time(event, &v->timer, CLOCK_MONOTONIC, 0, 10 * USEC_PER_MSEC, on_timer, v);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(v->timer, "verify-timer");
        (void) sd_event_source_set_enabled(v->timer, SD_EVENT_OFF);
        *ret = v;
        return 0;
fail:
        verifier_free(v);
        return r;
}

Verifier *verifier_free(Verifier *v) {
        if (!v)
                return NULL;
        for (size_t i = 0; i < v->n_checks; i++)
                check_free(v->checks[i]);
        free(v->checks);
        curl_glue_free(v->glue);
        sd_event_source_disable_unref(v->timer);
        sd_event_unref(v->event);
        free(v);
        return NULL;
}

unsigned verifier_running(const Verifier *v) {
        assert(v);
        return v->running;
}

size_t verifier_size(const Verifier *v) {
        assert(v);
        return v->n_checks;
}

/* The first target nodetrustd wrote the registry's ca.crt to (not a
 * conflict, not a failed write), as a host path; NULL when none. */
static char *written_bundle_path(const RegistryResult *r) {
        for (size_t k = 0; k < ELEMENTSOF(targets); k++) {
                const RegistryTargetResult *rt = &r->targets[k];
                char *p;

                if (!rt->enabled || rt->state == REGISTRY_TARGET_CONFLICT || rt->state == REGISTRY_TARGET_FAILED)
                        continue;
                if (asprintf(&p, "/%s/%s/%s", targets[k].dir, r->registry, CA_FILE) < 0)
                        return NULL;
                return p;
        }
        return NULL;
}

static VerifyCheck *verifier_find(Verifier *v, const char *registry) {
        for (size_t i = 0; i < v->n_checks; i++)
                if (streq(v->checks[i]->registry, registry))
                        return v->checks[i];
        return NULL;
}

/* Start tracking r, or take its new bundle: checked soon. */
static int verifier_take(Verifier *v, const RegistryResult *r, char *path, uint64_t now) {
        VerifyCheck *c = verifier_find(v, r->registry);

        if (c && streq(c->fingerprint, r->fingerprint) && streq(c->bundle_path, path)) {
                free(path);
                c->seen = true;
                return 0;
        }
        if (!c) {
                VerifyCheck **a = realloc(v->checks, (v->n_checks + 1) * sizeof *a);
                int k;

                if (!a) {
                        free(path);
                        return -ENOMEM;
                }
                v->checks = a;
                c = calloc(1, sizeof *c);
                if (!c) {
                        free(path);
                        return -ENOMEM;
                }
                c->verifier = v;
                c->registry = strdup(r->registry);
                k = c->registry ? verify_split_registry(r->registry, &c->host, &c->port) : -ENOMEM;
                if (k < 0) {
                        free(path);
                        check_free(c);
                        return k;
                }
                v->checks[v->n_checks++] = c;
        }
        /* A check of the old bundle says nothing about the new one. */
        check_stop(c);
        free(c->bundle_path);
        c->bundle_path = path;
        memcpy(c->fingerprint, r->fingerprint, sizeof c->fingerprint);
        c->due_usec = now + verify_first_delay_usec(v->o.interval_usec, random_u64());
        c->seen = true;
        return 0;
}

int verifier_update(Verifier *v, const State *s) {
        uint64_t now;
        size_t j = 0;
        int r = 0;

        assert(v);
        assert(s);

        now = now_usec(v);
        for (size_t i = 0; i < v->n_checks; i++)
                v->checks[i]->seen = false;
        for (size_t i = 0; i < s->n_valid; i++) {
                const RegistryResult *res = &s->registries[i];
                char *path;
                int k;

                if (!res->registry || !registry_result_verifiable(res))
                        continue;
                path = written_bundle_path(res);
                if (!path)
                        continue;
                k = verifier_take(v, res, path, now);
                if (k < 0 && r == 0)
                        r = k;
        }
        /* Forget what is no longer written; keep the rest in order. */
        for (size_t i = 0; i < v->n_checks; i++) {
                if (v->checks[i]->seen)
                        v->checks[j++] = v->checks[i];
                else
                        check_free(v->checks[i]);
        }
        v->n_checks = j;
        verifier_arm(v);
        return r;
}
