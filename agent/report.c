/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "report.h"

/* ------------------------------------------------------------------------
 * The report document (docs/report-format.md): plain functions of the
 * State, no loop, no I/O. */

/* Lower sorts first: what an operator must see survives truncation. */
static int registry_priority(const RegistryResult *r) {
        switch (r->state) {
        case REGISTRY_FAILED: return 0;
        case REGISTRY_CONFLICT: return 1;
        case REGISTRY_SHADOWED: return 2;
        case REGISTRY_REFUSED: return 3;
        default: return 4;
        }
}

static int registry_index_cmp(const void *a, const void *b, void *userdata) {
        const State *s = userdata;
        const RegistryResult *x = &s->registries[*(const size_t *) a];
        const RegistryResult *y = &s->registries[*(const size_t *) b];
        int px = registry_priority(x), py = registry_priority(y);

        if (px != py)
                return px - py;
        /* Soonest expiry first; 0 means none and goes last. */
        if (x->not_after != y->not_after) {
                if (!x->not_after || !y->not_after)
                        return x->not_after ? -1 : 1;
                return x->not_after < y->not_after ? -1 : 1;
        }
        return *(const size_t *) a < *(const size_t *) b ? -1 : 1;
}

/* The registries array with at most limit entries (the most telling ones). */
static json_t *registries_json(const State *s, size_t limit) {
        _cleanup_free_ size_t *idx = NULL;
        _cleanup_free_ bool *keep = NULL;
        json_auto_t *a = json_array();

        if (!a)
                return NULL;
        if (limit < s->n_registries) {
                idx = calloc(s->n_registries, sizeof *idx);
                keep = calloc(s->n_registries, sizeof *keep);
                if (!idx || !keep)
                        return NULL;
                for (size_t i = 0; i < s->n_registries; i++)
                        idx[i] = i;
                qsort_r(idx, s->n_registries, sizeof *idx, registry_index_cmp, (void *) s);
                for (size_t i = 0; i < limit; i++)
                        keep[idx[i]] = true;
        }
        for (size_t i = 0; i < s->n_registries; i++) {
                if (keep && !keep[i])
                        continue;
                if (json_array_append_new(a, status_registry_json(&s->registries[i], STATUS_DETAIL_REPORT)) < 0)
                        return NULL;
        }
        return TAKE_PTR(a);
}

static json_t *errors_json(const State *s, const ReportContext *ctx) {
        json_auto_t *a = json_array();

        if (!a)
                return NULL;
        if (s->first_sync_done && !s->last_sync_ok &&
            json_array_append_new(a, json_string(s->last_error ? s->last_error : "sync failed")) < 0)
                return NULL;
        /* Not ready for another reason, e.g. a dead watch on the source. */
        if (!ctx->ready && ctx->not_ready_reason && s->last_sync_ok &&
            json_array_append_new(a, json_string(ctx->not_ready_reason)) < 0)
                return NULL;
        return TAKE_PTR(a);
}

static json_t *report_build_limited(const State *s, const ReportContext *ctx, bool with_timestamp, size_t limit,
                                    int *ret_error) {
        json_auto_t *root = NULL;
        json_t *regs, *errs;

        *ret_error = -ENOMEM;
        /* source.hash is required: until the source was read once there
         * is nothing true to say, and a made-up hash would look like a new
         * config map to the aggregator. */
        if (!s->source_hash[0]) {
                *ret_error = -EAGAIN;
                return NULL;
        }
        regs = registries_json(s, limit);
        errs = errors_json(s, ctx);
        root = json_pack("{s:i, s:s, s:s, s:i, s:b,"
                         " s:{s:s, s:I, s:s},"
                         " s:o, s:o, s:o, s:o,"
                         " s:{s:s, s:o}, s:o,"
                         " s:{s:i, s:i, s:i, s:i, s:i, s:i}}",
                         "schema", 1,
                         "node", ctx->node ? ctx->node : "",
                         "agent_version", NODETRUST_VERSION,
                         "interval_seconds", (int) ctx->interval_sec,
                         "ready", ctx->ready,
                         "source",
                         "kind", ctx->source_kind ? ctx->source_kind : "unknown",
                         "generation", (json_int_t) s->generation,
                         "hash", s->source_hash,
                         "applied_hash", status_json_string(s->applied_hash),
                         "errors", errs,
                         "registries", regs,
                         "soonest_expiry", status_json_time(state_soonest_expiry(s)),
                         "pull_secret",
                         "state", pull_secret_status_to_string(s->pull_secret_status),
                         "hash", status_json_string(s->pull_secret_hash),
                         "targets", status_targets_json(&s->runtime, STATUS_DETAIL_REPORT),
                         /* Whole counts even when registries is cut short. */
                         "registry_counts",
                         "applied", (int) s->n_applied,
                         "refused", (int) s->n_refused,
                         "conflict", (int) s->n_conflicts,
                         "failed", (int) s->n_failed,
                         "shadowed", (int) s->n_shadowed,
                         "ignored", (int) s->n_ignored);
        if (!root)
                return NULL;
        if (with_timestamp && json_object_set_new(root, "timestamp", json_integer((json_int_t) ctx->now)) < 0)
                return NULL;
        if (limit < s->n_registries &&
            json_object_set_new(root, "registries_omitted", json_integer((json_int_t) (s->n_registries - limit))) < 0)
                return NULL;
        *ret_error = 0;
        return TAKE_PTR(root);
}

json_t *report_build(const State *s, const ReportContext *ctx, bool with_timestamp, int *ret_error) {
        assert(s);
        assert(ctx);
        assert(ret_error);
        return report_build_limited(s, ctx, with_timestamp, s->n_registries, ret_error);
}

char *report_dump(const State *s, const ReportContext *ctx, size_t max, int *ret_error) {
        size_t limit;

        assert(s);
        assert(ctx);
        assert(ret_error);

        limit = s->n_registries;

        for (;;) {
                json_auto_t *doc = report_build_limited(s, ctx, true, limit, ret_error);
                char *text;

                if (!doc)
                        return NULL;
                text = json_dumps(doc, JSON_COMPACT);
                if (!text) {
                        *ret_error = -ENOMEM;
                        return NULL;
                }
                if (strlen(text) <= max || limit == 0)
                        return text;
                free(text);
                limit /= 2;
        }
}
