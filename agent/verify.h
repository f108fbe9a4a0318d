/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Proof of trust. For every registry the agent wrote (applied or
 * shadowed), a TLS handshake to HOST:PORT (443 when the key names none),
 * and the chain the server presented checked against exactly the ca.crt
 * nodetrustd wrote, host name included, as the Go runtimes (containerd,
 * CRI-O, podman) check it: every certificate in the bundle is a trust
 * anchor (X509_V_FLAG_PARTIAL_CHAIN).
 *
 * The Verifier runs on the manager's loop and never blocks it: libcurl
 * multi through CurlGlue (connect only, curl's threaded resolver), a few
 * checks at a time, each bounded by a timeout; a check soon after a
 * registry's bundle appears or changes, then every interval, jittered.
 * It reads the State it is handed and reports each verdict through a
 * callback; the caller records it (state_set_verification()).
 */

#include <curl/curl.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "macro.h"
#include "state.h"

#define VERIFY_MAX_PARALLEL 2

typedef struct Verifier Verifier;

/* One check of registry ended with v (its fingerprint names the bundle
 * checked). v is only borrowed for the call. */
typedef void (*verifier_result_t)(const char *registry, const RegistryVerification *v, void *userdata);

typedef struct VerifierOptions {
        int root_fd;            /* borrowed: --root, under which the written ca.crt is read */
        uint64_t interval_usec; /* between two checks of a registry, ±10%; > 0 */
        uint64_t timeout_usec;  /* per check: connect, resolve and handshake; > 0 */
        unsigned max_parallel;  /* checks at a time; 0: VERIFY_MAX_PARALLEL */
        verifier_result_t on_result;
        void *userdata;
} VerifierOptions;

/* A Verifier on event, checking nothing until verifier_update(). */
int verifier_new(sd_event *event, const VerifierOptions *o, Verifier **ret);
/* Cancel every check under way (no callbacks) and free; NULL is fine. */
Verifier *verifier_free(Verifier *v);
static inline void verifier_freep(Verifier **v) {
        verifier_free(*v);
}

/* Take the registries as the State says after a sync: a registry new to
 * the verifier, or whose bundle changed, is checked soon (a check of the
 * old bundle under way is cancelled); one no longer written is forgotten.
 * Unchanged ones keep their schedule. */
int verifier_update(Verifier *v, const State *s);

/* How many checks are under way, and how many are scheduled in all. */
unsigned verifier_running(const Verifier *v);
size_t verifier_size(const Verifier *v);

/* The pure parts, for tests. */

/* The verdict on chain, as the server presented it (leaf first), with the
 * PEM bundle as the only trust anchors, for host (a DNS name or an IPv4
 * address) at time now (0: the current time): VERIFY_VERIFIED, or
 * VERIFY_MISMATCH with OpenSSL's reason. Sets state, reason, issuer (of
 * the leaf) and server_not_after in *ret (which it resets first), not the
 * fingerprint or checked_at. -EBADMSG when the bundle holds no
 * certificate, -ENOMEM. */
int verify_chain(STACK_OF(X509) *chain, const char *bundle_pem, size_t bundle_size, const char *host, time_t now,
                 RegistryVerification *ret);

/* The reason of an unreachable verdict, one stable line (no timings, so
 * the same failure twice is the same verdict): from curl's result, the
 * socket's errno and curl's error buffer. NULL on OOM. */
char *verify_unreachable_reason(CURLcode code, long os_errno, const char *errbuf, uint64_t timeout_usec);

/* Split "host:port" or "host" (port 443) as config map keys name
 * registries. -EINVAL for a bad port. */
int verify_split_registry(const char *registry, char **ret_host, unsigned *ret_port);

/* The delay before the first check of a new bundle: 0 up to a tenth of
 * the interval, at most VERIFY_FIRST_SPREAD_USEC, from the random r. */
uint64_t verify_first_delay_usec(uint64_t interval_usec, uint64_t r);
#define VERIFY_FIRST_SPREAD_USEC (5 * USEC_PER_SEC)
