/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "fs.h"
#include "hash.h"
#include "plan.h"

const Target targets[3] = {
        { "docker", "etc/docker/certs.d", TARGET_DOCKER },
        { "containers", "etc/containers/certs.d", TARGET_CONTAINERS },
        { "containerd", "etc/containerd/certs.d", TARGET_CONTAINERD },
};

/* A ca.crt larger than this is not one we wrote. */
#define CA_FILE_MAX (4u * 1024 * 1024)

const Target *target_by_name(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(targets); i++)
                if (streq(targets[i].name, name))
                        return &targets[i];
        return NULL;
}

int targets_parse(const char *list, unsigned *ret, const char **ret_bad) {
        _cleanup_free_ char *copy = strdup(list);
        static char bad[64];
        unsigned mask = 0;
        char *save = NULL;

        if (!copy)
                return -ENOMEM;
        for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
                const Target *tg = target_by_name(t);
                if (!tg) {
                        snprintf(bad, sizeof bad, "%s", t);
                        *ret_bad = bad;
                        return -EINVAL;
                }
                mask |= tg->bit;
        }
        if (mask == 0) {
                *ret_bad = "(empty)";
                return -EINVAL;
        }
        *ret = mask;
        return 0;
}

static const char *const action_names[_ACTION_MAX] = {
        [ACTION_CREATE] = "create",     [ACTION_UPDATE] = "update", [ACTION_UNCHANGED] = "unchanged",
        [ACTION_REMOVE] = "remove",     [ACTION_KEEP] = "keep",     [ACTION_CONFLICT] = "conflict",
};

const char *action_type_to_string(ActionType t) {
        return t >= 0 && t < _ACTION_MAX ? action_names[t] : "unknown";
}

Plan *plan_free(Plan *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_actions; i++) {
                free(p->actions[i].registry);
                free(p->actions[i].reason);
        }
        free(p->actions);
        free(p);
        return NULL;
}

static int plan_add(Plan *p, ActionType type, const Target *tg, const char *registry,
                    const TrustEntry *entry, const char *reason) {
        PlanAction *n = realloc(p->actions, (p->n_actions + 1) * sizeof *n);

        if (!n)
                return -ENOMEM;
        p->actions = n;
        n = &p->actions[p->n_actions];
        *n = (PlanAction){ .type = type, .target = tg, .entry = entry,
                           .registry = strdup(registry), .reason = reason ? strdup(reason) : NULL };
        if (!n->registry || (reason && !n->reason)) {
                free(n->registry);
                free(n->reason);
                return -ENOMEM;
        }
        p->n_actions++;
        return 0;
}

/* Decide the action for one wanted (target, registry). basefd is the
 * target's certs.d directory, or negative when it does not exist yet. */
