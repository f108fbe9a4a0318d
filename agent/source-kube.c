/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "log.h"
#include "source-kube-client.h"
#include "source-kube-config.h"
#include "source-kube-watch.h"
#include "source-kube.h"


#define TRUST_NAMESPACE "openshift-config"
#define PULL_SECRET_NAME "pull-secret"
#define PULL_SECRET_KEY ".dockerconfigjson"
#define REGISTRY_CA_NAMESPACE "openshift-config-managed"
#define REGISTRY_CA_NAME "image-registry-ca"
/* Changes closer together than this reach the manager as one: a stream of
 * updates (a controller rewriting the map in a loop, 50 edits from a
 * script) costs a sync per interval, not one per event. The first change
 * after a quiet interval goes at once. The directory source needs none of
 * its own: the kubelet's swap of a volume arrives in one inotify read,
 * which the manager's 1 ms delay already makes one sync. */
#define CHANGE_INTERVAL_USEC (100 * USEC_PER_MSEC)

typedef struct SourceKube {
        Source source; /* first: the manager holds a Source * */
        KubeClient client;
        KubeWatch *image;       /* image.config.openshift.io/cluster */
        KubeWatch *trust;       /* the config map it names; NULL when none */
        KubeWatch *pull;        /* openshift-config/pull-secret */
        KubeWatch *registry_ca; /* openshift-config-managed/image-registry-ca */
        char *bad_name;         /* the config map image.config names, when it cannot be watched */
        char reason[320];
        sd_event_source *change_timer; /* the end of the current CHANGE_INTERVAL_USEC */
        uint64_t last_change_usec;     /* when the manager was last told */
} SourceKube;

static const KubeObjectRef image_ref = { "config.openshift.io/v1", NULL, "images", "cluster", "Image" };
static const KubeObjectRef pull_ref = { "v1", TRUST_NAMESPACE, "secrets", PULL_SECRET_NAME, "Secret" };
static const KubeObjectRef registry_ca_ref = { "v1", REGISTRY_CA_NAMESPACE, "configmaps", REGISTRY_CA_NAME,
                                               "ConfigMap" };

static bool source_kube_complete(SourceKube *s) {
        return kube_watch_synced(s->image) && kube_watch_synced(s->pull) && kube_watch_synced(s->registry_ca) &&
               (!s->trust || kube_watch_synced(s->trust));
}

static int on_change_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        SourceKube *s = userdata;

        (void) src;
        s->last_change_usec = usec;
        source_notify(&s->source);
        return 0;
}

/* Tell the manager, at most once per CHANGE_INTERVAL_USEC. */
static void source_kube_changed(SourceKube *s) {
        int enabled = SD_EVENT_OFF;
        uint64_t now = 0;

        (void) sd_event_source_get_enabled(s->change_timer, &enabled);
        if (enabled != SD_EVENT_OFF)
                return; /* already due at the end of this interval */
        (void) sd_event_now(s->client.event, CLOCK_MONOTONIC, &now);
        if (s->last_change_usec == 0 || now >= s->last_change_usec + CHANGE_INTERVAL_USEC) {
                s->last_change_usec = now;
                source_notify(&s->source);
                return;
        }
        (void) sd_event_source_set_time(s->change_timer, s->last_change_usec + CHANGE_INTERVAL_USEC);
        (void) sd_event_source_set_enabled(s->change_timer, SD_EVENT_ONESHOT);
}

static void on_watch_change(KubeWatch *w, void *userdata) {
        SourceKube *s = userdata;

        (void) w;
        /* Until every object has been listed a snapshot would be partial;
         * the manager is told once it is whole. */
        if (source_kube_complete(s))
                source_kube_changed(s);
}

static void on_watch_health(KubeWatch *w, void *userdata) {
        SourceKube *s = userdata;

        (void) w;
        source_notify_health(&s->source);
}

/* image.config changed: watch the config map it names now, and only that.
 * s->bad_name starts out NULL and is set when name cannot be watched.
 * Returns true when the trust watch was replaced or dropped. */
static bool follow_trusted_ca(SourceKube *s, KubeWatch *w, const char *name) {
        const char *cur = s->trust ? kube_watch_name(s->trust) : NULL;
        int r;

        /* kube_check_image() let through only valid names. */
        assert(!name || kube_name_is_valid(name));

        if ((!name && !cur) || (name && cur && streq(name, cur))) {
                on_watch_change(w, s);
                return false;
        }

        log_full(LOG_INFO, "Following image.config additionalTrustedCA", "CONFIGMAP=%s",
                 name ? name : "(none)", "PREVIOUS=%s", cur ? cur : "(none)", NULL);
        s->trust = kube_watch_free(s->trust);
        if (name) {
                KubeObjectRef ref = { "v1", TRUST_NAMESPACE, "configmaps", name, "ConfigMap" };

                r = kube_watch_new(&s->client, &ref, on_watch_change, on_watch_health, s, &s->trust);
                if (r >= 0) {
                        kube_watch_set_check(s->trust, kube_check_configmap);
                        r = kube_watch_start(s->trust);
                }
                if (r < 0) {
                        /* Out of memory or fds; health says so and a later
                         * image.config event tries again. */
                        log_error_errno(r, "Failed to watch config map %s/%s", TRUST_NAMESPACE, name);
                        s->trust = kube_watch_free(s->trust);
                        s->bad_name = strdup(name);
                        return true;
                }
        }
        /* With no name the trust set is now empty: tell the manager. With a
         * new one, the new watch tells it once listed. */
        on_watch_change(w, s);
        return true;
}

