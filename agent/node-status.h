/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The node-status client: keeps the RegistryTrustReady condition on this
 * node's status current (node-condition.h says what it says) and records a
 * core/v1 Event when its status or reason changes, the way
 * node-problem-detector does, so `kubectl describe node` shows it.
 *
 * libcurl multi on the agent's loop, one request in flight at most:
 *   - first a PATCH of "{}" to nodes/NAME/status, which changes nothing
 *     and answers with the node: its uid, and the condition a previous
 *     run left there, so a restart keeps lastTransitionTime and sends no
 *     event for a condition the node already shows;
 *   - a strategic merge patch of the condition soon after it changes and
 *     every heartbeat interval (lastHeartbeatTime), exponential backoff
 *     with jitter while the API fails;
 *   - an Event after a patch that changed the status or the reason,
 *     through a token bucket (NODE_EVENT_BURST, then one per
 *     NODE_EVENT_INTERVAL_USEC) so a flapping node never storms the API.
 *     Events are not retried and the count of an existing one is never
 *     updated: each change is its own event (RBAC: create only).
 * It knows nothing of the manager: it is handed the State after each sync.
 */

#include <stdint.h>
#include <systemd/sd-event.h>

#include "state.h"

#define NODE_EVENT_BURST 5
#define NODE_EVENT_INTERVAL_USEC (60 * USEC_PER_SEC)
#define NODE_STATUS_BACKOFF_MIN_USEC (USEC_PER_SEC)
#define NODE_STATUS_BACKOFF_MAX_USEC (300 * USEC_PER_SEC)

typedef struct NodeStatus NodeStatus;

typedef struct NodeStatusOptions {
        const char *node;       /* the node's name, as the API knows it */
        const char *kubeconfig; /* credentials; NULL: in-cluster */
        unsigned heartbeat_sec;
} NodeStatusOptions;

/* What it has done since start, for logs and tests. */
typedef struct NodeStatusStats {
        uint64_t patches_total, patch_failures_total;
        uint64_t events_total, event_failures_total, events_suppressed_total;
} NodeStatusStats;

/* Load the credentials (logging what is wrong) and prepare to send on
 * event; nothing is sent before the first node_status_update(). */
int node_status_new(sd_event *event, const NodeStatusOptions *o, NodeStatus **ret);
NodeStatus *node_status_free(NodeStatus *n);
static inline void node_status_freep(NodeStatus **n) {
        node_status_free(*n);
}

/* The state after a sync: when the condition it gives differs from the
 * last one sent, patch soon. Nothing is said before the first sync. */
void node_status_update(NodeStatus *n, const State *s);

const NodeStatusStats *node_status_get_stats(const NodeStatus *n);
