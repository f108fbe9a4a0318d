/* SPDX-License-Identifier: MIT */
/*
 * Effective trust in the fleet view: the runtime targets and shadowed
 * registries of a report, validated, summarized as warnings beside the node
 * states, and shown in the JSON API and /metrics.
 */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"
#include "fleet.h"
#include "ingest.h"
#include "prometheus.h"

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define T0 (UINT64_C(1795000000) * USEC_PER_SEC)
#define SEC(s) ((uint64_t) (s) * USEC_PER_SEC)
/* The start of a report the cases below complete with their fields. */
#define HEAD "{\"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"}, \"applied_hash\": \"" HASH_A "\""
#define CONTAINERD_INACTIVE \
        "{\"state\": \"inactive\", \"reason\": \"containerd config_path is not set in /etc/containerd/config.toml\"}"

static Report *parse_ok(const char *json) {
        _cleanup_free_ char *msg = NULL;
        RejectReason why;
        Report *r = NULL;

        if (report_parse(json, strlen(json), &r, &why, &msg) < 0)
                fail_msg("report refused: %s", msg ? msg : "?");
        return r;
}

/* A report of node with the given targets and registries JSON (NULL: left out). */
static Report *mk(const char *node, const char *targets, const char *registries, unsigned interval) {
        _cleanup_free_ char *json = NULL;

        assert_true(asprintf(&json,
                             "{\"schema\": 1, \"node\": \"%s\", \"interval_seconds\": %u,"
                             " \"source\": {\"hash\": \"" HASH_A "\"}, \"applied_hash\": \"" HASH_A "\"%s%s%s%s}",
                             node, interval, targets ? ", \"targets\": " : "", targets ? targets : "",
                             registries ? ", \"registries\": " : "", registries ? registries : "") > 0);
        return parse_ok(json);
}

static void post(Fleet *f, Report *r, uint64_t now) {
        assert_int_equal(fleet_update(f, &r, now), 0);
        assert_null(r);
}

static void test_targets_parsed(void **state) {
        _cleanup_(report_freep) Report *r = parse_ok(
                HEAD ", \"targets\": {\"docker\": {\"state\": \"not_installed\"},"
                " \"containers\": {\"state\": \"active\", \"reason\": null},"
                " \"containerd\": " CONTAINERD_INACTIVE "},"
                " \"registries\": ["
                "  {\"name\": \"reg.example.com:5000\", \"key\": \"reg.example.com..5000\", \"state\": \"shadowed\","
                "   \"reason\": \"containerd: hosts.toml was not written by nodetrustd\", \"not_after\": 1830000000,"
                "   \"targets\": {\"containerd\": {\"state\": \"shadowed\", \"reason\": \"...\"},"
                "                 \"docker\": {\"state\": \"applied\"}}},"
                "  {\"name\": \"ok.example.com\", \"state\": \"applied\"}]}");

        (void) state;
        /* Sorted by name, whatever order the agent sent them in. */
        assert_int_equal(r->n_targets, 3);
        assert_string_equal(r->targets[0].name, "containerd");
        assert_int_equal(r->targets[0].state, TARGET_INACTIVE);
        assert_string_equal(r->targets[0].reason,
                            "containerd config_path is not set in /etc/containerd/config.toml");
        assert_string_equal(r->targets[1].name, "containers");
        assert_int_equal(r->targets[1].state, TARGET_ACTIVE);
        assert_null(r->targets[1].reason);
        assert_string_equal(r->targets[2].name, "docker");
        assert_int_equal(r->targets[2].state, TARGET_NOT_INSTALLED);
        assert_true(report_has_inactive_target(r));

        /* No registry_counts: the shadowed count comes from the registries. */
        assert_int_equal(r->registries[REGISTRY_SHADOWED], 1);
        assert_int_equal(r->registries[REGISTRY_APPLIED], 1);
        /* A shadowed CA still expires. */
        assert_int_equal(r->n_certs, 1);
        assert_string_equal(r->certs[0].registry, "reg.example.com:5000");
}

