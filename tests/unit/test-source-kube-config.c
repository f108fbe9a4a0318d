/* SPDX-License-Identifier: MIT */
/* kubeconfig (YAML and JSON, current context only) and in-cluster config. */
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
#include "source-kube-config.h"

/* As kubectl writes it, with a decoy context listed first. */
static const char kubectl_yaml[] =
        "apiVersion: v1\n"
        "clusters:\n"
        "- cluster:\n"
        "    server: https://192.0.2.1:6443\n"
        "  name: other\n"
        "- cluster:\n"
        "    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==\n"
        "    server: https://api.example.com:6443/\n"
        "  name: prod\n"
        "contexts:\n"
        "- context:\n"
        "    cluster: other\n"
        "    namespace: default\n"
        "    user: other-admin\n"
        "  name: other\n"
        "- context:\n"
        "    cluster: prod\n"
        "    user: nodetrust\n"
        "  name: nodetrust@prod\n"
        "current-context: nodetrust@prod\n"
        "kind: Config\n"
        "preferences: {}\n"
        "users:\n"
        "- name: other-admin\n"
        "  user:\n"
        "    token: not-this-one\n"
        "- name: nodetrust\n"
        "  user:\n"
        "    token: \"s3cr3t\"\n";

static KubeConfig *parse_ok(const char *text, const char *base) {
        KubeConfig *k = NULL;
        char *err = NULL;
        int r = kubeconfig_parse(text, strlen(text), base, &k, &err);

        if (r < 0)
                fail_msg("parse failed: %d %s", r, err ? err : "");
        assert_null(err);
        return k;
}

static void parse_err(const char *text, const char *want) {
        KubeConfig *k = NULL;
        char *err = NULL;

        assert_int_equal(kubeconfig_parse(text, strlen(text), "/etc", &k, &err), -EINVAL);
        assert_null(k);
        assert_non_null(err);
        if (!strstr(err, want))
                fail_msg("error '%s' does not mention '%s'", err, want);
        free(err);
}

static void test_kubectl_yaml(void **state) {
        KubeConfig *k = parse_ok(kubectl_yaml, "/etc/kube");
        char *t = NULL;

        (void) state;
        assert_string_equal(k->server, "https://api.example.com:6443");
        assert_non_null(k->ca_data);
        assert_int_equal(k->ca_data_size, 28);
        assert_memory_equal(k->ca_data, "-----BEGIN CERTIFICATE-----\n", 28);
        assert_null(k->ca_file);
        assert_string_equal(k->token, "s3cr3t");
        assert_null(k->cert_file);
        assert_int_equal(kubeconfig_token(k, &t), 0);
        assert_string_equal(t, "s3cr3t");
        free(t);
        /* The origin never carries the token. */
        assert_null(strstr(k->origin, "s3cr3t"));
        assert_non_null(strstr(k->origin, "nodetrust@prod"));
        kubeconfig_free(k);
}

static void test_json_and_files(void **state) {
        const char *json =
                "{\"apiVersion\":\"v1\",\"kind\":\"Config\",\"current-context\":\"c\","
                "\"clusters\":[{\"name\":\"k\",\"cluster\":{\"server\":\"https://10.0.0.1\","
                "\"certificate-authority\":\"pki/ca.crt\"}}],"
                "\"contexts\":[{\"name\":\"c\",\"context\":{\"cluster\":\"k\",\"user\":\"u\"}}],"
                "\"users\":[{\"name\":\"u\",\"user\":{\"client-certificate\":\"/abs/cert.pem\","
                "\"client-key\":\"key.pem\"}}]}";
        KubeConfig *k = parse_ok(json, "/etc/kube");
        char *t = (char *) "x";

        (void) state;
        assert_string_equal(k->server, "https://10.0.0.1");
        /* Relative paths are the kubeconfig's directory's, as kubectl does. */
        assert_string_equal(k->ca_file, "/etc/kube/pki/ca.crt");
        assert_string_equal(k->cert_file, "/abs/cert.pem");
        assert_string_equal(k->key_file, "/etc/kube/key.pem");
        assert_int_equal(kubeconfig_token(k, &t), 0);
        assert_null(t);
        kubeconfig_free(k);
}

