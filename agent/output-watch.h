/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Inotify watches on what the agent writes: each enabled target directory,
 * the directory of containerd's config.toml (an admin who fixes
 * config_path is heard at once), and every registry directory the
 * manifest says we own. A deleted or edited file is then repaired at
 * once, not at the next resync.
 */

#include <stddef.h>
#include <systemd/sd-event.h>

#include "manifest.h"

typedef struct OutputWatches {
        sd_event_source **sources;
        size_t n;
} OutputWatches;

/* What to watch and whom to tell. */
typedef struct OutputWatchSet {
        sd_event *event;
        const char *root;              /* --root */
        unsigned target_mask;          /* TARGET_* bits */
        const char *containerd_config; /* absolute, inside root; NULL: none */
        sd_event_inotify_handler_t handler;
        void *userdata;
} OutputWatchSet;

/* Drop every watch and add the ones set and manifest call for. A
 * directory that cannot be watched (gone, or too many watches) is skipped. */
void output_watches_update(OutputWatches *w, const OutputWatchSet *set, const Manifest *manifest);

void output_watches_clear(OutputWatches *w);
