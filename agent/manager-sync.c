/* SPDX-License-Identifier: MIT */
/*
 * The sync: the manager calling each stage in order, for the trust set and
 * for the pull secret alike, then recording state and publishing it.
 * manager.c owns the loop that calls these.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apply.h"
#include "cleanup.h"
#include "fs.h"
#include "health.h"
#include "log.h"
#include "manager.h"
#include "node-status.h"
#include "plan.h"
#include "pullsecret.h"
#include "reporter.h"
#include "runtime.h"
#include "strv.h"
#include "sync-log.h"
#include "trust.h"
#include "verify.h"

static bool manager_has_trust(const Manager *m) {
        return m->config->trust_source || m->config->kubeconfig || m->config->in_cluster;
}

/* Hand health and the reporter what they show from now on: the state,
 * and readiness judged now. Its revision moves when either changed. */
void manager_publish(Manager *m, bool sync_done) {
        const char *source_reason = NULL, *reason = NULL;
        bool healthy, ready;

        healthy = source_healthy(m->source, &source_reason);
        ready = state_is_ready(&m->state, healthy, source_reason, &reason);
        if (ready != m->status.ready || !streq_ptr(reason, m->not_ready_reason)) {
                free(m->not_ready_reason);
                m->not_ready_reason = reason ? strdup(reason) : NULL;
                m->readiness_revision++;
        }
        m->status = (AgentStatus){
                .state = &m->state,
                .node = m->config->node_name,
                .version = NODETRUST_VERSION,
                .source_kind = m->source->ops->kind,
                .ready = ready,
                .not_ready_reason = m->not_ready_reason,
                .revision = m->state.revision + m->readiness_revision,
        };
        if (m->health)
                health_update(m->health, &m->status);
        if (m->reporter)
                reporter_update(m->reporter, &m->status, sync_done);
        /* The condition is judged from the state alone, and sent only when
         * what it says changed. */
        if (m->node_status)
                node_status_update(m->node_status, &m->state);
}

/* Hand the verifier the registries as this sync or repair recorded them. */
static void manager_verify(Manager *m) {
        int r;

        if (!m->verifier)
                return;
        r = verifier_update(m->verifier, &m->state);
        if (r < 0)
                log_warning_errno(r, "Failed to schedule verification, ignoring");
}

static int exit_code_for(const State *s) {
        if (!s->last_sync_ok || s->n_failed > 0)
                return EXIT_FAILURE_;
        if (s->n_refused > 0 || s->n_conflicts > 0 || s->n_shadowed > 0 ||
            s->pull_secret_status == PULL_SECRET_INVALID)
                return EXIT_PARTIAL;
        return EXIT_APPLIED;
}

/* The mount root/dir is on (statx STATX_MNT_ID), 0 when unknown. */
static uint64_t target_mount_id(int rootfd, const char *dir) {
        struct statx sx;

        if (statx(rootfd, dir, AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &sx) < 0 || !(sx.stx_mask & STATX_MNT_ID))
                return 0;
        return sx.stx_mnt_id;
}

void manager_note_target_mounts(Manager *m) {
        for (size_t k = 0; k < N_TARGETS; k++)
                if (m->target_mount_id[k] == 0 && (m->config->targets & targets[k].bit))
                        m->target_mount_id[k] = target_mount_id(m->root_fd, targets[k].dir);
}

/* A target directory that refuses writes with EROFS, under systemd, is
 * nearly always a stale sandbox: ReadWritePaths= bind-mounted the directory
 * when the service started, someone replaced it since (rm -rf, then mkdir),
 * the kernel dropped that mount with the old directory, and the new one
 * shows only through the read-only rest of the file system. Nothing in this
 * process can mend a mount namespace, and retrying would fail forever, so
 * say why and exit non-zero: Restart=on-failure starts us again in a fresh
 * namespace that binds the new directory. That is the case exactly when the
 * directory is on another mount than at start. On the same mount, the file
 * system itself is read-only (remounted, a full disk's errors=remount-ro):
 * a restart cannot help, so keep running and retry with backoff, degraded
 * and saying why, until it is writable again. When the mount at start is
 * unknown, exit under systemd (INVOCATION_ID) as before. --once and
 * --dry-run are left alone; their exit status already says failure. */
