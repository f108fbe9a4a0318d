/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "fs.h"
#include "log.h"
#include "manifest-internal.h"
#include "target.h"
#include "trust.h"
#include "utf8.h"

#define MANIFEST_MAX (16u * 1024 * 1024)
/* A name longer than this is cut in a warning: the line stays readable. */
#define SHOWN_MAX 200

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
        free(m->index);
        free(m);
        return NULL;
}

/*
 * Lookups go through a hash index (open addressing, linear probing; a slot
 * holds an entry's position + 1, 0 is empty), and removal moves the last
 * entry into the hole: every operation is O(1), so a plan that asks once
 * per registry and target, a first sync that adds 3 x 4,096 entries and a
 * prune of them all stay linear. (A sorted array made each insert and
 * removal a memmove: quadratic, 20 s under ASan for 12,288.)
 */
static size_t entry_hash(const char *target, const char *registry) {
        uint64_t h = UINT64_C(14695981039346656037);

        for (const char *p = target; *p; p++)
                h = (h ^ (unsigned char) *p) * UINT64_C(1099511628211);
        h = (h ^ 0xff) * UINT64_C(1099511628211); /* no byte of a name */
        for (const char *p = registry; *p; p++)
                h = (h ^ (unsigned char) *p) * UINT64_C(1099511628211);
        return (size_t) h;
}

/* The slot that holds (target, registry), or the empty one where it would go. */
static size_t index_slot(const Manifest *m, const char *target, const char *registry) {
        size_t mask = m->n_index - 1, i = entry_hash(target, registry) & mask;

        for (;; i = (i + 1) & mask) {
                const ManifestEntry *e;
                if (m->index[i] == 0)
                        return i;
                e = &m->entries[m->index[i] - 1];
                if (streq(e->target, target) && streq(e->registry, registry))
                        return i;
        }
}

/* Room in the index for one more entry: at most half full. */
static int index_reserve(Manifest *m) {
        size_t n = m->n_index ? m->n_index : 16, *old = m->index;

        if (m->index && (m->n_entries + 1) * 2 <= m->n_index)
                return 0;
        while ((m->n_entries + 1) * 2 > n)
                n *= 2;
        m->index = calloc(n, sizeof *m->index);
        if (!m->index) {
                m->index = old;
                return -ENOMEM;
        }
        free(old);
        m->n_index = n;
        for (size_t i = 0; i < m->n_entries; i++)
                m->index[index_slot(m, m->entries[i].target, m->entries[i].registry)] = i + 1;
        return 0;
}

/* Empty slot i, and move up what probing would no longer find. */
static void index_delete(Manifest *m, size_t i) {
        size_t mask = m->n_index - 1, j = i;

        m->index[i] = 0;
        for (;;) {
                const ManifestEntry *e;
                size_t home;

                j = (j + 1) & mask;
                if (m->index[j] == 0)
                        return;
                e = &m->entries[m->index[j] - 1];
                home = entry_hash(e->target, e->registry) & mask;
                /* Stays if its home lies cyclically in (i, j]. */
                if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
                        continue;
                m->index[i] = m->index[j];
                m->index[j] = 0;
                i = j;
        }
}

ManifestEntry *manifest_find(const Manifest *m, const char *target, const char *registry) {
        size_t i;

        assert(m);
        assert(target);
        assert(registry);

        if (!m->index)
                return NULL;
        i = index_slot(m, target, registry);
        return m->index[i] ? &m->entries[m->index[i] - 1] : NULL;
}

int manifest_put(Manifest *m, const char *target, const char *registry, const char *sha256, bool dir_created) {
        ManifestEntry *e;

        /* sha256 may be NULL: an entry loaded from a manifest that has none. */
        assert(m);
        assert(target);
        assert(registry);

        e = manifest_find(m, target, registry);
        if (!e) {
                _cleanup_free_ char *t = strdup(target), *reg = strdup(registry);
                ManifestEntry *n;

                if (!t || !reg || index_reserve(m) < 0)
                        return -ENOMEM;
                if (greedy_realloc((void **) &m->entries, &m->n_allocated, m->n_entries + 1, 16,
                                   sizeof *m->entries) < 0)
                        return -ENOMEM;
                n = m->entries;
                e = &n[m->n_entries];
                *e = (ManifestEntry){ .target = TAKE_PTR(t), .registry = TAKE_PTR(reg) };
                m->index[index_slot(m, target, registry)] = ++m->n_entries;
                m->keys_changed++;
        }
        snprintf(e->sha256, sizeof e->sha256, "%s", sha256 ? sha256 : "");
        e->dir_created = dir_created;
        return 0;
}

void manifest_remove(Manifest *m, const char *target, const char *registry) {
        size_t slot, i, last;

        assert(m);
        assert(target);
        assert(registry);

        if (!m->index || m->index[slot = index_slot(m, target, registry)] == 0)
                return;
        i = m->index[slot] - 1;
        index_delete(m, slot);
        m->keys_changed++;
        free(m->entries[i].target);
        free(m->entries[i].registry);
        last = --m->n_entries;
        if (i != last) {
                m->entries[i] = m->entries[last];
                m->index[index_slot(m, m->entries[i].target, m->entries[i].registry)] = i + 1;
        }
}

