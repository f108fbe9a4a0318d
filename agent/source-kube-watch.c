/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cleanup.h"
#include "log.h"
#include "source-kube-watch.h"

/* A list of one object is small; a config map is at most 1 MiB of data,
 * which JSON escaping and base64 can nearly double. */
#define MAX_BODY (8u * 1024 * 1024)
/* A watch that was up this long before failing starts the backoff over. */
#define STABLE_USEC (60 * USEC_PER_SEC)
/* A watch that ends cleanly sooner than this counts as a failure, so a
 * server that closes every watch at once cannot make us spin. */
#define MIN_WATCH_USEC (1 * USEC_PER_SEC)
/* An optional object we may not read is looked at again this often. */
#define FORBIDDEN_RETRY_USEC (300 * USEC_PER_SEC)

typedef enum Phase {
        PHASE_IDLE,
        PHASE_LISTING,
        PHASE_CONNECTING, /* watch sent, no 200 yet */
        PHASE_WATCHING,   /* 200 in, events flowing */
        PHASE_BACKOFF,
} Phase;

struct KubeWatch {
        KubeClient *client;
        KubeWatch *prev, *next; /* in client->watches */
        char *group_version, *namespace, *resource, *name;
        KubeObjectRef ref;
        char *what;

        Phase phase;
        CurlRequest *req;
        char *token_sent;
        unsigned timeout_sec;
        uint64_t started_usec, established_usec;

        bool synced;
        json_t *object;
        char *rv;
        bool need_relist;
        unsigned lines; /* of the current watch */

        unsigned attempt;      /* consecutive failures, for the backoff */
        bool silence_suspect;  /* the last watch died silent: a 200 alone proves nothing */
        bool failing;          /* a failure since the last success */
        unsigned auth_retries; /* immediate retries after a 401 with a new token */
        char detail[200];      /* the last failure */
        char reason[320];      /* what healthy() says */

        sd_event_source *timer; /* the deadline of a request, or the end of a backoff */
        sd_event_source *defer; /* tells the owner, outside any curl callback */
        bool changed;
        kube_watch_change_t cb;
        void *userdata;

        bool optional;         /* 403/404: treat as absent */
        bool forbidden_logged;
};

static uint64_t random_u64(void) {
        uint64_t v;

        if (getrandom(&v, sizeof v, GRND_NONBLOCK) != sizeof v)
                v = (uint64_t) random() << 32 ^ (uint64_t) random();
        return v;
}

static uint64_t now_usec(KubeWatch *w) {
        uint64_t t = 0;

        (void) sd_event_now(w->client->event, CLOCK_MONOTONIC, &t);
        return t;
}

static void json_unrefp(json_t **j) {
        if (*j)
                json_decref(*j);
}

static void wipe_token(char **t) {
        if (*t) {
                explicit_bzero(*t, strlen(*t));
                free(*t);
                *t = NULL;
        }
}

static void timer_at(KubeWatch *w, uint64_t usec) {
        (void) sd_event_source_set_time(w->timer, usec);
        (void) sd_event_source_set_enabled(w->timer, SD_EVENT_ONESHOT);
}

static void notify_owner(KubeWatch *w) {
        w->changed = true;
        (void) sd_event_source_set_enabled(w->defer, SD_EVENT_ONESHOT);
}

static void set_object(KubeWatch *w, json_t *obj) {
        const char *old_rv = w->object ? kube_object_rv(w->object) : NULL;
        const char *new_rv = obj ? kube_object_rv(obj) : NULL;
        bool same = (!w->object && !obj) || (old_rv && new_rv && streq(old_rv, new_rv));

        if (w->object)
                json_decref(w->object);
        w->object = obj ? json_incref(obj) : NULL;
        if (!same)
                notify_owner(w);
}

static int set_rv(KubeWatch *w, const char *rv) {
        char *c = strdup(rv);

        if (!c)
                return -ENOMEM;
        free(w->rv);
        w->rv = c;
        return 0;
}

static void mark_ok(KubeWatch *w) {
        if (w->failing) {
                log_full(LOG_INFO, "Kubernetes watch recovered", "OBJECT=%s", w->what, NULL);
                /* The server answers again: the other watches need not sit
                 * out their backoff (up to 30 s) to find that out. */
                for (KubeWatch *o = w->client->watches; o; o = o->next)
                        if (o != w && o->phase == PHASE_BACKOFF && o->failing)
                                timer_at(o, now_usec(o));
        }
        w->failing = false;
        w->auth_retries = 0;
        w->detail[0] = 0;
}

static void start_request(KubeWatch *w, bool watch);

/* Something went wrong: say so (once per streak, then only changes), mark
 * unhealthy and try again after the backoff. */
_printf_(2, 3) static void watch_failed(KubeWatch *w, const char *fmt, ...) {
        char detail[sizeof w->detail];
        uint64_t now = now_usec(w), delay;
        bool same;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);

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
                mark_ok(w);
        timer_at(w, w->established_usec + kube_watch_dead_after_usec(w->timeout_sec));
        return 0;
}

