/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The node condition RegistryTrustReady, node-problem-detector's way of
 * telling the cluster about a node: what it says, computed from the State
 * alone (node_condition_compute()), and the JSON documents the client
 * (node-status.c) sends: the strategic merge patch of the node's status,
 * the core/v1 Event for a change, and what it reads back from the node.
 * Everything here is pure, so tests build States by hand.
 */

#include <jansson.h>
#include <stdbool.h>
#include <time.h>

#include "state.h"

#define NODE_CONDITION_TYPE "RegistryTrustReady"
#define NODE_REASON_TRUSTED "RegistriesTrusted"
#define NODE_REASON_NOT_TRUSTED "RegistryNotTrusted"
#define NODE_REASON_MISMATCH "RegistryMismatch"
#define NODE_REASON_SYNC_FAILED "SyncFailed"
/* The message names at most this many registries, then "and N more". */
#define NODE_CONDITION_MAX_NAMED 5

typedef enum NodeConditionStatus {
        NODE_CONDITION_UNKNOWN, /* no sync yet: nothing to say */
        NODE_CONDITION_TRUE,
        NODE_CONDITION_FALSE,
        _NODE_CONDITION_STATUS_MAX,
} NodeConditionStatus;

typedef struct NodeCondition {
        NodeConditionStatus status;
        char *reason;  /* CamelCase, one of NODE_REASON_* (or what the node had) */
        char *message; /* one printable line, bounded */
} NodeCondition;

/* "True", "False", "Unknown": the API's words. */
const char *node_condition_status_to_string(NodeConditionStatus s);
/* The inverse; UNKNOWN for anything else. */
NodeConditionStatus node_condition_status_from_string(const char *s);

/* What the condition says about s:
 *   False/SyncFailed when the last sync failed;
 *   False/RegistryNotTrusted when a registry is failed, conflicting,
 *     shadowed or refused (a mismatch besides is named too);
 *   False/RegistryMismatch when the only problem is that a registry's
 *     server does not verify with the bundle written;
 *   True/RegistriesTrusted otherwise. An unreachable registry is not a
 *     trust problem: it is named in the message, the status stays True.
 * Unknown before the first sync. The message names the registries. */
int node_condition_compute(const State *s, NodeCondition *ret);

/* Same status, reason and message. */
bool node_condition_equal(const NodeCondition *a, const NodeCondition *b);
int node_condition_copy(NodeCondition *dst, const NodeCondition *src);
void node_condition_done(NodeCondition *c);

/* RFC 3339 UTC, as the API writes times: "2026-01-02T15:04:05Z". */
int node_time_format(time_t t, char buf[static 21]);
/* The inverse (0 when s is not one). */
time_t node_time_parse(const char *s);

/* {"status":{"conditions":[{type, status, reason, message,
 * lastHeartbeatTime, lastTransitionTime}]}}: a strategic merge patch
 * merges conditions by type, so the node's others stay as they are. */
json_t *node_condition_patch_json(const NodeCondition *c, time_t heartbeat, time_t transition);

/* A core/v1 Event in namespace "default" about node (uid may be NULL),
 * for a condition that changed to c at now: Normal when True, else
 * Warning. name_suffix makes the event's name unique (client-go's
 * NODE.<hex nanoseconds>). */
json_t *node_event_json(const char *node, const char *uid, const NodeCondition *c, time_t now,
                        unsigned long long name_suffix);

/* From a Node object (a PATCH answer): its uid (NULL when absent) and the
 * RegistryTrustReady condition it holds (status UNKNOWN, NULL strings and
 * transition 0 when it has none). -EBADMSG when body is not a Node. */
int node_parse(const char *body, size_t size, char **ret_uid, NodeCondition *ret_condition,
               time_t *ret_transition);
