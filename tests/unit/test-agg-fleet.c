/* SPDX-License-Identifier: MIT */
/* Fleet state and report validation: plain structs, time passed in. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "api.h"
#include "continue-token.h"
#include "fleet.h"
#include "ingest.h"
#include "strv.h"

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HASH_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define T0 (UINT64_C(1795000000) * USEC_PER_SEC)
#define SEC(s) ((uint64_t) (s) * USEC_PER_SEC)

/* A report from JSON text; fails the test when it does not parse. */
static Report *parse_ok(const char *json) {
        _cleanup_free_ char *msg = NULL;
        RejectReason why;
        Report *r = NULL;
        int k = report_parse(json, strlen(json), &r, &why, &msg);

        if (k < 0)
                fail_msg("report refused: %s", msg ? msg : "?");
        return r;
}

/* A minimal report: node, source hash, applied hash ("" = null), errors JSON. */
static Report *mk(const char *node, const char *source, const char *applied, const char *errors, unsigned interval) {
        char json[1024];

        snprintf(json, sizeof json,
                 "{\"schema\": 1, \"node\": \"%s\", \"interval_seconds\": %u, \"ready\": true,"
                 " \"source\": {\"kind\": \"dir\", \"generation\": 3, \"hash\": \"%s\"},"
                 " \"applied_hash\": %s%s%s, \"errors\": %s, \"registries\": []}",
                 node, interval, source, *applied ? "\"" : "", *applied ? applied : "null", *applied ? "\"" : "",
                 errors ? errors : "[]");
        return parse_ok(json);
}

static void post(Fleet *f, Report *r, uint64_t now) {
        assert_int_equal(fleet_update(f, &r, now), 0);
        assert_null(r);
}

static NodeState state_of(Fleet *f, const char *name, uint64_t now) {
        Node *n = fleet_get(f, name);

        assert_non_null(n);
        return fleet_node_state(f, n, now);
}

static void test_states(void **state) {
        _cleanup_(fleet_freep) Fleet *f = NULL;

        (void) state;
        assert_int_equal(fleet_new(0, 30, &f), 0);

        post(f, mk("worker-1", HASH_A, HASH_A, NULL, 10), T0);
        post(f, mk("worker-2", HASH_A, "", NULL, 10), T0);
        post(f, mk("worker-3", HASH_A, HASH_A, "[\"cannot write /etc/docker/certs.d\"]", 10), T0);

        assert_string_equal(f->current_hash, HASH_A);
        assert_int_equal(state_of(f, "worker-1", T0), NODE_CONVERGED);
        assert_int_equal(state_of(f, "worker-2", T0), NODE_LAGGING);
        assert_int_equal(state_of(f, "worker-3", T0), NODE_FAILING);

        /* Exactly 3 intervals is not yet stale; a moment more is. */
        assert_int_equal(state_of(f, "worker-1", T0 + SEC(30)), NODE_CONVERGED);
        assert_int_equal(state_of(f, "worker-1", T0 + SEC(30) + 1), NODE_STALE);
        /* Stale wins over failing: a silent node's last word may be old. */
        assert_int_equal(state_of(f, "worker-3", T0 + SEC(31)), NODE_STALE);

        /* A new report revives it. */
        post(f, mk("worker-1", HASH_A, HASH_A, NULL, 10), T0 + SEC(40));
        assert_int_equal(state_of(f, "worker-1", T0 + SEC(40)), NODE_CONVERGED);
        assert_int_equal(fleet_get(f, "worker-1")->n_reports, 2);
        assert_int_equal(f->n_nodes, 3);
}

static void test_not_ready_is_failing(void **state) {
        _cleanup_(fleet_freep) Fleet *f = NULL;
        const char *json = "{\"schema\": 1, \"node\": \"n1\", \"ready\": false,"
                           " \"source\": {\"hash\": \"" HASH_A "\"}, \"applied_hash\": \"" HASH_A "\"}";

        (void) state;
        assert_int_equal(fleet_new(0, 30, &f), 0);
        post(f, parse_ok(json), T0);
        assert_int_equal(state_of(f, "n1", T0), NODE_FAILING);
}