static int on_line(CurlRequest *req, char *line, size_t len, void *userdata) {
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
                mark_ok(w);
        }

        r = kube_event_parse(line, len, &e);
        if (r < 0) {
                snprintf(w->detail, sizeof w->detail, "unparseable watch event");
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
                        set_object(w, e.type == KUBE_EVENT_DELETED ? NULL : e.object);
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
                        start_request(w, watch);
                        return;
                }
        }
        watch_failed(w, "401 Unauthorized: the API server rejected the credentials");
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
        mark_ok(w);
        set_object(w, NULL);
        if (!w->synced) {
                w->synced = true;
                notify_owner(w);
        }
        w->need_relist = true;
        w->phase = PHASE_BACKOFF;
        timer_at(w, now_usec(w) + FORBIDDEN_RETRY_USEC);
}

static void on_list_done(KubeWatch *w, int error) {
        _cleanup_(json_unrefp) json_t *obj = NULL;
        _cleanup_free_ char *rv = NULL;
        long status = curl_request_status(w->req);
        const char *body;
        char http[240];
        size_t n;
        int r;

        if (error < 0) {
                watch_failed(w, "list failed: %s",
                             *curl_request_error_message(w->req) ? curl_request_error_message(w->req)
                                                                 : strerror(-error));
                return;
        }
        if (status == 401) {
                handle_unauthorized(w, false);
                return;
        }
        if (w->optional && (status == 403 || status == 404)) {
                optional_absent(w, status);
                return;
        }
        if (status != 200) {
                describe_http_error(w, http, sizeof http);
                watch_failed(w, "list failed: %s", http);
                return;
        }
        body = curl_request_body(w->req, &n);
        r = kube_list_parse(body, n, w->name, &obj, &rv);
        if (r < 0) {
                watch_failed(w, "list failed: the response is not a %s list", w->resource);
                return;
        }

        w->req = curl_request_free(w->req);
        wipe_token(&w->token_sent);
        if (set_rv(w, rv) < 0) {
                watch_failed(w, "out of memory");
                return;
        }
        w->attempt = 0;
        w->need_relist = false;
        mark_ok(w);
        set_object(w, obj);
        if (!w->synced) {
                w->synced = true;
                notify_owner(w);
        }
        log_debug("Kubernetes %s: listed at resourceVersion %s (%s)", w->what, w->rv,
                  obj ? "present" : "absent");
        start_request(w, true);
}

static void on_watch_done(KubeWatch *w, int error) {
        long status = curl_request_status(w->req);
        uint64_t lasted = now_usec(w) - w->started_usec;
        char http[240];

        if (error == -ESTALE || (error == 0 && status == 410)) {
                /* Our resourceVersion left the server's history: that is the
                 * protocol, not a failure. Start over from a fresh list. */
                log_info("Kubernetes %s: resourceVersion %s expired (410 Gone), relisting", w->what,
                         w->rv ? w->rv : "-");
                w->req = curl_request_free(w->req);
                w->need_relist = true;
                start_request(w, false);
                return;
        }
        if (error == -EBADMSG) {
                w->need_relist = true; /* events may have been missed */
                watch_failed(w, "%s", w->detail);
                return;
        }
        if (error == -EPROTO) {
                watch_failed(w, "%s", w->detail);
                return;
        }
        if (error < 0) {
                watch_failed(w, "watch %s: %s", w->phase == PHASE_WATCHING ? "dropped" : "failed",
                             *curl_request_error_message(w->req) ? curl_request_error_message(w->req)
                                                                 : strerror(-error));
                return;
        }
        if (status == 401) {
                handle_unauthorized(w, true);
                return;
        }
        if (w->optional && (status == 403 || status == 404)) {
                optional_absent(w, status);
                return;
        }
        if (status != 200) {
                describe_http_error(w, http, sizeof http);
                watch_failed(w, "watch failed: %s", http);
                return;
        }
        if (lasted < MIN_WATCH_USEC && w->lines == 0) {
                watch_failed(w, "watch ended at once without an event");
                return;
        }

        /* The server ended the watch at timeoutSeconds: resume at once. */
        if (w->silence_suspect) {
                w->silence_suspect = false;
                mark_ok(w);
        }
        log_debug("Kubernetes %s: watch ended after %.1f s, resuming from %s", w->what,
                  (double) lasted / USEC_PER_SEC, w->rv);
        w->req = curl_request_free(w->req);
        w->attempt = 0;
        start_request(w, true);
}

static void on_request_done(CurlRequest *req, int error, void *userdata) {
        KubeWatch *w = userdata;

        (void) req;
        (void) sd_event_source_set_enabled(w->timer, SD_EVENT_OFF);
        if (w->phase == PHASE_LISTING)
                on_list_done(w, error);
        else
                on_watch_done(w, error);
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
                curl_request_set_line_callback(w->req, on_line, w);
                curl_request_set_headers_callback(w->req, on_headers, w);
                /* No total timeout: the deadline timer judges a watch by its silence. */
                return curl_request_set_timeouts(w->req, w->client->request_timeout_usec / USEC_PER_MSEC, 0);
        }
        return curl_request_set_timeouts(w->req, w->client->request_timeout_usec / USEC_PER_MSEC,
                                         w->client->request_timeout_usec / USEC_PER_MSEC);
}

