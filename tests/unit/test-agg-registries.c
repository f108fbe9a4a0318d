/* SPDX-License-Identifier: MIT */
/* Verification ingest, the fleet by registry and the rollout record: plain
 * structs, time passed in. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fleet-registries.h"
#include "fleet.h"
#include "ingest.h"

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define FP_1 "1111111111111111111111111111111111111111111111111111111111111111"
#define FP_2 "2222222222222222222222222222222222222222222222222222222222222222"
#define T0 (UINT64_C(1795000000) * USEC_PER_SEC)
#define SEC(s) ((uint64_t) (s) * USEC_PER_SEC)
#define HEAD(node, src, applied) \
        "{\"schema\": 1, \"node\": \"" node "\", \"interval_seconds\": 10, \"source\": {\"hash\": \"" src "\"}," \
        " \"applied_hash\": " applied

static Report *parse_ok(const char *json) {
        _cleanup_free_ char *msg = NULL;
        RejectReason why;
        Report *r = NULL;

        if (report_parse(json, strlen(json), &r, &why, &msg) < 0)
                fail_msg("report refused: %s", msg ? msg : "?");
        return r;
}

static void post(Fleet *f, const char *json, uint64_t now) {
        Report *r = parse_ok(json);

        assert_int_equal(fleet_update(f, &r, now), 0);
        assert_null(r);
}

static void test_verification_ingested(void **state) {
        _cleanup_(report_freep) Report *r = parse_ok(
                HEAD("n1", HASH_A, "null") ", \"registries\": ["
                " {\"name\": \"z.example.com\", \"state\": \"applied\", \"fingerprint\": \"" FP_1 "\","
                "  \"not_after\": 1830000000,"
                "  \"verification\": {\"state\": \"mismatch\", \"reason\": \"unable to get local issuer certificate\","
                "   \"issuer\": \"CN=Other\", \"server_not_after\": 1820000000, \"checked_at\": 1795000000,"
                "   \"future\": [1, 2]}},"
                " {\"name\": \"a.example.com:5000\", \"state\": \"shadowed\", \"fingerprint\": \"" FP_2 "\","
                "  \"verification\": {\"state\": \"verified\", \"issuer\": null, \"server_not_after\": null}},"
                " {\"name\": \"m.example.com\", \"state\": \"applied\", \"verification\": null},"
                " {\"name\": \"u.example.com\", \"state\": \"applied\", \"verification\": {\"state\": \"unreachable\"}},"
                " {\"name\": \"bad..key\", \"state\": \"refused\", \"reason\": \"port out of range\"}]}");
        const RegistryEntry *e;

        (void) state;
        /* Sorted by name, whatever the order sent. */
        assert_int_equal(r->n_entries, 5);
        assert_false(r->entries_truncated);
        assert_string_equal(r->entries[0].name, "a.example.com:5000");
        assert_string_equal(r->entries[4].name, "z.example.com");

        e = report_find_registry(r, "z.example.com");
        assert_non_null(e);
        assert_int_equal(e->state, REGISTRY_APPLIED);
        assert_int_equal(e->verification, VERIFICATION_MISMATCH);
        assert_string_equal(e->fingerprint, FP_1);
        assert_true(e->has_not_after && e->has_server_not_after);
        assert_int_equal(e->not_after, 1830000000);
        assert_int_equal(e->server_not_after, 1820000000);

        e = report_find_registry(r, "a.example.com:5000");
        assert_int_equal(e->state, REGISTRY_SHADOWED);
        assert_int_equal(e->verification, VERIFICATION_VERIFIED);
        assert_false(e->has_server_not_after);
        assert_false(e->has_not_after);

        assert_int_equal(report_find_registry(r, "m.example.com")->verification, VERIFICATION_NOT_CHECKED);
        assert_int_equal(report_find_registry(r, "u.example.com")->verification, VERIFICATION_UNREACHABLE);
        e = report_find_registry(r, "bad..key");
        assert_int_equal(e->state, REGISTRY_REFUSED);
        assert_string_equal(e->fingerprint, "");
        assert_null(report_find_registry(r, "nowhere"));
        /* The counts by state are as before. */
        assert_int_equal(r->registries[REGISTRY_APPLIED], 3);
        assert_int_equal(r->registries[REGISTRY_SHADOWED], 1);
        assert_int_equal(r->n_certs, 1);
}

