/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The runtime targets: the certificate directories, relative to --root,
 * that container runtimes read a registry's CA from. Every per-target
 * array in the agent (RuntimeStatus, RegistryResult.targets) is indexed
 * like targets[].
 */

typedef struct Target {
        const char *name; /* "docker" */
        const char *dir;  /* "etc/docker/certs.d", relative to --root */
        unsigned bit;
} Target;

enum {
        TARGET_DOCKER = 1u << 0,
        TARGET_CONTAINERS = 1u << 1,
        TARGET_CONTAINERD = 1u << 2,
        TARGET_ALL = TARGET_DOCKER | TARGET_CONTAINERS | TARGET_CONTAINERD,
};

#define N_TARGETS 3

extern const Target targets[N_TARGETS];

/* The target called name, or NULL. */
const Target *target_by_name(const char *name);

/* Parse "docker,containers" into a bit mask; -EINVAL names the bad item. */
int targets_parse(const char *list, unsigned *ret, const char **ret_bad);
