/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "cleanup.h"
#include "fs.h"
#include "log.h"
#include "output-watch-internal.h"
#include "strv.h"
#include "target.h"

/* IN_MODIFY too: a truncate(2), or a write through a descriptor kept open,
 * says nothing else, and the plan takes over what no event named. */
#define WATCH_MASK                                                                                      \
        (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | \
         IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW)

/* A directory to watch, relative to --root: dir, or dir/registry. */
typedef struct WatchKey {
        const char *dir;
        const char *registry; /* NULL: dir itself */
} WatchKey;

/* Order keys as the strings "dir" and "dir/registry" order, without
 * building them. */
static int key_compare(const WatchKey *a, const WatchKey *b) {
        const char *pa[3] = { a->dir, a->registry ? "/" : "", a->registry ? a->registry : "" };
        const char *pb[3] = { b->dir, b->registry ? "/" : "", b->registry ? b->registry : "" };
        const char *sa = pa[0], *sb = pb[0];
        size_t ia = 0, ib = 0;

        for (;; sa++, sb++) {
                while (!*sa && ia < 2)
                        sa = pa[++ia];
                while (!*sb && ib < 2)
                        sb = pb[++ib];
                if (*sa != *sb)
                        return (unsigned char) *sa - (unsigned char) *sb;
                if (!*sa)
                        return 0;
        }
}

static int key_compare_qsort(const void *a, const void *b) {
        return key_compare(a, b);
}

static int int_compare(const void *a, const void *b) {
        int x = *(const int *) a, y = *(const int *) b;
        return (x > y) - (x < y);
}

static bool int_sorted_contains(const int *v, size_t n, int x) {
        return n > 0 && bsearch(&x, v, n, sizeof *v, int_compare);
}

static void watch_ended(OutputWatches *w, int wd) {
        int *p = realloc(w->ended, (w->n_ended + 1) * sizeof *p);
        if (!p) {
                w->overflow = true; /* check them all instead */
                return;
        }
        p[w->n_ended++] = wd;
        w->ended = p;
}

static int on_inotify(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        OutputWatches *w = userdata;
        bool news = false;

        (void) s;
        (void) revents;
        for (;;) {
                union {
                        struct inotify_event ev;
                        char buf[16384];
                } u;
                ssize_t l = read(fd, &u, sizeof u);
                if (l < 0 && errno == EINTR)
                        continue;
                if (l <= 0)
                        break; /* EAGAIN: all read */
                for (char *p = u.buf; p < u.buf + l;) {
                        const struct inotify_event *ev = (const struct inotify_event *) p;
                        p += sizeof *ev + ev->len;
                        if (ev->mask & IN_Q_OVERFLOW) {
                                w->overflow = true;
                                w->changed_all = true;
                                news = true;
                        } else if (ev->mask & IN_IGNORED) {
                                /* A watch we ended ourselves is no news. Any
                                 * other: its directory is gone or unmounted,
                                 * and its path may hold a new one. */
                                if (int_sorted_contains(w->wds, w->n_wds, ev->wd)) {
                                        watch_ended(w, ev->wd);
                                        w->changed_all = true;
                                        news = true;
                                }
                        } else {
                                if (ev->mask & IN_MOVE_SELF) {
                                        /* The watch would follow the directory
                                         * away from its path: watch the path again. */
                                        (void) inotify_rm_watch(fd, ev->wd);
                                        watch_ended(w, ev->wd);
                                        w->changed_all = true;
                                } else
                                        output_watches_note_event(w, ev);
                                news = true;
                        }
                }
        }
        if (news && w->handler)
                w->handler(w->userdata);
        return 0;
}

static int output_watches_open(OutputWatches *w, sd_event *event) {
        _cleanup_close_ int fd = -1;
        int r;

        if (w->io)
                return 0;
        fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (fd < 0)
                return log_warning_errno(-errno, "Failed to set up inotify for the output directories");
        r = sd_event_add_io(event, &w->io, fd, EPOLLIN, on_inotify, w);
        if (r < 0)
                return log_warning_errno(r, "Failed to watch the output directories");
        (void) sd_event_source_set_description(w->io, "output-watch");
        w->fd = TAKE_FD(fd);
        return 0;
}

/* Watch root/rel: its descriptor, or -1 when it cannot be watched now. */
static int watch_add(OutputWatches *w, const char *root, const char *rel) {
        _cleanup_free_ char *path = path_join(root, rel);
        int wd;

        if (!path)
                return -1;
        wd = inotify_add_watch(w->fd, path, WATCH_MASK);
        if (wd < 0 && errno == ENOSPC && !w->full) {
                w->full = true;
                log_warning("Too many inotify watches (fs.inotify.max_user_watches): what changes under '%s' "
                            "and other directories is repaired at the next resync, not at once",
                            path);
        }
        return wd;
}

