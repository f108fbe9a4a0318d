/* SPDX-License-Identifier: MIT */
/*
 * The token bucket that keeps a flapping node from storming the API with
 * events: a burst, then one per interval, and time spent full earns nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "macro.h"
#include "ratelimit.h"

#define MIN (60 * USEC_PER_SEC)

static void test_burst_then_one_per_interval(void **unused) {
        TokenBucket b;
        uint64_t t = 1000 * USEC_PER_SEC;

        (void) unused;
        token_bucket_init(&b, 5, MIN);
        for (int i = 0; i < 5; i++)
                assert_true(token_bucket_take(&b, t + (uint64_t) i));
        /* A storm after the burst gets nothing... */
        for (int i = 0; i < 100; i++)
                assert_false(token_bucket_take(&b, t + 10 + (uint64_t) i * USEC_PER_SEC / 10));
        /* ...until an interval after the burst began. */
        assert_false(token_bucket_take(&b, t + MIN - 1));
        assert_true(token_bucket_take(&b, t + MIN));
        assert_false(token_bucket_take(&b, t + MIN + 1));
        /* The part of an interval already waited counts. */
        assert_true(token_bucket_take(&b, t + 2 * MIN));
        /* Three intervals later: three tokens, not more. */
        t += 5 * MIN;
        for (int i = 0; i < 3; i++)
                assert_true(token_bucket_take(&b, t));
        assert_false(token_bucket_take(&b, t));
}

static void test_idle_time_is_capped_at_burst(void **unused) {
        TokenBucket b;
        uint64_t t = 5 * USEC_PER_SEC;

        (void) unused;
        token_bucket_init(&b, 5, MIN);
        assert_true(token_bucket_take(&b, t));
        /* A day idle refills to the burst, no further. */
        t += 24ULL * 3600 * USEC_PER_SEC;
        for (int i = 0; i < 5; i++)
                assert_true(token_bucket_take(&b, t));
        assert_false(token_bucket_take(&b, t));
        /* Leaving a full bucket restarts the wait: nothing banked while full. */
        assert_true(token_bucket_take(&b, t + MIN));
        assert_false(token_bucket_take(&b, t + MIN));
}

static void test_clock_going_back_refills_nothing(void **unused) {
        TokenBucket b;

        (void) unused;
        token_bucket_init(&b, 1, MIN);
        assert_true(token_bucket_take(&b, 10 * MIN));
        assert_false(token_bucket_take(&b, 2 * MIN));
        assert_false(token_bucket_take(&b, 10 * MIN + MIN - 1));
        assert_true(token_bucket_take(&b, 11 * MIN));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_burst_then_one_per_interval),
                cmocka_unit_test(test_idle_time_is_capped_at_burst),
                cmocka_unit_test(test_clock_going_back_refills_nothing),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
