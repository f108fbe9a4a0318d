/* SPDX-License-Identifier: MIT */
/* The API source's client configuration is loaded again when the
 * kubeconfig or a file it names changes, and a change that does not load
 * keeps the last good one with the reason. */
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
#include "source-kube-client.h"

#define KUBECONFIG                                                                                    \
        "{\"current-context\":\"c\",\"contexts\":[{\"name\":\"c\",\"context\":{\"cluster\":\"k\"}}],"  \
        "\"clusters\":[{\"name\":\"k\",\"cluster\":{\"server\":\"https://%s\",\"certificate-authority\":\"ca.pem\"}}]}"

static void write_text(const char *dir, const char *name, const char *text) {
        char path[512], tmp[520];
        FILE *f;

        snprintf(path, sizeof path, "%s/%s", dir, name);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        f = fopen(tmp, "w");
        assert_non_null(f);
        fputs(text, f);
        assert_int_equal(fclose(f), 0);
        /* A new inode each time: a rename, as editors and the kubelet do. */
        assert_int_equal(rename(tmp, path), 0);
}

static void write_kubeconfig(const char *dir, const char *server) {
        char text[1024];

        snprintf(text, sizeof text, KUBECONFIG, server);
        write_text(dir, "kubeconfig", text);
}

static void test_reload(void **state) {
        char dir[] = "/tmp/test-kube-client-XXXXXX", path[600];
        _cleanup_free_ char *error = NULL;
        KubeClient c = {};

        (void) state;
        assert_non_null(mkdtemp(dir));
        write_text(dir, "ca.pem", "CA one\n");
        write_kubeconfig(dir, "a:6443");
        snprintf(path, sizeof path, "%s/kubeconfig", dir);

        assert_int_equal(kube_client_load(&c, path, &error), 0);
        assert_string_equal(c.config->server, "https://a:6443");
        /* The CA file is read into data, and curl gets that. */
        assert_memory_equal(c.config->ca_data, "CA one\n", 7);
        assert_false(kube_client_refresh(&c));

        /* The CA file replaced: loaded again. */
        write_text(dir, "ca.pem", "CA two\n");
        assert_true(kube_client_refresh(&c));
        assert_memory_equal(c.config->ca_data, "CA two\n", 7);
        assert_false(kube_client_refresh(&c));

        /* The kubeconfig names another server. */
        write_kubeconfig(dir, "b:6443");
        assert_true(kube_client_refresh(&c));
        assert_string_equal(c.config->server, "https://b:6443");
        assert_string_equal(c.config_error, "");

        /* Broken: the last good stays, with the reason; asked again with
         * nothing changed, it is not parsed again. */
        write_text(dir, "kubeconfig", "{\"clusters\":[]}");
        assert_false(kube_client_refresh(&c));
        assert_string_equal(c.config->server, "https://b:6443");
        assert_non_null(strstr(c.config_error, "no current-context"));
        assert_false(kube_client_refresh(&c));

        /* The CA gone: the last good CA stays, and says so. */
        write_kubeconfig(dir, "c:6443");
        snprintf(path, sizeof path, "%s/ca.pem", dir);
        assert_int_equal(unlink(path), 0);
        assert_false(kube_client_refresh(&c));
        assert_string_equal(c.config->server, "https://b:6443");
        assert_non_null(strstr(c.config_error, "cannot read the CA file"));

        /* Fixed: taken, the error gone. */
        write_text(dir, "ca.pem", "CA three\n");
        assert_true(kube_client_refresh(&c));
        assert_string_equal(c.config->server, "https://c:6443");
        assert_memory_equal(c.config->ca_data, "CA three\n", 9);
        assert_string_equal(c.config_error, "");

        kube_client_done(&c);
        snprintf(path, sizeof path, "%s/ca.pem", dir);
        (void) unlink(path);
        snprintf(path, sizeof path, "%s/kubeconfig", dir);
        (void) unlink(path);
        (void) rmdir(dir);
}

/* A changed kubeconfig that names a file which does not exist yet fails;
 * when that file appears, the load is tried again (only the files of the
 * old configuration were looked at). */
