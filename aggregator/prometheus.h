/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * GET /metrics: the fleet gauges and the aggregator's own counters in the
 * Prometheus text exposition format (version 0.0.4), nodetrust_aggregator_
 * prefix, units in the names.
 */

#include <stddef.h>
#include <stdint.h>

#include "fleet.h"
#include "rate-window.h"
#include "ingest.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* What the aggregator counts about itself. */
typedef struct AggregatorStats {
        uint64_t start_time;            /* unix usec */
        uint64_t reports_received;      /* every POST to the reports endpoint */
        uint64_t reports_accepted;
        uint64_t reports_rejected[_REJECT_REASON_MAX];
        uint64_t nodes_forgotten;
        RateWindow accepted_rate;
} AggregatorStats;

/* Render every metric into *ret (NUL-terminated, *ret_size bytes). */
int metrics_render(const Fleet *f, const AggregatorStats *stats, uint64_t now, char **ret, size_t *ret_size);
