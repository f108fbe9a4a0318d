/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What the agent knows about itself after each sync: counters, the source
 * generation and hashes, and one result per registry. Health, metrics,
 * sd_notify STATUS= and the aggregator report are all rendered from this.
 * It never holds a secret value.
 */

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "plan.h"
#include "runtime.h"
#include "trust.h"

typedef enum RegistryStateType {
        REGISTRY_APPLIED,  /* every enabled target has the bundle */
        REGISTRY_REFUSED,  /* the key or value was refused */
        REGISTRY_CONFLICT, /* some target holds an entry we do not own */
        REGISTRY_FAILED,   /* a write failed */
        REGISTRY_SHADOWED, /* written, but an active runtime will not use it */
        _REGISTRY_STATE_MAX,
} RegistryStateType;

/* One registry in one target: what a runtime reading that target gets. */
typedef enum RegistryTargetStateType {
        REGISTRY_TARGET_APPLIED,  /* written, and the runtime reads it */
        REGISTRY_TARGET_CONFLICT, /* someone else's entry: not written */
        REGISTRY_TARGET_SHADOWED, /* written, but the runtime reads something else */
        REGISTRY_TARGET_FAILED,   /* the write failed */
        REGISTRY_TARGET_INACTIVE, /* written, but the target's runtime is not installed or not reading it */
        _REGISTRY_TARGET_STATE_MAX,
} RegistryTargetStateType;

/* The pull secret. The plan (pullsecret.h) says which the source holds;
 * State says VALID only once every target holds it, and INVALID when it was
 * refused or some target does not: /status, /metrics and the report call
 * VALID "applied". */
typedef enum PullSecretStatus {
        PULL_SECRET_ABSENT,  /* the source has no pull secret (or no sync has looked yet) */
        PULL_SECRET_INVALID, /* refused; the targets keep the last good content */
        PULL_SECRET_VALID,
        _PULL_SECRET_STATUS_MAX,
} PullSecretStatus;

typedef struct RegistryTargetResult {
        bool enabled; /* the target is in --targets and the key was valid */
        RegistryTargetStateType state;
        char *reason; /* why not applied; when applied, NULL or a note (someone else's hosts.toml) */
} RegistryTargetResult;

/* Proof of trust: a TLS handshake to the registry, its certificate checked
 * against exactly the bundle nodetrustd wrote (verify.c). */
typedef enum VerifyStateType {
        VERIFY_NOT_CHECKED, /* not yet, disabled, or the bundle changed since */
        VERIFY_VERIFIED,    /* the server's chain validates with the bundle, name included */
        VERIFY_MISMATCH,    /* it does not: reason says OpenSSL's verdict */
        VERIFY_UNREACHABLE, /* no handshake: reason says why */
        _VERIFY_STATE_MAX,
} VerifyStateType;

typedef struct RegistryVerification {
        VerifyStateType state;
        char *reason;            /* mismatch/unreachable: why, one printable line */
        char *issuer;            /* the issuer of the certificate the server presented, one line; NULL unknown */
        char fingerprint[65];    /* of the bundle checked: a result holds only for that bundle */
        time_t server_not_after; /* the server certificate's notAfter, 0 unknown */
        time_t checked_at;       /* wall clock of the check, 0 never */
} RegistryVerification;

typedef struct RegistryResult {
        char *key;
        char *registry; /* NULL when the key itself was invalid */
        RegistryStateType state;
        char *reason;         /* for refused/conflict/failed */
        char fingerprint[65]; /* of the bundle, when the value parsed */
        time_t not_after;     /* soonest notAfter in the bundle, 0 if none */
        unsigned n_certs;
        bool expired;
        bool not_yet_valid;
        RegistryTargetResult targets[N_TARGETS]; /* indexed like targets[] */
        /* Valid keys only: the last check, carried over from sync to sync
         * while the bundle's fingerprint stays the same. */
        RegistryVerification verify;
        bool changed; /* state, reason or a target's state differ from the sync before */
} RegistryResult;

