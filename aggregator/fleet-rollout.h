/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The rollout picture: each time the fleet's current hash changes (see
 * fleet.h), a rollout starts, and every node is counted once, when it first
 * reports that hash as applied. The current rollout and the last
 * ROLLOUT_HISTORY ones are kept, each with a series of (time, nodes
 * converged so far) points: one per converging node up to
 * ROLLOUT_MAX_POINTS, then thinned to every other point (the latest always
 * kept) to make room, so the series keeps its shape with fixed memory.
 * Plain structs, times in unix microseconds passed in.
 */

#include <stddef.h>
#include <stdint.h>

#define ROLLOUT_MAX_POINTS 256U
#define ROLLOUT_HISTORY 2U

typedef struct RolloutPoint {
        uint64_t at;
        size_t converged;             /* nodes converged by then */
} RolloutPoint;

typedef struct Rollout {
        uint64_t id;                  /* 0: no rollout */
        char hash[65];
        uint64_t first_seen;          /* when the aggregator first saw the hash */
        uint64_t started;             /* when it became current */
        uint64_t ended;               /* when another became current; 0 while current */
        size_t nodes_at_end;          /* nodes in the fleet then */
        size_t converged;             /* nodes that reported it applied since it started */
        RolloutPoint points[ROLLOUT_MAX_POINTS]; /* oldest first */
        size_t n_points;
} Rollout;

typedef struct Rollouts {
        Rollout current;
        Rollout previous[ROLLOUT_HISTORY]; /* the newest first */
        size_t n_previous;
        uint64_t last_id;
} Rollouts;

/* hash became current at now (first seen at first_seen): the current
 * rollout, if any, ends with n_nodes in the fleet and moves to the history. */
void rollouts_start(Rollouts *r, const char *hash, uint64_t first_seen, uint64_t now, size_t n_nodes);

/* One more node converged on rollout r at now. The caller counts each node
 * once per rollout (by remembering r->id). */
void rollout_record(Rollout *r, uint64_t now);
