/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "apply.h"
#include "cleanup.h"
#include "fs.h"
#include "health.h"
#include "log.h"
#include "manager.h"
#include "output-watch.h"
#include "plan.h"
#include "pullsecret.h"
#include "reporter.h"
#include "runtime.h"
#include "source-dir.h"
#include "source-kube.h"
#include "sync-log.h"
#include "trust.h"

/* Long enough to coalesce the five inotify events of one kubelet swap,
 * short enough that nobody waits for it. */
#define SYNC_DELAY_USEC 1000ULL
#define ONCE_TIMEOUT_USEC (60 * USEC_PER_SEC)

static bool manager_has_trust(const Manager *m) {
        return m->config->trust_source || m->config->kubeconfig || m->config->in_cluster;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        (void) s;
        if (si->ssi_signo == SIGHUP) {
                log_info("Received SIGHUP, resyncing now");
                manager_schedule_sync(m, 0);
                return 0;
        }
        log_info("Received %s, stopping", strsignal((int) si->ssi_signo));
        (void) sd_notify(false, "STOPPING=1");
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static void manager_repair(Manager *m);

static int on_sync_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        (void) s;
        (void) usec;
        if (m->source_dirty || !m->trust)
                (void) manager_sync(m);
        else
                manager_repair(m);
        return 0;
}

static int on_resync_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        (void) usec;
        log_debug("Periodic resync");
        (void) sd_event_source_set_time_relative(s, m->config->resync_sec * USEC_PER_SEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        manager_schedule_sync(m, 0);
        return 0;
}

static int on_once_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        (void) usec;
        log_error("No complete snapshot from the source within %llu s, giving up",
                  ONCE_TIMEOUT_USEC / USEC_PER_SEC);
        m->exit_code = EXIT_FAILURE_;
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static void on_source_change(void *userdata) {
        manager_schedule_sync(userdata, SYNC_DELAY_USEC);
}

static void manager_arm_sync_timer(Manager *m, uint64_t delay_usec);

void manager_schedule_sync(Manager *m, uint64_t delay_usec) {
        m->source_dirty = true;
        manager_arm_sync_timer(m, delay_usec);
}

static void manager_arm_sync_timer(Manager *m, uint64_t delay_usec) {
        uint64_t now, when;
        int enabled = SD_EVENT_OFF;

        if (sd_event_now(m->event, CLOCK_MONOTONIC, &now) < 0)
                return;
        when = now + delay_usec;
        /* Keep an earlier pending deadline: a burst must not postpone the sync. */
        (void) sd_event_source_get_enabled(m->sync_timer, &enabled);
        if (enabled != SD_EVENT_OFF) {
                uint64_t cur;
                if (sd_event_source_get_time(m->sync_timer, &cur) >= 0 && cur <= when)
                        return;
        }
        (void) sd_event_source_set_time(m->sync_timer, when);
        (void) sd_event_source_set_enabled(m->sync_timer, SD_EVENT_ONESHOT);
}

static int on_output_event(sd_event_source *s, const struct inotify_event *ev, void *userdata) {
        (void) s;
        (void) ev;
        /* Someone (possibly us) touched an output directory: re-planning
         * against the trust set we already have finds out whether anything
         * drifted, and writes only if it did. Our own writes land here too,
         * which is why this must not re-read and re-parse the source. */
        manager_arm_sync_timer(userdata, SYNC_DELAY_USEC);
        return 0;
}

static void manager_watch_outputs(Manager *m) {
        OutputWatchSet set = {
                .event = m->event,
                .root = m->config->root,
                .target_mask = m->config->targets,
                .containerd_config = m->config->containerd_config,
                .handler = on_output_event,
                .userdata = m,
        };

        if (m->config->once || m->config->dry_run)
                return;
        output_watches_update(&m->output_watches, &set, m->manifest);
}

/* Hand health and the reporter what they show from now on: the state,
 * and readiness judged now. Its revision moves when either changed. */
static void manager_publish(Manager *m) {
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
                reporter_update(m->reporter, &m->status);
}

static int exit_code_for(const State *s) {
        if (!s->last_sync_ok || s->n_failed > 0)
                return EXIT_FAILURE_;
        if (s->n_refused > 0 || s->n_conflicts > 0 || s->n_shadowed > 0 ||
            s->pull_secret_status == PULL_SECRET_INVALID)
                return EXIT_PARTIAL;
        return EXIT_APPLIED;
}

/* A target directory that refuses writes with EROFS, under systemd, is
 * nearly always a stale sandbox: ReadWritePaths= bind-mounted the directory
 * when the service started, someone replaced it since (rm -rf, then mkdir),
 * and the new one shows only through the read-only rest of the file system.
 * Nothing in this process can mend a mount namespace, and retrying would
 * fail forever, so say why and exit non-zero: Restart=on-failure starts us
 * again in a fresh namespace that binds the new directory. --once and
 * --dry-run are left alone; their exit status already says failure. */
