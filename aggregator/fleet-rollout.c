/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <string.h>

#include "fleet-rollout.h"

void rollouts_start(Rollouts *r, const char *hash, uint64_t first_seen, uint64_t now, size_t n_nodes) {
        assert(r);
        assert(hash);

        if (r->current.id != 0) {
                r->current.ended = now;
                r->current.nodes_at_end = n_nodes;
                memmove(r->previous + 1, r->previous, (ROLLOUT_HISTORY - 1) * sizeof *r->previous);
                r->previous[0] = r->current;
                if (r->n_previous < ROLLOUT_HISTORY)
                        r->n_previous++;
        }
        r->current = (Rollout){ .id = ++r->last_id, .first_seen = first_seen, .started = now };
        strncpy(r->current.hash, hash, sizeof r->current.hash - 1);
}

void rollout_record(Rollout *r, uint64_t now) {
        assert(r);
        assert(r->id != 0);

        r->converged++;
        if (r->n_points == ROLLOUT_MAX_POINTS) {
                /* Keep every other point, ending with the latest: the series
                 * is a running count, so every kept point stays true. */
                size_t kept = 0;
                for (size_t i = 1; i < r->n_points; i += 2)
                        r->points[kept++] = r->points[i];
                r->n_points = kept;
        }
        r->points[r->n_points++] = (RolloutPoint){ now, r->converged };
}
