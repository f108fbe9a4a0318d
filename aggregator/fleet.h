/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The fleet: the latest report of every node, and what follows from them.
 * Plain functions over plain structs; the caller passes the time (unix
 * microseconds) so tests can move it.
 *
 * States, most urgent first as far as an operator is concerned:
 *   failing    the last report has errors, or the agent says it is not ready
 *   stale      no report for more than 3 report intervals (takes precedence:
 *              a silent node's last word may no longer be true)
 *   lagging    applied_hash is not the fleet's current hash
 *   converged  applied the current hash without errors
 *
 * The current hash is the source hash the fleet adopted most recently: a
 * hash becomes current when the aggregator first sees it, or when a node that
 * reported another source hash before switches to it. The second rule
 * repairs the order after an aggregator restart, when old and new hashes
 * arrive in whatever order the nodes happen to report.
 *
 * Warnings are not states: a node with a shadowed registry (a CA written
 * that a runtime will not use) or an inactive target (a runtime installed
 * that will not read what the agent writes) is still converged, lagging,
 * failing or stale as above, and is counted besides.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleet-rollout.h"
#include "ingest.h"
#include "macro.h"

#define FLEET_DEFAULT_MAX_NODES 10000U
/* Source hashes remembered, so an old one coming back is not taken as new. */
#define FLEET_MAX_HASHES 256U
#define FLEET_STALE_INTERVALS 3U
/* Target names counted in a summary; a fleet has a handful (docker,
 * containers, containerd), so more only comes from a misbehaving agent. */
#define FLEET_MAX_TARGET_NAMES 16U

typedef enum NodeState {
        NODE_CONVERGED,
        NODE_LAGGING,
        NODE_FAILING,
        NODE_STALE,
        _NODE_STATE_MAX,
} NodeState;

typedef struct Node {
        Report *report;
        uint64_t last_seen;   /* when the aggregator received it, unix usec */
        uint64_t first_seen;
        uint64_t n_reports;
        uint64_t rollout_id;  /* the rollout this node was counted converged in, 0 for none */
} Node;

typedef struct SeenHash {
        char hash[65];
        uint64_t seq;         /* higher is newer */
        uint64_t first_seen;
} SeenHash;

typedef struct Fleet {
        Node **nodes;          /* sorted by name */
        size_t n_nodes;
        size_t max_nodes;
        unsigned default_interval_seconds;
        SeenHash hashes[FLEET_MAX_HASHES];
        size_t n_hashes;
        uint64_t seq;
        char current_hash[65]; /* "" before the first report */
        uint64_t current_since;
        Rollouts rollouts;     /* when nodes first applied the current hash, and the last ones */
} Fleet;

/* One certificate of one node, for the expiry listing. */
typedef struct ExpiringCert {
        const char *node;
        const char *registry;
        int64_t not_after;
} ExpiringCert;

/* One target's nodes by its state there. */
typedef struct FleetTargetCounts {
        const char *name;             /* borrowed from a report */
        size_t counts[_TARGET_STATE_MAX];
} FleetTargetCounts;

typedef struct FleetSummary {
        size_t counts[_NODE_STATE_MAX];
        size_t total;
        /* The warnings and targets count nodes that are not stale only: a
         * silent node's last word may no longer be true. */
        size_t shadowed;              /* nodes with a shadowed registry */
        size_t inactive_target;       /* nodes with an inactive target */
        FleetTargetCounts targets[FLEET_MAX_TARGET_NAMES]; /* sorted by name */
        size_t n_targets;
        size_t targets_omitted;       /* node targets not counted: names beyond the table */
        bool has_soonest_expiry;
        int64_t soonest_expiry;
        const char *soonest_node;     /* NULL when unknown */
        const char *soonest_registry; /* NULL when the node did not list it */
} FleetSummary;

const char *node_state_to_string(NodeState s);
/* Parse "converged" etc.; -EINVAL for anything else. */
int node_state_from_string(const char *s);

/* A new, empty fleet: max_nodes 0 means FLEET_DEFAULT_MAX_NODES. */
int fleet_new(size_t max_nodes, unsigned default_interval_seconds, Fleet **ret);
Fleet *fleet_free(Fleet *f);
DEFINE_POINTER_CLEANUP(Fleet, fleet_free)

/* Record *report (taking it over, *report becomes NULL) as its node's latest,
 * received at now. -ENOSPC when it is a new node and the fleet is full (the
 * report stays with the caller), -ENOMEM. */
int fleet_update(Fleet *f, Report **report, uint64_t now);

/* The node named name, or NULL. */
Node *fleet_get(Fleet *f, const char *name);

/* The index in f->nodes (sorted by name) of the first node named after
 * name, or 0 for NULL: where a page that continues after name starts,
 * whether or not that node is still there. */
size_t fleet_index_after(const Fleet *f, const char *name);

/* The state of node n at now. */
NodeState fleet_node_state(const Fleet *f, const Node *n, uint64_t now);

/* Forget stale nodes not heard from in forget_usec; returns how many. */
size_t fleet_prune(Fleet *f, uint64_t now, uint64_t forget_usec);

/* Counts by state, the warnings, nodes by target state and the soonest
 * certificate expiry of the fleet. */
void fleet_summarize(const Fleet *f, uint64_t now, FleetSummary *ret);

/* The certificates of every node that expire before `before` (unix
 * seconds), soonest first. Free *ret only. */
int fleet_expiring(const Fleet *f, int64_t before, ExpiringCert **ret, size_t *ret_n);
