/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the ownership manifest is read back from the state
 * directory, which a torn disk or anyone who can write there may have
 * changed: any manifest.json loads or is refused, never crashes, and what
 * loads saves and loads back to the same entries (nothing the agent owns
 * is forgotten on the way).
 *
 * FUZZ_STRICT=1 (make FUZZ_STRICT=1 fuzz) also demands that every loaded name is one the
 * agent could have written itself (a known target, a registry without a
 * path separator): turn it on once manifest_load() checks names. */
#include <errno.h>
#include <string.h>

#include "fuzz-util.h"
#include "hostname.h"
#include "manifest.h"
#include "target.h"

#ifndef FUZZ_STRICT
#define FUZZ_STRICT 0
#endif

static bool entries_equal(const Manifest *a, const Manifest *b) {
        if (a->n_entries != b->n_entries)
                return false;
        /* The entries are in no order (the file is saved sorted): each of
         * a found in b, the same. */
        for (size_t i = 0; i < a->n_entries; i++) {
                const ManifestEntry *x = &a->entries[i], *y = manifest_find(b, x->target, x->registry);
                if (!y || strcmp(x->sha256, y->sha256) != 0 || strcmp(x->hosts_sha256, y->hosts_sha256) != 0 ||
                    x->dir_created != y->dir_created)
                        return false;
        }
        return true;
}

static bool ascii(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s >= 0x80)
                        return false;
        return true;
}

static bool registry_name_ok(const char *r) {
        const char *colon = strrchr(r, ':');
        size_t host = colon ? (size_t) (colon - r) : strlen(r);

        return hostname_check(r, host) == NULL && (!colon || strspn(colon + 1, "0123456789") == strlen(colon + 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Manifest *m = NULL, *again = NULL;
        int r;

        if (fuzz_mkdirs("state") < 0)
                abort();
        fuzz_write("state/manifest.json", data, size);
        r = manifest_load(fuzz_root_fd(), "state", &m);
        if (r < 0) {
                fuzz_check(!m && (r == -EBADMSG || r == -EINVAL || r == -ENOMEM));
                return 0;
        }
        fuzz_check(m);
        for (size_t i = 0; i < m->n_entries; i++) {
                const ManifestEntry *e = &m->entries[i];
                fuzz_check(e->target && e->registry);
                fuzz_check(manifest_find(m, e->target, e->registry) == e);
                if (FUZZ_STRICT)
                        fuzz_check(target_by_name(e->target) && registry_name_ok(e->registry));
                /* A hash is 64 hex digits or none: one cut inside a UTF-8
                 * sequence made manifest_save() drop the entry (now a
                 * failed save, and such a hash is dropped at load). */
                fuzz_check(ascii(e->sha256) && ascii(e->hosts_sha256));
        }

        r = manifest_save(fuzz_root_fd(), "saved", m);
        fuzz_check(r >= 0);
        r = manifest_load(fuzz_root_fd(), "saved", &again);
        fuzz_check(r >= 0 && entries_equal(m, again));

        manifest_free(again);
        manifest_free(m);
        return 0;
}
