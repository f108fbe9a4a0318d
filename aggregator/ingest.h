/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * One agent report (docs/report-format.md), validated and reduced to what the
 * fleet view needs. Everything kept is bounded, whatever the agent sends, so
 * that memory grows with the number of nodes and nothing else.
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
/* A node that reports less often than weekly is not one we can judge. */
#define REPORT_MAX_INTERVAL_SECONDS (7 * 24 * 3600)

typedef enum RegistryState {
        REGISTRY_APPLIED,
        REGISTRY_REFUSED,
        REGISTRY_CONFLICT,
        REGISTRY_FAILED,
        _REGISTRY_STATE_MAX,
} RegistryState;

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
        unsigned registries[_REGISTRY_STATE_MAX];
        CertExpiry *certs;        /* soonest first, at most REPORT_MAX_CERTS */
        size_t n_certs;
        size_t n_certs_total;     /* registries with a not_after */
        bool has_soonest_expiry;
        int64_t soonest_expiry;
        char *pull_secret_state;  /* NULL when not given */
} Report;

const char *registry_state_to_string(RegistryState s);
const char *reject_reason_to_string(RejectReason r);

/* true when name is a Kubernetes node name (a DNS-1123 subdomain). */
bool node_name_is_valid(const char *name);

/* true when s is 64 lowercase hex digits. */
bool sha256_hex_is_valid(const char *s);

/* Parse and validate a report body. On a refusal returns -EINVAL (or
 * -ENOMEM), sets *ret_why and *ret_message (allocated, safe to show the
 * sender). */
int report_parse(const char *data, size_t size, Report **ret, RejectReason *ret_why, char **ret_message);

Report *report_free(Report *r);
DEFINE_POINTER_CLEANUP(Report, report_free)
