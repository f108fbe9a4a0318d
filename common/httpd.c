/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "cleanup.h"
#include "httpd.h"
#include "log.h"

/* Enough for probes, scrapes and a fleet of agents on one process; stays
 * under the usual RLIMIT_NOFILE soft limit of 1024. */
#define HTTPD_CONNECTION_LIMIT 900U
/* Idle keep-alive and slow clients are dropped after this many seconds, so
 * a client that trickles bytes cannot hold a connection slot for long. */
#define HTTPD_CONNECTION_TIMEOUT 15U

struct Httpd {
        sd_event *event;
        struct MHD_Daemon *daemon;
        sd_event_source *io;
        sd_event_source *timer;
        HttpdHandler handler;
        HttpdHandler header_handler;
        void *userdata;
        size_t max_body;
        uint16_t port;
};

/* Per-request state, kept in MHD's con_cls between calls of the access handler. */
typedef struct Upload {
        char *buf;
        size_t size;
        size_t alloc;
        bool answered;  /* a reply (413) went out before the body was read */
        bool too_large;
} Upload;

int httpd_parse_listen(const char *listen, void *ret_sockaddr_storage, size_t *ret_len) {
        struct sockaddr_storage *ss = ret_sockaddr_storage;
        char host[INET6_ADDRSTRLEN + 1];
        const char *colon, *port_str;
        unsigned long port;
        char *end;
        size_t n;

        /* listen may be NULL: that is -EINVAL, like any other bad value. */
        assert(ret_sockaddr_storage);
        assert(ret_len);

        if (!listen || !*listen)
                return -EINVAL;

        if (listen[0] == '[') {
                const char *close = strchr(listen, ']');
                if (!close || close[1] != ':')
                        return -EINVAL;
                n = (size_t) (close - listen - 1);
                if (n == 0 || n >= sizeof host)
                        return -EINVAL;
                memcpy(host, listen + 1, n);
                host[n] = 0;
                port_str = close + 2;
        } else {
                colon = strrchr(listen, ':');
                if (!colon || strchr(listen, ':') != colon)
                        return -EINVAL; /* a bare IPv6 address needs brackets */
                n = (size_t) (colon - listen);
                if (n == 0 || n >= sizeof host)
                        return -EINVAL;
                memcpy(host, listen, n);
                host[n] = 0;
                port_str = colon + 1;
        }

        /* Digits only: strtoul would take "+80", " 80" or "0x50". */
        if (port_str[0] < '0' || port_str[0] > '9' || strlen(port_str) > 5)
                return -EINVAL;
        errno = 0;
        port = strtoul(port_str, &end, 10);
        if (errno || *end || port > 65535)
                return -EINVAL;

        memset(ss, 0, sizeof *ss);
        if (listen[0] == '[') {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) ss;
                if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
                        return -EINVAL;
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port = htons((uint16_t) port);
                *ret_len = sizeof *sin6;
        } else {
                struct sockaddr_in *sin = (struct sockaddr_in *) ss;
                if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
                        return -EINVAL;
                sin->sin_family = AF_INET;
                sin->sin_port = htons((uint16_t) port);
                *ret_len = sizeof *sin;
        }
        return 0;
}

const char *httpd_request_query(HttpdRequest *req, const char *key) {
        assert(req);
        assert(key);

        return MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, key);
}

const char *httpd_request_header(HttpdRequest *req, const char *name) {
        assert(req);
        assert(name);

        return MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, name);
}