static void on_image_change(KubeWatch *w, void *userdata) {
        SourceKube *s = userdata;
        json_t *image = kube_watch_object(w);
        _cleanup_free_ char *was_bad = TAKE_PTR(s->bad_name);
        bool moved;

        moved = follow_trusted_ca(s, w, image ? kube_image_trusted_ca_name(image) : NULL);
        /* healthy() judges the trust watch and names a bad name: when
         * either changed, say so once, after the whole change, so the
         * manager never reads a half-made one. */
        if (moved || !streq_ptr(was_bad, s->bad_name))
                source_notify_health(&s->source);
}

typedef struct MergeCtx {
        Snapshot *snap;
        bool only_new; /* skip keys already present */
} MergeCtx;

static int add_entry(const char *key, const void *value, size_t size, void *userdata) {
        MergeCtx *m = userdata;

        if (m->only_new)
                for (size_t i = 0; i < m->snap->n_entries; i++)
                        if (streq(m->snap->entries[i].key, key))
                                return 0;
        return snapshot_add_entry(m->snap, key, value, size);
}

static int append_origin(char **origin, const char *what, KubeWatch *w) {
        json_t *o = kube_watch_object(w);
        char *n;

        if (asprintf(&n, "%s%s%s %s", *origin ? *origin : "", *origin ? "; " : "", what,
                     o ? kube_object_rv(o) ? kube_object_rv(o) : "?" : "absent") < 0)
                return -ENOMEM;
        free(*origin);
        *origin = n;
        return 0;
}

static int source_kube_read(Source *src, Snapshot **ret) {
        SourceKube *s = (SourceKube *) src;
        _cleanup_(snapshot_freep) Snapshot *snap = NULL;
        json_t *trust = s->trust ? kube_watch_object(s->trust) : NULL;
        json_t *regca = kube_watch_object(s->registry_ca);
        json_t *pull = kube_watch_object(s->pull);
        _cleanup_free_ char *what = NULL;
        int r;

        if (!source_kube_complete(s))
                return -EAGAIN;
        if (s->bad_name)
                return -EINVAL;
        /* An object that never passed its checks has no last good to
         * stand for it: reading it as absent would prune what it holds.
         * healthy() names the object and the field. */
        if (!kube_watch_good(s->image) || !kube_watch_good(s->registry_ca) || (s->trust && !kube_watch_good(s->trust)))
                return -EBADMSG;

        snap = snapshot_new();
        if (!snap)
                return -ENOMEM;

        /* The admin's config map wins over the operator-generated
         * image-registry-ca on a duplicate key: in OpenShift the latter is
         * a copy of the former plus the internal registry's service CA, so
         * a duplicate can only differ while the operator catches up. */
        if (trust) {
                r = kube_configmap_foreach(trust, add_entry, &(MergeCtx){ snap, false });
                if (r < 0) {
                        log_warning_errno(r, "Config map %s/%s is malformed, keeping the last good trust",
                                          TRUST_NAMESPACE, kube_watch_name(s->trust));
                        return r;
                }
        }
        if (regca) {
                r = kube_configmap_foreach(regca, add_entry, &(MergeCtx){ snap, true });
                if (r < 0) {
                        log_warning_errno(r, "Config map %s/%s is malformed, keeping the last good trust",
                                          REGISTRY_CA_NAMESPACE, REGISTRY_CA_NAME);
                        return r;
                }
        }
        /* An existing but empty config map is an empty trust set too; the
         * difference only shows in the origin. */
        snap->have_trust = trust || regca;
        snapshot_sort(snap);

        if (!kube_watch_good(s->pull)) {
                /* A pull secret that never passed its checks is an invalid
                 * one: nothing is written or pruned from it, and the trust
                 * maps apply all the same, as with the directory source.
                 * The reason lives in the watch, which outlives the sync. */
                const char *why = NULL;

                (void) kube_watch_healthy(s->pull, &why);
                snap->have_pull_secret = true;
                snap->pull_secret_error = why ? why : "the pull secret has not passed its checks";
        } else if (pull) {
                unsigned char *data = NULL;
                size_t size = 0;

                /* kube_check_pull_secret() passed it: the key is there. */
                r = kube_secret_get(pull, PULL_SECRET_KEY, &data, &size);
                if (r < 0) {
                        log_warning_errno(r, "Secret %s/%s key %s is not base64, keeping the last good pull secret",
                                          TRUST_NAMESPACE, PULL_SECRET_NAME, PULL_SECRET_KEY);
                        return r;
                } else {
                        r = snapshot_set_pull_secret(snap, data, size);
                        explicit_bzero(data, size);
                        free(data);
                        if (r < 0)
                                return r;
                }
        }

        if (asprintf(&what, "configmap %s/%s", TRUST_NAMESPACE, s->trust ? kube_watch_name(s->trust) : "(none)") < 0)
                return -ENOMEM;
        r = append_origin(&snap->origin, "image.config cluster", s->image);
        if (r >= 0 && s->trust)
                r = append_origin(&snap->origin, what, s->trust);
        if (r >= 0)
                r = append_origin(&snap->origin, "configmap " REGISTRY_CA_NAMESPACE "/" REGISTRY_CA_NAME, s->registry_ca);
        if (r >= 0)
                r = append_origin(&snap->origin, "secret " TRUST_NAMESPACE "/" PULL_SECRET_NAME, s->pull);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(snap);
        return 0;
}

