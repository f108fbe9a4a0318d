/* SPDX-License-Identifier: MIT */
#pragma once

/* What output-watch.c (the watches) and output-watch-changes.c (what their
 * events say changed) share. */

#include <sys/inotify.h>

#include "output-watch.h"

/* Order OutputWatchRef by descriptor (qsort, bsearch). */
int output_watch_ref_compare(const void *a, const void *b);

/* Note what the event ev (not an overflow, not IN_IGNORED or IN_MOVE_SELF)
 * may have changed, for each watch its descriptor stands for. */
void output_watches_note_event(OutputWatches *w, const struct inotify_event *ev);
