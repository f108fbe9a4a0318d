/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cleanup.h"
#include "containerd-hosts.h"
#include "fs.h"
#include "hash.h"
#include "plan-internal.h"
#include "utf8.h"

/* What containerd does with a loopback registry when we own no hosts.toml. */
#define LOOPBACK_WITHOUT_HOSTS \
        "containerd talks plain HTTP to a loopback registry without a " HOSTS_FILE "; run with --containerd-hosts-toml always"

static const char *const action_names[_ACTION_MAX] = {
        [ACTION_CREATE] = "create",     [ACTION_UPDATE] = "update", [ACTION_UNCHANGED] = "unchanged",
        [ACTION_REMOVE] = "remove",     [ACTION_KEEP] = "keep",     [ACTION_CONFLICT] = "conflict",
        [ACTION_DISOWN] = "disown",
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
                free(p->actions[i].shadowed);
                free(p->actions[i].content);
        }
        free(p->actions);
        free(p);
        return NULL;
}

static int plan_add_file(Plan *p, ActionType type, const Target *tg, const char *file, const char *registry,
                         const TrustEntry *entry, const char *reason) {
        PlanAction *n;

        if (greedy_realloc((void **) &p->actions, &p->n_allocated, p->n_actions + 1, 16, sizeof *p->actions) < 0)
                return -ENOMEM;
        n = &p->actions[p->n_actions];
        *n = (PlanAction){ .type = type, .target = tg, .file = file, .entry = entry,
                           .registry = strdup(registry), .reason = reason ? strdup(reason) : NULL };
        if (!n->registry || (reason && !n->reason)) {
                free(n->registry);
                free(n->reason);
                return -ENOMEM;
        }
        p->n_actions++;
        return 0;
}

static int plan_add(Plan *p, ActionType type, const Target *tg, const char *registry, const TrustEntry *entry,
                    const char *reason) {
        return plan_add_file(p, type, tg, CA_FILE, registry, entry, reason);
}

/* The hosts.toml half of a containerd registry directory we own, after its
 * ca.crt action (index ca). dfd is the directory, or negative when it is
 * still to be created. Ours (it starts with HOSTS_MARKER) is kept current,
 * or removed when hosts.toml is off; anyone else's is left alone and only
 * checked: does containerd still use our ca.crt? */