static void test_verification_rejects(void **state) {
        static const struct {
                const char *registry;
                const char *message_part;
        } cases[] = {
                { "\"verification\": \"verified\"", "registries[0].verification must be an object" },
                { "\"verification\": {}", "registries[0].verification.state" },
                { "\"verification\": {\"state\": \"not_checked\"}", "registries[0].verification.state" },
                { "\"verification\": {\"state\": 1}", "registries[0].verification.state" },
                { "\"verification\": {\"state\": \"mismatch\", \"reason\": 5}", "registries[0].verification.reason" },
                { "\"verification\": {\"state\": \"mismatch\", \"issuer\": []}", "registries[0].verification.issuer" },
                { "\"verification\": {\"state\": \"verified\", \"server_not_after\": \"2030\"}",
                  "registries[0].verification.server_not_after" },
                { "\"verification\": {\"state\": \"verified\", \"checked_at\": 1.5}",
                  "registries[0].verification.checked_at" },
                { "\"fingerprint\": 7", "registries[0].fingerprint" },
                { "\"fingerprint\": \"ABC\"", "registries[0].fingerprint" },
        };

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *msg = NULL, *json = NULL;
                RejectReason why = _REJECT_REASON_MAX;
                Report *r = NULL;
                int k;

                assert_true(asprintf(&json, HEAD("n", HASH_A, "null") ", \"registries\": [{\"name\": \"r\","
                                     " \"state\": \"applied\", %s}]}", cases[i].registry) > 0);
                k = report_parse(json, strlen(json), &r, &why, &msg);
                if (k != -EINVAL || why != REJECT_BAD_SCHEMA || !msg || !strstr(msg, cases[i].message_part))
                        fail_msg("case %zu (%s): k=%d msg=%s", i, cases[i].registry, k, msg ? msg : "(null)");
                assert_null(r);
        }
}

static void test_registries_capped_and_deduplicated(void **state) {
        _cleanup_(report_freep) Report *r = NULL;
        _cleanup_free_ char *msg = NULL, *json = NULL;
        size_t size = 0;
        RejectReason why;
        FILE *f;

        (void) state;
        f = open_memstream(&json, &size);
        assert_non_null(f);
        fprintf(f, HEAD("n", HASH_A, "null") ", \"registries\": [");
        for (unsigned i = 0; i < REPORT_MAX_REGISTRIES + 10; i++)
                fprintf(f, "%s{\"name\": \"r%u\", \"state\": \"applied\"}", i ? "," : "", i);
        fprintf(f, "]}");
        fclose(f);
        assert_int_equal(report_parse(json, size, &r, &why, &msg), 0);
        assert_int_equal(r->n_entries, REPORT_MAX_REGISTRIES);
        assert_true(r->entries_truncated);
        assert_int_equal(r->registries[REGISTRY_APPLIED], REPORT_MAX_REGISTRIES + 10);
        report_free(TAKE_PTR(r));

        /* One name twice: kept once, the same one whichever order it came in. */
        r = parse_ok(HEAD("n", HASH_A, "null") ", \"registries\": ["
                     "{\"name\": \"r\", \"state\": \"shadowed\"}, {\"name\": \"r\", \"state\": \"applied\"}]}");
        assert_int_equal(r->n_entries, 1);
        assert_int_equal(r->entries[0].state, REGISTRY_APPLIED);
}

/* Four nodes: n1 verified with FP_1, n2 mismatch with FP_2, n3 without the
 * registry, n4 conflict (stale later). */
