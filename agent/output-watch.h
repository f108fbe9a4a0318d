/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Inotify watches on what the agent writes: each enabled target directory,
 * the directory of containerd's config.toml (an admin who fixes
 * config_path is heard at once), and every registry directory the
 * manifest says we own. A deleted or edited file is then repaired at
 * once, not at the next resync.
 *
 * One inotify descriptor holds every watch, however many registries
 * there are. An update changes only the watches that differ: a watch
 * that stays is never dropped, so an event that arrives while the agent
 * applies is never lost with it. A watch the kernel ended (its directory
 * deleted or unmounted) or whose directory moved away is added again, by
 * path, at the next update.
 *
 * Each event also says what may have changed: the registry whose
 * directory it was in (or the name it was about, in a target directory),
 * or everything (lost events, a watch that ended, containerd's config
 * directory). The plan takes the rest over from the plan before without
 * reading the disk (output_watches_take_changes()).
 */

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#include "manifest.h"

typedef void (*OutputWatchHandler)(void *userdata);

typedef struct OutputWatch {
        char *rel; /* relative to --root */
        int wd;    /* -1: not watched (missing, or ended) */
} OutputWatch;

/* A watch by its descriptor: the index into OutputWatches.watches. */
typedef struct OutputWatchRef {
        int wd;
        size_t index;
} OutputWatchRef;

typedef struct OutputWatches {
        int fd; /* inotify; valid while io is set */
        sd_event_source *io;
        OutputWatch *watches; /* sorted by rel */
        size_t n;
        int *wds; /* the descriptors in use, sorted */
        size_t n_wds;
        OutputWatchRef *by_wd; /* every active watch, sorted by descriptor */
        size_t n_by_wd;
        size_t n_unwatched; /* watches wanted but not active since the last update */
        /* Watches the kernel ended, or that moved away, since the last update. */
        int *ended;
        size_t n_ended;
        /* Directories the agent (re)created since the last update: the
         * path may hold a new directory where the watch has the old one. */
        char **refresh;
        size_t n_refresh;
        bool overflow; /* events were lost: check every watch again */
        bool full;     /* the watch limit was hit (logged once) */
        /* The manifest (keys_changed) and target mask the watches were set for. */
        uint64_t manifest_keys;
        const Manifest *manifest;
        unsigned target_mask;
        /* What may have changed since output_watches_take_changes(): the
         * registries named (in no order, maybe twice), or everything. */
        char **changed;
        size_t n_changed, n_changed_allocated;
        bool changed_all;
        bool changed_in_target; /* an event in a target directory itself (a name created or gone) */
        OutputWatchHandler handler;
        void *userdata;
} OutputWatches;

/* What to watch and whom to tell. */
typedef struct OutputWatchSet {
        sd_event *event;
        const char *root;              /* --root */
        unsigned target_mask;          /* TARGET_* bits */
        const char *containerd_config; /* absolute, inside root; NULL: none */
        OutputWatchHandler handler;    /* something under a watch changed */
        void *userdata;
} OutputWatchSet;

/* Watch what set and manifest call for, changing only what differs. A
 * directory that cannot be watched (missing, or over the kernel's watch
 * limit) is tried again at the next update. */
int output_watches_update(OutputWatches *w, const OutputWatchSet *set, const Manifest *manifest);

/* The agent wrote into root/dir/registry (registry NULL: root/dir): check
 * at the next update that the watch is on the directory the path names. */
void output_watches_refresh(OutputWatches *w, const char *dir, const char *registry);

/* Some watch ended or events were lost since the last update. */
bool output_watches_need_update(const OutputWatches *w);

/* Is every directory asked for watched, with no event lost? Then what
 * output_watches_take_changes() returns is all that can have changed. */
bool output_watches_complete(const OutputWatches *w);

/* What may have changed under the watches since the last call: *ret_all,
 * or the registries in *ret (sorted, each once, NULL-terminated; the caller
 * frees it with strv_free()), and forget it. On ENOMEM, *ret_all.
 * *ret_in_target: some event was in a target directory itself, not in a
 * registry's (may be NULL). */
void output_watches_take_changes(OutputWatches *w, char ***ret, size_t *ret_n, bool *ret_all, bool *ret_in_target);

/* Number of directories watched now. */
size_t output_watches_active(const OutputWatches *w);

void output_watches_clear(OutputWatches *w);