static void manager_exit_if_read_only(Manager *m, const Plan *p) {
        for (size_t i = 0; i < p->n_actions; i++) {
                const PlanAction *a = &p->actions[i];
                _cleanup_free_ char *dir = NULL;

                if (a->error != -EROFS)
                        continue;
                dir = path_join(m->config->root, a->target->dir);
                log_full(LOG_ERR, "Target directory is read-only (replaced since the service started?); exiting so that a restart sees it afresh",
                         "TARGET=%s", a->target->name, "DIRECTORY=%s", dir ? dir : a->target->dir,
                         "REGISTRY=%s", a->registry, "ERROR=%s", strerror(EROFS), NULL);
                (void) sd_event_exit(m->event, EXIT_FAILURE_);
                return;
        }
}

/* trust set -> plan -> apply -> state. -EIO when some write failed. */
static int manager_apply_trust(Manager *m, const TrustSet *t, bool content_changed) {
        _cleanup_(runtime_status_done) RuntimeStatus rs = {};
        _cleanup_(plan_freep) Plan *p = NULL;
        int r, failed = 0;

        /* Which runtimes read what we write is judged at every sync: it is
         * a few stats and one small file. */
        r = runtime_check(m->root_fd, m->config->containerd_config, m->config->targets, &rs);
        if (r < 0)
                return r;

        PlanOptions o = {
                .target_mask = m->config->targets,
                .containerd_hosts_toml = m->config->containerd_hosts_toml,
                .containerd_read_first = rs.targets[target_by_name("containerd") - targets].read_first,
        };
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
                m->state.n_files_failed = (unsigned) failed;
                sync_log_plan(p, t, content_changed);
                sync_log_runtime(&m->state.runtime, &rs);
                m->state.files_written_total += plan_count(p, ACTION_CREATE) + plan_count(p, ACTION_UPDATE);
                m->state.files_removed_total += plan_count(p, ACTION_REMOVE);
                if (plan_changes(p))
                        manager_watch_outputs(m);
                if (!m->config->once)
                        manager_exit_if_read_only(m, p);
        }

        state_set_runtime(&m->state, &rs);
        r = state_set_registries(&m->state, t, p);
        if (r < 0)
                return r;
        if (!m->config->dry_run)
                sync_log_shadowed(&m->state);
        return failed > 0 ? -EIO : 0;
}