static void post_four(Fleet *f, uint64_t now) {
        post(f, HEAD("n1", HASH_A, "\"" HASH_A "\"") ", \"registries\": ["
                "{\"name\": \"reg:5000\", \"state\": \"applied\", \"fingerprint\": \"" FP_1 "\", \"not_after\": 1900000000,"
                " \"verification\": {\"state\": \"verified\", \"server_not_after\": 1810000000}},"
                "{\"name\": \"other.example.com\", \"state\": \"applied\", \"fingerprint\": \"" FP_2 "\"}]}",
             now);
        post(f, HEAD("n2", HASH_A, "\"" HASH_A "\"") ", \"registries\": ["
                "{\"name\": \"reg:5000\", \"state\": \"applied\", \"fingerprint\": \"" FP_2 "\", \"not_after\": 1850000000,"
                " \"verification\": {\"state\": \"mismatch\", \"server_not_after\": 1805000000}},"
                "{\"name\": \"other.example.com\", \"state\": \"applied\", \"fingerprint\": \"" FP_2 "\"}]}",
             now);
        post(f, HEAD("n3", HASH_A, "\"" HASH_A "\"") ", \"registries\": ["
                "{\"name\": \"other.example.com\", \"state\": \"failed\", \"fingerprint\": \"" FP_2 "\"}]}",
             now);
        post(f, "{\"schema\": 1, \"node\": \"n4\", \"interval_seconds\": 1, \"source\": {\"hash\": \"" HASH_A "\"},"
                " \"applied_hash\": \"" HASH_A "\", \"registries\": ["
                "{\"name\": \"reg:5000\", \"state\": \"conflict\", \"fingerprint\": \"" FP_1 "\","
                " \"verification\": {\"state\": \"unreachable\"}}]}",
             now);
}

static const FleetRegistry *find(const FleetRegistries *regs, const char *name) {
        for (size_t i = 0; i < regs->n_registries; i++)
                if (streq(regs->registries[i].name, name))
                        return &regs->registries[i];
        fail_msg("no registry %s", name);
        return NULL;
}

static void test_fleet_by_registry(void **state) {
        _cleanup_(fleet_registries_freep) FleetRegistries *regs = NULL;
        _cleanup_(fleet_freep) Fleet *f = NULL;
        const FleetRegistry *reg;

        (void) state;
        assert_int_equal(fleet_new(0, 30, &f), 0);
        post_four(f, T0);

        assert_int_equal(fleet_registries(f, T0, &regs), 0);
        assert_int_equal(regs->nodes, 4);
        assert_int_equal(regs->n_registries, 2);
        assert_string_equal(regs->registries[0].name, "other.example.com");

        reg = find(regs, "reg:5000");
        assert_int_equal(reg->nodes, 3);
        assert_int_equal(reg->states[REGISTRY_APPLIED], 2);
        assert_int_equal(reg->states[REGISTRY_CONFLICT], 1);
        assert_int_equal(reg->verification[VERIFICATION_VERIFIED], 1);
        assert_int_equal(reg->verification[VERIFICATION_MISMATCH], 1);
        assert_int_equal(reg->verification[VERIFICATION_UNREACHABLE], 1);
        assert_int_equal(reg->verification[VERIFICATION_NOT_CHECKED], 0);
        assert_int_equal(reg->lacking, 1);
        assert_int_equal(reg->fingerprints_total, 2);
        assert_string_equal(reg->fingerprints[0].fingerprint, FP_1); /* two nodes hold it */
        assert_int_equal(reg->fingerprints[0].nodes, 2);
        assert_int_equal(reg->fingerprints[1].nodes, 1);
        assert_int_equal(reg->soonest_not_after, 1850000000);
        assert_int_equal(reg->soonest_server_not_after, 1805000000);
        /* n2 mismatch, n3 lacking, n4 conflict: in node order. */
        assert_int_equal(reg->attention_total, 3);
        assert_int_equal(reg->n_attention, 3);
        assert_string_equal(reg->attention[0].node, "n2");
        assert_int_equal(reg->attention[0].why, ATTENTION_MISMATCH);
        assert_string_equal(reg->attention[1].node, "n3");
        assert_int_equal(reg->attention[1].why, ATTENTION_LACKING);
        assert_string_equal(reg->attention[2].node, "n4");
        assert_int_equal(reg->attention[2].why, ATTENTION_CONFLICT);

        reg = find(regs, "other.example.com");
        assert_int_equal(reg->nodes, 3);
        assert_int_equal(reg->lacking, 1);
        assert_int_equal(reg->states[REGISTRY_FAILED], 1);
        assert_int_equal(reg->verification[VERIFICATION_NOT_CHECKED], 3);
        assert_false(reg->has_soonest_server_not_after);
        assert_false(reg->has_soonest_not_after);
        assert_int_equal(reg->attention_total, 2);
        assert_string_equal(reg->attention[0].node, "n3");
        assert_int_equal(reg->attention[0].why, ATTENTION_FAILED);
        assert_string_equal(reg->attention[1].node, "n4");
        assert_int_equal(reg->attention[1].why, ATTENTION_LACKING);
        fleet_registries_free(TAKE_PTR(regs));

        /* n4 goes stale: no longer counted, neither for what it holds nor as lacking. */
        assert_int_equal(fleet_registries(f, T0 + SEC(5), &regs), 0);
        assert_int_equal(regs->nodes, 3);
        reg = find(regs, "reg:5000");
        assert_int_equal(reg->nodes, 2);
        assert_int_equal(reg->states[REGISTRY_CONFLICT], 0);
        assert_int_equal(reg->verification[VERIFICATION_UNREACHABLE], 0);
        assert_int_equal(reg->fingerprints[0].nodes, 1);
        assert_int_equal(find(regs, "other.example.com")->lacking, 0);
}

