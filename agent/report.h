/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The report document (docs/report-format.md): what the agent tells the
 * aggregator, built from the State as a plain function (no loop, no I/O).
 * It holds no secret values. reporter.h sends it.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "state.h"
#include "status.h"

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

/* Build the report for s. Returns NULL with -EAGAIN in *ret_error when there
 * is nothing to report yet (the source was never read), -ENOMEM on failure.
 * with_timestamp false leaves out "timestamp". */
json_t *report_build(const State *s, const ReportContext *ctx, bool with_timestamp, int *ret_error);

/* Serialize a report, dropping registries (least interesting first, with
 * "registries_omitted" saying how many) until it fits in max bytes. */
char *report_dump(const State *s, const ReportContext *ctx, size_t max, int *ret_error);