/* The trust half of a sync: snapshot -> trust set, then apply it. */
static int manager_sync_trust(Manager *m, const Snapshot *snap, bool content_changed) {
        _cleanup_(trust_set_freep) TrustSet *t = NULL;
        int r;

        r = trust_set_from_snapshot(snap, m->config->ignore_keys, time(NULL), m->trust, &t);
        if (r < 0)
                return r;
        r = manager_apply_trust(m, t, content_changed);
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

/* Drift repair after an output event: the source has not changed, so apply
 * the trust set we have. A failure here marks the agent degraded until the
 * next full sync; success leaves the last full sync's verdict alone. */
static void manager_repair(Manager *m) {
        State *s = &m->state;
        int r;

        if (!manager_has_trust(m))
                return;
        r = manager_apply_trust(m, m->trust, false);
        if (r < 0) {
                _cleanup_free_ char *err = NULL;
                if (asprintf(&err, "Drift repair failed: %s",
                             r == -EIO ? "a registry could not be written" : strerror(-r)) < 0)
                        err = NULL;
                state_set_failed(s, err ? err : "drift repair failed");
                log_error("%s", s->last_error);
        }
        sync_notify(&m->state, false);
        manager_publish(m);
}

int manager_sync(Manager *m) {
        _cleanup_(snapshot_freep) Snapshot *snap = NULL;
        _cleanup_free_ char *err = NULL;
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
                if (asprintf(&err, "Failed to read the source: %s", strerror(-r)) < 0)
                        err = NULL;
        } else {
                snapshot_trust_hash(snap, hash);
                changed = state_set_source(s, hash, snap->origin);
                if (manager_has_trust(m))
                        r = manager_sync_trust(m, snap, changed);
                if (r == -EIO) {
                        /* A failed removal fails no registry of the trust
                         * set: count files, and name registries when any. */
                        if ((s->n_failed > 0
                                     ? asprintf(&err, "%u registr%s could not be written", s->n_failed,
                                                s->n_failed == 1 ? "y" : "ies")
                                     : asprintf(&err, "%u file%s could not be written or removed", s->n_files_failed,
                                                s->n_files_failed == 1 ? "" : "s")) < 0)
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
        sync_notify(&m->state, first);
        manager_publish(m);
        return r;
}

int manager_new(Config *config, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = calloc(1, sizeof *m);
        int r;

        if (!m)
                return -ENOMEM;
        m->config = config;
        m->root_fd = -1;

        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop");

        m->root_fd = open(config->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (m->root_fd < 0)
                return log_error_errno(-errno, "Failed to open --root '%s'", config->root);

        r = manifest_load(m->root_fd, config->state_dir, &m->manifest);
        if (r == -EBADMSG) {
                /* Without it we cannot tell ours from the admin's: own
                 * nothing, so nothing is pruned and existing entries are
                 * conflicts until an operator looks. */
                log_error("The ownership manifest in '%s' is corrupt; treating every existing entry as not ours",
                          config->state_dir);
                m->manifest = manifest_new();
                r = m->manifest ? 0 : -ENOMEM;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to load the ownership manifest from '%s'", config->state_dir);

        if (config->kubeconfig || config->in_cluster)
                r = source_kube_new(config->kubeconfig, config->kube_watch_timeout_sec, &m->source);
        else
                r = source_dir_new(config->trust_source, config->pull_secret, &m->source);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the source");
        m->source->on_change = on_source_change;
        m->source->userdata = m;

        *ret = TAKE_PTR(m);
        return 0;
}

int manager_run(Manager *m) {
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        static const struct {
                int sig;
                const char *description;
        } sigs[] = { { SIGTERM, "signal-TERM" }, { SIGINT, "signal-INT" }, { SIGHUP, "signal-HUP" } };
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++) {
                sd_event_source *src = NULL;

                r = sd_event_add_signal(m->event, &src, sigs[i].sig, on_signal, m);
                if (r < 0)
                        return log_error_errno(r, "Failed to watch signals"), EXIT_FAILURE_;
                (void) sd_event_source_set_description(src, sigs[i].description);
                /* The loop keeps it until it is freed. */
                (void) sd_event_source_set_floating(src, true);
                sd_event_source_unref(src);
        }

        r = sd_event_add_time_relative(m->event, &m->sync_timer, CLOCK_MONOTONIC, 0, 1, on_sync_timer, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the sync timer"), EXIT_FAILURE_;
        (void) sd_event_source_set_description(m->sync_timer, "sync-timer");
        (void) sd_event_source_set_enabled(m->sync_timer, SD_EVENT_OFF);

        if (m->config->once || m->config->dry_run) {
                /* Until a sync says otherwise: a SIGTERM before the first
                 * one must not exit 0 ("applied") when nothing was. */
                m->exit_code = EXIT_FAILURE_;
                r = sd_event_add_time_relative(m->event, &m->once_timer, CLOCK_MONOTONIC, ONCE_TIMEOUT_USEC,
                                               USEC_PER_SEC, on_once_timeout, m);
                if (r < 0)
                        return log_error_errno(r, "Failed to add a timer"), EXIT_FAILURE_;
                (void) sd_event_source_set_description(m->once_timer, "once-timeout");
        } else {
                r = sd_event_add_time_relative(m->event, &m->resync_timer, CLOCK_MONOTONIC,
                                               m->config->resync_sec * USEC_PER_SEC, USEC_PER_SEC,
                                               on_resync_timer, m);
                if (r < 0)
                        return log_error_errno(r, "Failed to add the resync timer"), EXIT_FAILURE_;
                (void) sd_event_source_set_description(m->resync_timer, "resync-timer");
                /* The watchdog is fed by the loop itself: a stalled loop stops feeding it. */
                (void) sd_event_set_watchdog(m->event, true);
                manager_watch_outputs(m);

                /* Health and the reporter start from the status before the first sync. */
                manager_publish(m);
                if (m->config->health_listen) {
                        r = health_new(m->event, m->config->health_listen, &m->status, &m->health);
                        if (r < 0)
                                return log_error_errno(r, "Failed to serve health on %s", m->config->health_listen),
                                       EXIT_FAILURE_;
                }
                if (m->config->report_url) {
                        ReporterOptions o = {
                                .url = m->config->report_url,
                                .token_file = m->config->report_token_file,
                                .ca_file = m->config->report_ca,
                                .interval_sec = m->config->report_interval_sec,
                        };
                        r = reporter_new(m->event, &o, &m->reporter);
                        if (r < 0)
                                return log_error_errno(r, "Failed to set up reporting to %s", m->config->report_url),
                                       EXIT_FAILURE_;
                        reporter_update(m->reporter, &m->status);
                        if (m->health)
                                health_set_reporter(m->health, m->config->report_url, reporter_get_stats(m->reporter));
                }
        }

        r = source_start(m->source, m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to start watching the source"), EXIT_FAILURE_;

        manager_schedule_sync(m, 0);

        /* As a daemon, the loop's exit code is the status: 0 after a
         * signal, EXIT_FAILURE_ from manager_exit_if_read_only(). */
        r = sd_event_loop(m->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed"), EXIT_FAILURE_;
        return m->config->once || m->config->dry_run ? m->exit_code : r;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        /* They use the loop and the state: first out. */
        m->health = health_free(m->health);
        m->reporter = reporter_free(m->reporter);
        output_watches_clear(&m->output_watches);
        sd_event_source_disable_unref(m->sync_timer);
        sd_event_source_disable_unref(m->resync_timer);
        sd_event_source_disable_unref(m->once_timer);
        source_free(m->source);
        manifest_free(m->manifest);
        trust_set_free(m->trust);
        state_done(&m->state);
        free(m->not_ready_reason);
        safe_close(m->root_fd);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}
