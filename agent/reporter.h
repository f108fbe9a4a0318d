/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The reporter: POSTs the agent's report (report.h) to the aggregator every
 * --report-interval (with jitter) and soon after the published status
 * changes. libcurl multi on the agent's loop, one request in flight at
 * most, exponential backoff while the aggregator is unreachable or busy.
 * The bearer token is read from the token file and re-read when the file
 * changes; it is never logged.
 *
 * It knows nothing of the manager: the manager hands it each new
 * AgentStatus with reporter_update(), and "changed" is a different
 * AgentStatus.revision, never a rebuilt document.
 */

#include <stdint.h>
#include <systemd/sd-event.h>

#include "status.h"

typedef struct Reporter Reporter;

typedef struct ReporterOptions {
        const char *url;        /* the aggregator's base URL */
        const char *token_file; /* NULL: send no token */
        const char *ca_file;    /* NULL: libcurl's default store */
        unsigned interval_sec;
} ReporterOptions;

/* The backoff starts at 1 s and doubles up to this cap. */
#define REPORT_BACKOFF_MIN_USEC (1000000ULL)
#define REPORT_BACKOFF_MAX_USEC (300ULL * 1000000ULL)

/* The delay before retry number n (n >= 1): 1 s doubling, capped. */
uint64_t report_backoff_usec(unsigned n);


/* Start reporting on event; the options are copied. */
int reporter_new(sd_event *event, const ReporterOptions *o, Reporter **ret);
Reporter *reporter_free(Reporter *r);
static inline void reporter_freep(Reporter **r) {
        reporter_free(*r);
}

/* The status to report from now on; with soon, report it soon when its
 * revision is one the aggregator has not seen (else at the next attempt).
 * st's pointers must stay valid until the next call. */
void reporter_update(Reporter *r, const AgentStatus *st, bool soon);

/* Counters and the next attempt, for health; valid as long as r. */
const ReporterStats *reporter_get_stats(const Reporter *r);