static void test_default_interval(void **state) {
        _cleanup_(fleet_freep) Fleet *f = NULL;
        const char *json = "{\"schema\": 1, \"node\": \"n1\", \"source\": {\"hash\": \"" HASH_A "\"},"
                           " \"applied_hash\": \"" HASH_A "\"}";

        (void) state;
        assert_int_equal(fleet_new(0, 5, &f), 0);
        post(f, parse_ok(json), T0);
        assert_int_equal(state_of(f, "n1", T0 + SEC(15)), NODE_CONVERGED);
        assert_int_equal(state_of(f, "n1", T0 + SEC(16)), NODE_STALE);
}

static void test_current_hash(void **state) {
        _cleanup_(fleet_freep) Fleet *f = NULL;

        (void) state;
        assert_int_equal(fleet_new(0, 30, &f), 0);
        assert_string_equal(f->current_hash, "");

        post(f, mk("a", HASH_A, HASH_A, NULL, 30), T0);
        post(f, mk("b", HASH_A, HASH_A, NULL, 30), T0);
        assert_string_equal(f->current_hash, HASH_A);

        /* A config map change reaches node a first: B is newest. */
        post(f, mk("a", HASH_B, HASH_A, NULL, 30), T0 + SEC(1));
        assert_string_equal(f->current_hash, HASH_B);
        assert_int_equal(state_of(f, "a", T0 + SEC(1)), NODE_LAGGING);
        assert_int_equal(state_of(f, "b", T0 + SEC(1)), NODE_LAGGING);

        /* b still reports the old source: that does not bring A back. */
        post(f, mk("b", HASH_A, HASH_A, NULL, 30), T0 + SEC(2));
        assert_string_equal(f->current_hash, HASH_B);

        /* a applies it and converges; b follows. */
        post(f, mk("a", HASH_B, HASH_B, NULL, 30), T0 + SEC(3));
        assert_int_equal(state_of(f, "a", T0 + SEC(3)), NODE_CONVERGED);
        post(f, mk("b", HASH_B, HASH_B, NULL, 30), T0 + SEC(4));
        assert_int_equal(state_of(f, "b", T0 + SEC(4)), NODE_CONVERGED);

        /* A rollback to content seen before: a node switching to it makes
         * it current again (the newest content wins). */
        post(f, mk("a", HASH_A, HASH_B, NULL, 30), T0 + SEC(5));
        assert_string_equal(f->current_hash, HASH_A);
        assert_true(f->current_since == T0 + SEC(5));

        /* A brand-new node reporting an already known older hash changes nothing. */
        post(f, mk("c", HASH_B, HASH_B, NULL, 30), T0 + SEC(6));
        assert_string_equal(f->current_hash, HASH_A);
        assert_int_equal(state_of(f, "c", T0 + SEC(6)), NODE_LAGGING);
}

static void test_current_hash_after_restart(void **state) {
        _cleanup_(fleet_freep) Fleet *f = NULL;

        (void) state;
        /* A fresh aggregator mid-rollout hears the new hash first, then the old. */
        assert_int_equal(fleet_new(0, 30, &f), 0);
        post(f, mk("a", HASH_B, HASH_B, NULL, 30), T0);
        post(f, mk("b", HASH_A, HASH_A, NULL, 30), T0 + SEC(1));
        assert_string_equal(f->current_hash, HASH_A); /* the documented limitation */
        /* ... until b moves on, which shows that B is the newer one. */
        post(f, mk("b", HASH_B, HASH_A, NULL, 30), T0 + SEC(2));
        assert_string_equal(f->current_hash, HASH_B);
        assert_int_equal(state_of(f, "a", T0 + SEC(2)), NODE_CONVERGED);
}

static void test_hash_history_bounded(void **state) {
        _cleanup_(fleet_freep) Fleet *f = NULL;
        char hash[65];

        (void) state;
        assert_int_equal(fleet_new(0, 30, &f), 0);
        for (unsigned i = 0; i < FLEET_MAX_HASHES + 50; i++) {
                snprintf(hash, sizeof hash, "%064x", i);
                post(f, mk("a", hash, hash, NULL, 30), T0 + SEC(i));
                assert_string_equal(f->current_hash, hash);
        }
        assert_int_equal(f->n_hashes, FLEET_MAX_HASHES);
}

