/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Effective trust, the runtime half: is each target's runtime on this node,
 * and will it read the directory nodetrustd writes? Read-only, under
 * --root. docker and containers/image (CRI-O, podman, skopeo, buildah) read
 * their certs.d whenever they are installed; containerd reads
 * /etc/containerd/certs.d only when its config.toml names it in the CRI
 * registry's config_path (containerd 2.x defaults it, 1.x does not).
 */

#include <stdbool.h>

#include "target.h"

typedef enum TargetStateType {
        TARGET_STATE_ACTIVE,        /* installed, and reads the directory */
        TARGET_STATE_NOT_INSTALLED, /* nothing of that runtime on the node */
        TARGET_STATE_INACTIVE,      /* installed, but will not read the directory */
        _TARGET_STATE_MAX,
} TargetStateType;

typedef struct TargetStatus {
        bool enabled; /* in --targets; the rest is unset otherwise */
        TargetStateType state;
        char *reason; /* why not active (never NULL then); NULL when active */
        /* containerd: the config_path directories (as containerd sees them)
         * that it searches before ours; a registry found there first is
         * not read from ours. strv, NULL when none. */
        char **read_first;
} TargetStatus;

typedef struct RuntimeStatus {
        TargetStatus targets[N_TARGETS]; /* indexed like targets[] */
} RuntimeStatus;

const char *target_state_to_string(TargetStateType t);

/* Check every target in target_mask below rootfd (--root).
 * containerd_config is the host path of containerd's config.toml. Fails
 * only on allocation failure: an unreadable or malformed file is an
 * inactive target with its reason. */
int runtime_check(int rootfd, const char *containerd_config, unsigned target_mask, RuntimeStatus *ret);

/* true when a and b say the same of one target (enabled, state, reason). */
bool target_status_equal(const TargetStatus *a, const TargetStatus *b);

/* true when a and b say the same (state and reason of each target). */
bool runtime_status_equal(const RuntimeStatus *a, const RuntimeStatus *b);

void runtime_status_done(RuntimeStatus *s);
