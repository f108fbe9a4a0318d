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
#include "health.h"
#include "log.h"
#include "manager.h"
#include "node-status.h"
#include "output-watch.h"
#include "reporter.h"
#include "source-dir.h"
#include "source-kube.h"
#include "strv.h"
#include "trust.h"
#include "verify.h"

/* Long enough to coalesce the five inotify events of one kubelet swap,
 * short enough that nobody waits for it. */
#define SYNC_DELAY_USEC 1000ULL
#define ONCE_TIMEOUT_USEC (60 * USEC_PER_SEC)

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        (void) s;
        if (si->ssi_signo == SIGHUP) {
                log_info("Received SIGHUP, resyncing now");
                m->full_check = true;
                manager_schedule_sync(m, 0);
                return 0;
        }
        log_info("Received %s, stopping", strsignal((int) si->ssi_signo));
        (void) sd_notify(false, "STOPPING=1");
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

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
        m->full_check = true;
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

/* The source's health may have changed between syncs (a watch died or
 * came back): judge readiness again and hand it on. */
static void on_source_health_change(void *userdata) {
        manager_publish(userdata, false);
}

static void on_source_change(void *userdata) {
        manager_schedule_sync(userdata, SYNC_DELAY_USEC);
}

/* A registry's check ended: record it for that bundle (a verdict on a
 * bundle the registry no longer has is dropped) and hand it on. Never a
 * reason to fail a sync or readiness. */
static void on_verification(const char *registry, const RegistryVerification *v, void *userdata) {
        Manager *m = userdata;
        int r;

        r = state_set_verification(&m->state, registry, v);
        if (r < 0) {
                log_debug_errno(r, "Verdict on %s dropped", registry);
                return;
        }
        manager_publish(m, true);
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

static void on_output_event(void *userdata) {
        /* Someone (possibly us) touched an output directory: re-planning
         * against the trust set we already have finds out whether anything
         * drifted, and writes only if it did. Our own writes land here too,
         * which is why this must not re-read and re-parse the source. */
        manager_arm_sync_timer(userdata, SYNC_DELAY_USEC);
}

void manager_watch_outputs(Manager *m) {
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
        if (output_watches_update(&m->output_watches, &set, m->manifest) == -ENOMEM)
                log_warning("Out of memory updating the output watches; trying again at the next sync");
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
        /* A daemon saves a change of content hashes alone at the next full
         * sync or at stop; --once saves every change before it exits. */
        m->manifest->defer_hashes = !config->once && !config->dry_run;
        /* A run killed mid-write left temp files; only ours, only where we write. */
        if (!config->dry_run &&
            apply_sweep_temp_files(m->root_fd, config->state_dir, m->manifest,
                                   config->pull_secret_options.enabled ? config->pull_secret_options.paths : NULL) == -ENOMEM)
                return log_error_errno(-ENOMEM, "Failed to sweep temporary files");

        if (config->kubeconfig || config->in_cluster)
                r = source_kube_new(config->kubeconfig, config->kube_watch_timeout_sec, &m->source);
        else
                r = source_dir_new(config->trust_source, config->pull_secret, &m->source);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the source");
        m->source->on_change = on_source_change;
        m->source->on_health_change = on_source_health_change;
        m->source->userdata = m;

        *ret = TAKE_PTR(m);
        return 0;
}

/* The node condition, when there are credentials for it. Asked for
 * explicitly (--node-status=on, or credentials given for it alone), a
 * failure stops start-up; on by default with the API source's credentials,
 * it only costs the condition. */
static int manager_start_node_status(Manager *m) {
        const Config *c = m->config;
        const char *kubeconfig;
        NodeStatusOptions o;
        int r;

        if (!config_node_status_enabled(c, &kubeconfig))
                return 0;
        o = (NodeStatusOptions){
                .node = c->node_name,
                .kubeconfig = kubeconfig,
                .heartbeat_sec = c->node_status_heartbeat_sec,
        };
        r = node_status_new(m->event, &o, &m->node_status);
        if (r >= 0)
                return 0;
        if (c->node_status == NODE_STATUS_ON || c->node_status_kubeconfig || c->node_status_in_cluster)
                return log_error_errno(r, "Failed to set up node status");
        log_warning_errno(r, "Failed to set up node status, continuing without the %s condition", "RegistryTrustReady");
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
                /* Which mount each target directory is on now: a read-only
                 * one later means a stale sandbox only if that changed. */
                manager_note_target_mounts(m);
                /* The watchdog is fed by the loop itself: a stalled loop stops feeding it. */
                (void) sd_event_set_watchdog(m->event, true);
                manager_watch_outputs(m);

                /* Health and the reporter start from the status before the first sync. */
                manager_publish(m, false);
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
                        reporter_update(m->reporter, &m->status, false);
                        if (m->health)
                                health_set_reporter(m->health, m->config->report_url, reporter_get_stats(m->reporter));
                }
                if (m->config->verify_interval_sec > 0) {
                        VerifierOptions o = {
                                .root_fd = m->root_fd,
                                .interval_usec = m->config->verify_interval_sec * USEC_PER_SEC,
                                .timeout_usec = m->config->verify_timeout_sec * USEC_PER_SEC,
                                .on_result = on_verification,
                                .userdata = m,
                        };
                        r = verifier_new(m->event, &o, &m->verifier);
                        if (r < 0)
                                return log_error_errno(r, "Failed to set up verification"), EXIT_FAILURE_;
                }
                r = manager_start_node_status(m);
                if (r < 0)
                        return EXIT_FAILURE_;
        }

        r = source_start(m->source, m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to start watching the source"), EXIT_FAILURE_;
        /* Health is pushed from here on (on_source_health_change); this is the first. */
        manager_publish(m, false);

        manager_schedule_sync(m, 0);

        /* As a daemon, the loop's exit code is the status: 0 after a
         * signal, EXIT_FAILURE_ from manager_exit_if_read_only(). */
        r = sd_event_loop(m->event);
        if (!m->config->dry_run) {
                int k = manifest_flush(m->root_fd, m->config->state_dir, m->manifest);
                if (k < 0)
                        log_warning_errno(k, "Failed to save the ownership manifest's content hashes; the next start reads them from disk");
        }
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
        m->verifier = verifier_free(m->verifier);
        m->node_status = node_status_free(m->node_status);
        output_watches_clear(&m->output_watches);
        sd_event_source_disable_unref(m->sync_timer);
        sd_event_source_disable_unref(m->resync_timer);
        sd_event_source_disable_unref(m->once_timer);
        source_free(m->source);
        manifest_free(m->manifest);
        trust_set_free(m->trust);
        plan_memo_free(m->last_plan);
        strv_free(m->last_read_first);
        state_done(&m->state);
        free(m->not_ready_reason);
        safe_close(m->root_fd);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}
