/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The trust set: a snapshot's config map entries validated into registries
 * (host[:port] -> normalized CA bundle), plus what was refused and why and
 * what was ignored. Plain data; trust_set_from_snapshot() is a pure function.
 */

#include <stdbool.h>
#include <time.h>

#include "snapshot.h"
#include "x509.h"

/* Config map keys are at most 253 characters (Kubernetes IsConfigMapKey). */
#define KEY_MAX 253
#define DEFAULT_IGNORE_KEYS "storage-ca-bundle.pem"

typedef struct TrustEntry {
        char *key;      /* as in the config map, e.g. "registry.example.com..5000" */
        char *registry; /* decoded, e.g. "registry.example.com:5000" */
        CertBundle *bundle;
        char fingerprint[65]; /* sha256 of the normalized PEM bundle */
        char value_hash[65];  /* sha256 of the raw value, to reuse a parse */
        bool expired;         /* some certificate's notAfter has passed */
        bool not_yet_valid;   /* some certificate's notBefore is in the future */
} TrustEntry;

typedef struct TrustRefusal {
        char *key;
        char *registry; /* decoded name when only the value was bad, else NULL */
        char *reason;
} TrustRefusal;

typedef struct TrustSet {
        TrustEntry *entries; /* sorted by registry */
        size_t n_entries;
        TrustRefusal *refused; /* sorted by key */
        size_t n_refused;
        /* The refusals with a registry, sorted by it, for
         * trust_set_find_refused(); NULL in a set built by hand. */
        TrustRefusal **refused_by_registry;
        size_t n_refused_by_registry;
        char **ignored; /* keys skipped by the ignore list (strv) */
} TrustSet;

/* Decode a config map key into "host" or "host:port". The last ".." is the
 * port separator. On refusal returns -EINVAL and a static reason. */
int registry_from_key(const char *key, char **ret, const char **ret_reason);

/* Validate every entry of the snapshot; never fails on bad input, only on
 * allocation failure. now is used for the expiry flags. When reuse (the
 * previous trust set, may be NULL) holds a bundle parsed from the very same
 * value bytes, that bundle is moved over instead of parsed again: OpenSSL
 * decoding dominates a sync, and a config map change rarely touches more
 * than a key or two. reuse is left valid but without those bundles. */
int trust_set_from_snapshot(const Snapshot *s, char *const *ignore, time_t now, TrustSet *reuse,
                            TrustSet **ret);

TrustSet *trust_set_free(TrustSet *t);
static inline void trust_set_freep(TrustSet **t) {
        if (*t)
                trust_set_free(*t);
}

/* The entry for registry, or NULL. */
const TrustEntry *trust_set_find(const TrustSet *t, const char *registry);
/* The refusal whose decoded registry is registry, or NULL. */
const TrustRefusal *trust_set_find_refused(const TrustSet *t, const char *registry);
