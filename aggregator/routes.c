/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator.h"
#include "api.h"
#include "log.h"
#include "page.h"

#define JSON_TYPE "application/json"
#define REPORTS_PATH "/api/v1/reports"
#define NODES_PATH "/api/v1/nodes"

/* Nothing here may be cached by a proxy: every answer is a moment's view. */
static const char *const no_store[] = { "Cache-Control", "no-store", NULL };

/* json_pack() straight to a string; NULL on failure. */
static char *json_dumps_pack(const char *fmt, ...) {
        json_auto_t *j = NULL;
        va_list ap;

        va_start(ap, fmt);
        j = json_vpack_ex(NULL, 0, fmt, ap);
        va_end(ap);
        if (!j)
                return NULL;
        return json_dumps(j, JSON_COMPACT);
}

/* {"error": message}, with extra headers when given. */
static int reply_error(HttpdRequest *req, unsigned status, const char *message, const char *const *headers) {
        _cleanup_free_ char *body = json_dumps_pack("{s:s}", "error", message);

        if (!body)
                return -ENOMEM;
        return httpd_reply_full(req, status, JSON_TYPE, body, strlen(body), headers ? headers : no_store);
}

static int reject(Aggregator *a, HttpdRequest *req, RejectReason why, unsigned status, const char *message,
                  const char *node) {
        static const char *const unauthorized_headers[] = {
                "WWW-Authenticate", "Bearer realm=\"nodetrust\"", "Cache-Control", "no-store", NULL
        };

        a->stats.reports_rejected[why]++;
        aggregator_log_ratelimited(a, "Refused report%s%s: %s (%s)", node ? " from " : "", node ? node : "",
                                   message, reject_reason_to_string(why));
        return reply_error(req, status, message, why == REJECT_UNAUTHORIZED ? unauthorized_headers : NULL);
}

static int handle_report(Aggregator *a, HttpdRequest *req) {
        _cleanup_(report_freep) Report *report = NULL;
        _cleanup_free_ char *message = NULL, *body = NULL;
        uint64_t now = aggregator_now(a);
        char name[254];
        RejectReason why;
        bool is_new;
        Node *n;
        int r;

        /* Counted and authenticated in aggregator_handle_headers() already. */
        if (req->body_too_large) {
                _cleanup_free_ char *m = NULL;
                if (asprintf(&m, "report larger than %zu bytes", a->config.max_body) < 0)
                        m = NULL;
                return reject(a, req, REJECT_TOO_LARGE, 413, m ? m : "report too large", NULL);
        }

        r = report_parse(req->body, req->body_size, &report, &why, &message);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return reject(a, req, why, 400, message ? message : "invalid report", NULL);

        /* fleet_update takes the report over; keep the name for the answer. */
        snprintf(name, sizeof name, "%s", report->node);
        is_new = !fleet_get(a->fleet, name);
        r = fleet_update(a->fleet, &report, now);
        if (r == -ENOSPC) {
                char m[128];
                snprintf(m, sizeof m, "the aggregator keeps at most %zu nodes", a->fleet->max_nodes);
                return reject(a, req, REJECT_NODE_LIMIT, 503, m, name);
        }
        if (r < 0)
                return r;

        a->stats.reports_accepted++;
        rate_window_add(&a->stats.accepted_rate, now);
        aggregator_fleet_changed(a);
        if (is_new)
                log_info("New node %s (%zu nodes)", name, a->fleet->n_nodes);

        /* Written by hand, not packed by jansson (a tenth of the cost): a
         * node name is lowercase letters, digits, '-' and '.', a hash is
         * hex and the state a word, none of them needs escaping. */
        n = fleet_get(a->fleet, name);
        r = asprintf(&body, "{\"node\":\"%s\",\"state\":\"%s\",\"current_hash\":\"%s\"}", name,
                     node_state_to_string(fleet_node_state(a->fleet, n, now)), a->fleet->current_hash);
        if (r < 0) {
                body = NULL;
                return -ENOMEM;
        }
        return httpd_reply_take(req, 200, JSON_TYPE, &body, (size_t) r, no_store);
}

/* A 400 naming the query parameter that is wrong. */
static int bad_parameter(HttpdRequest *req, const char *parameter, const char *message) {
        _cleanup_free_ char *body = json_dumps_pack("{s:s, s:s}", "error", message, "parameter", parameter);

        if (!body)
                return -ENOMEM;
        return httpd_reply_full(req, 400, JSON_TYPE, body, strlen(body), no_store);
}

/* ?limit=: 1 to max, default when absent. -EINVAL for anything else. */
static int parse_limit(const char *s, size_t def, size_t max, size_t *ret) {
        unsigned long long v;
        char *end;

        if (!s) {
                *ret = def;
                return 0;
        }
        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end || v < 1 || v > max)
                return -EINVAL;
        *ret = (size_t) v;
        return 0;
}

static int handle_nodes(Aggregator *a, HttpdRequest *req) {
        _cleanup_free_ char *body = NULL;
        const char *filter = httpd_request_query(req, "state"), *limit_str = httpd_request_query(req, "limit"),
                   *token = httpd_request_query(req, "continue"), *why;
        char after[CONTINUE_TOKEN_MAX_NAME + 1];
        NodesQuery q = { .state = -1, .key = &a->continue_key };
        size_t size;
        int r;

        if (filter && *filter) {
                q.state = node_state_from_string(filter);
                if (q.state < 0)
                        return bad_parameter(req, "state", "state must be converged, lagging, failing or stale");
        }
        if (parse_limit(limit_str, API_NODES_DEFAULT_LIMIT, API_NODES_MAX_LIMIT, &q.limit) < 0) {
                char m[96];
                snprintf(m, sizeof m, "limit must be a number from 1 to at most %u (default %u)",
                         API_NODES_MAX_LIMIT, API_NODES_DEFAULT_LIMIT);
                return bad_parameter(req, "limit", m);
        }
        if (token) {
                if (continue_token_decode(&a->continue_key, token, q.state, after, &why) < 0)
                        return bad_parameter(req, "continue", why);
                q.after = after;
        }
        r = api_nodes_json(a->fleet, aggregator_now(a), &q, &body, &size);
        if (r < 0)
                return r;
        return httpd_reply_take(req, 200, JSON_TYPE, &body, size, no_store);
}

