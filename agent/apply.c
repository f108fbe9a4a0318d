/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply-write.h"
#include "apply.h"
#include "cleanup.h"
#include "containerd-hosts.h"
#include "fs.h"
#include "hash.h"
#include "log.h"
#include "pullsecret-hash.h"
#include "pullsecret-ledger.h"

/* The files nodetrustd writes in a registry directory. */
static const char *const owned_files[] = { CA_FILE, HOSTS_FILE, NULL };

/* Record every directory we are about to create, on disk, before creating
 * any: if we die between mkdir and the final save, the next run must still
 * know they are ours, or they would be conflicts forever. One save for the
 * whole batch keeps a first sync of N registries O(N), not O(N^2). */
static int record_intents(int rootfd, const char *state_dir, const Plan *p, Manifest *m) {
        bool any = false;
        int r;

        for (size_t i = 0; i < p->n_actions; i++) {
                const PlanAction *a = &p->actions[i];
                if (a->type != ACTION_CREATE || manifest_find(m, a->target->name, a->registry))
                        continue;
                r = manifest_put(m, a->target->name, a->registry, "", true);
                if (r < 0)
                        goto undo;
                any = true;
        }
        r = any ? manifest_save(rootfd, state_dir, m) : 0;
        if (r >= 0)
                return r;
undo:
        /* Nothing will be created: claim nothing, in memory either. */
        for (size_t i = 0; i < p->n_actions; i++) {
                const PlanAction *a = &p->actions[i];
                ManifestEntry *me;
                if (a->type == ACTION_CREATE && (me = manifest_find(m, a->target->name, a->registry)) &&
                    me->dir_created && !me->sha256[0])
                        manifest_remove(m, a->target->name, a->registry);
        }
        return r;
}

/* Remove our hosts.toml, and only ours: one that lost its first line since
 * the plan is an administrator's now and stays (a conflict). Either way we
 * no longer own one. */
static int apply_remove_hosts(int rootfd, PlanAction *a, Manifest *m) {
        _cleanup_close_ int basefd = -1, dfd = -1;
        _cleanup_free_ char *text = NULL;
        ManifestEntry *me = manifest_find(m, a->target->name, a->registry);
        size_t size;
        int r, error;

        r = open_registry_dir(rootfd, a, &basefd, &dfd);
        if (r > 0)
                goto forget;
        if (r < 0)
                return r;
        r = containerd_hosts_read(rootfd, dfd, a->registry, &text, &size, &error);
        if (r < 0)
                return r;
        if (r == HOSTS_OURS) {
                r = unlink_file_at(dfd, HOSTS_FILE);
                if (r < 0)
                        return r;
        } else if (r != HOSTS_ABSENT) {
                a->type = ACTION_CONFLICT;
                free(a->reason);
                a->reason = strdup(HOSTS_FILE " is no longer nodetrustd's; left untouched");
        } else
                a->type = ACTION_UNCHANGED; /* gone already: nothing was removed */
forget:
        if (me)
                me->hosts_sha256[0] = 0;
        return 0;
}

static int apply_remove(int rootfd, PlanAction *a, Manifest *m) {
        _cleanup_close_ int basefd = -1, dfd = -1;
        ManifestEntry *me = manifest_find(m, a->target->name, a->registry);
        bool dir_created = me && me->dir_created;
        int r;

        /* Gone, or replaced by a symlink or a file: not ours any more.
         * Leave it and forget it, rather than fail every sync over it. */
        r = open_registry_dir(rootfd, a, &basefd, &dfd);
        if (r > 0)
                goto forget;
        if (r < 0)
                return r;
        /* An administrator's hosts.toml that names our ca.crt (or cannot
         * be read) would break the moment it went: leave it to them. The
         * plan asked; this asks again, just before. */
        if (a->target->bit == TARGET_CONTAINERD) {
                bool names_ours;
                r = containerd_hosts_prune_kind(rootfd, dfd, a->registry, &names_ours);
                if (r < 0)
                        return r;
                /* Ours again since the plan: it goes first, next sync. */
                if (r == HOSTS_OURS)
                        return -EBUSY;
                if (r == HOSTS_UNREADABLE || (r == HOSTS_FOREIGN && names_ours)) {
                        a->type = ACTION_DISOWN;
                        free(a->reason);
                        a->reason = strdup("an administrator's " HOSTS_FILE " relies on it; left in place, no longer nodetrustd's");
                        goto forget;
                }
        }
        r = unlink_file_at(dfd, CA_FILE);
        if (r < 0)
                return r;
        /* A write of ours that was killed half-way must not keep the
         * directory: it would be a conflict the next time it is wanted. */
        (void) sweep_atomic_temp_files_at(dfd, (char **) owned_files);

        /* Remove the directory only if we made it and nobody put anything
         * else in it since; otherwise it stays, with their files. */
        if (dir_created && dir_is_empty_at(basefd, a->registry) > 0) {
                if (unlinkat(basefd, a->registry, AT_REMOVEDIR) < 0 && errno != ENOENT)
                        return -errno;
                if (fsync(basefd) < 0)
                        return -errno;
        }
forget:
        manifest_remove(m, a->target->name, a->registry);
        return 0;
}

