/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The Manager owns the loop and everything on it: signals, timers, the
 * source, the root directory fd, the ownership manifest and the state.
 * One thread, no locks: every event source is dispatched by sd_event.
 */

#include <systemd/sd-event.h>

#include "config.h"
#include "manifest.h"
#include "plan.h"
#include "output-watch.h"
#include "source.h"
#include "state.h"
#include "status.h"
#include "target.h"
#include "trust.h"

typedef struct Health Health;
typedef struct Reporter Reporter;
typedef struct Verifier Verifier;
typedef struct NodeStatus NodeStatus;

typedef struct Manager {
        Config *config; /* borrowed; outlives the manager */
        sd_event *event;

        sd_event_source *sync_timer;   /* debounces source and output events */
        sd_event_source *resync_timer; /* periodic drift repair */
        sd_event_source *once_timer;   /* --once/--dry-run give up after this */
        OutputWatches output_watches;

        Source *source;
        int root_fd;
        Manifest *manifest;
        State state;

        /* The last trust set: output events re-plan against it without
         * reading and parsing the source again, and the next full sync
         * reuses its parsed bundles. */
        TrustSet *trust;
        /* The source may have changed since the last full sync. */
        bool source_dirty;
        /* What the last plan applied concluded, and the containerd
         * read-first directories it was computed with: the next plan takes
         * over what no output event touched since (plan.h). full_check:
         * read everything on disk at the next plan (resync, SIGHUP, retry
         * after a failure). */
        PlanMemo *last_plan;
        char **last_read_first;
        bool full_check;

        /* What health and the reporter were handed last (manager_publish). */
        AgentStatus status;
        char *not_ready_reason;
        uint64_t readiness_revision;
        Health *health;
        Reporter *reporter;
        Verifier *verifier; /* daemon mode with --verify-interval > 0 */
        NodeStatus *node_status; /* the RegistryTrustReady condition; NULL when off */

        uint64_t retry_usec; /* the backoff after a failed sync or repair, 0 none */
        uint64_t target_mount_id[N_TARGETS]; /* at start; 0 unknown (see manager_exit_if_read_only) */
        int exit_code;       /* for --once/--dry-run */
} Manager;

int manager_new(Config *config, Manager **ret);

/* Record the mount of each enabled target directory not known yet (at
 * start, and once a missing one exists): see manager_exit_if_read_only(). */
void manager_note_target_mounts(Manager *m);
Manager *manager_free(Manager *m);
static inline void manager_freep(Manager **m) {
        if (*m)
                manager_free(*m);
}

/* Start sources and servers, run the loop, return the process exit status. */
int manager_run(Manager *m);

/* Read the source and carry the result all the way to disk and state. */
int manager_sync(Manager *m);

/* Schedule a full sync after delay_usec (coalescing bursts of events). */
void manager_schedule_sync(Manager *m, uint64_t delay_usec);

/* The manager's own parts (manager.c: the loop; manager-sync.c: the sync). */

/* Re-plan against the last trust set after an output event (drift repair). */
void manager_repair(Manager *m);

/* Hand health and the reporter the state and readiness as they are now.
 * sync_done: a sync or repair ended, so a report goes out soon if its
 * content changed; otherwise (the source's health moved) the reporter
 * only takes the new status for its next report. */
void manager_publish(Manager *m, bool sync_done);

/* (Re)watch the target directories and everything the manifest owns. */
void manager_watch_outputs(Manager *m);
