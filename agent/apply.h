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