static bool source_kube_healthy(Source *src, const char **reason) {
        SourceKube *s = (SourceKube *) src;
        KubeWatch *watches[] = { s->image, s->trust, s->pull, s->registry_ca };

        if (s->client.config_error[0]) {
                snprintf(s->reason, sizeof s->reason, "%s; keeping the last good one", s->client.config_error);
                *reason = s->reason;
                return false;
        }
        for (size_t i = 0; i < ELEMENTSOF(watches); i++)
                if (watches[i] && !kube_watch_healthy(watches[i], reason))
                        return false;
        if (s->bad_name) {
                snprintf(s->reason, sizeof s->reason,
                         "image.config additionalTrustedCA names '%.64s', which cannot be watched", s->bad_name);
                *reason = s->reason;
                return false;
        }
        return true;
}

static int source_kube_start(Source *src, sd_event *event) {
        SourceKube *s = (SourceKube *) src;
        int r;

        s->client.event = sd_event_ref(event);
        r = curl_glue_new(event, &s->client.glue);
        if (r < 0)
                return r;
        r = sd_event_add_time(event, &s->change_timer, CLOCK_MONOTONIC, 0, USEC_PER_MSEC, on_change_timer, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(s->change_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(s->change_timer, "kube-source-change");

        r = kube_watch_new(&s->client, &image_ref, on_image_change, on_watch_health, s, &s->image);
        if (r < 0)
                return r;
        r = kube_watch_new(&s->client, &pull_ref, on_watch_change, on_watch_health, s, &s->pull);
        if (r < 0)
                return r;
        r = kube_watch_new(&s->client, &registry_ca_ref, on_watch_change, on_watch_health, s, &s->registry_ca);
        if (r < 0)
                return r;
        /* Not every cluster has it, and RBAC may not grant it. */
        kube_watch_set_optional(s->registry_ca, true);
        kube_watch_set_check(s->image, kube_check_image);
        kube_watch_set_check(s->pull, kube_check_pull_secret);
        kube_watch_set_check(s->registry_ca, kube_check_configmap);

        log_info("Reading trust and pull secret from the Kubernetes API: %s", s->client.config->origin);
        r = kube_watch_start(s->image);
        if (r >= 0)
                r = kube_watch_start(s->pull);
        if (r >= 0)
                r = kube_watch_start(s->registry_ca);
        return r;
}

static void source_kube_free(Source *src) {
        SourceKube *s = (SourceKube *) src;

        /* Watches first: their requests run on the glue. */
        kube_watch_free(s->image);
        kube_watch_free(s->trust);
        kube_watch_free(s->pull);
        kube_watch_free(s->registry_ca);
        sd_event_source_disable_unref(s->change_timer);
        curl_glue_free(s->client.glue);
        sd_event_unref(s->client.event);
        kube_client_done(&s->client);
        free(s->bad_name);
        free(s);
}

static const SourceOps source_kube_ops = {
        .kind = "kube",
        .start = source_kube_start,
        .read = source_kube_read,
        .healthy = source_kube_healthy,
        .free = source_kube_free,
};

int source_kube_new(const char *kubeconfig_path, unsigned watch_timeout_sec, Source **ret) {
        _cleanup_free_ char *error = NULL;
        SourceKube *s;
        int r;

        assert(ret);

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->source.ops = &source_kube_ops;
        s->client.watch_timeout_sec = watch_timeout_sec ? watch_timeout_sec : SOURCE_KUBE_WATCH_TIMEOUT_SEC;
        /* A list or a watch's 200 that takes longer than this is a failure;
         * short watch timeouts (tests) shorten it too. */
        s->client.request_timeout_usec = (s->client.watch_timeout_sec < 30 ? s->client.watch_timeout_sec : 30) * USEC_PER_SEC;
        s->client.backoff_base_usec = USEC_PER_SEC / 2;
        s->client.backoff_cap_usec = 30 * USEC_PER_SEC;

        r = kube_client_load(&s->client, kubeconfig_path, &error);
        if (r < 0) {
                if (kubeconfig_path)
                        log_error("Invalid kubeconfig '%s': %s", kubeconfig_path, error ? error : strerror(-r));
                else
                        log_error("Cannot use the in-cluster configuration: %s", error ? error : strerror(-r));
                kube_client_done(&s->client);
                free(s);
                return r;
        }
        *ret = &s->source;
        return 0;
}
