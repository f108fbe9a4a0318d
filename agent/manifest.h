/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The ownership manifest: every certs.d directory and ca.crt nodetrustd
 * created (ca.crt, and containerd's hosts.toml), so that pruning touches
 * only those. Stored as JSON in
 * <root>/<state-dir>/manifest.json, written atomically.
 */

#include <stdbool.h>
#include <stddef.h>

typedef struct ManifestEntry {
        char *target;   /* "docker", "containers", "containerd" */
        char *registry; /* "host:port" */
        char sha256[65];  /* of the ca.crt we last wrote */
        char hosts_sha256[65]; /* of the hosts.toml we last wrote (containerd); "" none */
        bool dir_created; /* we created the HOST:PORT directory */
} ManifestEntry;

typedef struct Manifest {
        ManifestEntry *entries;
        size_t n_entries;
} Manifest;

Manifest *manifest_new(void);
Manifest *manifest_free(Manifest *m);
static inline void manifest_freep(Manifest **m) {
        if (*m)
                manifest_free(*m);
}

/* Load from <state_dir>/manifest.json below rootfd. A missing file is an
 * empty manifest; a corrupt one is -EBADMSG (the caller decides). */
int manifest_load(int rootfd, const char *state_dir, Manifest **ret);
/* Save atomically, creating state_dir (0700) if needed. */
int manifest_save(int rootfd, const char *state_dir, const Manifest *m);

ManifestEntry *manifest_find(const Manifest *m, const char *target, const char *registry);
/* Add or update (target, registry); an existing entry keeps its hosts_sha256. */
int manifest_put(Manifest *m, const char *target, const char *registry, const char *sha256, bool dir_created);
void manifest_remove(Manifest *m, const char *target, const char *registry);
