/* SPDX-License-Identifier: MIT */
/*
 * One KubeWatch against a scripted HTTP server on the same sd_event loop:
 * the owner hears about its health exactly when what kube_watch_healthy()
 * answers changes (failing, failing differently, recovered, first listed),
 * and not for a failure that repeats itself.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "cleanup.h"
#include "source-kube-watch.h"

#define LIST_BODY                                                                               \
        "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"7\"},\"items\":[" \
        "{\"metadata\":{\"name\":\"registry-cas\",\"resourceVersion\":\"7\"},\"data\":{}}]}"

/* One answer per request; a NULL status ends the script: that request and
 * any later one get a watch stream that stays open and silent. */
typedef struct Reply {
        const char *status;
        const char *body;
} Reply;

typedef struct Server {
        sd_event *event;
        int listen_fd;
        int port;
        sd_event_source *accept_src;
        int conn_fd;
        sd_event_source *conn_src;
        char req[4096];
        size_t req_size;
        const Reply *script;
        unsigned n_requests, n_watches;
} Server;

static void server_close_conn(Server *s) {
        s->conn_src = sd_event_source_disable_unref(s->conn_src);
        s->conn_fd = safe_close(s->conn_fd);
}

static void send_all(int fd, const char *p) {
        size_t n = strlen(p);

        while (n > 0) {
                ssize_t w = write(fd, p, n);
                if (w <= 0)
                        return;
                p += w;
                n -= (size_t) w;
        }
}

static void respond(Server *s) {
        const Reply *r = &s->script[s->n_requests];
        char buf[1024];

        if (strstr(s->req, "watch=1"))
                s->n_watches++;
        if (!r->status) {
                send_all(s->conn_fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                     "Transfer-Encoding: chunked\r\n\r\n");
                return;
        }
        s->n_requests++;
        snprintf(buf, sizeof buf,
                 "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 r->status, strlen(r->body), r->body);
        send_all(s->conn_fd, buf);
        server_close_conn(s);
}

static int on_conn(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Server *s = userdata;
        ssize_t n;

        (void) src;
        (void) revents;
        n = read(fd, s->req + s->req_size, sizeof s->req - 1 - s->req_size);
        if (n <= 0) {
                server_close_conn(s);
                return 0;
        }
        s->req_size += (size_t) n;
        s->req[s->req_size] = 0;
        if (!strstr(s->req, "\r\n\r\n"))
                return 0;
        sd_event_source_set_enabled(s->conn_src, SD_EVENT_OFF);
        respond(s);
        return 0;
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Server *s = userdata;
        int c;

        (void) src;
        (void) revents;
        c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
                return 0;
        server_close_conn(s);
        s->conn_fd = c;
        s->req_size = 0;
        s->req[0] = 0;
        assert_int_equal(sd_event_add_io(s->event, &s->conn_src, c, EPOLLIN, on_conn, s), 0);
        return 0;
}

static void server_start(Server *s, sd_event *e, const Reply *script) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t l = sizeof a;

        *s = (Server){ .event = e, .conn_fd = -1, .script = script };
        s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(s->listen_fd >= 0);
        assert_int_equal(bind(s->listen_fd, (struct sockaddr *) &a, sizeof a), 0);
        assert_int_equal(listen(s->listen_fd, 8), 0);
        assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *) &a, &l), 0);
        s->port = ntohs(a.sin_port);
        assert_int_equal(sd_event_add_io(e, &s->accept_src, s->listen_fd, EPOLLIN, on_accept, s), 0);
}

static void server_stop(Server *s) {
        server_close_conn(s);
        s->accept_src = sd_event_source_disable_unref(s->accept_src);
        s->listen_fd = safe_close(s->listen_fd);
}

/* What the owner saw: kube_watch_healthy() at each health callback. */
typedef struct Owner {
        unsigned changes;
        unsigned health_calls;
        bool healthy[8];
        char reason[8][320];
} Owner;

static void on_change(KubeWatch *w, void *userdata) {
        Owner *o = userdata;

        (void) w;
        o->changes++;
}

static void on_health(KubeWatch *w, void *userdata) {
        Owner *o = userdata;
        const char *reason = "";
        unsigned i = o->health_calls++;

        if (i >= ELEMENTSOF(o->healthy))
                return;
        o->healthy[i] = kube_watch_healthy(w, &reason);
        snprintf(o->reason[i], sizeof o->reason[i], "%s", o->healthy[i] ? "" : reason);
}

typedef struct Fixture {
        sd_event *event;
        Server server;
        KubeClient client;
        KubeWatch *watch;
        Owner owner;
} Fixture;

static const KubeObjectRef cm = { "v1", "openshift-config", "configmaps", "registry-cas", "ConfigMap" };

