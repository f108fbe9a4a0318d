/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * One agent report (docs/report-format.md), validated and reduced to what the
 * fleet view needs. Everything kept is bounded, whatever the agent sends, so
 * that memory grows with the number of nodes and nothing else.
 *
 * report_parse() is in ingest.c; the state names, the validators and
 * report_free() in ingest-report.c.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleanup.h"

/* Per node, at most this many error strings and certificate expiries are
 * kept (the soonest ones); the rest are counted. */
#define REPORT_MAX_ERRORS 16U
#define REPORT_MAX_ERROR_LEN 512U
#define REPORT_MAX_CERTS 32U
#define REPORT_MAX_REGISTRY_NAME 300U
/* Runtime targets (docker, containers, containerd, ...) per report. */
#define REPORT_MAX_TARGETS 8U
#define REPORT_MAX_TARGET_NAME 63U
#define REPORT_MAX_REASON_LEN 512U
/* Registries kept per node for the per-registry view: the agent reads at
 * most 4096 keys from a config map, so a real node never has more. */
#define REPORT_MAX_REGISTRIES 4096U
/* A node that reports less often than weekly is not one we can judge. */
#define REPORT_MAX_INTERVAL_SECONDS (7 * 24 * 3600)

typedef enum RegistryState {
        REGISTRY_APPLIED,
        REGISTRY_REFUSED,
        REGISTRY_CONFLICT,
        REGISTRY_FAILED,
        REGISTRY_SHADOWED,   /* written, but a runtime will not use it */
        _REGISTRY_STATE_MAX,
} RegistryState;

/* Whether a container runtime will read what the agent writes for it. Not
 * installed is normal (a CRI-O node has no containerd); inactive is not. */
typedef enum TargetState {
        TARGET_ACTIVE,
        TARGET_NOT_INSTALLED,
        TARGET_INACTIVE,
        _TARGET_STATE_MAX,
} TargetState;

/* The agent's TLS check of a registry with the bundle it wrote; not checked
 * when the report has no verification for it. */
typedef enum VerificationState {
        VERIFICATION_NOT_CHECKED,
        VERIFICATION_VERIFIED,
        VERIFICATION_MISMATCH,
        VERIFICATION_UNREACHABLE,
        _VERIFICATION_STATE_MAX,
} VerificationState;

/* Why a report was turned away; each has a metrics label. */
typedef enum RejectReason {
        REJECT_UNAUTHORIZED,
        REJECT_TOO_LARGE,
        REJECT_BAD_JSON,
        REJECT_BAD_SCHEMA,
        REJECT_BAD_NODE_NAME,
        REJECT_NODE_LIMIT,
        _REJECT_REASON_MAX,
} RejectReason;

typedef struct CertExpiry {
        char *registry;
        int64_t not_after;
} CertExpiry;

/* One registry of one node, as much as the per-registry view needs. */
typedef struct RegistryEntry {
        char *name;
        RegistryState state;
        VerificationState verification;
        char fingerprint[65];     /* "" when not given */
        bool has_not_after;
        bool has_server_not_after;
        int64_t not_after;        /* of the CA bundle */
        int64_t server_not_after; /* of the certificate the registry presented */
} RegistryEntry;

typedef struct TargetStatus {
        char name[REPORT_MAX_TARGET_NAME + 1];
        TargetState state;
        char *reason;             /* NULL when not given */
} TargetStatus;

typedef struct Report {
        char *node;
        char *agent_version;      /* NULL when not given */
        int64_t timestamp;        /* the agent's clock, unix seconds */
        unsigned interval_seconds; /* 0 when not given */
        bool ready;
        char *source_kind;        /* NULL when not given */
        uint64_t generation;
        char source_hash[65];
        char applied_hash[65];    /* "" for null */
        char **errors;            /* NULL-terminated, at most REPORT_MAX_ERRORS */
        size_t n_errors;          /* how many the agent sent */
        unsigned registries[_REGISTRY_STATE_MAX]; /* shadowed: registry_counts' when given */
        CertExpiry *certs;        /* soonest first, at most REPORT_MAX_CERTS */
        size_t n_certs;
        size_t n_certs_total;     /* registries with a not_after */
        bool has_soonest_expiry;
        int64_t soonest_expiry;
        RegistryEntry *entries;   /* sorted by name, one per name, at most REPORT_MAX_REGISTRIES */
        size_t n_entries;
        bool entries_truncated;   /* the report listed more names than were kept */
        char *pull_secret_state;  /* NULL when not given */
        TargetStatus targets[REPORT_MAX_TARGETS]; /* sorted by name */
        size_t n_targets;
} Report;

const char *registry_state_to_string(RegistryState s);
const char *target_state_to_string(TargetState s);
const char *verification_state_to_string(VerificationState s);
const char *reject_reason_to_string(RejectReason r);

/* true when name is a Kubernetes node name (a DNS-1123 subdomain). */
bool node_name_is_valid(const char *name);

/* true when s is 64 lowercase hex digits. */
bool sha256_hex_is_valid(const char *s);

/* true when name is a target name: 1 to REPORT_MAX_TARGET_NAME of [a-z0-9_-]. */
bool target_name_is_valid(const char *name);

/* true when the report names a target that is installed but will not read
 * what the agent writes. */
bool report_has_inactive_target(const Report *r);

/* The registry named name in r's kept list, or NULL. */
const RegistryEntry *report_find_registry(const Report *r, const char *name);

/* Parse and validate a report body. On a refusal returns -EINVAL (or
 * -ENOMEM), sets *ret_why and *ret_message (allocated, safe to show the
 * sender). */
int report_parse(const char *data, size_t size, Report **ret, RejectReason *ret_why, char **ret_message);

Report *report_free(Report *r);
DEFINE_POINTER_CLEANUP(Report, report_free)
