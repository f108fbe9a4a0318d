/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>

#include "api.h"

static json_t *null_or_string(const char *s) {
        return s && *s ? json_string(s) : json_null();
}

static json_t *null_or_integer(bool has, int64_t v) {
        return has ? json_integer(v) : json_null();
}

/* {"containerd": {"state": "inactive", "reason": "..."}, ...} as reported
 * (reasons cut to REPORT_MAX_REASON_LEN); NULL on failure. */
static json_t *targets_to_json(const Report *r) {
        json_auto_t *o = json_object();

        if (!o)
                return NULL;
        for (size_t i = 0; i < r->n_targets; i++) {
                const TargetStatus *t = &r->targets[i];
                json_auto_t *e = json_pack("{s:s}", "state", target_state_to_string(t->state));

                if (!e || (t->reason && json_object_set_new(e, "reason", json_string(t->reason)) < 0))
                        return NULL;
                if (json_object_set_new(o, t->name, TAKE_PTR(e)) < 0)
                        return NULL;
        }
        return TAKE_PTR(o);
}

static json_t *node_to_json(const Fleet *f, const Node *n, NodeState state) {
        json_auto_t *errors = NULL, *certs = NULL, *targets = NULL;
        const Report *r = n->report;
        unsigned total = 0;

        errors = json_array();
        if (!errors)
                return NULL;
        for (char **e = r->errors; e && *e; e++)
                if (json_array_append_new(errors, json_string(*e)) < 0)
                        return NULL;
        certs = json_array();
        if (!certs)
                return NULL;
        for (size_t i = 0; i < r->n_certs; i++)
                if (json_array_append_new(certs, json_pack("{s:s, s:I}", "registry", r->certs[i].registry,
                                                           "not_after", (json_int_t) r->certs[i].not_after)) < 0)
                        return NULL;
        targets = targets_to_json(r);
        if (!targets)
                return NULL;
        for (int s = 0; s < _REGISTRY_STATE_MAX; s++)
                total += r->registries[s];

        /* json_pack steals the "o" arguments, also when it fails. */
        return json_pack("{s:s, s:s, s:I, s:I, s:I, s:o, s:I, s:b, s:{s:o, s:I, s:s}, s:o, s:o, s:I,"
                         " s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:o, s:I, s:o, s:o, s:I}",
                         "name", r->node,
                         "state", node_state_to_string(state),
                         "last_seen", (json_int_t) (n->last_seen / USEC_PER_SEC),
                         "first_seen", (json_int_t) (n->first_seen / USEC_PER_SEC),
                         "timestamp", (json_int_t) r->timestamp,
                         "agent_version", null_or_string(r->agent_version),
                         "interval_seconds",
                         (json_int_t) (r->interval_seconds ? r->interval_seconds : f->default_interval_seconds),
                         "ready", (int) r->ready,
                         "source",
                         "kind", null_or_string(r->source_kind),
                         "generation", (json_int_t) r->generation,
                         "hash", r->source_hash,
                         "applied_hash", null_or_string(r->applied_hash),
                         "errors", TAKE_PTR(errors),
                         "errors_total", (json_int_t) r->n_errors,
                         "soonest_expiry", null_or_integer(r->has_soonest_expiry, r->soonest_expiry),
                         "registries",
                         "applied", (json_int_t) r->registries[REGISTRY_APPLIED],
                         "refused", (json_int_t) r->registries[REGISTRY_REFUSED],
                         "conflict", (json_int_t) r->registries[REGISTRY_CONFLICT],
                         "failed", (json_int_t) r->registries[REGISTRY_FAILED],
                         "shadowed", (json_int_t) r->registries[REGISTRY_SHADOWED],
                         "total", (json_int_t) total,
                         "certificates", TAKE_PTR(certs),
                         "certificates_total", (json_int_t) r->n_certs_total,
                         "pull_secret", null_or_string(r->pull_secret_state),
                         "targets", TAKE_PTR(targets),
                         "shadowed", (json_int_t) r->registries[REGISTRY_SHADOWED]);
}