static void fixture_start(Fixture *f, const Reply *script, bool optional) {
        const char *reason = NULL;

        memset(f, 0, sizeof *f);
        assert_int_equal(sd_event_new(&f->event), 0);
        server_start(&f->server, f->event, script);

        f->client.event = f->event;
        assert_int_equal(curl_glue_new(f->event, &f->client.glue), 0);
        f->client.config = calloc(1, sizeof *f->client.config);
        assert_non_null(f->client.config);
        assert_true(asprintf(&f->client.config->server, "http://127.0.0.1:%d", f->server.port) > 0);
        f->client.watch_timeout_sec = 60;
        f->client.request_timeout_usec = 2 * USEC_PER_SEC;
        f->client.backoff_base_usec = 20 * USEC_PER_MSEC;
        f->client.backoff_cap_usec = 40 * USEC_PER_MSEC;

        assert_int_equal(kube_watch_new(&f->client, &cm, on_change, on_health, &f->owner, &f->watch), 0);
        kube_watch_set_optional(f->watch, optional);
        assert_false(kube_watch_healthy(f->watch, &reason));
        assert_non_null(strstr(reason, "not listed yet"));
        assert_int_equal(kube_watch_start(f->watch), 0);
}

/* Run until the server has seen n_requests scripted requests and, when
 * want_watch, the watch after them; then a little longer, so that a
 * callback that should not come would. */
static void fixture_run(Fixture *f, unsigned n_requests, bool want_watch) {
        for (int i = 0; i < 200; i++) {
                if (f->server.n_requests >= n_requests && (!want_watch || f->server.n_watches > 0))
                        break;
                assert_true(sd_event_run(f->event, 50 * USEC_PER_MSEC) >= 0);
        }
        assert_int_equal(f->server.n_requests, n_requests);
        if (want_watch)
                assert_int_equal(f->server.n_watches, 1);
        for (int i = 0; i < 5; i++)
                assert_true(sd_event_run(f->event, 20 * USEC_PER_MSEC) >= 0);
}

static void fixture_stop(Fixture *f) {
        f->watch = kube_watch_free(f->watch);
        f->client.glue = curl_glue_free(f->client.glue);
        server_stop(&f->server);
        f->client.config = kubeconfig_free(f->client.config);
        f->event = sd_event_unref(f->event);
}

static void test_health_on_first_list(void **state) {
        static const Reply script[] = { { "200 OK", LIST_BODY }, {} };
        Fixture f;

        (void) state;
        fixture_start(&f, script, false);
        fixture_run(&f, 1, true);
        assert_int_equal(f.owner.health_calls, 1);
        assert_true(f.owner.healthy[0]);
        assert_int_equal(f.owner.changes, 1);
        assert_non_null(kube_watch_object(f.watch));
        fixture_stop(&f);
}

static void test_health_follows_failures(void **state) {
        static const Reply script[] = {
                { "500 Internal Server Error", "{\"message\":\"boom\"}" },
                { "500 Internal Server Error", "{\"message\":\"boom\"}" },
                { "503 Service Unavailable", "{\"message\":\"later\"}" },
                { "200 OK", LIST_BODY },
                {},
        };
        Fixture f;

        (void) state;
        fixture_start(&f, script, false);
        fixture_run(&f, 4, true);
        /* Failing; the same failure again says nothing new; failing
         * differently; recovered and listed at once, one call. */
        assert_int_equal(f.owner.health_calls, 3);
        assert_false(f.owner.healthy[0]);
        assert_string_equal(f.owner.reason[0], "configmap openshift-config/registry-cas: list failed: HTTP 500: boom");
        assert_false(f.owner.healthy[1]);
        assert_string_equal(f.owner.reason[1], "configmap openshift-config/registry-cas: list failed: HTTP 503: later");
        assert_true(f.owner.healthy[2]);
        assert_int_equal(f.owner.changes, 1);
        fixture_stop(&f);
}

static void test_health_when_optional_is_absent(void **state) {
        static const Reply script[] = { { "403 Forbidden", "{\"message\":\"no\"}" }, {} };
        Fixture f;

        (void) state;
        fixture_start(&f, script, true);
        /* Absent counts as listed; the next look is minutes away. */
        fixture_run(&f, 1, false);
        assert_int_equal(f.owner.health_calls, 1);
        assert_true(f.owner.healthy[0]);
        assert_null(kube_watch_object(f.watch));
        fixture_stop(&f);
}

/* Run until the server has answered n_requests scripted requests and seen
 * n_watches watch requests (scripted or the final silent one). */
static void run_until(Fixture *f, unsigned n_requests, unsigned n_watches) {
        for (int i = 0; i < 200; i++) {
                if (f->server.n_requests >= n_requests && f->server.n_watches >= n_watches)
                        break;
                assert_true(sd_event_run(f->event, 50 * USEC_PER_MSEC) >= 0);
        }
        assert_int_equal(f->server.n_requests, n_requests);
        assert_int_equal(f->server.n_watches, n_watches);
        for (int i = 0; i < 5; i++)
                assert_true(sd_event_run(f->event, 20 * USEC_PER_MSEC) >= 0);
}

#define LIST_WITH(rv, item)                                                                             \
        "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"" rv "\"},"  \
        "\"items\":[" item "]}"

/* A list whose resourceVersion could never be sent back is a failed list,
 * and the next attempt lists again; before, it was taken, every watch
 * request failed to build its URL and no request left again. */
