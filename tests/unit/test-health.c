/* SPDX-License-Identifier: MIT */
/*
 * The agent's health endpoint: the Prometheus and /status renderings of a
 * hand-built State, then the real server on a real loop, asked by a real
 * HTTP client (common/curl-event) on the same loop, one thread.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cleanup.h"
#include "curl-request.h"
#include "health.h"
#include "metrics.h"
#include "status.h"

/* A State with one registry of each kind, built by hand. */
static void state_fill(State *s) {
        static RegistryResult regs[4];

        regs[0] = (RegistryResult){ .key = "a.example.com", .registry = "a.example.com", .state = REGISTRY_APPLIED,
                                    .fingerprint = "aa", .not_after = 2000000000, .n_certs = 1 };
        regs[1] = (RegistryResult){ .key = "b.example.com..5000", .registry = "b.example.com:5000",
                                    .state = REGISTRY_CONFLICT, .reason = "docker: not ours",
                                    .fingerprint = "bb", .not_after = 1900000000, .n_certs = 2 };
        regs[2] = (RegistryResult){ .key = "bad\"key\\x", .state = REGISTRY_REFUSED, .reason = "not a host name" };
        regs[3] = (RegistryResult){ .key = "c.example.com", .registry = "c.example.com", .state = REGISTRY_FAILED,
                                    .reason = "containerd: Permission denied", .fingerprint = "cc",
                                    .not_after = 2100000000, .n_certs = 1 };
        *s = (State){
                .syncs_total = 7,
                .sync_failures_total = 2,
                .files_written_total = 9,
                .files_removed_total = 1,
                .generation = 3,
                .source_hash = "1111111111111111111111111111111111111111111111111111111111111111",
                .applied_hash = "1111111111111111111111111111111111111111111111111111111111111111",
                .first_sync_done = true,
                .last_sync_ok = true,
                .last_sync = 1800000000,
                .last_success = 1800000000,
                .registries = regs,
                .n_registries = 4,
                .n_applied = 1,
                .n_refused = 1,
                .n_conflicts = 1,
                .n_failed = 1,
                .pull_secret_status = PULL_SECRET_VALID,
                .pull_secret_hash = "2222222222222222222222222222222222222222222222222222222222222222",
        };
}

static bool has_line(const char *text, const char *line) {
        size_t n = strlen(line);

        for (const char *p = text; (p = strstr(p, line)); p++)
                if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == 0))
                        return true;
        return false;
}

static void test_metrics_render(void **unused) {
        _cleanup_free_ char *text = NULL;
        ReporterStats rs = { .reports_total = 5, .report_failures_total = 1, .last_success = 1800000001 };
        MetricsInfo info = { .version = "0.1.0", .source_kind = "dir", .ready = true, .start_time = 1700000000,
                             .reporter = &rs };
        State s;
        size_t size;

        (void) unused;
        state_fill(&s);
        assert_int_equal(metrics_render(&s, &info, &text, &size), 0);
        assert_int_equal(strlen(text), size);

        assert_true(has_line(text, "# TYPE nodetrust_syncs_total counter"));
        assert_true(has_line(text, "nodetrust_syncs_total 7"));
        assert_true(has_line(text, "nodetrust_sync_failures_total 2"));
        assert_true(has_line(text, "nodetrust_files_written_total 9"));
        assert_true(has_line(text, "nodetrust_registries{state=\"applied\"} 1"));
        assert_true(has_line(text, "nodetrust_registries{state=\"refused\"} 1"));
        assert_true(has_line(text, "nodetrust_registries{state=\"conflict\"} 1"));
        assert_true(has_line(text, "nodetrust_registries{state=\"failed\"} 1"));
        assert_true(has_line(text, "nodetrust_last_successful_sync_timestamp_seconds 1800000000"));
        assert_true(has_line(text, "nodetrust_source_generation 3"));
        assert_true(has_line(text, "nodetrust_source_applied 1"));
        assert_true(has_line(text, "nodetrust_ready 1"));
        assert_true(has_line(text, "nodetrust_build_info{version=\"0.1.0\",source=\"dir\"} 1"));
        assert_true(has_line(text, "nodetrust_pull_secret_state{state=\"applied\"} 1"));
        assert_true(has_line(text, "nodetrust_pull_secret_state{state=\"absent\"} 0"));
        assert_true(has_line(text, "nodetrust_reports_total 5"));
        assert_true(has_line(text, "nodetrust_report_failures_total 1"));
        /* Expiry for every registry with a bundle; the refused key has none. */
        assert_true(has_line(text,
                             "nodetrust_certificate_not_after_timestamp_seconds{registry=\"a.example.com\"} 2000000000"));
        assert_true(has_line(
                text, "nodetrust_certificate_not_after_timestamp_seconds{registry=\"b.example.com:5000\"} 1900000000"));
        assert_null(strstr(text, "bad"));
        assert_true(has_line(text, "nodetrust_certificate_expiry_soonest_timestamp_seconds 1900000000"));

        /* Every sample's family has exactly one HELP and one TYPE line, before it. */
        for (const char *line = text; *line;) {
                const char *end = strchr(line, '\n');
                char name[128], probe[160];
                size_t n;

                assert_non_null(end);
                if (line[0] != '#') {
                        n = strcspn(line, "{ ");
                        assert_true(n < sizeof name);
                        memcpy(name, line, n);
                        name[n] = 0;
                        assert_true(strncmp(name, "nodetrust_", 10) == 0);
                        snprintf(probe, sizeof probe, "# TYPE %s ", name);
                        const char *t = strstr(text, probe);
                        assert_non_null(t);
                        assert_true(t < line);
                        assert_null(strstr(t + 1, probe));
                }
                line = end + 1;
        }
}

