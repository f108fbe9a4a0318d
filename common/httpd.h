/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A small HTTP server: libmicrohttpd in external-poll mode, driven by an
 * sd_event loop. No threads: MHD's epoll fd is an sd_event io source and
 * MHD's own timeout re-arms an sd_event timer, so a stalled loop answers
 * nothing (which is what a liveness probe wants).
 *
 * The handler is called once per request, after the whole body (if any) has
 * arrived, and must answer with one of the httpd_reply*() calls. Returning a
 * negative errno without replying sends a 500. A body over the limit is not
 * read: the handler sees body_too_large (and an empty body) so it can count
 * it or answer 401 first; if it does not reply, the client gets a 413.
 *
 *   static int handle(HttpdRequest *req, void *userdata) {
 *           if (streq(req->path, "/healthz"))
 *                   return httpd_reply_text(req, 200, "ok\n");
 *           return httpd_reply_text(req, 404, "not found\n");
 *   }
 *   r = httpd_new(event, "127.0.0.1:9447", handle, m, &m->httpd);
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "httpd-listen.h" /* httpd_parse_listen() */
#include "httpd-reply.h"  /* HttpdRequest, httpd_reply*() */

typedef struct Httpd Httpd;

typedef int (*HttpdHandler)(HttpdRequest *req, void *userdata);

/* Default request body limit; bigger bodies get 413 (see httpd_set_max_body). */
#define HTTPD_DEFAULT_MAX_BODY (64U * 1024U)

/*
 * What one server holds at most (docs/connection-limits.md):
 *
 * - connections: open at once. Lowered, with the reason, when RLIMIT_NOFILE
 *   leaves fewer descriptors (64 are kept for the rest of the process).
 *   Past seven eighths of it, each new connection closes the one that has
 *   waited longest for a request (idle, or still sending its headers), so
 *   clients that connect and stall cannot lock out a probe: a client
 *   asking something always gets a slot unless every slot is answering.
 * - idle_timeout_sec: a connection that sends or receives nothing for
 *   this long is closed, whatever its state (keep-alive, half a request,
 *   a stalled body, a reply nobody reads).
 * - memory_per_connection: request line, headers and I/O buffers; a
 *   request whose headers do not fit gets 431. Bodies are limited apart
 *   (httpd_set_max_body).
 *
 * Zero in any field means its default.
 */
typedef struct HttpdLimits {
        unsigned connections;
        unsigned idle_timeout_sec;
        size_t memory_per_connection;
} HttpdLimits;

#define HTTPD_DEFAULT_CONNECTIONS 256U
#define HTTPD_DEFAULT_IDLE_TIMEOUT_SEC 10U
#define HTTPD_DEFAULT_CONNECTION_MEMORY (16U * 1024U)
#define HTTPD_LIMITS_DEFAULT                                        \
        {                                                           \
                .connections = HTTPD_DEFAULT_CONNECTIONS,           \
                .idle_timeout_sec = HTTPD_DEFAULT_IDLE_TIMEOUT_SEC, \
                .memory_per_connection = HTTPD_DEFAULT_CONNECTION_MEMORY, \
        }

/* Start a server on listen ("ADDR:PORT"; port 0 picks a free one) on event e,
 * with the default limits. Fails with the cause: -EADDRINUSE for a busy
 * address, -EMFILE when out of descriptors, and so on. */
int httpd_new(sd_event *e, const char *listen, HttpdHandler handler, void *userdata, Httpd **ret);

/* httpd_new() with limits (NULL: the defaults). */
int httpd_new_limited(sd_event *e, const char *listen, const HttpdLimits *limits, HttpdHandler handler,
                      void *userdata, Httpd **ret);

/* The limits in effect; *ret_rlimit_nofile (if given) is the RLIMIT_NOFILE
 * soft limit that lowered the connection limit, or 0 when it did not. */
void httpd_get_limits(Httpd *h, HttpdLimits *ret, unsigned long long *ret_rlimit_nofile);

/* Stop the server, close every connection, free everything; NULL is fine. */
Httpd *httpd_free(Httpd *h);
static inline void httpd_freep(Httpd **h) {
        httpd_free(*h);
}

/* Largest request body accepted; larger ones get 413 without being read
 * when they announce Content-Length, or as soon as they exceed it. */
void httpd_set_max_body(Httpd *h, size_t max);

/* Optionally call handler as soon as a request's headers are in, before any
 * body is read (req->body is "" then). If it replies, the request ends there
 * and the body is never read: a way to refuse an unauthenticated upload
 * without buffering it. If it does not, the request goes on as usual. */
void httpd_set_header_handler(Httpd *h, HttpdHandler handler);

/* The port actually bound (useful after asking for port 0). */
uint16_t httpd_get_port(Httpd *h);