const char *manifest_registry_problem(const char *registry, int *ret_error) {
        _cleanup_free_ char *key = NULL, *back = NULL;
        const char *colon, *reason = NULL;
        int r;

        assert(registry);
        assert(ret_error);

        /* The same checks as a config map key, not a second set: the name
         * must be exactly what registry_from_key() makes of the key
         * "host..port" it came from. That leaves one path component of
         * letters, digits, '-', '.' and ':', never "." or "..". */
        *ret_error = 0;
        colon = strrchr(registry, ':');
        if (colon)
                r = asprintf(&key, "%.*s..%s", (int) (colon - registry), registry, colon + 1);
        else
                r = (key = strdup(registry)) ? 0 : -1;
        if (r < 0) {
                *ret_error = -ENOMEM;
                return NULL;
        }
        r = registry_from_key(key, &back, &reason);
        if (r == -ENOMEM) {
                *ret_error = r;
                return NULL;
        }
        if (r < 0)
                return reason;
        if (!streq(back, registry))
                return "not the name its config map key decodes to";
        return NULL;
}

/* "" (none recorded) or a sha256 as we write it: 64 lowercase hex digits. */
static bool sha256_valid(const char *s) {
        size_t n = strspn(s, "0123456789abcdef");
        return s[n] == 0 && (n == 0 || n == 64);
}

/* Why entry e of a manifest on disk cannot be one of ours, or NULL when it
 * can. *ret_error is -ENOMEM when that could not be decided. */
static const char *entry_problem(const Manifest *m, const json_t *e, bool *ret_name, int *ret_error) {
        const json_t *t = json_object_get(e, "target"), *reg = json_object_get(e, "registry"),
                     *sha = json_object_get(e, "sha256"), *hosts = json_object_get(e, "hosts_toml_sha256"),
                     *dir = json_object_get(e, "dir_created");
        const char *reason;

        *ret_error = 0;
        *ret_name = false;
        if (!json_is_object(e))
                return "not a JSON object";
        if (!json_is_string(t))
                return "'target' is not a string";
        if (!target_by_name(json_string_value(t)))
                return "unknown target";
        if (!json_is_string(reg))
                return "'registry' is not a string";
        /* jansson keeps a \u0000 out of strings it loads; say so anyway. */
        if (strlen(json_string_value(reg)) != json_string_length(reg))
                return "registry name holds a NUL byte";
        reason = manifest_registry_problem(json_string_value(reg), ret_error);
        if (reason || *ret_error < 0) {
                *ret_name = true;
                return reason;
        }
        if (sha && (!json_is_string(sha) || !sha256_valid(json_string_value(sha))))
                return "'sha256' is not 64 hexadecimal digits";
        if (hosts && (!json_is_string(hosts) || !sha256_valid(json_string_value(hosts))))
                return "'hosts_toml_sha256' is not 64 hexadecimal digits";
        if (dir && !json_is_boolean(dir))
                return "'dir_created' is not true or false";
        if (manifest_find(m, json_string_value(t), json_string_value(reg)))
                return "a second entry for the same target and registry";
        return NULL;
}

/* A copy of s (any bytes from the node) fit for one log line. */
static char *shown(const json_t *v) {
        const char *s = json_string_value(v);
        char *c;

        if (!s)
                return strdup(json_is_null(v) || !v ? "(none)" : "(not a string)");
        c = strndup(s, SHOWN_MAX);
        return c ? utf8_one_line(c) : NULL;
}

static void warn_dropped(size_t i, const json_t *e, bool name, const char *reason) {
        _cleanup_free_ char *t = shown(json_object_get(e, "target")), *reg = shown(json_object_get(e, "registry"));

        log_warning("Dropping entry %zu of the ownership manifest (target '%s', registry '%s'): %s%s%s; "
                    "what it names is not treated as nodetrustd's",
                    i, t ?: "?", reg ?: "?", name ? "not a registry name a config map key decodes to (" : "",
                    reason, name ? ")" : "");
}

int manifest_load(int rootfd, const char *state_dir, Manifest **ret) {
        _cleanup_(manifest_freep) Manifest *m = NULL;
        json_auto_t *j = NULL;
        _cleanup_free_ char *data = NULL;
        _cleanup_close_ int dfd = -1;
        json_t *entries, *e;
        json_error_t err;
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

        j = json_loadb(data, size, 0, &err);
        if (!j && json_error_code(&err) == json_error_out_of_memory)
                return -ENOMEM; /* not corrupt: it must not be taken for it */
        entries = json_object_get(j, "entries");
        if (!json_is_array(entries))
                return -EBADMSG;

        /* What the manifest names is deleted by the next prune: it is
         * input like the config map. An entry that could not have been
         * written by us is dropped (so never pruned), the rest kept. */
        if (json_array_size(entries) > MANIFEST_ENTRIES_MAX)
                log_warning("The ownership manifest holds %zu entries, more than the %u nodetrustd ever writes; "
                            "dropping all past the first %u",
                            json_array_size(entries), MANIFEST_ENTRIES_MAX, MANIFEST_ENTRIES_MAX);
        json_array_foreach(entries, i, e) {
                const char *reason, *t, *reg, *hosts;
                bool name;

                if (i >= MANIFEST_ENTRIES_MAX)
                        break;
                reason = entry_problem(m, e, &name, &r);
                if (r < 0)
                        return r;
                if (reason) {
                        warn_dropped(i, e, name, reason);
                        continue;
                }
                t = json_string_value(json_object_get(e, "target"));
                reg = json_string_value(json_object_get(e, "registry"));
                hosts = json_string_value(json_object_get(e, "hosts_toml_sha256"));
                r = manifest_put(m, t, reg, json_string_value(json_object_get(e, "sha256")),
                                 json_is_true(json_object_get(e, "dir_created")));
                if (r < 0)
                        return r;
                if (hosts) {
                        ManifestEntry *me = manifest_find(m, t, reg);
                        snprintf(me->hosts_sha256, sizeof me->hosts_sha256, "%s", hosts);
                }
        }
        m->saved_ownership = manifest_ownership_signature(m);
        *ret = TAKE_PTR(m);
        return 0;
}