static void test_metrics_before_first_sync(void **unused) {
        _cleanup_free_ char *text = NULL;
        MetricsInfo info = { .version = "0.1.0", .source_kind = "kube" };
        State s = {};
        size_t size;

        (void) unused;
        assert_int_equal(metrics_render(&s, &info, &text, &size), 0);
        assert_true(has_line(text, "nodetrust_ready 0"));
        assert_true(has_line(text, "nodetrust_syncs_total 0"));
        /* No 1970 timestamps, no reporter metrics when not reporting. */
        assert_null(strstr(text, "nodetrust_last_successful_sync_timestamp_seconds 0"));
        assert_null(strstr(text, "nodetrust_certificate_expiry_soonest_timestamp_seconds 0"));
        assert_null(strstr(text, "nodetrust_reports_total"));
        assert_true(has_line(text, "nodetrust_pull_secret_state{state=\"absent\"} 1"));
        assert_true(has_line(text, "nodetrust_source_applied 0"));
}

static void test_status_json(void **unused) {
        json_auto_t *doc = NULL;
        json_t *regs, *r;
        State s;
        AgentStatus st = { .state = &s, .node = "worker-1", .version = "0.1.0", .source_kind = "dir", .ready = false,
                           .not_ready_reason = "the trust source directory does not exist" };

        (void) unused;
        state_fill(&s);
        doc = status_json(&st, 0, NULL, NULL);
        assert_non_null(doc);
        assert_string_equal(json_string_value(json_object_get(doc, "node")), "worker-1");
        assert_true(json_is_false(json_object_get(doc, "ready")));
        assert_string_equal(json_string_value(json_object_get(doc, "not_ready_reason")),
                            "the trust source directory does not exist");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "source"), "generation")), 3);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "counters"), "syncs_total")), 7);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "counts"), "conflict")), 1);
        regs = json_object_get(doc, "registries");
        assert_int_equal(json_array_size(regs), 4);
        r = json_array_get(regs, 2);
        assert_string_equal(json_string_value(json_object_get(r, "state")), "refused");
        assert_true(json_is_null(json_object_get(r, "name")));
        assert_true(json_is_null(json_object_get(r, "not_after")));
        assert_int_equal(json_integer_value(json_object_get(doc, "soonest_expiry")), 1900000000);
        assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "pull_secret"), "state")),
                            "applied");
        assert_true(json_is_null(json_object_get(doc, "report")));
}

/* ------------------------------------------------------------------------
 * The server, on a loop, saying what is published to it: no manager. */

typedef struct Fixture {
        State state;
        AgentStatus status;
        sd_event *event;
        Health *health;
        CurlGlue *glue;
} Fixture;

/* What the manager does after a sync: judge readiness, hand it over. */
static void publish(Fixture *f, bool source_healthy, const char *source_reason) {
        const char *reason;

        f->status.ready = state_is_ready(&f->state, source_healthy, source_reason, &reason);
        f->status.not_ready_reason = reason;
        f->status.revision++;
        health_update(f->health, &f->status);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);

        assert_non_null(f);
        f->status = (AgentStatus){ .state = &f->state, .node = "worker-1", .version = NODETRUST_VERSION,
                                   .source_kind = "fake" };
        assert_int_equal(sd_event_new(&f->event), 0);
        assert_int_equal(health_new(f->event, "127.0.0.1:0", &f->status, &f->health), 0);
        assert_true(health_get_port(f->health) > 0);
        assert_int_equal(curl_glue_new(f->event, &f->glue), 0);
        publish(f, true, NULL);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        health_free(f->health);
        curl_glue_free(f->glue);
        sd_event_unref(f->event);
        free(f);
        return 0;
}

typedef struct Answer {
        bool done;
        int error;
        long status;
        char *body;
        char *content_type;
} Answer;

static void on_done(CurlRequest *req, int error, void *userdata) {
        Answer *a = userdata;
        const char *ct = NULL;

        a->done = true;
        a->error = error;
        a->status = curl_request_status(req);
        a->body = strdup(curl_request_body(req, NULL));
        curl_easy_getinfo(curl_request_easy(req), CURLINFO_CONTENT_TYPE, &ct);
        a->content_type = ct ? strdup(ct) : NULL;
}

