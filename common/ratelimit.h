/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A token bucket: at most burst at once, then one per interval. Time is
 * whatever monotonic microseconds the caller passes (sd_event_now() on the
 * loop, plain numbers in tests), so it holds no clock of its own.
 */

#include <stdbool.h>
#include <stdint.h>

typedef struct TokenBucket {
        unsigned burst;
        uint64_t interval_usec;
        unsigned tokens;
        uint64_t refilled_usec; /* time the tokens were last counted at */
        bool started;
} TokenBucket;

/* A full bucket of burst tokens, one more every interval_usec. */
void token_bucket_init(TokenBucket *b, unsigned burst, uint64_t interval_usec);

/* Take one token at now_usec: true when there was one. */
bool token_bucket_take(TokenBucket *b, uint64_t now_usec);
