/* SPDX-License-Identifier: MIT */
/*
 * The report: the JSON built from a hand-made State (docs/report-format.md),
 * its size bound, the backoff and jitter, and then the reporter itself on a
 * real loop posting to a real HTTP server (common/httpd) on the same loop.
 */
#include <errno.h>
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

#include "cleanup.h"
#include "httpd.h"
#include "random.h"
#include "report.h"
#include "reporter.h"

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static RegistryResult sample_regs[3] = {
        { .key = "a.example.com", .registry = "a.example.com", .state = REGISTRY_APPLIED, .fingerprint = "ff",
          .not_after = 2000000000, .n_certs = 1 },
        { .key = "x..99999", .state = REGISTRY_REFUSED, .reason = "port out of range" },
        { .key = "c.example.com..5000", .registry = "c.example.com:5000", .state = REGISTRY_CONFLICT,
          .reason = "docker: not ours", .fingerprint = "ee", .not_after = 1900000000, .n_certs = 1,
          .expired = true },
};

static void state_fill(State *s) {
        *s = (State){
                .generation = 4,
                .source_hash = HASH_A,
                .applied_hash = HASH_A,
                .first_sync_done = true,
                .last_sync_ok = true,
                .registries = sample_regs,
                .n_registries = 3,
                .n_applied = 1,
                .n_refused = 1,
                .n_conflicts = 1,
                .pull_secret_status = PULL_SECRET_VALID,
                .pull_secret_hash = HASH_B,
        };
}

static const ReportContext ctx_ready = { .node = "worker-1", .source_kind = "dir", .interval_sec = 30,
                                         .ready = true, .now = 1800000000 };

static void test_report_fields(void **unused) {
        json_auto_t *doc = NULL;
        json_t *regs, *r;
        State s;
        int error;

        (void) unused;
        state_fill(&s);
        doc = report_build(&s, &ctx_ready, true, &error);
        assert_non_null(doc);
        assert_int_equal(json_integer_value(json_object_get(doc, "schema")), 1);
        assert_string_equal(json_string_value(json_object_get(doc, "node")), "worker-1");
        assert_int_equal(json_integer_value(json_object_get(doc, "timestamp")), 1800000000);
        assert_int_equal(json_integer_value(json_object_get(doc, "interval_seconds")), 30);
        assert_true(json_is_true(json_object_get(doc, "ready")));
        assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "source"), "hash")), HASH_A);
        assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "source"), "kind")), "dir");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "source"), "generation")), 4);
        assert_string_equal(json_string_value(json_object_get(doc, "applied_hash")), HASH_A);
        assert_int_equal(json_array_size(json_object_get(doc, "errors")), 0);
        assert_int_equal(json_integer_value(json_object_get(doc, "soonest_expiry")), 1900000000);
        assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "pull_secret"), "state")),
                            "applied");
        assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "pull_secret"), "hash")), HASH_B);

        regs = json_object_get(doc, "registries");
        assert_int_equal(json_array_size(regs), 3);
        r = json_array_get(regs, 0);
        assert_string_equal(json_string_value(json_object_get(r, "name")), "a.example.com");
        assert_string_equal(json_string_value(json_object_get(r, "state")), "applied");
        assert_int_equal(json_integer_value(json_object_get(r, "not_after")), 2000000000);
        /* A key that does not decode is named by the key itself. */
        r = json_array_get(regs, 1);
        assert_string_equal(json_string_value(json_object_get(r, "name")), "x..99999");
        assert_string_equal(json_string_value(json_object_get(r, "state")), "refused");
        assert_string_equal(json_string_value(json_object_get(r, "reason")), "port out of range");
        assert_null(json_object_get(r, "not_after"));
        r = json_array_get(regs, 2);
        assert_string_equal(json_string_value(json_object_get(r, "name")), "c.example.com:5000");
        assert_true(json_is_true(json_object_get(r, "expired")));

        json_decref(doc);
        doc = report_build(&s, &ctx_ready, false, &error);
        assert_non_null(doc);
        assert_null(json_object_get(doc, "timestamp"));
        assert_null(json_object_get(doc, "registries_omitted"));
}

