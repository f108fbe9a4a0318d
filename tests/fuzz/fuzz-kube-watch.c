/* SPDX-License-Identifier: MIT */
/* libFuzzer target: what the API server (or anything on the path to it)
 * answers a watch. The first byte picks the watched object (image.config,
 * a config map, the pull secret); the first line is a list body, each
 * further line one watch event, fed to kube_watch_on_line() on a watch
 * built by hand (an sd_event that never runs holds its timers). After each
 * step the object the watch holds is read the way the source reads every
 * kind: config map entries into a snapshot, the pull secret's
 * .dockerconfigjson, image.config's additionalTrustedCA.name. Objects of
 * any kind and fields of any type: no crash, no leak; a line the watch
 * took leaves it a resourceVersion.
 *
 * FUZZ_STRICT=1 also demands what the hardening work makes true: the
 * object held is of the watched kind, and the resourceVersion the watch
 * holds can be watched from (kube_url_watch() takes it). */
#include <errno.h>
#include <string.h>

#include "fuzz-util.h"
#include "pullsecret-validate.h"
#include "snapshot.h"
#include "source-kube-check.h"
#include "source-kube-watch-internal.h"

#ifndef FUZZ_STRICT
#define FUZZ_STRICT 0
#endif

static const struct {
        KubeObjectRef ref;
        const char *kind;
} watched[] = {
        { { "config.openshift.io/v1", NULL, "images", "cluster", "Image" }, "Image" },
        { { "v1", "openshift-config", "configmaps", "registry-cas", "ConfigMap" }, "ConfigMap" },
        { { "v1", "openshift-config-managed", "configmaps", "image-registry-ca", "ConfigMap" }, "ConfigMap" },
        { { "v1", "openshift-config", "secrets", "pull-secret", "Secret" }, "Secret" },
};

static int add_entry(const char *key, const void *value, size_t size, void *userdata) {
        return snapshot_add_entry(userdata, key, value, size);
}

static int noop_time(sd_event_source *s, uint64_t usec, void *userdata) {
        return 0;
}

static int noop_defer(sd_event_source *s, void *userdata) {
        return 0;
}

/* Everything source-kube.c does with an object it holds. */
static void read_object(json_t *o) {
        Snapshot *snap = snapshot_new();
        unsigned char *pull = NULL;
        const char *name;
        json_t *parsed = NULL;
        char *reason = NULL;
        size_t n = 0;
        int r;

        fuzz_check(snap);
        r = kube_configmap_foreach(o, add_entry, snap);
        fuzz_check(r >= 0 || r == -EBADMSG || r == -ENOMEM || r == -EINVAL || r == -E2BIG);
        snapshot_free(snap);

        r = kube_secret_get(o, ".dockerconfigjson", &pull, &n);
        if (r >= 0) {
                if (pull_secret_parse(pull, n, &parsed, &reason) < 0)
                        fuzz_check(reason);
                json_decref(parsed);
                free(reason);
                free(pull);
        } else
                fuzz_check(!pull && (r == -ENOENT || r == -EBADMSG || r == -ENOMEM));

        name = kube_image_trusted_ca_name(o);
        fuzz_check(!name || *name);
        if (name)
                (void) kube_name_is_valid(name);
        (void) kube_object_rv(o);
}

static void check_watch(KubeWatch *w, const char *kind) {
        char *url = NULL;

        if (w->object) {
                read_object(w->object);
                if (FUZZ_STRICT) {
                        /* List items may leave kind out, as real servers
                         * do; they may not name another. */
                        json_t *kv = json_object_get(w->object, "kind");
                        fuzz_check(!kv || (json_is_string(kv) && strcmp(json_string_value(kv), kind) == 0));
                }
        }
        if (w->rv && FUZZ_STRICT) {
                fuzz_check(kube_url_watch("https://api.example.com:6443", &w->ref, w->rv, 300, &url) == 0);
                free(url);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static sd_event *event = NULL;
        KubeClient client = {};
        KubeWatch w = {};
        const uint8_t *line, *next;
        size_t len, left;
        unsigned pick;
        char *rv = NULL;
        json_t *obj = NULL;
        int r;

        if (size == 0)
                return 0;
        if (!event && sd_event_new(&event) < 0)
                abort();
        pick = data[0] % (sizeof watched / sizeof *watched);
        client.event = event;
        w.client = &client;
        w.ref = watched[pick].ref;
        w.name = (char *) w.ref.name;
        w.resource = (char *) w.ref.resource;
        w.group_version = (char *) w.ref.group_version;
        w.kind = (char *) w.ref.kind;
        w.what = (char *) "fuzzed object";
        w.timeout_sec = 300;
        w.phase = PHASE_LISTING;
        fuzz_check(sd_event_add_time(event, &w.timer, CLOCK_MONOTONIC, UINT64_MAX, 0, noop_time, NULL) >= 0);
        fuzz_check(sd_event_add_defer(event, &w.defer, noop_defer, NULL) >= 0);
        (void) sd_event_source_set_enabled(w.defer, SD_EVENT_OFF);

        line = data + 1;
        left = size - 1;
        len = fuzz_split(line, left, "\n", &next, &left);

        /* The list, as on_list_done() takes it. */
        char err[256] = "";
        r = kube_list_parse((const char *) line, len, &w.ref, &obj, &rv, err, sizeof err);
        if (r < 0) {
                fuzz_check(r == -EBADMSG && !obj && !rv && err[0]);
                goto done;
        }
        fuzz_check(rv && *rv);
        /* What on_list_done() takes: an item of the watched kind only. */
        if (obj && kube_check_kind(obj, w.ref.group_version, w.ref.kind, false, err, sizeof err) < 0) {
                json_decref(obj);
                obj = NULL;
        }
        w.rv = rv;
        w.object = obj;
        w.synced = true;
        w.phase = PHASE_WATCHING;
        check_watch(&w, watched[pick].kind);

        /* Each event line, through the watch's own callback. */
        while (next) {
                char *copy;
                line = next;
                len = fuzz_split(line, left, "\n", &next, &left);
                copy = malloc(len + 1);
                fuzz_check(copy);
                memcpy(copy, line, len);
                copy[len] = 0;
                r = kube_watch_on_line(NULL, copy, len, &w);
                free(copy);
                fuzz_check(r >= 0 || r == -EBADMSG || r == -ESTALE || r == -EPROTO || r == -ENOMEM);
                fuzz_check(w.rv);
                if (r < 0) {
                        fuzz_check(w.detail[0]);
                        break; /* the watch ends here: on_watch_done() relists or backs off */
                }
                check_watch(&w, watched[pick].kind);
        }

done:
        json_decref(w.object);
        free(w.rv);
        sd_event_source_unref(w.timer);
        sd_event_source_unref(w.defer);
        return 0;
}
