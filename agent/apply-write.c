/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply-write.h"
#include "cleanup.h"
#include "containerd-hosts.h"

#define DIR_MODE 0755
#define FILE_MODE 0644

static bool is_hosts(const PlanAction *a) {
        return streq(a->file, HOSTS_FILE);
}

static bool writes(const PlanAction *a) {
        return a->type == ACTION_CREATE || a->type == ACTION_UPDATE;
}

int open_registry_dir(int rootfd, const PlanAction *a, int *ret_basefd, int *ret_dfd) {
        _cleanup_close_ int basefd = -1;
        int r, dfd;

        /* A name that is not one plain component (from a tampered
         * manifest) names nothing of ours: it is never walked, so no
         * removal leaves the target directory. */
        r = open_dir_beneath(rootfd, a->target->dir, 0, &basefd, NULL);
        if (r == -ENOENT)
                return 1;
        if (r < 0)
                return r;
        dfd = open_child_dir(basefd, a->registry);
        if (dfd < 0)
                return dfd == -ENOENT || dfd == -ELOOP || dfd == -ENOTDIR || dfd == -EINVAL ? 1 : dfd;
        *ret_basefd = TAKE_FD(basefd);
        *ret_dfd = dfd;
        return 0;
}

int apply_batch_init(ApplyBatch *b, const Plan *p) {
        size_t n = 0;

        assert(b);
        assert(p);

        *b = (ApplyBatch) { .basefd = { -1, -1, -1 } };
        for (size_t i = 0; i < p->n_actions; i++)
                n += writes(&p->actions[i]);
        if (n == 0)
                return 0;
        b->per_file = n < APPLY_BATCH_MIN;
        b->staged = calloc(p->n_actions / 8 + 1, 1);
        if (!b->staged)
                return -ENOMEM;
        b->plan = p;
        b->rnd = atomic_temp_random();
        return 1;
}

void apply_batch_done(ApplyBatch *b) {
        assert(b);

        b->staged = mfree(b->staged);
        sync_set_done(&b->fs);
        for (size_t t = 0; t < N_TARGETS; t++)
                b->basefd[t] = safe_close(b->basefd[t]);
}

static size_t batch_index(const ApplyBatch *b, const PlanAction *a) {
        assert(a >= b->plan->actions && a < b->plan->actions + b->plan->n_actions);
        return (size_t) (a - b->plan->actions);
}

static bool batch_staged(const ApplyBatch *b, size_t i) {
        return b->staged[i / 8] & (1u << (i % 8));
}

static void batch_mark(ApplyBatch *b, size_t i, bool on) {
        if (on)
                b->staged[i / 8] |= (uint8_t) (1u << (i % 8));
        else
                b->staged[i / 8] &= (uint8_t) ~(1u << (i % 8));
}

/* a's file as a temp in dfd, not fsynced: apply_batch_commit() makes it durable. */
static int batch_stage(ApplyBatch *b, PlanAction *a, int dfd, const void *data, size_t size) {
        char tmp[ATOMIC_TEMP_SIZE];
        int r;

        r = atomic_temp_name(a->file, b->rnd, tmp);
        if (r < 0)
                return r;
        r = atomic_temp_write_at(dfd, tmp, data, size, FILE_MODE, (uid_t) -1, (gid_t) -1, b->per_file);
        if (r < 0)
                return r;
        r = b->per_file ? 0 : sync_set_add(&b->fs, dfd);
        if (r < 0) {
                (void) unlinkat(dfd, tmp, 0);
                return r;
        }
        batch_mark(b, batch_index(b, a), true);
        return 0;
}

/* What a written ca.crt means for the manifest. */
static int ca_written(PlanAction *a, Manifest *m) {
        ManifestEntry *me = manifest_find(m, a->target->name, a->registry);
        return manifest_put(m, a->target->name, a->registry, a->entry->fingerprint, me ? me->dir_created : true);
}