static int handle_node(Aggregator *a, HttpdRequest *req, const char *name) {
        _cleanup_free_ char *body = NULL;
        int r;

        r = api_node_json(a->fleet, aggregator_now(a), name, &body);
        if (r == -ENOENT)
                return reply_error(req, 404, "no such node", NULL);
        if (r < 0)
                return r;
        return httpd_reply_take(req, 200, JSON_TYPE, &body, strlen(body), no_store);
}

/* The fleet-wide views: one JSON document of the fleet now. */
typedef int (*FleetView)(const Fleet *f, uint64_t now, char **ret);

static int handle_view(Aggregator *a, HttpdRequest *req, FleetView view) {
        _cleanup_free_ char *body = NULL;
        int r;

        r = view(a->fleet, aggregator_now(a), &body);
        if (r < 0)
                return r;
        return httpd_reply_take(req, 200, JSON_TYPE, &body, strlen(body), no_store);
}

static int handle_metrics(Aggregator *a, HttpdRequest *req) {
        _cleanup_free_ char *body = NULL;
        size_t size;
        int r;

        r = metrics_render(a->fleet, &a->stats, aggregator_now(a), &body, &size);
        if (r < 0)
                return r;
        return httpd_reply_take(req, 200, METRICS_CONTENT_TYPE, &body, size, no_store);
}

static bool is_get(const HttpdRequest *req) {
        return streq(req->method, "GET") || streq(req->method, "HEAD");
}

static int method_not_allowed(HttpdRequest *req, const char *allow) {
        const char *const headers[] = { "Allow", allow, "Cache-Control", "no-store", NULL };

        return reply_error(req, 405, "method not allowed", headers);
}

int aggregator_handle_headers(HttpdRequest *req, void *userdata) {
        Aggregator *a = userdata;
        int r;

        assert(req);
        assert(a);

        if (!streq(req->path, REPORTS_PATH) || !streq(req->method, "POST")) {
                const char *cl = httpd_request_header(req, "Content-Length");

                /* Only a report has a body worth reading: answer any other
                 * request that comes with one from its headers, so nobody can
                 * make us buffer a body (up to the report limit, on every
                 * connection) that no route looks at. MHD closes such a
                 * connection; one without a body stays kept alive. */
                if ((cl && !streq(cl, "0")) || httpd_request_header(req, "Transfer-Encoding"))
                        return aggregator_handle_request(req, userdata);
                return 0;
        }

        a->stats.reports_received++;

        r = token_file_refresh(a->tokens);
        if (r < 0 && r != a->token_error)
                log_warning_errno(r, "Failed to re-read token file '%s', keeping the tokens read before",
                                  a->config.token_file);
        else if (r > 0)
                log_info("Token file '%s' changed, %zu tokens now accepted", a->config.token_file,
                         a->tokens->n_tokens);
        a->token_error = r < 0 ? r : 0;

        /* Before a byte of the body is read: a stranger cannot make us buffer
         * anything, and learns nothing, not even the size limit. */
        if (!token_file_check_authorization(a->tokens, httpd_request_header(req, "Authorization")))
                return reject(a, req, REJECT_UNAUTHORIZED, 401, "missing or wrong bearer token", NULL);
        return 0;
}

int aggregator_handle_request(HttpdRequest *req, void *userdata) {
        Aggregator *a = userdata;
        const char *p;

        assert(req);
        assert(a);

        p = req->path;

        if (streq(p, REPORTS_PATH)) {
                if (!streq(req->method, "POST"))
                        return method_not_allowed(req, "POST");
                return handle_report(a, req);
        }

        if (!is_get(req)) {
                bool known = streq(p, "/") || streq(p, "/index.html") || streq(p, "/healthz") ||
                             streq(p, "/metrics") || streq(p, NODES_PATH) || streq(p, "/api/v1/summary") ||
                             streq(p, "/api/v1/registries") || streq(p, "/api/v1/rollout") ||
                             strncmp(p, NODES_PATH "/", strlen(NODES_PATH "/")) == 0;
                if (known)
                        return method_not_allowed(req, "GET, HEAD");
                return reply_error(req, 404, "not found", NULL);
        }

        if (streq(p, "/healthz"))
                /* Answered by the loop itself: a stalled loop cannot say ok. */
                return httpd_reply_full(req, 200, "text/plain; charset=utf-8", "ok\n", 3, no_store);
        if (streq(p, "/") || streq(p, "/index.html"))
                return page_reply(req);
        if (streq(p, "/metrics"))
                return handle_metrics(a, req);
        if (streq(p, "/api/v1/summary"))
                return handle_view(a, req, api_summary_json);
        if (streq(p, "/api/v1/registries"))
                return handle_view(a, req, api_registries_json);
        if (streq(p, "/api/v1/rollout"))
                return handle_view(a, req, api_rollout_json);
        if (streq(p, NODES_PATH))
                return handle_nodes(a, req);
        if (strncmp(p, NODES_PATH "/", strlen(NODES_PATH "/")) == 0)
                return handle_node(a, req, p + strlen(NODES_PATH "/"));
        return reply_error(req, 404, "not found", NULL);
}