static void test_node_limit_and_prune(void **state) {
        _cleanup_(fleet_freep) Fleet *f = NULL;
        Report *extra;

        (void) state;
        assert_int_equal(fleet_new(2, 30, &f), 0);
        post(f, mk("b", HASH_A, HASH_A, NULL, 30), T0);
        post(f, mk("a", HASH_A, HASH_A, NULL, 30), T0 + SEC(100));

        extra = mk("c", HASH_B, HASH_B, NULL, 30);
        assert_int_equal(fleet_update(f, &extra, T0), -ENOSPC);
        assert_non_null(extra); /* still ours */
        /* A refused node does not move the current hash. */
        assert_string_equal(f->current_hash, HASH_A);
        report_free(extra);

        /* Known nodes still update when the fleet is full. */
        post(f, mk("a", HASH_A, HASH_A, NULL, 30), T0 + SEC(101));
        assert_int_equal(f->n_nodes, 2);

        /* Sorted by name, whatever the order they came in. */
        assert_string_equal(f->nodes[0]->report->node, "a");
        assert_string_equal(f->nodes[1]->report->node, "b");

        assert_int_equal(fleet_prune(f, T0 + SEC(150), SEC(120)), 1);
        assert_int_equal(f->n_nodes, 1);
        assert_null(fleet_get(f, "b"));
        assert_non_null(fleet_get(f, "a"));
        post(f, mk("c", HASH_A, HASH_A, NULL, 30), T0 + SEC(150));
        assert_int_equal(f->n_nodes, 2);
}

/* One page of api_nodes_json() after `after`: the names listed, joined by
 * spaces, into buf; *token the next page's (NULL on the last). */
static void nodes_page(Fleet *f, const ContinueKey *k, const char *token, size_t limit, uint64_t now, char *buf,
                       size_t size, char **ret_token) {
        char after[CONTINUE_TOKEN_MAX_NAME + 1];
        NodesQuery q = { .state = -1, .limit = limit, .key = k };
        _cleanup_free_ char *text = NULL;
        json_auto_t *j = NULL;
        const char *why = NULL, *t;
        json_t *n;
        size_t len, i;

        if (token) {
                assert_int_equal(continue_token_decode(k, token, -1, after, &why), 0);
                q.after = after;
        }
        assert_int_equal(api_nodes_json(f, now, &q, &text, &len), 0);
        assert_int_equal(strlen(text), len);
        j = json_loads(text, 0, NULL);
        assert_non_null(j);
        buf[0] = 0;
        json_array_foreach(json_object_get(j, "nodes"), i, n) {
                if (i > 0)
                        strncat(buf, " ", size - strlen(buf) - 1);
                strncat(buf, json_string_value(json_object_get(n, "name")), size - strlen(buf) - 1);
        }
        t = json_string_value(json_object_get(json_object_get(j, "metadata"), "continue"));
        *ret_token = t ? strdup(t) : NULL;
}

/* A node removed between two pages, the very one the token names among
 * them: the next page starts after its name all the same, and no node is
 * repeated or skipped. */