/* The directories set and manifest call for, sorted, each once; cdir
 * holds containerd's config directory while the keys live. */
static int desired_keys(const OutputWatchSet *set, const Manifest *manifest, char **cdir, WatchKey **ret,
                        size_t *ret_n) {
        _cleanup_free_ WatchKey *v = calloc(N_TARGETS + 1 + manifest->n_entries, sizeof *v);
        size_t n = 0, u = 0;

        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < N_TARGETS; i++)
                if (set->target_mask & targets[i].bit)
                        v[n++] = (WatchKey){ targets[i].dir, NULL };
        if ((set->target_mask & TARGET_CONTAINERD) && set->containerd_config) {
                char *slash;
                *cdir = strdup(set->containerd_config + 1);
                if (!*cdir)
                        return -ENOMEM;
                slash = strrchr(*cdir, '/');
                if (slash) {
                        *slash = 0;
                        v[n++] = (WatchKey){ *cdir, NULL };
                }
        }
        for (size_t i = 0; i < manifest->n_entries; i++) {
                const Target *tg = target_by_name(manifest->entries[i].target);
                if (tg && (set->target_mask & tg->bit))
                        v[n++] = (WatchKey){ tg->dir, manifest->entries[i].registry };
        }
        qsort(v, n, sizeof *v, key_compare_qsort);
        for (size_t i = 0; i < n; i++)
                if (u == 0 || key_compare(&v[u - 1], &v[i]) != 0)
                        v[u++] = v[i];
        *ret = TAKE_PTR(v);
        *ret_n = u;
        return 0;
}

static int watch_rel_compare(const void *a, const void *b) {
        return strcmp(((const OutputWatch *) a)->rel, ((const OutputWatch *) b)->rel);
}

static bool refresh_contains(const OutputWatches *w, const char *rel) {
        return w->n_refresh > 0 && bsearch(&rel, w->refresh, w->n_refresh, sizeof *w->refresh, strv_compare);
}

static void refresh_clear(OutputWatches *w) {
        for (size_t i = 0; i < w->n_refresh; i++)
                free(w->refresh[i]);
        w->n_refresh = 0;
}

static char *key_to_rel(const WatchKey *k) {
        char *rel = NULL;

        if (!k->registry)
                return strdup(k->dir);
        return asprintf(&rel, "%s/%s", k->dir, k->registry) < 0 ? NULL : rel;
}

/* Only directories the agent wrote into to check, none of the set changed:
 * each is found by its path, and watched again. false when that is not
 * enough (a path not watched, or now another directory): then the whole
 * update runs, with the refresh list still there. */
static bool refresh_only(OutputWatches *w, const char *root) {
        for (size_t i = 0; i < w->n_refresh; i++) {
                OutputWatch key = { .rel = w->refresh[i] }, *f;
                int wd;

                f = w->n > 0 ? bsearch(&key, w->watches, w->n, sizeof *w->watches, watch_rel_compare) : NULL;
                if (!f || f->wd < 0)
                        return false;
                wd = watch_add(w, root, f->rel);
                if (wd != f->wd)
                        return false;
        }
        refresh_clear(w);
        return true;
}