static void test_registry_counts(void **state) {
        _cleanup_(report_freep) Report *counted = NULL, *given = NULL, *old = NULL;

        (void) state;
        counted = parse_ok(HEAD ", \"registries\": [{\"name\": \"a\", \"state\": \"shadowed\"},"
                           " {\"name\": \"b\", \"state\": \"shadowed\"}],"
                           " \"registry_counts\": {\"applied\": 0, \"refused\": 0}}");
        assert_int_equal(counted->registries[REGISTRY_SHADOWED], 2);

        /* registry_counts, when it says, wins, wherever it comes in the object. */
        given = parse_ok("{\"registry_counts\": {\"applied\": 3, \"refused\": 0, \"conflict\": 0, \"failed\": 0,"
                         " \"shadowed\": 5, \"ignored\": 1, \"future\": \"x\"},"
                         " \"schema\": 1, \"node\": \"n\", \"source\": {\"hash\": \"" HASH_A "\"},"
                         " \"registries\": [{\"name\": \"a\", \"state\": \"shadowed\"}]}");
        assert_int_equal(given->registries[REGISTRY_SHADOWED], 5);
        /* ... for shadowed only: the other counts are the registries'. */
        assert_int_equal(given->registries[REGISTRY_APPLIED], 0);

        /* An old agent sends none of it. */
        old = parse_ok(HEAD "}");
        assert_int_equal(old->n_targets, 0);
        assert_int_equal(old->registries[REGISTRY_SHADOWED], 0);
        assert_false(report_has_inactive_target(old));
}

static void test_target_reason_cut(void **state) {
        _cleanup_(report_freep) Report *r = NULL;
        _cleanup_free_ char *json = NULL;
        char reason[2048], *p = reason;
        size_t n;

        (void) state;
        /* 'x' then 2-byte characters: cut on a character boundary. */
        *p++ = 'x';
        for (int i = 0; i < 600; i++)
                p += sprintf(p, "\xc3\xa9");
        *p = 0;
        assert_true(asprintf(&json, HEAD ", \"targets\": {\"containerd\": {\"state\": \"inactive\", \"reason\": \"%s\"}}}",
                             reason) > 0);
        r = parse_ok(json);
        n = strlen(r->targets[0].reason);
        assert_int_equal(n, REPORT_MAX_REASON_LEN - 1);
        assert_int_equal((unsigned char) r->targets[0].reason[n - 1], 0xa9);
}

static void test_target_names(void **state) {
        char name[REPORT_MAX_TARGET_NAME + 2];

        (void) state;
        assert_true(target_name_is_valid("containerd"));
        assert_true(target_name_is_valid("cri-o"));
        assert_true(target_name_is_valid("a_1"));
        assert_false(target_name_is_valid(NULL));
        assert_false(target_name_is_valid(""));
        assert_false(target_name_is_valid("Docker"));
        assert_false(target_name_is_valid("con tainerd"));
        assert_false(target_name_is_valid("a.b"));
        assert_false(target_name_is_valid("a\"b"));
        assert_false(target_name_is_valid("<script>"));
        memset(name, 'a', sizeof name);
        name[REPORT_MAX_TARGET_NAME] = 0;
        assert_true(target_name_is_valid(name));
        name[REPORT_MAX_TARGET_NAME] = 'a';
        name[REPORT_MAX_TARGET_NAME + 1] = 0;
        assert_false(target_name_is_valid(name));
        for (int i = 0; i < _TARGET_STATE_MAX; i++)
                assert_non_null(target_state_to_string(i));
        assert_null(target_state_to_string(_TARGET_STATE_MAX));
        assert_string_equal(registry_state_to_string(REGISTRY_SHADOWED), "shadowed");
}

