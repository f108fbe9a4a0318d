/* SPDX-License-Identifier: MIT */
/*
 * fleet_registries(): every node's registry list (kept sorted by name by the
 * parser) turned around into one entry per registry. All the nodes' entries
 * are sorted by (name, node) once, then each run of one name is one
 * registry; the temporary array is a pointer and an index per kept entry,
 * a small fraction of what the reports themselves hold.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fleet-registries.h"

static const char *const attention_names[_ATTENTION_MAX] = {
        [ATTENTION_MISMATCH] = "mismatch",
        [ATTENTION_FAILED] = "failed",
        [ATTENTION_CONFLICT] = "conflict",
        [ATTENTION_SHADOWED] = "shadowed",
        [ATTENTION_LACKING] = "lacking",
};

const char *registry_attention_to_string(RegistryAttention a) {
        return a >= 0 && a < _ATTENTION_MAX ? attention_names[a] : NULL;
}

typedef struct EntryRef {
        const RegistryEntry *entry;
        size_t node;                  /* index in the fleet, which is name order */
} EntryRef;

static int entry_ref_cmp(const void *a, const void *b) {
        const EntryRef *x = a, *y = b;
        int c = strcmp(x->entry->name, y->entry->name);

        if (c)
                return c;
        return x->node < y->node ? -1 : x->node > y->node;
}

static int fingerprint_cmp(const void *a, const void *b) {
        const char *const *x = a, *const *y = b;

        return strcmp(*x, *y);
}

static int fingerprint_count_cmp(const void *a, const void *b) {
        const RegistryFingerprint *x = a, *y = b;

        if (x->nodes != y->nodes)
                return x->nodes > y->nodes ? -1 : 1;
        return strcmp(x->fingerprint, y->fingerprint);
}

/* Why a node listing the registry needs attention; _ATTENTION_MAX when not. */
static RegistryAttention entry_attention(const RegistryEntry *e) {
        if (e->verification == VERIFICATION_MISMATCH)
                return ATTENTION_MISMATCH;
        switch (e->state) {
        case REGISTRY_FAILED:
                return ATTENTION_FAILED;
        case REGISTRY_CONFLICT:
                return ATTENTION_CONFLICT;
        case REGISTRY_SHADOWED:
                return ATTENTION_SHADOWED;
        default:
                return _ATTENTION_MAX;
        }
}

static void min_time(bool *has, int64_t *soonest, bool given, int64_t t) {
        if (given && (!*has || t < *soonest)) {
                *has = true;
                *soonest = t;
        }
}

/* The distinct fingerprints of refs[0..n), the most held first. fps and
 * counts are scratch space of n each. */
static void count_fingerprints(FleetRegistry *reg, const EntryRef *refs, size_t n, const char **fps,
                               RegistryFingerprint *counts) {
        size_t n_fps = 0, n_counts = 0;

        for (size_t i = 0; i < n; i++)
                if (refs[i].entry->fingerprint[0])
                        fps[n_fps++] = refs[i].entry->fingerprint;
        qsort(fps, n_fps, sizeof *fps, fingerprint_cmp);
        for (size_t i = 0; i < n_fps; i++) {
                if (n_counts > 0 && streq(counts[n_counts - 1].fingerprint, fps[i]))
                        counts[n_counts - 1].nodes++;
                else
                        counts[n_counts++] = (RegistryFingerprint){ fps[i], 1 };
        }
        qsort(counts, n_counts, sizeof *counts, fingerprint_count_cmp);
        reg->fingerprints_total = n_counts;
        reg->n_fingerprints = n_counts < FLEET_REGISTRY_MAX_FINGERPRINTS ? n_counts : FLEET_REGISTRY_MAX_FINGERPRINTS;
        memcpy(reg->fingerprints, counts, reg->n_fingerprints * sizeof *counts);
}

