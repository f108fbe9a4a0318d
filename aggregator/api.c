/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

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

/* A growing text buffer, for rendering a list one item at a time: the
 * JSON tree of one node is freed before the next is built, so a page costs
 * its text and one node's tree, not a tree of the whole page besides. */
typedef struct TextBuf {
        char *data;
        size_t size, alloc;
} TextBuf;

static int text_append(TextBuf *b, const char *s, size_t n) {
        if (b->size + n + 1 > b->alloc) {
                size_t a = b->alloc ? b->alloc : 4096;
                char *p;

                while (a < b->size + n + 1)
                        a *= 2;
                p = realloc(b->data, a);
                if (!p)
                        return -ENOMEM;
                b->data = p;
                b->alloc = a;
        }
        memcpy(b->data + b->size, s, n);
        b->size += n;
        b->data[b->size] = 0;
        return 0;
}

static int text_dump_cb(const char *s, size_t n, void *userdata) {
        return text_append(userdata, s, n) < 0 ? -1 : 0;
}

/* j as compact JSON appended to b; -ENOMEM when j is NULL (a failed pack). */
static int text_dump(TextBuf *b, const json_t *j) {
        if (!j || json_dump_callback(j, text_dump_cb, b, JSON_COMPACT) < 0)
                return -ENOMEM;
        return 0;
}

static bool node_matches(const Fleet *f, const Node *n, int state, uint64_t now) {
        return state < 0 || (int) fleet_node_state(f, n, now) == state;
}

int api_nodes_json(const Fleet *f, uint64_t now, const NodesQuery *q, char **ret, size_t *ret_size) {
        _cleanup_free_ char *token = NULL;
        json_auto_t *head = NULL, *meta = NULL;
        TextBuf b = {};
        size_t start, i, total = 0, listed = 0, remaining = 0;
        const Node *last = NULL;
        int r;

        assert(f);
        assert(q);
        assert(q->limit > 0);
        assert(ret);
        assert(ret_size);

        /* The fleet is kept sorted by name: a page is where the token says
         * it starts, found by binary search, and the nodes after it. A node
         * added or removed since the last page moves nothing else: each
         * node is listed once, unless it came or went meanwhile. */
        for (i = 0; i < f->n_nodes; i++)
                if (node_matches(f, f->nodes[i], q->state, now))
                        total++;
        start = fleet_index_after(f, q->after);

        r = text_append(&b, "{\"nodes\":[", strlen("{\"nodes\":["));
        for (i = start; r >= 0 && i < f->n_nodes; i++) {
                const Node *n = f->nodes[i];
                json_auto_t *j = NULL;

                if (!node_matches(f, n, q->state, now))
                        continue;
                if (listed == q->limit) {
                        remaining++;
                        continue;
                }
                j = node_to_json(f, n, fleet_node_state(f, n, now), false);
                if (listed > 0)
                        r = text_append(&b, ",", 1);
                if (r >= 0)
                        r = text_dump(&b, j);
                listed++;
                last = n;
        }
        if (r >= 0 && remaining > 0)
                r = continue_token_encode(q->key, q->state, last->report->node, &token);
        if (r >= 0) {
                /* Kubernetes' names: "continue" only when there is more, and
                 * how many of the nodes matching are after this page. */
                meta = json_pack("{s:I, s:I}", "limit", (json_int_t) q->limit, "remaining", (json_int_t) remaining);
                if (!meta || (token && json_object_set_new(meta, "continue", json_string(token)) < 0))
                        r = -ENOMEM;
        }
        if (r >= 0) {
                head = json_pack("{s:I, s:o, s:I, s:O}", "generated_at", (json_int_t) (now / USEC_PER_SEC),
                                 "current_hash", null_or_string(f->current_hash), "total", (json_int_t) total,
                                 "metadata", meta);
                /* The head's members go after the list: "],", then the head
                 * without its opening brace. */
                r = text_append(&b, "],", 2);
        }
        if (r >= 0) {
                _cleanup_free_ char *h = head ? json_dumps(head, JSON_COMPACT) : NULL;

                r = h && h[0] == '{' ? text_append(&b, h + 1, strlen(h + 1)) : -ENOMEM;
        }
        if (r < 0) {
                free(b.data);
                return r;
        }
        *ret = b.data;
        *ret_size = b.size;
        return 0;
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
