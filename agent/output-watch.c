/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>

#include "cleanup.h"
#include "fs.h"
#include "output-watch.h"
#include "target.h"

void output_watches_clear(OutputWatches *w) {
        assert(w);

        for (size_t i = 0; i < w->n; i++)
                sd_event_source_disable_unref(w->sources[i]);
        free(w->sources);
        *w = (OutputWatches){};
}

static void output_watch_add(OutputWatches *w, const OutputWatchSet *set, const char *rel) {
        _cleanup_free_ char *path = path_join(set->root, rel);
        sd_event_source *src = NULL, **n;

        if (!path)
                return;
        if (sd_event_add_inotify(set->event, &src, path,
                                 IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE |
                                         IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW,
                                 set->handler, set->userdata) < 0)
                return;
        (void) sd_event_source_set_description(src, "output-watch");
        n = realloc(w->sources, (w->n + 1) * sizeof *n);
        if (!n) {
                sd_event_source_disable_unref(src);
                return;
        }
        w->sources = n;
        w->sources[w->n++] = src;
}

void output_watches_update(OutputWatches *w, const OutputWatchSet *set, const Manifest *manifest) {
        assert(w);
        assert(set);
        assert(set->event);
        assert(set->root);
        assert(manifest);

        output_watches_clear(w);
        for (size_t i = 0; i < ELEMENTSOF(targets); i++)
                if (set->target_mask & targets[i].bit)
                        output_watch_add(w, set, targets[i].dir);
        /* An admin who fixes containerd's config_path hears about it at
         * once, not at the next resync: its directory is watched too. */
        if ((set->target_mask & TARGET_CONTAINERD) && set->containerd_config) {
                _cleanup_free_ char *dir = strdup(set->containerd_config + 1);
                char *slash = dir ? strrchr(dir, '/') : NULL;
                if (slash) {
                        *slash = 0;
                        output_watch_add(w, set, dir);
                }
        }
        for (size_t i = 0; i < manifest->n_entries; i++) {
                const Target *tg = target_by_name(manifest->entries[i].target);
                _cleanup_free_ char *rel = NULL;
                if (tg && asprintf(&rel, "%s/%s", tg->dir, manifest->entries[i].registry) >= 0)
                        output_watch_add(w, set, rel);
        }
}
