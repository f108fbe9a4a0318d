/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What a sync tells the operator: one structured journal line per file
 * written, removed or refused, a target's or registry's change of verdict
 * once when it happens, the sd_notify STATUS= line, and the --dry-run
 * listing of target verdicts. Plain functions of the plan and the state.
 */

#include <stdbool.h>
#include <stdio.h>

#include "plan.h"
#include "runtime.h"
#include "state.h"
#include "trust.h"

/* Every action of an applied plan; conflicts, refusals and expiry warnings
 * only when content_changed (they repeat on every resync otherwise). */
void sync_log_plan(const Plan *p, const TrustSet *t, bool content_changed);

/* Each enabled target whose verdict differs between old and now. */
void sync_log_runtime(const RuntimeStatus *old, const RuntimeStatus *now);

/* Registries that changed and are shadowed in some target. */
void sync_log_shadowed(const State *s);

/* Why an applied plan failed, naming every target and its files (the
 * first few) and errors: "could not write 2 files: docker: a.example.com
 * (No space left on device); containerd: a.example.com/hosts.toml
 * (Read-only file system)". NULL when nothing failed. */
int sync_failure_reason(const Plan *p, char **ret);

/* STATUS= (and READY=1 when first) for the service manager. */
void sync_notify(const State *s, bool first);

/* "target NAME STATE[: reason]" per enabled target, for --dry-run. */
void runtime_print(FILE *f, const RuntimeStatus *rs);