static void test_report_failing(void **unused) {
        ReportContext ctx = ctx_ready;
        json_auto_t *doc = NULL;
        json_t *errs;
        State s;
        int error;

        (void) unused;
        state_fill(&s);
        s.last_sync_ok = false;
        s.last_error = "Failed to read the source: Permission denied";
        s.applied_hash[0] = 0;
        ctx.ready = false;
        ctx.not_ready_reason = s.last_error;
        doc = report_build(&s, &ctx, true, &error);
        assert_non_null(doc);
        assert_true(json_is_false(json_object_get(doc, "ready")));
        assert_true(json_is_null(json_object_get(doc, "applied_hash")));
        errs = json_object_get(doc, "errors");
        assert_int_equal(json_array_size(errs), 1);
        assert_string_equal(json_string_value(json_array_get(errs, 0)), s.last_error);

        /* Synced fine, but the source itself is not live. */
        json_decref(doc);
        s.last_sync_ok = true;
        s.last_error = NULL;
        ctx.not_ready_reason = "the watch is reconnecting";
        doc = report_build(&s, &ctx, true, &error);
        errs = json_object_get(doc, "errors");
        assert_int_equal(json_array_size(errs), 1);
        assert_string_equal(json_string_value(json_array_get(errs, 0)), "the watch is reconnecting");

        /* Never read: nothing true to say yet. */
        json_decref(doc);
        s.source_hash[0] = 0;
        doc = report_build(&s, &ctx, true, &error);
        assert_null(doc);
        assert_int_equal(error, -EAGAIN);
}

static void test_report_size_bound(void **unused) {
        enum { N = 5000 };
        RegistryResult *regs = calloc(N, sizeof *regs);
        char reason[300];
        json_auto_t *doc = NULL;
        char *text;
        State s;
        int error;
        size_t failed_seen = 0;

        (void) unused;
        assert_non_null(regs);
        memset(reason, 'r', sizeof reason - 1);
        reason[sizeof reason - 1] = 0;
        for (size_t i = 0; i < N; i++) {
                regs[i].key = malloc(64);
                snprintf(regs[i].key, 64, "registry-%05zu.example.com", i);
                regs[i].registry = regs[i].key;
                regs[i].state = i % 1000 == 7 ? REGISTRY_FAILED : REGISTRY_APPLIED;
                regs[i].reason = regs[i].state == REGISTRY_FAILED ? reason : NULL;
                regs[i].not_after = 2000000000 + (time_t) i;
                memset(regs[i].fingerprint, 'f', 64);
        }
        state_fill(&s);
        s.registries = regs;
        s.n_registries = N;
        s.n_applied = N - 5;
        s.n_failed = 5;
        s.n_refused = s.n_conflicts = 0;

        text = report_dump(&s, &ctx_ready, REPORT_MAX_BODY, &error);
        assert_non_null(text);
        assert_true(strlen(text) <= REPORT_MAX_BODY);
        doc = json_loads(text, 0, NULL);
        assert_non_null(doc);
        assert_true(json_integer_value(json_object_get(doc, "registries_omitted")) > 0);
        assert_int_equal(json_array_size(json_object_get(doc, "registries")) +
                                 (size_t) json_integer_value(json_object_get(doc, "registries_omitted")),
                         N);
        /* The whole counts stay, and the failed registries are the ones kept. */
        assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "registry_counts"), "failed")), 5);
        for (size_t i = 0; i < json_array_size(json_object_get(doc, "registries")); i++) {
                json_t *r = json_array_get(json_object_get(doc, "registries"), i);
                failed_seen += streq(json_string_value(json_object_get(r, "state")), "failed");
        }
        assert_int_equal(failed_seen, 5);
        free(text);
        for (size_t i = 0; i < N; i++)
                free(regs[i].key);
        free(regs);
}

static void test_backoff_and_jitter(void **unused) {
        (void) unused;
        assert_int_equal(report_backoff_usec(1), 1000000);
        assert_int_equal(report_backoff_usec(2), 2000000);
        assert_int_equal(report_backoff_usec(3), 4000000);
        assert_int_equal(report_backoff_usec(9), 256000000);
        assert_int_equal(report_backoff_usec(10), REPORT_BACKOFF_MAX_USEC);
        assert_int_equal(report_backoff_usec(1000), REPORT_BACKOFF_MAX_USEC);

        for (int i = 0; i < 1000; i++) {
                uint64_t j = jitter_usec_random(30000000);
                assert_true(j >= 27000000 && j <= 33000000);
        }
        assert_int_equal(jitter_usec_random(0), 0);
}

/* ------------------------------------------------------------------------
 * The reporter on a loop, posting to a server on the same loop. */

typedef struct Fixture {
        State state;
        AgentStatus status;
        sd_event *event;
        Reporter *reporter;
        Httpd *httpd;
        char dir[64];
        char token_path[96];
        char url[64];

        unsigned answer; /* status the server answers with */
        unsigned n_requests;
        char *last_auth;
        char *last_body;
        char *last_content_type;
} Fixture;