/* What a hosts.toml write that ended in r means: a conflict when one
 * appeared since the plan looked (that one is theirs, the next sync judges
 * it), recorded in the manifest entry of its ca.crt when written. */
static int hosts_written(PlanAction *a, Manifest *m, int r) {
        ManifestEntry *me;

        if (r == -EEXIST) {
                a->type = ACTION_CONFLICT;
                free(a->reason);
                a->reason = strdup(HOSTS_FILE " appeared before nodetrustd wrote one; left untouched");
                return 0;
        }
        if (r < 0)
                return r;
        me = manifest_find(m, a->target->name, a->registry);
        if (me)
                memcpy(me->hosts_sha256, a->content_sha, sizeof me->hosts_sha256);
        return 0;
}

int apply_write(int rootfd, PlanAction *a, Manifest *m, ApplyBatch *b) {
        _cleanup_close_ int basefd = -1, dfd = -1;
        const TrustEntry *e = a->entry;
        int r;

        assert(a);
        assert(m);
        assert(b);

        r = open_dir_beneath(rootfd, a->target->dir, DIR_MODE, &basefd, NULL);
        if (r < 0 && a->type == ACTION_CREATE)
                goto not_created;
        if (r < 0)
                return r;

        /* Names come checked from the trust set; one that is not a single
         * plain component never reaches mkdirat or openat all the same. */
        if (!filename_is_plain(a->registry)) {
                r = -EINVAL;
                goto not_created;
        }
        if (a->type == ACTION_CREATE && mkdirat(basefd, a->registry, DIR_MODE) < 0) {
                r = -errno;
                if (r != -EEXIST)
                        goto not_created;
                /* Someone else made it since the plan was computed: theirs. */
                manifest_remove(m, a->target->name, a->registry);
                a->type = ACTION_CONFLICT;
                a->reason = strdup("directory was not created by nodetrustd; left untouched");
                return 0;
        }

        dfd = open_child_dir(basefd, a->registry);
        if (dfd < 0)
                return dfd;
        /* mkdirat honours the umask; the mode we promise does not. */
        if (a->type == ACTION_CREATE && fchmod(dfd, DIR_MODE) < 0)
                return -errno;

        return batch_stage(b, a, dfd, e->bundle->pem, e->bundle->pem_size);

not_created:
        /* No directory, so nothing of ours is there: drop the intent (or
         * the entry of one someone deleted). Kept, it would make a
         * directory an admin creates there later look like ours. */
        manifest_remove(m, a->target->name, a->registry);
        return r;
}

int apply_write_hosts(int rootfd, PlanAction *a, Manifest *m, ApplyBatch *b) {
        _cleanup_close_ int basefd = -1, dfd = -1;
        int r;

        assert(a);
        assert(m);
        assert(b);

        r = open_registry_dir(rootfd, a, &basefd, &dfd);
        if (r != 0)
                return r > 0 ? -ENOENT : r;
        return batch_stage(b, a, dfd, a->content, a->content_size);
}

/* The registry directory of a, through the batch's own descriptor of
 * its certs.d directory (opened once, not once per file). */
static int batch_open_dir(ApplyBatch *b, int rootfd, const PlanAction *a) {
        int *basefd = &b->basefd[a->target - targets];
        int r;

        if (*basefd < 0) {
                r = open_dir_beneath(rootfd, a->target->dir, 0, basefd, NULL);
                if (r < 0)
                        return r;
        }
        return open_child_dir(*basefd, a->registry);
}

/* Fail action i of the batch with error r: its temp file goes (when its
 * directory can still be opened; else the sweep at start takes it). */
static void batch_fail(ApplyBatch *b, int rootfd, Plan *p, size_t i, int r, bool temp_left) {
        PlanAction *a = &p->actions[i];

        if (temp_left) {
                _cleanup_close_ int dfd = batch_open_dir(b, rootfd, a);
                char tmp[ATOMIC_TEMP_SIZE];
                if (dfd >= 0 && atomic_temp_name(a->file, b->rnd, tmp) >= 0)
                        (void) unlinkat(dfd, tmp, 0);
        }
        a->error = r;
        batch_mark(b, i, false);
}

