/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <string.h>

#include "cleanup.h"
#include "status.h"

json_t *status_json_string(const char *s) {
        return s && *s ? json_string(s) : json_null();
}

json_t *status_json_time(time_t t) {
        return t ? json_integer((json_int_t) t) : json_null();
}

/* {"state": ..., "reason": ...}: what one target says. The full form
 * always has a reason (null when none); the report's only when there is one. */
static json_t *verdict_json(const char *state, const char *reason, StatusDetail d) {
        json_auto_t *o = json_pack("{s:s}", "state", state);

        if (!o)
                return NULL;
        if (d == STATUS_DETAIL_FULL ? json_object_set_new(o, "reason", status_json_string(reason)) < 0
                                    : reason && json_object_set_new(o, "reason", json_string(reason)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* Per enabled target: what a runtime reading that target gets. */
static json_t *registry_targets_json(const RegistryResult *r, StatusDetail d) {
        json_auto_t *o = json_object();

        if (!o)
                return NULL;
        for (size_t k = 0; k < ELEMENTSOF(targets); k++) {
                const RegistryTargetResult *rt = &r->targets[k];
                if (rt->enabled &&
                    json_object_set_new(o, targets[k].name,
                                        verdict_json(registry_target_state_to_string(rt->state), rt->reason, d)) < 0)
                        return NULL;
        }
        return TAKE_PTR(o);
}

json_t *status_targets_json(const RuntimeStatus *rs, StatusDetail d) {
        json_auto_t *o = json_object();

        assert(rs);

        if (!o)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(targets); i++) {
                const TargetStatus *ts = &rs->targets[i];
                json_auto_t *e = NULL;

                if (!ts->enabled)
                        continue;
                e = verdict_json(target_state_to_string(ts->state), ts->reason, d);
                if (!e || (d == STATUS_DETAIL_FULL &&
                           json_object_set_new(e, "dir", json_sprintf("/%s", targets[i].dir)) < 0))
                        return NULL;
                if (json_object_set_new(o, targets[i].name, TAKE_PTR(e)) < 0)
                        return NULL;
        }
        return TAKE_PTR(o);
}

/* The last check of the registry's bundle (verify.c). The full form has
 * every member, null when unknown; the report's only those known, and no
 * object at all until a check says something. */
static json_t *verification_json(const RegistryVerification *v, StatusDetail d) {
        json_auto_t *o = json_pack("{s:s}", "state", verify_state_to_string(v->state));

        if (!o)
                return NULL;
        if (d == STATUS_DETAIL_FULL) {
                if (json_object_set_new(o, "reason", status_json_string(v->reason)) < 0 ||
                    json_object_set_new(o, "issuer", status_json_string(v->issuer)) < 0 ||
                    json_object_set_new(o, "server_not_after", status_json_time(v->server_not_after)) < 0 ||
                    json_object_set_new(o, "checked_at", status_json_time(v->checked_at)) < 0)
                        return NULL;
                return TAKE_PTR(o);
        }
        if ((v->reason && json_object_set_new(o, "reason", json_string(v->reason)) < 0) ||
            (v->issuer && json_object_set_new(o, "issuer", json_string(v->issuer)) < 0) ||
            (v->server_not_after && json_object_set_new(o, "server_not_after", status_json_time(v->server_not_after)) < 0) ||
            (v->checked_at && json_object_set_new(o, "checked_at", status_json_time(v->checked_at)) < 0))
                return NULL;
        return TAKE_PTR(o);
}

static json_t *registry_full_json(const RegistryResult *r) {
        return json_pack("{s:s, s:o, s:s, s:o, s:o, s:o, s:i, s:b, s:b, s:o, s:o}",
                         "key", r->key,
                         "name", status_json_string(r->registry),
                         "state", registry_state_to_string(r->state),
                         "reason", status_json_string(r->reason),
                         "fingerprint", status_json_string(r->fingerprint),
                         "not_after", status_json_time(r->not_after),
                         "certificates", (int) r->n_certs,
                         "expired", r->expired,
                         "not_yet_valid", r->not_yet_valid,
                         "targets", r->registry ? registry_targets_json(r, STATUS_DETAIL_FULL) : json_object(),
                         "verification", registry_result_verifiable(r) ? verification_json(&r->verify, STATUS_DETAIL_FULL)
                                                                       : json_null());
}

static json_t *registry_report_json(const RegistryResult *r) {
        json_auto_t *o = json_pack("{s:s, s:s, s:s}",
                                   /* A key too broken to decode is named by itself. */
                                   "name", r->registry ? r->registry : r->key,
                                   "key", r->key,
                                   "state", registry_state_to_string(r->state));

        if (!o)
                return NULL;
        if (r->state != REGISTRY_REFUSED && r->fingerprint[0] &&
            json_object_set_new(o, "fingerprint", json_string(r->fingerprint)) < 0)
                return NULL;
        if (r->state != REGISTRY_REFUSED && json_object_set_new(o, "not_after", status_json_time(r->not_after)) < 0)
                return NULL;
        if (r->reason && json_object_set_new(o, "reason", json_string(r->reason)) < 0)
                return NULL;
        if ((r->expired || r->not_yet_valid) &&
            json_object_set_new(o, r->expired ? "expired" : "not_yet_valid", json_true()) < 0)
                return NULL;
        /* Which runtime is affected, only where something is: a report of
         * a thousand applied registries stays small. */
        if ((r->state == REGISTRY_CONFLICT || r->state == REGISTRY_FAILED || r->state == REGISTRY_SHADOWED) &&
            json_object_set_new(o, "targets", registry_targets_json(r, STATUS_DETAIL_REPORT)) < 0)
                return NULL;
        if (registry_result_verifiable(r) && r->verify.state != VERIFY_NOT_CHECKED &&
            json_object_set_new(o, "verification", verification_json(&r->verify, STATUS_DETAIL_REPORT)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

json_t *status_registry_json(const RegistryResult *r, StatusDetail d) {
        assert(r);
        return d == STATUS_DETAIL_FULL ? registry_full_json(r) : registry_report_json(r);
}

static json_t *reporter_json(const char *url, const ReporterStats *rs) {
        if (!rs)
                return json_null();
        return json_pack("{s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:i}",
                         "url", url ? url : "",
                         "reports_total", (json_int_t) rs->reports_total,
                         "failures_total", (json_int_t) rs->report_failures_total,
                         "last_success", status_json_time(rs->last_success),
                         "last_attempt", status_json_time(rs->last_attempt),
                         "last_status", rs->last_status ? json_integer(rs->last_status) : json_null(),
                         "last_error", rs->last_error ? json_string(strerror(-rs->last_error)) : json_null(),
                         "consecutive_failures", (int) rs->backoff);
}

json_t *status_json(const AgentStatus *st, time_t start_time, const char *report_url, const ReporterStats *reporter) {
        json_auto_t *regs = json_array();
        const State *s;

        assert(st);
        assert(st->state);

        s = st->state;
        if (!regs)
                return NULL;
        for (size_t i = 0; i < s->n_registries; i++)
                if (json_array_append_new(regs, registry_full_json(&s->registries[i])) < 0)
                        return NULL;

        /* The pull secret appears only as its state, a hash and a
         * secret-free reason: never its content. */
        return json_pack("{s:o, s:s, s:b, s:o, s:o,"
                         " s:{s:s, s:o, s:I, s:o}, s:o,"
                         " s:b, s:b, s:o, s:o, s:o,"
                         " s:{s:I, s:I, s:I, s:I},"
                         " s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i},"
                         " s:o, s:O, s:o,"
                         " s:{s:s, s:o, s:o},"
                         " s:o}",
                         "node", status_json_string(st->node),
                         "version", st->version ? st->version : "unknown",
                         "ready", st->ready,
                         "not_ready_reason", st->ready ? json_null() : status_json_string(st->not_ready_reason),
                         "start_time", status_json_time(start_time),
                         "source",
                         "kind", st->source_kind ? st->source_kind : "unknown",
                         "origin", status_json_string(s->source_origin),
                         "generation", (json_int_t) s->generation,
                         "hash", status_json_string(s->source_hash),
                         "applied_hash", status_json_string(s->applied_hash),
                         "first_sync_done", s->first_sync_done,
                         "last_sync_ok", s->last_sync_ok,
                         "last_error", status_json_string(s->last_error),
                         "last_sync", status_json_time(s->last_sync),
                         "last_success", status_json_time(s->last_success),
                         "counters",
                         "syncs_total", (json_int_t) s->syncs_total,
                         "sync_failures_total", (json_int_t) s->sync_failures_total,
                         "files_written_total", (json_int_t) s->files_written_total,
                         "files_removed_total", (json_int_t) s->files_removed_total,
                         "counts",
                         "applied", (int) s->n_applied,
                         "refused", (int) s->n_refused,
                         "conflict", (int) s->n_conflicts,
                         "failed", (int) s->n_failed,
                         "shadowed", (int) s->n_shadowed,
                         "ignored", (int) s->n_ignored,
                         "inactive_targets", (int) s->n_inactive_targets,
                         "targets", status_targets_json(&s->runtime, STATUS_DETAIL_FULL),
                         "registries", regs,
                         "soonest_expiry", status_json_time(state_soonest_expiry(s)),
                         "pull_secret",
                         "state", pull_secret_status_to_string(s->pull_secret_status),
                         "hash", status_json_string(s->pull_secret_hash),
                         "error", status_json_string(s->pull_secret_error),
                         "report", reporter_json(report_url, reporter));
}
