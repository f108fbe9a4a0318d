/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>

#include "api.h"
#include "fleet-registries.h"

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

/* One kept registry of a node, for /api/v1/nodes/NAME. */
static json_t *registry_entry_to_json(const RegistryEntry *e) {
        return json_pack("{s:s, s:s, s:o, s:o, s:s, s:o}",
                         "name", e->name,
                         "state", registry_state_to_string(e->state),
                         "fingerprint", null_or_string(e->fingerprint),
                         "not_after", null_or_integer(e->has_not_after, e->not_after),
                         "verification", verification_state_to_string(e->verification),
                         "server_not_after", null_or_integer(e->has_server_not_after, e->server_not_after));
}

/* The node's kept registries by verification state, every state given. */
static json_t *verification_counts_to_json(const Report *r) {
        size_t counts[_VERIFICATION_STATE_MAX] = {};
        json_auto_t *o = json_object();

        if (!o)
                return NULL;
        for (size_t i = 0; i < r->n_entries; i++)
                counts[r->entries[i].verification]++;
        for (int k = 0; k < _VERIFICATION_STATE_MAX; k++)
                if (json_object_set_new(o, verification_state_to_string(k), json_integer((json_int_t) counts[k])) < 0)
                        return NULL;
        return TAKE_PTR(o);
}

/* detail adds "registry_details", every registry kept of the node. */
static json_t *node_to_json(const Fleet *f, const Node *n, NodeState state, bool detail) {
        json_auto_t *errors = NULL, *certs = NULL, *targets = NULL, *verification = NULL, *j = NULL;
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
        verification = verification_counts_to_json(r);
        if (!verification)
                return NULL;
        for (int s = 0; s < _REGISTRY_STATE_MAX; s++)
                total += r->registries[s];

        /* json_pack steals the "o" arguments, also when it fails. */
        j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:o, s:I, s:b, s:{s:o, s:I, s:s}, s:o, s:o, s:I,"
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
        if (!j)
                return NULL;
        if (json_object_set_new(j, "verification", TAKE_PTR(verification)) < 0 ||
            json_object_set_new(j, "registries_listed", json_integer((json_int_t) r->n_entries)) < 0 ||
            json_object_set_new(j, "registries_truncated", json_boolean(r->entries_truncated)) < 0)
                return NULL;
        if (detail) {
                json_auto_t *details = json_array();

                if (!details)
                        return NULL;
                for (size_t i = 0; i < r->n_entries; i++)
                        if (json_array_append_new(details, registry_entry_to_json(&r->entries[i])) < 0)
                                return NULL;
                if (json_object_set_new(j, "registry_details", TAKE_PTR(details)) < 0)
                        return NULL;
        }
        return TAKE_PTR(j);
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
                if (json_array_append_new(nodes, node_to_json(f, v[i].node, v[i].state, false)) < 0)
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
        j = node_to_json(f, n, fleet_node_state(f, n, now), true);
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

/* One registry of the per-registry view. */
static json_t *fleet_registry_to_json(const FleetRegistry *reg) {
        json_auto_t *counts = json_object(), *fps = json_array(), *attention = json_array();

        if (!counts || !fps || !attention)
                return NULL;
        for (int k = 0; k < _REGISTRY_STATE_MAX; k++)
                if (json_object_set_new(counts, registry_state_to_string(k), json_integer((json_int_t) reg->states[k])) < 0)
                        return NULL;
        for (int k = 0; k < _VERIFICATION_STATE_MAX; k++)
                if (json_object_set_new(counts, verification_state_to_string(k),
                                        json_integer((json_int_t) reg->verification[k])) < 0)
                        return NULL;
        if (json_object_set_new(counts, "lacking", json_integer((json_int_t) reg->lacking)) < 0)
                return NULL;
        for (size_t i = 0; i < reg->n_fingerprints; i++)
                if (json_array_append_new(fps, json_pack("{s:s, s:I}", "fingerprint", reg->fingerprints[i].fingerprint,
                                                         "nodes", (json_int_t) reg->fingerprints[i].nodes)) < 0)
                        return NULL;
        for (size_t i = 0; i < reg->n_attention; i++)
                if (json_array_append_new(attention, json_pack("{s:s, s:s}", "node", reg->attention[i].node, "why",
                                                               registry_attention_to_string(reg->attention[i].why))) < 0)
                        return NULL;
        return json_pack("{s:s, s:I, s:o, s:o, s:I, s:o, s:o, s:o, s:I}",
                         "name", reg->name,
                         "nodes", (json_int_t) reg->nodes,
                         "counts", TAKE_PTR(counts),
                         "fingerprints", TAKE_PTR(fps),
                         "fingerprints_total", (json_int_t) reg->fingerprints_total,
                         "soonest_not_after", null_or_integer(reg->has_soonest_not_after, reg->soonest_not_after),
                         "soonest_server_not_after",
                         null_or_integer(reg->has_soonest_server_not_after, reg->soonest_server_not_after),
                         "attention", TAKE_PTR(attention),
                         "attention_total", (json_int_t) reg->attention_total);
}

int api_registries_json(const Fleet *f, uint64_t now, char **ret) {
        _cleanup_(fleet_registries_freep) FleetRegistries *regs = NULL;
        json_auto_t *list = NULL, *j = NULL;
        int r;

        assert(f);
        assert(ret);

        r = fleet_registries(f, now, &regs);
        if (r < 0)
                return r;
        list = json_array();
        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < regs->n_registries; i++)
                if (json_array_append_new(list, fleet_registry_to_json(&regs->registries[i])) < 0)
                        return -ENOMEM;
        j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:o}",
                      "generated_at", (json_int_t) (now / USEC_PER_SEC),
                      "nodes", (json_int_t) regs->nodes,
                      "nodes_truncated", (json_int_t) regs->nodes_truncated,
                      "registries_total", (json_int_t) (regs->n_registries + regs->registries_omitted),
                      "registries_omitted", (json_int_t) regs->registries_omitted,
                      "registries", TAKE_PTR(list));
        return dump(j, ret);
}