static int plan_hosts(Plan *p, int rootfd, size_t ca, int dfd, const TrustEntry *e, const ManifestEntry *me,
                      const PlanOptions *o) {
        _cleanup_free_ char *old = NULL, *want = NULL, *shadowed = NULL;
        const Target *tg = p->actions[ca].target;
        size_t size = 0, want_size = 0;
        int kind = HOSTS_ABSENT, error = 0, r;
        bool have_hst = false;
        struct stat hst;

        if (dfd >= 0) {
                /* Looked at before it is read: a change after the read
                 * then shows in its times. */
                have_hst = fstatat(dfd, HOSTS_FILE, &hst, AT_SYMLINK_NOFOLLOW) >= 0;
                kind = containerd_hosts_read(rootfd, dfd, e->registry, &old, &size, &error);
                if (kind < 0)
                        return kind;
        }
        if (kind == HOSTS_FOREIGN) {
                r = containerd_hosts_check(old, size, e->registry, CONTAINERD_CERTS_DIR, &shadowed);
                if (r < 0)
                        return r;
                p->actions[ca].shadowed = TAKE_PTR(shadowed);
                return plan_add_file(p, ACTION_CONFLICT, tg, HOSTS_FILE, e->registry, e,
                                     HOSTS_FILE " was not written by nodetrustd; left untouched");
        }
        if (kind == HOSTS_UNREADABLE) {
                /* A directory, a FIFO, too big, a link to nowhere: not ours,
                 * and containerd's reading of it is not ours to guess. */
                if (asprintf(&shadowed, HOSTS_FILE " cannot be checked: %s", strerror(error)) < 0)
                        return -ENOMEM;
                p->actions[ca].shadowed = TAKE_PTR(shadowed);
                return plan_add_file(p, ACTION_CONFLICT, tg, HOSTS_FILE, e->registry, e, strerror(error));
        }

        if (!o->containerd_hosts_toml) {
                if (registry_is_loopback(e->registry) && !(p->actions[ca].shadowed = strdup(LOOPBACK_WITHOUT_HOSTS)))
                        return -ENOMEM;
                if (kind == HOSTS_OURS) /* from when hosts.toml was on */
                        return plan_add_file(p, ACTION_REMOVE, tg, HOSTS_FILE, e->registry, e, NULL);
                return 0;
        }

        r = containerd_hosts_render(e->registry, &want, &want_size);
        if (r < 0)
                return r;
        /* Compared as bytes: a hash is only needed for what gets written. */
        if (kind == HOSTS_OURS)
                r = plan_add_file(p, size == want_size && memcmp(old, want, size) == 0 ? ACTION_UNCHANGED : ACTION_UPDATE,
                                  tg, HOSTS_FILE, e->registry, e, NULL);
        else
                /* Missing: new, or someone deleted ours (drift). */
                r = plan_add_file(p, dfd >= 0 && me && me->hosts_sha256[0] ? ACTION_UPDATE : ACTION_CREATE, tg,
                                  HOSTS_FILE, e->registry, e, NULL);
        if (r < 0)
                return r;
        PlanAction *h = &p->actions[p->n_actions - 1];
        /* There was none: a file that appears before apply is not ours. */
        h->noreplace = kind == HOSTS_ABSENT;
        if (h->type != ACTION_UNCHANGED)
                sha256_hex(want, want_size, h->content_sha);
        else if (have_hst)
                h->id = file_id_of(p, &hst);
        h->content_size = want_size;
        h->content = TAKE_PTR(want);
        return 0;
}

/* Decide the action for one wanted (target, registry). basefd is the
 * target's certs.d directory, or negative when it does not exist yet. */
