/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fs.h"
#include "hash.h"
#include "pullsecret.h"
#include "strv.h"

#define DIR_MODE 0755
#define FILE_MODE 0600
/* An admin's credentials file larger than this is not one we merge into. */
#define EXISTING_MAX (4u * 1024 * 1024)

static const char *const action_names[_PULL_SECRET_ACTION_MAX] = {
        [PULL_SECRET_CREATE] = "create",     [PULL_SECRET_UPDATE] = "update",
        [PULL_SECRET_UNCHANGED] = "unchanged", [PULL_SECRET_CONFLICT] = "conflict",
        [PULL_SECRET_KEEP] = "keep",
};

const char *pull_secret_action_to_string(PullSecretActionType t) {
        return t >= 0 && t < _PULL_SECRET_ACTION_MAX ? action_names[t] : "unknown";
}

/* ------------------------------------------------------------------------
 * Plan and apply. */

/* "/var/lib/kubelet/config.json" -> "/var/lib/kubelet/" and "config.json". */
static int target_split(const char *path, char **ret_dir, const char **ret_name) {
        const char *slash = strrchr(path, '/');
        const char *name = slash ? slash + 1 : path;

        if (!*name || streq(name, ".") || streq(name, ".."))
                return -EINVAL;
        *ret_dir = strndup(path, (size_t) (name - path));
        if (!*ret_dir)
                return -ENOMEM;
        *ret_name = name;
        return 0;
}

static int set_conflict(PullSecretTarget *t, const char *reason) {
        t->type = PULL_SECRET_CONFLICT;
        free(t->reason);
        t->reason = strdup(reason);
        return t->reason ? 0 : -ENOMEM;
}

static const char *open_problem(int r) {
        switch (r) {
        case -ELOOP:
        case -ENOTDIR:
                return "a component of the directory is a symlink or not a directory; refusing to write through it";
        case -EINVAL:
                return "the path is not a plain file name below --root";
        default:
                return strerror(-r);
        }
}

static int plan_target(int rootfd, const PullSecretPlan *p, const json_t *secret, PullSecretTarget *t) {
        _cleanup_free_ char *dir = NULL, *existing = NULL;
        _cleanup_close_ int dfd = -1;
        size_t existing_size = 0;
        bool exists = false, attrs_ok = false, same = false;
        char existing_sha[65] = "";
        const char *name;
        struct stat st;
        char *reason = NULL;
        int r;

        r = target_split(t->path, &dir, &name);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return set_conflict(t, open_problem(r));

        r = open_dir_beneath(rootfd, dir, 0, &dfd, NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0 && r != -ENOENT)
                return set_conflict(t, open_problem(r));

        if (dfd >= 0 && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                exists = true;
                if (S_ISLNK(st.st_mode))
                        return set_conflict(t, "is a symlink; not following it");
                if (!S_ISREG(st.st_mode))
                        return set_conflict(t, "exists and is not a regular file");
                attrs_ok = (st.st_mode & 07777) == FILE_MODE && (p->uid == (uid_t) -1 || st.st_uid == p->uid) &&
                           (p->gid == (gid_t) -1 || st.st_gid == p->gid);
                r = read_file_at(dfd, name, false, EXISTING_MAX, &existing, &existing_size);
                if (r == -EFBIG && p->policy == PULL_SECRET_REPLACE)
                        r = 0; /* different from anything we write: replace it */
                else if (r == -EFBIG)
                        return set_conflict(t, "the existing file is larger than 4 MiB; not merging into it");
                else if (r == -ENOMEM)
                        return r;
                else if (r < 0)
                        return set_conflict(t, strerror(-r));
        } else if (dfd >= 0 && errno != ENOENT)
                return set_conflict(t, strerror(errno));

        if (existing)
                sha256_hex(existing, existing_size, existing_sha);
        r = pull_secret_render(secret, p->policy, existing, existing_size, t->previous, &t->content, &t->size, &same,
                               &reason);
        if (existing)
                explicit_bzero(existing, existing_size);
        if (r == -EBADMSG) {
                r = set_conflict(t, reason);
                free(reason);
                return r;
        }
        if (r < 0)
                return r;

        r = pull_secret_registries(secret, &t->registries);
        if (r < 0)
                return r;
        if (!exists)
                t->type = PULL_SECRET_CREATE;
        else if (same && attrs_ok)
                t->type = PULL_SECRET_UNCHANGED;
        else
                t->type = PULL_SECRET_UPDATE;

        if (t->type == PULL_SECRET_UNCHANGED) {
                /* Nothing to write: record what is on disk, drop the copy. */
                memcpy(t->sha256, existing_sha, sizeof t->sha256);
                pull_secret_wipe_free(t->content, t->size);
                t->content = NULL;
                t->size = 0;
        } else
                sha256_hex(t->content, t->size, t->sha256);
        return 0;
}