static void test_pages_survive_removal(void **state) {
        _cleanup_(fleet_freep) Fleet *f = NULL;
        _cleanup_free_ char *t1 = NULL, *t2 = NULL, *t3 = NULL;
        const char *why = NULL;
        char after[CONTINUE_TOKEN_MAX_NAME + 1], buf[CONTINUE_TOKEN_MAX_NAME + 1];
        ContinueKey k, other;

        (void) state;
        assert_int_equal(continue_key_init(&k), 0);
        assert_int_equal(fleet_new(0, 30, &f), 0);
        /* a, c, e report long ago (stale, forgettable); b, d, f now. */
        post(f, mk("a", HASH_A, HASH_A, NULL, 30), T0);
        post(f, mk("c", HASH_A, HASH_A, NULL, 30), T0);
        post(f, mk("e", HASH_A, HASH_A, NULL, 30), T0);
        post(f, mk("b", HASH_A, HASH_A, NULL, 30), T0 + SEC(1000));
        post(f, mk("d", HASH_A, HASH_A, NULL, 30), T0 + SEC(1000));
        post(f, mk("f", HASH_A, HASH_A, NULL, 30), T0 + SEC(1000));

        nodes_page(f, &k, NULL, 3, T0 + SEC(1000), buf, sizeof buf, &t1);
        assert_string_equal(buf, "a b c");
        assert_non_null(t1);
        /* a (before the place) and c (the place itself) and e go. */
        assert_int_equal(fleet_prune(f, T0 + SEC(1000), SEC(500)), 3);
        nodes_page(f, &k, t1, 3, T0 + SEC(1000), buf, sizeof buf, &t2);
        assert_string_equal(buf, "d f");
        assert_null(t2);

        /* The token names the node and the filter; another key refuses it. */
        assert_int_equal(continue_token_decode(&k, t1, -1, after, &why), 0);
        assert_string_equal(after, "c");
        assert_int_equal(continue_token_decode(&k, t1, NODE_FAILING, after, &why), -EINVAL);
        assert_non_null(strstr(why, "another filter"));
        assert_int_equal(continue_key_init(&other), 0);
        assert_int_equal(continue_token_decode(&other, t1, -1, after, &why), -EINVAL);
        assert_non_null(strstr(why, "forged"));
        /* Names up to the longest a token carries round-trip. */
        memset(buf, 'x', CONTINUE_TOKEN_MAX_NAME);
        buf[CONTINUE_TOKEN_MAX_NAME] = 0;
        assert_int_equal(continue_token_encode(&k, 3, buf, &t3), 0);
        assert_int_equal(continue_token_decode(&k, t3, 3, after, &why), 0);
        assert_string_equal(after, buf);
}

static void test_prune_only_stale(void **state) {
        _cleanup_(fleet_freep) Fleet *f = NULL;

        (void) state;
        /* A node that reports hourly, with --forget at 30 minutes: silent for
         * an hour it is merely between reports, and must first show up as
         * stale (after 3 hours) before it may vanish from the fleet. */
        assert_int_equal(fleet_new(0, 30, &f), 0);
        post(f, mk("hourly", HASH_A, HASH_A, NULL, 3600), T0);
        assert_int_equal(fleet_prune(f, T0 + SEC(3600), SEC(1800)), 0);
        assert_int_equal(fleet_node_state(f, fleet_get(f, "hourly"), T0 + SEC(3 * 3600)), NODE_CONVERGED);
        assert_int_equal(fleet_prune(f, T0 + SEC(3 * 3600), SEC(1800)), 0);
        assert_int_equal(fleet_node_state(f, fleet_get(f, "hourly"), T0 + SEC(3 * 3600 + 1)), NODE_STALE);
        assert_int_equal(fleet_prune(f, T0 + SEC(3 * 3600 + 1), SEC(1800)), 1);
        assert_int_equal(f->n_nodes, 0);
}

/* A node in each state, counted by the summary. */
static void test_summary_counts_states(void **state) {
        _cleanup_(fleet_freep) Fleet *f = NULL;
        FleetSummary s;

        (void) state;
        assert_int_equal(fleet_new(0, 30, &f), 0);
        post(f, mk("ok-2", HASH_A, HASH_A, NULL, 10), T0 + SEC(100));
        post(f, mk("ok-1", HASH_A, HASH_A, NULL, 10), T0 + SEC(100));
        post(f, mk("lag", HASH_A, "", NULL, 10), T0 + SEC(100));
        post(f, mk("gone", HASH_A, HASH_A, NULL, 10), T0);
        post(f, mk("broken", HASH_A, HASH_A, "[\"x\"]", 10), T0 + SEC(100));

        assert_int_equal(fleet_node_state(f, fleet_get(f, "broken"), T0 + SEC(100)), NODE_FAILING);
        assert_int_equal(fleet_node_state(f, fleet_get(f, "gone"), T0 + SEC(100)), NODE_STALE);
        assert_int_equal(fleet_node_state(f, fleet_get(f, "lag"), T0 + SEC(100)), NODE_LAGGING);

        fleet_summarize(f, T0 + SEC(100), &s);
        assert_int_equal(s.total, 5);
        assert_int_equal(s.counts[NODE_CONVERGED], 2);
        assert_int_equal(s.counts[NODE_LAGGING], 1);
        assert_int_equal(s.counts[NODE_FAILING], 1);
        assert_int_equal(s.counts[NODE_STALE], 1);
        assert_false(s.has_soonest_expiry);
}

