/* SPDX-License-Identifier: MIT */
/*
 * What a plan concluded, kept for the next one (plan.h: PlanMemo): how it
 * is made from an applied plan, looked up, and judged still current, on
 * the events' word or by a stat() of each file.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "containerd-hosts.h"
#include "fs.h"
#include "hash.h"
#include "plan-internal.h"
#include "strv.h"

/* A file modified in the same clock tick as it was looked at keeps its
 * times: only one older than this is known by them (git's racy rule). */
#define FILE_ID_SETTLE_SEC 2

FileId file_id_of(const Plan *p, const struct stat *st) {
        if (!S_ISREG(st->st_mode) || st->st_ctim.tv_sec > p->now.tv_sec - FILE_ID_SETTLE_SEC ||
            st->st_mtim.tv_sec > p->now.tv_sec - FILE_ID_SETTLE_SEC)
                return (FileId){};
        return (FileId){ .valid = true, .dev = st->st_dev, .ino = st->st_ino, .size = st->st_size,
                         .mtime = st->st_mtim, .ctime = st->st_ctim };
}

bool file_id_matches(const FileId *id, const struct stat *st) {
        return id->valid && S_ISREG(st->st_mode) && id->dev == st->st_dev && id->ino == st->st_ino &&
               id->size == st->st_size && id->mtime.tv_sec == st->st_mtim.tv_sec &&
               id->mtime.tv_nsec == st->st_mtim.tv_nsec && id->ctime.tv_sec == st->st_ctim.tv_sec &&
               id->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

bool action_done(const PlanAction *a) {
        return a->error == 0 && (a->type == ACTION_CREATE || a->type == ACTION_UPDATE || a->type == ACTION_UNCHANGED);
}

static bool is_hosts_of(const PlanAction *h, const PlanAction *a) {
        return h->target == a->target && streq(h->file, HOSTS_FILE) && streq(h->registry, a->registry);
}

int plan_memo_new(Plan *p, PlanMemo **ret) {
        _cleanup_free_ PlanMemoEntry *v = NULL;
        PlanMemo *m;
        size_t n = 0;

        assert(p);
        assert(ret);

        v = calloc(p->n_actions + 1, sizeof *v);
        m = calloc(1, sizeof *m);
        if (!v || !m) {
                free(m);
                return -ENOMEM;
        }
        for (size_t i = 0; i < p->n_actions; i++) {
                PlanAction *a = &p->actions[i], *h = i + 1 < p->n_actions ? &p->actions[i + 1] : NULL;

                /* The wanted ones: a ca.crt action with its entry. */
                if (!a->entry || !streq(a->file, CA_FILE))
                        continue;
                bool has_hosts = h && is_hosts_of(h, a);
                v[n++] = (PlanMemoEntry){
                        .target = a->target,
                        .registry = TAKE_PTR(a->registry),
                        .shadowed = TAKE_PTR(a->shadowed),
                        .done = action_done(a) && (!has_hosts || action_done(h)),
                        .has_hosts = has_hosts,
                        .ca_id = a->id,
                        .hosts_id = has_hosts ? h->id : (FileId){},
                };
        }
        m->entries = realloc(v, (n + 1) * sizeof *v) ?: v; /* no slack kept */
        v = NULL;
        m->n = n;
        *ret = m;
        return 0;
}

PlanMemo *plan_memo_free(PlanMemo *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n; i++) {
                free(m->entries[i].registry);
                free(m->entries[i].shadowed);
        }
        free(m->entries);
        free(m);
        return NULL;
}

/* The previous plan's conclusion for (tg, e), or NULL. The memo is in the
 * order this plan goes (target, then registry), so one cursor walks it. */
const PlanMemoEntry *memo_find(const PlanOptions *o, size_t *cursor, const Target *tg, const TrustEntry *e) {
        const PlanMemo *prev = o->previous;
        const PlanMemoEntry *x;

        if (!prev)
                return NULL;
        while (*cursor < prev->n) {
                x = &prev->entries[*cursor];
                if (x->target > tg || (x->target == tg && strcmp(x->registry, e->registry) >= 0))
                        break;
                (*cursor)++;
        }
        if (*cursor >= prev->n)
                return NULL;
        x = &prev->entries[*cursor];
        return x->target == tg && streq(x->registry, e->registry) ? x : NULL;
}

/* Can x stand for this plan's conclusion, as far as the manifest and the
 * options say: all of it done, the ca.crt recorded with the CA wanted now,
 * hosts.toml as wanted? */