static int plan_wanted(Plan *p, int rootfd, int basefd, const Target *tg, const TrustEntry *e, const Manifest *m,
                       const PlanOptions *o) {
        _cleanup_close_ int dfd = -1;
        _cleanup_free_ char *old = NULL;
        const ManifestEntry *me;
        struct stat st, cst;
        bool have_cst;
        size_t size;
        char sha[65];
        int r;

        if (basefd < 0 || fstatat(basefd, e->registry, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (basefd >= 0 && errno != ENOENT)
                        return plan_add(p, ACTION_CONFLICT, tg, e->registry, e, strerror(errno));
                /* Missing. If the manifest says it is ours, someone deleted it:
                 * recreating it is drift repair, and it stays ours. */
                r = plan_add(p, ACTION_CREATE, tg, e->registry, e, NULL);
                if (r < 0 || tg->bit != TARGET_CONTAINERD)
                        return r;
                return plan_hosts(p, rootfd, p->n_actions - 1, -1, e, manifest_find(m, tg->name, e->registry), o);
        }
        if (S_ISLNK(st.st_mode))
                return plan_add(p, ACTION_CONFLICT, tg, e->registry, e, "is a symlink; not following it");
        if (!S_ISDIR(st.st_mode))
                return plan_add(p, ACTION_CONFLICT, tg, e->registry, e, "exists and is not a directory");
        me = manifest_find(m, tg->name, e->registry);
        if (!me)
                return plan_add(p, ACTION_CONFLICT, tg, e->registry, e,
                                "directory was not created by nodetrustd; left untouched");

        dfd = openat(basefd, e->registry, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return plan_add(p, ACTION_CONFLICT, tg, e->registry, e, strerror(errno));
        /* Looked at before it is read: a change after the read then
         * shows in its times. */
        have_cst = fstatat(dfd, CA_FILE, &cst, AT_SYMLINK_NOFOLLOW) >= 0;
        r = read_file_at(dfd, CA_FILE, false, CA_FILE_MAX, &old, &size);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                r = plan_add(p, ACTION_UPDATE, tg, e->registry, e, NULL);
        else {
                sha256_hex(old, size, sha);
                r = plan_add(p, streq(sha, e->fingerprint) ? ACTION_UNCHANGED : ACTION_UPDATE, tg, e->registry, e,
                             NULL);
                if (r >= 0 && have_cst && p->actions[p->n_actions - 1].type == ACTION_UNCHANGED)
                        p->actions[p->n_actions - 1].id = file_id_of(p, &cst);
        }
        if (r < 0 || tg->bit != TARGET_CONTAINERD)
                return r;
        return plan_hosts(p, rootfd, p->n_actions - 1, dfd, e, me, o);
}

/* A containerd ca.crt we no longer want: its hosts.toml goes first when it
 * is ours (whatever the manifest remembers), since it must never name a
 * ca.crt that is gone; someone else's that names ours, or cannot be read,
 * keeps the ca.crt, which we then disown. */
static int plan_prune_containerd(Plan *p, int rootfd, const Target *tg, const char *registry) {
        _cleanup_close_ int basefd = -1, dfd = -1;
        bool names_ours = false;
        int kind = HOSTS_ABSENT, r;

        if (open_dir_beneath(rootfd, tg->dir, 0, &basefd, NULL) >= 0 &&
            (dfd = openat(basefd, registry, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0)
                kind = containerd_hosts_prune_kind(rootfd, dfd, registry, &names_ours);
        if (kind < 0)
                return kind;
        if (kind == HOSTS_UNREADABLE || (kind == HOSTS_FOREIGN && names_ours))
                return plan_add(p, ACTION_DISOWN, tg, registry, NULL,
                                kind == HOSTS_UNREADABLE
                                        ? "an administrator's " HOSTS_FILE " cannot be read, and may name it; left in place, no longer nodetrustd's"
                                        : "an administrator's " HOSTS_FILE " names it; left in place, no longer nodetrustd's");
        if (kind == HOSTS_OURS) {
                r = plan_add_file(p, ACTION_REMOVE, tg, HOSTS_FILE, registry, NULL, NULL);
                if (r < 0)
                        return r;
        }
        return plan_add(p, ACTION_REMOVE, tg, registry, NULL, NULL);
}

/* Where containerd looks for registry below a config_path directory, in
 * its order (hostPaths in its remotes/docker/config): HOST_PORT_ (for a
 * name with a port), HOST:PORT, then _default. */
static int host_dir_names(const char *registry, char *ret[3]) {
        const char *colon = strrchr(registry, ':');

        ret[0] = ret[1] = ret[2] = NULL;
        if (colon && asprintf(&ret[0], "%.*s_%s_", (int) (colon - registry), registry, colon + 1) < 0)
                return -ENOMEM;
        ret[1] = strdup(registry);
        ret[2] = strdup("_default");
        if (!ret[1] || !ret[2]) {
                free(ret[0]);
                free(ret[1]);
                free(ret[2]);
                return -ENOMEM;
        }
        return 0;
}

/* Does containerd read registry from somewhere else than our directory: a
 * HOST_PORT_ directory beside ours, or any candidate in a directory that
 * config_path lists before ours? Our docker target's directory there is
 * ours too (the same ca.crt) when the manifest says so, except that it
 * holds no hosts.toml, so a loopback registry found there is spoken to over
 * plain HTTP. */
/* Does containerd read dir/name before our directory? Then say so in
 * a->shadowed: 1 when it does, 0 when there is no such directory. */
static int shadow_if_present(int rootfd, PlanAction *a, const char *dir, const char *name) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -1;
        int r;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        fd = open_in_root(rootfd, path, O_PATH | O_DIRECTORY);
        if (fd < 0)
                return 0;
        if (streq(dir, CONTAINERD_CERTS_DIR))
                r = asprintf(&a->shadowed, "%s exists, and containerd reads it before " CONTAINERD_CERTS_DIR "/%s", path,
                             a->registry);
        else
                r = asprintf(&a->shadowed,
                             "containerd's config_path searches %s first, and %s exists, so containerd reads that instead",
                             dir, path);
        if (r < 0)
                return -ENOMEM;
        /* config_path entries come from the node's files: any bytes. */
        utf8_printable(a->shadowed);
        return 1;
}

static int plan_read_first(Plan *p, int rootfd, size_t ca, const Manifest *m, const PlanOptions *o) {
        PlanAction *a = &p->actions[ca];
        char *names[3];
        int r;

        if (a->shadowed)
                return 0; /* the directory itself already says why */
        r = host_dir_names(a->registry, names);
        if (r < 0)
                return r;
        for (char *const *d = o->containerd_read_first; r == 0 && d && *d; d++)
                for (size_t k = 0; r == 0 && k < ELEMENTSOF(names); k++) {
                        if (!names[k] || (streq(*d, "/etc/docker/certs.d") && (o->target_mask & TARGET_DOCKER) &&
                                          k == 1 && !registry_is_loopback(a->registry) &&
                                          manifest_find(m, "docker", a->registry)))
                                continue;
                        r = shadow_if_present(rootfd, a, *d, names[k]);
                }
        /* In our own directory only HOST_PORT_ comes before HOST:PORT. */
        if (r == 0 && names[0])
                r = shadow_if_present(rootfd, a, CONTAINERD_CERTS_DIR, names[0]);
        for (size_t k = 0; k < ELEMENTSOF(names); k++)
                free(names[k]);
        return r < 0 ? r : 0;
}

/* Take the previous plan's conclusion x over, unchanged; with its reason
 * not to be used (shadowed) when copy_shadowed, else that is judged again
 * (plan_read_first()). */
static int plan_reuse(Plan *p, const PlanMemoEntry *x, const Target *tg, const TrustEntry *e, bool copy_shadowed,
                      const PlanOptions *o) {
        PlanAction *a;
        int r;

        r = plan_add(p, ACTION_UNCHANGED, tg, e->registry, e, NULL);
        if (r < 0)
                return r;
        a = &p->actions[p->n_actions - 1];
        a->id = x->ca_id;
        a->reused = true;
        if (copy_shadowed && x->shadowed && !(a->shadowed = strdup(x->shadowed)))
                return -ENOMEM;
        if (!copy_shadowed && tg->bit == TARGET_CONTAINERD && !o->containerd_hosts_toml &&
            registry_is_loopback(e->registry) && !(a->shadowed = strdup(LOOPBACK_WITHOUT_HOSTS)))
                return -ENOMEM;
        if (x->has_hosts) {
                r = plan_add_file(p, ACTION_UNCHANGED, tg, HOSTS_FILE, e->registry, e, NULL);
                if (r < 0)
                        return r;
                p->actions[p->n_actions - 1].id = x->hosts_id;
                p->actions[p->n_actions - 1].reused = true;
        }
        p->n_reused++;
        return 0;
}

int plan_compute(int rootfd, const TrustSet *t, const Manifest *m, const PlanOptions *o, Plan **ret) {
        _cleanup_(plan_freep) Plan *p = NULL;
        size_t cursor = 0; /* into o->previous, for every target in turn */
        int r;

        assert(rootfd >= 0);
        assert(t);
        assert(m);
        assert(o);
        assert(ret);

        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->now = o->now;
        if (p->now.tv_sec == 0)
                (void) clock_gettime(CLOCK_REALTIME, &p->now);
        for (size_t ti = 0; ti < ELEMENTSOF(targets); ti++) {
                const Target *tg = &targets[ti];
                _cleanup_close_ int basefd = -1;
                const char *base_problem = NULL;

                if (!(o->target_mask & tg->bit))
                        continue;

                r = open_dir_beneath(rootfd, tg->dir, 0, &basefd, NULL);
                if (r == -ELOOP || r == -ENOTDIR)
                        base_problem = "a component of the target directory is a symlink or not a directory; refusing to write through it";
                else if (r < 0 && r != -ENOENT)
                        base_problem = strerror(-r);

                for (size_t i = 0; i < t->n_entries; i++) {
                        const TrustEntry *e = &t->entries[i];
                        const PlanMemoEntry *x = base_problem ? NULL : memo_find(o, &cursor, tg, e);

                        if (x && memo_current(o, x, tg, e, m) && reusable_by_events(o, e))
                                r = plan_reuse(p, x, tg, e, true, o);
                        else if (x && memo_current(o, x, tg, e, m) && reusable_by_identity(basefd, x)) {
                                size_t first = p->n_actions;
                                r = plan_reuse(p, x, tg, e, false, o);
                                if (r >= 0 && tg->bit == TARGET_CONTAINERD)
                                        r = plan_read_first(p, rootfd, first, m, o);
                        } else if (base_problem)
                                r = plan_add(p, ACTION_CONFLICT, tg, t->entries[i].registry, &t->entries[i], base_problem);
                        else {
                                size_t first = p->n_actions;
                                r = plan_wanted(p, rootfd, basefd, tg, &t->entries[i], m, o);
                                if (r >= 0 && tg->bit == TARGET_CONTAINERD && p->actions[first].type != ACTION_CONFLICT)
                                        r = plan_read_first(p, rootfd, first, m, o);
                        }
                        if (r < 0)
                                return r;
                }
        }

        /* What we own and no longer want: remove it, unless its key is only
         * refused for now (a bad value): then the last good file stays. */
        for (size_t i = 0; i < m->n_entries; i++) {
                const ManifestEntry *me = &m->entries[i];
                const Target *tg = target_by_name(me->target);
                bool enabled = tg && (o->target_mask & tg->bit);

                if (!tg)
                        continue;
                if (enabled && trust_set_find(t, me->registry))
                        continue;
                if (enabled && trust_set_find_refused(t, me->registry)) {
                        r = plan_add(p, ACTION_KEEP, tg, me->registry, NULL, NULL);
                        if (r < 0)
                                return r;
                        continue;
                }
                r = tg->bit == TARGET_CONTAINERD ? plan_prune_containerd(p, rootfd, tg, me->registry)
                                                 : plan_add(p, ACTION_REMOVE, tg, me->registry, NULL, NULL);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(p);
        return 0;
}

size_t plan_count(const Plan *p, ActionType t) {
        size_t n = 0;

        assert(p);

        for (size_t i = 0; i < p->n_actions; i++)
                n += p->actions[i].type == t;
        return n;
}

bool plan_changes(const Plan *p) {
        assert(p);

        return plan_count(p, ACTION_CREATE) + plan_count(p, ACTION_UPDATE) + plan_count(p, ACTION_REMOVE) +
                       plan_count(p, ACTION_DISOWN) >
               0;
}

void plan_print(FILE *f, const Plan *p, const TrustSet *t, const char *root) {
        const char *sep;

        /* t may be NULL: no refusals or ignored keys to show. */
        assert(f);
        assert(p);
        assert(root);

        sep = root[strlen(root) - 1] == '/' ? "" : "/";
        for (size_t i = 0; i < p->n_actions; i++) {
                const PlanAction *a = &p->actions[i];
                fprintf(f, "%s %s %s %s%s%s/%s/%s", action_type_to_string(a->type), a->target->name,
                        a->registry, root, sep, a->target->dir, a->registry, a->file);
                if (a->reason)
                        fprintf(f, ": %s", a->reason);
                fputc('\n', f);
                if (a->shadowed)
                        fprintf(f, "shadowed %s %s: %s\n", a->target->name, a->registry, a->shadowed);
        }
        for (size_t i = 0; t && i < t->n_refused; i++)
                fprintf(f, "refuse %s: %s\n", t->refused[i].key, t->refused[i].reason);
        for (size_t i = 0; t && t->ignored && t->ignored[i]; i++)
                fprintf(f, "ignore %s\n", t->ignored[i]);
}