typedef struct State {
        /* Increases whenever something the report says changes (the
         * source, the registries, the targets, the last error, the pull
         * secret's state and hash): the state's setters keep it, and the
         * reporter compares revisions, never documents. */
        uint64_t revision;

        /* Counters since start. */
        uint64_t syncs_total;
        uint64_t sync_failures_total;
        uint64_t files_written_total;
        uint64_t files_removed_total;

        /* The source. generation increases whenever the trust content hash changes. */
        uint64_t generation;
        char source_hash[65];
        char applied_hash[65]; /* hash of the last trust content applied with no failure; "" none */
        char *source_origin;

        bool first_sync_done; /* a full sync has completed (ok or not) */
        bool last_sync_ok;    /* the last sync read its source and every write succeeded */
        char *last_error;     /* why the last sync failed, secret-free; NULL when ok */
        time_t last_sync;
        time_t last_success;

        RegistryResult *registries; /* sorted: valid keys by registry, then refused keys */
        size_t n_registries;
        size_t n_valid; /* registries[0..n_valid) are the valid keys */
        unsigned n_applied, n_refused, n_conflicts, n_failed, n_shadowed;
        unsigned n_files_failed; /* writes and removals that failed in the last apply */
        unsigned n_ignored;

        /* Is each target's runtime there and reading what we write? */
        RuntimeStatus runtime;
        unsigned n_inactive_targets; /* enabled targets whose runtime is installed but not reading */

        /* Pull secret, set by state_set_pull_secret(). */
        PullSecretStatus pull_secret_status;
        bool pull_secret_synced; /* a sync has set the status */
        char pull_secret_hash[65];
        char *pull_secret_error;
} State;

/* Written somewhere a runtime reads (applied or shadowed): a registry the
 * verifier checks and /status, /metrics and the report give a verdict. */
static inline bool registry_result_verifiable(const RegistryResult *r) {
        return r->state == REGISTRY_APPLIED || r->state == REGISTRY_SHADOWED;
}

const char *registry_state_to_string(RegistryStateType t);
const char *verify_state_to_string(VerifyStateType t);

/* Record a check of registry's bundle (fingerprint in v). A result for a
 * bundle the registry no longer has is dropped: -ESTALE; an unknown
 * registry -ENOENT. 1 when what the registry says changed, else 0. */
int state_set_verification(State *s, const char *registry, const RegistryVerification *v);

void registry_verification_done(RegistryVerification *v);
const char *registry_target_state_to_string(RegistryTargetStateType t);
/* "absent", "invalid" or "applied" (VALID): the words /status, /metrics and the report use. */
const char *pull_secret_status_to_string(PullSecretStatus s);

/* A sync read the source with trust content hash (65 bytes) and origin:
 * true when that is new content (or the first sync), which starts a new
 * generation. */
bool state_set_source(State *s, const char *hash, const char *origin);

/* A full sync ended: ok, or failed with error (secret-free). */
void state_sync_done(State *s, bool ok, const char *error);

/* Something after the sync failed (drift repair): degraded with error
 * until the next sync says otherwise. */
void state_set_failed(State *s, const char *error);

/* Ready when the first sync completed, the last one succeeded and the
 * source is healthy (else source_reason says why); false with *reason. */
bool state_is_ready(const State *s, bool source_healthy, const char *source_reason, const char **reason);

/* Take over rs (left empty) as the runtime status the next
 * state_set_registries() judges by. */
void state_set_runtime(State *s, RuntimeStatus *rs);

/* Rebuild the per-registry results from a trust set, the applied plan and
 * the runtime status already set. */
int state_set_registries(State *s, const TrustSet *t, const Plan *p);

/* Soonest notAfter among applied registries, 0 when none. */
time_t state_soonest_expiry(const State *s);

/* Set or clear (NULL) last_error. */
int state_set_error(State *s, const char *error);

/* Record the pull secret's status and why it is not applied (error, NULL
 * when it is), and its hash unless hash is NULL (the published hash moves
 * only when the targets do). Returns 1 when the status or the error differ
 * from the last ones recorded (or none were), 0 when not, -ENOMEM. */
int state_set_pull_secret(State *s, PullSecretStatus status, const char *hash, const char *error);

void state_done(State *s);
