/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "httpd.h"
#include "log.h"

/* Descriptors left to the rest of the process (journal, inotify, timers,
 * the agent's outgoing HTTP) when RLIMIT_NOFILE caps the connections. */
#define HTTPD_FD_RESERVE 64U

/* One accepted connection, from MHD's "started" notification to "closed". */
typedef struct HttpdConn HttpdConn;
struct HttpdConn {
        int fd;
        bool busy;      /* a request is under way: never evicted */
        bool evicted;   /* shut down by us; MHD closes it next */
        HttpdConn *prev, *next; /* in Httpd.idle while neither */
};

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
        HttpdLimits limits;      /* as in effect (connections maybe lowered) */
        unsigned long long rlimit_nofile; /* the soft limit that lowered them, or 0 */
        unsigned connections;    /* open now */
        unsigned high_water;     /* above this many, a new one evicts the longest idle */
        HttpdConn *idle_head, *idle_tail; /* waiting for a request, longest waiting first */
        uint64_t warned_usec;    /* last resource warning, CLOCK_MONOTONIC */
        bool closed_some;        /* a connection closed during this MHD_run() */
};

/* Per-request state, kept in MHD's con_cls between calls of the access handler. */
typedef struct Upload {
        char *buf;
        size_t size;
        size_t alloc;
        bool answered;  /* a reply (413) went out before the body was read */
        bool too_large;
} Upload;

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

static void idle_unlink(Httpd *h, HttpdConn *k) {
        if (k->prev)
                k->prev->next = k->next;
        else if (h->idle_head == k)
                h->idle_head = k->next;
        if (k->next)
                k->next->prev = k->prev;
        else if (h->idle_tail == k)
                h->idle_tail = k->prev;
        k->prev = k->next = NULL;
}

static void idle_append(Httpd *h, HttpdConn *k) {
        k->prev = h->idle_tail;
        k->next = NULL;
        if (h->idle_tail)
                h->idle_tail->next = k;
        else
                h->idle_head = k;
        h->idle_tail = k;
}

static HttpdConn *conn_of(struct MHD_Connection *c) {
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        return info ? info->socket_context : NULL;
}

/* Close the connection that has waited longest for a request (idle, or
 * still sending its headers). shutdown() rather than close(): MHD still
 * owns the descriptor, sees end of file on it and closes it as if the
 * client had gone, on this same turn of the loop or the next. */
static void evict_longest_idle(Httpd *h, HttpdConn *except) {
        HttpdConn *k = h->idle_head;

        if (!k || k == except)
                return;
        idle_unlink(h, k);
        k->evicted = true;
        (void) shutdown(k->fd, SHUT_RDWR);
        log_debug("httpd: %u connections open, closed the longest idle one", h->connections);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
        Httpd *h = cls;
        HttpdConn *k = *socket_context;

        if (code == MHD_CONNECTION_NOTIFY_STARTED) {
                const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

                h->connections++;
                k = calloc(1, sizeof *k);
                if (!k || !info) {
                        /* Untracked: it never gets evicted, the idle timeout still closes it. */
                        free(k);
                        return;
                }
                k->fd = info->connect_fd;
                *socket_context = k;
                idle_append(h, k);
                /* Keep a slot free for the next client: whoever holds
                 * connections without asking anything loses the oldest. */
                if (h->connections > h->high_water)
                        evict_longest_idle(h, k);
                return;
        }

        /* MHD_CONNECTION_NOTIFY_CLOSED */
        if (h->connections > 0)
                h->connections--;
        h->closed_some = true;
        if (k) {
                if (!k->busy && !k->evicted)
                        idle_unlink(h, k);
                free(k);
                *socket_context = NULL;
        }
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
                r = httpd_reply_too_large(c);
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
                HttpdConn *k = conn_of(c);

                /* A request under way is never evicted: only the idle timeout ends it. */
                if (k && !k->busy && !k->evicted) {
                        idle_unlink(h, k);
                        k->busy = true;
                }
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
        Httpd *h = cls;
        HttpdConn *k = conn_of(c);
        Upload *u = *con_cls;

        (void) toe;
        /* Answered: a kept-alive connection waits for its next request, last in line. */
        if (k && k->busy) {
                k->busy = false;
                idle_append(h, k);
        }
        if (u) {
                free(u->buf);
                free(u);
                *con_cls = NULL;
        }
}

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
        _cleanup_free_ char *m = NULL;
        Httpd *h = cls;
        uint64_t now;

        if (vasprintf(&m, fmt, ap) < 0)
                return;
        m[strcspn(m, "\n")] = 0;
        /* Running out of descriptors or memory stops accepting, which the
         * owner cannot see from here: say so above debug (unlike the rest
         * of common/), once a minute at most, in MHD's words ("Too many
         * open files"). Everything else a client can cause is debug. */
        if (strstr(m, "resource limit") || strstr(m, "Error accepting connection") ||
            strstr(m, "Error allocating memory")) {
                now = now_usec();
                if (h->warned_usec == 0 || now - h->warned_usec >= 60 * USEC_PER_SEC) {
                        h->warned_usec = now;
                        log_warning("HTTP server on port %u: %s", (unsigned) h->port, m);
                        return;
                }
        }
        log_debug("httpd: %s", m);
}

