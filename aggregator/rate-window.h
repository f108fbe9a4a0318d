/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Events per second over the last minute, in one-second buckets, for the
 * report rate gauge. Prometheus can take rate() of the counters too; this
 * is for the page and for a glance at /metrics without a query.
 */

#include <stdint.h>

#define RATE_WINDOW_SECONDS 60U

typedef struct RateWindow {
        uint64_t buckets[RATE_WINDOW_SECONDS];
        uint64_t last_second; /* the second the newest bucket belongs to */
} RateWindow;

/* Count one event at now (unix microseconds). */
void rate_window_add(RateWindow *w, uint64_t now);

/* Events per second over the RATE_WINDOW_SECONDS before now. */
double rate_window_per_second(const RateWindow *w, uint64_t now);