static void test_rejects(void **state) {
        static const struct {
                const char *json;
                const char *message_part;
        } cases[] = {
                { HEAD ", \"targets\": []}", "'targets' must be an object" },
                { HEAD ", \"targets\": \"containerd\"}", "'targets' must be an object" },
                { HEAD ", \"targets\": {\"a\": {\"state\": \"active\"}, \"b\": {\"state\": \"active\"},"
                  " \"c\": {\"state\": \"active\"}, \"d\": {\"state\": \"active\"}, \"e\": {\"state\": \"active\"},"
                  " \"f\": {\"state\": \"active\"}, \"g\": {\"state\": \"active\"}, \"h\": {\"state\": \"active\"},"
                  " \"i\": {\"state\": \"active\"}}}",
                  "'targets' must have at most 8" },
                { HEAD ", \"targets\": {\"\": {\"state\": \"active\"}}}", "'targets' names" },
                { HEAD ", \"targets\": {\"Docker\": {\"state\": \"active\"}}}", "'targets' names" },
                { HEAD ", \"targets\": {\"<script>\": {\"state\": \"active\"}}}", "'targets' names" },
                { HEAD ", \"targets\": {\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":"
                  " {\"state\": \"active\"}}}",
                  "'targets' names" },
                { HEAD ", \"targets\": {\"docker\": \"active\"}}", "targets.docker must be an object" },
                { HEAD ", \"targets\": {\"docker\": {}}}", "targets.docker.state must be active, not_installed or inactive" },
                { HEAD ", \"targets\": {\"docker\": {\"state\": 1}}}", "targets.docker.state" },
                { HEAD ", \"targets\": {\"docker\": {\"state\": \"applied\"}}}", "targets.docker.state" },
                { HEAD ", \"targets\": {\"docker\": {\"state\": \"shadowed\"}}}", "targets.docker.state" },
                { HEAD ", \"targets\": {\"docker\": {\"state\": \"inactive\", \"reason\": 7}}}",
                  "targets.docker.reason must be a string" },
                { HEAD ", \"targets\": {\"docker\": {\"state\": \"inactive\", \"reason\": [\"x\"]}}}",
                  "targets.docker.reason" },
                { HEAD ", \"targets\": {\"docker\": {\"state\": \"active\"}, \"docker\": {\"state\": \"active\"}}}",
                  "duplicate" },
                { HEAD ", \"registries\": [{\"name\": \"r\", \"state\": \"inactive\"}]}", "registries[0].state" },
                { HEAD ", \"registries\": [{\"name\": \"r\", \"state\": \"shadowed\", \"targets\": []}]}",
                  "registries[0].targets must be an object" },
                { HEAD ", \"registries\": [{\"name\": \"r\", \"state\": \"applied\"},"
                  " {\"name\": \"s\", \"state\": \"shadowed\", \"targets\": \"containerd\"}]}",
                  "registries[1].targets must be an object" },
                { HEAD ", \"registry_counts\": [1]}", "'registry_counts' must be an object" },
                { HEAD ", \"registry_counts\": {\"shadowed\": -1}}", "registry_counts.shadowed must be an integer" },
                { HEAD ", \"registry_counts\": {\"shadowed\": \"1\"}}", "registry_counts.shadowed" },
                { HEAD ", \"registry_counts\": {\"shadowed\": 1.5}}", "registry_counts.shadowed" },
                { HEAD ", \"registry_counts\": {\"shadowed\": 99999999999}}", "registry_counts.shadowed" },
                { HEAD ", \"registry_counts\": {\"shadowed\": null}}", "registry_counts.shadowed" },
                { HEAD ", \"registry_counts\": {\"applied\": true}}", "registry_counts.applied" },
        };

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *msg = NULL;
                Report *r = NULL;
                RejectReason why = _REJECT_REASON_MAX;
                int k = report_parse(cases[i].json, strlen(cases[i].json), &r, &why, &msg);
                RejectReason expect = strcmp(cases[i].message_part, "duplicate") == 0 ? REJECT_BAD_JSON
                                                                                         : REJECT_BAD_SCHEMA;

                if (k != -EINVAL || why != expect || !msg || !strstr(msg, cases[i].message_part))
                        fail_msg("case %zu (%s): k=%d why=%s msg=%s", i, cases[i].json, k,
                                 reject_reason_to_string(why), msg ? msg : "(null)");
                /* A bad name is never echoed back. */
                assert_null(strstr(msg, "<script>"));
                assert_null(r);
        }
}

