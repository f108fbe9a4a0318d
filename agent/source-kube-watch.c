/* SPDX-License-Identifier: MIT */
/*
 * A watch's life on the loop: sending the list or the watch, the one timer
 * that is either a request's deadline or the end of a backoff, failing and
 * recovering, and telling the owner. What the server's answers mean is
 * source-kube-watch-reply.c.
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "log.h"
#include "random.h"
#include "source-kube-client.h"
#include "source-kube-watch-internal.h"

/* A list of one object is small; a config map is at most 1 MiB of data,
 * which JSON escaping and base64 can nearly double. */
#define MAX_BODY (8u * 1024 * 1024)
/* A watch that was up this long before failing starts the backoff over. */
#define STABLE_USEC (60 * USEC_PER_SEC)

void kube_watch_mark_ok(KubeWatch *w) {
        assert(w);

        if (w->failing) {
                log_full(LOG_INFO, "Kubernetes watch recovered", "OBJECT=%s", w->what, NULL);
                /* The server answers again: the other watches need not sit
                 * out their backoff (up to 30 s) to find that out. */
                for (KubeWatch *o = w->client->watches; o; o = o->next)
                        if (o != w && o->phase == PHASE_BACKOFF && o->failing)
                                timer_at(o, now_usec(o));
                notify_health(w);
        }
        w->failing = false;
        w->auth_retries = 0;
        w->detail[0] = 0;
}

/* Something went wrong: say so (once per streak, then only changes), mark
 * unhealthy and try again after the backoff. */
void kube_watch_fail(KubeWatch *w, const char *fmt, ...) {
        char detail[sizeof w->detail];
        uint64_t now, delay;
        bool same;
        va_list ap;

        assert(w);
        assert(fmt);

        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);

        now = now_usec(w);

        w->req = curl_request_free(w->req);
        wipe_token(&w->token_sent);
        if (w->established_usec && now - w->established_usec >= STABLE_USEC)
                w->attempt = 0;
        w->established_usec = 0;
        delay = kube_backoff_usec(w->attempt, w->client->backoff_base_usec, w->client->backoff_cap_usec,
                                  random_u64());
        if (w->attempt < 32)
                w->attempt++;

        same = w->failing && streq(detail, w->detail);
        log_fmt(!w->failing ? LOG_WARNING : same ? LOG_DEBUG : LOG_INFO,
                "Kubernetes %s: %s; retrying in %.1f s", w->what, detail, (double) delay / USEC_PER_SEC);
        /* Unhealthy now, or unhealthy for another reason. */
        if (!same)
                notify_health(w);
        w->failing = true;
        memcpy(w->detail, detail, sizeof detail);
        w->phase = PHASE_BACKOFF;
        timer_at(w, now + delay);
}

static int on_headers(CurlRequest *req, long status, void *userdata) {
        KubeWatch *w = userdata;

        (void) req;
        if (status != 200)
                return 0;
        w->phase = PHASE_WATCHING;
        w->established_usec = now_usec(w);
        /* An established watch is live again; the backoff resets only once
         * it has stayed up (see STABLE_USEC) or ended cleanly. After a
         * watch died silent, though, the next 200 may be just as dead:
         * only an event or a bookmark proves it alive. */
        if (!w->silence_suspect)
                kube_watch_mark_ok(w);
        timer_at(w, w->established_usec + kube_watch_dead_after_usec(w->timeout_sec));
        return 0;
}

static int setup_request(KubeWatch *w, const char *url, bool watch) {
        const KubeConfig *k = w->client->config;
        CurlTls tls = {
                .ca_file = k->ca_file, .ca_blob = k->ca_data, .ca_blob_size = k->ca_data_size,
                .cert_file = k->cert_file, .cert_blob = k->cert_data, .cert_blob_size = k->cert_data_size,
                .key_file = k->key_file, .key_blob = k->key_data, .key_blob_size = k->key_data_size,
        };
        int r;

        r = curl_request_new(url, &w->req);
        if (r < 0)
                return r;
        r = curl_request_set_tls(w->req, &tls);
        if (r < 0)
                return r;
        r = curl_request_add_header(w->req, "Accept: application/json");
        if (r < 0)
                return r;
        r = kubeconfig_token(k, &w->token_sent);
        if (r < 0)
                return r;
        if (w->token_sent) {
                r = curl_request_set_bearer(w->req, w->token_sent);
                if (r < 0)
                        return r;
        }
        curl_request_set_max_size(w->req, MAX_BODY);
        if (watch) {
                curl_request_set_line_callback(w->req, kube_watch_on_line, w);
                curl_request_set_headers_callback(w->req, on_headers, w);
                /* No total timeout: the deadline timer judges a watch by its silence. */
                return curl_request_set_timeouts(w->req, w->client->request_timeout_usec / USEC_PER_MSEC, 0);
        }
        return curl_request_set_timeouts(w->req, w->client->request_timeout_usec / USEC_PER_MSEC,
                                         w->client->request_timeout_usec / USEC_PER_MSEC);
}