/* A file found current is recorded with the hash of what is there: if we
 * died between its rename and the manifest's save, the entry still has
 * the hash from before (or none, from the intent). Whether any changed. */
static bool record_unchanged(const Plan *p, Manifest *m) {
        bool changed = false;

        for (size_t i = 0; i < p->n_actions; i++) {
                const PlanAction *a = &p->actions[i];
                ManifestEntry *me;
                char sha[65];

                /* Taken over: the manifest's hash is what made it so. */
                if (a->type != ACTION_UNCHANGED || a->reused ||
                    !(me = manifest_find(m, a->target->name, a->registry)))
                        continue;
                if (streq(a->file, HOSTS_FILE)) {
                        if (!a->content)
                                continue;
                        sha256_hex(a->content, a->content_size, sha);
                } else if (a->entry)
                        memcpy(sha, a->entry->fingerprint, sizeof sha);
                else
                        continue;
                char *have = streq(a->file, HOSTS_FILE) ? me->hosts_sha256 : me->sha256;
                if (!streq(have, sha)) {
                        memcpy(have, sha, sizeof sha);
                        changed = true;
                }
        }
        return changed;
}

/* Two actions on files of the same registry directory (a hosts.toml is
 * planned next to its ca.crt, and only in containerd). */
static bool same_dir(const PlanAction *x, const PlanAction *y) {
        return x->target == y->target && streq(x->registry, y->registry);
}

int apply_plan(int rootfd, const char *state_dir, Plan *p, Manifest *m) {
        _cleanup_(apply_batch_done) ApplyBatch batch = { .basefd = { -1, -1, -1 } };
        const PlanAction *ca = NULL;
        ApplyBatch *b;
        int failed = 0, r;

        assert(rootfd >= 0);
        assert(state_dir);
        assert(p);
        assert(m);

        /* Write only on change, the manifest too; but it must say what is
         * on disk, even when nothing else changes. */
        if (!plan_changes(p))
                return record_unchanged(p, m) ? manifest_save_changes(rootfd, state_dir, m) : 0;
        (void) record_unchanged(p, m);

        r = record_intents(rootfd, state_dir, p, m);
        if (r < 0)
                return r;
        /* Many files: each is only written here, and made durable with the
         * rest after the loop (apply-write.h, docs/durability.md). */
        r = apply_batch_init(&batch, p);
        if (r < 0)
                return r;
        b = r > 0 ? &batch : NULL;

        for (size_t i = 0; i < p->n_actions; i++) {
                PlanAction *a = &p->actions[i];
                bool hosts = streq(a->file, HOSTS_FILE);

                if (!hosts)
                        ca = a;
                /* ca.crt goes only after its hosts.toml went: never leave a
                 * hosts.toml naming a file that is gone. */
                if (!hosts && a->type == ACTION_REMOVE && i > 0 && same_dir(&p->actions[i - 1], a) &&
                    streq(p->actions[i - 1].file, HOSTS_FILE) &&
                    p->actions[i - 1].type == ACTION_REMOVE && p->actions[i - 1].error < 0) {
                        a->error = p->actions[i - 1].error;
                        continue;
                }
                /* A hosts.toml follows its ca.crt: not into a directory that
                 * turned out not to be ours, nor naming a file not written. */
                if (hosts && (a->type == ACTION_CREATE || a->type == ACTION_UPDATE) && ca && same_dir(ca, a) &&
                    (ca->error < 0 || ca->type == ACTION_CONFLICT)) {
                        a->error = ca->error;
                        if (ca->type == ACTION_CONFLICT)
                                a->type = ACTION_CONFLICT;
                        continue;
                }

                switch (a->type) {
                case ACTION_CREATE:
                case ACTION_UPDATE:
                        r = hosts ? apply_write_hosts(rootfd, a, m, b) : apply_write(rootfd, a, m, b);
                        break;
                case ACTION_REMOVE:
                        r = hosts ? apply_remove_hosts(rootfd, a, m) : apply_remove(rootfd, a, m);
                        break;
                case ACTION_DISOWN:
                        /* Left in place, and no longer in the manifest. */
                        manifest_remove(m, a->target->name, a->registry);
                        r = 0;
                        break;
                default:
                        r = 0;
                }
                a->error = r;
                if (r < 0)
                        failed++;
        }

        if (b)
                failed += apply_batch_commit(b, rootfd, p, m);

        /* Last, once every file it records is durable; when only content
         * hashes moved, later (manifest_save_changes()). */
        r = manifest_save_changes(rootfd, state_dir, m);
        if (r < 0)
                return r;
        return failed;
}

