/* SPDX-License-Identifier: MIT */
/*
 * The curl glue against a tiny HTTP/1.1 server running on the same sd_event
 * loop: buffered bodies, the size cap, streaming lines split across chunks
 * and writes, error bodies in streaming mode, timeouts and refused connects.
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
#include "curl-request.h"

typedef struct Server {
        sd_event *event;
        int listen_fd;
        int port;
        sd_event_source *accept_src;
        /* One connection at a time is all the tests need. */
        int conn_fd;
        sd_event_source *conn_src, *later_src;
        char req[4096];
        size_t req_size;
        const char *later; /* bytes to send 50 ms after the first part */
} Server;

static void server_close_conn(Server *s) {
        s->conn_src = sd_event_source_disable_unref(s->conn_src);
        s->later_src = sd_event_source_disable_unref(s->later_src);
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

static int on_later(sd_event_source *src, uint64_t usec, void *userdata) {
        Server *s = userdata;
        (void) src;
        (void) usec;
        send_all(s->conn_fd, s->later);
        server_close_conn(s);
        return 0;
}

#define CHUNKED_HDR "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"

static void respond(Server *s, const char *path) {
        if (streq(path, "/body")) {
                send_all(s->conn_fd, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world");
        } else if (streq(path, "/big")) {
                static char big[8192];
                memset(big, 'x', sizeof big - 1);
                send_all(s->conn_fd, "HTTP/1.1 200 OK\r\nContent-Length: 8191\r\nConnection: close\r\n\r\n");
                send_all(s->conn_fd, big);
        } else if (streq(path, "/stream")) {
                /* "one\n" "tw" | "o\r\n\n" "three\n" "tail-without-newline" */
                send_all(s->conn_fd, CHUNKED_HDR "6\r\none\ntw\r\n");
                s->later = "4\r\no\r\n\n\r\n6\r\nthree\n\r\n4\r\ntail\r\n0\r\n\r\n";
                sd_event_add_time_relative(s->event, &s->later_src, CLOCK_MONOTONIC, 50000, 1, on_later, s);
                return;
        } else if (streq(path, "/gone")) {
                send_all(s->conn_fd, "HTTP/1.1 410 Gone\r\nContent-Length: 14\r\nConnection: close\r\n\r\n{\"code\":410}\n\n");
        } else if (streq(path, "/stall")) {
                return; /* never answer */
        } else if (streq(path, "/auth")) {
                bool ok = strstr(s->req, "\r\nAuthorization: Bearer s3cret\r\n") != NULL;
                send_all(s->conn_fd, ok ? "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                                        : "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        } else {
                send_all(s->conn_fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
        server_close_conn(s);
}

static int on_conn(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Server *s = userdata;
        char path[256];
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
        /* Stop reading; the response (or a stall) decides what happens next. */
        sd_event_source_set_enabled(s->conn_src, SD_EVENT_OFF);
        if (sscanf(s->req, "GET %255s ", path) != 1)
                strcpy(path, "/");
        respond(s, path);
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
        sd_event_add_io(s->event, &s->conn_src, c, EPOLLIN, on_conn, s);
        return 0;
}

static void server_start(Server *s, sd_event *e) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t l = sizeof a;

        *s = (Server){ .event = e, .conn_fd = -1 };
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

typedef struct Result {
        bool done;
        int error;
        long status;
        char body[256];
        char lines[8][64];
        size_t n_lines;
        long header_status;
        unsigned header_calls;
        unsigned lines_before_headers;
} Result;

static void on_done(CurlRequest *req, int error, void *userdata) {
        Result *res = userdata;

        res->done = true;
        res->error = error;
        res->status = curl_request_status(req);
        snprintf(res->body, sizeof res->body, "%s", curl_request_body(req, NULL));
}

static int on_headers(CurlRequest *req, long status, void *userdata) {
        Result *res = userdata;

        (void) req;
        res->header_status = status;
        res->header_calls++;
        return 0;
}

static int on_line(CurlRequest *req, char *line, size_t len, void *userdata) {
        Result *res = userdata;

        (void) req;
        if (res->header_calls == 0)
                res->lines_before_headers++;
        assert_int_equal(strlen(line), len);
        if (res->n_lines < ELEMENTSOF(res->lines))
                snprintf(res->lines[res->n_lines++], sizeof res->lines[0], "%s", line);
        return 0;
}

/* Run one request to completion on a fresh loop and server. */
static void run(const char *path, bool streaming, size_t max, uint64_t total_ms, const char *token, Result *res) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(curl_glue_freep) CurlGlue *g = NULL;
        _cleanup_(curl_request_freep) CurlRequest *req = NULL;
        Server s;
        char url[128];

        memset(res, 0, sizeof *res);
        assert_int_equal(sd_event_new(&e), 0);
        server_start(&s, e);
        assert_int_equal(curl_glue_new(e, &g), 0);
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s.port, path);
        assert_int_equal(curl_request_new(url, &req), 0);
        if (streaming)
                curl_request_set_line_callback(req, on_line, res);
        curl_request_set_headers_callback(req, on_headers, res);
        if (max)
                curl_request_set_max_size(req, max);
        if (token)
                assert_int_equal(curl_request_set_bearer(req, token), 0);
        assert_int_equal(curl_request_set_timeouts(req, 2000, total_ms), 0);
        assert_int_equal(curl_request_start(req, g, on_done, res), 0);
        assert_true(curl_request_running(req));

        for (int i = 0; i < 1000 && !res->done; i++)
                assert_true(sd_event_run(e, 100 * 1000) >= 0);
        assert_true(res->done);
        assert_false(curl_request_running(req));
        req = curl_request_free(req);
        server_stop(&s);
}

static void test_body(void **state) {
        Result res;
        (void) state;
        run("/body", false, 0, 5000, NULL, &res);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 200);
        assert_string_equal(res.body, "hello world");
        assert_int_equal(res.header_calls, 1);
        assert_int_equal(res.header_status, 200);
}

static void test_too_big(void **state) {
        Result res;
        (void) state;
        run("/big", false, 1024, 5000, NULL, &res);
        assert_int_equal(res.error, -EFBIG);
}

static void test_stream_lines(void **state) {
        Result res;
        (void) state;
        run("/stream", true, 0, 5000, NULL, &res);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 200);
        assert_int_equal(res.n_lines, 3);
        assert_int_equal(res.header_calls, 1);
        assert_int_equal(res.lines_before_headers, 0);
        assert_string_equal(res.lines[0], "one");
        assert_string_equal(res.lines[1], "two");
        assert_string_equal(res.lines[2], "three");
        /* The unterminated tail is not a line. */
        assert_string_equal(res.body, "tail");
}

static void test_stream_error_body(void **state) {
        Result res;
        (void) state;
        run("/gone", true, 0, 5000, NULL, &res);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 410);
        assert_int_equal(res.header_status, 410);
        assert_int_equal(res.n_lines, 0);
        assert_string_equal(res.body, "{\"code\":410}\n\n");
}

