/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The agent's Prometheus metrics (text exposition format 0.0.4), rendered
 * from the State on each scrape. Names carry the nodetrust_ prefix and
 * their unit; no label ever holds a secret (registry names only).
 */

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "status.h"
#include "state.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* What a scrape says besides the State. */
typedef struct MetricsInfo {
        const char *version;
        const char *source_kind;       /* "dir", "kube" */
        bool ready;
        time_t start_time;             /* process start, wall clock */
        const ReporterStats *reporter; /* NULL when not reporting */
} MetricsInfo;

/* Render every metric into a new NUL-terminated buffer. */
int metrics_render(const State *s, const MetricsInfo *info, char **ret, size_t *ret_size);
