/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The pull secret: a .dockerconfigjson from the snapshot, validated and kept
 * as the node's pull credentials file(s) (/var/lib/kubelet/config.json by
 * default). It is a stage of the same flow as the trust half: the manager
 * (manager_sync_pull_secret()) moves plain structs along, and each arrow is
 * one call:
 *
 *   snapshot + PullSecretOptions (parsed once, by config)
 *     -> pull_secret_plan_compute()        validate, read the disk: PullSecretPlan
 *     -> pull_secret_apply()               write: PullSecretResult, per target
 *          (pull_secret_plan_print() instead, for --dry-run)
 *     -> pull_secret_outcome()             status, error, hash to publish
 *     -> state_set_pull_secret()           State.pull_secret_* (state.h)
 *     -> pull_secret_log()                 log lines (repeating ones when the state changed)
 *
 * The plan is not changed by apply: what happened to each target is in the
 * result. pull_secret_plan_log() says, before apply, what the plan found
 * that an operator must hear even if apply fails (a corrupt state file).
 *
 * What each policy does to an existing target file:
 *
 *   replace  The file becomes the secret: every top-level key of the secret,
 *            re-serialized (keys sorted, two-space indent, trailing newline).
 *            Whatever the file held before is gone, even if it was not JSON.
 *   merge    The file is parsed (it must be a JSON object whose "auths", if
 *            any, is an object; otherwise it is left untouched and reported).
 *            In its "auths": every registry of the secret is set to the
 *            secret's entry (the secret wins a conflict); every registry that
 *            nodetrustd put there earlier and the secret no longer has is
 *            removed; every other registry (node-local) is kept as it is.
 *            Every other top-level key of the file ("credHelpers", ...) is
 *            kept; top-level keys of the secret other than "auths" are not
 *            merged. The result is re-serialized like replace, but the file
 *            is written only when its JSON value changes, so an admin's
 *            formatting survives until a credential actually changes.
 *   either   A missing file is created (parents 0755). The file is written
 *            atomically and durably, mode 0600, owner --pull-secret-owner,
 *            and only when it differs (bytes for replace, JSON value for
 *            merge; a wrong mode or owner counts as a difference). A symlink,
 *            a non-regular file, or a symlinked parent directory is refused.
 *            An invalid or absent secret leaves every target as it is.
 *
 * Which registries nodetrustd put in each target is remembered in
 * <state-dir>/pullsecret.json (target path -> registry names + sha256 of the
 * file written); it never holds a credential.
 *
 * The hash published for the secret (State.pull_secret_hash) is keyed with
 * a per-node key in <state-dir>/hash.key, so it cannot be used to test
 * password guesses offline (pullsecret-hash.h).
 *
 * The pieces: pullsecret-validate (parsing a .dockerconfigjson),
 * pullsecret-render (what a target file becomes), pullsecret-ledger (the
 * state file), pullsecret-hash (the published hash and its key),
 * pullsecret-options (the settings and their parsing); pullsecret.c plans,
 * applies and prints, pullsecret-outcome.c turns plan and result into State
 * and log lines. None of them includes config.h.
 *
 * Secrets never leave these modules: reasons, log lines and the dry-run plan
 * name registries and hashes only, and every buffer that held a credential
 * is wiped before it is freed.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "pullsecret-hash.h"
#include "pullsecret-ledger.h"
#include "pullsecret-options.h"
#include "pullsecret-render.h"
#include "pullsecret-validate.h"
#include "snapshot.h"
#include "state.h"

typedef enum PullSecretActionType {
        PULL_SECRET_CREATE,
        PULL_SECRET_UPDATE,
        PULL_SECRET_UNCHANGED,
        PULL_SECRET_CONFLICT, /* the target cannot be written safely; left as it is */
        PULL_SECRET_KEEP,     /* the secret is invalid or absent; left as it is */
        _PULL_SECRET_ACTION_MAX,
} PullSecretActionType;

typedef struct PullSecretTarget {
        char *path; /* as configured: absolute, without --root */
        PullSecretActionType type;
        char *content; /* CREATE/UPDATE: the file to write (wiped on free) */
        size_t size;
        char sha256[65];   /* of content, or of the file when UNCHANGED */
        char **registries; /* strv: registries nodetrustd owns in the file afterwards */
        char **previous;   /* strv: what the state file said it owned before */
        char *reason;      /* CONFLICT: why, secret-free */
} PullSecretTarget;

