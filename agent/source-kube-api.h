/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The Kubernetes list/watch protocol as plain functions, no I/O: request
 * URLs, list bodies, watch event lines, Status objects, reading the
 * objects nodetrustd follows, and the reconnect backoff. Everything the
 * loop-driven watch (source-kube-watch.c) decides is decided here, so it
 * can be tested without a server.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "source-kube-check.h" /* kube_name_is_valid(), kube_check_kind() */

/* One object watched through its collection with a name field selector:
 * RBAC can then grant list/watch on exactly that resourceName. */
typedef struct KubeObjectRef {
        const char *group_version; /* "v1" (core) or "config.openshift.io/v1" */
        const char *namespace;     /* NULL: cluster-scoped */
        const char *resource;      /* plural: "configmaps", "secrets", "images" */
        const char *name;
        const char *kind;          /* "ConfigMap", "Secret", "Image"; its list is KIND "List" */
} KubeObjectRef;


/* A resourceVersion we can send back: opaque, but never more than 128 of
 * [0-9A-Za-z-_.] (etcd's are decimal numbers), so it needs no escaping in
 * a URL. One the server sends that is not is a protocol error. */
bool kube_rv_is_valid(const char *rv);

/* The collection URL with ?fieldSelector=metadata.name=NAME; for a watch
 * also &watch=1, &resourceVersion=RV (when not NULL), &allowWatchBookmarks
 * and &timeoutSeconds. */
int kube_url_list(const char *server, const KubeObjectRef *ref, char **ret);
int kube_url_watch(const char *server, const KubeObjectRef *ref, const char *rv, unsigned timeout_sec, char **ret);

/* "configmap openshift-config/registry-cas", for logs and health. */
int kube_ref_describe(const KubeObjectRef *ref, char **ret);

/* Parse a list response: its metadata.resourceVersion and the item named
 * ref->name (a new reference, or NULL when there is none). -EBADMSG, with
 * what is wrong in err, when the body is not ref's list (kind KIND "List"
 * and ref's apiVersion, a valid resourceVersion, items an array). */
int kube_list_parse(const char *body, size_t size, const KubeObjectRef *ref, json_t **ret_object, char **ret_rv,
                    char *err, size_t err_size);

typedef enum KubeEventType {
        KUBE_EVENT_ADDED,
        KUBE_EVENT_MODIFIED,
        KUBE_EVENT_DELETED,
        KUBE_EVENT_BOOKMARK,
        KUBE_EVENT_ERROR,
} KubeEventType;

typedef struct KubeEvent {
        KubeEventType type;
        json_t *object;               /* owned reference */
        const char *resource_version; /* the object's; NULL for ERROR */
        const char *name;             /* the object's metadata.name, if any */
        int code;                     /* ERROR: the Status code (410: too old) */
        const char *message;          /* ERROR: the Status message or reason */
} KubeEvent;

/* Parse one watch line {"type": ..., "object": {...}}; -EBADMSG when it is
 * not one (bad JSON, unknown type, an object without a valid
 * resourceVersion: see kube_rv_is_valid()). */
int kube_event_parse(const char *line, size_t len, KubeEvent *ret);
void kube_event_done(KubeEvent *e);

/* Best effort: the code and message of a Status body (an HTTP error). */
void kube_status_parse(const char *body, size_t size, int *ret_code, char **ret_message);

/* metadata.resourceVersion of an object (NULL when missing). */
const char *kube_object_rv(json_t *object);

/* image.config's spec.additionalTrustedCA.name (NULL when unset or empty). */
const char *kube_image_trusted_ca_name(json_t *image);

/* Call cb for each entry of a config map: data values as-is, binaryData
 * values base64-decoded. -EBADMSG when a value is not a string or not
 * base64; a negative return from cb stops the walk and is returned. */
typedef int (*kube_configmap_entry_cb)(const char *key, const void *value, size_t size, void *userdata);
int kube_configmap_foreach(json_t *configmap, kube_configmap_entry_cb cb, void *userdata);

/* The base64-decoded data[key] of a secret (-ENOENT when absent). The
 * caller wipes and frees *ret. */
int kube_secret_get(json_t *secret, const char *key, unsigned char **ret, size_t *ret_size);

/* Reconnect delay for the attempt'th consecutive failure (0-based):
 * base * 2^attempt capped at cap, half of it fixed and half random
 * ("equal jitter": never hot-loops, and a fleet does not reconnect in
 * step). rnd is any random 64-bit number. */
uint64_t kube_backoff_usec(unsigned attempt, uint64_t base_usec, uint64_t cap_usec, uint64_t rnd);

/* The timeoutSeconds to ask for: base..base*5/4, so a fleet's watches do
 * not all end at the same moment. */
unsigned kube_watch_timeout_jitter(unsigned base_sec, uint64_t rnd);

/* How long a watch may be silent before it counts as dead: its timeout
 * (the server must end it by then) plus a margin. */
uint64_t kube_watch_dead_after_usec(unsigned timeout_sec);