/* Four nodes: one with every warning, one clean CRI-O node, one old agent
 * (no targets at all), one stale node with warnings. */
static void post_fleet(Fleet *f) {
        post(f, mk("warned", "{\"docker\": {\"state\": \"not_installed\"}, \"containerd\": " CONTAINERD_INACTIVE "}",
                   "[{\"name\": \"a.example.com\", \"state\": \"shadowed\"},"
                   " {\"name\": \"b.example.com\", \"state\": \"shadowed\"},"
                   " {\"name\": \"c.example.com\", \"state\": \"applied\"}]", 30),
             T0 + SEC(100));
        post(f, mk("crio", "{\"containers\": {\"state\": \"active\"}, \"containerd\": {\"state\": \"not_installed\"},"
                   " \"docker\": {\"state\": \"not_installed\"}}",
                   "[{\"name\": \"a.example.com\", \"state\": \"applied\"}]", 30),
             T0 + SEC(100));
        post(f, mk("old", NULL, "[{\"name\": \"a.example.com\", \"state\": \"applied\"}]", 30), T0 + SEC(100));
        post(f, mk("silent", "{\"containerd\": {\"state\": \"inactive\"}}",
                   "[{\"name\": \"a.example.com\", \"state\": \"shadowed\"}]", 10),
             T0);
}

static void test_summary(void **state) {
        _cleanup_(fleet_freep) Fleet *f = NULL;
        FleetSummary s;

        (void) state;
        assert_int_equal(fleet_new(0, 30, &f), 0);
        post_fleet(f);

        fleet_summarize(f, T0 + SEC(100), &s);
        /* Warnings are not states: the warned node is still converged. */
        assert_int_equal(s.counts[NODE_CONVERGED], 3);
        assert_int_equal(s.counts[NODE_STALE], 1);
        assert_int_equal(fleet_node_state(f, fleet_get(f, "warned"), T0 + SEC(100)), NODE_CONVERGED);

        /* The stale node's warnings are not counted; not_installed is no warning. */
        assert_int_equal(s.shadowed, 1);
        assert_int_equal(s.inactive_target, 1);
        assert_int_equal(s.n_targets, 3);
        assert_int_equal(s.targets_omitted, 0);
        assert_string_equal(s.targets[0].name, "containerd");
        assert_int_equal(s.targets[0].counts[TARGET_ACTIVE], 0);
        assert_int_equal(s.targets[0].counts[TARGET_NOT_INSTALLED], 1);
        assert_int_equal(s.targets[0].counts[TARGET_INACTIVE], 1);
        assert_string_equal(s.targets[1].name, "containers");
        assert_int_equal(s.targets[1].counts[TARGET_ACTIVE], 1);
        assert_string_equal(s.targets[2].name, "docker");
        assert_int_equal(s.targets[2].counts[TARGET_NOT_INSTALLED], 2);

        /* Earlier, when the silent node was not yet stale, it counted. */
        fleet_summarize(f, T0 + SEC(30), &s);
        assert_int_equal(s.counts[NODE_STALE], 0);
        assert_int_equal(s.shadowed, 2);
        assert_int_equal(s.inactive_target, 2);
        assert_int_equal(s.targets[0].counts[TARGET_INACTIVE], 2);

        /* The warned node fixes its containerd config: the warning goes. */
        post(f, mk("warned", "{\"containerd\": {\"state\": \"active\"}}", "[]", 30), T0 + SEC(101));
        fleet_summarize(f, T0 + SEC(101), &s);
        assert_int_equal(s.shadowed, 0);
        assert_int_equal(s.inactive_target, 0);
        assert_int_equal(s.targets[0].counts[TARGET_ACTIVE], 1);
}