int output_watches_update(OutputWatches *w, const OutputWatchSet *set, const Manifest *manifest) {
        _cleanup_free_ WatchKey *want = NULL;
        _cleanup_free_ char *cdir = NULL;
        _cleanup_free_ int *gone = NULL;
        _cleanup_free_ OutputWatch *next = NULL;
        OutputWatchRef *by_wd;
        int *wds;
        size_t n_want = 0, n_next = 0, n_gone = 0, n_wds = 0, i = 0, j = 0;
        bool incomplete = false;
        int r;

        assert(w);
        assert(set);
        assert(set->event);
        assert(set->root);
        assert(manifest);

        r = output_watches_open(w, set->event);
        if (r < 0) {
                /* Nothing is watched: what was asked for is moot (and
                 * must not pile up, sync after sync). */
                refresh_clear(w);
                w->n_ended = 0;
                return r;
        }
        w->handler = set->handler;
        w->userdata = set->userdata;
        /* The common case, one file rewritten: no change to the set. */
        if (w->manifest == manifest && w->manifest_keys == manifest->keys_changed &&
            w->target_mask == set->target_mask && !w->overflow && w->n_ended == 0 && w->n_unwatched == 0 &&
            refresh_only(w, set->root))
                return 0;
        r = desired_keys(set, manifest, &cdir, &want, &n_want);
        if (r < 0)
                return r;
        /* Everything that can run out of memory, up front. */
        next = calloc(n_want + 1, sizeof *next);
        gone = calloc(w->n + n_want + 1, sizeof *gone);
        wds = calloc(n_want + 1, sizeof *wds);
        by_wd = calloc(n_want + 1, sizeof *by_wd);
        if (!next || !gone || !wds || !by_wd) {
                free(wds);
                free(by_wd);
                return -ENOMEM;
        }

        if (w->n_refresh > 0)
                qsort(w->refresh, w->n_refresh, sizeof *w->refresh, strv_compare);
        /* Ended watches are watched again, by path. */
        if (w->n_ended > 0) {
                qsort(w->ended, w->n_ended, sizeof *w->ended, int_compare);
                for (size_t k = 0; k < w->n; k++)
                        if (int_sorted_contains(w->ended, w->n_ended, w->watches[k].wd))
                                w->watches[k].wd = -1;
        }

        /* Merge the two sorted lists: keep what stays, add what is new,
         * note the descriptors of what went. */
        while (i < w->n || j < n_want) {
                WatchKey have = { i < w->n ? w->watches[i].rel : NULL, NULL };
                int c = i >= w->n ? 1 : j >= n_want ? -1 : key_compare(&have, &want[j]);
                OutputWatch *ow = &next[n_next];

                if (c < 0) {
                        if (w->watches[i].wd >= 0)
                                gone[n_gone++] = w->watches[i].wd;
                        free(w->watches[i++].rel);
                        continue;
                }
                if (c == 0) {
                        *ow = w->watches[i++];
                        if (ow->wd < 0 || w->overflow || refresh_contains(w, ow->rel)) {
                                int old = ow->wd;
                                ow->wd = watch_add(w, set->root, ow->rel);
                                if (old >= 0 && old != ow->wd)
                                        gone[n_gone++] = old;
                        }
                } else {
                        ow->rel = key_to_rel(&want[j]);
                        if (!ow->rel) {
                                incomplete = true; /* tried again at the next update */
                                j++;
                                continue;
                        }
                        ow->wd = watch_add(w, set->root, ow->rel);
                }
                if (ow->wd >= 0)
                        wds[n_wds++] = ow->wd;
                n_next++;
                j++;
        }

        /* Two paths can be one directory, and one descriptor: end only
         * what no remaining path uses. */
        qsort(wds, n_wds, sizeof *wds, int_compare);
        for (size_t k = 0; k < n_gone; k++)
                if (!int_sorted_contains(wds, n_wds, gone[k]))
                        (void) inotify_rm_watch(w->fd, gone[k]);

        free(w->watches);
        w->watches = TAKE_PTR(next);
        w->n = n_next;
        free(w->wds);
        w->wds = wds;
        w->n_wds = n_wds;
        free(w->by_wd);
        w->by_wd = by_wd;
        w->n_by_wd = 0;
        w->n_unwatched = 0;
        for (size_t k = 0; k < w->n; k++)
                if (w->watches[k].wd >= 0)
                        by_wd[w->n_by_wd++] = (OutputWatchRef){ w->watches[k].wd, k };
                else
                        w->n_unwatched++;
        qsort(by_wd, w->n_by_wd, sizeof *by_wd, output_watch_ref_compare);
        w->n_ended = 0;
        refresh_clear(w);
        w->overflow = incomplete;
        w->manifest = manifest;
        w->manifest_keys = manifest->keys_changed;
        w->target_mask = set->target_mask;
        return 0;
}

void output_watches_refresh(OutputWatches *w, const char *dir, const char *registry) {
        WatchKey k = { dir, registry };
        char *rel, **v;

        assert(w);
        assert(dir);
        rel = key_to_rel(&k);
        v = rel ? realloc(w->refresh, (w->n_refresh + 1) * sizeof *v) : NULL;
        if (!v) {
                free(rel);
                w->overflow = true; /* check them all instead */
                return;
        }
        v[w->n_refresh++] = rel;
        w->refresh = v;
}

bool output_watches_need_update(const OutputWatches *w) {
        assert(w);
        return w->n_ended > 0 || w->n_refresh > 0 || w->overflow;
}

bool output_watches_complete(const OutputWatches *w) {
        assert(w);
        return w->io && !w->full && !output_watches_need_update(w) && w->n_unwatched == 0;
}

size_t output_watches_active(const OutputWatches *w) {
        size_t n = 0;

        assert(w);
        for (size_t i = 0; i < w->n; i++)
                n += w->watches[i].wd >= 0;
        return n;
}

void output_watches_clear(OutputWatches *w) {
        assert(w);

        if (w->io) {
                sd_event_source_disable_unref(w->io);
                safe_close(w->fd);
        }
        for (size_t i = 0; i < w->n; i++)
                free(w->watches[i].rel);
        free(w->watches);
        free(w->wds);
        free(w->by_wd);
        free(w->ended);
        refresh_clear(w);
        for (size_t i = 0; i < w->n_changed; i++)
                free(w->changed[i]);
        free(w->changed);
        free(w->refresh);
        *w = (OutputWatches){};
}
