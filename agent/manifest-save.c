/* SPDX-License-Identifier: MIT */
/*
 * The ownership manifest on disk: its text (written here, not by jansson),
 * the atomic save, and the saves a daemon puts off (manifest.h).
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "fs.h"
#include "manifest-internal.h"

static int entry_ptr_cmp(const void *a, const void *b) {
        const ManifestEntry *x = *(const ManifestEntry *const *) a, *y = *(const ManifestEntry *const *) b;
        int c = strcmp(x->target, y->target);
        return c ? c : strcmp(x->registry, y->registry);
}

/* A JSON string: the names passed registry_from_key() and are plain
 * ASCII, but the escaping does not depend on that. */
static void put_json_string(FILE *f, const char *s) {
        size_t plain = strcspn(s, "\"\\\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"
                                  "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f");

        fputc('"', f);
        fwrite(s, 1, plain, f); /* all of it, nearly always */
        for (s += plain; *s; s++) {
                unsigned char c = (unsigned char) *s;
                const char *short_form = c == '\b' ? "\\b" : c == '\f' ? "\\f" : c == '\n' ? "\\n" :
                                         c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
                if (c == '"' || c == '\\')
                        fprintf(f, "\\%c", c);
                else if (short_form)
                        fputs(short_form, f);
                else if (c < 0x20)
                        fprintf(f, "\\u%04X", c);
                else
                        fputc(c, f);
        }
        fputc('"', f);
}

/* The manifest as text: what jansson writes for it with JSON_INDENT(1) |
 * JSON_SORT_KEYS, byte for byte (unit test_render_is_jansson_text), built
 * directly. Building a tree of 12,000 objects and dumping it took a third
 * of a one-key change's CPU at 1,000 registries. */
int manifest_render(const Manifest *m, char **ret, size_t *ret_size) {
        _cleanup_free_ const ManifestEntry **order = NULL;
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        FILE *f;

        assert(m);
        assert(ret);
        assert(ret_size);

        /* Sorted, so that the same set of entries is the same text. */
        order = calloc(m->n_entries ? m->n_entries : 1, sizeof *order);
        if (!order)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_entries; i++)
                order[i] = &m->entries[i];
        qsort(order, m->n_entries, sizeof *order, entry_ptr_cmp);

        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        (void) __fsetlocking(f, FSETLOCKING_BYCALLER); /* ours alone */
        fputs(m->n_entries ? "{\n \"entries\": [\n" : "{\n \"entries\": []", f);
        for (size_t i = 0; i < m->n_entries; i++) {
                const ManifestEntry *e = order[i];

                fprintf(f, "  {\n   \"dir_created\": %s,\n", e->dir_created ? "true" : "false");
                /* Only where we wrote one: older manifests stay byte-identical. */
                if (e->hosts_sha256[0]) {
                        fputs("   \"hosts_toml_sha256\": ", f);
                        put_json_string(f, e->hosts_sha256);
                        fputs(",\n", f);
                }
                fputs("   \"registry\": ", f);
                put_json_string(f, e->registry);
                fputs(",\n   \"sha256\": ", f);
                put_json_string(f, e->sha256);
                fputs(",\n   \"target\": ", f);
                put_json_string(f, e->target);
                fputs(i + 1 < m->n_entries ? "\n  },\n" : "\n  }\n ]", f);
        }
        fputs(",\n \"version\": 1\n}", f);
        /* Out of memory fails the save: a manifest written without an
         * entry would disown that directory for good. */
        if (ferror(f)) {
                fclose(f);
                return -ENOMEM;
        }
        if (fclose(f) != 0 || !text)
                return -ENOMEM;
        *ret = TAKE_PTR(text);
        *ret_size = size;
        return 0;
}

/* What the manifest says is ours, content hashes left out: FNV-1a of each
 * entry's fields, summed, so the order of entries does not matter. */
uint64_t manifest_ownership_signature(const Manifest *m) {
        uint64_t sum = m->n_entries;

        for (size_t i = 0; i < m->n_entries; i++) {
                const ManifestEntry *e = &m->entries[i];
                uint64_t h = 1469598103934665603ULL;
                const char *parts[2] = { e->target, e->registry };

                for (size_t k = 0; k < 2; k++)
                        for (const char *c = parts[k];; c++) {
                                h = (h ^ (unsigned char) *c) * 1099511628211ULL;
                                if (!*c)
                                        break;
                        }
                h = (h ^ (unsigned) (e->dir_created | (!!e->sha256[0] << 1) | (!!e->hosts_sha256[0] << 2))) *
                    1099511628211ULL;
                sum += h;
        }
        return sum;
}

/* Write m's text; on success, sig (its ownership_signature()) is what is
 * on disk. */
static int save(int rootfd, const char *state_dir, Manifest *m, uint64_t sig) {
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int dfd = -1;
        size_t size;
        int r;

        r = manifest_render(m, &text, &size);
        if (r < 0)
                return r;
        /* Only the state directory itself is private, not var/lib. */
        r = open_private_dir_beneath(rootfd, state_dir, &dfd);
        if (r < 0)
                return r;
        r = write_file_atomic_at(dfd, MANIFEST_FILE, text, size, 0600, (uid_t) -1, (gid_t) -1);
        if (r >= 0) {
                m->saved_ownership = sig;
                m->hashes_unsaved = false;
        }
        return r;
}

int manifest_save_changes(int rootfd, const char *state_dir, Manifest *m) {
        uint64_t sig;

        assert(rootfd >= 0);
        assert(state_dir);
        assert(m);

        sig = manifest_ownership_signature(m);
        if (m->defer_hashes && sig == m->saved_ownership) {
                m->hashes_unsaved = true;
                return 0;
        }
        return save(rootfd, state_dir, m, sig);
}

int manifest_flush(int rootfd, const char *state_dir, Manifest *m) {
        assert(m);
        return m->hashes_unsaved ? manifest_save(rootfd, state_dir, m) : 0;
}

int manifest_save(int rootfd, const char *state_dir, Manifest *m) {
        assert(rootfd >= 0);
        assert(state_dir);
        assert(m);

        return save(rootfd, state_dir, m, manifest_ownership_signature(m));
}
