/* SPDX-License-Identifier: MIT */
/*
 * report_parse(): an agent's report body, checked against
 * docs/report-format.md and reduced to a Report whose every part is
 * bounded. The names and validators it checks against are in
 * ingest-report.c, the registries' part in ingest-registries.c, the
 * helpers both use in ingest-common.c.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest-internal.h"
#include "ingest-json.h"
#include "ingest.h"
#include "strv.h"

static int target_cmp(const void *a, const void *b) {
        const TargetStatus *x = a, *y = b;

        return strcmp(x->name, y->name);
}

static int parse_targets(Report *r, const Jv *targets, char **msg) {
        const char *name;
        const Jv *t;
        uint32_t idx;

        if (!jv_is_object(targets))
                return ingest_fail(msg, "'targets' must be an object");
        if (jv_size(targets) > REPORT_MAX_TARGETS)
                return ingest_fail(msg, "'targets' must have at most %u entries", REPORT_MAX_TARGETS);

        jv_object_foreach(targets, name, t, idx) {
                TargetStatus *ts = &r->targets[r->n_targets];
                const char *state;
                const Jv *reason;
                int k;

                /* Checked first: only a valid name is echoed in a message. */
                if (!target_name_is_valid(name))
                        return ingest_fail(msg, "'targets' names must be 1 to %u characters of a-z, 0-9, '_' and '-'",
                                    REPORT_MAX_TARGET_NAME);
                if (!jv_is_object(t))
                        return ingest_fail(msg, "targets.%s must be an object", name);
                state = jv_string(jv_get(t, "state"));
                for (k = 0; state && k < _TARGET_STATE_MAX; k++)
                        if (streq(state, target_state_to_string((TargetState) k)))
                                break;
                if (!state || k == _TARGET_STATE_MAX)
                        return ingest_fail(msg, "targets.%s.state must be active, not_installed or inactive", name);
                reason = jv_get(t, "reason");
                if (reason && !jv_is_null(reason) && !jv_is_string(reason))
                        return ingest_fail(msg, "targets.%s.reason must be a string", name);

                memcpy(ts->name, name, strlen(name) + 1);
                ts->state = (TargetState) k;
                ts->reason = NULL;
                r->n_targets++;
                if (jv_is_string(reason) &&
                    !(ts->reason = ingest_strdup_truncated(jv_string(reason), REPORT_MAX_REASON_LEN)))
                        return -ENOMEM;
        }
        qsort(r->targets, r->n_targets, sizeof *r->targets, target_cmp);
        return 0;
}

static int parse_errors(Report *r, const Jv *errs, char **msg) {
        size_t i;
        const Jv *e;

        if (!jv_is_array(errs))
                return ingest_fail(msg, "'errors' must be an array of strings");
        jv_array_foreach(errs, i, e) {
                if (!jv_is_string(e))
                        return ingest_fail(msg, "errors[%zu] must be a string", i);
                r->n_errors++;
                if (i < REPORT_MAX_ERRORS) {
                        _cleanup_free_ char *s = ingest_strdup_truncated(jv_string(e), REPORT_MAX_ERROR_LEN);
                        if (!s || strv_extend(&r->errors, s) < 0)
                                return -ENOMEM;
                }
        }
        return 0;
}

static int parse_source(Report *r, const Jv *src, char **msg) {
        const char *s;
        int k;

        if (!jv_is_object(src))
                return ingest_fail(msg, "'source' must be an object");
        k = ingest_get_string(src, "hash", true, &s, msg);
        if (k < 0)
                return k;
        if (!sha256_hex_is_valid(s))
                return ingest_fail(msg, "source.hash must be 64 lowercase hex digits");
        memcpy(r->source_hash, s, 65);

        k = ingest_get_uint(src, "generation", false, INT64_MAX, &r->generation, msg);
        if (k < 0)
                return k;
        k = ingest_get_string(src, "kind", false, &s, msg);
        if (k < 0)
                return k;
        if (k > 0 && !(r->source_kind = ingest_strdup_truncated(s, 32)))
                return -ENOMEM;
        return 0;
}

