/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "fs.h"
#include "log.h"
#include "source-dir-read.h"
#include "source-dir.h"

#define DIR_EVENTS                                                                              \
        (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB |     \
         IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

typedef struct DirSource DirSource;

/*
 * Watch a directory, not files: the kubelet replaces "..data" by rename, and
 * a watch on a file dies with the first swap. When the directory does not
 * exist yet we watch its parent and move down once it appears.
 */
typedef struct Watch {
        DirSource *owner;
        char *path; /* the directory to watch */
        const char *description; /* of its event source */
        sd_event_source *src;
        bool on_parent;
        /* The trust watch: read_trust() skips dot files, so an event on one
         * (the kubelet's new "..2026_..." directory, "..data_tmp", editors'
         * temporaries) cannot change the snapshot; only "..data" can. */
        bool ignore_dotfiles;
} Watch;

struct DirSource {
        Source base;
        sd_event *event;
        char *trust_path;
        char *pull_path;
        Watch watches[2];
        size_t n_watches;
        bool trust_present; /* what dir_healthy() found when last looked */
        /* The trust path's own name in its parent: a symlink to the
         * directory removed or replaced, or the directory renamed away,
         * shows there, not on the directory the watch holds. */
        sd_event_source *name_watch;
        char *trust_parent, *trust_name;
};

static int watch_arm(Watch *w);

/* What dir_healthy() judges: the trust directory exists (or none is set). */
static bool trust_present(const DirSource *d) {
        struct stat st;

        return !d->trust_path || stat(d->trust_path, &st) >= 0;
}

/* Judge again what dir_healthy() answers; tell the manager when it flipped. */
static void trust_check(DirSource *d) {
        bool present = trust_present(d);

        if (present != d->trust_present) {
                d->trust_present = present;
                source_notify_health(&d->base);
        }
}

static int on_trust_name(sd_event_source *s, const struct inotify_event *ev, void *userdata);

/* Watch the trust path's parent for its name; quietly none while the
 * parent is missing (the trust watch then walks up and sees it come). */
static void name_watch_arm(DirSource *d) {
        d->name_watch = sd_event_source_disable_unref(d->name_watch);
        if (!d->trust_parent)
                return;
        if (sd_event_add_inotify(d->event, &d->name_watch, d->trust_parent,
                                 IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF |
                                         IN_MOVE_SELF | IN_ONLYDIR,
                                 on_trust_name, d) >= 0)
                (void) sd_event_source_set_description(d->name_watch, "source-dir-trust-name");
}

static int on_trust_name(sd_event_source *s, const struct inotify_event *ev, void *userdata) {
        DirSource *d = userdata;

        (void) s;
        if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
                name_watch_arm(d);
        else if (ev->len == 0 || !streq(ev->name, d->trust_name))
                return 0;
        trust_check(d);
        return 0;
}

static int on_inotify(sd_event_source *s, const struct inotify_event *ev, void *userdata) {
        Watch *w = userdata;

        (void) s;
        if (w->ignore_dotfiles && !w->on_parent && ev->len > 0 && ev->name[0] == '.' &&
            strcmp(ev->name, "..data") != 0)
                return 0;
        /* The directory itself went away, or something appeared in the
         * parent we watch while it is missing: re-arm on what exists now. */
        if ((ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) || w->on_parent) {
                DirSource *d = w->owner;

                (void) watch_arm(w);
                /* A parent that came back gets its name watch again. */
                if (!d->name_watch)
                        name_watch_arm(d);
                /* With these events a directory we watch went away or
                 * came back; most events in a parent are about other
                 * names, hence trust_check() compares. Looking after
                 * re-arming leaves no gap: a change from here on comes
                 * with an event of its own. */
                trust_check(d);
        }
        source_notify(&w->owner->base);
        return 0;
}

static int watch_arm(Watch *w) {
        _cleanup_free_ char *copy = NULL;
        const char *target = w->path;
        int r;

        w->src = sd_event_source_disable_unref(w->src);
        w->on_parent = false;

        for (;;) {
                r = sd_event_add_inotify(w->owner->event, &w->src, target, DIR_EVENTS, on_inotify, w);
                if (r != -ENOENT && r != -ENOTDIR)
                        break;
                /* Walk up until something exists; "/" always does. */
                char *next = strdup(target);
                if (!next)
                        return -ENOMEM;
                free(copy);
                copy = next;
                target = dirname(copy);
                w->on_parent = true;
        }
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(w->src, w->description);
        if (w->on_parent)
                log_debug("'%s' does not exist yet; watching '%s' for it", w->path, target);
        return 0;
}

static int watch_init(DirSource *d, const char *path, const char *description, bool ignore_dotfiles) {
        struct stat st;
        Watch *w = &d->watches[d->n_watches];
        _cleanup_free_ char *copy = strdup(path);

        if (!copy)
                return -ENOMEM;
        /* A plain file (the pull secret on a bare-metal host): watch its directory. */
        if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode))
                w->path = strdup(dirname(copy));
        else
                w->path = strdup(path);
        if (!w->path)
                return -ENOMEM;
        w->owner = d;
        w->description = description;
        w->ignore_dotfiles = ignore_dotfiles;
        d->n_watches++;
        return watch_arm(w);
}

