/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What the manager publishes, read-only, to health, metrics and the
 * reporter after each sync and whenever readiness changes: the State, the
 * readiness verdict and the few facts about the process they show. They
 * hold no Manager; the manager pushes a new AgentStatus, they render it.
 *
 * The JSON here is the one serializer of registry and target results:
 * /status shows every field (STATUS_DETAIL_FULL), the report to the
 * aggregator only what an operator must see (STATUS_DETAIL_REPORT,
 * docs/report-format.md).
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "state.h"

/* What the reporter has done since start; for /metrics and /status. */
typedef struct ReporterStats {
        uint64_t reports_total;         /* attempts that got an answer or failed */
        uint64_t report_failures_total; /* ... of which were not accepted */
        time_t last_success;            /* wall clock of the last 2xx, 0 never */
        time_t last_attempt;
        long last_status;   /* HTTP status of the last answer, 0 none */
        int last_error;     /* negative errno of the last transport failure, 0 none */
        unsigned backoff;   /* consecutive retryable failures */
        uint64_t next_usec; /* CLOCK_MONOTONIC of the next attempt, 0 none */
} ReporterStats;

typedef struct AgentStatus {
        const State *state; /* the manager's; valid until the next publish */
        const char *node;
        const char *version;
        const char *source_kind; /* "dir", "kube" */
        bool ready;
        const char *not_ready_reason; /* when !ready */
        /* Changes whenever the state's revision or the readiness does:
         * equal revisions mean every document would say the same. */
        uint64_t revision;
} AgentStatus;

typedef enum StatusDetail {
        STATUS_DETAIL_FULL,   /* every field, null where unknown */
        STATUS_DETAIL_REPORT, /* fields that say something, only where they do */
} StatusDetail;

json_t *status_json_string(const char *s);
json_t *status_json_time(time_t t);

/* One registry's result. */
json_t *status_registry_json(const RegistryResult *r, StatusDetail d);

/* Each enabled target's runtime verdict, by target name. */
json_t *status_targets_json(const RuntimeStatus *rs, StatusDetail d);

/* The /status document. report_url and reporter are NULL when not reporting. */
json_t *status_json(const AgentStatus *st, time_t start_time, const char *report_url, const ReporterStats *reporter);
