/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The ownership manifest: every certs.d directory and ca.crt nodetrustd
 * created (ca.crt, and containerd's hosts.toml), so that pruning touches
 * only those. Stored as JSON in
 * <root>/<state-dir>/manifest.json, written atomically.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#define MANIFEST_FILE "manifest.json"

typedef struct ManifestEntry {
        char *target;   /* "docker", "containers", "containerd" */
        char *registry; /* "host:port" */
        char sha256[65];  /* of the ca.crt we last wrote */
        char hosts_sha256[65]; /* of the hosts.toml we last wrote (containerd); "" none */
        bool dir_created; /* we created the HOST:PORT directory */
} ManifestEntry;

typedef struct Manifest {
        ManifestEntry *entries; /* each (target, registry) once, in no order; saved sorted */
        size_t n_entries, n_allocated;
        size_t *index; /* manifest.c's hash index into entries */
        uint64_t keys_changed; /* counts entries added and removed */
        /* Daemon mode: a save that would change only content hashes is put
         * off (manifest_save_changes()); hashes_unsaved says one was. */
        bool defer_hashes;
        bool hashes_unsaved;
        uint64_t saved_ownership; /* ownership_signature() of what is on disk */
        size_t n_index;
} Manifest;

/* One entry per target for each of a source's 4,096 keys at most: a
 * manifest that holds more was not written by nodetrustd. */
#define MANIFEST_ENTRIES_MAX (3u * 4096)

Manifest *manifest_new(void);
Manifest *manifest_free(Manifest *m);
static inline void manifest_freep(Manifest **m) {
        if (*m)
                manifest_free(*m);
}

/* Load from <state_dir>/manifest.json below rootfd. A missing file is an
 * empty manifest; one that is not JSON with an "entries" array is -EBADMSG
 * (the caller decides). An entry nodetrustd could not have written (an
 * unknown target, a registry name a config map key cannot decode to, a
 * field of the wrong type, a hash that is not hex, a duplicate) is dropped
 * with a warning naming it, and so are entries past MANIFEST_ENTRIES_MAX. */
int manifest_load(int rootfd, const char *state_dir, Manifest **ret);
/* The manifest's text, as manifest_save() writes it. */
int manifest_render(const Manifest *m, char **ret, size_t *ret_size);

/* Save atomically, creating state_dir (0700) if needed; -ENOMEM rather
 * than a manifest missing an entry. */
int manifest_save(int rootfd, const char *state_dir, Manifest *m);

/* manifest_save(), unless defer_hashes is set and what the manifest says
 * is ours (entries, dir_created, whether a ca.crt or hosts.toml was
 * written) is what was saved last: then only content hashes moved, and
 * the save waits for manifest_flush(). A crash before it loses nothing:
 * the next start reads every file and records its hash. */
int manifest_save_changes(int rootfd, const char *state_dir, Manifest *m);

/* Save what manifest_save_changes() put off, if anything. */
int manifest_flush(int rootfd, const char *state_dir, Manifest *m);

ManifestEntry *manifest_find(const Manifest *m, const char *target, const char *registry);
/* Add or update (target, registry); an existing entry keeps its hosts_sha256. */
int manifest_put(Manifest *m, const char *target, const char *registry, const char *sha256, bool dir_created);
/* Remove (target, registry); the last entry takes its place in entries[]. */
void manifest_remove(Manifest *m, const char *target, const char *registry);

/* Why registry cannot be a name of ours (the config map key checks of
 * registry_from_key()), or NULL when it can; *ret_error -ENOMEM when that
 * could not be decided. */
const char *manifest_registry_problem(const char *registry, int *ret_error);
