/* SPDX-License-Identifier: MIT */
/* The reports' JSON reader (aggregator/ingest-json.c): the fast path takes
 * the plain JSON agents send and gives the very tree jansson gives; all
 * else goes to jansson, with jansson's verdict and words. */
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
#include "ingest-json.h"

static void assert_same_value(const Jv *a, const Jv *b) {
        assert_int_equal(a->type, b->type);
        assert_int_equal(a->n, b->n);
        assert_int_equal(a->skip, b->skip);
        assert_true((a->key == NULL) == (b->key == NULL));
        if (a->key)
                assert_string_equal(a->key, b->key);
        if (a->type == JV_STRING)
                assert_string_equal(a->string, b->string);
        if (a->type == JV_INTEGER)
                assert_true(a->integer == b->integer);
}

/* text parses the same either way; returns whether the fast path took it. */
static bool same_as_jansson(const char *text) {
        _cleanup_free_ char *e1 = NULL, *e2 = NULL;
        JvDoc fast = {}, slow = {};
        int r1, r2;
        bool took;

        r1 = jv_parse(text, strlen(text), &fast, &e1);
        r2 = jv_parse_jansson(text, strlen(text), &slow, &e2);
        assert_int_equal(r1, r2);
        if (r1 < 0) {
                assert_int_equal(r1, -EBADMSG);
                assert_string_equal(e1, e2);
                return false;
        }
        assert_false(slow.fast);
        assert_int_equal(fast.n_values, slow.n_values);
        for (size_t i = 0; i < fast.n_values; i++)
                assert_same_value(&fast.values[i], &slow.values[i]);
        took = fast.fast;
        jv_doc_done(&fast);
        jv_doc_done(&slow);
        return took;
}

static void test_agent_report_takes_the_fast_path(void **state) {
        (void) state;
        /* What agent/report.c sends, compact, as json_dumps() writes it. */
        assert_true(same_as_jansson(
                "{\"schema\":1,\"node\":\"worker-1\",\"agent_version\":\"0.1.0\",\"timestamp\":1795000000,"
                "\"interval_seconds\":30,\"ready\":true,\"source\":{\"kind\":\"dir\",\"generation\":7,"
                "\"hash\":\"abab\"},\"applied_hash\":null,\"errors\":[],\"registries\":[{\"name\":\"r:5000\","
                "\"key\":\"r..5000\",\"state\":\"applied\",\"fingerprint\":\"00\",\"not_after\":1830000000,"
                "\"verification\":{\"state\":\"verified\",\"server_not_after\":0,\"checked_at\":1}},"
                "{\"name\":\"q\",\"state\":\"refused\",\"reason\":\"port out of range\"}],"
                "\"targets\":{\"docker\":{\"state\":\"active\"}},\"pull_secret\":{\"state\":\"absent\",\"hash\":null},"
                "\"registry_counts\":{\"applied\":1,\"refused\":1},\"soonest_expiry\":false}"));
        /* Indented (as Python's json.dumps(indent=2) or a person writes it). */
        assert_true(same_as_jansson("{\n  \"a\": [1, 2, {\"b\": [], \"c\": {}}],\r\n\t\"d\": \"e\" }  \n"));
        assert_true(same_as_jansson("{}"));
        assert_true(same_as_jansson("{\"big\": 999999999999999999, \"zero\": 0}"));
}

static void test_the_rest_goes_to_jansson(void **state) {
        static const char *const cases[] = {
                /* valid, but not the fast path's */
                "{\"escaped\": \"a\\\"b\\u00e9\\n\"}",
                "{\"utf8\": \"caf\xc3\xa9\"}",
                "{\"real\": 1.5}",
                "{\"exp\": 1e3}",
                "{\"negative\": -1}",
                "{\"minus zero\": -0}",
                "{\"19 digits\": 1234567890123456789}",
                /* found by tests/fuzz/fuzz-agg-json.c: 20 digits overflowed the fast path's sum */
                "{\"20 digits\": 92233720368547758080}",
                "[1, 2]",
                "{\"deep\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
                "{\"k\\u0041\": 1}",
                /* invalid: jansson's words */
                "",
                "   ",
                "{",
                "{\"a\": 1,}",
                "{\"a\": 1 \"b\": 2}",
                "{\"a\" 1}",
                "{\"a\": 01}",
                "{\"a\": 1x}",
                "{\"a\": truex}",
                "{\"a\": tru}",
                "{\"a\": nul}",
                "{\"a\": 1} x",
                "{\"a\": 1}}",
                "{\"a\": 1, \"a\": 2}",
                "{\"a\": {\"b\": 1, \"b\": 1}}",
                "{\"a\": \"tab\there\"}",
                "{\"a\": \"\xff\"}",
                "{\"a\": \"\\u0000\"}",
                "{\"a\": 99999999999999999999999}",
                "{\"a\": [1, 2]]",
                "{\"a\": [1, 2}",
                "\"just a string\"",
                "17",
                "{'a': 1}",
                "{\"a\": +1}",
                "{\"a\": .5}",
                "{\"a\": \"unterminated}",
        };

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                print_message("case %zu: %s\n", i, cases[i]);
                assert_false(same_as_jansson(cases[i]));
        }
}

static void test_nul_and_limits(void **state) {
        static const char with_nul[] = "{\"a\": 1}\0{\"b\": 2}";
        _cleanup_free_ char *e = NULL, *deep = NULL, *wide = NULL;
        JvDoc d = {};
        size_t n = 0;

        (void) state;
        /* A NUL byte inside the size given: jansson's verdict. */
        assert_int_equal(jv_parse(with_nul, sizeof with_nul - 1, &d, &e), -EBADMSG);
        assert_non_null(strstr(e, "invalid JSON at line 1"));

        /* Deeper than the fast path goes, and an object wider than it
         * checks for duplicates: both still read, by jansson. */
        deep = malloc(2 * 40 + 16);
        assert_non_null(deep);
        n = (size_t) sprintf(deep, "{\"a\":");
        for (int i = 0; i < 40; i++)
                deep[n++] = '[';
        for (int i = 0; i < 40; i++)
                deep[n++] = ']';
        deep[n++] = '}';
        deep[n] = 0;
        assert_false(same_as_jansson(deep));
        wide = malloc(JV_FAST_MAX_MEMBERS * 16 + 16);
        assert_non_null(wide);
        n = (size_t) sprintf(wide, "{");
        for (unsigned i = 0; i <= JV_FAST_MAX_MEMBERS; i++)
                n += (size_t) sprintf(wide + n, "%s\"k%u\":%u", i ? "," : "", i, i);
        sprintf(wide + n, "}");
        assert_false(same_as_jansson(wide));
        /* One member fewer is the fast path's. */
        strcpy(strrchr(wide, ','), "}");
        assert_true(same_as_jansson(wide));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_agent_report_takes_the_fast_path),
                cmocka_unit_test(test_the_rest_goes_to_jansson),
                cmocka_unit_test(test_nul_and_limits),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
