/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * One Kubernetes object kept current on the sd_event loop: list it (with a
 * name field selector), then watch from the list's resourceVersion with
 * bookmarks, forever. On a clean end (timeoutSeconds) re-watch at once; on
 * 410 Gone relist; on a dropped, failed or dead (silent too long) watch
 * re-watch after an exponential backoff with jitter; on 401 re-read the
 * token and retry. The owner is told (from the loop, never from inside
 * curl) whenever the object may have changed, and whenever what
 * kube_watch_healthy() answers may have changed.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "curl-request.h"
#include "source-kube-api.h"
#include "source-kube-check.h"
#include "source-kube-client.h"
#include "source-kube-config.h"

/* on_change: the object (or its absence) may have changed, or it was
 * listed for the first time. on_health: the watch started failing,
 * recovered, fails differently now or was listed for the first time. */
typedef void (*kube_watch_change_t)(KubeWatch *w, void *userdata);

/* A watch of ref (strings copied) on c; nothing happens before
 * kube_watch_start(). Either callback may be NULL; both get userdata. */
int kube_watch_new(KubeClient *c, const KubeObjectRef *ref, kube_watch_change_t on_change,
                   kube_watch_change_t on_health, void *userdata, KubeWatch **ret);
/* Stop everything (no more callbacks) and free; NULL is fine. */
KubeWatch *kube_watch_free(KubeWatch *w);
static inline void kube_watch_freep(KubeWatch **w) {
        kube_watch_free(*w);
}

/* An optional object that the server refuses (403) or does not know (404)
 * counts as absent instead of failing; it is looked at again every 5 min. */
void kube_watch_set_optional(KubeWatch *w, bool optional);

/* What the object must look like besides its kind and apiVersion (which
 * are always checked against the ref). An object that fails is not taken:
 * the watch keeps the last good one and is unhealthy, saying why, until
 * the server sends one that passes. */
void kube_watch_set_check(KubeWatch *w, kube_object_check_t check);

/* Begin with a list. */
int kube_watch_start(KubeWatch *w);

/* The first list has completed (whether or not its object passed). */
bool kube_watch_synced(const KubeWatch *w);
/* An object (or its absence) has passed the checks: object() is meaningful. */
bool kube_watch_good(const KubeWatch *w);
/* The last good object (borrowed), NULL when it does not exist. */
json_t *kube_watch_object(const KubeWatch *w);
/* The resourceVersion the next watch resumes from. */
const char *kube_watch_resource_version(const KubeWatch *w);
/* The watched object's name. */
const char *kube_watch_name(const KubeWatch *w);
/* "configmap openshift-config/registry-cas". */
const char *kube_watch_describe(const KubeWatch *w);

/* true when synced and nothing has failed since the last success; else
 * false with a reason (owned by w, valid until the next loop iteration). */
bool kube_watch_healthy(KubeWatch *w, const char **reason);
