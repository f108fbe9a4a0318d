/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "curl-request.h"
#include "fs.h"
#include "hash.h"
#include "log.h"
#include "manager.h"
#include "report.h"

#define REPORT_PATH "/api/v1/reports"
/* After a change, report within a random delay up to this (or a tenth of the
 * interval if that is shorter): soon, yet a thousand nodes that see the same
 * config map swap do not all hit the aggregator in the same millisecond. */
#define CHANGE_SPREAD_MAX_USEC (2 * USEC_PER_SEC)
#define CONNECT_TIMEOUT_MS 10000
#define TOTAL_TIMEOUT_MS 30000
/* The aggregator answers with a small JSON object. */
#define ANSWER_MAX (64U * 1024U)
#define TOKEN_MAX (16U * 1024U)
#define ERRORS_MAX 16

struct Reporter {
        Manager *manager;
        CurlGlue *glue;
        CurlRequest *req; /* the request in flight, NULL when idle */
        sd_event_source *timer;
        char *url;

        char *token; /* NULL until read (or without --report-token-file) */
        struct stat token_st;
        bool token_loaded;

        bool pending; /* the report changed while a request was in flight */
        char sent_digest[65];     /* of the last report the aggregator accepted */
        char inflight_digest[65]; /* of the report in flight */

        /* The last failure logged at warning level, so that a long outage
         * is said once, not every few seconds; cleared by a success. */
        long logged_status;
        int logged_error;
        bool logged_failure;

        ReporterStats stats;
};

/* ------------------------------------------------------------------------
 * The report document: plain functions of the State. */

static json_t *string_or_null(const char *s) {
        return s && *s ? json_string(s) : json_null();
}

static json_t *time_or_null(time_t t) {
        return t ? json_integer((json_int_t) t) : json_null();
}

/* Lower sorts first: what an operator must see survives truncation. */
static int registry_priority(const RegistryResult *r) {
        switch (r->state) {
        case REGISTRY_FAILED: return 0;
        case REGISTRY_CONFLICT: return 1;
        case REGISTRY_SHADOWED: return 2;
        case REGISTRY_REFUSED: return 3;
        default: return 4;
        }
}

static int registry_index_cmp(const void *a, const void *b, void *userdata) {
        const State *s = userdata;
        const RegistryResult *x = &s->registries[*(const size_t *) a];
        const RegistryResult *y = &s->registries[*(const size_t *) b];
        int px = registry_priority(x), py = registry_priority(y);

        if (px != py)
                return px - py;
        /* Soonest expiry first; 0 means none and goes last. */
        if (x->not_after != y->not_after) {
                if (!x->not_after || !y->not_after)
                        return x->not_after ? -1 : 1;
                return x->not_after < y->not_after ? -1 : 1;
        }
        return *(const size_t *) a < *(const size_t *) b ? -1 : 1;
}

static json_t *registry_json(const RegistryResult *r) {
        json_t *o = json_pack("{s:s, s:s, s:s}",
                              /* A key too broken to decode is named by itself. */
                              "name", r->registry ? r->registry : r->key,
                              "key", r->key,
                              "state", registry_state_to_string(r->state));
        if (!o)
                return NULL;
        if (r->state != REGISTRY_REFUSED && r->fingerprint[0] &&
            json_object_set_new(o, "fingerprint", json_string(r->fingerprint)) < 0)
                goto fail;
        if (r->state != REGISTRY_REFUSED && json_object_set_new(o, "not_after", time_or_null(r->not_after)) < 0)
                goto fail;
        if (r->reason && json_object_set_new(o, "reason", json_string(r->reason)) < 0)
                goto fail;
        if ((r->expired || r->not_yet_valid) &&
            json_object_set_new(o, r->expired ? "expired" : "not_yet_valid", json_true()) < 0)
                goto fail;
        /* Which runtime is affected, only where something is: a report of
         * a thousand applied registries stays small. */
        if (r->state == REGISTRY_CONFLICT || r->state == REGISTRY_FAILED || r->state == REGISTRY_SHADOWED) {
                json_t *t = json_object();
                if (!t || json_object_set_new(o, "targets", t) < 0)
                        goto fail;
                for (size_t k = 0; k < ELEMENTSOF(targets); k++) {
                        const RegistryTargetResult *rt = &r->targets[k];
                        json_t *e;
                        if (!rt->enabled)
                                continue;
                        e = json_pack("{s:s}", "state", registry_target_state_to_string(rt->state));
                        if (!e || (rt->reason && json_object_set_new(e, "reason", json_string(rt->reason)) < 0) ||
                            json_object_set_new(t, targets[k].name, e) < 0) {
                                json_decref(e);
                                goto fail;
                        }
                }
        }
        return o;
fail:
        json_decref(o);
        return NULL;
}