/* One rollout; nodes is the fleet's size now for the current one. */
static json_t *rollout_to_json(const Rollout *ro, size_t nodes) {
        json_auto_t *points = json_array();

        if (!points)
                return NULL;
        for (size_t i = 0; i < ro->n_points; i++)
                if (json_array_append_new(points, json_pack("{s:I, s:I}", "at",
                                                            (json_int_t) (ro->points[i].at / USEC_PER_SEC), "converged",
                                                            (json_int_t) ro->points[i].converged)) < 0)
                        return NULL;
        return json_pack("{s:s, s:I, s:I, s:o, s:I, s:I, s:o}",
                         "hash", ro->hash,
                         "first_seen", (json_int_t) (ro->first_seen / USEC_PER_SEC),
                         "started", (json_int_t) (ro->started / USEC_PER_SEC),
                         "ended", null_or_integer(ro->ended != 0, (int64_t) (ro->ended / USEC_PER_SEC)),
                         "nodes", (json_int_t) (ro->ended ? ro->nodes_at_end : nodes),
                         "converged", (json_int_t) ro->converged,
                         "points", TAKE_PTR(points));
}

int api_rollout_json(const Fleet *f, uint64_t now, char **ret) {
        json_auto_t *current = NULL, *previous = NULL, *j = NULL;

        assert(f);
        assert(ret);

        current = f->rollouts.current.id ? rollout_to_json(&f->rollouts.current, f->n_nodes) : json_null();
        previous = json_array();
        if (!current || !previous)
                return -ENOMEM;
        for (size_t i = 0; i < f->rollouts.n_previous; i++)
                if (json_array_append_new(previous, rollout_to_json(&f->rollouts.previous[i], 0)) < 0)
                        return -ENOMEM;
        j = json_pack("{s:I, s:I, s:I, s:o, s:o}",
                      "generated_at", (json_int_t) (now / USEC_PER_SEC),
                      "nodes", (json_int_t) f->n_nodes,
                      "points_max", (json_int_t) ROLLOUT_MAX_POINTS,
                      "current", TAKE_PTR(current),
                      "previous", TAKE_PTR(previous));
        return dump(j, ret);
}
