/* SPDX-License-Identifier: MIT */
/*
 * What the server's answers mean for a watch: a list body and each watch
 * event set the object and the resourceVersion to resume from; the end of
 * a request (its error, its status: 401, 403/404 when optional, 410) says
 * whether to watch again, relist, retry with a re-read token or back off.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "log.h"
#include "source-kube-watch-internal.h"

/* A watch that ends cleanly sooner than this counts as a failure, so a
 * server that closes every watch at once cannot make us spin. */
#define MIN_WATCH_USEC (1 * USEC_PER_SEC)
/* An optional object we may not read is looked at again this often. */
#define FORBIDDEN_RETRY_USEC (300 * USEC_PER_SEC)

static void notify_owner(KubeWatch *w) {
        w->changed = true;
        (void) sd_event_source_set_enabled(w->defer, SD_EVENT_ONESHOT);
}

static void set_object(KubeWatch *w, json_t *obj) {
        const char *old_rv = w->object ? kube_object_rv(w->object) : NULL;
        const char *new_rv = obj ? kube_object_rv(obj) : NULL;
        bool same = (!w->object && !obj) || (old_rv && new_rv && streq(old_rv, new_rv));

        json_decref(w->object);
        w->object = obj ? json_incref(obj) : NULL;
        if (!same)
                notify_owner(w);
}

/* The server sent obj as the object (present) or said it is gone (present
 * false; obj, when not NULL, is what was deleted). Take it only when it is
 * what the watch follows and passes the owner's check; otherwise keep the
 * last good object and say why, once per reason. -ENOMEM only. */
static int accept_object(KubeWatch *w, json_t *obj, bool present) {
        char err[sizeof w->invalid] = "";
        int r = 0;

        if (obj && w->kind)
                r = kube_check_kind(obj, w->group_version, w->kind, false, err, sizeof err);
        if (r >= 0 && present && w->check)
                r = w->check(obj, err, sizeof err);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                if (!streq(err, w->invalid)) {
                        log_full(LOG_WARNING, "Kubernetes object refused, keeping the last good one", "OBJECT=%s",
                                 w->what, "REASON=%s", err, NULL);
                        snprintf(w->invalid, sizeof w->invalid, "%s", err);
                        notify_health(w);
                }
                return 0;
        }
        if (w->invalid[0]) {
                log_full(LOG_INFO, "Kubernetes object valid again", "OBJECT=%s", w->what, NULL);
                w->invalid[0] = 0;
                notify_health(w);
        }
        /* The first good object after none: the owner can read now. */
        if (!w->good)
                notify_owner(w);
        w->good = true;
        set_object(w, present ? obj : NULL);
        return 0;
}

/* The first list is in (or an optional object counts as absent): object()
 * means something now, and the watch may be healthy. */
static void mark_synced(KubeWatch *w) {
        if (w->synced)
                return;
        w->synced = true;
        notify_owner(w);
        notify_health(w);
}

static int set_rv(KubeWatch *w, const char *rv) {
        char *c = strdup(rv);

        if (!c)
                return -ENOMEM;
        free(w->rv);
        w->rv = c;
        return 0;
}

int kube_watch_on_line(CurlRequest *req, char *line, size_t len, void *userdata) {
        KubeWatch *w = userdata;
        KubeEvent e = {};
        int r;

        (void) req;
        w->lines++;
        timer_at(w, now_usec(w) + kube_watch_dead_after_usec(w->timeout_sec));
        /* A line proves the stream works end to end: the next failure
         * starts the backoff over. */
        w->attempt = 0;
        if (w->silence_suspect) {
                w->silence_suspect = false;
                kube_watch_mark_ok(w);
        }

        r = kube_event_parse(line, len, &e);
        if (r < 0) {
                snprintf(w->detail, sizeof w->detail,
                         "unparseable watch event (not JSON, an unknown type or no valid resourceVersion)");
                return -EBADMSG;
        }
        switch (e.type) {
        case KUBE_EVENT_ERROR:
                snprintf(w->detail, sizeof w->detail, "watch error %d: %s", e.code,
                         e.message ? e.message : "no message");
                r = e.code == 410 ? -ESTALE : -EPROTO;
                break;
        case KUBE_EVENT_BOOKMARK:
                r = set_rv(w, e.resource_version);
                break;
        case KUBE_EVENT_ADDED:
        case KUBE_EVENT_MODIFIED:
        case KUBE_EVENT_DELETED:
                r = set_rv(w, e.resource_version);
                /* The field selector should only send ours; skip others. */
                if (r >= 0 && e.name && streq(e.name, w->name))
                        r = accept_object(w, e.object, e.type != KUBE_EVENT_DELETED);
                log_debug("Kubernetes %s: %s at resourceVersion %s", w->what,
                          e.type == KUBE_EVENT_DELETED ? "deleted" : "updated", e.resource_version);
                break;
        }
        kube_event_done(&e);
        return r;
}

static void handle_unauthorized(KubeWatch *w, bool watch) {
        _cleanup_free_ char *token = NULL;
        bool rotated;

        /* The token may have rotated under us (the kubelet replaces the
         * projected token file): one immediate retry with the new one. */
        if (kubeconfig_token(w->client->config, &token) >= 0 && token) {
                rotated = !w->token_sent || !streq(token, w->token_sent);
                explicit_bzero(token, strlen(token));
                if (rotated && w->auth_retries == 0) {
                        w->auth_retries++;
                        log_info("Kubernetes %s: 401 Unauthorized, retrying with the re-read token", w->what);
                        w->req = curl_request_free(w->req);
                        kube_watch_request(w, watch);
                        return;
                }
        }
        kube_watch_fail(w, "401 Unauthorized: the API server rejected the credentials");
}