/* The registries array with at most limit entries (the most telling ones). */
static json_t *registries_json(const State *s, size_t limit) {
        _cleanup_free_ size_t *idx = NULL;
        _cleanup_free_ bool *keep = NULL;
        json_auto_t *a = json_array();

        if (!a)
                return NULL;
        if (limit < s->n_registries) {
                idx = calloc(s->n_registries, sizeof *idx);
                keep = calloc(s->n_registries, sizeof *keep);
                if (!idx || !keep)
                        return NULL;
                for (size_t i = 0; i < s->n_registries; i++)
                        idx[i] = i;
                qsort_r(idx, s->n_registries, sizeof *idx, registry_index_cmp, (void *) s);
                for (size_t i = 0; i < limit; i++)
                        keep[idx[i]] = true;
        }
        for (size_t i = 0; i < s->n_registries; i++) {
                if (keep && !keep[i])
                        continue;
                if (json_array_append_new(a, registry_json(&s->registries[i])) < 0)
                        return NULL;
        }
        return json_incref(a);
}

static json_t *targets_json(const State *s) {
        json_auto_t *o = json_object();

        if (!o)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(targets); i++) {
                const TargetStatus *ts = &s->runtime.targets[i];
                json_t *e;
                if (!ts->enabled)
                        continue;
                e = json_pack("{s:s}", "state", target_state_to_string(ts->state));
                if (!e || (ts->reason && json_object_set_new(e, "reason", json_string(ts->reason)) < 0) ||
                    json_object_set_new(o, targets[i].name, e) < 0) {
                        json_decref(e);
                        return NULL;
                }
        }
        return json_incref(o);
}

static json_t *errors_json(const State *s, const ReportContext *ctx) {
        json_auto_t *a = json_array();

        if (!a)
                return NULL;
        if (s->first_sync_done && !s->last_sync_ok &&
            json_array_append_new(a, json_string(s->last_error ? s->last_error : "sync failed")) < 0)
                return NULL;
        /* Not ready for another reason, e.g. a dead watch on the source. */
        if (!ctx->ready && ctx->not_ready_reason && s->last_sync_ok &&
            json_array_append_new(a, json_string(ctx->not_ready_reason)) < 0)
                return NULL;
        return json_incref(a);
}

