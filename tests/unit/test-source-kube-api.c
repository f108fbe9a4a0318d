/* SPDX-License-Identifier: MIT */
/* The Kubernetes protocol helpers: URLs, list bodies, watch event lines,
 * Status objects, config map / secret decoding and the backoff. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base64.h"
#include "cleanup.h"
#include "source-kube-api.h"

#define SEC 1000000ULL

static const KubeObjectRef cm = { "v1", "openshift-config", "configmaps", "registry-cas", "ConfigMap" };
static const KubeObjectRef image = { "config.openshift.io/v1", NULL, "images", "cluster", "Image" };

static void test_urls(void **state) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL, *e = NULL;
        KubeObjectRef bad = cm;

        (void) state;
        assert_int_equal(kube_url_list("https://k:6443", &cm, &a), 0);
        assert_string_equal(a, "https://k:6443/api/v1/namespaces/openshift-config/configmaps"
                               "?fieldSelector=metadata.name%3Dregistry-cas");
        assert_int_equal(kube_url_list("https://k:6443", &image, &b), 0);
        assert_string_equal(b, "https://k:6443/apis/config.openshift.io/v1/images?fieldSelector=metadata.name%3Dcluster");
        assert_int_equal(kube_url_watch("https://k", &cm, "1234", 300, &c), 0);
        assert_string_equal(c, "https://k/api/v1/namespaces/openshift-config/configmaps"
                               "?fieldSelector=metadata.name%3Dregistry-cas&watch=1&resourceVersion=1234"
                               "&allowWatchBookmarks=true&timeoutSeconds=300");
        assert_int_equal(kube_url_watch("https://k", &image, NULL, 5, &d), 0);
        assert_string_equal(d, "https://k/apis/config.openshift.io/v1/images?fieldSelector=metadata.name%3Dcluster"
                               "&watch=1&allowWatchBookmarks=true&timeoutSeconds=5");
        /* Nothing that would need escaping reaches a URL. */
        assert_int_equal(kube_url_watch("https://k", &cm, "12&x=1", 5, &e), -EINVAL);
        bad.name = "Bad/Name";
        assert_int_equal(kube_url_list("https://k", &bad, &e), -EINVAL);

        free(a);
        assert_int_equal(kube_ref_describe(&cm, &a), 0);
        assert_string_equal(a, "configmap openshift-config/registry-cas");
        free(a);
        assert_int_equal(kube_ref_describe(&image, &a), 0);
        assert_string_equal(a, "image cluster");
}

static void test_names(void **state) {
        (void) state;
        assert_true(kube_name_is_valid("registry-cas"));
        assert_true(kube_name_is_valid("a.b-c.d1"));
        assert_false(kube_name_is_valid(""));
        assert_false(kube_name_is_valid("-a"));
        assert_false(kube_name_is_valid("a-"));
        assert_false(kube_name_is_valid("a..b"));
        assert_false(kube_name_is_valid("A"));
        assert_false(kube_name_is_valid("a/b"));
        assert_false(kube_name_is_valid("a%3Db"));
}

static void test_list(void **state) {
        const char *body =
                "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"77\"},"
                "\"items\":[{\"metadata\":{\"name\":\"other\",\"resourceVersion\":\"5\"}},"
                "{\"metadata\":{\"name\":\"registry-cas\",\"resourceVersion\":\"70\"},\"data\":{\"k\":\"v\"}}]}";
        KubeObjectRef absent = cm, x = cm;
        json_t *obj = NULL;
        char *rv = NULL;
        char err[160];

        (void) state;
        absent.name = "absent";
        x.name = "x";
        /* The item is picked by name even when the selector was ignored. */
        assert_int_equal(kube_list_parse(body, strlen(body), &cm, &obj, &rv, err, sizeof err), 0);
        assert_string_equal(rv, "77");
        assert_non_null(obj);
        assert_string_equal(kube_object_rv(obj), "70");
        json_decref(obj);
        free(rv);

        assert_int_equal(kube_list_parse(body, strlen(body), &absent, &obj, &rv, err, sizeof err), 0);
        assert_null(obj);
        assert_string_equal(rv, "77");
        free(rv);

        body = "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"9\"},"
               "\"items\":null}";
        assert_int_equal(kube_list_parse(body, strlen(body), &x, &obj, &rv, err, sizeof err), 0);
        assert_null(obj);
        free(rv);

        body = "{\"kind\":\"Status\",\"code\":500}";
        assert_int_equal(kube_list_parse(body, strlen(body), &x, &obj, &rv, err, sizeof err), -EBADMSG);
        assert_string_equal(err, "kind is \"Status\", not \"ConfigMapList\"");
        assert_int_equal(kube_list_parse("garbage", 7, &x, &obj, &rv, err, sizeof err), -EBADMSG);
        assert_string_equal(err, "the response is not a JSON object");
}