static void test_expiry(void **state) {
        _cleanup_(fleet_freep) Fleet *f = NULL;
        _cleanup_free_ ExpiringCert *e = NULL;
        FleetSummary s;
        size_t n;

        (void) state;
        assert_int_equal(fleet_new(0, 30, &f), 0);
        post(f, parse_ok("{\"schema\": 1, \"node\": \"n1\", \"source\": {\"hash\": \"" HASH_A "\"},"
                         " \"registries\": ["
                         "  {\"name\": \"late.example.com\", \"state\": \"applied\", \"not_after\": 2000000000},"
                         "  {\"name\": \"soon.example.com:5000\", \"state\": \"applied\", \"not_after\": 1795100000},"
                         "  {\"name\": \"bad..key\", \"state\": \"refused\", \"reason\": \"port out of range\"},"
                         "  {\"name\": \"admin.example.com\", \"state\": \"conflict\", \"not_after\": null}]}"),
             T0);
        post(f, parse_ok("{\"schema\": 1, \"node\": \"n2\", \"source\": {\"hash\": \"" HASH_A "\"},"
                         " \"soonest_expiry\": 1795050000, \"registries\": ["
                         "  {\"name\": \"soon.example.com:5000\", \"state\": \"applied\", \"not_after\": 1795050000}]}"),
             T0);

        Node *n1 = fleet_get(f, "n1");
        assert_int_equal(n1->report->registries[REGISTRY_APPLIED], 2);
        assert_int_equal(n1->report->registries[REGISTRY_REFUSED], 1);
        assert_int_equal(n1->report->registries[REGISTRY_CONFLICT], 1);
        /* soonest_expiry left out: taken from the registries. */
        assert_true(n1->report->has_soonest_expiry);
        assert_int_equal(n1->report->soonest_expiry, 1795100000);

        fleet_summarize(f, T0, &s);
        assert_true(s.has_soonest_expiry);
        assert_int_equal(s.soonest_expiry, 1795050000);
        assert_string_equal(s.soonest_node, "n2");
        assert_string_equal(s.soonest_registry, "soon.example.com:5000");

        assert_int_equal(fleet_expiring(f, 1795000000 + 30 * 86400, &e, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(e[0].node, "n2");
        assert_string_equal(e[1].node, "n1");
        assert_string_equal(e[1].registry, "soon.example.com:5000");
}

static void test_certs_capped_soonest_kept(void **state) {
        _cleanup_(report_freep) Report *r = NULL;
        _cleanup_free_ char *msg = NULL;
        char *json = NULL;
        size_t size = 0;
        RejectReason why;
        FILE *f;

        (void) state;
        f = open_memstream(&json, &size);
        assert_non_null(f);
        fprintf(f, "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"}, \"registries\": [");
        /* Descending expiry, so the soonest come last and must displace earlier ones. */
        for (int i = 0; i < 100; i++)
                fprintf(f, "%s{\"name\": \"r%d.example.com\", \"state\": \"applied\", \"not_after\": %d}",
                        i ? "," : "", i, 2000000000 - i);
        fprintf(f, "]}");
        fclose(f);

        assert_int_equal(report_parse(json, size, &r, &why, &msg), 0);
        free(json);
        assert_int_equal(r->n_certs, REPORT_MAX_CERTS);
        assert_int_equal(r->n_certs_total, 100);
        assert_int_equal(r->certs[0].not_after, 2000000000 - 99);
        assert_string_equal(r->certs[0].registry, "r99.example.com");
        assert_int_equal(r->certs[REPORT_MAX_CERTS - 1].not_after, 2000000000 - 100 + (int) REPORT_MAX_CERTS);
        assert_int_equal(r->registries[REGISTRY_APPLIED], 100);
}

static void test_errors_capped(void **state) {
        _cleanup_(report_freep) Report *r = NULL;
        _cleanup_free_ char *msg = NULL;
        char json[16384], *p = json;
        RejectReason why;

        (void) state;
        p += sprintf(p, "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"}, \"errors\": [");
        for (int i = 0; i < 20; i++)
                p += sprintf(p, "%s\"error %d\"", i ? "," : "", i);
        /* One long error made of 2-byte UTF-8 characters: cut on a character boundary. */
        p += sprintf(p, ",\"");
        for (int i = 0; i < 400; i++)
                p += sprintf(p, "\xc3\xa9");
        sprintf(p, "\"]}");

        assert_int_equal(report_parse(json, strlen(json), &r, &why, &msg), 0);
        assert_int_equal(r->n_errors, 21);
        assert_int_equal(strv_length(r->errors), REPORT_MAX_ERRORS);
        assert_string_equal(r->errors[0], "error 0");
}