static json_t *report_build_limited(const State *s, const ReportContext *ctx, bool with_timestamp, size_t limit,
                                    int *ret_error) {
        json_auto_t *root = NULL;
        json_t *regs, *errs;

        *ret_error = -ENOMEM;
        /* source.hash is required: until the source was read once there
         * is nothing true to say, and a made-up hash would look like a new
         * config map to the aggregator. */
        if (!s->source_hash[0]) {
                *ret_error = -EAGAIN;
                return NULL;
        }
        regs = registries_json(s, limit);
        errs = errors_json(s, ctx);
        root = json_pack("{s:i, s:s, s:s, s:i, s:b,"
                         " s:{s:s, s:I, s:s},"
                         " s:o, s:o, s:o, s:o,"
                         " s:{s:s, s:o}, s:o,"
                         " s:{s:i, s:i, s:i, s:i, s:i, s:i}}",
                         "schema", 1,
                         "node", ctx->node ? ctx->node : "",
                         "agent_version", NODETRUST_VERSION,
                         "interval_seconds", (int) ctx->interval_sec,
                         "ready", ctx->ready,
                         "source",
                         "kind", ctx->source_kind ? ctx->source_kind : "unknown",
                         "generation", (json_int_t) s->generation,
                         "hash", s->source_hash,
                         "applied_hash", string_or_null(s->applied_hash),
                         "errors", errs,
                         "registries", regs,
                         "soonest_expiry", time_or_null(state_soonest_expiry(s)),
                         "pull_secret",
                         "state", pull_secret_status_to_string(s->pull_secret_status),
                         "hash", string_or_null(s->pull_secret_hash),
                         "targets", targets_json(s),
                         /* Whole counts even when registries is cut short. */
                         "registry_counts",
                         "applied", (int) s->n_applied,
                         "refused", (int) s->n_refused,
                         "conflict", (int) s->n_conflicts,
                         "failed", (int) s->n_failed,
                         "shadowed", (int) s->n_shadowed,
                         "ignored", (int) s->n_ignored);
        if (!root)
                return NULL;
        if (with_timestamp && json_object_set_new(root, "timestamp", json_integer((json_int_t) ctx->now)) < 0)
                return NULL;
        if (limit < s->n_registries &&
            json_object_set_new(root, "registries_omitted", json_integer((json_int_t) (s->n_registries - limit))) < 0)
                return NULL;
        *ret_error = 0;
        return TAKE_PTR(root);
}

json_t *report_build(const State *s, const ReportContext *ctx, bool with_timestamp, int *ret_error) {
        return report_build_limited(s, ctx, with_timestamp, s->n_registries, ret_error);
}

char *report_dump(const State *s, const ReportContext *ctx, size_t max, int *ret_error) {
        size_t limit = s->n_registries;

        for (;;) {
                json_auto_t *doc = report_build_limited(s, ctx, true, limit, ret_error);
                char *text;

                if (!doc)
                        return NULL;
                text = json_dumps(doc, JSON_COMPACT);
                if (!text) {
                        *ret_error = -ENOMEM;
                        return NULL;
                }
                if (strlen(text) <= max || limit == 0)
                        return text;
                free(text);
                limit /= 2;
        }
}

uint64_t report_backoff_usec(unsigned n) {
        uint64_t d = REPORT_BACKOFF_MIN_USEC;

        for (unsigned i = 1; i < n && d < REPORT_BACKOFF_MAX_USEC; i++)
                d *= 2;
        return d < REPORT_BACKOFF_MAX_USEC ? d : REPORT_BACKOFF_MAX_USEC;
}

static uint64_t random_u64(void) {
        uint64_t v;

        if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t) sizeof v)
                v = ((uint64_t) random() << 32) ^ (uint64_t) random();
        return v;
}

uint64_t report_jitter_usec(uint64_t usec) {
        uint64_t span = usec / 5; /* 20%: from -10% to +10% */

        if (span == 0)
                return usec;
        return usec - usec / 10 + random_u64() % (span + 1);
}

/* ------------------------------------------------------------------------
 * The reporter on the loop. */

static void report_context(Reporter *r, ReportContext *ctx) {
        Manager *m = r->manager;
        const char *reason = NULL;

        *ctx = (ReportContext){
                .node = m->config->node_name,
                .source_kind = m->source && m->source->ops ? m->source->ops->kind : NULL,
                .interval_sec = m->config->report_interval_sec,
                .now = time(NULL),
        };
        ctx->ready = manager_is_ready(m, &reason);
        ctx->not_ready_reason = reason;
}

/* A digest of what the report says, timestamp left out: equal digests
 * mean sending again would tell the aggregator nothing new. */
static int report_digest(Reporter *r, char ret[65]) {
        _cleanup_free_ char *text = NULL;
        json_auto_t *doc = NULL;
        ReportContext ctx;
        int error;

        report_context(r, &ctx);
        doc = report_build(&r->manager->state, &ctx, false, &error);
        if (!doc)
                return error;
        text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        if (!text)
                return -ENOMEM;
        sha256_hex(text, strlen(text), ret);
        return 0;
}

