/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <string.h>

#include "rate-window.h"

/* Clear the buckets of the seconds that passed without an event. */
static void rate_window_advance(RateWindow *w, uint64_t second) {
        if (second <= w->last_second)
                return;
        if (second - w->last_second >= RATE_WINDOW_SECONDS)
                memset(w->buckets, 0, sizeof w->buckets);
        else
                for (uint64_t s = w->last_second + 1; s <= second; s++)
                        w->buckets[s % RATE_WINDOW_SECONDS] = 0;
        w->last_second = second;
}

void rate_window_add(RateWindow *w, uint64_t now) {
        uint64_t second = now / 1000000;

        assert(w);

        rate_window_advance(w, second);
        /* A clock step backwards lands in the newest bucket. */
        w->buckets[w->last_second % RATE_WINDOW_SECONDS]++;
}

double rate_window_per_second(const RateWindow *w, uint64_t now) {
        uint64_t second = now / 1000000, sum = 0;

        assert(w);

        /* Count the buckets still inside the window ending at now. */
        for (uint64_t i = 0; i < RATE_WINDOW_SECONDS; i++) {
                uint64_t s = w->last_second - i;
                if (i > w->last_second)
                        break;
                if (second >= s + RATE_WINDOW_SECONDS)
                        break;
                sum += w->buckets[s % RATE_WINDOW_SECONDS];
        }
        return (double) sum / RATE_WINDOW_SECONDS;
}
