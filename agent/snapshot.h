/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A snapshot is what a source saw at one moment: the trust config map's
 * entries (key -> raw bytes, exactly as stored) and the pull secret's raw
 * bytes. It is plain data: sources build it, trust/pullsecret consume it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The agent reads at most this many keys of a trust map; the keys beyond
 * it (by name) are refused, each with the limit as its reason. */
#define SNAPSHOT_ENTRIES_MAX 4096

typedef struct SnapshotEntry {
        char *key;
        unsigned char *value; /* NUL-terminated; "" when error is set */
        size_t size;
        /* Set when the source could not take the value at all (a FIFO, a
         * value over the size limit): the key is refused with this reason,
         * and every other key still applies. */
        char *error;
} SnapshotEntry;

typedef struct Snapshot {
        /* false when the source has no trust config map at all (e.g. the
         * image.config names none); the trust set is then empty. */
        bool have_trust;
        SnapshotEntry *entries;
        size_t n_entries;
        size_t n_allocated; /* room in entries; snapshot_add_*() keep it */

        bool have_pull_secret;
        unsigned char *pull_secret;
        size_t pull_secret_size;
        /* Set (static string) when the source found a pull secret it could
         * not even read, e.g. one over the size limit: the secret is then
         * invalid, while the trust half of the snapshot is still good. */
        const char *pull_secret_error;

        /* A short, secret-free description of where this came from, e.g.
         * "/etc/nodetrust/trust/..2026_11_21_16_00_00.1" or
         * "configmap openshift-config/registry-cas rv=1234". */
        char *origin;
} Snapshot;

Snapshot *snapshot_new(void);
Snapshot *snapshot_free(Snapshot *s);
static inline void snapshot_freep(Snapshot **s) {
        if (*s)
                snapshot_free(*s);
}

/* Add a copy of (key, value) to the trust entries; -ENOMEM on failure. */
int snapshot_add_entry(Snapshot *s, const char *key, const void *value, size_t size);

/* Add key as a value the source could not read, refused for reason. */
int snapshot_add_refused(Snapshot *s, const char *key, const char *reason);

/* Refuse every entry beyond the first SNAPSHOT_ENTRIES_MAX by key, giving
 * the limit as the reason; sorts the entries. */
int snapshot_limit_entries(Snapshot *s);

/* Replace the pull secret with a copy of data. */
int snapshot_set_pull_secret(Snapshot *s, const void *data, size_t size);

/* Sort entries by key so that hashing and planning are deterministic. */
void snapshot_sort(Snapshot *s);

/* sha256 (hex, 64 chars + NUL) over the sorted trust entries only (a
 * refused entry counts with its reason). */
void snapshot_trust_hash(const Snapshot *s, char ret[65]);