static void reporter_arm(Reporter *r, uint64_t delay_usec, bool only_earlier) {
        uint64_t now, when;
        int enabled = SD_EVENT_OFF;

        if (sd_event_now(r->manager->event, CLOCK_MONOTONIC, &now) < 0)
                return;
        when = now + delay_usec;
        (void) sd_event_source_get_enabled(r->timer, &enabled);
        if (only_earlier && enabled != SD_EVENT_OFF && r->stats.next_usec && r->stats.next_usec <= when)
                return;
        (void) sd_event_source_set_time(r->timer, when);
        (void) sd_event_source_set_enabled(r->timer, SD_EVENT_ONESHOT);
        r->stats.next_usec = when;
}

static void reporter_arm_interval(Reporter *r) {
        reporter_arm(r, report_jitter_usec(r->manager->config->report_interval_sec * USEC_PER_SEC), false);
}

static void reporter_arm_backoff(Reporter *r) {
        reporter_arm(r, report_jitter_usec(report_backoff_usec(r->stats.backoff)), false);
}

/* Report soon, unless the aggregator is in backoff: the attempt already
 * scheduled sends the newest state anyway. */
static void reporter_soon(Reporter *r) {
        uint64_t spread = r->manager->config->report_interval_sec * USEC_PER_SEC / 10;

        if (r->req) {
                r->pending = true;
                return;
        }
        if (r->stats.backoff > 0)
                return;
        if (spread > CHANGE_SPREAD_MAX_USEC)
                spread = CHANGE_SPREAD_MAX_USEC;
        reporter_arm(r, spread ? random_u64() % spread : 0, true);
}

static void token_forget(Reporter *r) {
        if (r->token) {
                explicit_bzero(r->token, strlen(r->token));
                free(r->token);
                r->token = NULL;
        }
        r->token_loaded = false;
}

/* (Re)read the token when the file changed since the last read. A kubelet
 * secret volume swaps "..data", which stat() through the symlink sees as a
 * new inode. */
static int token_load(Reporter *r) {
        const char *path = r->manager->config->report_token_file;
        _cleanup_free_ char *data = NULL;
        struct stat st;
        size_t size, n;
        int k;

        if (!path)
                return 0;
        if (stat(path, &st) < 0)
                return -errno;
        if (r->token_loaded && st.st_ino == r->token_st.st_ino && st.st_dev == r->token_st.st_dev &&
            st.st_size == r->token_st.st_size && st.st_mtim.tv_sec == r->token_st.st_mtim.tv_sec &&
            st.st_mtim.tv_nsec == r->token_st.st_mtim.tv_nsec)
                return 0;

        k = read_file_at(AT_FDCWD, path, true, TOKEN_MAX, &data, &size);
        if (k < 0)
                return k;
        /* The first line, without surrounding blanks. */
        n = strcspn(data, "\r\n");
        while (n > 0 && (data[n - 1] == ' ' || data[n - 1] == '\t'))
                n--;
        size_t start = strspn(data, " \t");
        if (start >= n) {
                explicit_bzero(data, size);
                return -ENODATA;
        }
        token_forget(r);
        r->token = strndup(data + start, n - start);
        explicit_bzero(data, size);
        if (!r->token)
                return -ENOMEM;
        r->token_st = st;
        r->token_loaded = true;
        log_info("Read the report token from '%s'", path);
        return 0;
}