static void test_attention_bounded(void **state) {
        _cleanup_(fleet_registries_freep) FleetRegistries *regs = NULL;
        _cleanup_(fleet_freep) Fleet *f = NULL;
        char json[512];

        (void) state;
        assert_int_equal(fleet_new(0, 30, &f), 0);
        post(f, HEAD("a0", HASH_A, "null") ", \"registries\": [{\"name\": \"r\", \"state\": \"applied\"}]}", T0);
        for (int i = 0; i < 30; i++) {
                snprintf(json, sizeof json, "{\"schema\": 1, \"node\": \"b%02d\", \"source\": {\"hash\": \"" HASH_A "\"},"
                         " \"registries\": []}", i);
                post(f, json, T0);
        }
        assert_int_equal(fleet_registries(f, T0, &regs), 0);
        assert_int_equal(regs->registries[0].lacking, 30);
        assert_int_equal(regs->registries[0].attention_total, 30);
        assert_int_equal(regs->registries[0].n_attention, FLEET_REGISTRY_MAX_ATTENTION);
        assert_string_equal(regs->registries[0].attention[0].node, "b00");
        assert_string_equal(regs->registries[0].attention[FLEET_REGISTRY_MAX_ATTENTION - 1].node, "b19");
}

static void test_truncated_node_not_lacking(void **state) {
        _cleanup_(fleet_registries_freep) FleetRegistries *regs = NULL;
        _cleanup_(fleet_freep) Fleet *f = NULL;
        Report *r;

        (void) state;
        assert_int_equal(fleet_new(0, 30, &f), 0);
        post(f, HEAD("a", HASH_A, "null") ", \"registries\": [{\"name\": \"r\", \"state\": \"applied\"}]}", T0);
        r = parse_ok(HEAD("b", HASH_A, "null") ", \"registries\": [{\"name\": \"s\", \"state\": \"applied\"}]}");
        r->entries_truncated = true; /* as if it had listed more than REPORT_MAX_REGISTRIES */
        assert_int_equal(fleet_update(f, &r, T0), 0);

        assert_int_equal(fleet_registries(f, T0, &regs), 0);
        assert_int_equal(regs->nodes_truncated, 1);
        assert_int_equal(find(regs, "r")->lacking, 0);
        assert_int_equal(find(regs, "s")->lacking, 1);
}

