/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fleet.h"

static const char *const node_state_names[_NODE_STATE_MAX] = {
        [NODE_CONVERGED] = "converged",
        [NODE_LAGGING] = "lagging",
        [NODE_FAILING] = "failing",
        [NODE_STALE] = "stale",
};

const char *node_state_to_string(NodeState s) {
        return s >= 0 && s < _NODE_STATE_MAX ? node_state_names[s] : NULL;
}

int node_state_from_string(const char *s) {
        for (int i = 0; s && i < _NODE_STATE_MAX; i++)
                if (streq(s, node_state_names[i]))
                        return i;
        return -EINVAL;
}

int fleet_new(size_t max_nodes, unsigned default_interval_seconds, Fleet **ret) {
        Fleet *f;

        assert(ret);

        f = calloc(1, sizeof *f);
        if (!f)
                return -ENOMEM;
        f->max_nodes = max_nodes ? max_nodes : FLEET_DEFAULT_MAX_NODES;
        f->default_interval_seconds = default_interval_seconds ? default_interval_seconds : 30;
        *ret = f;
        return 0;
}

static Node *node_free(Node *n) {
        if (n) {
                report_free(n->report);
                free(n);
        }
        return NULL;
}

Fleet *fleet_free(Fleet *f) {
        if (!f)
                return NULL;
        for (size_t i = 0; i < f->n_nodes; i++)
                node_free(f->nodes[i]);
        free(f->nodes);
        free(f);
        return NULL;
}

