/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The pull-secret settings, parsed once: config.c fills a PullSecretOptions
 * while it reads --pull-secret-target, --pull-secret-policy and
 * --pull-secret-owner (and their config file keys), so a bad value stops
 * start-up and every sync plans with the parsed struct. This header needs
 * nothing from config.h, so the pull-secret modules do not include it.
 */

#include <stdbool.h>
#include <sys/types.h>

/* What a target file becomes; the policies are described in pullsecret.h. */
typedef enum PullSecretPolicy {
        PULL_SECRET_REPLACE,
        PULL_SECRET_MERGE,
} PullSecretPolicy;

typedef struct PullSecretOptions {
        char **paths; /* strv: the pull credentials files, absolute, without --root */
        PullSecretPolicy policy;
        uid_t uid; /* owner of the files written */
        gid_t gid; /* (gid_t) -1: the writer's group, as chown does */
        bool enabled; /* the source carries a pull secret (--pull-secret, or the Kubernetes API) */
} PullSecretOptions;

/* Parse "replace"/"merge"; -EINVAL otherwise. */
int pull_secret_policy_from_string(const char *s, PullSecretPolicy *ret);

/* "replace" or "merge", the words the flag takes and log lines say. */
const char *pull_secret_policy_to_string(PullSecretPolicy p);

/* Parse "UID" or "UID:GID" (numeric; GID omitted keeps the writer's group,
 * as chown does). Either out-param may be NULL (validation only). */
int pull_secret_owner_parse(const char *s, uid_t *ret_uid, gid_t *ret_gid);