static void test_summary_target_names_bounded(void **state) {
        _cleanup_(fleet_freep) Fleet *f = NULL;
        FleetSummary s;
        char node[32], targets[512];

        (void) state;
        assert_int_equal(fleet_new(0, 30, &f), 0);
        /* 5 nodes x 4 names of their own: 20 names, more than the table holds. */
        for (int i = 0; i < 5; i++) {
                snprintf(node, sizeof node, "n%d", i);
                snprintf(targets, sizeof targets,
                         "{\"t%d-a\": {\"state\": \"active\"}, \"t%d-b\": {\"state\": \"active\"},"
                         " \"t%d-c\": {\"state\": \"active\"}, \"t%d-d\": {\"state\": \"inactive\"}}",
                         i, i, i, i);
                post(f, mk(node, targets, NULL, 30), T0);
        }
        fleet_summarize(f, T0, &s);
        assert_int_equal(s.n_targets, FLEET_MAX_TARGET_NAMES);
        assert_int_equal(s.targets_omitted, 20 - FLEET_MAX_TARGET_NAMES);
        /* The warning itself does not depend on the table. */
        assert_int_equal(s.inactive_target, 5);
        for (size_t i = 1; i < s.n_targets; i++)
                assert_true(strcmp(s.targets[i - 1].name, s.targets[i].name) < 0);
}

static void test_api_json(void **state) {
        _cleanup_(fleet_freep) Fleet *f = NULL;
        _cleanup_free_ char *node = NULL, *old = NULL, *summary = NULL;
        json_t *j, *t;

        (void) state;
        assert_int_equal(fleet_new(0, 30, &f), 0);
        post_fleet(f);

        assert_int_equal(api_node_json(f, T0 + SEC(100), "warned", &node), 0);
        j = json_loads(node, 0, NULL);
        assert_non_null(j);
        assert_int_equal(json_integer_value(json_object_get(j, "shadowed")), 2);
        t = json_object_get(j, "registries");
        assert_int_equal(json_integer_value(json_object_get(t, "shadowed")), 2);
        assert_int_equal(json_integer_value(json_object_get(t, "total")), 3);
        t = json_object_get(j, "targets");
        assert_int_equal(json_object_size(t), 2);
        assert_string_equal(json_string_value(json_object_get(json_object_get(t, "containerd"), "state")), "inactive");
        assert_string_equal(json_string_value(json_object_get(json_object_get(t, "containerd"), "reason")),
                            "containerd config_path is not set in /etc/containerd/config.toml");
        assert_string_equal(json_string_value(json_object_get(json_object_get(t, "docker"), "state")),
                            "not_installed");
        /* No reason reported, none made up. */
        assert_null(json_object_get(json_object_get(t, "docker"), "reason"));
        json_decref(j);

        /* An old agent's node: no targets, nothing shadowed. */
        assert_int_equal(api_node_json(f, T0 + SEC(100), "old", &old), 0);
        j = json_loads(old, 0, NULL);
        assert_non_null(j);
        assert_int_equal(json_object_size(json_object_get(j, "targets")), 0);
        assert_true(json_is_object(json_object_get(j, "targets")));
        assert_int_equal(json_integer_value(json_object_get(j, "shadowed")), 0);
        json_decref(j);

        assert_int_equal(api_summary_json(f, T0 + SEC(100), &summary), 0);
        j = json_loads(summary, 0, NULL);
        assert_non_null(j);
        assert_int_equal(json_integer_value(json_object_get(j, "shadowed")), 1);
        assert_int_equal(json_integer_value(json_object_get(j, "inactive_target")), 1);
        assert_int_equal(json_integer_value(json_object_get(j, "targets_omitted")), 0);
        t = json_object_get(j, "targets");
        assert_int_equal(json_object_size(t), 3);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "containerd"), "active")), 0);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "containerd"), "not_installed")), 1);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "containerd"), "inactive")), 1);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "docker"), "not_installed")), 2);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "counts"), "converged")), 3);
        json_decref(j);
}