/* One registry from the run refs[0..n) of its name. */
static void summarize_registry(const Fleet *f, FleetRegistry *reg, const EntryRef *refs, size_t n,
                               const bool *counted, size_t n_complete, const char **fps,
                               RegistryFingerprint *counts) {
        size_t listed_complete = 0, k = 0;

        *reg = (FleetRegistry){ .name = refs[0].entry->name, .nodes = n };
        for (size_t i = 0; i < n; i++) {
                const RegistryEntry *e = refs[i].entry;

                reg->states[e->state]++;
                reg->verification[e->verification]++;
                min_time(&reg->has_soonest_not_after, &reg->soonest_not_after, e->has_not_after, e->not_after);
                min_time(&reg->has_soonest_server_not_after, &reg->soonest_server_not_after,
                         e->has_server_not_after, e->server_not_after);
                if (entry_attention(e) != _ATTENTION_MAX)
                        reg->attention_total++;
                if (!f->nodes[refs[i].node]->report->entries_truncated)
                        listed_complete++;
        }
        reg->lacking = n_complete - listed_complete;
        reg->attention_total += reg->lacking;
        count_fingerprints(reg, refs, n, fps, counts);

        /* The first nodes needing attention in name order: the run is in
         * node order, so walk the nodes and the run side by side. */
        for (size_t j = 0; j < f->n_nodes && reg->n_attention < FLEET_REGISTRY_MAX_ATTENTION &&
                           reg->n_attention < reg->attention_total; j++) {
                RegistryAttention why = _ATTENTION_MAX;

                if (k < n && refs[k].node == j)
                        why = entry_attention(refs[k++].entry);
                else if (counted[j] && !f->nodes[j]->report->entries_truncated)
                        why = ATTENTION_LACKING;
                if (why != _ATTENTION_MAX)
                        reg->attention[reg->n_attention++] =
                                (RegistryAttentionNode){ f->nodes[j]->report->node, why };
        }
}

FleetRegistries *fleet_registries_free(FleetRegistries *r) {
        if (r) {
                free(r->registries);
                free(r);
        }
        return NULL;
}

int fleet_registries(const Fleet *f, uint64_t now, FleetRegistries **ret) {
        _cleanup_(fleet_registries_freep) FleetRegistries *out = NULL;
        _cleanup_free_ RegistryFingerprint *counts = NULL;
        _cleanup_free_ EntryRef *refs = NULL;
        _cleanup_free_ const char **fps = NULL;
        _cleanup_free_ bool *counted = NULL;
        size_t n_refs = 0, n_complete = 0, n_names = 0;

        assert(f);
        assert(ret);

        out = calloc(1, sizeof *out);
        counted = calloc(f->n_nodes ? f->n_nodes : 1, sizeof *counted);
        if (!out || !counted)
                return -ENOMEM;
        for (size_t i = 0; i < f->n_nodes; i++) {
                const Report *r = f->nodes[i]->report;

                if (fleet_node_state(f, f->nodes[i], now) == NODE_STALE)
                        continue;
                counted[i] = true;
                out->nodes++;
                if (r->entries_truncated)
                        out->nodes_truncated++;
                else
                        n_complete++;
                n_refs += r->n_entries;
        }

        refs = calloc(n_refs ? n_refs : 1, sizeof *refs);
        fps = calloc(n_refs ? n_refs : 1, sizeof *fps);
        counts = calloc(n_refs ? n_refs : 1, sizeof *counts);
        if (!refs || !fps || !counts)
                return -ENOMEM;
        n_refs = 0;
        for (size_t i = 0; i < f->n_nodes; i++) {
                const Report *r = f->nodes[i]->report;

                if (!counted[i])
                        continue;
                for (size_t j = 0; j < r->n_entries; j++)
                        refs[n_refs++] = (EntryRef){ &r->entries[j], i };
        }
        qsort(refs, n_refs, sizeof *refs, entry_ref_cmp);

        for (size_t i = 0; i < n_refs; i++)
                if (i == 0 || !streq(refs[i - 1].entry->name, refs[i].entry->name))
                        n_names++;
        if (n_names > FLEET_MAX_REGISTRIES)
                n_names = FLEET_MAX_REGISTRIES;
        out->registries = calloc(n_names ? n_names : 1, sizeof *out->registries);
        if (!out->registries)
                return -ENOMEM;

        for (size_t i = 0, end; i < n_refs; i = end) {
                for (end = i + 1; end < n_refs && streq(refs[end].entry->name, refs[i].entry->name); end++)
                        ;
                if (out->n_registries >= FLEET_MAX_REGISTRIES) {
                        out->registries_omitted++;
                        continue;
                }
                summarize_registry(f, &out->registries[out->n_registries++], refs + i, end - i, counted,
                                   n_complete, fps, counts);
        }
        *ret = TAKE_PTR(out);
        return 0;
}
