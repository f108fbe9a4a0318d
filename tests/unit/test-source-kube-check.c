/* SPDX-License-Identifier: MIT */
/* What an object from the API must look like: every field of the wrong
 * type is refused with a reason naming it, never read as absent. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "source-kube-check.h"

typedef struct Case {
        const char *json;
        const char *err; /* NULL: accepted */
} Case;

static void run(kube_object_check_t check, const Case *cases, size_t n) {
        for (size_t i = 0; i < n; i++) {
                json_t *j = json_loads(cases[i].json, 0, NULL);
                char err[200] = "";

                assert_non_null(j);
                if (!cases[i].err)
                        assert_int_equal(check(j, err, sizeof err), 0);
                else {
                        assert_int_equal(check(j, err, sizeof err), -EBADMSG);
                        assert_string_equal(err, cases[i].err);
                }
                json_decref(j);
        }
}

static int check_cm_kind(json_t *o, char *err, size_t n) {
        return kube_check_kind(o, "v1", "ConfigMap", false, err, n);
}

static void test_kind(void **state) {
        static const Case cases[] = {
                { "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\"}", NULL },
                /* List items omit both. */
                { "{\"metadata\":{}}", NULL },
                { "{\"kind\":\"Secret\",\"apiVersion\":\"v1\"}", "kind is \"Secret\", not \"ConfigMap\"" },
                { "{\"kind\":\"ConfigMap\",\"apiVersion\":\"apps/v1\"}", "apiVersion is \"apps/v1\", not \"v1\"" },
                { "{\"kind\":[\"ConfigMap\"]}", "kind is an array, not the string \"ConfigMap\"" },
                { "{\"kind\":null}", "kind is null, not the string \"ConfigMap\"" },
        };
        (void) state;
        run(check_cm_kind, cases, ELEMENTSOF(cases));
}

static void test_configmap(void **state) {
        static const Case cases[] = {
                { "{\"data\":{\"a\":\"b\"},\"binaryData\":{\"c\":\"MIIB\"}}", NULL },
                { "{\"data\":null,\"binaryData\":null}", NULL },
                { "{}", NULL },
                { "{\"data\":[\"a\"]}", "data is an array, not an object" },
                { "{\"data\":\"a\"}", "data is a string, not an object" },
                { "{\"binaryData\":7}", "binaryData is a number, not an object" },
                { "{\"data\":{\"a.example.com\":5}}", "data.a.example.com is a number, not a string" },
                { "{\"data\":{\"a\":{\"pem\":\"x\"}}}", "data.a is an object, not a string" },
                { "{\"data\":{\"a\":null}}", "data.a is null, not a string" },
                { "{\"binaryData\":{\"b\":true}}", "binaryData.b is a boolean, not a string" },
                { "{\"binaryData\":{\"b\":\"not*base64\"}}", "binaryData.b is not base64" },
        };
        (void) state;
        run(kube_check_configmap, cases, ELEMENTSOF(cases));
}

static void test_pull_secret(void **state) {
        static const Case cases[] = {
                { "{\"type\":\"kubernetes.io/dockerconfigjson\",\"data\":{\".dockerconfigjson\":\"e30=\"}}", NULL },
                /* Another type is not the node's credentials, however it looks. */
                { "{\"type\":\"Opaque\",\"data\":{\".dockerconfigjson\":\"e30=\"}}",
                  "type is \"Opaque\", not \"kubernetes.io/dockerconfigjson\"" },
                { "{\"type\":\"kubernetes.io/dockercfg\",\"data\":{\".dockercfg\":\"e30=\"}}",
                  "type is \"kubernetes.io/dockercfg\", not \"kubernetes.io/dockerconfigjson\"" },
                { "{\"data\":{\".dockerconfigjson\":\"e30=\"}}",
                  "type is missing, not the string \"kubernetes.io/dockerconfigjson\"" },
                { "{\"type\":1,\"data\":{}}", "type is a number, not the string \"kubernetes.io/dockerconfigjson\"" },
                { "{\"type\":\"kubernetes.io/dockerconfigjson\"}", "data is missing, not an object" },
                { "{\"type\":\"kubernetes.io/dockerconfigjson\",\"data\":[]}", "data is an array, not an object" },
                { "{\"type\":\"kubernetes.io/dockerconfigjson\",\"data\":{}}",
                  "data..dockerconfigjson is missing, not a string" },
                { "{\"type\":\"kubernetes.io/dockerconfigjson\",\"data\":{\".dockerconfigjson\":{}}}",
                  "data..dockerconfigjson is an object, not a string" },
                { "{\"type\":\"kubernetes.io/dockerconfigjson\",\"data\":{\".dockerconfigjson\":\"%%%\"}}",
                  "data..dockerconfigjson is not base64" },
        };
        (void) state;
        run(kube_check_pull_secret, cases, ELEMENTSOF(cases));
}

static void test_image(void **state) {
        static const Case cases[] = {
                { "{\"spec\":{\"additionalTrustedCA\":{\"name\":\"registry-cas\"}}}", NULL },
                { "{\"spec\":{\"additionalTrustedCA\":{\"name\":\"\"}}}", NULL },
                { "{\"spec\":{\"additionalTrustedCA\":{\"name\":null}}}", NULL },
                { "{\"spec\":{\"additionalTrustedCA\":{}}}", NULL },
                { "{\"spec\":{\"additionalTrustedCA\":null}}", NULL },
                { "{\"spec\":{}}", NULL },
                { "{}", NULL },
                /* Not "no config map": an error. */
                { "{\"spec\":{\"additionalTrustedCA\":{\"name\":42}}}",
                  "spec.additionalTrustedCA.name is a number, not a string" },
                { "{\"spec\":{\"additionalTrustedCA\":{\"name\":[\"a\"]}}}",
                  "spec.additionalTrustedCA.name is an array, not a string" },
                { "{\"spec\":{\"additionalTrustedCA\":{\"name\":{\"x\":1}}}}",
                  "spec.additionalTrustedCA.name is an object, not a string" },
                { "{\"spec\":{\"additionalTrustedCA\":{\"name\":false}}}",
                  "spec.additionalTrustedCA.name is a boolean, not a string" },
                { "{\"spec\":{\"additionalTrustedCA\":\"registry-cas\"}}",
                  "spec.additionalTrustedCA is a string, not an object" },
                { "{\"spec\":[]}", "spec is an array, not an object" },
                { "{\"spec\":{\"additionalTrustedCA\":{\"name\":\"Bad/Name\"}}}",
                  "spec.additionalTrustedCA.name 'Bad/Name' is not a valid config map name" },
        };
        (void) state;
        run(kube_check_image, cases, ELEMENTSOF(cases));
}

static void test_types(void **state) {
        (void) state;
        assert_string_equal(kube_json_type(NULL), "missing");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kind),       cmocka_unit_test(test_configmap),
                cmocka_unit_test(test_pull_secret), cmocka_unit_test(test_image),
                cmocka_unit_test(test_types),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
