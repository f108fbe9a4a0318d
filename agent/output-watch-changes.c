/* SPDX-License-Identifier: MIT */
/*
 * What the output watches' events say may have changed: the registry each
 * was about, or everything (output-watch.h, output_watches_take_changes()).
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>

#include "cleanup.h"
#include "output-watch-internal.h"
#include "strv.h"
#include "target.h"

int output_watch_ref_compare(const void *a, const void *b) {
        const OutputWatchRef *x = a, *y = b;
        return (x->wd > y->wd) - (x->wd < y->wd);
}

static void changed_add(OutputWatches *w, const char *name, size_t len) {
        char *copy;

        if (w->changed_all)
                return;
        if (greedy_realloc((void **) &w->changed, &w->n_changed_allocated, w->n_changed + 2, 16,
                           sizeof *w->changed) < 0 ||
            !(copy = strndup(name, len))) {
                w->changed_all = true; /* check them all instead */
                return;
        }
        w->changed[w->n_changed++] = copy;
}

/* What an event in the watched directory rel, about name (NULL: the
 * directory itself), may have changed. In a target directory the name is
 * a registry's directory, or containerd's HOST_PORT_ spelling of one
 * (read before ours); _default is read for every registry. In a registry
 * directory, it is that registry. Anywhere else, anything. */
static void note_change(OutputWatches *w, const char *rel, const char *name) {
        for (size_t i = 0; i < N_TARGETS; i++) {
                size_t l = strlen(targets[i].dir);
                const char *u;

                if (strncmp(rel, targets[i].dir, l) != 0)
                        continue;
                if (rel[l] == '/') {
                        changed_add(w, rel + l + 1, strlen(rel + l + 1));
                        return;
                }
                if (rel[l] != 0)
                        continue;
                if (!name || !*name || streq(name, "_default"))
                        break;
                w->changed_in_target = true;
                changed_add(w, name, strlen(name));
                /* HOST_PORT_ is HOST:PORT's directory too. */
                l = strlen(name);
                if (l > 2 && name[l - 1] == '_' && (u = memrchr(name, '_', l - 1))) {
                        _cleanup_free_ char *hp = strndup(name, l - 1);
                        if (!hp) {
                                w->changed_all = true;
                                return;
                        }
                        hp[u - name] = ':';
                        changed_add(w, hp, l - 1);
                }
                return;
        }
        w->changed_all = true;
}

/* Every watch the event's descriptor stands for (two paths may be one
 * directory). */
void output_watches_note_event(OutputWatches *w, const struct inotify_event *ev) {
        OutputWatchRef key = { .wd = ev->wd }, *f;
        const char *name = ev->len > 0 ? ev->name : NULL;

        f = w->n_by_wd > 0 ? bsearch(&key, w->by_wd, w->n_by_wd, sizeof *w->by_wd, output_watch_ref_compare) : NULL;
        if (!f) {
                w->changed_all = true;
                return;
        }
        while (f > w->by_wd && f[-1].wd == ev->wd)
                f--;
        for (; f < w->by_wd + w->n_by_wd && f->wd == ev->wd; f++)
                note_change(w, w->watches[f->index].rel, name);
}

void output_watches_take_changes(OutputWatches *w, char ***ret, size_t *ret_n, bool *ret_all, bool *ret_in_target) {
        size_t u = 0;

        assert(w);
        assert(ret);
        assert(ret_n);
        assert(ret_all);

        *ret = NULL;
        *ret_n = 0;
        *ret_all = w->changed_all;
        if (ret_in_target)
                *ret_in_target = w->changed_in_target;
        if (!w->changed_all && w->n_changed > 0) {
                qsort(w->changed, w->n_changed, sizeof *w->changed, strv_compare);
                for (size_t i = 0; i < w->n_changed; i++)
                        if (u > 0 && streq(w->changed[u - 1], w->changed[i]))
                                free(w->changed[i]);
                        else
                                w->changed[u++] = w->changed[i];
                w->changed[u] = NULL;
                *ret = TAKE_PTR(w->changed);
                *ret_n = u;
                w->n_changed_allocated = 0;
        }
        for (size_t i = 0; w->changed && i < w->n_changed; i++)
                free(w->changed[i]);
        w->changed = mfree(w->changed);
        w->n_changed = w->n_changed_allocated = 0;
        w->changed_all = w->changed_in_target = false;
}

