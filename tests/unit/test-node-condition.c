/* SPDX-License-Identifier: MIT */
/*
 * RegistryTrustReady from hand-built States: which registries make it
 * False and with which reason, that an unreachable registry does not, that
 * the message names the failing ones (bounded), and the JSON the client
 * sends and reads.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cleanup.h"
#include "node-condition.h"

#define MAX_REGS 16

typedef struct Fixture {
        State s;
        RegistryResult regs[MAX_REGS];
} Fixture;

/* A state after a good sync with n applied registries reg0.example.com... */
static void fixture_init(Fixture *f, size_t n) {
        static char names[MAX_REGS][32];

        memset(f, 0, sizeof *f);
        for (size_t i = 0; i < n; i++) {
                snprintf(names[i], sizeof names[i], "reg%zu.example.com", i);
                f->regs[i] = (RegistryResult){ .key = names[i], .registry = names[i], .state = REGISTRY_APPLIED };
        }
        f->s = (State){ .first_sync_done = true, .last_sync_ok = true, .registries = f->regs,
                        .n_registries = n, .n_valid = n, .n_applied = (unsigned) n };
}

static void compute(const Fixture *f, NodeCondition *c) {
        assert_int_equal(node_condition_compute(&f->s, c), 0);
}

static void test_nothing_before_the_first_sync(void **unused) {
        _cleanup_(node_condition_done) NodeCondition c = {};
        State s = {};

        (void) unused;
        assert_int_equal(node_condition_compute(&s, &c), 0);
        assert_int_equal(c.status, NODE_CONDITION_UNKNOWN);
        assert_null(c.reason);
}

static void test_all_applied_is_true(void **unused) {
        _cleanup_(node_condition_done) NodeCondition c = {};
        Fixture f;

        (void) unused;
        fixture_init(&f, 3);
        f.regs[1].verify.state = VERIFY_VERIFIED;
        compute(&f, &c);
        assert_int_equal(c.status, NODE_CONDITION_TRUE);
        assert_string_equal(c.reason, NODE_REASON_TRUSTED);
        assert_string_equal(c.message, "All 3 registries trusted");

        fixture_init(&f, 0);
        compute(&f, &c);
        assert_int_equal(c.status, NODE_CONDITION_TRUE);
        assert_string_equal(c.message, "No registries configured");
}

static void test_each_bad_state_is_false(void **unused) {
        static const RegistryStateType bad[] = { REGISTRY_FAILED, REGISTRY_CONFLICT, REGISTRY_SHADOWED,
                                                 REGISTRY_REFUSED };
        Fixture f;

        (void) unused;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(node_condition_done) NodeCondition c = {};
                char want[128];

                fixture_init(&f, 3);
                f.regs[2].state = bad[i];
                compute(&f, &c);
                assert_int_equal(c.status, NODE_CONDITION_FALSE);
                assert_string_equal(c.reason, NODE_REASON_NOT_TRUSTED);
                snprintf(want, sizeof want, "1 registry not trusted: reg2.example.com (%s)",
                         registry_state_to_string(bad[i]));
                assert_string_equal(c.message, want);
        }
}

static void test_refused_key_is_named_by_key(void **unused) {
        _cleanup_(node_condition_done) NodeCondition c = {};
        Fixture f;

        (void) unused;
        fixture_init(&f, 2);
        /* An invalid key has no registry; it sorts after the valid ones. */
        f.regs[2] = (RegistryResult){ .key = (char *) "bad\nkey", .state = REGISTRY_REFUSED };
        f.s.n_registries = 3;
        compute(&f, &c);
        assert_int_equal(c.status, NODE_CONDITION_FALSE);
        assert_string_equal(c.reason, NODE_REASON_NOT_TRUSTED);
        /* One line: the key's newline is not passed on. */
        assert_string_equal(c.message, "1 registry not trusted: bad key (refused)");
}

/* Any bytes in a key: the message stays UTF-8 and the patch builds. */
static void test_key_not_utf8_still_patches(void **unused) {
        _cleanup_(node_condition_done) NodeCondition c = {};
        json_auto_t *patch = NULL;
        Fixture f;

        (void) unused;
        fixture_init(&f, 0);
        f.regs[0] = (RegistryResult){ .key = (char *) "bad\xff\xfekey", .state = REGISTRY_REFUSED };
        f.s.n_registries = 1;
        compute(&f, &c);
        assert_string_equal(c.message, "1 registry not trusted: bad??key (refused)");
        patch = node_condition_patch_json(&c, 1800000000, 1800000000);
        assert_non_null(patch);
}