/* Lists that are not the list asked for, each refused with its reason. */
static void test_list_hostile(void **state) {
        static const struct {
                const char *body;
                const char *err;
        } cases[] = {
                /* Another kind's list: its items must not become ours. */
                { "{\"kind\":\"SecretList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[]}",
                  "kind is \"SecretList\", not \"ConfigMapList\"" },
                { "{\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[]}",
                  "kind is missing, not the string \"ConfigMapList\"" },
                { "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v2\",\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[]}",
                  "apiVersion is \"v2\", not \"v1\"" },
                { "{\"kind\":7,\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[]}",
                  "kind is a number, not the string \"ConfigMapList\"" },
                /* resourceVersions that could never be sent back. */
                { "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"1&watch=0\"},\"items\":[]}",
                  "the list's metadata.resourceVersion is not a valid resourceVersion" },
                { "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"\"},\"items\":[]}",
                  "the list's metadata.resourceVersion is not a valid resourceVersion" },
                { "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":12},\"items\":[]}",
                  "the list's metadata.resourceVersion is missing or not a string" },
                { "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"1\"},\"items\":{}}",
                  "the list's items is an object, not an array" },
        };
        json_t *obj = NULL;
        char *rv = NULL;
        char err[160];

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                assert_int_equal(kube_list_parse(cases[i].body, strlen(cases[i].body), &cm, &obj, &rv, err, sizeof err),
                                 -EBADMSG);
                assert_string_equal(err, cases[i].err);
                assert_null(rv);
        }
        /* The image config's list is config.openshift.io/v1 ImageList. */
        assert_int_equal(kube_list_parse(cases[0].body, strlen(cases[0].body), &image, &obj, &rv, err, sizeof err),
                         -EBADMSG);
        assert_string_equal(err, "kind is \"SecretList\", not \"ImageList\"");
        /* A resourceVersion of 129 characters is too long to send back. */
        char longrv[130];
        memset(longrv, '1', 129);
        longrv[129] = 0;
        assert_false(kube_rv_is_valid(longrv));
        longrv[128] = 0;
        assert_true(kube_rv_is_valid(longrv));
        assert_false(kube_rv_is_valid("12 3"));
        assert_false(kube_rv_is_valid(NULL));
}

static void test_events(void **state) {
        KubeEvent e;
        const char *l;

        (void) state;
        l = "{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"registry-cas\","
            "\"resourceVersion\":\"12\"},\"data\":{\"a\":\"b\"}}}";
        assert_int_equal(kube_event_parse(l, strlen(l), &e), 0);
        assert_int_equal(e.type, KUBE_EVENT_MODIFIED);
        assert_string_equal(e.resource_version, "12");
        assert_string_equal(e.name, "registry-cas");
        kube_event_done(&e);

        l = "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\","
            "\"metadata\":{\"resourceVersion\":\"99\"}}}";
        assert_int_equal(kube_event_parse(l, strlen(l), &e), 0);
        assert_int_equal(e.type, KUBE_EVENT_BOOKMARK);
        assert_string_equal(e.resource_version, "99");
        assert_null(e.name);
        kube_event_done(&e);

        l = "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"x\",\"resourceVersion\":\"13\"}}}";
        assert_int_equal(kube_event_parse(l, strlen(l), &e), 0);
        assert_int_equal(e.type, KUBE_EVENT_DELETED);
        kube_event_done(&e);

        l = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
            "\"status\":\"Failure\",\"message\":\"too old resource version: 5 (10)\",\"reason\":\"Expired\","
            "\"code\":410}}";
        assert_int_equal(kube_event_parse(l, strlen(l), &e), 0);
        assert_int_equal(e.type, KUBE_EVENT_ERROR);
        assert_int_equal(e.code, 410);
        assert_string_equal(e.message, "too old resource version: 5 (10)");
        kube_event_done(&e);

        /* Not events: bad JSON, unknown type, no object, no resourceVersion. */
        assert_int_equal(kube_event_parse("{\"type\":", 8, &e), -EBADMSG);
        l = "{\"type\":\"SYNC\",\"object\":{\"metadata\":{\"resourceVersion\":\"1\"}}}";
        assert_int_equal(kube_event_parse(l, strlen(l), &e), -EBADMSG);
        l = "{\"type\":\"ADDED\"}";
        assert_int_equal(kube_event_parse(l, strlen(l), &e), -EBADMSG);
        l = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"x\"}}}";
        assert_int_equal(kube_event_parse(l, strlen(l), &e), -EBADMSG);
        l = "{\"type\":\"ADDED\",\"type\":\"DELETED\",\"object\":{\"metadata\":{\"resourceVersion\":\"1\"}}}";
        assert_int_equal(kube_event_parse(l, strlen(l), &e), -EBADMSG);
        /* A bookmark (or an event) whose resourceVersion could not be sent
         * back: refused here, so the watch relists instead of wedging on a
         * URL it can never build. */
        l = "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\","
            "\"metadata\":{\"resourceVersion\":\"99&x=1\"}}}";
        assert_int_equal(kube_event_parse(l, strlen(l), &e), -EBADMSG);
        l = "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":99}}}";
        assert_int_equal(kube_event_parse(l, strlen(l), &e), -EBADMSG);
        l = "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"x\",\"resourceVersion\":\"1 2\"}}}";
        assert_int_equal(kube_event_parse(l, strlen(l), &e), -EBADMSG);
}

