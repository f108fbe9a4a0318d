/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "cleanup.h"
#include "source-kube-api.h"
#include "source-kube-check.h"


bool kube_rv_is_valid(const char *rv) {
        size_t n = rv ? strlen(rv) : 0;

        return n > 0 && n <= 128 &&
               strspn(rv, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.") == n;
}

static int collection_url(const char *server, const KubeObjectRef *ref, char **ret) {
        const char *prefix = strchr(ref->group_version, '/') ? "/apis/" : "/api/";
        int n;

        if (!kube_name_is_valid(ref->name) || (ref->namespace && !kube_name_is_valid(ref->namespace)))
                return -EINVAL;
        if (ref->namespace)
                n = asprintf(ret, "%s%s%s/namespaces/%s/%s?fieldSelector=metadata.name%%3D%s", server, prefix,
                             ref->group_version, ref->namespace, ref->resource, ref->name);
        else
                n = asprintf(ret, "%s%s%s/%s?fieldSelector=metadata.name%%3D%s", server, prefix,
                             ref->group_version, ref->resource, ref->name);
        return n < 0 ? -ENOMEM : 0;
}

int kube_url_list(const char *server, const KubeObjectRef *ref, char **ret) {
        assert(server);
        assert(ref);
        assert(ret);

        return collection_url(server, ref, ret);
}

int kube_url_watch(const char *server, const KubeObjectRef *ref, const char *rv, unsigned timeout_sec, char **ret) {
        _cleanup_free_ char *base = NULL;
        int r;

        assert(server);
        assert(ref);
        assert(ret);

        /* resourceVersion is opaque, but only ever digits in practice: refuse
         * anything that would need escaping rather than trust it. */
        if (rv && !kube_rv_is_valid(rv))
                return -EINVAL;
        r = collection_url(server, ref, &base);
        if (r < 0)
                return r;
        if (asprintf(ret, "%s&watch=1%s%s&allowWatchBookmarks=true&timeoutSeconds=%u", base,
                     rv ? "&resourceVersion=" : "", rv ? rv : "", timeout_sec) < 0)
                return -ENOMEM;
        return 0;
}

int kube_ref_describe(const KubeObjectRef *ref, char **ret) {
        char kind[64];
        size_t n;
        int r;

        assert(ref);
        assert(ret);

        n = strlen(ref->resource);
        /* "configmaps" -> "configmap", "images" -> "image" */
        snprintf(kind, sizeof kind, "%.*s", (int) (n > 1 && ref->resource[n - 1] == 's' ? n - 1 : n), ref->resource);
        if (ref->namespace)
                r = asprintf(ret, "%s %s/%s", kind, ref->namespace, ref->name);
        else
                r = asprintf(ret, "%s %s", kind, ref->name);
        return r < 0 ? -ENOMEM : 0;
}

static const char *get_str(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *kube_object_rv(json_t *object) {
        return get_str(json_object_get(object, "metadata"), "resourceVersion");
}

int kube_list_parse(const char *body, size_t size, const KubeObjectRef *ref, json_t **ret_object, char **ret_rv,
                    char *err, size_t err_size) {
        json_auto_t *j = NULL;
        char list_kind[80];
        const char *rv;
        json_t *items, *item, *found = NULL;
        size_t i;
        int r;

        assert(body);
        assert(ref);
        assert(ret_object);
        assert(ret_rv);
        assert(err);

        j = json_loadb(body, size, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(j)) {
                snprintf(err, err_size, "the response is not a JSON object");
                return -EBADMSG;
        }
        /* A server (or a proxy) answering with another kind of list must
         * not have its items taken for ours. */
        if (ref->kind) {
                snprintf(list_kind, sizeof list_kind, "%sList", ref->kind);
                r = kube_check_kind(j, ref->group_version, list_kind, true, err, err_size);
                if (r < 0)
                        return r;
        }
        rv = get_str(json_object_get(j, "metadata"), "resourceVersion");
        if (!kube_rv_is_valid(rv)) {
                snprintf(err, err_size, "the list's metadata.resourceVersion is %s",
                         rv ? "not a valid resourceVersion" : "missing or not a string");
                return -EBADMSG;
        }
        items = json_object_get(j, "items");
        /* "items": null is how the API spells an empty list, sometimes. */
        if (!(json_is_array(items) || json_is_null(items))) {
                snprintf(err, err_size, "the list's items is %s, not an array", kube_json_type(items));
                return -EBADMSG;
        }

        json_array_foreach(items, i, item) {
                const char *n = get_str(json_object_get(item, "metadata"), "name");
                /* Do not trust the field selector alone: a proxy or an old
                 * server may ignore it and return the whole namespace. */
                if (n && streq(n, ref->name)) {
                        found = item;
                        break;
                }
        }

        *ret_rv = strdup(rv);
        if (!*ret_rv)
                return -ENOMEM;
        *ret_object = found ? json_incref(found) : NULL;
        return 0;
}

int kube_event_parse(const char *line, size_t len, KubeEvent *ret) {
        static const char *const types[] = {
                [KUBE_EVENT_ADDED] = "ADDED",       [KUBE_EVENT_MODIFIED] = "MODIFIED",
                [KUBE_EVENT_DELETED] = "DELETED",   [KUBE_EVENT_BOOKMARK] = "BOOKMARK",
                [KUBE_EVENT_ERROR] = "ERROR",
        };
        json_auto_t *j = NULL;
        const char *type;
        json_t *obj;
        KubeEvent e = {};
        int t = -1;

        assert(line);
        assert(ret);

        j = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
        type = get_str(j, "type");
        obj = json_object_get(j, "object");
        if (!type || !json_is_object(obj))
                return -EBADMSG;
        for (size_t i = 0; i < ELEMENTSOF(types); i++)
                if (streq(type, types[i]))
                        t = (int) i;
        if (t < 0)
                return -EBADMSG;

        e.type = (KubeEventType) t;
        if (e.type == KUBE_EVENT_ERROR) {
                json_t *code = json_object_get(obj, "code");
                e.code = json_is_integer(code) ? (int) json_integer_value(code) : 0;
                e.message = get_str(obj, "message");
                if (!e.message)
                        e.message = get_str(obj, "reason");
        } else {
                e.resource_version = kube_object_rv(obj);
                e.name = get_str(json_object_get(obj, "metadata"), "name");
                if (!kube_rv_is_valid(e.resource_version))
                        return -EBADMSG;
        }
        /* The strings above point into obj: the reference keeps them. */
        e.object = json_incref(obj);
        *ret = e;
        return 0;
}

void kube_event_done(KubeEvent *e) {
        assert(e);

        json_decref(e->object);
        *e = (KubeEvent){};
}

void kube_status_parse(const char *body, size_t size, int *ret_code, char **ret_message) {
        json_auto_t *j = NULL;
        const char *m;
        json_t *code;

        assert(body);
        assert(ret_code);
        assert(ret_message);

        j = json_loadb(body, size, 0, NULL);
        m = get_str(j, "message");
        code = json_object_get(j, "code");
        *ret_code = json_is_integer(code) ? (int) json_integer_value(code) : 0;
        *ret_message = m ? strndup(m, 200) : NULL;
}

const char *kube_image_trusted_ca_name(json_t *image) {
        const char *n = get_str(json_object_get(json_object_get(image, "spec"), "additionalTrustedCA"), "name");
        return n && *n ? n : NULL;
}

int kube_configmap_foreach(json_t *configmap, kube_configmap_entry_cb cb, void *userdata) {
        json_t *data, *bin;
        const char *key;
        json_t *v;
        int r;

        assert(configmap);
        assert(cb);

        data = json_object_get(configmap, "data");
        bin = json_object_get(configmap, "binaryData");
        if ((data && !json_is_object(data) && !json_is_null(data)) ||
            (bin && !json_is_object(bin) && !json_is_null(bin)))
                return -EBADMSG;

        json_object_foreach(data, key, v) {
                if (!json_is_string(v))
                        return -EBADMSG;
                r = cb(key, json_string_value(v), json_string_length(v), userdata);
                if (r < 0)
                        return r;
        }
        json_object_foreach(bin, key, v) {
                _cleanup_free_ unsigned char *dec = NULL;
                size_t n;

                if (!json_is_string(v))
                        return -EBADMSG;
                r = base64_decode_alloc(json_string_value(v), json_string_length(v), &dec, &n);
                if (r < 0)
                        return r;
                r = cb(key, dec, n, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

int kube_secret_get(json_t *secret, const char *key, unsigned char **ret, size_t *ret_size) {
        json_t *v;

        assert(secret);
        assert(key);
        assert(ret);
        assert(ret_size);

        v = json_object_get(json_object_get(secret, "data"), key);
        if (!v)
                return -ENOENT;
        if (!json_is_string(v))
                return -EBADMSG;
        return base64_decode_alloc(json_string_value(v), json_string_length(v), ret, ret_size);
}

uint64_t kube_backoff_usec(unsigned attempt, uint64_t base_usec, uint64_t cap_usec, uint64_t rnd) {
        uint64_t d = base_usec;

        for (unsigned i = 0; i < attempt && d < cap_usec; i++)
                d *= 2;
        if (d > cap_usec)
                d = cap_usec;
        return d / 2 + rnd % (d / 2 + 1);
}

unsigned kube_watch_timeout_jitter(unsigned base_sec, uint64_t rnd) {
        return base_sec + (unsigned) (rnd % (base_sec / 4 + 1));
}

uint64_t kube_watch_dead_after_usec(unsigned timeout_sec) {
        /* The margin covers a loaded server ending the stream late and the
         * final bytes in flight: a quarter of the timeout, 1 s..30 s. */
        uint64_t margin = (uint64_t) timeout_sec * USEC_PER_SEC / 4;

        if (margin < USEC_PER_SEC)
                margin = USEC_PER_SEC;
        if (margin > 30 * USEC_PER_SEC)
                margin = 30 * USEC_PER_SEC;
        return (uint64_t) timeout_sec * USEC_PER_SEC + margin;
}
