/* SPDX-License-Identifier: MIT */
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
        json_t *o = json_object();

        for (size_t i = 0; o && i < r->n_targets; i++) {
                const TargetStatus *t = &r->targets[i];
                json_t *e = json_pack("{s:s}", "state", target_state_to_string(t->state));

                if (e && t->reason && json_object_set_new(e, "reason", json_string(t->reason)) < 0) {
                        json_decref(e);
                        e = NULL;
                }
                if (json_object_set_new(o, t->name, e) < 0) {
                        json_decref(o);
                        return NULL;
                }
        }
        return o;
}

static json_t *node_to_json(const Fleet *f, const Node *n, NodeState state) {
        const Report *r = n->report;
        json_t *errors, *certs, *targets;
        unsigned total = 0;

        errors = json_array();
        for (char **e = r->errors; errors && e && *e; e++)
                if (json_array_append_new(errors, json_string(*e)) < 0)
                        goto fail;
        certs = json_array();
        for (size_t i = 0; certs && i < r->n_certs; i++)
                if (json_array_append_new(certs, json_pack("{s:s, s:I}", "registry", r->certs[i].registry,
                                                           "not_after", (json_int_t) r->certs[i].not_after)) < 0)
                        goto fail_certs;
        targets = targets_to_json(r);
        if (!targets)
                goto fail_certs;
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
                         "errors", errors,
                         "errors_total", (json_int_t) r->n_errors,
                         "soonest_expiry", null_or_integer(r->has_soonest_expiry, r->soonest_expiry),
                         "registries",
                         "applied", (json_int_t) r->registries[REGISTRY_APPLIED],
                         "refused", (json_int_t) r->registries[REGISTRY_REFUSED],
                         "conflict", (json_int_t) r->registries[REGISTRY_CONFLICT],
                         "failed", (json_int_t) r->registries[REGISTRY_FAILED],
                         "shadowed", (json_int_t) r->registries[REGISTRY_SHADOWED],
                         "total", (json_int_t) total,
                         "certificates", certs,
                         "certificates_total", (json_int_t) r->n_certs_total,
                         "pull_secret", null_or_string(r->pull_secret_state),
                         "targets", targets,
                         "shadowed", (json_int_t) r->registries[REGISTRY_SHADOWED]);
fail_certs:
        json_decref(certs);
fail:
        json_decref(errors);
        return NULL;
}

static int dump(json_t *j, char **ret) {
        char *s;

        if (!j)
                return -ENOMEM;
        s = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int api_nodes_json(const Fleet *f, uint64_t now, int state, size_t limit, char **ret) {
        _cleanup_free_ NodeView *v = NULL;
        size_t n, total = 0;
        json_t *nodes;
        int r;

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
                if (json_array_append_new(nodes, node_to_json(f, v[i].node, v[i].state)) < 0) {
                        json_decref(nodes);
                        return -ENOMEM;
                }
        }
        if (limit == 0)
                total = json_array_size(nodes);
        return dump(json_pack("{s:I, s:o, s:I, s:o}", "generated_at", (json_int_t) (now / USEC_PER_SEC),
                              "current_hash", null_or_string(f->current_hash), "total", (json_int_t) total,
                              "nodes", nodes),
                    ret);
}

int api_node_json(Fleet *f, uint64_t now, const char *name, char **ret) {
        Node *n = fleet_get(f, name);

        if (!n)
                return -ENOENT;
        return dump(node_to_json(f, n, fleet_node_state(f, n, now)), ret);
}

/* {"containerd": {"active": n, "not_installed": n, "inactive": n}, ...}. */
static json_t *target_counts_to_json(const FleetSummary *s) {
        json_t *o = json_object();

        for (size_t i = 0; o && i < s->n_targets; i++) {
                json_t *c = json_object();

                for (int k = 0; c && k < _TARGET_STATE_MAX; k++)
                        if (json_object_set_new(c, target_state_to_string(k),
                                                json_integer((json_int_t) s->targets[i].counts[k])) < 0) {
                                json_decref(c);
                                c = NULL;
                        }
                if (json_object_set_new(o, s->targets[i].name, c) < 0) {
                        json_decref(o);
                        return NULL;
                }
        }
        return o;
}

int api_summary_json(const Fleet *f, uint64_t now, char **ret) {
        _cleanup_free_ ExpiringCert *e = NULL;
        int64_t before = (int64_t) (now / USEC_PER_SEC) + API_EXPIRING_DAYS * 86400;
        FleetSummary s;
        json_t *counts, *expiring, *targets;
        size_t n;
        int r;

        fleet_summarize(f, now, &s);
        r = fleet_expiring(f, before, &e, &n);
        if (r < 0)
                return r;

        counts = json_object();
        for (int i = 0; counts && i < _NODE_STATE_MAX; i++)
                if (json_object_set_new(counts, node_state_to_string(i), json_integer((json_int_t) s.counts[i])) < 0) {
                        json_decref(counts);
                        return -ENOMEM;
                }
        expiring = json_array();
        for (size_t i = 0; expiring && i < n && i < API_MAX_EXPIRING; i++)
                if (json_array_append_new(expiring, json_pack("{s:s, s:s, s:I}", "node", e[i].node, "registry",
                                                              e[i].registry, "not_after",
                                                              (json_int_t) e[i].not_after)) < 0) {
                        json_decref(expiring);
                        json_decref(counts);
                        return -ENOMEM;
                }

        targets = target_counts_to_json(&s);
        if (!targets) {
                json_decref(expiring);
                json_decref(counts);
                return -ENOMEM;
        }

        return dump(json_pack("{s:I, s:I, s:o, s:I, s:I, s:o, s:I, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:I}",
                              "generated_at", (json_int_t) (now / USEC_PER_SEC),
                              "total", (json_int_t) s.total,
                              "counts", counts,
                              "shadowed", (json_int_t) s.shadowed,
                              "inactive_target", (json_int_t) s.inactive_target,
                              "targets", targets,
                              "targets_omitted", (json_int_t) s.targets_omitted,
                              "current_hash", null_or_string(f->current_hash),
                              "current_hash_since",
                              null_or_integer(f->current_hash[0], (int64_t) (f->current_since / USEC_PER_SEC)),
                              "soonest_expiry", null_or_integer(s.has_soonest_expiry, s.soonest_expiry),
                              "soonest_expiry_node", null_or_string(s.soonest_node),
                              "soonest_expiry_registry", null_or_string(s.soonest_registry),
                              "expiring_within_days", (json_int_t) API_EXPIRING_DAYS,
                              "expiring", expiring,
                              "expiring_total", (json_int_t) n),
                    ret);
}