static void test_mismatch_alone_and_with_others(void **unused) {
        _cleanup_(node_condition_done) NodeCondition c = {};
        Fixture f;

        (void) unused;
        fixture_init(&f, 3);
        f.regs[0].verify.state = VERIFY_MISMATCH;
        compute(&f, &c);
        assert_int_equal(c.status, NODE_CONDITION_FALSE);
        assert_string_equal(c.reason, NODE_REASON_MISMATCH);
        assert_string_equal(c.message, "1 registry not trusted: reg0.example.com (mismatch)");

        /* Another registry not applied: the broader reason, both named. */
        f.regs[2].state = REGISTRY_CONFLICT;
        compute(&f, &c);
        assert_string_equal(c.reason, NODE_REASON_NOT_TRUSTED);
        assert_string_equal(c.message,
                            "2 registries not trusted: reg0.example.com (mismatch), reg2.example.com (conflict)");
}

static void test_unreachable_stays_true_but_is_named(void **unused) {
        _cleanup_(node_condition_done) NodeCondition c = {};
        Fixture f;

        (void) unused;
        fixture_init(&f, 2);
        f.regs[1].verify.state = VERIFY_UNREACHABLE;
        compute(&f, &c);
        assert_int_equal(c.status, NODE_CONDITION_TRUE);
        assert_string_equal(c.reason, NODE_REASON_TRUSTED);
        assert_string_equal(c.message, "All 2 registries trusted; unreachable: reg1.example.com (unreachable)");
}

static void test_failed_sync_wins(void **unused) {
        _cleanup_(node_condition_done) NodeCondition c = {};
        Fixture f;

        (void) unused;
        fixture_init(&f, 2);
        f.s.last_sync_ok = false;
        f.s.last_error = (char *) "1 registry could not be written";
        f.regs[0].state = REGISTRY_FAILED;
        compute(&f, &c);
        assert_int_equal(c.status, NODE_CONDITION_FALSE);
        assert_string_equal(c.reason, NODE_REASON_SYNC_FAILED);
        assert_string_equal(c.message,
                            "The last sync failed: 1 registry could not be written; not trusted: reg0.example.com (failed)");

        /* With nothing per registry, the error alone. */
        f.regs[0].state = REGISTRY_APPLIED;
        f.s.last_error = (char *) "Failed to read the source: Permission denied";
        compute(&f, &c);
        assert_string_equal(c.message, "The last sync failed: Failed to read the source: Permission denied");
}

static void test_message_is_bounded(void **unused) {
        _cleanup_(node_condition_done) NodeCondition c = {};
        Fixture f;

        (void) unused;
        fixture_init(&f, 12);
        for (size_t i = 0; i < 12; i++)
                f.regs[i].state = REGISTRY_CONFLICT;
        compute(&f, &c);
        assert_string_equal(c.message, "12 registries not trusted: reg0.example.com (conflict), reg1.example.com (conflict), "
                                       "reg2.example.com (conflict), reg3.example.com (conflict), "
                                       "reg4.example.com (conflict) and 7 more");
}

static void test_equal_and_copy(void **unused) {
        _cleanup_(node_condition_done) NodeCondition a = {}, b = {};
        Fixture f;

        (void) unused;
        fixture_init(&f, 1);
        compute(&f, &a);
        assert_int_equal(node_condition_copy(&b, &a), 0);
        assert_true(node_condition_equal(&a, &b));
        f.regs[0].state = REGISTRY_SHADOWED;
        compute(&f, &b);
        assert_false(node_condition_equal(&a, &b));
}

static void test_time_format_and_parse(void **unused) {
        char buf[21];

        (void) unused;
        assert_int_equal(node_time_format(1767225600, buf), 0);
        assert_string_equal(buf, "2026-01-01T00:00:00Z");
        assert_int_equal(node_time_parse(buf), 1767225600);
        assert_int_equal(node_time_parse("2026-01-01T00:00:00.5Z"), 1767225600);
        assert_int_equal(node_time_parse("2026-01-01T00:00:00+02:00"), 0);
        assert_int_equal(node_time_parse("yesterday"), 0);
        assert_int_equal(node_time_parse(NULL), 0);
}

static void test_patch_json(void **unused) {
        NodeCondition c = { .status = NODE_CONDITION_FALSE, .reason = (char *) "RegistryNotTrusted",
                            .message = (char *) "1 registry not trusted: a (conflict)" };
        json_auto_t *j = node_condition_patch_json(&c, 1767225660, 1767225600);
        _cleanup_free_ char *s = NULL;

        (void) unused;
        assert_non_null(j);
        s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        assert_string_equal(s, "{\"status\":{\"conditions\":[{\"lastHeartbeatTime\":\"2026-01-01T00:01:00Z\","
                               "\"lastTransitionTime\":\"2026-01-01T00:00:00Z\","
                               "\"message\":\"1 registry not trusted: a (conflict)\","
                               "\"reason\":\"RegistryNotTrusted\",\"status\":\"False\","
                               "\"type\":\"RegistryTrustReady\"}]}}");
}