/* Ask the server for path with method; the loop runs both ends. */
static Answer ask(Fixture *f, const char *method, const char *path) {
        _cleanup_(curl_request_freep) CurlRequest *req = NULL;
        _cleanup_free_ char *url = NULL;
        Answer a = {};

        assert_true(asprintf(&url, "http://127.0.0.1:%u%s", health_get_port(f->health), path) > 0);
        assert_int_equal(curl_request_new(url, &req), 0);
        if (streq(method, "HEAD"))
                curl_easy_setopt(curl_request_easy(req), CURLOPT_NOBODY, 1L);
        else if (!streq(method, "GET"))
                curl_easy_setopt(curl_request_easy(req), CURLOPT_CUSTOMREQUEST, method);
        assert_int_equal(curl_request_start(req, f->glue, on_done, &a), 0);
        for (int i = 0; i < 1000 && !a.done; i++)
                assert_true(sd_event_run(f->event, 100000) >= 0);
        assert_true(a.done);
        assert_int_equal(a.error, 0);
        return a;
}

static void answer_done(Answer *a) {
        free(a->body);
        free(a->content_type);
}

static void test_paths(void **state) {
        Fixture *f = *state;
        Answer a;

        /* Before the first sync: alive, not ready. */
        a = ask(f, "GET", "/healthz");
        assert_int_equal(a.status, 200);
        assert_string_equal(a.body, "ok\n");
        answer_done(&a);

        a = ask(f, "GET", "/readyz");
        assert_int_equal(a.status, 503);
        assert_string_equal(a.body, "not ready: the first sync has not completed\n");
        answer_done(&a);

        /* A good sync: ready. */
        f->state.first_sync_done = f->state.last_sync_ok = true;
        publish(f, true, NULL);
        a = ask(f, "GET", "/readyz");
        assert_int_equal(a.status, 200);
        assert_string_equal(a.body, "ready\n");
        answer_done(&a);

        /* Health says what was published, not what the state holds now. */
        f->state.last_sync_ok = false;
        a = ask(f, "GET", "/readyz");
        assert_int_equal(a.status, 200);
        answer_done(&a);
        f->state.last_sync_ok = true;

        /* The source says its watch is down: not ready, with its reason. */
        publish(f, false, "the watch is reconnecting");
        a = ask(f, "GET", "/readyz");
        assert_int_equal(a.status, 503);
        assert_string_equal(a.body, "not ready: the watch is reconnecting\n");
        answer_done(&a);

        /* A failed sync: not ready, with the sync's error. */
        f->state.last_sync_ok = false;
        f->state.last_error = "Failed to read the source: No such file or directory";
        publish(f, true, NULL);
        a = ask(f, "GET", "/readyz");
        assert_int_equal(a.status, 503);
        assert_string_equal(a.body, "not ready: Failed to read the source: No such file or directory\n");
        answer_done(&a);
        f->state.last_error = NULL;

        a = ask(f, "GET", "/metrics");
        assert_int_equal(a.status, 200);
        assert_string_equal(a.content_type, METRICS_CONTENT_TYPE);
        assert_true(has_line(a.body, "nodetrust_ready 0"));
        assert_true(has_line(a.body, "nodetrust_build_info{version=\"" NODETRUST_VERSION "\",source=\"fake\"} 1"));
        answer_done(&a);

        a = ask(f, "GET", "/status");
        assert_int_equal(a.status, 200);
        assert_string_equal(a.content_type, "application/json");
        {
                json_auto_t *doc = json_loads(a.body, 0, NULL);
                assert_non_null(doc);
                assert_string_equal(json_string_value(json_object_get(doc, "node")), "worker-1");
                assert_true(json_is_false(json_object_get(doc, "ready")));
        }
        answer_done(&a);

        a = ask(f, "GET", "/nope");
        assert_int_equal(a.status, 404);
        answer_done(&a);

        /* The query does not count: still the path. */
        a = ask(f, "GET", "/healthz?verbose=1");
        assert_int_equal(a.status, 200);
        answer_done(&a);
}

static void test_methods(void **state) {
        Fixture *f = *state;
        Answer a;

        a = ask(f, "POST", "/healthz");
        assert_int_equal(a.status, 405);
        answer_done(&a);
        a = ask(f, "DELETE", "/status");
        assert_int_equal(a.status, 405);
        answer_done(&a);

        /* HEAD: the status and headers of GET, no body. */
        a = ask(f, "HEAD", "/healthz");
        assert_int_equal(a.status, 200);
        assert_string_equal(a.body, "");
        answer_done(&a);
        a = ask(f, "HEAD", "/readyz");
        assert_int_equal(a.status, 503);
        answer_done(&a);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_metrics_render),
                cmocka_unit_test(test_metrics_before_first_sync),
                cmocka_unit_test(test_status_json),
                cmocka_unit_test_setup_teardown(test_paths, setup, teardown),
                cmocka_unit_test_setup_teardown(test_methods, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