/* Let MHD do all the work it can, then wake up again when MHD says a
 * connection times out (or at once, when it still has buffered input). */
static int httpd_dispatch(Httpd *h) {
        MHD_UNSIGNED_LONG_LONG ms = 0;
        uint64_t now;
        int r;

        h->closed_some = false;
        MHD_run(h->daemon);

        /* At its connection limit, or after accept() failed for want of
         * descriptors, MHD takes the listening socket out of its epoll set
         * and puts it back only at the start of a later MHD_run(). Nothing
         * wakes us for that: once the connections that filled it closed,
         * no event is left, and the server stopped accepting for good (or
         * until the next timeout). A connection closed: run again now. */
        if (h->closed_some)
                ms = 0;
        else if (MHD_get_timeout(h->daemon, &ms) != MHD_YES)
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

int httpd_new_limited(sd_event *e, const char *listen, const HttpdLimits *limits, HttpdHandler handler,
                      void *userdata, Httpd **ret) {
        _cleanup_(httpd_freep) Httpd *h = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_storage ss;
        const union MHD_DaemonInfo *info;
        size_t len;
        int r, epfd;

        if (!e || !handler || !ret)
                return -EINVAL;
        r = httpd_parse_listen(listen, &ss, &len);
        if (r < 0)
                return r;

        h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        h->event = sd_event_ref(e);
        h->handler = handler;
        h->userdata = userdata;
        h->max_body = HTTPD_DEFAULT_MAX_BODY;
        h->limits = limits ? *limits : (HttpdLimits) HTTPD_LIMITS_DEFAULT;
        if (h->limits.connections == 0)
                h->limits.connections = HTTPD_DEFAULT_CONNECTIONS;
        if (h->limits.idle_timeout_sec == 0)
                h->limits.idle_timeout_sec = HTTPD_DEFAULT_IDLE_TIMEOUT_SEC;
        if (h->limits.memory_per_connection == 0)
                h->limits.memory_per_connection = HTTPD_DEFAULT_CONNECTION_MEMORY;
        h->limits.connections = httpd_connections_allowed(h->limits.connections, HTTPD_FD_RESERVE, &h->rlimit_nofile);
        /* An eighth of the slots stays free for newcomers (see on_connection). */
        h->high_water = h->limits.connections - h->limits.connections / 8;
        if (h->high_water == h->limits.connections && h->high_water > 1)
                h->high_water--;

        fd = httpd_listen_socket(&ss, len);
        if (fd < 0)
                return fd;

        /* The logger goes first so that MHD never writes to stderr on its
         * own. The per-connection memory pool holds the request line and
         * headers (a bigger header set gets 431) and the read and write
         * buffers; bodies are copied out of it (upload_append). No limit
         * per address: every client of the health endpoint is on the
         * loopback, many agents may share one address translated on the way
         * to the aggregator, and eviction already keeps one client from
         * locking out the others. */
        errno = 0;
        h->daemon = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_access, h,
                                     MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
                                     MHD_OPTION_LISTEN_SOCKET, fd,
                                     MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                                     MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
                                     MHD_OPTION_CONNECTION_LIMIT, h->limits.connections,
                                     MHD_OPTION_CONNECTION_TIMEOUT, h->limits.idle_timeout_sec,
                                     MHD_OPTION_CONNECTION_MEMORY_LIMIT, h->limits.memory_per_connection,
                                     MHD_OPTION_END);
        if (!h->daemon) {
                /* MHD closes the listening socket on some failures and not
                 * on others: close it only if it is still ours. */
                r = errno > 0 ? -errno : -EIO;
                if (fcntl(fd, F_GETFD) < 0)
                        fd = -EBADF;
                return r;
        }
        fd = -EBADF; /* MHD's now: MHD_stop_daemon() closes it */

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

int httpd_new(sd_event *e, const char *listen, HttpdHandler handler, void *userdata, Httpd **ret) {
        return httpd_new_limited(e, listen, NULL, handler, userdata, ret);
}

void httpd_get_limits(Httpd *h, HttpdLimits *ret, unsigned long long *ret_rlimit_nofile) {
        assert(h);
        assert(ret);

        *ret = h->limits;
        if (ret_rlimit_nofile)
                *ret_rlimit_nofile = h->rlimit_nofile;
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
