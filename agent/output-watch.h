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

typedef struct OutputWatches {
        int fd; /* inotify; valid while io is set */
        sd_event_source *io;
        OutputWatch *watches; /* sorted by rel */
        size_t n;
        int *wds; /* the descriptors in use, sorted */
        size_t n_wds;
        /* Watches the kernel ended, or that moved away, since the last update. */
        int *ended;
        size_t n_ended;
        /* Directories the agent (re)created since the last update: the
         * path may hold a new directory where the watch has the old one. */
        char **refresh;
        size_t n_refresh;
        bool overflow; /* events were lost: check every watch again */
        bool full;     /* the watch limit was hit (logged once) */
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

/* Number of directories watched now. */
size_t output_watches_active(const OutputWatches *w);

void output_watches_clear(OutputWatches *w);
