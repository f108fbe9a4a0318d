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
#include "trust.h"

typedef enum RegistryStateType {
        REGISTRY_APPLIED,  /* every enabled target has the bundle */
        REGISTRY_REFUSED,  /* the key or value was refused */
        REGISTRY_CONFLICT, /* some target holds an entry we do not own */
        REGISTRY_FAILED,   /* a write failed */
        _REGISTRY_STATE_MAX,
} RegistryStateType;

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
} RegistryResult;

typedef struct State {
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
        unsigned n_applied, n_refused, n_conflicts, n_failed;
        unsigned n_ignored;

        /* Pull secret (filled by pullsecret.c): "absent", "applied" or "invalid". */
        const char *pull_secret_state;
        char pull_secret_hash[65];
        char *pull_secret_error;
} State;

const char *registry_state_to_string(RegistryStateType t);

/* Rebuild the per-registry results from a trust set and the applied plan. */
int state_set_registries(State *s, const TrustSet *t, const Plan *p);

/* Soonest notAfter among applied registries, 0 when none. */
time_t state_soonest_expiry(const State *s);

/* Set or clear (NULL) last_error. */
int state_set_error(State *s, const char *error);

void state_done(State *s);
