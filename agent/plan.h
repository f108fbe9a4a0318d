/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The plan: what must happen on disk so that every enabled runtime target
 * trusts exactly the trust set, computed from the trust set, the ownership
 * manifest and what is on disk now. Computing it writes nothing.
 */

#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "manifest.h"
#include "target.h"
#include "trust.h"

#define CA_FILE "ca.crt"

/* How the plan is made beyond the trust set and the manifest. */
typedef struct PlanOptions {
        unsigned target_mask;       /* TARGET_* bits of the enabled targets */
        bool containerd_hosts_toml; /* own a hosts.toml beside each containerd ca.crt */
        /* Directories containerd searches before ours (config_path order),
         * as it sees them; a registry found there is not read from ours. */
        char *const *containerd_read_first;
        /* What the plan before this one concluded (computed with the same
         * options and applied), and the registries whose directories may
         * have changed on disk since (sorted). A registry not among them,
         * whose ca.crt the manifest records with the wanted fingerprint,
         * and whose actions there all succeeded, takes those over as
         * unchanged without reading the disk. NULL: check everything. */
        const struct PlanMemo *previous;
        char *const *changed;
        size_t n_changed;
        /* Events are not to be trusted for this plan (resync, SIGHUP, a
         * watch missing or overflowed): a registry is taken over only when
         * a stat() of each of its files finds the very file the previous
         * plan read (FileId), and the directories containerd reads first
         * are looked at again; everything else is read. */
        bool full;
        /* The time now (CLOCK_REALTIME); zero: read the clock. */
        struct timespec now;
} PlanOptions;

/* A file as stat() sees it. Any write, rename over or chmod changes it:
 * ctime moves, and userspace cannot set it back. */
typedef struct FileId {
        bool valid;
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime, ctime;
} FileId;

typedef enum ActionType {
        ACTION_CREATE,    /* directory and ca.crt are ours to create */
        ACTION_UPDATE,    /* ours, content differs or is missing (drift) */
        ACTION_UNCHANGED, /* ours, content is right */
        ACTION_REMOVE,    /* ours, no longer in the trust set */
        ACTION_KEEP,      /* ours, its key is refused now: last good stays */
        ACTION_CONFLICT,  /* someone else's entry, or a symlink: untouched */
        ACTION_DISOWN,    /* ours, no longer wanted, but someone else's file relies on it: left, forgotten */
        _ACTION_MAX,
} ActionType;

/* One action on one file: ca.crt in every target, and for containerd also
 * hosts.toml, whose action follows its ca.crt action in the plan. */
typedef struct PlanAction {
        ActionType type;
        const Target *target;
        const char *file; /* CA_FILE or HOSTS_FILE */
        char *registry;
        const TrustEntry *entry; /* borrowed from the trust set; NULL for remove/keep */
        char *reason;            /* why, for conflicts */
        char *shadowed;          /* ca.crt only: why the runtime will not use it, or NULL */
        char *content;           /* hosts.toml only: what to write */
        size_t content_size;
        char content_sha[65];
        bool noreplace; /* hosts.toml only: there was none; never replace one that appeared since */
        FileId id;      /* unchanged only: the file read and found current, when old enough to trust */
        bool reused;    /* unchanged, taken over from the previous plan: the manifest already says so */
        int error;      /* set by apply: 0 or negative errno */
} PlanAction;

typedef struct Plan {
        /* How many (target, registry) actions were taken over from the
         * previous plan, unread. */
        size_t n_reused;
        struct timespec now; /* when the plan was computed (CLOCK_REALTIME): how old a file is */
        PlanAction *actions;
        size_t n_actions, n_allocated;
} Plan;

/* What a plan concluded for each wanted (target, registry), in its order,
 * kept for the next plan to take over (PlanOptions.previous): a tenth of
 * the plan's size. */
typedef struct PlanMemoEntry {
        const Target *target;
        char *registry;
        char *shadowed;  /* the ca.crt action's */
        bool done;       /* each of its actions succeeded: written, or found current */
        bool has_hosts;  /* with a hosts.toml action (containerd) */
        FileId ca_id, hosts_id;
} PlanMemoEntry;

typedef struct PlanMemo {
        PlanMemoEntry *entries;
        size_t n;
} PlanMemo;

/* The memo of an applied plan; the strings it keeps move out of p, which
 * is then only good for plan_free(). */
int plan_memo_new(Plan *p, PlanMemo **ret);
PlanMemo *plan_memo_free(PlanMemo *m);

/* After events inside these registries' own directories (the agent's own
 * writes, mostly): is each of their files, read and hashed, what memo
 * concluded, as m records it, with t's CAs? Then a plan would conclude
 * nothing else: 1. 0 when something differs or was not done; -ENOMEM. An
 * event in a target directory itself (a name created or gone) can change
 * what containerd reads first: that is for a plan, not for this. */
int plan_memo_confirms(int rootfd, const PlanMemo *memo, const TrustSet *t, const Manifest *m, const PlanOptions *o,
                       char *const *registries, size_t n);

const char *action_type_to_string(ActionType t);

/* Compute the plan for the enabled targets below rootfd. */
int plan_compute(int rootfd, const TrustSet *t, const Manifest *m, const PlanOptions *o, Plan **ret);

Plan *plan_free(Plan *p);
static inline void plan_freep(Plan **p) {
        if (*p)
                plan_free(*p);
}

/* How many actions of type t. */
size_t plan_count(const Plan *p, ActionType t);
/* true when the plan writes or removes anything. */
bool plan_changes(const Plan *p);

/* Print the plan (and the trust set's refusals) one line per action, as
 * --dry-run shows it; root is the --root prefix for the paths shown. */
void plan_print(FILE *f, const Plan *p, const TrustSet *t, const char *root);
