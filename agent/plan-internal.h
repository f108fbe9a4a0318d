/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The plan's own parts shared by plan.c and plan-memo.c: what the previous
 * plan concluded, and whether it still stands (PlanOptions.previous).
 */

#include <sys/stat.h>

#include "plan.h"

/* A ca.crt larger than this is not one we wrote. */
#define CA_FILE_MAX (4u * 1024 * 1024)

bool action_done(const PlanAction *a);

/* A regular file's identity, when it is older than the clock's granularity
 * at p->now; otherwise not valid (its times may not show a change yet). */
FileId file_id_of(const Plan *p, const struct stat *st);
bool file_id_matches(const FileId *id, const struct stat *st);

/* The previous plan's conclusion for (tg, e), or NULL. The memo is in the
 * order a plan goes (target, then registry), so one cursor walks it. */
const PlanMemoEntry *memo_find(const PlanOptions *o, size_t *cursor, const Target *tg, const TrustEntry *e);

/* Can x stand for this plan's conclusion, as far as the manifest and the
 * options say: all of it done, the ca.crt recorded with the CA wanted now,
 * hosts.toml as wanted? */
bool memo_current(const PlanOptions *o, const PlanMemoEntry *x, const Target *tg, const TrustEntry *e,
                  const Manifest *m);

/* Taken over on the events' word: no event named the registry. */
bool reusable_by_events(const PlanOptions *o, const TrustEntry *e);

/* Taken over on a stat() of each file: the very files the previous plan
 * read and found current. basefd is the target's certs.d directory. */
bool reusable_by_identity(int basefd, const PlanMemoEntry *x);
