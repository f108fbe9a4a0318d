/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The reporter: POSTs the agent's report (docs/report-format.md) to the
 * aggregator every --report-interval (with jitter) and soon after anything
 * in it changed. libcurl multi on the manager's loop, one request in flight
 * at most, exponential backoff while the aggregator is unreachable or busy.
 * The bearer token is read from --report-token-file and re-read when the
 * file changes; it is never logged. The report holds no secret values.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "state.h"

typedef struct Manager Manager;
typedef struct Reporter Reporter;

/* What the reporter has done since start; for /metrics and /status. */
typedef struct ReporterStats {
        uint64_t reports_total;         /* attempts that got an answer or failed */
        uint64_t report_failures_total; /* ... of which were not accepted */
        time_t last_success;            /* wall clock of the last 2xx, 0 never */
        time_t last_attempt;
        long last_status;     /* HTTP status of the last answer, 0 none */
        int last_error;       /* negative errno of the last transport failure, 0 none */
        unsigned backoff;     /* consecutive retryable failures */
        uint64_t next_usec;   /* CLOCK_MONOTONIC of the next attempt, 0 none */
} ReporterStats;

/* Everything a report says besides the State. */
typedef struct ReportContext {
        const char *node;
        const char *source_kind;
        unsigned interval_sec;
        bool ready;
        const char *not_ready_reason; /* when !ready */
        time_t now;
} ReportContext;

/* A POST body must stay under the aggregator's 256 KiB limit; leave room. */
#define REPORT_MAX_BODY (240U * 1024U)
/* The backoff starts at 1 s and doubles up to this cap. */
#define REPORT_BACKOFF_MIN_USEC (1000000ULL)
#define REPORT_BACKOFF_MAX_USEC (300ULL * 1000000ULL)

/* Build the report for s. Returns NULL with -EAGAIN in *ret_error when there
 * is nothing to report yet (the source was never read), -ENOMEM on failure.
 * with_timestamp false leaves out "timestamp", for comparing reports. */
json_t *report_build(const State *s, const ReportContext *ctx, bool with_timestamp, int *ret_error);

/* Serialize a report, dropping registries (least interesting first, with
 * "registries_omitted" saying how many) until it fits in max bytes. */
char *report_dump(const State *s, const ReportContext *ctx, size_t max, int *ret_error);

/* The delay before retry number n (n >= 1): 1 s doubling, capped. */
uint64_t report_backoff_usec(unsigned n);

/* usec spread uniformly over +-10%. */
uint64_t report_jitter_usec(uint64_t usec);

/* Start reporting to m->config->report_url on m's loop. */
int reporter_new(Manager *m, Reporter **ret);
Reporter *reporter_free(Reporter *r);
static inline void reporter_freep(Reporter **r) {
        reporter_free(*r);
}

/* Tell the reporter a sync finished: it reports soon when the report changed. */
void reporter_sync_done(Reporter *r);

/* Counters and the next attempt, for health. */
const ReporterStats *reporter_get_stats(const Reporter *r);