typedef struct PullSecretPlan {
        PullSecretStatus status; /* (state.h) what the source holds */
        PullSecretPolicy policy;
        uid_t uid;         /* owner of the files written (PullSecretOptions) */
        gid_t gid;
        char *reason;      /* INVALID: why, secret-free */
        char hash[65];     /* VALID: HMAC-SHA256 of the secret, normalized, with hash_key */
        uint8_t hash_key[PULL_SECRET_KEY_SIZE]; /* VALID: the node's hash key (wiped on free) */
        PullSecretKeyOrigin hash_key_origin;    /* NEW/REPLACED: apply saves hash_key */
        char **registries; /* VALID: the secret's registries (strv, sorted) */
        PullSecretTarget *targets;
        size_t n_targets;
        json_t *ledger;    /* the state file's content as read (apply saves an updated copy) */
        bool ledger_corrupt;
} PullSecretPlan;

/* What applying a plan did to one target. */
typedef struct PullSecretTargetResult {
        char *path;                  /* the target's path, as in the plan */
        PullSecretActionType action; /* what the plan said to do */
        int error;                   /* negative errno when the write failed, else 0 */
} PullSecretTargetResult;

typedef struct PullSecretResult {
        PullSecretTargetResult *targets; /* one per plan target, in the plan's order */
        size_t n_targets;
} PullSecretResult;

/* "create", "update", ...: the word the dry-run plan prints. */
const char *pull_secret_action_to_string(PullSecretActionType t);

/* Validate the snapshot's pull secret and decide, per target, what to do.
 * Reads the ledger and the hash key from state_dir; writes nothing. */
int pull_secret_plan_compute(int rootfd, const char *state_dir, const Snapshot *snap, const PullSecretOptions *o,
                             PullSecretPlan **ret);

/* Write what the plan says and record ownership in the state file (and a
 * new hash key in hash.key, first); p is left as it is. *ret says, per
 * target, what was done and whether the write failed. Returns the number of
 * targets that failed, or a negative errno when a state file could not be
 * saved (then there is no result). */
int pull_secret_apply(int rootfd, const char *state_dir, const PullSecretPlan *p, PullSecretResult **ret);

/* One line per target, "ACTION pull-secret ROOT/PATH[: reason]"; never content. */
void pull_secret_plan_print(FILE *f, const PullSecretPlan *p, const char *root);

PullSecretPlan *pull_secret_plan_free(PullSecretPlan *p);
static inline void pull_secret_plan_freep(PullSecretPlan **p) {
        if (*p)
                pull_secret_plan_free(*p);
}

PullSecretResult *pull_secret_result_free(PullSecretResult *res);
static inline void pull_secret_result_freep(PullSecretResult **res) {
        if (*res)
                pull_secret_result_free(*res);
}

/* pullsecret-outcome.c */

/* What the sync of p tells State: *ret_status (VALID only when every target
 * holds the secret), *ret_error (why not, "PATH: reason; ...", secret-free;
 * NULL when nothing is wrong) and *ret_hash (p->hash to publish, or NULL to
 * keep the last one: the hash moves only when every target does, and a plan
 * that was only printed publishes none made with a key it did not save).
 * res is what pull_secret_apply() returned, NULL when the plan was only
 * printed (--dry-run). */
int pull_secret_outcome(const PullSecretPlan *p, const PullSecretResult *res, PullSecretStatus *ret_status,
                        char **ret_error, const char **ret_hash);

/* Before apply: what the plan found that must be said even if apply fails. */
void pull_secret_plan_log(const PullSecretPlan *p, const char *state_dir);

/* After apply: a new hash key, each target's write or conflict, a refusal
 * or an absent secret. changed (from state_set_pull_secret()) says the
 * status or error moved: only then are a conflict and a refusal warnings
 * (debug otherwise) and an absent secret said at all. */
void pull_secret_log(const PullSecretPlan *p, const PullSecretResult *res, const char *state_dir, bool changed);