void kube_watch_request(KubeWatch *w, bool watch) {
        _cleanup_free_ char *url = NULL;
        int r;

        assert(w);

        wipe_token(&w->token_sent);
        w->req = curl_request_free(w->req);
        if (watch && (w->need_relist || !w->rv))
                watch = false;

        /* Each request is where a changed kubeconfig (or CA, certificate,
         * key) is noticed; the other watches that are waiting out a
         * failure try the new one now. */
        char was_error[sizeof w->client->config_error];
        memcpy(was_error, w->client->config_error, sizeof was_error);
        if (kube_client_refresh(w->client))
                for (KubeWatch *o = w->client->watches; o; o = o->next)
                        if (o != w && o->phase == PHASE_BACKOFF && o->failing)
                                timer_at(o, now_usec(o));
        /* A configuration that stopped (or started again) to load is health
         * news now, not at the next sync: /readyz says why at once. */
        if (!streq(was_error, w->client->config_error))
                notify_health(w);

        w->timeout_sec = kube_watch_timeout_jitter(w->client->watch_timeout_sec, random_u64());
        r = watch ? kube_url_watch(w->client->config->server, &w->ref, w->rv, w->timeout_sec, &url)
                  : kube_url_list(w->client->config->server, &w->ref, &url);
        if (r < 0) {
                /* Whatever made the URL impossible (a resourceVersion that
                 * slipped through) must not be tried again: the next
                 * attempt starts over from a list. */
                free(w->rv);
                w->rv = NULL;
                w->need_relist = true;
                kube_watch_fail(w, "cannot build the request URL: %s", strerror(-r));
                return;
        }

        r = setup_request(w, url, watch);
        if (r == -ENOENT || r == -EACCES || r == -EBADMSG) {
                kube_watch_fail(w, "cannot read the token file '%s': %s",
                                w->client->config->token_file ? w->client->config->token_file : "-",
                                strerror(-r));
                return;
        }
        if (r < 0) {
                kube_watch_fail(w, "cannot set up the request: %s", strerror(-r));
                return;
        }

        w->phase = watch ? PHASE_CONNECTING : PHASE_LISTING;
        w->lines = 0;
        w->started_usec = now_usec(w);
        r = curl_request_start(w->req, w->client->glue, kube_watch_on_done, w);
        if (r < 0) {
                kube_watch_fail(w, "cannot start the request: %s", strerror(-r));
                return;
        }
        /* Until the 200 arrives, the request timeout is the deadline; curl
         * enforces it for lists, the timer for watches. */
        if (watch)
                timer_at(w, w->started_usec + w->client->request_timeout_usec);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        KubeWatch *w = userdata;

        (void) s;
        (void) usec;
        switch (w->phase) {
        case PHASE_BACKOFF:
                kube_watch_request(w, !w->need_relist && w->synced);
                break;
        case PHASE_CONNECTING:
                kube_watch_fail(w, "no answer to the watch request within %llu s",
                                (unsigned long long) (w->client->request_timeout_usec / USEC_PER_SEC));
                break;
        case PHASE_WATCHING:
                /* The server promised to end the watch by timeoutSeconds;
                 * this silence means the stream is dead, whatever TCP says. */
                w->silence_suspect = true;
                kube_watch_fail(w, "watch silent for more than %llu s (timeoutSeconds=%u), restarting it",
                                (unsigned long long) (kube_watch_dead_after_usec(w->timeout_sec) / USEC_PER_SEC),
                                w->timeout_sec);
                break;
        default:
                break;
        }
        return 0;
}

static int on_defer(sd_event_source *s, void *userdata) {
        KubeWatch *w = userdata;
        bool changed = w->changed, health_changed = w->health_changed;

        (void) s;
        w->changed = w->health_changed = false;
        /* The owner may free other watches (not this one). Health last:
         * the owner's answer to a change (following another config map)
         * changes its health too, and should be judged whole. */
        if (changed && w->cb)
                w->cb(w, w->userdata);
        if (health_changed && w->health_cb)
                w->health_cb(w, w->userdata);
        return 0;
}