static void test_status(void **state) {
        const char *b = "{\"kind\":\"Status\",\"code\":401,\"reason\":\"Unauthorized\",\"message\":\"Unauthorized\"}";
        char *m = NULL;
        int code;

        (void) state;
        kube_status_parse(b, strlen(b), &code, &m);
        assert_int_equal(code, 401);
        assert_string_equal(m, "Unauthorized");
        free(m);
        kube_status_parse("<html>", 6, &code, &m);
        assert_int_equal(code, 0);
        assert_null(m);
}

static void test_image_name(void **state) {
        json_t *j;

        (void) state;
        j = json_loads("{\"spec\":{\"additionalTrustedCA\":{\"name\":\"registry-cas\"}}}", 0, NULL);
        assert_string_equal(kube_image_trusted_ca_name(j), "registry-cas");
        json_decref(j);
        j = json_loads("{\"spec\":{\"additionalTrustedCA\":{\"name\":\"\"}}}", 0, NULL);
        assert_null(kube_image_trusted_ca_name(j));
        json_decref(j);
        j = json_loads("{\"spec\":{}}", 0, NULL);
        assert_null(kube_image_trusted_ca_name(j));
        json_decref(j);
        assert_null(kube_image_trusted_ca_name(NULL));
}

typedef struct Collected {
        char keys[4][64];
        size_t sizes[4];
        unsigned char first_bytes[4];
        unsigned n;
} Collected;

static int collect(const char *key, const void *value, size_t size, void *userdata) {
        Collected *c = userdata;

        if (c->n >= 4)
                return -E2BIG;
        snprintf(c->keys[c->n], sizeof c->keys[0], "%s", key);
        c->sizes[c->n] = size;
        c->first_bytes[c->n] = size ? ((const unsigned char *) value)[0] : 0;
        c->n++;
        return 0;
}

static void test_configmap_and_secret(void **state) {
        Collected c = {};
        unsigned char *v = NULL;
        size_t n;
        json_t *j;

        (void) state;
        /* binaryData is base64 of raw bytes (DER starts with 0x30). */
        j = json_loads("{\"data\":{\"a.example.com\":\"-----BEGIN\"},\"binaryData\":{\"b.example.com..5000\":\"MIIB\"}}",
                       0, NULL);
        assert_int_equal(kube_configmap_foreach(j, collect, &c), 0);
        assert_int_equal(c.n, 2);
        assert_string_equal(c.keys[0], "a.example.com");
        assert_int_equal(c.sizes[0], 10);
        assert_string_equal(c.keys[1], "b.example.com..5000");
        assert_int_equal(c.sizes[1], 3);
        assert_int_equal(c.first_bytes[1], 0x30);
        json_decref(j);

        j = json_loads("{\"binaryData\":{\"k\":\"!!!\"}}", 0, NULL);
        assert_int_equal(kube_configmap_foreach(j, collect, &c), -EBADMSG);
        json_decref(j);
        j = json_loads("{\"data\":{\"k\":5}}", 0, NULL);
        assert_int_equal(kube_configmap_foreach(j, collect, &c), -EBADMSG);
        json_decref(j);
        c.n = 0;
        j = json_loads("{\"metadata\":{}}", 0, NULL);
        assert_int_equal(kube_configmap_foreach(j, collect, &c), 0);
        assert_int_equal(c.n, 0);
        json_decref(j);

        j = json_loads("{\"data\":{\".dockerconfigjson\":\"eyJhdXRocyI6e319\"}}", 0, NULL);
        assert_int_equal(kube_secret_get(j, ".dockerconfigjson", &v, &n), 0);
        assert_int_equal(n, 12);
        assert_memory_equal(v, "{\"auths\":{}}", 12);
        free(v);
        assert_int_equal(kube_secret_get(j, "other", &v, &n), -ENOENT);
        json_decref(j);
}