int pull_secret_plan_compute(int rootfd, const char *state_dir, const Snapshot *snap, const PullSecretOptions *o,
                             PullSecretPlan **ret) {
        _cleanup_(pull_secret_plan_freep) PullSecretPlan *p = calloc(1, sizeof *p);
        json_auto_t *secret = NULL;
        size_t n;
        int r;

        assert(state_dir);
        assert(snap);
        assert(o);
        assert(ret);

        if (!p)
                return -ENOMEM;
        n = strv_length(o->paths);
        p->policy = o->policy;
        p->uid = o->uid;
        p->gid = o->gid;
        p->targets = calloc(n ? n : 1, sizeof *p->targets);
        if (!p->targets)
                return -ENOMEM;

        r = pull_secret_ledger_load(rootfd, state_dir, &p->ledger);
        if (r == -EBADMSG) {
                /* Without it we cannot tell our registries from node-local
                 * ones: own none, so merge removes nothing. */
                p->ledger_corrupt = true;
                r = pull_secret_ledger_new(&p->ledger);
        }
        if (r < 0)
                return r;

        if (!snap->have_pull_secret)
                p->status = PULL_SECRET_ABSENT;
        else if (snap->pull_secret_error) {
                p->status = PULL_SECRET_INVALID;
                p->reason = strdup(snap->pull_secret_error);
                if (!p->reason)
                        return -ENOMEM;
        } else {
                r = pull_secret_parse(snap->pull_secret, snap->pull_secret_size, &secret, &p->reason);
                if (r == -EBADMSG)
                        p->status = PULL_SECRET_INVALID;
                else if (r < 0)
                        return r;
                else {
                        _cleanup_free_ char *canon = json_dumps(secret, JSON_COMPACT | JSON_SORT_KEYS);
                        if (!canon)
                                return -ENOMEM;
                        /* Keyed: a plain sha256 of a secret is a way to test guesses of its passwords. */
                        r = pull_secret_hash_key_load(rootfd, state_dir, p->hash_key, &p->hash_key_origin);
                        if (r >= 0)
                                r = pull_secret_hash(p->hash_key, canon, strlen(canon), p->hash);
                        explicit_bzero(canon, strlen(canon));
                        if (r < 0)
                                return r;
                        p->status = PULL_SECRET_VALID;
                        r = pull_secret_registries(secret, &p->registries);
                        if (r < 0)
                                return r;
                }
        }

        for (size_t i = 0; i < n; i++) {
                PullSecretTarget *t = &p->targets[i];

                t->type = PULL_SECRET_KEEP;
                t->path = strdup(o->paths[i]);
                if (!t->path)
                        return -ENOMEM;
                p->n_targets++;
                r = pull_secret_ledger_registries(p->ledger, t->path, &t->previous);
                if (r < 0)
                        return r;
                if (p->status != PULL_SECRET_VALID)
                        continue;
                r = plan_target(rootfd, p, secret, t);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(p);
        return 0;
}

static int target_write(int rootfd, const PullSecretTarget *t, uid_t uid, gid_t gid) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_close_ int dfd = -1;
        const char *name;
        int r;

        r = target_split(t->path, &dir, &name);
        if (r < 0)
                return r;
        r = open_dir_beneath(rootfd, dir, DIR_MODE, &dfd, NULL);
        if (r < 0)
                return r;
        return write_file_atomic_at(dfd, name, t->content, t->size, FILE_MODE, uid, gid);
}

/* previous plus every registry of now not in it (strv), sorted: both are
 * copied into one list, sorted, and neighbours that are equal dropped,
 * O(n log n) where a strv_contains() per registry was O(n * m). */
static int strv_union(char *const *previous, char *const *now, char ***ret) {
        size_t np = strv_length(previous), nn = strv_length(now), n = 0, o = 0;
        _cleanup_strv_free_ char **l = NULL;

        l = calloc(np + nn + 1, sizeof *l);
        if (!l)
                return -ENOMEM;
        for (char *const *p = previous; p && *p; p++)
                if (!(l[n++] = strdup(*p)))
                        return -ENOMEM;
        for (char *const *p = now; p && *p; p++)
                if (!(l[n++] = strdup(*p)))
                        return -ENOMEM;
        pull_secret_registries_sort(l);
        for (size_t i = 0; i < n; i++) {
                if (o > 0 && streq(l[i], l[o - 1])) {
                        free(l[i]);
                        l[i] = NULL;
                        continue;
                }
                l[o++] = l[i];
        }
        l[o] = NULL;
        *ret = TAKE_PTR(l);
        return 0;
}