static int dir_start(Source *s, sd_event *event) {
        DirSource *d = (DirSource *) s;
        int r;

        d->event = sd_event_ref(event);
        if (d->trust_path) {
                r = watch_init(d, d->trust_path, "source-dir-trust", true);
                if (r < 0)
                        return r;
                name_watch_arm(d);
        }
        if (d->pull_path) {
                r = watch_init(d, d->pull_path, "source-dir-pull-secret", false);
                if (r < 0)
                        return r;
        }
        /* After the watches, as on_inotify() looks: from here on a change
         * comes with an event. */
        d->trust_present = trust_present(d);
        return 0;
}

static int dir_read_once(DirSource *d, Snapshot **ret) {
        _cleanup_(snapshot_freep) Snapshot *snap = snapshot_new();
        int r;

        if (!snap)
                return -ENOMEM;
        if (d->trust_path) {
                r = source_dir_read_trust(d->trust_path, snap);
                if (r < 0)
                        return r;
        }
        if (d->pull_path) {
                r = source_dir_read_pull_secret(d->pull_path, snap);
                /* A missing secret is "no pull secret", not an error. */
                if (r < 0 && r != -ENOENT)
                        return r;
        }
        if (asprintf(&snap->origin, "%s", d->trust_path ? d->trust_path : d->pull_path) < 0)
                return -ENOMEM;
        snapshot_sort(snap);
        *ret = TAKE_PTR(snap);
        return 0;
}

/* A kubelet swap during the read: read the new generation instead. Should
 * swaps keep coming, say "nothing yet"; the next swap's event calls again. */
static int dir_read(Source *s, Snapshot **ret) {
        for (unsigned attempt = 0; attempt < 8; attempt++) {
                int r = dir_read_once((DirSource *) s, ret);
                if (r != -ESTALE)
                        return r;
                log_debug("A '..data' swap happened while reading; reading again");
        }
        return -EAGAIN;
}

static bool dir_healthy(Source *s, const char **reason) {
        DirSource *d = (DirSource *) s;

        if (!trust_present(d)) {
                *reason = "the trust source directory does not exist";
                return false;
        }
        return true;
}

static void dir_free(Source *s) {
        DirSource *d = (DirSource *) s;

        for (size_t i = 0; i < d->n_watches; i++) {
                sd_event_source_disable_unref(d->watches[i].src);
                free(d->watches[i].path);
        }
        sd_event_source_disable_unref(d->name_watch);
        sd_event_unref(d->event);
        free(d->trust_parent);
        free(d->trust_name);
        free(d->trust_path);
        free(d->pull_path);
        free(d);
}

static const SourceOps dir_ops = {
        .kind = "dir",
        .start = dir_start,
        .read = dir_read,
        .healthy = dir_healthy,
        .free = dir_free,
};

int source_dir_new(const char *trust_path, const char *pull_secret_path, Source **ret) {
        DirSource *d;

        assert(ret);

        d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        d->base.ops = &dir_ops;
        d->trust_path = trust_path ? strdup(trust_path) : NULL;
        d->pull_path = pull_secret_path ? strdup(pull_secret_path) : NULL;
        if ((trust_path && !d->trust_path) || (pull_secret_path && !d->pull_path)) {
                dir_free(&d->base);
                return -ENOMEM;
        }
        if (d->trust_path) {
                /* "/a/b/" and "/a/b" name "b" in "/a"; "/" has no parent to watch. */
                _cleanup_free_ char *copy = strdup(d->trust_path);
                char *slash;
                size_t n;

                if (!copy) {
                        dir_free(&d->base);
                        return -ENOMEM;
                }
                n = strlen(copy);
                while (n > 1 && copy[n - 1] == '/')
                        copy[--n] = 0;
                slash = strrchr(copy, '/');
                if (slash && slash[1]) {
                        d->trust_name = strdup(slash + 1);
                        *slash = 0;
                        d->trust_parent = strdup(slash == copy ? "/" : copy);
                        if (!d->trust_name || !d->trust_parent) {
                                dir_free(&d->base);
                                return -ENOMEM;
                        }
                } else if (!slash && *copy) {
                        /* Relative: in the working directory. */
                        d->trust_name = strdup(copy);
                        d->trust_parent = strdup(".");
                        if (!d->trust_name || !d->trust_parent) {
                                dir_free(&d->base);
                                return -ENOMEM;
                        }
                }
        }
        *ret = &d->base;
        return 0;
}
