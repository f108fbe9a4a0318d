/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Inside one Kubernetes watch (source-kube-watch.c, its life and the
 * request/backoff state machine on the loop; source-kube-watch-reply.c,
 * what a list, a watch event or the end of a request means for the object,
 * its resourceVersion and what happens next): not for its users, who have
 * source-kube-watch.h.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "source-kube-check.h"
#include "source-kube-watch.h"

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
        char *group_version, *namespace, *resource, *name, *kind;
        KubeObjectRef ref;
        char *what;

        Phase phase;
        CurlRequest *req;
        char *token_sent;
        unsigned timeout_sec;
        uint64_t started_usec, established_usec;

        bool synced;   /* listed at least once (whatever the object was) */
        bool good;     /* an object (or its absence) passed the checks: object is the last good */
        json_t *object;
        kube_object_check_t check; /* what the object must look like, besides its kind */
        char invalid[200];         /* why the object the server sent last was refused; "" when it was not */
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
        bool changed;          /* for cb */
        bool health_changed;   /* for health_cb */
        kube_watch_change_t cb;
        kube_watch_change_t health_cb;
        void *userdata;

        bool optional;         /* 403/404: treat as absent */
        bool forbidden_logged;
};

static inline uint64_t now_usec(KubeWatch *w) {
        uint64_t t = 0;

        (void) sd_event_now(w->client->event, CLOCK_MONOTONIC, &t);
        return t;
}

static inline void wipe_token(char **t) {
        if (*t) {
                explicit_bzero(*t, strlen(*t));
                free(*t);
                *t = NULL;
        }
}

static inline void timer_at(KubeWatch *w, uint64_t usec) {
        (void) sd_event_source_set_time(w->timer, usec);
        (void) sd_event_source_set_enabled(w->timer, SD_EVENT_ONESHOT);
}

/* What kube_watch_healthy() answers may have changed: tell the owner from
 * the loop, as for the object, since it may look at every watch. */
static inline void notify_health(KubeWatch *w) {
        w->health_changed = true;
        (void) sd_event_source_set_enabled(w->defer, SD_EVENT_ONESHOT);
}

/* The server answers again: healthy, and the other watches of the client
 * retry now rather than at the end of their backoff. */
void kube_watch_mark_ok(KubeWatch *w);
/* Something went wrong: log, mark unhealthy, try again after the backoff. */
_printf_(2, 3) void kube_watch_fail(KubeWatch *w, const char *fmt, ...);
/* Send the next request: a watch from the resourceVersion, or a list when
 * there is none or a relist is due. Failures go to kube_watch_fail(). */
void kube_watch_request(KubeWatch *w, bool watch);

/* The CurlRequest callbacks for a watch's lines and for a request's end. */
int kube_watch_on_line(CurlRequest *req, char *line, size_t len, void *userdata);
void kube_watch_on_done(CurlRequest *req, int error, void *userdata);
