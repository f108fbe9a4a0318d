/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The fleet as JSON, for GET /api/v1/nodes and GET /api/v1/summary. Times
 * are unix seconds; hashes are the agents' sha256 hex; nothing secret ever
 * reaches a report, so nothing secret can leave here.
 */

#include <stdint.h>

#include "continue-token.h"
#include "fleet.h"

/* Certificates listed in the summary expire within this many days. */
#define API_EXPIRING_DAYS 30
/* At most this many of them are listed (the soonest); the total is given. */
#define API_MAX_EXPIRING 500U

/* GET /api/v1/nodes is paged as the Kubernetes API pages lists: ?limit=N
 * nodes at most (API_NODES_DEFAULT_LIMIT when not given), and
 * metadata.continue to ask for the next page. A node of 20 registries is
 * about 2 KB of JSON: the largest page is about 2 MB and takes ~40 ms to
 * render on the loop (no report is taken meanwhile), where the whole list
 * of 10,000 nodes was 20 MB and ~700 ms. A node's lists are bounded by
 * what ingest keeps (16 errors, 32 certificates, 8 targets), so a page of
 * nodes that fill them all is bounded too, at several times that. */
#define API_NODES_DEFAULT_LIMIT 500U
#define API_NODES_MAX_LIMIT 1000U

typedef struct NodesQuery {
        int state;                /* only nodes in this NodeState; -1 for every state */
        size_t limit;             /* 1 .. API_NODES_MAX_LIMIT */
        const char *after;        /* from the continue token: list the nodes named after it; NULL from the start */
        const ContinueKey *key;   /* signs the token of the next page */
} NodesQuery;

/* {"nodes": [...], "generated_at", "current_hash", "total": nodes matching
 * now, "metadata": {"limit", "remaining": matching after this page,
 * "continue": token, only when remaining > 0}}; nodes in name order (the
 * only order that pages stably: a node's state changes with time alone).
 * *ret is a NUL-terminated string of *ret_size bytes to free. */
int api_nodes_json(const Fleet *f, uint64_t now, const NodesQuery *q, char **ret, size_t *ret_size);

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