static int server(HttpdRequest *req, void *userdata) {
        Fixture *f = userdata;
        const char *a = httpd_request_header(req, "Authorization");
        const char *ct = httpd_request_header(req, "Content-Type");

        f->n_requests++;
        free(f->last_auth);
        free(f->last_body);
        free(f->last_content_type);
        f->last_auth = a ? strdup(a) : NULL;
        f->last_content_type = ct ? strdup(ct) : NULL;
        f->last_body = strdup(req->body);
        if (!streq(req->method, "POST") || !streq(req->path, "/api/v1/reports"))
                return httpd_reply_text(req, 404, "wrong place\n");
        if (f->answer == 200)
                return httpd_reply(req, 200, "application/json", "{\"state\": \"converged\"}", 22);
        return httpd_reply(req, f->answer, "application/json", "{\"error\": \"go away\"}", 20);
}

static void write_token(Fixture *f, const char *token) {
        _cleanup_free_ char *tmp = NULL;
        FILE *fp;

        /* Replaced by rename, as a secret volume does. */
        assert_true(asprintf(&tmp, "%s.tmp", f->token_path) > 0);
        fp = fopen(tmp, "w");
        assert_non_null(fp);
        fprintf(fp, "%s\n", token);
        assert_int_equal(fclose(fp), 0);
        assert_int_equal(rename(tmp, f->token_path), 0);
}

static void reporter_start(Fixture *f, const char *url) {
        ReporterOptions o = { .url = url, .token_file = f->token_path, .interval_sec = 1 };

        assert_int_equal(reporter_new(f->event, &o, &f->reporter), 0);
}

/* What the manager does after each sync: hand over the status. */
static void publish(Fixture *f) {
        f->status.revision = f->state.revision;
        reporter_update(f->reporter, &f->status, true);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);

        assert_non_null(f);
        strcpy(f->dir, "/tmp/test-report.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->token_path, sizeof f->token_path, "%s/token", f->dir);
        write_token(f, "tok-1");

        assert_int_equal(sd_event_new(&f->event), 0);
        assert_int_equal(httpd_new(f->event, "127.0.0.1:0", server, f, &f->httpd), 0);
        snprintf(f->url, sizeof f->url, "http://127.0.0.1:%u/", httpd_get_port(f->httpd));
        f->answer = 200;

        state_fill(&f->state);
        f->status = (AgentStatus){ .state = &f->state, .node = "worker-1", .source_kind = "fake", .ready = true };
        reporter_start(f, f->url);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        reporter_free(f->reporter);
        httpd_free(f->httpd);
        sd_event_unref(f->event);
        free(f->state.source_origin);
        unlink(f->token_path);
        rmdir(f->dir);
        free(f->last_auth);
        free(f->last_body);
        free(f->last_content_type);
        free(f);
        return 0;
}

static uint64_t now_usec(Fixture *f) {
        uint64_t t;
        assert_true(sd_event_now(f->event, CLOCK_MONOTONIC, &t) >= 0);
        return t;
}

/* Turn the loop for up to ms milliseconds, or until the reporter has
 * finished n attempts in all. */
static void run_until(Fixture *f, unsigned n, unsigned ms) {
        uint64_t end = now_usec(f) + ms * 1000ULL;

        while (now_usec(f) < end) {
                assert_true(sd_event_run(f->event, 10000) >= 0);
                if (reporter_get_stats(f->reporter)->reports_total >= n)
                        return;
        }
}

/* Wait for the reporter to reach n attempts, up to ms: longer under
 * valgrind (mk/valgrind.mk says so), where the first request alone can
 * take more than 500 ms. Waits that must see nothing happen stay as they
 * are: run_until(). */
static void wait_reports(Fixture *f, unsigned n, unsigned ms) {
        run_until(f, n, getenv("NODETRUST_UNDER_VALGRIND") ? ms * 4 : ms);
}