static int result_new(const PullSecretPlan *p, PullSecretResult **ret) {
        _cleanup_(pull_secret_result_freep) PullSecretResult *res = calloc(1, sizeof *res);

        if (!res)
                return -ENOMEM;
        res->targets = calloc(p->n_targets ? p->n_targets : 1, sizeof *res->targets);
        if (!res->targets)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_targets; i++) {
                res->targets[i].path = strdup(p->targets[i].path);
                if (!res->targets[i].path)
                        return -ENOMEM;
                res->targets[i].action = p->targets[i].type;
                res->n_targets++;
        }
        *ret = TAKE_PTR(res);
        return 0;
}

int pull_secret_apply(int rootfd, const char *state_dir, const PullSecretPlan *p, PullSecretResult **ret) {
        _cleanup_(pull_secret_result_freep) PullSecretResult *res = NULL;
        json_auto_t *ledger = NULL;
        bool changed = false;
        int failed = 0, r;

        assert(state_dir);
        assert(p);
        assert(ret);

        r = result_new(p, &res);
        if (r < 0)
                return r;
        /* What this apply records goes to a copy: the plan stays as planned. */
        ledger = json_deep_copy(p->ledger);
        if (!ledger)
                return -ENOMEM;

        /* Saved before anything can publish p->hash, so that the hash of
         * an unchanged secret stays the same across restarts. */
        if (p->status == PULL_SECRET_VALID &&
            (p->hash_key_origin == PULL_SECRET_KEY_NEW || p->hash_key_origin == PULL_SECRET_KEY_REPLACED)) {
                r = pull_secret_hash_key_save(rootfd, state_dir, p->hash_key);
                if (r < 0)
                        return r;
        }

        /* An invalid or absent secret plans KEEP everywhere: nothing below writes. */
        for (size_t i = 0; i < p->n_targets; i++) {
                const PullSecretTarget *t = &p->targets[i];
                PullSecretTargetResult *tr = &res->targets[i];

                if (t->type == PULL_SECRET_CREATE || t->type == PULL_SECRET_UPDATE) {
                        _cleanup_strv_free_ char **both = NULL;
                        bool grows = false;

                        /* Record the new registries as ours before writing
                         * them: if we die in between, the next run must
                         * still know they are ours, or a registry dropped
                         * from the secret later would stay as node-local. */
                        r = strv_union(t->previous, t->registries, &both);
                        if (r < 0)
                                return r;
                        if (strv_length(both) != strv_length(t->previous)) {
                                r = pull_secret_ledger_set(ledger, t->path, both,
                                                           pull_secret_ledger_sha256(ledger, t->path), &grows);
                                if (r >= 0 && grows)
                                        r = pull_secret_ledger_save(rootfd, state_dir, ledger);
                                if (r < 0)
                                        return r;
                        }

                        tr->error = target_write(rootfd, t, p->uid, p->gid);
                        if (tr->error < 0) {
                                failed++;
                                continue;
                        }
                } else if (t->type != PULL_SECRET_UNCHANGED)
                        continue;

                r = pull_secret_ledger_set(ledger, t->path, t->registries, t->sha256, &changed);
                if (r < 0)
                        return r;
        }

        if (changed) {
                r = pull_secret_ledger_save(rootfd, state_dir, ledger);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(res);
        return failed;
}

void pull_secret_plan_print(FILE *f, const PullSecretPlan *p, const char *root) {
        assert(f);
        assert(p);
        assert(root);

        if (p->status == PULL_SECRET_ABSENT)
                fprintf(f, "absent pull-secret\n");
        else if (p->status == PULL_SECRET_INVALID)
                fprintf(f, "refuse pull-secret: %s\n", p->reason);

        /* Like the trust plan: ROOT + the path, one '/' between (root "/" included). */
        size_t la = strlen(root);
        while (la > 0 && root[la - 1] == '/')
                la--;
        for (size_t i = 0; i < p->n_targets; i++) {
                const PullSecretTarget *t = &p->targets[i];

                fprintf(f, "%s pull-secret %.*s/%s", pull_secret_action_to_string(t->type), (int) la, root,
                        t->path + strspn(t->path, "/"));
                if (t->reason)
                        fprintf(f, ": %s", t->reason);
                fputc('\n', f);
        }
}

PullSecretPlan *pull_secret_plan_free(PullSecretPlan *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_targets; i++) {
                PullSecretTarget *t = &p->targets[i];
                free(t->path);
                pull_secret_wipe_free(t->content, t->size);
                strv_free(t->registries);
                strv_free(t->previous);
                free(t->reason);
        }
        free(p->targets);
        free(p->reason);
        strv_free(p->registries);
        json_decref(p->ledger);
        explicit_bzero(p->hash_key, sizeof p->hash_key);
        free(p);
        return NULL;
}

PullSecretResult *pull_secret_result_free(PullSecretResult *res) {
        if (!res)
                return NULL;
        for (size_t i = 0; i < res->n_targets; i++)
                free(res->targets[i].path);
        free(res->targets);
        free(res);
        return NULL;
}
