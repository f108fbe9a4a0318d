/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The pull-secret ledger: which registries nodetrustd put in each target
 * file, and the sha256 of the file it wrote, kept in
 * <state-dir>/pullsecret.json (mode 0600, in the 0700 state directory):
 *
 *   {"version": 1, "targets": {"/var/lib/kubelet/config.json":
 *       {"registries": ["quay.io", ...], "sha256": "..."}}}
 *
 * merge needs it to tell the registries it added from node-local ones. It
 * never holds a credential.
 */

#include <jansson.h>
#include <stdbool.h>

#define PULL_SECRET_STATE_FILE "pullsecret.json"

/* An empty ledger. */
int pull_secret_ledger_new(json_t **ret);

/* Load the ledger from <state_dir> below rootfd. A missing file is an empty
 * ledger; one that is not JSON with a "targets" object is -EBADMSG (the
 * caller decides). A target that is not an absolute path or whose fields
 * have the wrong type, and a registry the secret's checks refuse, is
 * dropped with a warning naming it. */
int pull_secret_ledger_load(int rootfd, const char *state_dir, json_t **ret);

/* The registries recorded for path (strv; NULL when none). */
int pull_secret_ledger_registries(const json_t *ledger, const char *path, char ***ret);

/* The sha256 recorded for path, "" when none. */
const char *pull_secret_ledger_sha256(const json_t *ledger, const char *path);

/* Record registries (and the file's sha256) for path; sets *ret_changed when
 * that differs from what was recorded (and leaves it alone otherwise). */
int pull_secret_ledger_set(json_t *ledger, const char *path, char *const *registries, const char *sha256,
                           bool *ret_changed);

/* Save atomically, creating the state directory 0700 (parents 0755). */
int pull_secret_ledger_save(int rootfd, const char *state_dir, const json_t *ledger);
