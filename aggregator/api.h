/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The fleet as JSON, for GET /api/v1/nodes and GET /api/v1/summary. Times
 * are unix seconds; hashes are the agents' sha256 hex; nothing secret ever
 * reaches a report, so nothing secret can leave here.
 */

#include <stdint.h>

#include "fleet.h"

/* Certificates listed in the summary expire within this many days. */
#define API_EXPIRING_DAYS 30
/* At most this many of them are listed (the soonest); the total is given. */
#define API_MAX_EXPIRING 500U

/* {"total": N, "nodes": [...]} needing attention first; state < 0 lists
 * every state, else only that NodeState; limit > 0 lists at most that many
 * (total still counts them all), so the page stays cheap on a big fleet.
 * *ret is a NUL-terminated string to free. */
int api_nodes_json(const Fleet *f, uint64_t now, int state, size_t limit, char **ret);

/* One node's object, with "registry_details" (every registry kept of it);
 * -ENOENT when there is no such node. */
int api_node_json(Fleet *f, uint64_t now, const char *name, char **ret);

/* Counts by state, the runtime-trust warnings and nodes by target state,
 * the current hash, the soonest expiry, and the certificates expiring
 * within API_EXPIRING_DAYS. */
int api_summary_json(const Fleet *f, uint64_t now, char **ret);

/* The fleet by registry (fleet-registries.h), for GET /api/v1/registries. */
int api_registries_json(const Fleet *f, uint64_t now, char **ret);

/* The current rollout and the last ones (fleet-rollout.h), for
 * GET /api/v1/rollout. */
int api_rollout_json(const Fleet *f, uint64_t now, char **ret);
