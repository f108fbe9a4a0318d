/* SPDX-License-Identifier: MIT */
#include <assert.h>

#include "ratelimit.h"

void token_bucket_init(TokenBucket *b, unsigned burst, uint64_t interval_usec) {
        assert(b);
        assert(burst > 0);
        assert(interval_usec > 0);
        *b = (TokenBucket){ .burst = burst, .interval_usec = interval_usec, .tokens = burst };
}

static void token_bucket_refill(TokenBucket *b, uint64_t now_usec) {
        uint64_t n;

        if (!b->started) {
                b->started = true;
                b->refilled_usec = now_usec;
                return;
        }
        /* A clock that went back (it should not) refills nothing. */
        if (now_usec <= b->refilled_usec)
                return;
        n = (now_usec - b->refilled_usec) / b->interval_usec;
        if (n == 0)
                return;
        if (n >= b->burst - b->tokens) {
                /* Full: time spent full earns nothing for later. */
                b->tokens = b->burst;
                b->refilled_usec = now_usec;
        } else {
                b->tokens += (unsigned) n;
                /* Keep the part of an interval already waited. */
                b->refilled_usec += n * b->interval_usec;
        }
}

bool token_bucket_take(TokenBucket *b, uint64_t now_usec) {
        assert(b);
        token_bucket_refill(b, now_usec);
        if (b->tokens == 0)
                return false;
        /* Leaving a full bucket: the wait for the next token starts now. */
        if (b->tokens == b->burst)
                b->refilled_usec = now_usec;
        b->tokens--;
        return true;
}