/* The aggregator's {"error": "..."} reason, made safe for one log line. */
static char *answer_reason(CurlRequest *req) {
        json_auto_t *doc = NULL;
        const char *body, *e;
        char *out;
        size_t size;

        body = curl_request_body(req, &size);
        doc = json_loadb(body, size, 0, NULL);
        e = json_string_value(json_object_get(doc, "error"));
        if (!e)
                return NULL;
        out = strndup(e, 200);
        for (char *p = out; p && *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = ' ';
        return out;
}

/* Say a failure at warning level the first time, at debug while it repeats. */
static void log_failure(Reporter *r, long status, int error, const char *fmt, ...) _printf_(4, 5);
static void log_failure(Reporter *r, long status, int error, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        bool repeat = r->logged_failure && r->logged_status == status && r->logged_error == error;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (k < 0)
                return;
        log_fmt(repeat ? LOG_DEBUG : LOG_WARNING, "%s", msg);
        r->logged_failure = true;
        r->logged_status = status;
        r->logged_error = error;
}

static void on_report_done(CurlRequest *req, int error, void *userdata) {
        Reporter *r = userdata;
        long status = curl_request_status(req);
        _cleanup_free_ char *reason = NULL;
        char digest[65];

        r->req = NULL;
        r->stats.reports_total++;
        r->stats.last_status = error < 0 ? 0 : status;
        r->stats.last_error = error < 0 ? error : 0;
        if (error >= 0)
                reason = answer_reason(req);

        if (error >= 0 && status >= 200 && status < 300) {
                if (r->logged_failure)
                        log_info("The aggregator at %s accepts reports again", r->url);
                r->logged_failure = false;
                r->stats.backoff = 0;
                r->stats.last_success = time(NULL);
                memcpy(r->sent_digest, r->inflight_digest, sizeof r->sent_digest);
                reporter_arm_interval(r);
        } else {
                r->stats.report_failures_total++;
                /* An answer other than "busy" means the aggregator is up:
                 * only transport failures, 429 and 5xx grow the backoff. */
                if (error >= 0 && status != 429 && status < 500)
                        r->stats.backoff = 0;
                if (error < 0) {
                        r->stats.backoff++;
                        log_failure(r, 0, error, "Failed to send the report to %s: %s (%s); retrying in about %llu s",
                                    r->url, strerror(-error), curl_request_error_message(req),
                                    (unsigned long long) (report_backoff_usec(r->stats.backoff) / USEC_PER_SEC));
                        reporter_arm_backoff(r);
                } else if (status == 401 || status == 403) {
                        /* The aggregator is up and a new token comes with a
                         * change of the file (seen before each attempt):
                         * keep the normal pace. */
                        log_failure(r, status, 0,
                                    "The aggregator at %s refused the report token (HTTP %ld%s%s); check --report-token-file",
                                    r->url, status, reason ? ": " : "", reason ? reason : "");
                        reporter_arm_interval(r);
                } else if (status == 429 || status >= 500) {
                        r->stats.backoff++;
                        log_failure(r, status, 0, "The aggregator at %s is busy or failing (HTTP %ld%s%s); retrying in about %llu s",
                                    r->url, status, reason ? ": " : "", reason ? reason : "",
                                    (unsigned long long) (report_backoff_usec(r->stats.backoff) / USEC_PER_SEC));
                        reporter_arm_backoff(r);
                } else {
                        /* 400, 404, 413: the same report will not fare better. */
                        log_failure(r, status, 0, "The aggregator at %s rejected the report (HTTP %ld%s%s)", r->url,
                                    status, reason ? ": " : "", reason ? reason : "");
                        reporter_arm_interval(r);
                }
        }
        curl_request_free(req);

        /* Something changed while the request was on its way. */
        if (r->pending) {
                r->pending = false;
                if (report_digest(r, digest) >= 0 && !streq(digest, r->sent_digest))
                        reporter_soon(r);
        }
}

static int reporter_start_request(Reporter *r, const char *body) {
        _cleanup_(curl_request_freep) CurlRequest *req = NULL;
        const Config *c = r->manager->config;
        CurlTls tls = { .ca_file = c->report_ca };
        int k;

        k = curl_request_new(r->url, &req);
        if (k < 0)
                return k;
        k = curl_request_set_body(req, "application/json", body, strlen(body));
        if (k < 0)
                return k;
        if (r->token) {
                k = curl_request_set_bearer(req, r->token);
                if (k < 0)
                        return k;
        }
        k = curl_request_add_header(req, "Accept: application/json");
        if (k < 0)
                return k;
        /* No CA file: libcurl's default store, which verifies just the same. */
        k = curl_request_set_tls(req, &tls);
        if (k < 0)
                return k;
        k = curl_request_set_timeouts(req, CONNECT_TIMEOUT_MS, TOTAL_TIMEOUT_MS);
        if (k < 0)
                return k;
        curl_request_set_max_size(req, ANSWER_MAX);
        (void) curl_easy_setopt(curl_request_easy(req), CURLOPT_USERAGENT, "nodetrustd/" NODETRUST_VERSION);

        k = curl_request_start(req, r->glue, on_report_done, r);
        if (k < 0)
                return k;
        r->req = TAKE_PTR(req);
        return 0;
}

static void reporter_send(Reporter *r) {
        _cleanup_free_ char *body = NULL;
        ReportContext ctx;
        int k;

        if (r->req) {
                r->pending = true;
                return;
        }
        r->pending = false;
        r->stats.next_usec = 0;

        report_context(r, &ctx);
        body = report_dump(&r->manager->state, &ctx, REPORT_MAX_BODY, &k);
        if (!body) {
                if (k != -EAGAIN)
                        log_warning_errno(k, "Failed to build the report");
                else
                        log_debug("Nothing to report yet: the source was never read");
                reporter_arm_interval(r);
                return;
        }
        k = report_digest(r, r->inflight_digest);
        if (k < 0)
                r->inflight_digest[0] = 0;

        k = token_load(r);
        if (k < 0) {
                r->stats.reports_total++;
                r->stats.report_failures_total++;
                r->stats.last_attempt = time(NULL);
                r->stats.last_error = k;
                r->stats.backoff++;
                log_failure(r, -1, k, "Failed to read the report token file '%s': %s; retrying in about %llu s",
                            r->manager->config->report_token_file, strerror(-k),
                            (unsigned long long) (report_backoff_usec(r->stats.backoff) / USEC_PER_SEC));
                reporter_arm_backoff(r);
                return;
        }

        r->stats.last_attempt = time(NULL);
        k = reporter_start_request(r, body);
        explicit_bzero(body, strlen(body));
        if (k < 0) {
                r->stats.reports_total++;
                r->stats.report_failures_total++;
                r->stats.last_error = k;
                r->stats.backoff++;
                log_failure(r, -1, k, "Failed to start the report request to %s: %s", r->url, strerror(-k));
                reporter_arm_backoff(r);
        }
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s;
        (void) usec;
        reporter_send(userdata);
        return 0;
}

void reporter_sync_done(Reporter *r) {
        char digest[65];

        if (!r || report_digest(r, digest) < 0)
                return;
        if (streq(digest, r->sent_digest))
                return;
        if (r->req && streq(digest, r->inflight_digest))
                return;
        reporter_soon(r);
}

const ReporterStats *reporter_get_stats(const Reporter *r) {
        return &r->stats;
}

int reporter_new(Manager *m, Reporter **ret) {
        _cleanup_(reporter_freep) Reporter *r = NULL;
        const char *base = m->config->report_url;
        size_t n;
        int k;

        if (!base)
                return -EINVAL;
        r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->manager = m;

        n = strlen(base);
        while (n > 0 && base[n - 1] == '/')
                n--;
        if (asprintf(&r->url, "%.*s%s", (int) n, base, REPORT_PATH) < 0) {
                r->url = NULL;
                return -ENOMEM;
        }

        k = curl_glue_new(m->event, &r->glue);
        if (k < 0)
                return k;
        k = sd_event_add_time_relative(m->event, &r->timer, CLOCK_MONOTONIC, 0, 1000, on_timer, r);
        if (k < 0)
                return k;
        (void) sd_event_source_set_description(r->timer, "report-timer");
        /* The first report follows the first sync (reporter_sync_done); the
         * periodic one is the fallback when that never comes. */
        reporter_arm_interval(r);

        log_info("Reporting to %s every %u s", r->url, m->config->report_interval_sec);
        *ret = TAKE_PTR(r);
        return 0;
}

Reporter *reporter_free(Reporter *r) {
        if (!r)
                return NULL;
        curl_request_free(r->req);
        sd_event_source_disable_unref(r->timer);
        curl_glue_free(r->glue);
        token_forget(r);
        free(r->url);
        free(r);
        return NULL;
}