static void manager_exit_if_read_only(Manager *m, const Plan *p) {
        for (size_t i = 0; i < p->n_actions; i++) {
                const PlanAction *a = &p->actions[i];
                _cleanup_free_ char *dir = NULL;
                size_t k = a->target - targets;
                uint64_t now;

                if (a->error != -EROFS)
                        continue;
                now = target_mount_id(m->root_fd, a->target->dir);
                if (m->target_mount_id[k] != 0 ? now == m->target_mount_id[k] : !getenv("INVOCATION_ID"))
                        continue;
                dir = path_join(m->config->root, a->target->dir);
                log_full(LOG_ERR, "Target directory is read-only (replaced since the service started?); exiting so that a restart sees it afresh",
                         "TARGET=%s", a->target->name, "DIRECTORY=%s", dir ? dir : a->target->dir,
                         "REGISTRY=%s", a->registry, "ERROR=%s", strerror(EROFS), NULL);
                (void) sd_event_exit(m->event, EXIT_FAILURE_);
                return;
        }
}

/* What may have changed on disk since the last plan. */
typedef struct Changes {
        char **registries; /* sorted */
        size_t n;
        bool full;      /* the events cannot say all that changed */
        bool in_target; /* some event was in a target directory itself */
} Changes;

static void changes_done(Changes *c) {
        c->registries = strv_free(c->registries);
}

/* What the output watches saw since the last plan, taken: from now on is
 * the next plan's. full when the events cannot say all that changed:
 * asked for (full_check: resync, SIGHUP, a retry), or a watch missing,
 * ended or overflowed; then only a stat() of each file can. */
static void manager_take_changes(Manager *m, Changes *ret) {
        bool all, complete = output_watches_complete(&m->output_watches);

        output_watches_take_changes(&m->output_watches, &ret->registries, &ret->n, &all, &ret->in_target);
        ret->full = m->full_check || all || !complete;
}

/* The plan the next one may take over from (plan.h); NULL when there is
 * none, or it was made with other options. */
static const PlanMemo *manager_previous_plan(Manager *m, char *const *read_first) {
        if (!m->last_plan || !strv_equal(read_first, m->last_read_first))
                return NULL;
        return m->last_plan;
}

/* A repair after events inside a few registries' own directories (our own
 * writes, mostly) needs no plan when each of their files is what the last
 * plan concluded: 1 then. */
#define QUICK_REPAIR_MAX 64

static int manager_repair_confirmed(Manager *m, const TrustSet *t, const Changes *c) {
        PlanOptions o = {
                .target_mask = m->config->targets,
                .containerd_hosts_toml = m->config->containerd_hosts_toml,
        };

        if (c->full || c->in_target || c->n == 0 || c->n > QUICK_REPAIR_MAX || !m->last_plan)
                return 0;
        return plan_memo_confirms(m->root_fd, m->last_plan, t, m->manifest, &o, c->registries, c->n);
}

/* Keep what p concluded for the next plan to take over from; p is spent. */
static void manager_keep_plan(Manager *m, Plan *p, char *const *read_first) {
        PlanMemo *memo = NULL;
        char **copy = NULL;

        m->last_plan = plan_memo_free(m->last_plan);
        for (char *const *d = read_first; d && *d; d++)
                if (strv_extend(&copy, *d) < 0) {
                        strv_free(copy);
                        return;
                }
        if (plan_memo_new(p, &memo) < 0) {
                strv_free(copy);
                return;
        }
        m->last_plan = memo;
        strv_free(m->last_read_first);
        m->last_read_first = copy;
        m->full_check = false;
}