/* A syncfs failed: the file system had an error, maybe not ours. Find out
 * which of ours by fsyncing each (the temp files, or the directories of
 * the files renamed in this pass); only those fail. The number failed. */
static int batch_fsync_each(ApplyBatch *b, int rootfd, Plan *p, bool temps, bool hosts) {
        int failed = 0;

        for (size_t i = 0; i < p->n_actions; i++) {
                PlanAction *a = &p->actions[i];
                _cleanup_close_ int dfd = -1, fd = -1;
                char tmp[ATOMIC_TEMP_SIZE];
                int r;

                if (!batch_staged(b, i) || (!temps && is_hosts(a) != hosts))
                        continue;
                dfd = batch_open_dir(b, rootfd, a);
                r = dfd;
                if (r >= 0 && temps) {
                        r = atomic_temp_name(a->file, b->rnd, tmp);
                        if (r >= 0 && (fd = openat(dfd, tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
                                r = -errno;
                }
                if (r >= 0 && fsync(temps ? fd : dfd) < 0)
                        r = -errno;
                if (r < 0) {
                        batch_fail(b, rootfd, p, i, r, temps);
                        failed++;
                }
        }
        return failed;
}

/* Rename action i's temp file into place, and record it. */
static int batch_rename(ApplyBatch *b, int rootfd, Plan *p, size_t i, Manifest *m) {
        PlanAction *a = &p->actions[i];
        _cleanup_close_ int dfd = -1;
        char tmp[ATOMIC_TEMP_SIZE];
        int r;

        dfd = batch_open_dir(b, rootfd, a);
        if (dfd < 0)
                return dfd;
        r = atomic_temp_name(a->file, b->rnd, tmp);
        if (r < 0)
                return r;
        if (!is_hosts(a)) {
                r = atomic_temp_commit_at(dfd, tmp, CA_FILE, false);
                return r < 0 ? r : ca_written(a, m);
        }
        r = hosts_written(a, m, atomic_temp_commit_at(dfd, tmp, HOSTS_FILE, a->noreplace));
        if (a->type == ACTION_CONFLICT)
                batch_mark(b, i, false);
        return r;
}

int apply_batch_commit(ApplyBatch *b, int rootfd, Plan *p, Manifest *m) {
        const PlanAction *ca = NULL;
        int failed = 0, r;

        assert(b);
        assert(p == b->plan);
        assert(m);

        /* Every temp file's bytes durable before any rename: a rename that
         * survives a crash names complete contents. */
        if (!b->per_file && sync_set_sync(&b->fs) < 0)
                failed += batch_fsync_each(b, rootfd, p, true, false);

        /* Every ca.crt in place and durable before a hosts.toml that names
         * it: a crash never leaves a hosts.toml whose ca.crt is not there. */
        for (int pass = 0; pass < 2; pass++) {
                bool any = false;

                for (size_t i = 0; i < p->n_actions; i++) {
                        PlanAction *a = &p->actions[i];

                        if (!is_hosts(a))
                                ca = a;
                        if (!batch_staged(b, i) || is_hosts(a) != (pass == 1))
                                continue;
                        /* Not beside a ca.crt that failed after all. */
                        if (pass == 1 && ca && ca->target == a->target && streq(ca->registry, a->registry) &&
                            ca->error < 0) {
                                batch_fail(b, rootfd, p, i, ca->error, true);
                                continue;
                        }
                        r = batch_rename(b, rootfd, p, i, m);
                        if (r < 0) {
                                batch_fail(b, rootfd, p, i, r, false);
                                failed++;
                        } else
                                any = true;
                }
                /* The renames durable, and the manifest (saved after this)
                 * never records a file that a crash could take back. */
                if (any && (b->per_file || sync_set_sync(&b->fs) < 0))
                        failed += batch_fsync_each(b, rootfd, p, false, pass == 1);
        }
        return failed;
}