bool memo_current(const PlanOptions *o, const PlanMemoEntry *x, const Target *tg, const TrustEntry *e,
                  const Manifest *m) {
        const ManifestEntry *me;

        if (!x->done)
                return false;
        me = manifest_find(m, tg->name, e->registry);
        if (!me || !streq(me->sha256, e->fingerprint))
                return false;
        return tg->bit != TARGET_CONTAINERD ||
               (x->has_hosts == o->containerd_hosts_toml && (!x->has_hosts || me->hosts_sha256[0]));
}

/* Taken over on the events' word: no event named the registry. */
bool reusable_by_events(const PlanOptions *o, const TrustEntry *e) {
        return !o->full &&
               !(o->n_changed > 0 && bsearch(&e->registry, o->changed, o->n_changed, sizeof *o->changed, strv_compare));
}

/* No hosts.toml where the memo says we own none: one an admin put there
 * since says how containerd reads the directory (a plan judges it). */
static bool hosts_absent_at(int dfd, const char *path) {
        struct stat st;
        return fstatat(dfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT;
}

/* Taken over on a stat() of each file: the very files the previous plan
 * read and found current, in the registry's own directory, which must be
 * a directory and no symlink (one swapped in by RENAME_EXCHANGE keeps the
 * files' inodes and times; the swap is also an event, so one done between
 * the two stats is seen by the next plan). basefd is the target's
 * certs.d directory. */
bool reusable_by_identity(int basefd, const PlanMemoEntry *x) {
        char path[PATH_MAX];
        struct stat st;

        if (!x->ca_id.valid || (x->has_hosts && !x->hosts_id.valid))
                return false;
        if (fstatat(basefd, x->registry, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
                return false;
        if (snprintf(path, sizeof path, "%s/" CA_FILE, x->registry) >= (int) sizeof path ||
            fstatat(basefd, path, &st, AT_SYMLINK_NOFOLLOW) < 0 || !file_id_matches(&x->ca_id, &st))
                return false;
        if (snprintf(path, sizeof path, "%s/" HOSTS_FILE, x->registry) >= (int) sizeof path)
                return false;
        if (!x->has_hosts)
                return x->target->bit != TARGET_CONTAINERD || hosts_absent_at(basefd, path);
        return fstatat(basefd, path, &st, AT_SYMLINK_NOFOLLOW) >= 0 && file_id_matches(&x->hosts_id, &st);
}

/* The memo's entry for (tg, registry), by binary search. */
static const PlanMemoEntry *memo_lookup(const PlanMemo *memo, const Target *tg, const char *registry) {
        size_t lo = 0, hi = memo->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const PlanMemoEntry *x = &memo->entries[mid];
                int c = x->target != tg ? (x->target < tg ? -1 : 1) : strcmp(x->registry, registry);
                if (c == 0)
                        return x;
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

/* Does the file name in dfd hold bytes of this hash? */
static int file_has_hash(int dfd, const char *name, size_t max, const char *sha) {
        _cleanup_free_ char *data = NULL;
        char have[65];
        size_t size;
        int r;

        r = read_file_at(dfd, name, false, max, &data, &size);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return 0;
        sha256_hex(data, size, have);
        return streq(have, sha);
}

int plan_memo_confirms(int rootfd, const PlanMemo *memo, const TrustSet *t, const Manifest *m, const PlanOptions *o,
                       char *const *registries, size_t n) {
        int r;

        assert(rootfd >= 0);
        assert(memo);
        assert(t);
        assert(m);
        assert(o);

        for (size_t i = 0; i < n; i++) {
                const TrustEntry *e = trust_set_find(t, registries[i]);

                for (size_t k = 0; k < N_TARGETS; k++) {
                        const Target *tg = &targets[k];
                        _cleanup_close_ int basefd = -1, dfd = -1;
                        const PlanMemoEntry *x;

                        if (!(o->target_mask & tg->bit))
                                continue;
                        if (!e) {
                                /* Not wanted: only if nothing of ours is there either. */
                                if (manifest_find(m, tg->name, registries[i]))
                                        return 0;
                                continue;
                        }
                        x = memo_lookup(memo, tg, e->registry);
                        if (!x || !memo_current(o, x, tg, e, m))
                                return 0;
                        if (open_dir_beneath(rootfd, tg->dir, 0, &basefd, NULL) < 0 ||
                            (dfd = open_child_dir(basefd, e->registry)) < 0)
                                return 0;
                        r = file_has_hash(dfd, CA_FILE, CA_FILE_MAX, e->fingerprint);
                        if (r <= 0)
                                return r;
                        if (x->has_hosts) {
                                r = file_has_hash(dfd, HOSTS_FILE, HOSTS_FILE_MAX,
                                                  manifest_find(m, tg->name, e->registry)->hosts_sha256);
                                if (r <= 0)
                                        return r;
                        } else if (tg->bit == TARGET_CONTAINERD && !hosts_absent_at(dfd, HOSTS_FILE))
                                return 0;
                }
        }
        return 1;
}