static void test_base64(void **state) {
        unsigned char *o = NULL;
        size_t n;

        (void) state;
        assert_int_equal(base64_decode_alloc("Zm9v\nYmFy", 9, &o, &n), 0);
        assert_int_equal(n, 6);
        assert_memory_equal(o, "foobar", 6);
        free(o);
        assert_int_equal(base64_decode_alloc("Zg==", 4, &o, &n), 0);
        assert_int_equal(n, 1);
        free(o);
        assert_int_equal(base64_decode_alloc("Zg", 2, &o, &n), 0);
        free(o);
        assert_int_equal(base64_decode_alloc("Z", 1, &o, &n), -EBADMSG);
        assert_int_equal(base64_decode_alloc("Zg=a", 4, &o, &n), -EBADMSG);
        assert_int_equal(base64_decode_alloc("Zg===", 5, &o, &n), -EBADMSG);
        assert_int_equal(base64_decode_alloc("Zm9v!", 5, &o, &n), -EBADMSG);
}

static void test_backoff(void **state) {
        (void) state;
        /* Half fixed, half random: rnd 0 gives the floor. */
        assert_int_equal(kube_backoff_usec(0, SEC / 2, 30 * SEC, 0), SEC / 4);
        assert_int_equal(kube_backoff_usec(1, SEC / 2, 30 * SEC, 0), SEC / 2);
        assert_int_equal(kube_backoff_usec(3, SEC / 2, 30 * SEC, 0), 2 * SEC);
        /* Capped, however many failures. */
        assert_int_equal(kube_backoff_usec(10, SEC / 2, 30 * SEC, 0), 15 * SEC);
        assert_int_equal(kube_backoff_usec(1000, SEC / 2, 30 * SEC, 0), 15 * SEC);
        for (uint64_t r = 0; r < 1000; r += 7) {
                uint64_t d = kube_backoff_usec(2, SEC / 2, 30 * SEC, r * 7919);
                assert_true(d >= SEC && d <= 2 * SEC);
                d = kube_backoff_usec(40, SEC / 2, 30 * SEC, r * 104729);
                assert_true(d >= 15 * SEC && d <= 30 * SEC);
        }
        /* Jitter actually varies. */
        assert_true(kube_backoff_usec(5, SEC / 2, 30 * SEC, 1) != kube_backoff_usec(5, SEC / 2, 30 * SEC, 999999));
}

static void test_watch_timeouts(void **state) {
        (void) state;
        assert_int_equal(kube_watch_timeout_jitter(300, 0), 300);
        for (uint64_t r = 0; r < 500; r++) {
                unsigned t = kube_watch_timeout_jitter(300, r * 31);
                assert_true(t >= 300 && t <= 375);
        }
        /* Dead after the timeout plus a margin of a quarter, 1..30 s. */
        assert_int_equal(kube_watch_dead_after_usec(2), 3 * SEC);
        assert_int_equal(kube_watch_dead_after_usec(40), 50 * SEC);
        assert_int_equal(kube_watch_dead_after_usec(300), 330 * SEC);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_urls),        cmocka_unit_test(test_names),
                cmocka_unit_test(test_list),        cmocka_unit_test(test_list_hostile),
                cmocka_unit_test(test_events),
                cmocka_unit_test(test_status),      cmocka_unit_test(test_image_name),
                cmocka_unit_test(test_configmap_and_secret), cmocka_unit_test(test_base64),
                cmocka_unit_test(test_backoff),     cmocka_unit_test(test_watch_timeouts),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