/* trust set -> plan -> apply -> state. -EIO when some write failed, and
 * *ret_error says which, for every target. For a repair (an output
 * event), 1 when the registries the events named are as the last plan
 * left them: no plan, nothing changed. */
static int manager_apply_trust(Manager *m, const TrustSet *t, bool content_changed, bool repair, char **ret_error) {
        _cleanup_(runtime_status_done) RuntimeStatus rs = {};
        _cleanup_(plan_freep) Plan *p = NULL;
        _cleanup_(changes_done) Changes c = {};
        int r, failed = 0;

        if (!m->config->dry_run && !m->config->once)
                manager_take_changes(m, &c);
        /* The changes are taken: until this plan is kept (or the repair
         * confirmed), the next one reads everything. */
        m->full_check = true;
        if (repair) {
                r = manager_repair_confirmed(m, t, &c);
                if (r < 0)
                        return r;
                if (r > 0) {
                        log_debug("Drift check: the %zu registries touched are as the last plan left them", c.n);
                        m->full_check = false; /* it was, or c.full would have said so */
                        return 1;
                }
        }

        /* Which runtimes read what we write is judged at every sync: it is
         * a few stats and one small file. */
        r = runtime_check(m->root_fd, m->config->containerd_config, m->config->targets, &rs);
        if (r < 0)
                return r;

        char *const *read_first = rs.targets[target_by_name("containerd") - targets].read_first;
        PlanOptions o = {
                .target_mask = m->config->targets,
                .containerd_hosts_toml = m->config->containerd_hosts_toml,
                .containerd_read_first = read_first,
        };
        if (!m->config->dry_run && !m->config->once) {
                o.previous = manager_previous_plan(m, read_first);
                o.changed = c.registries;
                o.n_changed = c.n;
                o.full = c.full;
        }
        r = plan_compute(m->root_fd, t, m->manifest, &o, &p);
        if (r < 0)
                return r;

        if (m->config->dry_run) {
                plan_print(stdout, p, t, m->config->root);
                runtime_print(stdout, &rs);
                fflush(stdout);
        } else {
                failed = apply_plan(m->root_fd, m->config->state_dir, p, m->manifest);
                if (failed < 0)
                        return failed;
                /* A full sync (resync, SIGHUP) saves what was put off. */
                if ((!o.previous || o.full) && (r = manifest_flush(m->root_fd, m->config->state_dir, m->manifest)) < 0)
                        log_warning_errno(r, "Failed to save the ownership manifest's content hashes, trying again at the next resync");
                m->state.n_files_failed = (unsigned) failed;
                sync_log_plan(p, t, content_changed);
                sync_log_runtime(&m->state.runtime, &rs);
                m->state.files_written_total += plan_count(p, ACTION_CREATE) + plan_count(p, ACTION_UPDATE);
                m->state.files_removed_total += plan_count(p, ACTION_REMOVE);
                /* A directory written into may be a new one where the
                 * watch has the old; a watch that ended (its directory
                 * deleted or moved) is watched again by path, even when
                 * nothing needed writing. */
                for (size_t i = 0; i < p->n_actions && !m->config->once; i++)
                        if (!p->actions[i].error &&
                            (p->actions[i].type == ACTION_CREATE || p->actions[i].type == ACTION_UPDATE))
                                output_watches_refresh(&m->output_watches, p->actions[i].target->dir,
                                                       p->actions[i].registry);
                if (plan_changes(p) || output_watches_need_update(&m->output_watches))
                        manager_watch_outputs(m);
                if (!m->config->once)
                        manager_exit_if_read_only(m, p);
                /* A target directory missing at start (created since, by us
                 * or a runtime's package) gets its mount once it exists. */
                if (!m->config->once)
                        manager_note_target_mounts(m);
        }

        state_set_runtime(&m->state, &rs);
        r = state_set_registries(&m->state, t, p);
        if (r < 0)
                return r;
        if (!m->config->dry_run)
                sync_log_shadowed(&m->state);
        if (failed > 0 && sync_failure_reason(p, ret_error) < 0)
                *ret_error = NULL; /* the caller says it without the names */
        log_debug("Planned %zu actions, %zu registries taken over unread", p->n_actions, p->n_reused);
        if (!m->config->dry_run && !m->config->once)
                manager_keep_plan(m, p, read_first);
        return failed > 0 ? -EIO : 0;
}

