/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "health.h"
#include "httpd.h"
#include "log.h"
#include "manager.h"
#include "metrics.h"

struct Health {
        Manager *manager;
        Httpd *httpd;
        time_t start_time;
};

/* Health answers are about now: no proxy or browser may serve a stale one. */
static const char *const no_store[] = { "Cache-Control", "no-store", NULL };

static json_t *string_or_null(const char *s) {
        return s && *s ? json_string(s) : json_null();
}

static json_t *time_or_null(time_t t) {
        return t ? json_integer((json_int_t) t) : json_null();
}

/* Per enabled target: what a runtime reading that target gets. */
static json_t *registry_targets_json(const RegistryResult *r) {
        json_t *o = json_object();

        for (size_t k = 0; o && k < ELEMENTSOF(targets); k++) {
                const RegistryTargetResult *rt = &r->targets[k];
                if (!rt->enabled)
                        continue;
                if (json_object_set_new(o, targets[k].name,
                                        json_pack("{s:s, s:o}", "state", registry_target_state_to_string(rt->state),
                                                  "reason", string_or_null(rt->reason))) < 0) {
                        json_decref(o);
                        return NULL;
                }
        }
        return o;
}

static json_t *targets_json(const RuntimeStatus *rs) {
        json_t *o = json_object();

        for (size_t i = 0; o && i < ELEMENTSOF(targets); i++) {
                const TargetStatus *ts = &rs->targets[i];
                if (!ts->enabled)
                        continue;
                if (json_object_set_new(o, targets[i].name,
                                        json_pack("{s:s, s:o, s:o}", "state", target_state_to_string(ts->state),
                                                  "reason", string_or_null(ts->reason), "dir",
                                                  json_sprintf("/%s", targets[i].dir))) < 0) {
                        json_decref(o);
                        return NULL;
                }
        }
        return o;
}

static json_t *registry_json(const RegistryResult *r) {
        return json_pack("{s:s, s:o, s:s, s:o, s:o, s:o, s:i, s:b, s:b, s:o}",
                         "key", r->key,
                         "name", string_or_null(r->registry),
                         "state", registry_state_to_string(r->state),
                         "reason", string_or_null(r->reason),
                         "fingerprint", string_or_null(r->fingerprint),
                         "not_after", time_or_null(r->not_after),
                         "certificates", (int) r->n_certs,
                         "expired", r->expired,
                         "not_yet_valid", r->not_yet_valid,
                         "targets", r->registry ? registry_targets_json(r) : json_object());
}

static json_t *reporter_json(const StatusInfo *info) {
        const ReporterStats *rs = info->reporter;

        if (!rs)
                return json_null();
        return json_pack("{s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:i}",
                         "url", info->report_url ? info->report_url : "",
                         "reports_total", (json_int_t) rs->reports_total,
                         "failures_total", (json_int_t) rs->report_failures_total,
                         "last_success", time_or_null(rs->last_success),
                         "last_attempt", time_or_null(rs->last_attempt),
                         "last_status", rs->last_status ? json_integer(rs->last_status) : json_null(),
                         "last_error", rs->last_error ? json_string(strerror(-rs->last_error)) : json_null(),
                         "consecutive_failures", (int) rs->backoff);
}

