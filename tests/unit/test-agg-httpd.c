/* SPDX-License-Identifier: MIT */
/*
 * common/httpd on a real loop and a real socket, one thread: the client
 * writes its whole request into the socket buffer, then the test turns the
 * sd_event loop until the answer has arrived.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "cleanup.h"
#include "httpd.h"

typedef struct Fixture {
        sd_event *event;
        Httpd *httpd;
        unsigned calls;
        unsigned header_calls;
        bool saw_too_large;
} Fixture;

/* Echo what the request looked like; some paths test the error handling. */
static int handler(HttpdRequest *req, void *userdata) {
        Fixture *f = userdata;
        char buf[512];
        const char *q, *h;

        f->calls++;
        if (req->body_too_large) {
                f->saw_too_large = true;
                return 0; /* no reply: httpd answers 413 */
        }
        if (strcmp(req->path, "/fail") == 0)
                return -EIO;
        if (strcmp(req->path, "/teapot") == 0) {
                static const char *const headers[] = { "X-Extra", "yes", NULL };
                return httpd_reply_full(req, 418, "text/plain", "short and stout", 15, headers);
        }
        q = httpd_request_query(req, "x");
        h = httpd_request_header(req, "x-test");
        snprintf(buf, sizeof buf, "method=%s path=%s x=%s header=%s size=%zu sum=%u\n", req->method, req->path,
                 q ? q : "-", h ? h : "-", req->body_size, 0U);
        if (req->body_size > 0) {
                unsigned sum = 0;
                for (size_t i = 0; i < req->body_size; i++)
                        sum = sum * 31 + (unsigned char) req->body[i];
                snprintf(buf, sizeof buf, "method=%s path=%s x=%s header=%s size=%zu sum=%u\n", req->method,
                         req->path, q ? q : "-", h ? h : "-", req->body_size, sum);
        }
        assert_int_equal(httpd_reply_text(req, 200, buf), 0);
        /* A second reply is refused, not sent. */
        assert_int_equal(httpd_reply_text(req, 500, "again"), -EALREADY);
        return 0;
}

/* Refuse /guarded without an X-Key header before its body is read. */
static int header_handler(HttpdRequest *req, void *userdata) {
        Fixture *f = userdata;

        f->header_calls++;
        assert_int_equal(req->body_size, 0);
        if (strcmp(req->path, "/guarded") == 0 && !httpd_request_header(req, "X-Key"))
                return httpd_reply_text(req, 403, "no key\n");
        return 0;
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);

        assert_non_null(f);
        assert_int_equal(sd_event_new(&f->event), 0);
        assert_int_equal(httpd_new(f->event, "127.0.0.1:0", handler, f, &f->httpd), 0);
        httpd_set_max_body(f->httpd, 200 * 1024);
        httpd_set_header_handler(f->httpd, header_handler);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        httpd_free(f->httpd);
        sd_event_unref(f->event);
        free(f);
        return 0;
}

/* Send request (with body appended when given), run the loop until the
 * server closes the connection; returns the whole response. */
static char *exchange(Fixture *f, const char *head, const char *body, size_t body_size) {
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(httpd_get_port(f->httpd)) };
        char *resp = NULL;
        size_t size = 0, sent = 0;
        int fd;

        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        assert_true(fd >= 0);
        assert_true(connect(fd, (struct sockaddr *) &sin, sizeof sin) == 0 || errno == EINPROGRESS);

        for (int rounds = 0; rounds < 2000; rounds++) {
                struct pollfd p = { .fd = fd, .events = POLLIN | (sent < strlen(head) + body_size ? POLLOUT : 0) };
                char buf[65536];
                ssize_t n;

                assert_true(sd_event_run(f->event, 5000) >= 0);
                if (poll(&p, 1, 0) <= 0)
                        continue;
                if (p.revents & POLLOUT) {
                        size_t hl = strlen(head);
                        if (sent < hl)
                                n = write(fd, head + sent, hl - sent);
                        else
                                n = write(fd, body + (sent - hl), body_size - (sent - hl));
                        if (n > 0)
                                sent += (size_t) n;
                }
                if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
                        n = read(fd, buf, sizeof buf);
                        if (n < 0 && errno == ECONNRESET)
                                break; /* a refused upload may end in a reset */
                        if (n <= 0)
                                break;
                        resp = realloc(resp, size + (size_t) n + 1);
                        memcpy(resp + size, buf, (size_t) n);
                        size += (size_t) n;
                        resp[size] = 0;
                }
        }
        close(fd);
        assert_non_null(resp);
        return resp;
}

static void test_parse_listen(void **state) {
        static const char *const good[] = { "127.0.0.1:9447", "0.0.0.0:0", "[::1]:65535", "[::]:80" };
        static const char *const bad[] = {
                "", "127.0.0.1", "localhost:80", "127.0.0.1:", ":80", "127.0.0.1:65536", "127.0.0.1:+80",
                "127.0.0.1: 80", "127.0.0.1:0x50", "::1:80", "[::1]80", "[::1]", "[]:80", "[127.0.0.1]:80",
                "1.2.3:80", "127.0.0.1:80:80", "127.0.0.1:999999",
        };
        struct sockaddr_storage ss;
        size_t len;

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                if (httpd_parse_listen(good[i], &ss, &len) != 0)
                        fail_msg("'%s' should parse", good[i]);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (httpd_parse_listen(bad[i], &ss, &len) != -EINVAL)
                        fail_msg("'%s' should not parse", bad[i]);
        assert_int_equal(httpd_parse_listen(NULL, &ss, &len), -EINVAL);

        assert_int_equal(httpd_parse_listen("[::1]:8080", &ss, &len), 0);
        assert_int_equal(ss.ss_family, AF_INET6);
        assert_int_equal(len, sizeof(struct sockaddr_in6));
        assert_int_equal(ntohs(((struct sockaddr_in6 *) &ss)->sin6_port), 8080);
}

