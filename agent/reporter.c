/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "curl-request.h"
#include "fs.h"
#include "log.h"
#include "random.h"
#include "report.h"
#include "reporter.h"
#include "utf8.h"

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
#define REPORT_CA_MAX (1024U * 1024U)

struct Reporter {
        sd_event *event;
        CurlGlue *glue;
        CurlRequest *req; /* the request in flight, NULL when idle */
        sd_event_source *timer;
        char *url;
        char *token_file; /* NULL: no token */
        char *ca_file;    /* NULL: libcurl's default store */
        unsigned interval_sec;

        AgentStatus status; /* the last one published; status.state NULL before */

        char *token; /* NULL until read (or without --report-token-file) */
        struct stat token_st;
        bool token_loaded;

        bool pending; /* the report changed while a request was in flight */
        /* Revisions of the status (AgentStatus.revision) the aggregator
         * accepted last and that the request in flight carries: equal
         * revisions mean sending again would tell it nothing new. */
        uint64_t sent_revision, inflight_revision;
        bool sent;

        /* The last failure logged at warning level, so that a long outage
         * is said once, not every few seconds; cleared by a success. */
        LogRepeat logged;

        ReporterStats stats;
};

uint64_t report_backoff_usec(unsigned n) {
        uint64_t d = REPORT_BACKOFF_MIN_USEC;

        for (unsigned i = 1; i < n && d < REPORT_BACKOFF_MAX_USEC; i++)
                d *= 2;
        return d < REPORT_BACKOFF_MAX_USEC ? d : REPORT_BACKOFF_MAX_USEC;
}

static void report_context(Reporter *r, ReportContext *ctx) {
        *ctx = (ReportContext){
                .node = r->status.node,
                .source_kind = r->status.source_kind,
                .interval_sec = r->interval_sec,
                .ready = r->status.ready,
                .not_ready_reason = r->status.not_ready_reason,
                .now = time(NULL),
        };
}

/* Is there something the aggregator has not been told? */
static bool reporter_has_news(Reporter *r) {
        return r->status.state && r->status.state->source_hash[0] &&
               (!r->sent || r->status.revision != r->sent_revision);
}

static void reporter_arm(Reporter *r, uint64_t delay_usec, bool only_earlier) {
        uint64_t now, when;
        int enabled = SD_EVENT_OFF;

        if (sd_event_now(r->event, CLOCK_MONOTONIC, &now) < 0)
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
        reporter_arm(r, jitter_usec_random(r->interval_sec * USEC_PER_SEC), false);
}

static void reporter_arm_backoff(Reporter *r) {
        reporter_arm(r, jitter_usec_random(report_backoff_usec(r->stats.backoff)), false);
}

/* Report soon, unless the aggregator is in backoff: the attempt already
 * scheduled sends the newest state anyway. */
static void reporter_soon(Reporter *r) {
        uint64_t spread = r->interval_sec * USEC_PER_SEC / 10;

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
        const char *path = r->token_file;
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
        return utf8_one_line(out);
}

static void on_report_done(CurlRequest *req, int error, void *userdata) {
        Reporter *r = userdata;
        long status = curl_request_status(req);
        _cleanup_free_ char *reason = NULL;

        r->req = NULL;
        r->stats.reports_total++;
        r->stats.last_status = error < 0 ? 0 : status;
        r->stats.last_error = error < 0 ? error : 0;
        if (error >= 0)
                reason = answer_reason(req);

        if (error >= 0 && status >= 200 && status < 300) {
                if (log_repeat_clear(&r->logged))
                        log_info("The aggregator at %s accepts reports again", r->url);
                r->stats.backoff = 0;
                r->stats.last_success = time(NULL);
                r->sent_revision = r->inflight_revision;
                r->sent = true;
                reporter_arm_interval(r);
        } else {
                r->stats.report_failures_total++;
                /* An answer other than "busy" means the aggregator is up:
                 * only transport failures, 429 and 5xx grow the backoff. */
                if (error >= 0 && status != 429 && status < 500)
                        r->stats.backoff = 0;
                if (error < 0) {
                        r->stats.backoff++;
                        log_repeat(&r->logged, 0, error, "Failed to send the report to %s: %s (%s); retrying in about %llu s",
                                    r->url, strerror(-error), curl_request_error_message(req),
                                    (unsigned long long) (report_backoff_usec(r->stats.backoff) / USEC_PER_SEC));
                        reporter_arm_backoff(r);
                } else if (status == 401 || status == 403) {
                        /* The aggregator is up and a new token comes with a
                         * change of the file (seen before each attempt):
                         * keep the normal pace. */
                        log_repeat(&r->logged, status, 0,
                                    "The aggregator at %s refused the report token (HTTP %ld%s%s); check --report-token-file",
                                    r->url, status, reason ? ": " : "", reason ? reason : "");
                        reporter_arm_interval(r);
                } else if (status == 429 || status >= 500) {
                        r->stats.backoff++;
                        log_repeat(&r->logged, status, 0, "The aggregator at %s is busy or failing (HTTP %ld%s%s); retrying in about %llu s",
                                    r->url, status, reason ? ": " : "", reason ? reason : "",
                                    (unsigned long long) (report_backoff_usec(r->stats.backoff) / USEC_PER_SEC));
                        reporter_arm_backoff(r);
                } else {
                        /* 400, 404, 413: the same report will not fare better. */
                        log_repeat(&r->logged, status, 0, "The aggregator at %s rejected the report (HTTP %ld%s%s)", r->url,
                                    status, reason ? ": " : "", reason ? reason : "");
                        reporter_arm_interval(r);
                }
        }
        curl_request_free(req);

        /* Something changed while the request was on its way. */
        if (r->pending) {
                r->pending = false;
                if (reporter_has_news(r))
                        reporter_soon(r);
        }
}