static int parse_report(Report *r, const Jv *root, RejectReason *why, char **msg) {
        const char *s;
        uint64_t u;
        const Jv *v;
        int k;

        *why = REJECT_BAD_SCHEMA;
        if (!jv_is_object(root))
                return ingest_fail(msg, "the report must be a JSON object");

        v = jv_get(root, "schema");
        if (!jv_is_integer(v) || jv_integer(v) != 1)
                return ingest_fail(msg, "'schema' must be 1");

        k = ingest_get_string(root, "node", true, &s, msg);
        if (k < 0)
                return k;
        if (!node_name_is_valid(s)) {
                *why = REJECT_BAD_NODE_NAME;
                return ingest_fail(msg,
                            "'node' must be a Kubernetes node name (lowercase letters, digits, '-' and '.', at most 253)");
        }
        if (!(r->node = strdup(s)))
                return -ENOMEM;

        k = ingest_get_string(root, "agent_version", false, &s, msg);
        if (k < 0)
                return k;
        if (k > 0 && !(r->agent_version = ingest_strdup_truncated(s, 64)))
                return -ENOMEM;

        k = ingest_get_uint(root, "timestamp", false, INT64_MAX, &u, msg);
        if (k < 0)
                return k;
        r->timestamp = k > 0 ? (int64_t) u : 0;

        k = ingest_get_uint(root, "interval_seconds", false, REPORT_MAX_INTERVAL_SECONDS, &u, msg);
        if (k < 0)
                return k;
        if (k > 0 && u < 1)
                return ingest_fail(msg, "'interval_seconds' must be at least 1");
        r->interval_seconds = k > 0 ? (unsigned) u : 0;

        r->ready = true;
        v = jv_get(root, "ready");
        if (v) {
                if (!jv_is_boolean(v))
                        return ingest_fail(msg, "'ready' must be a boolean");
                r->ready = jv_is_true(v);
        }

        v = jv_get(root, "source");
        if (!v)
                return ingest_fail(msg, "missing field 'source'");
        k = parse_source(r, v, msg);
        if (k < 0)
                return k;

        v = jv_get(root, "applied_hash");
        if (v && !jv_is_null(v)) {
                if (!jv_is_string(v) || !sha256_hex_is_valid(jv_string(v)))
                        return ingest_fail(msg, "'applied_hash' must be 64 lowercase hex digits or null");
                memcpy(r->applied_hash, jv_string(v), 65);
        }

        v = jv_get(root, "errors");
        if (v && (k = parse_errors(r, v, msg)) < 0)
                return k;

        v = jv_get(root, "registries");
        if (v && (k = ingest_parse_registries(r, v, msg)) < 0)
                return k;

        /* After the registries: its shadowed count wins over theirs. */
        v = jv_get(root, "registry_counts");
        if (v && (k = ingest_parse_registry_counts(r, v, msg)) < 0)
                return k;

        v = jv_get(root, "targets");
        if (v && (k = parse_targets(r, v, msg)) < 0)
                return k;

        v = jv_get(root, "soonest_expiry");
        if (v && !jv_is_null(v)) {
                if (!jv_is_integer(v))
                        return ingest_fail(msg, "'soonest_expiry' must be an integer or null");
                r->has_soonest_expiry = true;
                r->soonest_expiry = jv_integer(v);
        } else if (r->n_certs > 0) {
                /* An older agent may leave it out; the registries tell. */
                r->has_soonest_expiry = true;
                r->soonest_expiry = r->certs[0].not_after;
        }

        v = jv_get(root, "pull_secret");
        if (v && !jv_is_null(v)) {
                if (!jv_is_object(v))
                        return ingest_fail(msg, "'pull_secret' must be an object");
                k = ingest_get_string(v, "state", false, &s, msg);
                if (k < 0)
                        return k;
                if (k > 0) {
                        if (!streq(s, "absent") && !streq(s, "applied") && !streq(s, "invalid"))
                                return ingest_fail(msg, "pull_secret.state must be absent, applied or invalid");
                        if (!(r->pull_secret_state = strdup(s)))
                                return -ENOMEM;
                }
        }
        return 0;
}

int report_parse(const char *data, size_t size, Report **ret, RejectReason *ret_why, char **ret_message) {
        _cleanup_(jv_doc_done) JvDoc doc = {};
        _cleanup_(report_freep) Report *r = NULL;
        RejectReason why = REJECT_BAD_JSON;
        int k;

        /* A request without a body has "" (httpd.h). NULL is let through
         * with size 0 only: jansson refuses it as invalid JSON, as before. */
        assert(data || size == 0);
        assert(ret);
        assert(ret_why);
        assert(ret_message);

        *ret_message = NULL;
        k = jv_parse(data, size, &doc, ret_message);
        if (k == -EBADMSG) {
                *ret_why = REJECT_BAD_JSON;
                return -EINVAL;
        }
        if (k < 0)
                return k;

        r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        k = parse_report(r, jv_root(&doc), &why, ret_message);
        if (k < 0) {
                *ret_why = why;
                return k == -ENOMEM ? k : -EINVAL;
        }
        *ret = TAKE_PTR(r);
        return 0;
}