static int plan_wanted(Plan *p, int basefd, const Target *tg, const TrustEntry *e, const Manifest *m) {
        _cleanup_close_ int dfd = -1;
        _cleanup_free_ char *old = NULL;
        struct stat st;
        size_t size;
        char sha[65];
        int r;

        if (basefd < 0 || fstatat(basefd, e->registry, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (basefd >= 0 && errno != ENOENT)
                        return plan_add(p, ACTION_CONFLICT, tg, e->registry, e, strerror(errno));
                /* Missing. If the manifest says it is ours, someone deleted it:
                 * recreating it is drift repair, and it stays ours. */
                return plan_add(p, ACTION_CREATE, tg, e->registry, e, NULL);
        }
        if (S_ISLNK(st.st_mode))
                return plan_add(p, ACTION_CONFLICT, tg, e->registry, e, "is a symlink; not following it");
        if (!S_ISDIR(st.st_mode))
                return plan_add(p, ACTION_CONFLICT, tg, e->registry, e, "exists and is not a directory");
        if (!manifest_find(m, tg->name, e->registry))
                return plan_add(p, ACTION_CONFLICT, tg, e->registry, e,
                                "directory was not created by nodetrustd; left untouched");

        dfd = openat(basefd, e->registry, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return plan_add(p, ACTION_CONFLICT, tg, e->registry, e, strerror(errno));
        r = read_file_at(dfd, CA_FILE, false, CA_FILE_MAX, &old, &size);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return plan_add(p, ACTION_UPDATE, tg, e->registry, e, NULL);
        sha256_hex(old, size, sha);
        return plan_add(p, streq(sha, e->fingerprint) ? ACTION_UNCHANGED : ACTION_UPDATE, tg, e->registry, e, NULL);
}

int plan_compute(int rootfd, const TrustSet *t, const Manifest *m, unsigned target_mask, Plan **ret) {
        _cleanup_(plan_freep) Plan *p = calloc(1, sizeof *p);
        int r;

        if (!p)
                return -ENOMEM;

        for (size_t ti = 0; ti < ELEMENTSOF(targets); ti++) {
                const Target *tg = &targets[ti];
                _cleanup_close_ int basefd = -1;
                const char *base_problem = NULL;

                if (!(target_mask & tg->bit))
                        continue;

                r = open_dir_beneath(rootfd, tg->dir, 0, &basefd, NULL);
                if (r == -ELOOP || r == -ENOTDIR)
                        base_problem = "a component of the target directory is a symlink or not a directory; refusing to write through it";
                else if (r < 0 && r != -ENOENT)
                        base_problem = strerror(-r);

                for (size_t i = 0; i < t->n_entries; i++) {
                        if (base_problem)
                                r = plan_add(p, ACTION_CONFLICT, tg, t->entries[i].registry, &t->entries[i], base_problem);
                        else
                                r = plan_wanted(p, basefd, tg, &t->entries[i], m);
                        if (r < 0)
                                return r;
                }
        }

        /* What we own and no longer want: remove it, unless its key is only
         * refused for now (a bad value): then the last good file stays. */
        for (size_t i = 0; i < m->n_entries; i++) {
                const ManifestEntry *me = &m->entries[i];
                const Target *tg = target_by_name(me->target);
                bool enabled = tg && (target_mask & tg->bit);

                if (!tg)
                        continue;
                if (enabled && trust_set_find(t, me->registry))
                        continue;
                if (enabled && trust_set_find_refused(t, me->registry))
                        r = plan_add(p, ACTION_KEEP, tg, me->registry, NULL, NULL);
                else
                        r = plan_add(p, ACTION_REMOVE, tg, me->registry, NULL, NULL);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(p);
        return 0;
}

size_t plan_count(const Plan *p, ActionType t) {
        size_t n = 0;
        for (size_t i = 0; i < p->n_actions; i++)
                n += p->actions[i].type == t;
        return n;
}

bool plan_changes(const Plan *p) {
        return plan_count(p, ACTION_CREATE) + plan_count(p, ACTION_UPDATE) + plan_count(p, ACTION_REMOVE) > 0;
}

void plan_print(FILE *f, const Plan *p, const TrustSet *t, const char *root) {
        const char *sep = root[strlen(root) - 1] == '/' ? "" : "/";

        for (size_t i = 0; i < p->n_actions; i++) {
                const PlanAction *a = &p->actions[i];
                fprintf(f, "%s %s %s %s%s%s/%s/%s", action_type_to_string(a->type), a->target->name,
                        a->registry, root, sep, a->target->dir, a->registry, CA_FILE);
                if (a->reason)
                        fprintf(f, ": %s", a->reason);
                fputc('\n', f);
        }
        for (size_t i = 0; t && i < t->n_refused; i++)
                fprintf(f, "refuse %s: %s\n", t->refused[i].key, t->refused[i].reason);
        for (size_t i = 0; t && t->ignored && t->ignored[i]; i++)
                fprintf(f, "ignore %s\n", t->ignored[i]);
}
