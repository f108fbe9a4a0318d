/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Carry out a plan below rootfd: atomic durable writes, prunes of what the
 * manifest says is ours, and the manifest saved last. Each action's error
 * field says how it went; one failure does not stop the others.
 */

#include "manifest.h"
#include "plan.h"

/* Returns the number of failed actions (>= 0), or negative errno when the
 * manifest could not be saved. */
int apply_plan(int rootfd, const char *state_dir, Plan *p, Manifest *m);

/* Remove the temp files a killed write of ours left (write_file_atomic_full()
 * names, for the files we write only) in each registry directory of m, the
 * state directory, and beside each pull-secret target; nothing else. The
 * number removed; directories that cannot be opened are skipped. */
int apply_sweep_temp_files(int rootfd, const char *state_dir, const Manifest *m, char *const *pull_secret_paths);