static void test_timeout(void **state) {
        Result res;
        (void) state;
        run("/stall", true, 0, 300, NULL, &res);
        assert_int_equal(res.error, -ETIMEDOUT);
        assert_int_equal(res.header_calls, 0);
}

static void test_bearer(void **state) {
        Result res;
        (void) state;
        run("/auth", false, 0, 5000, "s3cret", &res);
        assert_int_equal(res.status, 200);
        run("/auth", false, 0, 5000, "wrong", &res);
        assert_int_equal(res.status, 401);
}

static void test_refused(void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(curl_glue_freep) CurlGlue *g = NULL;
        _cleanup_(curl_request_freep) CurlRequest *req = NULL;
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t l = sizeof a;
        Result res = {};
        char url[128];
        int fd;

        (void) state;
        /* A port that was just free: bound, then closed without listening. */
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &a, sizeof a), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &a, &l), 0);
        close(fd);

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(curl_glue_new(e, &g), 0);
        snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
        assert_int_equal(curl_request_new(url, &req), 0);
        assert_int_equal(curl_request_start(req, g, on_done, &res), 0);
        for (int i = 0; i < 100 && !res.done; i++)
                assert_true(sd_event_run(e, 100 * 1000) >= 0);
        assert_int_equal(res.error, -ECONNREFUSED);
}

static void test_cancel_and_free_glue(void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        CurlGlue *g = NULL;
        CurlRequest *a = NULL, *b = NULL;
        Result ra = {}, rb = {};
        Server s;
        char url[128];

        (void) state;
        assert_int_equal(sd_event_new(&e), 0);
        server_start(&s, e);
        assert_int_equal(curl_glue_new(e, &g), 0);
        snprintf(url, sizeof url, "http://127.0.0.1:%d/stall", s.port);
        assert_int_equal(curl_request_new(url, &a), 0);
        assert_int_equal(curl_request_new(url, &b), 0);
        assert_int_equal(curl_request_start(a, g, on_done, &ra), 0);
        assert_int_equal(curl_request_start(a, g, on_done, &ra), -EBUSY);
        assert_int_equal(curl_request_start(b, g, on_done, &rb), 0);
        for (int i = 0; i < 5; i++)
                assert_true(sd_event_run(e, 20 * 1000) >= 0);
        /* A cancelled request never completes, and may be started again. */
        curl_request_cancel(a);
        assert_false(curl_request_running(a));
        curl_request_free(a);
        curl_request_free(b);
        curl_glue_free(g);
        assert_false(ra.done);
        assert_false(rb.done);
        server_stop(&s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_body),
                cmocka_unit_test(test_too_big),
                cmocka_unit_test(test_stream_lines),
                cmocka_unit_test(test_stream_error_body),
                cmocka_unit_test(test_timeout),
                cmocka_unit_test(test_bearer),
                cmocka_unit_test(test_refused),
                cmocka_unit_test(test_cancel_and_free_glue),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