/* Sweep dir (in basefd, or basefd itself for NULL) of the temp files of
 * names; the number removed. shown_dir names basefd in the log line. */
static int sweep_dir(int basefd, const char *shown_dir, const char *dir, char *const *names) {
        _cleanup_close_ int dfd = -1;
        int r;

        if (dir) {
                dfd = open_child_dir(basefd, dir);
                if (dfd < 0)
                        return dfd;
        }
        r = sweep_atomic_temp_files_at(dir ? dfd : basefd, names);
        if (r > 0)
                log_info("Removed %d temporary file%s an interrupted write left in '%s%s%s%s'", r, r == 1 ? "" : "s",
                         shown_dir[0] == '/' ? "" : "/", shown_dir, dir ? "/" : "", dir ?: "");
        return r;
}

/* The same for a directory below rootfd. */
static int sweep_path(int rootfd, const char *path, char *const *names) {
        _cleanup_close_ int fd = -1;
        int r;

        r = open_dir_beneath(rootfd, path, 0, &fd, NULL);
        return r < 0 ? r : sweep_dir(fd, path, NULL, names);
}

int apply_sweep_temp_files(int rootfd, const char *state_dir, const Manifest *m, char *const *pull_secret_paths) {
        static const char *const state_files[] = { MANIFEST_FILE, PULL_SECRET_STATE_FILE, PULL_SECRET_KEY_FILE,
                                                   NULL };
        int n = 0, r;

        assert(rootfd >= 0);
        assert(state_dir);
        assert(m);

        r = sweep_path(rootfd, state_dir, (char **) state_files);
        if (r > 0)
                n += r;
        /* Each certs.d directory is opened once, not once per entry. */
        int basefd[N_TARGETS] = { -1, -1, -1 };
        for (size_t t = 0; t < N_TARGETS; t++)
                (void) open_dir_beneath(rootfd, targets[t].dir, 0, &basefd[t], NULL);
        for (size_t i = 0; i < m->n_entries; i++) {
                const Target *tg = target_by_name(m->entries[i].target);
                if (tg && basefd[tg - targets] >= 0 &&
                    (r = sweep_dir(basefd[tg - targets], tg->dir, m->entries[i].registry, (char **) owned_files)) > 0)
                        n += r;
        }
        for (size_t t = 0; t < N_TARGETS; t++)
                safe_close(basefd[t]);
        /* A killed write of the credentials leaves a copy of them: only
         * that file's own temp names, in its directory. */
        for (char *const *p = pull_secret_paths; p && *p; p++) {
                _cleanup_free_ char *dir = NULL;
                const char *slash = strrchr(*p, '/');
                char *names[2] = { (char *) (slash ? slash + 1 : *p), NULL };

                if (!filename_is_plain(names[0]))
                        continue;
                dir = strndup(*p, slash ? (size_t) (slash - *p) : 0);
                if (!dir)
                        return -ENOMEM;
                if ((r = sweep_path(rootfd, *dir ? dir : ".", names)) > 0)
                        n += r;
        }
        return n;
}
