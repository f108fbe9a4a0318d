/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The Verifier's per-registry checks as plain data, and the choice of the
 * next one to start, shared by verify.c and its unit test.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "curl-event.h"
#include "verify.h"

typedef struct VerifyCheck {
        Verifier *verifier;
        char *registry;    /* "host:port" or "host", as the State names it */
        char *host;        /* what the handshake and the name check use */
        unsigned port;
        char *bundle_path; /* the ca.crt checked, a host path read under --root */
        char fingerprint[65];
        uint64_t due_usec; /* CLOCK_MONOTONIC of the next check */
        CURL *easy;        /* while a check runs */
        STACK_OF(X509) *chain; /* what the server presented in this check's handshake */
        char errbuf[CURL_ERROR_SIZE];
        /* The last verdict logged: a line only when it changes. */
        VerifyStateType logged_state;
        char *logged_reason;
        bool seen; /* by the verifier_update() in progress */
} VerifyCheck;

/* The check to start at now: the one not running that is due soonest, if
 * it is due and fewer than max_parallel run; else NULL, and *ret_next
 * (when not NULL) says when the next one is due (UINT64_MAX: none is
 * waiting, or every slot is taken until a check ends). */
VerifyCheck *verify_pick(VerifyCheck *const *checks, size_t n, unsigned running, unsigned max_parallel, uint64_t now,
                         uint64_t *ret_next);