/* Binary search: the index of name, or where it would go (*found false). */
static size_t fleet_find(const Fleet *f, const char *name, bool *found) {
        size_t lo = 0, hi = f->n_nodes;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(f->nodes[mid]->report->node, name);
                if (c == 0) {
                        *found = true;
                        return mid;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *found = false;
        return lo;
}

Node *fleet_get(Fleet *f, const char *name) {
        bool found;
        size_t i;

        assert(f);
        assert(name);

        i = fleet_find(f, name, &found);
        return found ? f->nodes[i] : NULL;
}

size_t fleet_index_after(const Fleet *f, const char *name) {
        bool found;
        size_t i;

        assert(f);

        if (!name)
                return 0;
        i = fleet_find(f, name, &found);
        return found ? i + 1 : i;
}

static SeenHash *seen_hash_find(Fleet *f, const char *hash) {
        for (size_t i = 0; i < f->n_hashes; i++)
                if (streq(f->hashes[i].hash, hash))
                        return &f->hashes[i];
        return NULL;
}

/* Remember a hash not seen before; when the table is full, the oldest one
 * that is not current makes room (a fleet goes through far fewer configs
 * than FLEET_MAX_HASHES while one aggregator runs). */
static SeenHash *seen_hash_add(Fleet *f, const char *hash, uint64_t now) {
        SeenHash *h;

        if (f->n_hashes < FLEET_MAX_HASHES)
                h = &f->hashes[f->n_hashes++];
        else {
                h = NULL;
                for (size_t i = 0; i < f->n_hashes; i++) {
                        if (streq(f->hashes[i].hash, f->current_hash))
                                continue;
                        if (!h || f->hashes[i].seq < h->seq)
                                h = &f->hashes[i];
                }
        }
        memcpy(h->hash, hash, 65);
        h->first_seen = now;
        return h;
}

static void adopt_hash(Fleet *f, SeenHash *h, uint64_t now) {
        h->seq = ++f->seq;
        if (!streq(f->current_hash, h->hash)) {
                memcpy(f->current_hash, h->hash, 65);
                f->current_since = now;
                rollouts_start(&f->rollouts, h->hash, h->first_seen, now, f->n_nodes);
        }
}

int fleet_update(Fleet *f, Report **report, uint64_t now) {
        SeenHash *h;
        bool found;
        Report *r;
        Node *n;
        size_t i;

        assert(f);
        assert(report);
        assert(*report);

        r = *report;
        i = fleet_find(f, r->node, &found);
        if (found)
                n = f->nodes[i];
        else {
                if (f->n_nodes >= f->max_nodes)
                        return -ENOSPC;
                if (!f->nodes) {
                        /* Allocated once, at the cap, so inserting never fails half way. */
                        f->nodes = calloc(f->max_nodes, sizeof *f->nodes);
                        if (!f->nodes)
                                return -ENOMEM;
                }
                n = calloc(1, sizeof *n);
                if (!n)
                        return -ENOMEM;
                n->first_seen = now;
                memmove(f->nodes + i + 1, f->nodes + i, (f->n_nodes - i) * sizeof *f->nodes);
                f->nodes[i] = n;
                f->n_nodes++;
        }

        h = seen_hash_find(f, r->source_hash);
        if (!h)
                adopt_hash(f, seen_hash_add(f, r->source_hash, now), now);
        else if (n->report && !streq(n->report->source_hash, r->source_hash))
                adopt_hash(f, h, now);

        report_free(n->report);
        n->report = TAKE_PTR(*report);
        n->last_seen = now;
        n->n_reports++;

        /* Counted once per rollout: when it first says it applied the hash. */
        if (f->rollouts.current.id != 0 && n->rollout_id != f->rollouts.current.id &&
            streq(n->report->applied_hash, f->rollouts.current.hash)) {
                n->rollout_id = f->rollouts.current.id;
                rollout_record(&f->rollouts.current, now);
        }
        return 0;
}

NodeState fleet_node_state(const Fleet *f, const Node *n, uint64_t now) {
        const Report *r;
        uint64_t interval;

        assert(f);
        assert(n);

        r = n->report;
        interval = r->interval_seconds ? r->interval_seconds : f->default_interval_seconds;

        if (now > n->last_seen && now - n->last_seen > FLEET_STALE_INTERVALS * interval * USEC_PER_SEC)
                return NODE_STALE;
        if (r->n_errors > 0 || !r->ready)
                return NODE_FAILING;
        if (!streq(r->applied_hash, f->current_hash))
                return NODE_LAGGING;
        return NODE_CONVERGED;
}

size_t fleet_prune(Fleet *f, uint64_t now, uint64_t forget_usec) {
        size_t kept = 0, n;

        assert(f);

        n = f->n_nodes;
        for (size_t i = 0; i < n; i++) {
                Node *node = f->nodes[i];
                /* Only a node already shown as stale: one with a long report
                 * interval must not vanish between two of its reports. */
                if (now > node->last_seen && now - node->last_seen > forget_usec &&
                    fleet_node_state(f, node, now) == NODE_STALE)
                        node_free(node);
                else
                        f->nodes[kept++] = node;
        }
        f->n_nodes = kept;
        return n - kept;
}

/* The counts of target name in s, added when there is room; NULL when not. */
static FleetTargetCounts *summary_target(FleetSummary *s, const char *name) {
        for (size_t i = 0; i < s->n_targets; i++)
                if (streq(s->targets[i].name, name))
                        return &s->targets[i];
        if (s->n_targets >= FLEET_MAX_TARGET_NAMES)
                return NULL;
        s->targets[s->n_targets] = (FleetTargetCounts){ .name = name };
        return &s->targets[s->n_targets++];
}

static int target_counts_cmp(const void *a, const void *b) {
        const FleetTargetCounts *x = a, *y = b;

        return strcmp(x->name, y->name);
}

/* The warnings and targets of one node that is not stale. */
static void summarize_targets(FleetSummary *s, const Report *r) {
        if (r->registries[REGISTRY_SHADOWED] > 0)
                s->shadowed++;
        if (report_has_inactive_target(r))
                s->inactive_target++;
        for (size_t i = 0; i < r->n_targets; i++) {
                FleetTargetCounts *t = summary_target(s, r->targets[i].name);
                if (t)
                        t->counts[r->targets[i].state]++;
                else
                        s->targets_omitted++;
        }
}

void fleet_summarize(const Fleet *f, uint64_t now, FleetSummary *ret) {
        FleetSummary s = {};

        assert(f);
        assert(ret);

        for (size_t i = 0; i < f->n_nodes; i++) {
                const Node *n = f->nodes[i];
                const Report *r = n->report;
                NodeState state = fleet_node_state(f, n, now);

                s.counts[state]++;
                s.total++;
                if (state != NODE_STALE)
                        summarize_targets(&s, r);
                if (!r->has_soonest_expiry)
                        continue;
                if (s.has_soonest_expiry && r->soonest_expiry >= s.soonest_expiry)
                        continue;
                s.has_soonest_expiry = true;
                s.soonest_expiry = r->soonest_expiry;
                s.soonest_node = r->node;
                s.soonest_registry = NULL;
                /* Name the registry when the node listed the certificate. */
                if (r->n_certs > 0 && r->certs[0].not_after == r->soonest_expiry)
                        s.soonest_registry = r->certs[0].registry;
        }
        qsort(s.targets, s.n_targets, sizeof *s.targets, target_counts_cmp);
        *ret = s;
}

static int expiring_cmp(const void *a, const void *b) {
        const ExpiringCert *x = a, *y = b;
        int c;

        if (x->not_after != y->not_after)
                return x->not_after < y->not_after ? -1 : 1;
        c = strcmp(x->node, y->node);
        return c ? c : strcmp(x->registry, y->registry);
}

int fleet_expiring(const Fleet *f, int64_t before, ExpiringCert **ret, size_t *ret_n) {
        ExpiringCert *e = NULL;
        size_t n = 0, alloc = 0;

        assert(f);
        assert(ret);
        assert(ret_n);

        for (size_t i = 0; i < f->n_nodes; i++) {
                const Report *r = f->nodes[i]->report;

                /* certs are sorted soonest first, so stop at the first later one. */
                for (size_t j = 0; j < r->n_certs && r->certs[j].not_after < before; j++) {
                        if (n == alloc) {
                                size_t a = alloc ? alloc * 2 : 16;
                                ExpiringCert *p = realloc(e, a * sizeof *e);
                                if (!p) {
                                        free(e);
                                        return -ENOMEM;
                                }
                                e = p;
                                alloc = a;
                        }
                        e[n++] = (ExpiringCert){ r->node, r->certs[j].registry, r->certs[j].not_after };
                }
        }
        if (n > 0)
                qsort(e, n, sizeof *e, expiring_cmp);
        *ret = e;
        *ret_n = n;
        return 0;
}