static void test_error_truncated_utf8(void **state) {
        _cleanup_(report_freep) Report *r = NULL;
        _cleanup_free_ char *msg = NULL;
        char json[4096], *p = json;
        RejectReason why;
        size_t n;

        (void) state;
        p += sprintf(p, "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"}, \"errors\": [\"x");
        for (int i = 0; i < 400; i++)
                p += sprintf(p, "\xc3\xa9");
        sprintf(p, "\"]}");

        assert_int_equal(report_parse(json, strlen(json), &r, &why, &msg), 0);
        n = strlen(r->errors[0]);
        assert_true(n <= REPORT_MAX_ERROR_LEN);
        assert_int_equal(n, REPORT_MAX_ERROR_LEN - 1); /* "x" + 255 whole characters */
        assert_int_equal((unsigned char) r->errors[0][n - 1], 0xa9);
}

static void test_rejects(void **state) {
        static const struct {
                const char *json;
                RejectReason why;
                const char *message_part;
        } cases[] = {
                { "{", REJECT_BAD_JSON, "invalid JSON" },
                { "", REJECT_BAD_JSON, "invalid JSON" },
                { "[1, 2]", REJECT_BAD_SCHEMA, "object" },
                { "{\"schema\": 1, \"node\": \"a\", \"node\": \"b\", \"source\": {\"hash\": \"" HASH_A "\"}}",
                  REJECT_BAD_JSON, "duplicate" },
                { "{\"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"}}", REJECT_BAD_SCHEMA, "schema" },
                { "{\"schema\": 2, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"}}", REJECT_BAD_SCHEMA, "schema" },
                { "{\"schema\": \"1\", \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"}}", REJECT_BAD_SCHEMA, "schema" },
                { "{\"schema\": 1, \"source\": {\"hash\": \"" HASH_A "\"}}", REJECT_BAD_SCHEMA, "node" },
                { "{\"schema\": 1, \"node\": 7, \"source\": {\"hash\": \"" HASH_A "\"}}", REJECT_BAD_SCHEMA, "node" },
                { "{\"schema\": 1, \"node\": \"Worker-1\", \"source\": {\"hash\": \"" HASH_A "\"}}", REJECT_BAD_NODE_NAME, "node" },
                { "{\"schema\": 1, \"node\": \"-w\", \"source\": {\"hash\": \"" HASH_A "\"}}", REJECT_BAD_NODE_NAME, "node" },
                { "{\"schema\": 1, \"node\": \"w.\", \"source\": {\"hash\": \"" HASH_A "\"}}", REJECT_BAD_NODE_NAME, "node" },
                { "{\"schema\": 1, \"node\": \"\", \"source\": {\"hash\": \"" HASH_A "\"}}", REJECT_BAD_NODE_NAME, "node" },
                { "{\"schema\": 1, \"node\": \"a/../b\", \"source\": {\"hash\": \"" HASH_A "\"}}", REJECT_BAD_NODE_NAME, "node" },
                { "{\"schema\": 1, \"node\": \"n\"}", REJECT_BAD_SCHEMA, "source" },
                { "{\"schema\": 1, \"node\": \"n\", \"source\": {}}", REJECT_BAD_SCHEMA, "hash" },
                { "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"abc\"}}", REJECT_BAD_SCHEMA, "hash" },
                { "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" "\"}}",
                  REJECT_BAD_SCHEMA, "hash" },
                { "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\", \"generation\": -1}}",
                  REJECT_BAD_SCHEMA, "generation" },
                { "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"}, \"applied_hash\": 5}",
                  REJECT_BAD_SCHEMA, "applied_hash" },
                { "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"}, \"interval_seconds\": 0}",
                  REJECT_BAD_SCHEMA, "interval" },
                { "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"}, \"interval_seconds\": 9999999}",
                  REJECT_BAD_SCHEMA, "interval" },
                { "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"}, \"timestamp\": 1.5}",
                  REJECT_BAD_SCHEMA, "timestamp" },
                { "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"}, \"ready\": \"yes\"}",
                  REJECT_BAD_SCHEMA, "ready" },
                { "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"}, \"errors\": \"x\"}",
                  REJECT_BAD_SCHEMA, "errors" },
                { "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"}, \"errors\": [1]}",
                  REJECT_BAD_SCHEMA, "errors" },
                { "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"}, \"registries\": {}}",
                  REJECT_BAD_SCHEMA, "registries" },
                { "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"}, \"registries\": [{\"name\": \"r\"}]}",
                  REJECT_BAD_SCHEMA, "state" },
                { "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"},"
                  " \"registries\": [{\"name\": \"r\", \"state\": \"great\"}]}",
                  REJECT_BAD_SCHEMA, "state" },
                { "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"},"
                  " \"registries\": [{\"state\": \"applied\"}]}",
                  REJECT_BAD_SCHEMA, "name" },
                { "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"},"
                  " \"registries\": [{\"name\": \"r\", \"state\": \"applied\", \"not_after\": \"2030\"}]}",
                  REJECT_BAD_SCHEMA, "not_after" },
                { "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"}, \"soonest_expiry\": \"x\"}",
                  REJECT_BAD_SCHEMA, "soonest_expiry" },
                { "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"}, \"pull_secret\": {\"state\": \"leaked\"}}",
                  REJECT_BAD_SCHEMA, "pull_secret" },
        };

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *msg = NULL;
                Report *r = NULL;
                RejectReason why = _REJECT_REASON_MAX;
                int k = report_parse(cases[i].json, strlen(cases[i].json), &r, &why, &msg);

                if (k != -EINVAL || why != cases[i].why || !msg || !strstr(msg, cases[i].message_part))
                        fail_msg("case %zu (%s): k=%d why=%s msg=%s", i, cases[i].json, k,
                                 reject_reason_to_string(why), msg ? msg : "(null)");
                assert_null(r);
        }
}