json_t *health_status_json(const State *s, const StatusInfo *info) {
        json_auto_t *regs = json_array();
        json_t *root;

        if (!regs)
                return NULL;
        for (size_t i = 0; i < s->n_registries; i++)
                if (json_array_append_new(regs, registry_json(&s->registries[i])) < 0)
                        return NULL;

        /* The pull secret appears only as its state, a hash and a
         * secret-free reason: never its content. */
        root = json_pack("{s:o, s:s, s:b, s:o, s:o,"
                         " s:{s:s, s:o, s:I, s:o}, s:o,"
                         " s:b, s:b, s:o, s:o, s:o,"
                         " s:{s:I, s:I, s:I, s:I},"
                         " s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i},"
                         " s:o, s:O, s:o,"
                         " s:{s:s, s:o, s:o},"
                         " s:o}",
                         "node", string_or_null(info->node),
                         "version", info->version ? info->version : "unknown",
                         "ready", info->ready,
                         "not_ready_reason", info->ready ? json_null() : string_or_null(info->not_ready_reason),
                         "start_time", time_or_null(info->start_time),
                         "source",
                         "kind", info->source_kind ? info->source_kind : "unknown",
                         "origin", string_or_null(s->source_origin),
                         "generation", (json_int_t) s->generation,
                         "hash", string_or_null(s->source_hash),
                         "applied_hash", string_or_null(s->applied_hash),
                         "first_sync_done", s->first_sync_done,
                         "last_sync_ok", s->last_sync_ok,
                         "last_error", string_or_null(s->last_error),
                         "last_sync", time_or_null(s->last_sync),
                         "last_success", time_or_null(s->last_success),
                         "counters",
                         "syncs_total", (json_int_t) s->syncs_total,
                         "sync_failures_total", (json_int_t) s->sync_failures_total,
                         "files_written_total", (json_int_t) s->files_written_total,
                         "files_removed_total", (json_int_t) s->files_removed_total,
                         "counts",
                         "applied", (int) s->n_applied,
                         "refused", (int) s->n_refused,
                         "conflict", (int) s->n_conflicts,
                         "failed", (int) s->n_failed,
                         "shadowed", (int) s->n_shadowed,
                         "ignored", (int) s->n_ignored,
                         "inactive_targets", (int) s->n_inactive_targets,
                         "targets", targets_json(&s->runtime),
                         "registries", regs,
                         "soonest_expiry", time_or_null(state_soonest_expiry(s)),
                         "pull_secret",
                         "state", pull_secret_status_to_string(s->pull_secret_status),
                         "hash", string_or_null(s->pull_secret_hash),
                         "error", string_or_null(s->pull_secret_error),
                         "report", reporter_json(info));
        return root;
}

static bool health_ready(Health *h, const char **reason) {
        *reason = NULL;
        return manager_is_ready(h->manager, reason);
}

static const char *health_source_kind(Health *h) {
        Source *src = h->manager->source;
        return src && src->ops ? src->ops->kind : NULL;
}

static int reply_readyz(Health *h, HttpdRequest *req) {
        _cleanup_free_ char *text = NULL;
        const char *reason;

        if (health_ready(h, &reason))
                return httpd_reply_full(req, 200, "text/plain; charset=utf-8", "ready\n", 6, no_store);
        if (asprintf(&text, "not ready: %s\n", reason ? reason : "unknown") < 0)
                return -ENOMEM;
        return httpd_reply_full(req, 503, "text/plain; charset=utf-8", text, strlen(text), no_store);
}

static int reply_metrics(Health *h, HttpdRequest *req) {
        Reporter *rep = h->manager->reporter;
        _cleanup_free_ char *body = NULL;
        const char *reason;
        MetricsInfo info = {
                .version = NODETRUST_VERSION,
                .source_kind = health_source_kind(h),
                .ready = health_ready(h, &reason),
                .start_time = h->start_time,
                .reporter = rep ? reporter_get_stats(rep) : NULL,
        };
        size_t size;
        int r;

        r = metrics_render(&h->manager->state, &info, &body, &size);
        if (r < 0)
                return r;
        return httpd_reply_full(req, 200, METRICS_CONTENT_TYPE, body, size, no_store);
}

static int reply_status(Health *h, HttpdRequest *req) {
        Reporter *rep = h->manager->reporter;
        _cleanup_free_ char *body = NULL;
        json_auto_t *doc = NULL;
        const char *reason;
        StatusInfo info = {
                .node = h->manager->config->node_name,
                .version = NODETRUST_VERSION,
                .source_kind = health_source_kind(h),
                .start_time = h->start_time,
                .report_url = rep ? h->manager->config->report_url : NULL,
                .reporter = rep ? reporter_get_stats(rep) : NULL,
        };

        info.ready = health_ready(h, &reason);
        info.not_ready_reason = reason;
        doc = health_status_json(&h->manager->state, &info);
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

int health_new(Manager *m, const char *listen, Health **ret) {
        Health *h;
        int r;

        h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        h->manager = m;
        h->start_time = time(NULL);

        r = httpd_new(m->event, listen, on_request, h, &h->httpd);
        if (r < 0) {
                free(h);
                return r;
        }
        /* Probes and scrapes send no body. */
        httpd_set_max_body(h->httpd, 4096);
        log_info("Serving /healthz, /readyz, /metrics and /status on %s (port %u)", listen,
                 (unsigned) httpd_get_port(h->httpd));
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

uint16_t health_get_port(const Health *h) {
        return h ? httpd_get_port(h->httpd) : 0;
}
