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
#include "random.h"

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

/* The distinct registry names of the fleet, each with its entries. */
typedef struct NameSlot {
        const char *name;
        size_t count, offset;
} NameSlot;

/* A word at a time (a byte at a time, the hash was most of a request's
 * time), seeded per process so a fleet's names cannot be chosen to
 * collide in every aggregator alike. */
static uint64_t name_hash(const char *s) {
        static uint64_t seed;
        const uint64_t k = UINT64_C(0x9e3779b97f4a7c15);
        size_t n = strlen(s);
        uint64_t h, w;

        if (!seed)
                seed = random_u64() | 1;
        h = seed ^ (n * k);
        for (; n >= 8; n -= 8, s += 8) {
                memcpy(&w, s, 8);
                h = (h ^ w) * k;
                h ^= h >> 29;
        }
        w = 0;
        memcpy(&w, s, n);
        h = (h ^ w) * k;
        return h ^ (h >> 32);
}

/* The names seen so far, and an open-addressing table of them (slot index
 * + 1, 0 for empty) that doubles when half full. */
typedef struct NameTable {
        NameSlot *slots;
        size_t n_slots, alloc_slots;
        uint32_t *table;
        size_t cap;
        uint32_t last;        /* the slot found last + 1: runs of one name skip the hash */
} NameTable;

static int name_table_grow(NameTable *t) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        uint32_t *table = calloc(cap, sizeof *table);

        if (!table)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_slots; i++) {
                size_t h = (size_t) name_hash(t->slots[i].name) & (cap - 1);
                while (table[h])
                        h = (h + 1) & (cap - 1);
                table[h] = (uint32_t) (i + 1);
        }
        free(t->table);
        t->table = table;
        t->cap = cap;
        return 0;
}

/* The slot of name, added when new; -ENOMEM. */
static int name_table_slot(NameTable *t, const char *name, uint32_t *ret) {
        size_t h;

        if (t->last && streq(t->slots[t->last - 1].name, name)) {
                *ret = t->last - 1;
                t->slots[*ret].count++;
                return 0;
        }
        if (2 * (t->n_slots + 1) > t->cap && name_table_grow(t) < 0)
                return -ENOMEM;
        h = (size_t) name_hash(name) & (t->cap - 1);
        while (t->table[h] && !streq(t->slots[t->table[h] - 1].name, name))
                h = (h + 1) & (t->cap - 1);
        if (!t->table[h]) {
                if (greedy_realloc((void **) &t->slots, &t->alloc_slots, t->n_slots + 1, 16, sizeof *t->slots) < 0)
                        return -ENOMEM;
                t->slots[t->n_slots] = (NameSlot){ .name = name };
                t->table[h] = (uint32_t) ++t->n_slots;
        }
        *ret = t->table[h] - 1;
        t->last = *ret + 1;
        t->slots[*ret].count++;
        return 0;
}

static void name_table_done(NameTable *t) {
        free(t->slots);
        free(t->table);
}

static int slot_name_cmp(const void *a, const void *b) {
        const NameSlot *const *x = a, *const *y = b;

        return strcmp((*x)->name, (*y)->name);
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

/* The distinct fingerprints of refs[0..n), the most held first. counts is
 * scratch space of n. Counted in a hash table, not by sorting all n
 * (fingerprints are 64 hex digits, mostly equal: a sort compared them
 * whole, O(n log n) times per registry). */
static int count_fingerprints(FleetRegistry *reg, const EntryRef *refs, size_t n, RegistryFingerprint *counts) {
        _cleanup_(name_table_done) NameTable fps = {};
        uint32_t slot;

        for (size_t i = 0; i < n; i++)
                if (refs[i].entry->fingerprint[0] &&
                    name_table_slot(&fps, refs[i].entry->fingerprint, &slot) < 0)
                        return -ENOMEM;
        for (size_t i = 0; i < fps.n_slots; i++)
                counts[i] = (RegistryFingerprint){ fps.slots[i].name, fps.slots[i].count };
        qsort(counts, fps.n_slots, sizeof *counts, fingerprint_count_cmp);
        reg->fingerprints_total = fps.n_slots;
        reg->n_fingerprints = fps.n_slots < FLEET_REGISTRY_MAX_FINGERPRINTS ? fps.n_slots
                                                                             : FLEET_REGISTRY_MAX_FINGERPRINTS;
        memcpy(reg->fingerprints, counts, reg->n_fingerprints * sizeof *counts);
        return 0;
}

/* One registry from the run refs[0..n) of its name. */
static int summarize_registry(const Fleet *f, FleetRegistry *reg, const EntryRef *refs, size_t n,
                              const bool *counted, size_t n_complete, RegistryFingerprint *counts) {
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
        if (count_fingerprints(reg, refs, n, counts) < 0)
                return -ENOMEM;

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
        return 0;
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
        _cleanup_free_ bool *counted = NULL;
        _cleanup_free_ uint32_t *slot_of = NULL;
        _cleanup_(name_table_done) NameTable names = {};
        _cleanup_free_ NameSlot **sorted = NULL;
        NameSlot *slots;
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

        /* Every entry of the counted nodes, grouped by registry name (names
         * in order), in node order within a name. A sort of all entries by
         * (name, node) did that in O(R log R) string compares of names that
         * are mostly equal (200,000 entries at 10,000 nodes of 20
         * registries: ~150 ms per request); here each entry is hashed once
         * into its name's slot, only the distinct names are sorted, and the
         * entries are placed by counting. */
        refs = calloc(n_refs ? n_refs : 1, sizeof *refs);
        counts = calloc(n_refs ? n_refs : 1, sizeof *counts);
        slot_of = calloc(n_refs ? n_refs : 1, sizeof *slot_of);
        if (!refs || !counts || !slot_of)
                return -ENOMEM;
        for (size_t i = 0, k = 0; i < f->n_nodes; i++) {
                const Report *r = f->nodes[i]->report;

                if (!counted[i])
                        continue;
                for (size_t j = 0; j < r->n_entries; j++, k++)
                        if (name_table_slot(&names, r->entries[j].name, &slot_of[k]) < 0)
                                return -ENOMEM;
        }
        slots = names.slots;
        n_names = names.n_slots;
        sorted = calloc(n_names ? n_names : 1, sizeof *sorted);
        if (!sorted)
                return -ENOMEM;
        for (size_t i = 0; i < n_names; i++)
                sorted[i] = &slots[i];
        qsort(sorted, n_names, sizeof *sorted, slot_name_cmp);
        for (size_t i = 0, offset = 0; i < n_names; i++) {
                sorted[i]->offset = offset;
                offset += sorted[i]->count;
        }
        for (size_t i = 0, k = 0; i < f->n_nodes; i++) {
                const Report *r = f->nodes[i]->report;

                if (!counted[i])
                        continue;
                for (size_t j = 0; j < r->n_entries; j++, k++)
                        refs[slots[slot_of[k]].offset++] = (EntryRef){ &r->entries[j], i };
        }

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
                if (summarize_registry(f, &out->registries[out->n_registries++], refs + i, end - i, counted,
                                       n_complete, counts) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(out);
        return 0;
}