/* The trust half of a sync: snapshot -> trust set, then apply it. */
static int manager_sync_trust(Manager *m, const Snapshot *snap, bool content_changed, char **ret_error) {
        _cleanup_(trust_set_freep) TrustSet *t = NULL;
        int r;

        r = trust_set_from_snapshot(snap, m->config->ignore_keys, time(NULL), m->trust, &t);
        if (r < 0)
                return r;
        r = manager_apply_trust(m, t, content_changed, false, ret_error);
        trust_set_free(m->trust);
        m->trust = TAKE_PTR(t);
        return r;
}

/* The pull-secret half of a sync, in the trust half's stages: plan, apply
 * (or print for --dry-run), state, log. -EIO when a target could not be
 * written. */
static int manager_sync_pull_secret(Manager *m, const Snapshot *snap) {
        _cleanup_(pull_secret_plan_freep) PullSecretPlan *p = NULL;
        _cleanup_(pull_secret_result_freep) PullSecretResult *res = NULL;
        _cleanup_free_ char *error = NULL;
        const Config *c = m->config;
        PullSecretStatus status;
        const char *hash;
        int failed = 0, r;

        r = pull_secret_plan_compute(m->root_fd, c->state_dir, snap, &c->pull_secret_options, &p);
        if (r < 0)
                return r;
        if (c->dry_run) {
                pull_secret_plan_print(stdout, p, c->root);
                fflush(stdout);
        } else {
                pull_secret_plan_log(p, c->state_dir);
                failed = pull_secret_apply(m->root_fd, c->state_dir, p, &res);
                if (failed < 0)
                        return failed;
        }
        r = pull_secret_outcome(p, res, &status, &error, &hash);
        if (r < 0)
                return r;
        r = state_set_pull_secret(&m->state, status, hash, error);
        if (r < 0)
                return r;
        if (!c->dry_run)
                pull_secret_log(p, res, c->state_dir, r > 0);
        return failed > 0 ? -EIO : 0;
}

/* A failed write (a directory replaced under us, ENOSPC, EACCES) is tried
 * again with a full sync after 1 s, doubling to a minute, instead of
 * waiting for the next resync; success resets it. --once and --dry-run
 * report the failure instead. */
#define RETRY_MIN_USEC (1 * USEC_PER_SEC)
#define RETRY_MAX_USEC (60 * USEC_PER_SEC)

static void manager_retry_after_failure(Manager *m, bool failed) {
        if (!failed) {
                m->retry_usec = 0;
                return;
        }
        m->retry_usec = m->retry_usec ? m->retry_usec * 2 : RETRY_MIN_USEC;
        m->full_check = true;
        if (m->retry_usec > RETRY_MAX_USEC)
                m->retry_usec = RETRY_MAX_USEC;
        log_debug("Syncing again in %llu s", (unsigned long long) (m->retry_usec / USEC_PER_SEC));
        manager_schedule_sync(m, m->retry_usec);
}

/* Drift repair after an output event: the source has not changed, so apply
 * the trust set we have. A failure here marks the agent degraded until the
 * next full sync; success leaves the last full sync's verdict alone. */
