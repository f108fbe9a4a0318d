/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "health.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"

struct Health {
        Httpd *httpd;
        time_t start_time;
        AgentStatus status;            /* the last one published */
        const char *report_url;        /* NULL when not reporting */
        const ReporterStats *reporter; /* NULL when not reporting */
};

/* Health answers are about now: no proxy or browser may serve a stale one. */
static const char *const no_store[] = { "Cache-Control", "no-store", NULL };

static int reply_readyz(Health *h, HttpdRequest *req) {
        _cleanup_free_ char *text = NULL;
        const char *reason = h->status.not_ready_reason;

        if (h->status.ready)
                return httpd_reply_full(req, 200, "text/plain; charset=utf-8", "ready\n", 6, no_store);
        if (asprintf(&text, "not ready: %s\n", reason ? reason : "unknown") < 0)
                return -ENOMEM;
        return httpd_reply_full(req, 503, "text/plain; charset=utf-8", text, strlen(text), no_store);
}

static int reply_metrics(Health *h, HttpdRequest *req) {
        _cleanup_free_ char *body = NULL;
        MetricsInfo info = {
                .version = h->status.version,
                .source_kind = h->status.source_kind,
                .ready = h->status.ready,
                .start_time = h->start_time,
                .reporter = h->reporter,
        };
        size_t size;
        int r;

        r = metrics_render(h->status.state, &info, &body, &size);
        if (r < 0)
                return r;
        return httpd_reply_full(req, 200, METRICS_CONTENT_TYPE, body, size, no_store);
}

static int reply_status(Health *h, HttpdRequest *req) {
        _cleanup_free_ char *body = NULL;
        json_auto_t *doc = NULL;

        doc = status_json(&h->status, h->start_time, h->report_url, h->reporter);
        if (!doc)
                return -ENOMEM;
        body = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (!body)
                return -ENOMEM;
        /* A newline at the end, for people reading it with curl. */
        size_t n = strlen(body);
        char *b = realloc(body, n + 2);
        if (!b)
                return -ENOMEM;
        body = b;
        memcpy(body + n, "\n", 2);
        return httpd_reply_full(req, 200, "application/json", body, n + 1, no_store);
}

static int on_request(HttpdRequest *req, void *userdata) {
        static const char *const allow[] = { "Allow", "GET, HEAD", NULL };
        Health *h = userdata;

        /* MHD sends a HEAD reply's headers (Content-Length included) without the body. */
        if (!streq(req->method, "GET") && !streq(req->method, "HEAD"))
                return httpd_reply_full(req, 405, "text/plain; charset=utf-8", "method not allowed\n", 19, allow);

        if (streq(req->path, "/healthz"))
                /* Reaching this line means the loop dispatched us: alive. */
                return httpd_reply_full(req, 200, "text/plain; charset=utf-8", "ok\n", 3, no_store);
        if (streq(req->path, "/readyz"))
                return reply_readyz(h, req);
        if (streq(req->path, "/metrics"))
                return reply_metrics(h, req);
        if (streq(req->path, "/status"))
                return reply_status(h, req);
        return httpd_reply_text(req, 404, "not found\n");
}

int health_new(sd_event *event, const char *listen, const AgentStatus *st, Health **ret) {
        /* The kubelet's probes, a scrape and an operator's curl, all from the
         * node's loopback, a few at a time: 256 is plenty, and with 16 KiB
         * per connection the whole costs at most 4 MiB (docs/connection-limits.md). */
        HttpdLimits limits = {
                .connections = 256,
                .idle_timeout_sec = 10,
                .memory_per_connection = 16 * 1024,
        };
        unsigned long long rlimit;
        char why[48] = "";
        Health *h;
        int r;

        assert(event);
        assert(listen);
        assert(st);
        assert(st->state);
        assert(ret);

        h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        h->start_time = time(NULL);
        h->status = *st;

        r = httpd_new_limited(event, listen, &limits, on_request, h, &h->httpd);
        if (r < 0) {
                free(h);
                return r;
        }
        /* Probes and scrapes send no body. */
        httpd_set_max_body(h->httpd, 4096);
        httpd_get_limits(h->httpd, &limits, &rlimit);
        if (rlimit > 0)
                (void) snprintf(why, sizeof why, " (RLIMIT_NOFILE %llu)", rlimit);
        log_info("Serving /healthz, /readyz, /metrics and /status on %s (port %u): at most %u connections%s, "
                 "idle ones closed after %u s",
                 listen, (unsigned) httpd_get_port(h->httpd), limits.connections, why, limits.idle_timeout_sec);
        *ret = h;
        return 0;
}

Health *health_free(Health *h) {
        if (!h)
                return NULL;
        httpd_free(h->httpd);
        free(h);
        return NULL;
}

void health_update(Health *h, const AgentStatus *st) {
        assert(h);
        assert(st);
        assert(st->state);
        h->status = *st;
}

void health_set_reporter(Health *h, const char *report_url, const ReporterStats *stats) {
        assert(h);
        h->report_url = report_url;
        h->reporter = stats;
}

uint16_t health_get_port(const Health *h) {
        return h ? httpd_get_port(h->httpd) : 0;
}
