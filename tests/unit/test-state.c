/* SPDX-License-Identifier: MIT */
/*
 * The State's setters and readiness: the revision that tells the reporter
 * something changed moves exactly when a document would say something new.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cleanup.h"
#include "state.h"

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void test_revision_moves_on_change_only(void **unused) {
        _cleanup_(state_done) State s = {};
        uint64_t rev;

        (void) unused;
        /* The first read is new content, and a new generation. */
        assert_true(state_set_source(&s, HASH_A, "dir /x"));
        assert_int_equal(s.generation, 1);
        state_sync_done(&s, true, NULL);
        assert_string_equal(s.applied_hash, HASH_A);
        rev = s.revision;
        assert_true(rev > 0);

        /* The same content again: nothing new to tell. */
        assert_false(state_set_source(&s, HASH_A, "dir /x"));
        state_sync_done(&s, true, NULL);
        assert_int_equal(s.revision, rev);
        assert_int_equal(s.generation, 1);

        /* A failure is news; the same failure again is not. */
        state_sync_done(&s, false, "Failed to read the source: Permission denied");
        assert_true(s.revision > rev);
        assert_int_equal(s.sync_failures_total, 1);
        rev = s.revision;
        state_sync_done(&s, false, "Failed to read the source: Permission denied");
        assert_int_equal(s.revision, rev);
        assert_int_equal(s.sync_failures_total, 2);

        /* Recovery and new content move it again. */
        state_sync_done(&s, true, NULL);
        assert_true(s.revision > rev);
        assert_null(s.last_error);
        rev = s.revision;
        assert_true(state_set_source(&s, HASH_B, NULL));
        assert_int_equal(s.generation, 2);
        assert_true(s.revision > rev);
        assert_null(s.source_origin);

        /* Drift repair failing degrades, once. */
        rev = s.revision;
        state_set_failed(&s, "Drift repair failed: a registry could not be written");
        assert_false(s.last_sync_ok);
        assert_true(s.revision > rev);
        rev = s.revision;
        state_set_failed(&s, "Drift repair failed: a registry could not be written");
        assert_int_equal(s.revision, rev);

        /* The pull secret: its state and hash are reported, its error's
         * wording only shown in /status. */
        assert_int_equal(state_set_pull_secret(&s, PULL_SECRET_INVALID, NULL, "not JSON"), 1);
        assert_true(s.revision > rev);
        rev = s.revision;
        assert_int_equal(state_set_pull_secret(&s, PULL_SECRET_INVALID, NULL, "no \"auths\""), 1);
        assert_int_equal(s.revision, rev);
        assert_int_equal(state_set_pull_secret(&s, PULL_SECRET_VALID, HASH_A, NULL), 1);
        assert_true(s.revision > rev);
        rev = s.revision;
        assert_int_equal(state_set_pull_secret(&s, PULL_SECRET_VALID, HASH_B, NULL), 0);
        assert_true(s.revision > rev);
}

static void test_registries_revision(void **unused) {
        _cleanup_(state_done) State s = {};
        TrustRefusal refused = { .key = "x..99999", .reason = "port out of range" };
        TrustSet t = { .refused = &refused, .n_refused = 1 };
        uint64_t rev;

        (void) unused;
        assert_int_equal(state_set_registries(&s, &t, NULL), 0);
        assert_int_equal(s.n_refused, 1);
        rev = s.revision;
        assert_true(rev > 0);
        /* The same results: the same revision. */
        assert_int_equal(state_set_registries(&s, &t, NULL), 0);
        assert_int_equal(s.revision, rev);
        /* Another reason: a new one. */
        refused.reason = "key is empty";
        assert_int_equal(state_set_registries(&s, &t, NULL), 0);
        assert_true(s.revision > rev);
        assert_string_equal(s.registries[0].reason, "key is empty");
}

/* Any bytes in a refused key: the State holds printable UTF-8, so every
 * document built from it (/status, the report) can be built. */
static void test_refused_key_is_printable(void **unused) {
        _cleanup_(state_done) State s = {};
        TrustRefusal refused = { .key = (char *) "bad\xff\nkey", .reason = (char *) "not a registry: bad\xff\nkey" };
        TrustSet t = { .refused = &refused, .n_refused = 1 };

        (void) unused;
        assert_int_equal(state_set_registries(&s, &t, NULL), 0);
        assert_string_equal(s.registries[0].key, "bad??key");
        assert_string_equal(s.registries[0].reason, "not a registry: bad??key");
}

/* A reason quotes what it was given (a key, a server's answer): the
 * State keeps it one printable line, whatever the bytes. */
static void test_error_is_one_printable_line(void **unused) {
        _cleanup_(state_done) State s = {};
        uint64_t rev;

        (void) unused;
        state_sync_done(&s, false, "Failed to read the source: bad\xff\nkey\r");
        assert_string_equal(s.last_error, "Failed to read the source: bad? key ");
        rev = s.revision;
        /* The same bytes again are the same error: no news. */
        state_sync_done(&s, false, "Failed to read the source: bad\xff\nkey\r");
        assert_int_equal(s.revision, rev);
        state_set_failed(&s, "Drift repair failed: \x1b[31mred");
        assert_string_equal(s.last_error, "Drift repair failed:  [31mred");
}

static void test_ready(void **unused) {
        State s = {};
        const char *reason;

        (void) unused;
        assert_false(state_is_ready(&s, true, NULL, &reason));
        assert_string_equal(reason, "the first sync has not completed");
        s.first_sync_done = true;
        s.last_error = "Failed to sync: Permission denied";
        assert_false(state_is_ready(&s, true, NULL, &reason));
        assert_string_equal(reason, "Failed to sync: Permission denied");
        s.last_sync_ok = true;
        s.last_error = NULL;
        assert_false(state_is_ready(&s, false, "the watch is reconnecting", &reason));
        assert_string_equal(reason, "the watch is reconnecting");
        assert_true(state_is_ready(&s, true, NULL, &reason));
        assert_null(reason);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_revision_moves_on_change_only),
                cmocka_unit_test(test_registries_revision),
                cmocka_unit_test(test_refused_key_is_printable),
                cmocka_unit_test(test_error_is_one_printable_line),
                cmocka_unit_test(test_ready),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