static void test_errors(void **state) {
        (void) state;
        parse_err("kind: Config\n", "no current-context");
        parse_err("current-context: x\ncontexts: []\n", "not in contexts");
        parse_err("current-context: x\ncontexts:\n- name: x\n  context:\n    cluster: c\n", "cluster 'c' is not in clusters");
        parse_err("current-context: x\ncontexts:\n- name: x\n  context:\n    cluster: c\n"
                  "clusters:\n- name: c\n  cluster:\n    server: http://plain:8080\n",
                  "not https://");
        parse_err("current-context: x\ncontexts:\n- name: x\n  context:\n    cluster: c\n"
                  "clusters:\n- name: c\n  cluster:\n    server: https://a\n    insecure-skip-tls-verify: true\n",
                  "insecure-skip-tls-verify");
        parse_err("current-context: x\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n"
                  "clusters:\n- name: c\n  cluster:\n    server: https://a\n"
                  "users:\n- name: u\n  user:\n    exec:\n      command: aws\n",
                  "credential plugin");
        parse_err("current-context: x\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n"
                  "clusters:\n- name: c\n  cluster:\n    server: https://a\n"
                  "users:\n- name: u\n  user:\n    client-certificate: c.pem\n",
                  "without its key");
        parse_err("current-context: x\ncontexts:\n- name: x\n  context:\n    cluster: c\n"
                  "clusters:\n- name: c\n  cluster:\n    server: https://a\n    certificate-authority-data: '%%%'\n",
                  "not valid base64");
        parse_err("current-context: [unclosed\n", "not valid YAML");
        parse_err("- a\n- b\n", "expected a mapping");
        /* An alias loop ends instead of recursing forever. */
        parse_err("current-context: &a [*a]\n", "");
        /* Aliases expanding to 10^9 nodes stop at the node budget. */
        parse_err("a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                  "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                  "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
                  "more than 10000 YAML nodes");
        /* A name with a newline is quoted as one line. */
        parse_err("current-context: \"x\\ny\"\ncontexts: []\n", "context 'x y' is not in contexts");
        /* A token a header cannot carry is refused at load. */
        parse_err("current-context: x\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n"
                  "clusters:\n- name: c\n  cluster:\n    server: https://a\n"
                  "users:\n- name: u\n  user:\n    token: \"abc\\r\\nX-Evil: 1\"\n",
                  "user 'u': the token holds a control character");
}

static void test_token_file(void **state) {
        char dir[] = "/tmp/test-source-kube-config-XXXXXX", path[128], text[512];
        KubeConfig *k;
        char *t = NULL;
        FILE *f;

        (void) state;
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/token", dir);
        snprintf(text, sizeof text,
                 "current-context: x\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n"
                 "clusters:\n- name: c\n  cluster:\n    server: https://a\n"
                 "users:\n- name: u\n  user:\n    tokenFile: token\n");
        k = parse_ok(text, dir);
        assert_string_equal(k->token_file, path);
        assert_int_equal(kubeconfig_token(k, &t), -ENOENT);

        /* Re-read each time: a rotated token is picked up. */
        f = fopen(path, "w");
        fputs("first\n", f);
        fclose(f);
        assert_int_equal(kubeconfig_token(k, &t), 0);
        assert_string_equal(t, "first");
        free(t);
        f = fopen(path, "w");
        fputs("second", f);
        fclose(f);
        assert_int_equal(kubeconfig_token(k, &t), 0);
        assert_string_equal(t, "second");
        free(t);
        f = fopen(path, "w");
        fputs("a\nb\n", f);
        fclose(f);
        assert_int_equal(kubeconfig_token(k, &t), -EBADMSG);

        kubeconfig_free(k);
        unlink(path);
        rmdir(dir);
}

static void test_in_cluster(void **state) {
        char dir[] = "/tmp/test-incluster-XXXXXX", p[128];
        KubeConfig *k = NULL;
        char *err = NULL, *t = NULL;
        FILE *f;

        (void) state;
        assert_non_null(mkdtemp(dir));
        unsetenv("KUBERNETES_SERVICE_HOST");
        unsetenv("KUBERNETES_SERVICE_PORT");
        assert_int_equal(kubeconfig_in_cluster(dir, &k, &err), -EINVAL);
        assert_non_null(strstr(err, "KUBERNETES_SERVICE_HOST"));
        free(err);

        setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
        setenv("KUBERNETES_SERVICE_PORT", "443", 1);
        assert_int_equal(kubeconfig_in_cluster(dir, &k, &err), -ENOENT);
        assert_non_null(strstr(err, "token"));
        free(err);

        snprintf(p, sizeof p, "%s/token", dir);
        f = fopen(p, "w");
        fputs("sa-token", f);
        fclose(f);
        assert_int_equal(kubeconfig_in_cluster(dir, &k, &err), -ENOENT);
        assert_non_null(strstr(err, "ca.crt"));
        free(err);

        snprintf(p, sizeof p, "%s/ca.crt", dir);
        f = fopen(p, "w");
        fputs("PEM", f);
        fclose(f);
        assert_int_equal(kubeconfig_in_cluster(dir, &k, &err), 0);
        assert_string_equal(k->server, "https://[fd00::1]:443");
        assert_string_equal(k->ca_file, p);
        assert_int_equal(kubeconfig_token(k, &t), 0);
        assert_string_equal(t, "sa-token");
        free(t);
        kubeconfig_free(k);

        setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
        setenv("NODETRUST_SERVICEACCOUNT_DIR", dir, 1);
        assert_int_equal(kubeconfig_in_cluster(NULL, &k, &err), 0);
        assert_string_equal(k->server, "https://10.96.0.1:443");
        kubeconfig_free(k);

        unlink(p);
        snprintf(p, sizeof p, "%s/token", dir);
        unlink(p);
        rmdir(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kubectl_yaml), cmocka_unit_test(test_json_and_files),
                cmocka_unit_test(test_errors),       cmocka_unit_test(test_token_file),
                cmocka_unit_test(test_in_cluster),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
