/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The writes of apply: a ca.crt (and the registry directory it needs) and
 * the hosts.toml beside it, as one batch: each is written as a temp file,
 * and apply_batch_commit() then makes them durable and renames them: every
 * temp durable, every ca.crt renamed and durable, then every hosts.toml.
 * A plan of many files does that with one syncfs per step; a small one
 * with an fsync of each temp as it is written and of each directory after
 * its renames (docs/durability.md). Each action's error says how it went.
 */

#include <stdint.h>

#include "fs.h"
#include "manifest.h"
#include "plan.h"

/* From this many files written (ca.crt and hosts.toml), a plan is applied
 * as a batch. Below it, a file costs two fsyncs (~0.8 ms here) and never
 * waits for data others left dirty on the file system; above it, the
 * fsyncs cost more than syncing the whole file system
 * (docs/durability.md has the measurements). */
#define APPLY_BATCH_MIN 64

typedef struct ApplyBatch {
        const Plan *plan;
        /* Under APPLY_BATCH_MIN files: each temp is fsynced as it is
         * written and each renamed file's directory after the renames, no
         * syncfs (docs/durability.md). The renames still wait for no
         * directory fsync in between: for a one-key change, the last
         * ca.crt is in place after 3 fsyncs, not 5. */
        bool per_file;
        uint64_t rnd;     /* the random part of every temp name of the batch */
        uint8_t *staged;  /* a bit per action: its temp file is written and nothing failed since */
        SyncSet fs;       /* the file systems the batch wrote to */
        int basefd[N_TARGETS];
} ApplyBatch;

/* Set b up for p: 1, or 0 when p writes nothing, or -ENOMEM. */
int apply_batch_init(ApplyBatch *b, const Plan *p);
/* Release what b holds (after apply_batch_commit(), or instead of it). */
void apply_batch_done(ApplyBatch *b);

/* Write a's ca.crt's temp file, creating its registry directory for
 * ACTION_CREATE; apply_batch_commit() renames it. */
int apply_write(int rootfd, PlanAction *a, Manifest *m, ApplyBatch *b);
/* Write a's hosts.toml's temp file beside the ca.crt it follows;
 * apply_batch_commit() renames it, never over one that appeared since the
 * plan when a->noreplace (a conflict then). */
int apply_write_hosts(int rootfd, PlanAction *a, Manifest *m, ApplyBatch *b);

/* Make every file b staged durable, rename each into place (every ca.crt
 * before any hosts.toml) and make the renames durable, recording each in
 * m; a file that fails gets its action's error and leaves the old file.
 * The number of actions that failed here. */
int apply_batch_commit(ApplyBatch *b, int rootfd, Plan *p, Manifest *m);

/* Open a's certs.d directory and its registry directory in it: 0, or 1
 * when either is gone or is not a plain directory (nothing of ours is
 * there), or negative errno. */
int open_registry_dir(int rootfd, const PlanAction *a, int *ret_basefd, int *ret_dfd);