static void test_full_example_accepted(void **state) {
        /* The example of docs/report-format.md, with real hex. */
        const char *json =
                "{\"schema\": 1, \"node\": \"worker-1\", \"agent_version\": \"0.1.0\", \"timestamp\": 1795000000,"
                " \"interval_seconds\": 30, \"ready\": true,"
                " \"source\": {\"kind\": \"dir\", \"generation\": 7, \"hash\": \"" HASH_C "\"},"
                " \"applied_hash\": \"" HASH_C "\", \"errors\": [],"
                " \"registries\": ["
                "  {\"name\": \"registry.example.com:5000\", \"state\": \"applied\", \"fingerprint\": \"" HASH_A "\","
                "   \"not_after\": 1830000000},"
                "  {\"name\": \"bad..key\", \"state\": \"refused\", \"reason\": \"port out of range\"},"
                "  {\"name\": \"admin.example.com\", \"state\": \"conflict\", \"reason\": \"...\"},"
                "  {\"name\": \"reg.example.com:5000\", \"key\": \"reg.example.com..5000\", \"state\": \"shadowed\","
                "   \"reason\": \"containerd: hosts.toml was not written by nodetrustd\", \"fingerprint\": \"" HASH_B "\","
                "   \"not_after\": 1840000000,"
                "   \"targets\": {\"containerd\": {\"state\": \"shadowed\", \"reason\": \"...\"}}}],"
                " \"registry_counts\": {\"applied\": 1, \"refused\": 1, \"conflict\": 1, \"failed\": 0,"
                "  \"shadowed\": 1, \"ignored\": 0},"
                " \"targets\": {\"docker\": {\"state\": \"not_installed\"}, \"containers\": {\"state\": \"active\"},"
                "  \"containerd\": {\"state\": \"inactive\", \"reason\": \"containerd config_path is not set\"}},"
                " \"soonest_expiry\": 1830000000,"
                " \"pull_secret\": {\"state\": \"applied\", \"hash\": \"" HASH_B "\"},"
                " \"some_future_field\": {\"ignored\": true}}";
        _cleanup_(report_freep) Report *r = parse_ok(json);

        (void) state;
        assert_string_equal(r->node, "worker-1");
        assert_string_equal(r->agent_version, "0.1.0");
        assert_int_equal(r->timestamp, 1795000000);
        assert_int_equal(r->interval_seconds, 30);
        assert_true(r->ready);
        assert_string_equal(r->source_kind, "dir");
        assert_int_equal(r->generation, 7);
        assert_string_equal(r->source_hash, HASH_C);
        assert_string_equal(r->applied_hash, HASH_C);
        assert_int_equal(r->n_errors, 0);
        assert_int_equal(r->registries[REGISTRY_APPLIED], 1);
        assert_int_equal(r->registries[REGISTRY_REFUSED], 1);
        assert_int_equal(r->registries[REGISTRY_CONFLICT], 1);
        assert_int_equal(r->registries[REGISTRY_SHADOWED], 1);
        assert_int_equal(r->n_certs, 2);
        assert_int_equal(r->soonest_expiry, 1830000000);
        assert_string_equal(r->pull_secret_state, "applied");
        assert_int_equal(r->n_targets, 3);
        assert_string_equal(r->targets[0].name, "containerd");
        assert_int_equal(r->targets[0].state, TARGET_INACTIVE);
        assert_true(report_has_inactive_target(r));
}