void manager_repair(Manager *m) {
        _cleanup_free_ char *why = NULL;
        State *s = &m->state;
        int r;

        if (!manager_has_trust(m))
                return;
        r = manager_apply_trust(m, m->trust, false, true, &why);
        if (r > 0)
                return; /* nothing drifted: nothing to say */
        if (r < 0) {
                _cleanup_free_ char *err = NULL;
                if (asprintf(&err, "Drift repair failed: %s",
                             why ? why : r == -EIO ? "a registry could not be written" : strerror(-r)) < 0)
                        err = NULL;
                state_set_failed(s, err ? err : "drift repair failed");
                log_error("%s", s->last_error);
        }
        /* A repair that worked says nothing of the last full sync. */
        if (r < 0)
                manager_retry_after_failure(m, true);
        sync_notify(&m->state, false);
        manager_verify(m);
        manager_publish(m, true);
}

int manager_sync(Manager *m) {
        _cleanup_(snapshot_freep) Snapshot *snap = NULL;
        _cleanup_free_ char *err = NULL, *why = NULL;
        State *s = &m->state;
        bool first = !s->first_sync_done, changed = false;
        char hash[65];
        int r;

        m->source_dirty = false;
        r = source_read(m->source, &snap);
        if (r == -EAGAIN)
                return 0; /* the source has nothing complete yet; it will call again */

        s->syncs_total++;
        s->last_sync = time(NULL);

        if (r < 0) {
                const char *reason = NULL;

                /* The source's own reason names the object and the field. */
                if (source_healthy(m->source, &reason) || !reason)
                        reason = strerror(-r);
                if (asprintf(&err, "Failed to read the source: %s", reason) < 0)
                        err = NULL;
        } else {
                snapshot_trust_hash(snap, hash);
                changed = state_set_source(s, hash, snap->origin);
                if (manager_has_trust(m))
                        r = manager_sync_trust(m, snap, changed, &why);
                if (r == -EIO) {
                        /* Every target that failed, with its files and
                         * errors; a failed removal fails no registry. */
                        if (why)
                                err = TAKE_PTR(why);
                        else if (asprintf(&err, "%u file%s could not be written or removed", s->n_files_failed,
                                          s->n_files_failed == 1 ? "" : "s") < 0)
                                err = NULL;
                } else if (r < 0) {
                        if (asprintf(&err, "Failed to sync: %s", strerror(-r)) < 0)
                                err = NULL;
                }
                /* The pull-secret half (pullsecret.c), after the trust half:
                 * an invalid secret only sets pull_secret_status; a failed
                 * write fails the sync like a failed registry write. */
                if (m->config->pull_secret_options.enabled) {
                        int k = manager_sync_pull_secret(m, snap);
                        if (k < 0 && r >= 0) {
                                r = k;
                                if (asprintf(&err, "Failed to sync the pull secret: %s",
                                             s->pull_secret_error ? s->pull_secret_error : strerror(-k)) < 0)
                                        err = NULL;
                        }
                }
        }

        state_sync_done(s, r >= 0, err);
        if (!s->last_sync_ok)
                log_error("%s", s->last_error);
        if (!m->config->dry_run && (changed || first || !s->last_sync_ok))
                log_full(s->last_sync_ok ? LOG_INFO : LOG_WARNING, "Sync complete", "GENERATION=%llu",
                         (unsigned long long) s->generation, "APPLIED=%u", s->n_applied, "REFUSED=%u",
                         s->n_refused, "CONFLICTS=%u", s->n_conflicts, "FAILED=%u", s->n_failed, NULL);

        if (m->config->once || m->config->dry_run) {
                m->exit_code = exit_code_for(s);
                return sd_event_exit(m->event, 0);
        }
        manager_retry_after_failure(m, !s->last_sync_ok);
        sync_notify(&m->state, first);
        manager_verify(m);
        manager_publish(m, true);
        /* A sync's snapshot, trust set and plan are freed by now, but glibc
         * returns only the top of the heap: the holes they leave below live
         * data stayed resident, and RssAnon grew with every resync. */
        snap = snapshot_free(snap);
        (void) malloc_trim(0);
        return r;
}
