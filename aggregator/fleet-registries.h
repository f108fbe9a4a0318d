/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The fleet by registry: for each registry name any node lists, how many
 * nodes hold it in which state, what their agents' TLS checks said, which
 * bundles (fingerprints) are out there, the soonest expiries, and the nodes
 * that need attention for it. Computed from the nodes' reports when asked,
 * over the nodes that are not stale (a silent node's last word may no longer
 * be true), as the fleet summary's warnings are.
 *
 * A node "lacks" a registry when it reports, is not stale, and does not list
 * the registry while another node does. A node whose list was cut at
 * REPORT_MAX_REGISTRIES is never counted as lacking: what it left out is
 * unknown.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleet.h"

/* Registries in one answer: the agent reads at most 4096 keys of a config
 * map, so a fleet on one config map has no more. Beyond it (nodes on
 * different maps, or made-up names) the first by name are kept and the rest
 * counted; this also bounds the metrics' registry label. */
#define FLEET_MAX_REGISTRIES 4096U
/* Fingerprints listed per registry, the most held first; the rest counted. */
#define FLEET_REGISTRY_MAX_FINGERPRINTS 8U
/* Nodes needing attention listed per registry, in name order; all counted. */
#define FLEET_REGISTRY_MAX_ATTENTION 20U

/* Why a node needs attention for a registry, most urgent first. */
typedef enum RegistryAttention {
        ATTENTION_MISMATCH,   /* the registry's server is not trusted with the bundle written */
        ATTENTION_FAILED,
        ATTENTION_CONFLICT,
        ATTENTION_SHADOWED,
        ATTENTION_LACKING,
        _ATTENTION_MAX,
} RegistryAttention;

typedef struct RegistryFingerprint {
        const char *fingerprint;      /* borrowed from a report */
        size_t nodes;
} RegistryFingerprint;

typedef struct RegistryAttentionNode {
        const char *node;             /* borrowed from a report */
        RegistryAttention why;
} RegistryAttentionNode;

typedef struct FleetRegistry {
        const char *name;             /* borrowed from a report */
        size_t nodes;                 /* nodes that list it */
        size_t states[_REGISTRY_STATE_MAX];
        size_t verification[_VERIFICATION_STATE_MAX];
        size_t lacking;
        RegistryFingerprint fingerprints[FLEET_REGISTRY_MAX_FINGERPRINTS];
        size_t n_fingerprints;
        size_t fingerprints_total;    /* distinct fingerprints */
        bool has_soonest_not_after;
        bool has_soonest_server_not_after;
        int64_t soonest_not_after;
        int64_t soonest_server_not_after;
        RegistryAttentionNode attention[FLEET_REGISTRY_MAX_ATTENTION];
        size_t n_attention;
        size_t attention_total;
} FleetRegistry;

typedef struct FleetRegistries {
        FleetRegistry *registries;    /* sorted by name */
        size_t n_registries;
        size_t registries_omitted;    /* names beyond FLEET_MAX_REGISTRIES */
        size_t nodes;                 /* nodes counted: those not stale */
        size_t nodes_truncated;       /* of them, with a list cut short */
} FleetRegistries;

const char *registry_attention_to_string(RegistryAttention a);

/* The fleet by registry at now. Everything borrowed from f stays valid
 * until f changes; free with fleet_registries_free(). */
int fleet_registries(const Fleet *f, uint64_t now, FleetRegistries **ret);
FleetRegistries *fleet_registries_free(FleetRegistries *r);
DEFINE_POINTER_CLEANUP(FleetRegistries, fleet_registries_free)