static void test_metrics(void **state) {
        static const char *const lines[] = {
                "# HELP nodetrust_aggregator_nodes_shadowed ",
                "# TYPE nodetrust_aggregator_nodes_shadowed gauge\n",
                "\nnodetrust_aggregator_nodes_shadowed 1\n",
                "# HELP nodetrust_aggregator_nodes_inactive_target ",
                "# TYPE nodetrust_aggregator_nodes_inactive_target gauge\n",
                "\nnodetrust_aggregator_nodes_inactive_target 1\n",
                "# HELP nodetrust_aggregator_target_nodes ",
                "# TYPE nodetrust_aggregator_target_nodes gauge\n",
                "\nnodetrust_aggregator_target_nodes{target=\"containerd\",state=\"active\"} 0\n",
                "\nnodetrust_aggregator_target_nodes{target=\"containerd\",state=\"not_installed\"} 1\n",
                "\nnodetrust_aggregator_target_nodes{target=\"containerd\",state=\"inactive\"} 1\n",
                "\nnodetrust_aggregator_target_nodes{target=\"containers\",state=\"active\"} 1\n",
                "\nnodetrust_aggregator_target_nodes{target=\"docker\",state=\"not_installed\"} 2\n",
                /* The node states are as before. */
                "\nnodetrust_aggregator_nodes{state=\"converged\"} 3\n",
                "\nnodetrust_aggregator_nodes{state=\"stale\"} 1\n",
        };
        _cleanup_(fleet_freep) Fleet *f = NULL, *empty = NULL;
        _cleanup_free_ char *text = NULL, *none = NULL;
        AggregatorStats stats = { .start_time = T0 };
        size_t size, n = 0;

        (void) state;
        assert_int_equal(fleet_new(0, 30, &f), 0);
        post_fleet(f);
        assert_int_equal(metrics_render(f, &stats, T0 + SEC(100), &text, &size), 0);
        assert_int_equal(strlen(text), size);
        for (size_t i = 0; i < ELEMENTSOF(lines); i++)
                if (!strstr(text, lines[i]))
                        fail_msg("no '%s' in:\n%s", lines[i], text);
        /* 3 targets x 3 states, every state given, also when 0. */
        for (const char *p = text; (p = strstr(p, "\nnodetrust_aggregator_target_nodes{")); p++)
                n++;
        assert_int_equal(n, 9);

        /* Before any report: the gauges say 0, no target series. */
        assert_int_equal(fleet_new(0, 30, &empty), 0);
        assert_int_equal(metrics_render(empty, &stats, T0, &none, &size), 0);
        assert_non_null(strstr(none, "\nnodetrust_aggregator_nodes_shadowed 0\n"));
        assert_non_null(strstr(none, "\nnodetrust_aggregator_nodes_inactive_target 0\n"));
        assert_non_null(strstr(none, "# TYPE nodetrust_aggregator_target_nodes gauge\n"));
        assert_null(strstr(none, "nodetrust_aggregator_target_nodes{"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_targets_parsed),
                cmocka_unit_test(test_registry_counts),
                cmocka_unit_test(test_target_reason_cut),
                cmocka_unit_test(test_target_names),
                cmocka_unit_test(test_rejects),
                cmocka_unit_test(test_summary),
                cmocka_unit_test(test_summary_target_names_bounded),
                cmocka_unit_test(test_api_json),
                cmocka_unit_test(test_metrics),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