static void test_bad_list_rv_relists(void **state) {
        static const Reply script[] = {
                { "200 OK", LIST_WITH("7&watch=0", "") },
                { "200 OK", LIST_BODY },
                {},
        };
        const char *reason = NULL;
        Fixture f;

        (void) state;
        fixture_start(&f, script, false);
        run_until(&f, 2, 1);
        assert_false(f.owner.healthy[0]);
        assert_string_equal(f.owner.reason[0], "configmap openshift-config/registry-cas: list failed: malformed ConfigMapList: "
                                               "the list's metadata.resourceVersion is not a valid resourceVersion");
        assert_true(kube_watch_healthy(f.watch, &reason));
        assert_string_equal(kube_watch_resource_version(f.watch), "7");
        fixture_stop(&f);
}

/* The same for a bookmark: the watch relists instead of wedging. */
static void test_bad_bookmark_rv_relists(void **state) {
        static const Reply script[] = {
                { "200 OK", LIST_BODY },
                { "200 OK", "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\","
                            "\"metadata\":{\"resourceVersion\":\"8 9\"}}}\n" },
                { "200 OK", LIST_WITH("9", "{\"metadata\":{\"name\":\"registry-cas\",\"resourceVersion\":\"9\"},\"data\":{}}") },
                {},
        };
        const char *reason = NULL;
        Fixture f;

        (void) state;
        fixture_start(&f, script, false);
        run_until(&f, 3, 2);
        assert_true(kube_watch_healthy(f.watch, &reason));
        assert_string_equal(kube_watch_resource_version(f.watch), "9");
        assert_string_equal(kube_object_rv(kube_watch_object(f.watch)), "9");
        fixture_stop(&f);
}

/* An object of the wrong kind, or with a field of the wrong type, is not
 * taken: the last good one stays, health says which field, and a good one
 * later heals it. */
static void test_refused_objects_keep_last_good(void **state) {
        static const Reply script[] = {
                { "200 OK", LIST_BODY },
                { "200 OK", "{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Secret\",\"apiVersion\":\"v1\","
                            "\"metadata\":{\"name\":\"registry-cas\",\"resourceVersion\":\"8\"},\"data\":{}}}\n"
                            "{\"type\":\"DELETED\",\"object\":{\"kind\":\"Secret\",\"apiVersion\":\"v1\","
                            "\"metadata\":{\"name\":\"registry-cas\",\"resourceVersion\":\"9\"}}}\n" },
                { "200 OK", "{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\","
                            "\"metadata\":{\"name\":\"registry-cas\",\"resourceVersion\":\"10\"},\"data\":{\"k\":5}}}\n" },
                {},
        };
        const char *reason = NULL;
        Fixture f;

        (void) state;
        fixture_start(&f, script, false);
        kube_watch_set_check(f.watch, kube_check_configmap);
        run_until(&f, 3, 3);
        assert_false(kube_watch_healthy(f.watch, &reason));
        assert_string_equal(reason, "configmap openshift-config/registry-cas: data.k is a number, not a string; "
                                    "keeping the last good one");
        assert_true(kube_watch_good(f.watch));
        assert_string_equal(kube_object_rv(kube_watch_object(f.watch)), "7");
        /* The stream moved on all the same. */
        assert_string_equal(kube_watch_resource_version(f.watch), "10");
        /* Said once for the wrong kind (the DELETED of the same kind says
         * the same), once for the field. */
        assert_string_equal(f.owner.reason[1], "configmap openshift-config/registry-cas: kind is \"Secret\", not "
                                               "\"ConfigMap\"; keeping the last good one");
        assert_string_equal(f.owner.reason[2], reason);
        assert_int_equal(f.owner.health_calls, 3);
        assert_int_equal(f.owner.changes, 1);
        fixture_stop(&f);
}

/* A first list whose object fails has no last good: listed, not good. */
static void test_first_object_refused(void **state) {
        static const Reply script[] = {
                { "200 OK", LIST_WITH("7", "{\"metadata\":{\"name\":\"registry-cas\",\"resourceVersion\":\"7\"},"
                                           "\"binaryData\":{\"k\":\"!!\"}}") },
                {},
        };
        const char *reason = NULL;
        Fixture f;

        (void) state;
        fixture_start(&f, script, false);
        kube_watch_set_check(f.watch, kube_check_configmap);
        run_until(&f, 1, 1);
        assert_true(kube_watch_synced(f.watch));
        assert_false(kube_watch_good(f.watch));
        assert_null(kube_watch_object(f.watch));
        assert_false(kube_watch_healthy(f.watch, &reason));
        assert_string_equal(reason, "configmap openshift-config/registry-cas: binaryData.k is not base64; "
                                    "nothing taken from it yet");
        fixture_stop(&f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_health_on_first_list),
                cmocka_unit_test(test_health_follows_failures),
                cmocka_unit_test(test_health_when_optional_is_absent),
                cmocka_unit_test(test_bad_list_rv_relists),
                cmocka_unit_test(test_bad_bookmark_rv_relists),
                cmocka_unit_test(test_refused_objects_keep_last_good),
                cmocka_unit_test(test_first_object_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