/* j as compact JSON text in *ret; -ENOMEM when j is NULL (a failed pack). */
static int dump(const json_t *j, char **ret) {
        char *s;

        if (!j)
                return -ENOMEM;
        s = json_dumps(j, JSON_COMPACT);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int api_nodes_json(const Fleet *f, uint64_t now, int state, size_t limit, char **ret) {
        json_auto_t *nodes = NULL, *j = NULL;
        _cleanup_free_ NodeView *v = NULL;
        size_t n, total = 0;
        int r;

        assert(f);
        assert(ret);

        r = fleet_list(f, now, &v, &n);
        if (r < 0)
                return r;
        nodes = json_array();
        if (!nodes)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (state >= 0 && (int) v[i].state != state)
                        continue;
                if (limit > 0 && total++ >= limit)
                        continue;
                if (json_array_append_new(nodes, node_to_json(f, v[i].node, v[i].state)) < 0)
                        return -ENOMEM;
        }
        if (limit == 0)
                total = json_array_size(nodes);
        j = json_pack("{s:I, s:o, s:I, s:o}", "generated_at", (json_int_t) (now / USEC_PER_SEC),
                      "current_hash", null_or_string(f->current_hash), "total", (json_int_t) total,
                      "nodes", TAKE_PTR(nodes));
        return dump(j, ret);
}

int api_node_json(Fleet *f, uint64_t now, const char *name, char **ret) {
        json_auto_t *j = NULL;
        Node *n;

        assert(f);
        assert(name);
        assert(ret);

        n = fleet_get(f, name);
        if (!n)
                return -ENOENT;
        j = node_to_json(f, n, fleet_node_state(f, n, now));
        return dump(j, ret);
}

/* {"containerd": {"active": n, "not_installed": n, "inactive": n}, ...}. */
static json_t *target_counts_to_json(const FleetSummary *s) {
        json_auto_t *o = json_object();

        if (!o)
                return NULL;
        for (size_t i = 0; i < s->n_targets; i++) {
                json_auto_t *c = json_object();

                if (!c)
                        return NULL;
                for (int k = 0; k < _TARGET_STATE_MAX; k++)
                        if (json_object_set_new(c, target_state_to_string(k),
                                                json_integer((json_int_t) s->targets[i].counts[k])) < 0)
                                return NULL;
                if (json_object_set_new(o, s->targets[i].name, TAKE_PTR(c)) < 0)
                        return NULL;
        }
        return TAKE_PTR(o);
}

int api_summary_json(const Fleet *f, uint64_t now, char **ret) {
        json_auto_t *counts = NULL, *expiring = NULL, *targets = NULL, *j = NULL;
        _cleanup_free_ ExpiringCert *e = NULL;
        int64_t before;
        FleetSummary s;
        size_t n;
        int r;

        assert(f);
        assert(ret);

        before = (int64_t) (now / USEC_PER_SEC) + API_EXPIRING_DAYS * 86400;
        fleet_summarize(f, now, &s);
        r = fleet_expiring(f, before, &e, &n);
        if (r < 0)
                return r;

        counts = json_object();
        if (!counts)
                return -ENOMEM;
        for (int i = 0; i < _NODE_STATE_MAX; i++)
                if (json_object_set_new(counts, node_state_to_string(i), json_integer((json_int_t) s.counts[i])) < 0)
                        return -ENOMEM;
        expiring = json_array();
        if (!expiring)
                return -ENOMEM;
        for (size_t i = 0; i < n && i < API_MAX_EXPIRING; i++)
                if (json_array_append_new(expiring, json_pack("{s:s, s:s, s:I}", "node", e[i].node, "registry",
                                                              e[i].registry, "not_after",
                                                              (json_int_t) e[i].not_after)) < 0)
                        return -ENOMEM;

        targets = target_counts_to_json(&s);
        if (!targets)
                return -ENOMEM;

        j = json_pack("{s:I, s:I, s:o, s:I, s:I, s:o, s:I, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:I}",
                      "generated_at", (json_int_t) (now / USEC_PER_SEC),
                      "total", (json_int_t) s.total,
                      "counts", TAKE_PTR(counts),
                      "shadowed", (json_int_t) s.shadowed,
                      "inactive_target", (json_int_t) s.inactive_target,
                      "targets", TAKE_PTR(targets),
                      "targets_omitted", (json_int_t) s.targets_omitted,
                      "current_hash", null_or_string(f->current_hash),
                      "current_hash_since",
                      null_or_integer(f->current_hash[0], (int64_t) (f->current_since / USEC_PER_SEC)),
                      "soonest_expiry", null_or_integer(s.has_soonest_expiry, s.soonest_expiry),
                      "soonest_expiry_node", null_or_string(s.soonest_node),
                      "soonest_expiry_registry", null_or_string(s.soonest_registry),
                      "expiring_within_days", (json_int_t) API_EXPIRING_DAYS,
                      "expiring", TAKE_PTR(expiring),
                      "expiring_total", (json_int_t) n);
        return dump(j, ret);
}