static void test_event_json(void **unused) {
        NodeCondition c = { .status = NODE_CONDITION_TRUE, .reason = (char *) "RegistriesTrusted",
                            .message = (char *) "All 1 registry trusted" };
        json_auto_t *j = node_event_json("node-1", "uid-1", &c, 1767225600, 0xabcULL);
        json_auto_t *w = NULL;

        (void) unused;
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "metadata"), "name")), "node-1.abc");
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "metadata"), "namespace")), "default");
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "involvedObject"), "kind")), "Node");
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "involvedObject"), "uid")), "uid-1");
        assert_string_equal(json_string_value(json_object_get(j, "type")), "Normal");
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "source"), "component")), "nodetrustd");
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "source"), "host")), "node-1");
        assert_string_equal(json_string_value(json_object_get(j, "firstTimestamp")), "2026-01-01T00:00:00Z");
        assert_string_equal(json_string_value(json_object_get(j, "lastTimestamp")), "2026-01-01T00:00:00Z");
        assert_int_equal(json_integer_value(json_object_get(j, "count")), 1);
        assert_string_equal(json_string_value(json_object_get(j, "reportingInstance")), "node-1");

        /* A problem is a Warning; without a uid, none is sent. */
        c.status = NODE_CONDITION_FALSE;
        w = node_event_json("node-1", NULL, &c, 1767225600, 1);
        assert_string_equal(json_string_value(json_object_get(w, "type")), "Warning");
        assert_null(json_object_get(json_object_get(w, "involvedObject"), "uid"));
}

static void test_node_parse(void **unused) {
        static const char node[] =
                "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"n\",\"uid\":\"u-1\"},\"status\":{\"conditions\":["
                "{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\"},"
                "{\"type\":\"RegistryTrustReady\",\"status\":\"False\",\"reason\":\"RegistryNotTrusted\","
                "\"message\":\"m\",\"lastTransitionTime\":\"2026-01-01T00:00:00Z\"}]}}";
        _cleanup_(node_condition_done) NodeCondition c = {};
        _cleanup_free_ char *uid = NULL;
        time_t t = 0;

        (void) unused;
        assert_int_equal(node_parse(node, strlen(node), &uid, &c, &t), 0);
        assert_string_equal(uid, "u-1");
        assert_int_equal(c.status, NODE_CONDITION_FALSE);
        assert_string_equal(c.reason, "RegistryNotTrusted");
        assert_string_equal(c.message, "m");
        assert_int_equal(t, 1767225600);

        /* A node without our condition: absent, reason NULL. */
        static const char bare[] = "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"uid\":\"u-2\"},\"status\":{}}";
        assert_int_equal(node_parse(bare, strlen(bare), &uid, &c, &t), 0);
        assert_string_equal(uid, "u-2");
        assert_int_equal(c.status, NODE_CONDITION_UNKNOWN);
        assert_null(c.reason);
        assert_int_equal(t, 0);

        assert_int_equal(node_parse("{\"kind\":\"Status\"}", 17, &uid, &c, &t), -EBADMSG);
        assert_int_equal(node_parse("not json", 8, &uid, &c, &t), -EBADMSG);

        /* Wrong apiVersion, or a field of the wrong type: a bad answer,
         * never "no condition" (which would reset lastTransitionTime). */
        static const char *const bad[] = {
                "{\"kind\":\"Node\",\"metadata\":{\"uid\":\"u\"}}",
                "{\"kind\":\"Node\",\"apiVersion\":\"v2\",\"metadata\":{\"uid\":\"u\"}}",
                "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"uid\":5}}",
                "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"status\":{\"conditions\":{}}}",
                "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"status\":{\"conditions\":[{\"type\":"
                "\"RegistryTrustReady\",\"status\":true}]}}",
                "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"status\":{\"conditions\":[{\"type\":"
                "\"RegistryTrustReady\",\"status\":\"True\",\"reason\":[]}]}}",
                "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"status\":{\"conditions\":[{\"type\":"
                "\"RegistryTrustReady\",\"status\":\"True\",\"lastTransitionTime\":0}]}}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(node_parse(bad[i], strlen(bad[i]), &uid, &c, &t), -EBADMSG);
        /* And what was parsed before is left alone. */
        assert_string_equal(uid, "u-2");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_nothing_before_the_first_sync),
                cmocka_unit_test(test_all_applied_is_true),
                cmocka_unit_test(test_each_bad_state_is_false),
                cmocka_unit_test(test_refused_key_is_named_by_key),
                cmocka_unit_test(test_key_not_utf8_still_patches),
                cmocka_unit_test(test_mismatch_alone_and_with_others),
                cmocka_unit_test(test_unreachable_stays_true_but_is_named),
                cmocka_unit_test(test_failed_sync_wins),
                cmocka_unit_test(test_message_is_bounded),
                cmocka_unit_test(test_equal_and_copy),
                cmocka_unit_test(test_time_format_and_parse),
                cmocka_unit_test(test_patch_json),
                cmocka_unit_test(test_event_json),
                cmocka_unit_test(test_node_parse),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
