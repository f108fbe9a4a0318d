/* SPDX-License-Identifier: MIT */
/* The bearer token file (re-read on change) and the report rate window. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "rate-window.h"
#include "bearer.h"

static char dir[] = "/tmp/test-agg-token-XXXXXX";
static char path[128];

static void write_file(const char *content) {
        char tmp[160];
        FILE *f;

        /* Replace it the way an operator's tooling (or the kubelet) would. */
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        f = fopen(tmp, "w");
        assert_non_null(f);
        fputs(content, f);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(rename(tmp, path), 0);
}

static int setup(void **state) {
        (void) state;
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/token", dir);
        return 0;
}

static int teardown(void **state) {
        (void) state;
        unlink(path);
        rmdir(dir);
        return 0;
}

static void test_check(void **state) {
        _cleanup_(token_file_freep) TokenFile *t = NULL;

        (void) state;
        write_file("# agents of cluster A\n  s3cret-one  \n\nsecond-token\r\n");
        assert_int_equal(token_file_new(path, &t), 0);
        assert_int_equal(t->n_tokens, 2);

        assert_true(token_file_check_authorization(t, "Bearer s3cret-one"));
        assert_true(token_file_check_authorization(t, "bearer second-token"));
        assert_true(token_file_check_authorization(t, "Bearer   s3cret-one  "));
        assert_false(token_file_check_authorization(t, "Bearer s3cret-on"));
        assert_false(token_file_check_authorization(t, "Bearer s3cret-one2"));
        assert_false(token_file_check_authorization(t, "Bearer "));
        assert_false(token_file_check_authorization(t, "Bearer"));
        assert_false(token_file_check_authorization(t, "Bearers3cret-one"));
        assert_false(token_file_check_authorization(t, "Basic czNjcmV0LW9uZQ=="));
        assert_false(token_file_check_authorization(t, "s3cret-one"));
        assert_false(token_file_check_authorization(t, "# agents of cluster A"));
        assert_false(token_file_check_authorization(t, ""));
        assert_false(token_file_check_authorization(t, NULL));
        assert_false(token_file_check_authorization(NULL, "Bearer s3cret-one"));
}

static void test_refresh(void **state) {
        _cleanup_(token_file_freep) TokenFile *t = NULL;

        (void) state;
        write_file("old\n");
        assert_int_equal(token_file_new(path, &t), 0);
        assert_int_equal(token_file_refresh(t), 0); /* unchanged */

        write_file("new\n");
        assert_int_equal(token_file_refresh(t), 1);
        assert_true(token_file_check_authorization(t, "Bearer new"));
        assert_false(token_file_check_authorization(t, "Bearer old"));

        /* An empty or missing file keeps the last good tokens in force. */
        write_file("\n  \n");
        assert_int_equal(token_file_refresh(t), -ENODATA);
        assert_true(token_file_check_authorization(t, "Bearer new"));
        assert_int_equal(unlink(path), 0);
        assert_int_equal(token_file_refresh(t), -ENOENT);
        assert_true(token_file_check_authorization(t, "Bearer new"));

        write_file("newer\n");
        assert_int_equal(token_file_refresh(t), 1);
        assert_true(token_file_check_authorization(t, "Bearer newer"));
        assert_false(token_file_check_authorization(t, "Bearer new"));
}

static void test_new_errors(void **state) {
        TokenFile *t = NULL;
        char big[TOKEN_FILE_MAX + 100];

        (void) state;
        write_file("");
        assert_int_equal(token_file_new(path, &t), -ENODATA);
        write_file("# only a comment\n");
        assert_int_equal(token_file_new(path, &t), -ENODATA);
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = 0;
        write_file(big);
        assert_int_equal(token_file_new(path, &t), -EFBIG);
        assert_int_equal(token_file_new("/nonexistent/token", &t), -ENOENT);
        assert_int_equal(token_file_new(dir, &t), -EBADF);
        assert_null(t);
}

static void test_rate(void **state) {
        RateWindow w = {};
        uint64_t t0 = UINT64_C(1795000000) * 1000000;

        (void) state;
        assert_true(rate_window_per_second(&w, t0) == 0.0);
        for (int s = 0; s < 60; s++)
                for (int i = 0; i < 10; i++)
                        rate_window_add(&w, t0 + (uint64_t) s * 1000000 + (uint64_t) i * 1000);
        /* 600 events in the last 60 seconds. */
        assert_true(rate_window_per_second(&w, t0 + 59 * UINT64_C(1000000)) == 10.0);
        /* 30 seconds later half of them have left the window. */
        assert_true(rate_window_per_second(&w, t0 + 89 * UINT64_C(1000000)) == 5.0);
        /* A long silence empties it, and the next event starts afresh. */
        assert_true(rate_window_per_second(&w, t0 + 500 * UINT64_C(1000000)) == 0.0);
        rate_window_add(&w, t0 + 500 * UINT64_C(1000000));
        assert_true(rate_window_per_second(&w, t0 + 500 * UINT64_C(1000000)) * 60 == 1.0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_check),
                cmocka_unit_test(test_refresh),
                cmocka_unit_test(test_new_errors),
                cmocka_unit_test(test_rate),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