static void test_reporter_sends(void **state) {
        Fixture *f = *state;
        const ReporterStats *st = reporter_get_stats(f->reporter);
        json_auto_t *doc = NULL;

        /* The first sync: a report within a tenth of the interval. */
        publish(f);
        wait_reports(f, 1, 500);
        assert_int_equal(f->n_requests, 1);
        assert_string_equal(f->last_auth, "Bearer tok-1");
        assert_string_equal(f->last_content_type, "application/json");
        assert_null(strstr(f->last_body, "tok-1"));
        doc = json_loads(f->last_body, 0, NULL);
        assert_non_null(doc);
        assert_string_equal(json_string_value(json_object_get(doc, "node")), "worker-1");
        assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "source"), "hash")), HASH_A);
        assert_true(json_integer_value(json_object_get(doc, "timestamp")) > 0);
        assert_int_equal(st->reports_total, 1);
        assert_int_equal(st->report_failures_total, 0);
        assert_true(st->last_success > 0);

        /* A sync that changed nothing: no extra report before the interval. */
        publish(f);
        run_until(f, 2, 300);
        assert_int_equal(f->n_requests, 1);

        /* Readiness moved between syncs (the source's health): taken for
         * the next report, not sent on its own... */
        f->status.ready = false;
        f->status.not_ready_reason = "the watch is reconnecting";
        f->status.revision = f->state.revision + 1000; /* the manager's readiness counter */
        reporter_update(f->reporter, &f->status, false);
        run_until(f, 2, 300);
        assert_int_equal(f->n_requests, 1);
        /* ...which the next sync's publish sends, as it differs. */
        f->status.ready = true;
        f->status.not_ready_reason = NULL;
        reporter_update(f->reporter, &f->status, true);
        wait_reports(f, 2, 500);
        assert_int_equal(f->n_requests, 2);
        assert_non_null(strstr(f->last_body, "\"ready\":true"));

        /* A change: reported at once, with a token that changed meanwhile. */
        write_token(f, "tok-2");
        assert_true(state_set_source(&f->state, HASH_B, NULL));
        publish(f);
        wait_reports(f, 3, 500);
        assert_int_equal(f->n_requests, 3);
        assert_string_equal(f->last_auth, "Bearer tok-2");
        assert_non_null(strstr(f->last_body, HASH_B));

        /* And every interval (1 s +-10%) without a change. */
        wait_reports(f, 4, 1500);
        assert_int_equal(f->n_requests, 4);
}

static void test_reporter_backoff(void **state) {
        Fixture *f = *state;
        const ReporterStats *st = reporter_get_stats(f->reporter);
        uint64_t next;

        /* Busy: retry after about 1 s, then 2 s. */
        f->answer = 503;
        publish(f);
        wait_reports(f, 1, 500);
        assert_int_equal(f->n_requests, 1);
        assert_int_equal(st->backoff, 1);
        assert_int_equal(st->last_status, 503);
        assert_int_equal(st->report_failures_total, 1);
        next = st->next_usec - now_usec(f);
        assert_true(next >= 850000 && next <= 1150000);

        /* A change during the backoff waits for it: no request now. */
        assert_true(state_set_source(&f->state, HASH_B, NULL));
        publish(f);
        run_until(f, 2, 300);
        assert_int_equal(f->n_requests, 1);

        wait_reports(f, 2, 1500);
        assert_int_equal(f->n_requests, 2);
        assert_int_equal(st->backoff, 2);
        next = st->next_usec - now_usec(f);
        assert_true(next >= 1700000 && next <= 2300000);

        /* A refused token: the aggregator is up, so no backoff, normal pace. */
        f->answer = 401;
        wait_reports(f, 3, 2500);
        assert_int_equal(f->n_requests, 3);
        assert_int_equal(st->last_status, 401);
        assert_int_equal(st->backoff, 0);
        next = st->next_usec - now_usec(f);
        assert_true(next <= 1150000);

        /* Back to normal. */
        f->answer = 200;
        wait_reports(f, 4, 1500);
        assert_int_equal(f->n_requests, 4);
        assert_int_equal(st->backoff, 0);
        assert_true(st->last_success > 0);
}

static void test_reporter_unreachable(void **state) {
        Fixture *f = *state;
        const ReporterStats *st;
        char url[64];

        /* A port nobody listens on: the one the server had, after it stopped. */
        snprintf(url, sizeof url, "http://127.0.0.1:%u", httpd_get_port(f->httpd));
        f->httpd = httpd_free(f->httpd);
        f->reporter = reporter_free(f->reporter);
        reporter_start(f, url);
        st = reporter_get_stats(f->reporter);

        publish(f);
        wait_reports(f, 1, 500);
        assert_int_equal(st->backoff, 1);
        assert_int_equal(st->last_error, -ECONNREFUSED);
        assert_int_equal(st->last_success, 0);
}

static void test_reporter_token_missing(void **state) {
        Fixture *f = *state;
        const ReporterStats *st = reporter_get_stats(f->reporter);

        /* No token to send: nothing goes out, and it backs off. */
        unlink(f->token_path);
        publish(f);
        run_until(f, 1, 400);
        assert_int_equal(f->n_requests, 0);
        assert_int_equal(st->backoff, 1);
        assert_int_equal(st->last_error, -ENOENT);

        /* It comes back: the next attempt (about 1 s later) uses it. */
        write_token(f, "tok-3");
        run_until(f, 2, 1500);
        assert_int_equal(f->n_requests, 1);
        assert_string_equal(f->last_auth, "Bearer tok-3");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_report_fields),
                cmocka_unit_test(test_report_failing),
                cmocka_unit_test(test_report_size_bound),
                cmocka_unit_test(test_backoff_and_jitter),
                cmocka_unit_test_setup_teardown(test_reporter_sends, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reporter_backoff, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reporter_unreachable, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reporter_token_missing, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