static void describe_http_error(KubeWatch *w, char *buf, size_t size) {
        _cleanup_free_ char *message = NULL;
        const char *body;
        size_t n;
        int code;

        body = curl_request_body(w->req, &n);
        kube_status_parse(body, n, &code, &message);
        snprintf(buf, size, "HTTP %ld%s%s", curl_request_status(w->req), message ? ": " : "", message ? message : "");
}

/* An optional object we are not allowed to read (or whose namespace the
 * server does not have) counts as absent, so it cannot hold up the rest;
 * look again now and then in case RBAC changes. */
static void optional_absent(KubeWatch *w, long status) {
        log_fmt(w->forbidden_logged ? LOG_DEBUG : LOG_WARNING,
                "Kubernetes %s: HTTP %ld, treating the optional object as absent", w->what, status);
        w->forbidden_logged = true;
        w->req = curl_request_free(w->req);
        wipe_token(&w->token_sent);
        kube_watch_mark_ok(w);
        (void) accept_object(w, NULL, false);
        mark_synced(w);
        w->need_relist = true;
        w->phase = PHASE_BACKOFF;
        timer_at(w, now_usec(w) + FORBIDDEN_RETRY_USEC);
}

/* What both a list and a watch do with a request that ended badly: a
 * transport error, 401, an optional object's 403/404, any other non-200.
 * Returns true when it handled the end (the request is gone). */
static bool reply_failed(KubeWatch *w, int error, bool watch) {
        long status = curl_request_status(w->req);
        const char *what = !watch ? "list failed" : w->phase == PHASE_WATCHING ? "watch dropped" : "watch failed";
        char http[240];

        if (error < 0) {
                kube_watch_fail(w, "%s: %s", what,
                                *curl_request_error_message(w->req) ? curl_request_error_message(w->req)
                                                                    : strerror(-error));
                return true;
        }
        if (status == 401) {
                handle_unauthorized(w, watch);
                return true;
        }
        if (w->optional && (status == 403 || status == 404)) {
                optional_absent(w, status);
                return true;
        }
        if (status != 200) {
                describe_http_error(w, http, sizeof http);
                kube_watch_fail(w, "%s failed: %s", watch ? "watch" : "list", http);
                return true;
        }
        return false;
}

static void on_list_done(KubeWatch *w, int error) {
        json_auto_t *obj = NULL;
        _cleanup_free_ char *rv = NULL;
        const char *body;
        char why[160];
        size_t n;
        int r;

        if (reply_failed(w, error, false))
                return;
        body = curl_request_body(w->req, &n);
        r = kube_list_parse(body, n, &w->ref, &obj, &rv, why, sizeof why);
        if (r == -ENOMEM) {
                kube_watch_fail(w, "out of memory");
                return;
        }
        if (r < 0) {
                kube_watch_fail(w, "list failed: malformed %sList: %s", w->kind ? w->kind : w->resource, why);
                return;
        }

        w->req = curl_request_free(w->req);
        wipe_token(&w->token_sent);
        if (set_rv(w, rv) < 0 || accept_object(w, obj, obj != NULL) < 0) {
                kube_watch_fail(w, "out of memory");
                return;
        }
        w->attempt = 0;
        w->need_relist = false;
        kube_watch_mark_ok(w);
        mark_synced(w);
        log_debug("Kubernetes %s: listed at resourceVersion %s (%s)", w->what, w->rv,
                  obj ? "present" : "absent");
        kube_watch_request(w, true);
}

static void on_watch_done(KubeWatch *w, int error) {
        long status = curl_request_status(w->req);
        uint64_t lasted = now_usec(w) - w->started_usec;

        if (error == -ESTALE || (error == 0 && status == 410)) {
                /* Our resourceVersion left the server's history: that is the
                 * protocol, not a failure. Start over from a fresh list. */
                log_info("Kubernetes %s: resourceVersion %s expired (410 Gone), relisting", w->what,
                         w->rv ? w->rv : "-");
                w->req = curl_request_free(w->req);
                w->need_relist = true;
                kube_watch_request(w, false);
                return;
        }
        if (error == -EBADMSG || error == -EPROTO || error == -ENOMEM) {
                /* An event we could not read (events may have been missed)
                 * or an error the server sent in the stream: whatever the
                 * resourceVersion is worth now, start over from a list. */
                w->need_relist = true;
                kube_watch_fail(w, "%s", error == -ENOMEM ? "out of memory" : w->detail);
                return;
        }
        if (reply_failed(w, error, true))
                return;
        if (lasted < MIN_WATCH_USEC && w->lines == 0) {
                kube_watch_fail(w, "watch ended at once without an event");
                return;
        }

        /* The server ended the watch at timeoutSeconds: resume at once. */
        if (w->silence_suspect) {
                w->silence_suspect = false;
                kube_watch_mark_ok(w);
        }
        log_debug("Kubernetes %s: watch ended after %.1f s, resuming from %s", w->what,
                  (double) lasted / USEC_PER_SEC, w->rv);
        w->req = curl_request_free(w->req);
        w->attempt = 0;
        kube_watch_request(w, true);
}

void kube_watch_on_done(CurlRequest *req, int error, void *userdata) {
        KubeWatch *w = userdata;

        (void) req;
        (void) sd_event_source_set_enabled(w->timer, SD_EVENT_OFF);
        if (w->phase == PHASE_LISTING)
                on_list_done(w, error);
        else
                on_watch_done(w, error);
}