static int reporter_start_request(Reporter *r, const char *body, const char *ca, size_t ca_size) {
        _cleanup_(curl_request_freep) CurlRequest *req = NULL;
        CurlTls tls = { .ca_blob = ca, .ca_blob_size = ca_size };
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

/* A report that failed before it left (the token, the CA file, the
 * request itself): counted as an attempt that failed, and backed off. */
static void reporter_failed_here(Reporter *r, int error) {
        r->stats.reports_total++;
        r->stats.report_failures_total++;
        r->stats.last_attempt = time(NULL);
        r->stats.last_error = error;
        r->stats.backoff++;
        reporter_arm_backoff(r);
}

static void reporter_send(Reporter *r) {
        _cleanup_free_ char *body = NULL, *ca = NULL;
        size_t ca_size = 0;
        ReportContext ctx;
        int k;

        if (r->req) {
                r->pending = true;
                return;
        }
        r->pending = false;
        r->stats.next_usec = 0;

        report_context(r, &ctx);
        body = r->status.state ? report_dump(r->status.state, &ctx, REPORT_MAX_BODY, &k) : NULL;
        if (!r->status.state)
                k = -EAGAIN;
        if (!body) {
                if (k != -EAGAIN)
                        log_warning_errno(k, "Failed to build the report");
                else
                        log_debug("Nothing to report yet: the source was never read");
                reporter_arm_interval(r);
                return;
        }
        r->inflight_revision = r->status.revision;

        k = token_load(r);
        if (k < 0) {
                reporter_failed_here(r, k);
                log_repeat(&r->logged, -1, k, "Failed to read the report token file '%s': %s; retrying in about %llu s",
                            r->token_file, strerror(-k),
                            (unsigned long long) (report_backoff_usec(r->stats.backoff) / USEC_PER_SEC));
                return;
        }

        /* The CA file is read here, as a regular file with a bounded,
         * non-blocking read, and handed to libcurl as a blob: libcurl
         * fopen()ed it on the loop, and a FIFO there blocked the agent. */
        if (r->ca_file) {
                k = read_file_at(AT_FDCWD, r->ca_file, true, REPORT_CA_MAX, &ca, &ca_size);
                if (k < 0) {
                        reporter_failed_here(r, k);
                        log_repeat(&r->logged, -1, k, "Failed to read the report CA file '%s': %s", r->ca_file,
                                   k == -EBADFD ? "not a regular file" : strerror(-k));
                        return;
                }
        }

        r->stats.last_attempt = time(NULL);
        k = reporter_start_request(r, body, ca, ca_size);
        explicit_bzero(body, strlen(body));
        if (k < 0) {
                reporter_failed_here(r, k);
                log_repeat(&r->logged, -1, k, "Failed to start the report request to %s: %s", r->url, strerror(-k));
        }
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s;
        (void) usec;
        reporter_send(userdata);
        return 0;
}

void reporter_update(Reporter *r, const AgentStatus *st, bool soon) {
        assert(r);
        assert(st);
        assert(st->state);

        r->status = *st;
        if (!soon || !reporter_has_news(r))
                return;
        if (r->req && r->status.revision == r->inflight_revision)
                return;
        reporter_soon(r);
}

const ReporterStats *reporter_get_stats(const Reporter *r) {
        assert(r);
        return &r->stats;
}


int reporter_new(sd_event *event, const ReporterOptions *o, Reporter **ret) {
        _cleanup_(reporter_freep) Reporter *r = NULL;
        const char *base;
        size_t n;
        int k;

        assert(event);
        assert(o);
        assert(ret);

        base = o->url;
        if (!base)
                return -EINVAL;
        r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->event = sd_event_ref(event);
        r->interval_sec = o->interval_sec;
        if ((o->token_file && !(r->token_file = strdup(o->token_file))) ||
            (o->ca_file && !(r->ca_file = strdup(o->ca_file))))
                return -ENOMEM;

        n = strlen(base);
        while (n > 0 && base[n - 1] == '/')
                n--;
        if (asprintf(&r->url, "%.*s%s", (int) n, base, REPORT_PATH) < 0) {
                r->url = NULL;
                return -ENOMEM;
        }

        k = curl_glue_new(event, &r->glue);
        if (k < 0)
                return k;
        k = sd_event_add_time_relative(event, &r->timer, CLOCK_MONOTONIC, 0, 1000, on_timer, r);
        if (k < 0)
                return k;
        (void) sd_event_source_set_description(r->timer, "report-timer");
        /* The first report follows the first sync (reporter_update); the
         * periodic one is the fallback when that never comes. */
        reporter_arm_interval(r);

        log_info("Reporting to %s every %u s", r->url, r->interval_sec);
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
        free(r->token_file);
        free(r->ca_file);
        sd_event_unref(r->event);
        free(r);
        return NULL;
}