static void test_node_names(void **state) {
        char long_name[300];

        (void) state;
        assert_true(node_name_is_valid("worker-1"));
        assert_true(node_name_is_valid("ip-10-0-1-2.ec2.internal"));
        assert_true(node_name_is_valid("a"));
        assert_true(node_name_is_valid("0"));
        assert_false(node_name_is_valid(NULL));
        assert_false(node_name_is_valid(""));
        assert_false(node_name_is_valid("Worker"));
        assert_false(node_name_is_valid("a_b"));
        assert_false(node_name_is_valid("a b"));
        assert_false(node_name_is_valid(".a"));
        assert_false(node_name_is_valid("a-"));
        assert_false(node_name_is_valid("<script>"));

        memset(long_name, 'a', sizeof long_name);
        long_name[253] = 0;
        assert_true(node_name_is_valid(long_name));
        long_name[253] = 'a';
        long_name[254] = 0;
        assert_false(node_name_is_valid(long_name));
}

static void test_state_names(void **state) {
        (void) state;
        for (int i = 0; i < _NODE_STATE_MAX; i++)
                assert_int_equal(node_state_from_string(node_state_to_string(i)), i);
        assert_int_equal(node_state_from_string("happy"), -EINVAL);
        assert_int_equal(node_state_from_string(NULL), -EINVAL);
        for (int i = 0; i < _REJECT_REASON_MAX; i++)
                assert_non_null(reject_reason_to_string(i));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_states),
                cmocka_unit_test(test_not_ready_is_failing),
                cmocka_unit_test(test_default_interval),
                cmocka_unit_test(test_current_hash),
                cmocka_unit_test(test_current_hash_after_restart),
                cmocka_unit_test(test_hash_history_bounded),
                cmocka_unit_test(test_node_limit_and_prune),
                cmocka_unit_test(test_prune_only_stale),
                cmocka_unit_test(test_pages_survive_removal),
                cmocka_unit_test(test_summary_counts_states),
                cmocka_unit_test(test_expiry),
                cmocka_unit_test(test_certs_capped_soonest_kept),
                cmocka_unit_test(test_errors_capped),
                cmocka_unit_test(test_error_truncated_utf8),
                cmocka_unit_test(test_rejects),
                cmocka_unit_test(test_full_example_accepted),
                cmocka_unit_test(test_node_names),
                cmocka_unit_test(test_state_names),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