static void start_request(KubeWatch *w, bool watch) {
        _cleanup_free_ char *url = NULL;
        int r;

        wipe_token(&w->token_sent);
        w->req = curl_request_free(w->req);
        if (watch && (w->need_relist || !w->rv))
                watch = false;

        w->timeout_sec = kube_watch_timeout_jitter(w->client->watch_timeout_sec, random_u64());
        r = watch ? kube_url_watch(w->client->config->server, &w->ref, w->rv, w->timeout_sec, &url)
                  : kube_url_list(w->client->config->server, &w->ref, &url);
        if (r < 0) {
                watch_failed(w, "cannot build the request URL: %s", strerror(-r));
                return;
        }

        r = setup_request(w, url, watch);
        if (r == -ENOENT || r == -EACCES || r == -EBADMSG) {
                watch_failed(w, "cannot read the token file '%s': %s",
                             w->client->config->token_file ? w->client->config->token_file : "-",
                             strerror(-r));
                return;
        }
        if (r < 0) {
                watch_failed(w, "cannot set up the request: %s", strerror(-r));
                return;
        }

        w->phase = watch ? PHASE_CONNECTING : PHASE_LISTING;
        w->lines = 0;
        w->started_usec = now_usec(w);
        r = curl_request_start(w->req, w->client->glue, on_request_done, w);
        if (r < 0) {
                watch_failed(w, "cannot start the request: %s", strerror(-r));
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
                start_request(w, !w->need_relist && w->synced);
                break;
        case PHASE_CONNECTING:
                watch_failed(w, "no answer to the watch request within %llu s",
                             (unsigned long long) (w->client->request_timeout_usec / USEC_PER_SEC));
                break;
        case PHASE_WATCHING:
                /* The server promised to end the watch by timeoutSeconds;
                 * this silence means the stream is dead, whatever TCP says. */
                w->silence_suspect = true;
                watch_failed(w, "watch silent for more than %llu s (timeoutSeconds=%u), restarting it",
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

        (void) s;
        if (!w->changed)
                return 0;
        w->changed = false;
        /* Last: the owner may free other watches (not this one). */
        if (w->cb)
                w->cb(w, w->userdata);
        return 0;
}

int kube_watch_new(KubeClient *c, const KubeObjectRef *ref, kube_watch_change_t cb, void *userdata, KubeWatch **ret) {
        _cleanup_(kube_watch_freep) KubeWatch *w = calloc(1, sizeof *w);
        int r;

        if (!w)
                return -ENOMEM;
        w->client = c;
        w->next = c->watches;
        if (c->watches)
                c->watches->prev = w;
        c->watches = w;
        w->cb = cb;
        w->userdata = userdata;
        w->group_version = strdup(ref->group_version);
        w->namespace = ref->namespace ? strdup(ref->namespace) : NULL;
        w->resource = strdup(ref->resource);
        w->name = strdup(ref->name);
        if (!w->group_version || (ref->namespace && !w->namespace) || !w->resource || !w->name)
                return -ENOMEM;
        w->ref = (KubeObjectRef){ w->group_version, w->namespace, w->resource, w->name };
        r = kube_ref_describe(&w->ref, &w->what);
        if (r < 0)
                return r;

        r = sd_event_add_time(c->event, &w->timer, CLOCK_MONOTONIC, 0, USEC_PER_MSEC, on_timer, w);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(w->timer, SD_EVENT_OFF);
        r = sd_event_add_defer(c->event, &w->defer, on_defer, w);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(w->defer, SD_EVENT_OFF);

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
        if (w->object)
                json_decref(w->object);
        free(w->rv);
        free(w->what);
        free(w->group_version);
        free(w->namespace);
        free(w->resource);
        free(w->name);
        free(w);
        return NULL;
}

int kube_watch_start(KubeWatch *w) {
        if (w->phase != PHASE_IDLE)
                return -EBUSY;
        start_request(w, false);
        return 0;
}

void kube_watch_set_optional(KubeWatch *w, bool optional) {
        w->optional = optional;
}

bool kube_watch_synced(const KubeWatch *w) {
        return w->synced;
}

json_t *kube_watch_object(const KubeWatch *w) {
        return w->object;
}

const char *kube_watch_resource_version(const KubeWatch *w) {
        return w->rv;
}

const char *kube_watch_name(const KubeWatch *w) {
        return w->name;
}

const char *kube_watch_describe(const KubeWatch *w) {
        return w->what;
}

bool kube_watch_healthy(KubeWatch *w, const char **reason) {
        if (w->failing) {
                snprintf(w->reason, sizeof w->reason, "%s: %s", w->what, w->detail);
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