static int queue_reply(struct MHD_Connection *c, unsigned status, const char *content_type,
                       const void *body, size_t len, const char *const *extra_headers) {
        struct MHD_Response *resp;
        enum MHD_Result ok;

        resp = MHD_create_response_from_buffer(len, (void *) (body ? body : ""), MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return -ENOMEM;
        if (content_type && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES)
                goto fail;
        for (size_t i = 0; extra_headers && extra_headers[i] && extra_headers[i + 1]; i += 2)
                if (MHD_add_response_header(resp, extra_headers[i], extra_headers[i + 1]) != MHD_YES)
                        goto fail;
        ok = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return ok == MHD_YES ? 0 : -EIO;
fail:
        MHD_destroy_response(resp);
        return -ENOMEM;
}

int httpd_reply_full(HttpdRequest *req, unsigned status, const char *content_type,
                     const void *body, size_t len, const char *const *extra_headers) {
        int r;

        assert(req);
        assert(body || len == 0);

        if (req->replied)
                return -EALREADY;
        r = queue_reply(req->connection, status, content_type, body, len, extra_headers);
        if (r >= 0)
                req->replied = true;
        return r;
}

int httpd_reply(HttpdRequest *req, unsigned status, const char *content_type, const void *body, size_t len) {
        assert(req);
        assert(body || len == 0);

        return httpd_reply_full(req, status, content_type, body, len, NULL);
}

int httpd_reply_text(HttpdRequest *req, unsigned status, const char *text) {
        assert(req);
        assert(text);

        return httpd_reply(req, status, "text/plain; charset=utf-8", text, strlen(text));
}

static int reply_too_large(struct MHD_Connection *c) {
        static const char msg[] = "{\"error\": \"request body too large\"}\n";
        /* The unread rest of the body makes the connection unusable. */
        static const char *const headers[] = { "Connection", "close", NULL };

        return queue_reply(c, 413, "application/json", msg, sizeof msg - 1, headers);
}

static int upload_append(Upload *u, const char *data, size_t size, size_t max) {
        if (size > max || u->size > max - size)
                return -EFBIG;
        if (u->size + size + 1 > u->alloc) {
                size_t a = u->alloc ? u->alloc : 4096;
                while (a < u->size + size + 1)
                        a *= 2;
                if (a > max + 1)
                        a = max + 1;
                char *p = realloc(u->buf, a);
                if (!p)
                        return -ENOMEM;
                u->buf = p;
                u->alloc = a;
        }
        memcpy(u->buf + u->size, data, size);
        u->size += size;
        u->buf[u->size] = 0;
        return 0;
}

/* Hand a complete request (or one whose body is too large) to the handler
 * and make sure it gets an answer. */
static enum MHD_Result httpd_dispatch_request(Httpd *h, Upload *u, struct MHD_Connection *c, const char *url,
                                              const char *method) {
        HttpdRequest req = {
                .method = method,
                .path = url,
                .body = u->buf && !u->too_large ? u->buf : "",
                .body_size = u->too_large ? 0 : u->size,
                .body_too_large = u->too_large,
                .connection = c,
        };
        int r;

        u->answered = true;
        r = h->handler(&req, h->userdata);
        if (req.replied)
                return MHD_YES;
        if (u->too_large)
                r = reply_too_large(c);
        else {
                if (r < 0)
                        log_debug_errno(r, "httpd: handler for %s %s failed", method, url);
                r = httpd_reply_text(&req, 500, "internal error\n");
        }
        return r >= 0 ? MHD_YES : MHD_NO;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls) {
        Httpd *h = cls;
        Upload *u = *con_cls;
        int r;

        (void) version;


        if (!u) {
                /* First call: headers only. Refuse an announced oversized
                 * body now, before a byte of it is read. */
                const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

                u = calloc(1, sizeof *u);
                if (!u)
                        return MHD_NO;
                *con_cls = u;
                if (h->header_handler) {
                        HttpdRequest req = {
                                .method = method,
                                .path = url,
                                .body = "",
                                .connection = c,
                        };
                        r = h->header_handler(&req, h->userdata);
                        if (req.replied) {
                                u->answered = true;
                                return MHD_YES;
                        }
                        if (r < 0) {
                                u->answered = true;
                                return httpd_reply_text(&req, 500, "internal error\n") >= 0 ? MHD_YES : MHD_NO;
                        }
                }
                if (cl) {
                        char *end;
                        errno = 0;
                        unsigned long long n = strtoull(cl, &end, 10);
                        if ((errno == ERANGE || (!errno && *end == 0)) && n > h->max_body) {
                                u->too_large = true;
                                return httpd_dispatch_request(h, u, c, url, method);
                        }
                }
                return MHD_YES;
        }

        if (u->answered) {
                *upload_data_size = 0;
                return MHD_YES;
        }

        if (*upload_data_size > 0) {
                if (!u->too_large) {
                        r = upload_append(u, upload_data, *upload_data_size, h->max_body);
                        if (r == -EFBIG) {
                                /* A chunked body without Content-Length grew past the
                                 * limit: drop what we have, answer 413 at the end, and
                                 * let the connection timeout bound an endless one. */
                                u->too_large = true;
                                free(u->buf);
                                u->buf = NULL;
                                u->size = u->alloc = 0;
                        } else if (r < 0)
                                return MHD_NO;
                }
                *upload_data_size = 0;
                return MHD_YES;
        }

        return httpd_dispatch_request(h, u, c, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
        Upload *u = *con_cls;

        (void) cls;
        (void) c;
        (void) toe;
        if (u) {
                free(u->buf);
                free(u);
                *con_cls = NULL;
        }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
        _cleanup_free_ char *m = NULL;

        (void) cls;
        if (vasprintf(&m, fmt, ap) < 0)
                return;
        m[strcspn(m, "\n")] = 0;
        log_debug("httpd: %s", m);
}

/* Let MHD do all the work it can, then wake up again when MHD says a
 * connection times out (or at once, when it still has buffered input). */
static int httpd_dispatch(Httpd *h) {
        MHD_UNSIGNED_LONG_LONG ms = 0;
        uint64_t now;
        int r;

        MHD_run(h->daemon);

        if (MHD_get_timeout(h->daemon, &ms) != MHD_YES)
                return sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);

        r = sd_event_now(h->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return r;
        if (ms > UINT64_MAX / 1000 - now)
                ms = (UINT64_MAX / 1000 - now) - 1;
        r = sd_event_source_set_time(h->timer, now + ms * 1000);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(h->timer, SD_EVENT_ONESHOT);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Httpd *h = userdata;
        int r;

        (void) s;
        (void) fd;
        (void) revents;
        r = httpd_dispatch(h);
        if (r < 0)
                log_debug_errno(r, "httpd: failed to re-arm timer");
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) usec;
        return on_io(s, -1, 0, userdata);
}

int httpd_new(sd_event *e, const char *listen, HttpdHandler handler, void *userdata, Httpd **ret) {
        _cleanup_(httpd_freep) Httpd *h = NULL;
        struct sockaddr_storage ss;
        const union MHD_DaemonInfo *info;
        unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
        uint16_t port;
        size_t len;
        int r, epfd;

        if (!e || !handler || !ret)
                return -EINVAL;
        r = httpd_parse_listen(listen, &ss, &len);
        if (r < 0)
                return r;

        if (ss.ss_family == AF_INET6) {
                const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) &ss;
                /* "[::]:PORT" means every address, IPv4 included. */
                flags |= IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
        }

        h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        h->event = sd_event_ref(e);
        h->handler = handler;
        h->userdata = userdata;
        h->max_body = HTTPD_DEFAULT_MAX_BODY;

        /* MHD binds MHD_OPTION_SOCK_ADDR, but reports the port argument as the
         * bound port unless it is 0: pass the same port. The logger goes
         * first so that MHD never writes to stderr on its own. */
        port = ntohs(ss.ss_family == AF_INET6 ? ((const struct sockaddr_in6 *) &ss)->sin6_port
                                              : ((const struct sockaddr_in *) &ss)->sin_port);
        h->daemon = MHD_start_daemon(flags, port, NULL, NULL, on_access, h,
                                     MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
                                     MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &ss,
                                     MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                                     MHD_OPTION_CONNECTION_LIMIT, HTTPD_CONNECTION_LIMIT,
                                     MHD_OPTION_CONNECTION_TIMEOUT, HTTPD_CONNECTION_TIMEOUT,
                                     MHD_OPTION_END);
        if (!h->daemon)
                /* MHD does not say why; a busy port is by far the common case. */
                return -EADDRINUSE;

        info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info)
                return -EIO;
        epfd = info->epoll_fd;
        info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
        if (!info)
                return -EIO;
        h->port = info->port;

        r = sd_event_add_io(e, &h->io, epfd, EPOLLIN, on_io, h);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(h->io, "httpd-io");

        /* Fire once right away so MHD's first timeout gets armed; 1 ms
         * accuracy because the default (250 ms) would delay buffered work. */
        r = sd_event_add_time(e, &h->timer, CLOCK_MONOTONIC, 0, 1000, on_timer, h);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(h->timer, "httpd-timer");

        *ret = TAKE_PTR(h);
        return 0;
}

void httpd_set_header_handler(Httpd *h, HttpdHandler handler) {
        if (h)
                h->header_handler = handler;
}

void httpd_set_max_body(Httpd *h, size_t max) {
        if (h)
                h->max_body = max;
}

uint16_t httpd_get_port(Httpd *h) {
        return h ? h->port : 0;
}

Httpd *httpd_free(Httpd *h) {
        if (!h)
                return NULL;
        h->io = sd_event_source_disable_unref(h->io);
        h->timer = sd_event_source_disable_unref(h->timer);
        if (h->daemon)
                MHD_stop_daemon(h->daemon);
        sd_event_unref(h->event);
        free(h);
        return NULL;
}