static void test_new_file_named_by_a_failed_load(void **state) {
        char dir[] = "/tmp/test-kube-client-XXXXXX", path[600], text[1024];
        _cleanup_free_ char *error = NULL;
        KubeClient c = {};

        (void) state;
        assert_non_null(mkdtemp(dir));
        write_text(dir, "ca.pem", "CA one\n");
        write_kubeconfig(dir, "a:6443");
        snprintf(path, sizeof path, "%s/kubeconfig", dir);
        assert_int_equal(kube_client_load(&c, path, &error), 0);

        snprintf(text, sizeof text,
                 "{\"current-context\":\"c\",\"contexts\":[{\"name\":\"c\",\"context\":{\"cluster\":\"k\"}}],"
                 "\"clusters\":[{\"name\":\"k\",\"cluster\":{\"server\":\"https://b:6443\","
                 "\"certificate-authority\":\"new-ca.pem\"}}]}");
        write_text(dir, "kubeconfig", text);
        assert_false(kube_client_refresh(&c));
        assert_non_null(strstr(c.config_error, "cannot read the CA file"));
        assert_string_equal(c.config->server, "https://a:6443");
        assert_false(kube_client_refresh(&c));

        write_text(dir, "new-ca.pem", "CA new\n");
        assert_true(kube_client_refresh(&c));
        assert_string_equal(c.config->server, "https://b:6443");
        assert_memory_equal(c.config->ca_data, "CA new\n", 7);
        assert_string_equal(c.config_error, "");

        kube_client_done(&c);
        for (const char *const *n = (const char *const[]){ "ca.pem", "new-ca.pem", "kubeconfig", NULL }; *n; n++) {
                snprintf(path, sizeof path, "%s/%s", dir, *n);
                (void) unlink(path);
        }
        (void) rmdir(dir);
}

/* The client certificate and key are read here too, as regular files
 * only: libcurl opened the path in each TLS handshake, on the loop, and a
 * FIFO there hung the agent. */
static void test_client_key_fifo_refused(void **state) {
        char dir[] = "/tmp/test-kube-client-XXXXXX", path[600], text[1024];
        _cleanup_free_ char *error = NULL;
        KubeClient c = {};

        (void) state;
        assert_non_null(mkdtemp(dir));
        write_text(dir, "ca.pem", "CA\n");
        write_text(dir, "cert.pem", "CERT\n");
        snprintf(path, sizeof path, "%s/key.pem", dir);
        assert_int_equal(mkfifo(path, 0600), 0);
        snprintf(text, sizeof text,
                 "{\"current-context\":\"c\",\"contexts\":[{\"name\":\"c\",\"context\":{\"cluster\":\"k\","
                 "\"user\":\"u\"}}],\"clusters\":[{\"name\":\"k\",\"cluster\":{\"server\":\"https://a:6443\","
                 "\"certificate-authority\":\"ca.pem\"}}],\"users\":[{\"name\":\"u\",\"user\":{"
                 "\"client-certificate\":\"cert.pem\",\"client-key\":\"key.pem\"}}]}");
        write_text(dir, "kubeconfig", text);
        snprintf(path, sizeof path, "%s/kubeconfig", dir);
        assert_true(kube_client_load(&c, path, &error) < 0);
        assert_non_null(error);
        assert_non_null(strstr(error, "cannot read the client key"));
        assert_non_null(strstr(error, "not a regular file"));
        kube_client_done(&c);

        /* A regular key: both read into data. */
        snprintf(path, sizeof path, "%s/key.pem", dir);
        assert_int_equal(unlink(path), 0);
        write_text(dir, "key.pem", "KEY\n");
        error = mfree(error);
        snprintf(path, sizeof path, "%s/kubeconfig", dir);
        assert_int_equal(kube_client_load(&c, path, &error), 0);
        assert_memory_equal(c.config->cert_data, "CERT\n", 5);
        assert_memory_equal(c.config->key_data, "KEY\n", 4);
        kube_client_done(&c);
        for (const char *const *n = (const char *const[]){ "ca.pem", "cert.pem", "key.pem", "kubeconfig", NULL }; *n;
             n++) {
                snprintf(path, sizeof path, "%s/%s", dir, *n);
                (void) unlink(path);
        }
        (void) rmdir(dir);
}

/* A client made by hand (no kubeconfig path, not in-cluster) never reloads. */
static void test_unloaded(void **state) {
        KubeClient c = {};

        (void) state;
        assert_false(kube_client_refresh(&c));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reload),
                cmocka_unit_test(test_unloaded),
                cmocka_unit_test(test_new_file_named_by_a_failed_load),
                cmocka_unit_test(test_client_key_fifo_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