static void test_new_errors(void **state) {
        _cleanup_(httpd_freep) Httpd *h = NULL, *h2 = NULL;
        sd_event *e = NULL;
        char listen[64];

        (void) state;
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(httpd_new(e, "localhost:0", handler, NULL, &h), -EINVAL);
        assert_int_equal(httpd_new(e, "127.0.0.1:0", handler, NULL, &h), 0);
        assert_true(httpd_get_port(h) > 0);
        /* The same port twice: the second cannot bind. */
        snprintf(listen, sizeof listen, "127.0.0.1:%u", httpd_get_port(h));
        assert_true(httpd_new(e, listen, handler, NULL, &h2) < 0);
        assert_null(h2);
        assert_null(httpd_free(NULL));
        h = httpd_free(h);
        sd_event_unref(e);
}

static void test_get(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *r = exchange(f,
                                          "GET /some/path?x=1%202&y=3 HTTP/1.1\r\nHost: t\r\nX-Test: hello\r\n"
                                          "Connection: close\r\n\r\n",
                                          NULL, 0);

        assert_non_null(strstr(r, "HTTP/1.1 200"));
        assert_non_null(strstr(r, "Content-Type: text/plain; charset=utf-8"));
        assert_non_null(strstr(r, "method=GET path=/some/path x=1 2 header=hello size=0"));
}

static void test_post_body(void **state) {
        Fixture *f = *state;
        size_t n = 150 * 1024;
        _cleanup_free_ char *body = malloc(n), *head = NULL, *r = NULL;
        char expect[128];
        unsigned sum = 0;

        for (size_t i = 0; i < n; i++) {
                body[i] = (char) ('a' + i % 26);
                sum = sum * 31 + (unsigned char) body[i];
        }
        assert_true(asprintf(&head, "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n"
                                    "Connection: close\r\n\r\n", n) > 0);
        r = exchange(f, head, body, n);
        snprintf(expect, sizeof expect, "method=POST path=/upload x=- header=- size=%zu sum=%u", n, sum);
        assert_non_null(strstr(r, "HTTP/1.1 200"));
        assert_non_null(strstr(r, expect));
        assert_int_equal(f->calls, 1);
}

static void test_too_large_announced(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *r = exchange(f,
                                          "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n",
                                          "x", 1);

        /* Answered at once, from the headers alone. */
        assert_non_null(strstr(r, "HTTP/1.1 413"));
        assert_true(f->saw_too_large);
        assert_int_equal(f->calls, 1);
}

static void test_too_large_chunked(void **state) {
        Fixture *f = *state;
        size_t chunk = 64 * 1024, n = 0;
        _cleanup_free_ char *body = malloc(5 * (chunk + 32)), *r = NULL;

        for (int i = 0; i < 4; i++) {
                n += (size_t) sprintf(body + n, "%zx\r\n", chunk);
                memset(body + n, 'z', chunk);
                n += chunk;
                n += (size_t) sprintf(body + n, "\r\n");
        }
        n += (size_t) sprintf(body + n, "0\r\n\r\n");
        r = exchange(f, "POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                     body, n);
        assert_non_null(strstr(r, "HTTP/1.1 413"));
        assert_true(f->saw_too_large);
}

static void test_handler_error_is_500(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *r = exchange(f, "GET /fail HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", NULL, 0);

        assert_non_null(strstr(r, "HTTP/1.1 500"));
}

static void test_extra_headers(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *r = exchange(f, "GET /teapot HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", NULL, 0);

        assert_non_null(strstr(r, "HTTP/1.1 418"));
        assert_non_null(strstr(r, "X-Extra: yes"));
        assert_non_null(strstr(r, "short and stout"));
}

static void test_keep_alive(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *r = exchange(f,
                                          "GET /one HTTP/1.1\r\nHost: t\r\n\r\n"
                                          "GET /two HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                                          NULL, 0);

        assert_non_null(strstr(r, "path=/one"));
        assert_non_null(strstr(r, "path=/two"));
        assert_int_equal(f->calls, 2);
}

static void test_header_handler(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *r1 = NULL, *r2 = NULL;

        /* The body is announced but never sent: the answer comes from the headers. */
        r1 = exchange(f, "POST /guarded HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n", NULL, 0);
        assert_non_null(strstr(r1, "HTTP/1.1 403"));
        assert_int_equal(f->calls, 0);
        assert_int_equal(f->header_calls, 1);

        r2 = exchange(f, "POST /guarded HTTP/1.1\r\nHost: t\r\nX-Key: k\r\nContent-Length: 3\r\n"
                         "Connection: close\r\n\r\nabc", NULL, 0);
        assert_non_null(strstr(r2, "HTTP/1.1 200"));
        assert_non_null(strstr(r2, "size=3"));
        assert_int_equal(f->calls, 1);
        assert_int_equal(f->header_calls, 2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_listen),
                cmocka_unit_test(test_new_errors),
                cmocka_unit_test_setup_teardown(test_get, setup, teardown),
                cmocka_unit_test_setup_teardown(test_post_body, setup, teardown),
                cmocka_unit_test_setup_teardown(test_too_large_announced, setup, teardown),
                cmocka_unit_test_setup_teardown(test_too_large_chunked, setup, teardown),
                cmocka_unit_test_setup_teardown(test_handler_error_is_500, setup, teardown),
                cmocka_unit_test_setup_teardown(test_extra_headers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_keep_alive, setup, teardown),
                cmocka_unit_test_setup_teardown(test_header_handler, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
