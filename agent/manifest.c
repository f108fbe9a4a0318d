/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "fs.h"
#include "manifest.h"

#define MANIFEST_FILE "manifest.json"
#define MANIFEST_MAX (16u * 1024 * 1024)

Manifest *manifest_new(void) {
        return calloc(1, sizeof(Manifest));
}

Manifest *manifest_free(Manifest *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_entries; i++) {
                free(m->entries[i].target);
                free(m->entries[i].registry);
        }
        free(m->entries);
        free(m);
        return NULL;
}

ManifestEntry *manifest_find(const Manifest *m, const char *target, const char *registry) {
        assert(m);
        assert(target);
        assert(registry);

        for (size_t i = 0; i < m->n_entries; i++)
                if (streq(m->entries[i].target, target) && streq(m->entries[i].registry, registry))
                        return &m->entries[i];
        return NULL;
}

int manifest_put(Manifest *m, const char *target, const char *registry, const char *sha256, bool dir_created) {
        ManifestEntry *e;

        /* sha256 may be NULL: an entry loaded from a manifest that has none. */
        assert(m);
        assert(target);
        assert(registry);

        e = manifest_find(m, target, registry);
        if (!e) {
                ManifestEntry *n = realloc(m->entries, (m->n_entries + 1) * sizeof *n);
                if (!n)
                        return -ENOMEM;
                m->entries = n;
                e = &m->entries[m->n_entries];
                *e = (ManifestEntry){ .target = strdup(target), .registry = strdup(registry) };
                if (!e->target || !e->registry) {
                        free(e->target);
                        free(e->registry);
                        return -ENOMEM;
                }
                m->n_entries++;
        }
        snprintf(e->sha256, sizeof e->sha256, "%s", sha256 ? sha256 : "");
        e->dir_created = dir_created;
        return 0;
}

void manifest_remove(Manifest *m, const char *target, const char *registry) {
        ManifestEntry *e;

        assert(m);
        assert(target);
        assert(registry);

        e = manifest_find(m, target, registry);
        if (!e)
                return;
        free(e->target);
        free(e->registry);
        size_t i = (size_t) (e - m->entries);
        memmove(e, e + 1, (m->n_entries - i - 1) * sizeof *e);
        m->n_entries--;
}

int manifest_load(int rootfd, const char *state_dir, Manifest **ret) {
        _cleanup_(manifest_freep) Manifest *m = NULL;
        json_auto_t *j = NULL;
        _cleanup_free_ char *data = NULL;
        _cleanup_close_ int dfd = -1;
        json_t *entries, *e;
        size_t size, i;
        int r;

        assert(rootfd >= 0);
        assert(state_dir);
        assert(ret);

        m = manifest_new();
        if (!m)
                return -ENOMEM;

        r = open_dir_beneath(rootfd, state_dir, 0, &dfd, NULL);
        if (r == -ENOENT) {
                *ret = TAKE_PTR(m);
                return 0;
        }
        if (r < 0)
                return r;
        r = read_file_at(dfd, MANIFEST_FILE, false, MANIFEST_MAX, &data, &size);
        if (r == -ENOENT) {
                *ret = TAKE_PTR(m);
                return 0;
        }
        if (r < 0)
                return r;

        j = json_loadb(data, size, 0, NULL);
        entries = json_object_get(j, "entries");
        if (!json_is_array(entries))
                return -EBADMSG;
        json_array_foreach(entries, i, e) {
                const char *t = json_string_value(json_object_get(e, "target"));
                const char *reg = json_string_value(json_object_get(e, "registry"));
                const char *sha = json_string_value(json_object_get(e, "sha256"));
                const char *hosts = json_string_value(json_object_get(e, "hosts_toml_sha256"));
                if (!t || !reg)
                        return -EBADMSG;
                r = manifest_put(m, t, reg, sha, json_is_true(json_object_get(e, "dir_created")));
                if (r < 0)
                        return r;
                if (hosts) {
                        ManifestEntry *me = manifest_find(m, t, reg);
                        snprintf(me->hosts_sha256, sizeof me->hosts_sha256, "%s", hosts);
                }
        }
        *ret = TAKE_PTR(m);
        return 0;
}

int manifest_save(int rootfd, const char *state_dir, const Manifest *m) {
        json_auto_t *j = NULL;
        json_auto_t *entries = NULL;
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int dfd = -1;
        int r;

        assert(rootfd >= 0);
        assert(state_dir);
        assert(m);

        j = json_object();
        entries = json_array();
        if (!j || !entries)
                return -ENOMEM;
        json_object_set_new(j, "version", json_integer(1));
        /* j takes a reference of its own; ours goes at the end of the scope. */
        json_object_set(j, "entries", entries);
        for (size_t i = 0; i < m->n_entries; i++) {
                const ManifestEntry *e = &m->entries[i];
                json_auto_t *o = json_pack("{s:s, s:s, s:s, s:b}", "target", e->target, "registry", e->registry,
                                           "sha256", e->sha256, "dir_created", e->dir_created);
                /* Only where we wrote one: older manifests stay byte-identical. */
                if (o && e->hosts_sha256[0])
                        json_object_set_new(o, "hosts_toml_sha256", json_string(e->hosts_sha256));
                json_array_append_new(entries, TAKE_PTR(o));
        }
        text = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
        if (!text)
                return -ENOMEM;

        /* Only the state directory itself is private, not var/lib. */
        r = open_private_dir_beneath(rootfd, state_dir, &dfd);
        if (r < 0)
                return r;
        return write_file_atomic_at(dfd, MANIFEST_FILE, text, strlen(text), 0600, (uid_t) -1, (gid_t) -1);
}
