/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * One interface for every place the trust config map and pull secret come
 * from: a mounted volume / plain directory (source-dir.c) or the Kubernetes
 * API (source-kube.c). The manager does not care which.
 *
 * A source watches on the manager's sd_event loop and calls
 * on_change(userdata) whenever its content may have changed (the manager
 * debounces and then calls source_read()). It never applies anything itself.
 *
 * Health is pushed, not polled: the source also calls
 * on_health_change(userdata), through source_notify_health(), whenever
 * what healthy() answers may have changed (a watch starts failing,
 * recovers, fails differently or is listed for the first time; a
 * directory goes away or comes back). The manager asks healthy() once
 * after start() and again after each call, and hands the answer on as
 * plain data. A call may be spurious (the answer did not change). Both
 * come from the loop, never from inside read() or healthy(); the callee
 * must not free the source. Either callback may be NULL.
 */

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "snapshot.h"

typedef struct Source Source;

typedef void (*source_change_cb)(void *userdata);

typedef struct SourceOps {
        const char *kind; /* "dir" or "kube" */
        /* Begin watching on the loop. */
        int (*start)(Source *s, sd_event *event);
        /* Build a snapshot of the current content. -EAGAIN: nothing yet
         * (e.g. the first list has not completed); other negative errno:
         * the source could not be read (the manager keeps the last good). */
        int (*read)(Source *s, Snapshot **ret);
        /* true when the source is live; false with a reason (static string
         * or owned by the source) when e.g. a watch is dead or reconnecting. */
        bool (*healthy)(Source *s, const char **reason);
        void (*free)(Source *s);
} SourceOps;

struct Source {
        const SourceOps *ops;
        source_change_cb on_change;
        source_change_cb on_health_change; /* same userdata */
        void *userdata;
};

static inline int source_start(Source *s, sd_event *e) {
        return s->ops->start(s, e);
}
static inline int source_read(Source *s, Snapshot **ret) {
        return s->ops->read(s, ret);
}
static inline bool source_healthy(Source *s, const char **reason) {
        if (!s->ops->healthy)
                return true;
        return s->ops->healthy(s, reason);
}
static inline Source *source_free(Source *s) {
        if (s)
                s->ops->free(s);
        return NULL;
}
static inline void source_freep(Source **s) {
        source_free(*s);
}
static inline void source_notify(Source *s) {
        if (s->on_change)
                s->on_change(s->userdata);
}
/* Tell the manager that what source_healthy() answers may have changed. */
static inline void source_notify_health(Source *s) {
        if (s->on_health_change)
                s->on_health_change(s->userdata);
}