int kube_watch_new(KubeClient *c, const KubeObjectRef *ref, kube_watch_change_t on_change,
                   kube_watch_change_t on_health, void *userdata, KubeWatch **ret) {
        _cleanup_(kube_watch_freep) KubeWatch *w = NULL;
        char description[96];
        int r;

        assert(c);
        assert(ref);
        assert(ret);

        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->client = c;
        w->next = c->watches;
        if (c->watches)
                c->watches->prev = w;
        c->watches = w;
        w->cb = on_change;
        w->health_cb = on_health;
        w->userdata = userdata;
        w->group_version = strdup(ref->group_version);
        w->namespace = ref->namespace ? strdup(ref->namespace) : NULL;
        w->resource = strdup(ref->resource);
        w->name = strdup(ref->name);
        w->kind = ref->kind ? strdup(ref->kind) : NULL;
        if (!w->group_version || (ref->namespace && !w->namespace) || !w->resource || !w->name ||
            (ref->kind && !w->kind))
                return -ENOMEM;
        w->ref = (KubeObjectRef){ w->group_version, w->namespace, w->resource, w->name, w->kind };
        r = kube_ref_describe(&w->ref, &w->what);
        if (r < 0)
                return r;

        r = sd_event_add_time(c->event, &w->timer, CLOCK_MONOTONIC, 0, USEC_PER_MSEC, on_timer, w);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(w->timer, SD_EVENT_OFF);
        /* Named for the object: a source has several watches. */
        snprintf(description, sizeof description, "kube-watch-timer %s", w->what);
        (void) sd_event_source_set_description(w->timer, description);
        r = sd_event_add_defer(c->event, &w->defer, on_defer, w);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(w->defer, SD_EVENT_OFF);
        snprintf(description, sizeof description, "kube-watch-notify %s", w->what);
        (void) sd_event_source_set_description(w->defer, description);

        *ret = TAKE_PTR(w);
        return 0;
}

KubeWatch *kube_watch_free(KubeWatch *w) {
        if (!w)
                return NULL;
        if (w->prev)
                w->prev->next = w->next;
        else if (w->client->watches == w)
                w->client->watches = w->next;
        if (w->next)
                w->next->prev = w->prev;
        curl_request_free(w->req);
        wipe_token(&w->token_sent);
        sd_event_source_disable_unref(w->timer);
        sd_event_source_disable_unref(w->defer);
        json_decref(w->object);
        free(w->rv);
        free(w->what);
        free(w->group_version);
        free(w->namespace);
        free(w->resource);
        free(w->name);
        free(w->kind);
        free(w);
        return NULL;
}

int kube_watch_start(KubeWatch *w) {
        assert(w);

        if (w->phase != PHASE_IDLE)
                return -EBUSY;
        kube_watch_request(w, false);
        return 0;
}

void kube_watch_set_optional(KubeWatch *w, bool optional) {
        assert(w);
        w->optional = optional;
}

void kube_watch_set_check(KubeWatch *w, kube_object_check_t check) {
        assert(w);
        w->check = check;
}

bool kube_watch_synced(const KubeWatch *w) {
        assert(w);
        return w->synced;
}

bool kube_watch_good(const KubeWatch *w) {
        assert(w);
        return w->good;
}

json_t *kube_watch_object(const KubeWatch *w) {
        assert(w);
        return w->object;
}

const char *kube_watch_resource_version(const KubeWatch *w) {
        assert(w);
        return w->rv;
}

const char *kube_watch_name(const KubeWatch *w) {
        assert(w);
        return w->name;
}

const char *kube_watch_describe(const KubeWatch *w) {
        assert(w);
        return w->what;
}

bool kube_watch_healthy(KubeWatch *w, const char **reason) {
        assert(w);
        assert(reason);

        if (w->failing) {
                snprintf(w->reason, sizeof w->reason, "%s: %s", w->what, w->detail);
                *reason = w->reason;
                return false;
        }
        /* After the connection: a refused object is only news while the
         * server can still be heard. */
        if (w->invalid[0]) {
                snprintf(w->reason, sizeof w->reason, "%s: %s; %s", w->what, w->invalid,
                         w->good ? "keeping the last good one" : "nothing taken from it yet");
                *reason = w->reason;
                return false;
        }
        if (!w->synced) {
                snprintf(w->reason, sizeof w->reason, "%s: not listed yet", w->what);
                *reason = w->reason;
                return false;
        }
        return true;
}