static void test_rollout_recorded(void **state) {
        _cleanup_(fleet_freep) Fleet *f = NULL;
        const Rollout *ro;

        (void) state;
        assert_int_equal(fleet_new(0, 30, &f), 0);
        assert_int_equal(f->rollouts.current.id, 0);

        post(f, HEAD("n1", HASH_A, "\"" HASH_A "\"") "}", T0);
        post(f, HEAD("n2", HASH_A, "null") "}", T0 + SEC(1));
        ro = &f->rollouts.current;
        assert_string_equal(ro->hash, HASH_A);
        assert_int_equal(ro->started, T0);
        assert_int_equal(ro->converged, 1);

        /* A new config: n1 reports it applied at once, n2 two seconds later;
         * reporting it again does not count again. */
        post(f, HEAD("n1", HASH_B, "\"" HASH_B "\"") "}", T0 + SEC(10));
        assert_string_equal(ro->hash, HASH_B);
        assert_int_equal(ro->started, T0 + SEC(10));
        assert_int_equal(ro->first_seen, T0 + SEC(10));
        assert_int_equal(f->rollouts.n_previous, 1);
        assert_string_equal(f->rollouts.previous[0].hash, HASH_A);
        assert_int_equal(f->rollouts.previous[0].ended, T0 + SEC(10));
        assert_int_equal(f->rollouts.previous[0].nodes_at_end, 2);
        post(f, HEAD("n2", HASH_B, "null") "}", T0 + SEC(11));
        post(f, HEAD("n2", HASH_B, "\"" HASH_B "\"") "}", T0 + SEC(12));
        post(f, HEAD("n2", HASH_B, "\"" HASH_B "\"") "}", T0 + SEC(13));
        post(f, HEAD("n1", HASH_B, "\"" HASH_B "\"") "}", T0 + SEC(14));
        assert_int_equal(ro->converged, 2);
        assert_int_equal(ro->n_points, 2);
        assert_int_equal(ro->points[0].at, T0 + SEC(10));
        assert_int_equal(ro->points[0].converged, 1);
        assert_int_equal(ro->points[1].at, T0 + SEC(12));
        assert_int_equal(ro->points[1].converged, 2);

        /* Back to A (a rollback) is a rollout of its own, counted afresh;
         * only ROLLOUT_HISTORY previous ones are kept. */
        post(f, HEAD("n1", HASH_A, "\"" HASH_A "\"") "}", T0 + SEC(20));
        assert_string_equal(ro->hash, HASH_A);
        assert_int_equal(ro->first_seen, T0);
        assert_int_equal(ro->converged, 1);
        post(f, HEAD("n1", HASH_B, "\"" HASH_B "\"") "}", T0 + SEC(30));
        assert_int_equal(f->rollouts.n_previous, ROLLOUT_HISTORY);
        assert_string_equal(f->rollouts.previous[0].hash, HASH_A);
        assert_int_equal(f->rollouts.previous[0].started, T0 + SEC(20));
        assert_string_equal(f->rollouts.previous[1].hash, HASH_B);
        assert_int_equal(f->rollouts.previous[1].converged, 2);
}

static void test_rollout_points_bounded(void **state) {
        Rollout ro = { .id = 1 };

        (void) state;
        for (unsigned i = 1; i <= 10 * ROLLOUT_MAX_POINTS; i++) {
                rollout_record(&ro, SEC(i));
                assert_true(ro.n_points <= ROLLOUT_MAX_POINTS);
                /* The latest is always there, and the series keeps rising. */
                assert_int_equal(ro.points[ro.n_points - 1].converged, i);
                assert_int_equal(ro.points[ro.n_points - 1].at, SEC(i));
        }
        assert_int_equal(ro.converged, 10 * ROLLOUT_MAX_POINTS);
        assert_true(ro.n_points >= ROLLOUT_MAX_POINTS / 2);
        for (size_t i = 1; i < ro.n_points; i++) {
                assert_true(ro.points[i].at > ro.points[i - 1].at);
                assert_true(ro.points[i].converged > ro.points[i - 1].converged);
                /* Every point is true: n nodes by the n-th second. */
                assert_int_equal(ro.points[i].converged * USEC_PER_SEC, ro.points[i].at);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_verification_ingested),
                cmocka_unit_test(test_verification_rejects),
                cmocka_unit_test(test_registries_capped_and_deduplicated),
                cmocka_unit_test(test_fleet_by_registry),
                cmocka_unit_test(test_attention_bounded),
                cmocka_unit_test(test_truncated_node_not_lacking),
                cmocka_unit_test(test_rollout_recorded),
                cmocka_unit_test(test_rollout_points_bounded),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
