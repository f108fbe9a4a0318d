/* SPDX-License-Identifier: MIT */
/*
 * report_parse(): an agent's report body, checked against
 * docs/report-format.md and reduced to a Report whose every part is
 * bounded. The names and validators it checks against are in
 * ingest-report.c.
 */
#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "strv.h"

/* Set the message and return -EINVAL, so validators can "return fail(...)". */
_printf_(2, 3) static int fail(char **ret_message, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(ret_message, fmt, ap) < 0)
                *ret_message = NULL;
        va_end(ap);
        return -EINVAL;
}

/* A copy of s cut to at most max bytes, never inside a UTF-8 sequence
 * (jansson refuses to emit invalid UTF-8). */
static char *strdup_truncated(const char *s, size_t max) {
        size_t n = strlen(s);

        if (n > max) {
                n = max;
                while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
                        n--;
        }
        return strndup(s, n);
}

static int get_uint(json_t *o, const char *key, bool required, uint64_t max, uint64_t *ret, char **msg) {
        json_t *v = json_object_get(o, key);

        if (!v) {
                if (required)
                        return fail(msg, "missing field '%s'", key);
                return 0;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t) json_integer_value(v) > max)
                return fail(msg, "'%s' must be an integer from 0 to %llu", key,
                            (unsigned long long) max);
        *ret = (uint64_t) json_integer_value(v);
        return 1;
}

/* A string field: 0 when absent (and not required), 1 with *ret set. */
static int get_string(json_t *o, const char *key, bool required, const char **ret, char **msg) {
        json_t *v = json_object_get(o, key);

        if (!v) {
                if (required)
                        return fail(msg, "missing field '%s'", key);
                return 0;
        }
        if (!json_is_string(v))
                return fail(msg, "'%s' must be a string", key);
        *ret = json_string_value(v);
        return 1;
}

static int cert_cmp(const void *a, const void *b) {
        const CertExpiry *x = a, *y = b;

        if (x->not_after != y->not_after)
                return x->not_after < y->not_after ? -1 : 1;
        return strcmp(x->registry, y->registry);
}

/* Keep the REPORT_MAX_CERTS soonest expiries: replace the latest kept one
 * when a sooner one comes along, sort at the end. */
static int keep_cert(Report *r, const char *name, int64_t not_after) {
        size_t latest = 0;

        r->n_certs_total++;
        if (r->n_certs < REPORT_MAX_CERTS) {
                char *copy = strdup(name);
                if (!copy)
                        return -ENOMEM;
                r->certs[r->n_certs++] = (CertExpiry){ copy, not_after };
                return 0;
        }
        for (size_t i = 1; i < r->n_certs; i++)
                if (r->certs[i].not_after > r->certs[latest].not_after)
                        latest = i;
        if (not_after < r->certs[latest].not_after) {
                char *copy = strdup(name);
                if (!copy)
                        return -ENOMEM;
                free(r->certs[latest].registry);
                r->certs[latest] = (CertExpiry){ copy, not_after };
        }
        return 0;
}

/* An optional integer (or null) member of a registry: 0 absent or null, 1 set. */
static int get_registry_time(json_t *o, const char *key, size_t i, const char *where, int64_t *ret, char **msg) {
        json_t *v = json_object_get(o, key);

        if (!v || json_is_null(v))
                return 0;
        if (!json_is_integer(v))
                return fail(msg, "registries[%zu].%s%s must be an integer or null", i, where, key);
        *ret = json_integer_value(v);
        return 1;
}

/* registries[i].verification: the agent's TLS check of the registry with
 * the bundle it wrote. Only the state and the server's notAfter are kept;
 * reason, issuer and checked_at are checked for their type. */
static int parse_verification(RegistryEntry *e, json_t *v, size_t i, char **msg) {
        static const char *const strings[] = { "reason", "issuer" };
        VerificationState vs;
        const char *state;
        int64_t checked_at;
        int k;

        if (!v || json_is_null(v))
                return 0;
        if (!json_is_object(v))
                return fail(msg, "registries[%zu].verification must be an object or null", i);
        state = json_string_value(json_object_get(v, "state"));
        for (k = VERIFICATION_VERIFIED; state && k < _VERIFICATION_STATE_MAX; k++)
                if (streq(state, verification_state_to_string((VerificationState) k)))
                        break;
        if (!state || k == _VERIFICATION_STATE_MAX)
                return fail(msg, "registries[%zu].verification.state must be verified, mismatch or unreachable", i);
        vs = (VerificationState) k;
        for (size_t j = 0; j < ELEMENTSOF(strings); j++) {
                json_t *s = json_object_get(v, strings[j]);
                if (s && !json_is_null(s) && !json_is_string(s))
                        return fail(msg, "registries[%zu].verification.%s must be a string or null", i, strings[j]);
        }
        k = get_registry_time(v, "server_not_after", i, "verification.", &e->server_not_after, msg);
        if (k < 0)
                return k;
        e->has_server_not_after = k > 0;
        k = get_registry_time(v, "checked_at", i, "verification.", &checked_at, msg);
        if (k < 0)
                return k;
        e->verification = vs;
        return 0;
}

/* Keep what the per-registry view needs of registry i, while there is room
 * (REPORT_MAX_REGISTRIES); the rest only marks the list as cut. Everything is
 * checked before anything is kept. */
static int keep_registry(Report *r, size_t *alloc, const char *name, RegistryState s, json_t *e, size_t i,
                         char **msg) {
        RegistryEntry entry = { .state = s };
        json_t *fp;
        int k;

        fp = json_object_get(e, "fingerprint");
        if (fp && !json_is_null(fp)) {
                if (!json_is_string(fp) || !sha256_hex_is_valid(json_string_value(fp)))
                        return fail(msg, "registries[%zu].fingerprint must be 64 lowercase hex digits or null", i);
                memcpy(entry.fingerprint, json_string_value(fp), 65);
        }
        k = get_registry_time(e, "not_after", i, "", &entry.not_after, msg);
        if (k < 0)
                return k;
        entry.has_not_after = k > 0;
        k = parse_verification(&entry, json_object_get(e, "verification"), i, msg);
        if (k < 0)
                return k;

        if (r->n_entries >= REPORT_MAX_REGISTRIES) {
                r->entries_truncated = true;
                return 0;
        }
        if (r->n_entries == *alloc) {
                size_t a = *alloc ? *alloc * 2 : 8;
                RegistryEntry *p;

                if (a > REPORT_MAX_REGISTRIES)
                        a = REPORT_MAX_REGISTRIES;
                p = realloc(r->entries, a * sizeof *p);
                if (!p)
                        return -ENOMEM;
                r->entries = p;
                *alloc = a;
        }
        entry.name = strdup(name);
        if (!entry.name)
                return -ENOMEM;
        r->entries[r->n_entries++] = entry;
        return 0;
}

/* By name; a name listed twice (only a misbehaving agent does that) keeps
 * one of them, the same whatever the order it came in. */
static int entry_cmp(const void *a, const void *b) {
        const RegistryEntry *x = a, *y = b;
        int c = strcmp(x->name, y->name);

        if (c)
                return c;
        if (x->state != y->state)
                return x->state < y->state ? -1 : 1;
        if (x->verification != y->verification)
                return x->verification < y->verification ? -1 : 1;
        return strcmp(x->fingerprint, y->fingerprint);
}

static void sort_and_dedup_entries(Report *r) {
        size_t kept = 0;

        if (r->n_entries == 0)
                return;
        qsort(r->entries, r->n_entries, sizeof *r->entries, entry_cmp);
        for (size_t i = 0; i < r->n_entries; i++) {
                if (kept > 0 && streq(r->entries[kept - 1].name, r->entries[i].name)) {
                        free(r->entries[i].name);
                        continue;
                }
                r->entries[kept++] = r->entries[i];
        }
        r->n_entries = kept;
}

static int parse_registries(Report *r, json_t *regs, char **msg) {
        size_t alloc = 0;
        size_t i;
        json_t *e;

        if (!json_is_array(regs))
                return fail(msg, "'registries' must be an array");

        r->certs = calloc(REPORT_MAX_CERTS, sizeof *r->certs);
        if (!r->certs)
                return -ENOMEM;

        json_array_foreach(regs, i, e) {
                const char *name, *state;
                RegistryState s;
                json_t *na, *targets;
                int k;

                if (!json_is_object(e))
                        return fail(msg, "registries[%zu] must be an object", i);
                name = json_string_value(json_object_get(e, "name"));
                state = json_string_value(json_object_get(e, "state"));
                if (!name || !*name || strlen(name) > REPORT_MAX_REGISTRY_NAME)
                        return fail(msg, "registries[%zu].name must be a string of 1 to %u bytes",
                                    i, REPORT_MAX_REGISTRY_NAME);
                if (!state)
                        return fail(msg, "registries[%zu].state must be a string", i);
                for (k = 0; k < _REGISTRY_STATE_MAX; k++)
                        if (streq(state, registry_state_to_string((RegistryState) k)))
                                break;
                if (k == _REGISTRY_STATE_MAX)
                        return fail(msg,
                                    "registries[%zu].state must be applied, refused, conflict, failed or shadowed",
                                    i);
                s = (RegistryState) k;
                r->registries[s]++;

                /* Which runtime shadows it is the agent's business; the fleet
                 * view needs the registry's state only. */
                targets = json_object_get(e, "targets");
                if (targets && !json_is_object(targets))
                        return fail(msg, "registries[%zu].targets must be an object", i);

                k = keep_registry(r, &alloc, name, s, e, i, msg);
                if (k < 0)
                        return k;

                na = json_object_get(e, "not_after");
                if (na && !json_is_null(na)) {
                        k = keep_cert(r, name, json_integer_value(na));
                        if (k < 0)
                                return k;
                }
        }
        qsort(r->certs, r->n_certs, sizeof *r->certs, cert_cmp);
        sort_and_dedup_entries(r);
        return 0;
}

/* The agent's own counts by registry state. Only shadowed is taken from
 * here (the others are counted from 'registries'), but every count given
 * must be one. */
static int parse_registry_counts(Report *r, json_t *counts, char **msg) {
        static const char *const keys[] = { "applied", "refused", "conflict", "failed", "shadowed", "ignored" };

        if (!json_is_object(counts))
                return fail(msg, "'registry_counts' must be an object");
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                json_t *v = json_object_get(counts, keys[i]);

                if (!v)
                        continue;
                if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT_MAX)
                        return fail(msg, "registry_counts.%s must be an integer from 0 to %u", keys[i], UINT_MAX);
                if (streq(keys[i], "shadowed"))
                        r->registries[REGISTRY_SHADOWED] = (unsigned) json_integer_value(v);
        }
        return 0;
}

static int target_cmp(const void *a, const void *b) {
        const TargetStatus *x = a, *y = b;

        return strcmp(x->name, y->name);
}

static int parse_targets(Report *r, json_t *targets, char **msg) {
        const char *name;
        json_t *t;

        if (!json_is_object(targets))
                return fail(msg, "'targets' must be an object");
        if (json_object_size(targets) > REPORT_MAX_TARGETS)
                return fail(msg, "'targets' must have at most %u entries", REPORT_MAX_TARGETS);

        json_object_foreach(targets, name, t) {
                TargetStatus *ts = &r->targets[r->n_targets];
                const char *state;
                json_t *reason;
                int k;

                /* Checked first: only a valid name is echoed in a message. */
                if (!target_name_is_valid(name))
                        return fail(msg, "'targets' names must be 1 to %u characters of a-z, 0-9, '_' and '-'",
                                    REPORT_MAX_TARGET_NAME);
                if (!json_is_object(t))
                        return fail(msg, "targets.%s must be an object", name);
                state = json_string_value(json_object_get(t, "state"));
                for (k = 0; state && k < _TARGET_STATE_MAX; k++)
                        if (streq(state, target_state_to_string((TargetState) k)))
                                break;
                if (!state || k == _TARGET_STATE_MAX)
                        return fail(msg, "targets.%s.state must be active, not_installed or inactive", name);
                reason = json_object_get(t, "reason");
                if (reason && !json_is_null(reason) && !json_is_string(reason))
                        return fail(msg, "targets.%s.reason must be a string", name);

                memcpy(ts->name, name, strlen(name) + 1);
                ts->state = (TargetState) k;
                ts->reason = NULL;
                r->n_targets++;
                if (json_is_string(reason) &&
                    !(ts->reason = strdup_truncated(json_string_value(reason), REPORT_MAX_REASON_LEN)))
                        return -ENOMEM;
        }
        qsort(r->targets, r->n_targets, sizeof *r->targets, target_cmp);
        return 0;
}

static int parse_errors(Report *r, json_t *errs, char **msg) {
        size_t i;
        json_t *e;

        if (!json_is_array(errs))
                return fail(msg, "'errors' must be an array of strings");
        json_array_foreach(errs, i, e) {
                if (!json_is_string(e))
                        return fail(msg, "errors[%zu] must be a string", i);
                r->n_errors++;
                if (i < REPORT_MAX_ERRORS) {
                        _cleanup_free_ char *s = strdup_truncated(json_string_value(e), REPORT_MAX_ERROR_LEN);
                        if (!s || strv_extend(&r->errors, s) < 0)
                                return -ENOMEM;
                }
        }
        return 0;
}

static int parse_source(Report *r, json_t *src, char **msg) {
        const char *s;
        int k;

        if (!json_is_object(src))
                return fail(msg, "'source' must be an object");
        k = get_string(src, "hash", true, &s, msg);
        if (k < 0)
                return k;
        if (!sha256_hex_is_valid(s))
                return fail(msg, "source.hash must be 64 lowercase hex digits");
        memcpy(r->source_hash, s, 65);

        k = get_uint(src, "generation", false, INT64_MAX, &r->generation, msg);
        if (k < 0)
                return k;
        k = get_string(src, "kind", false, &s, msg);
        if (k < 0)
                return k;
        if (k > 0 && !(r->source_kind = strdup_truncated(s, 32)))
                return -ENOMEM;
        return 0;
}

static int parse_report(Report *r, json_t *root, RejectReason *why, char **msg) {
        const char *s;
        uint64_t u;
        json_t *v;
        int k;

        *why = REJECT_BAD_SCHEMA;
        if (!json_is_object(root))
                return fail(msg, "the report must be a JSON object");

        v = json_object_get(root, "schema");
        if (!json_is_integer(v) || json_integer_value(v) != 1)
                return fail(msg, "'schema' must be 1");

        k = get_string(root, "node", true, &s, msg);
        if (k < 0)
                return k;
        if (!node_name_is_valid(s)) {
                *why = REJECT_BAD_NODE_NAME;
                return fail(msg,
                            "'node' must be a Kubernetes node name (lowercase letters, digits, '-' and '.', at most 253)");
        }
        if (!(r->node = strdup(s)))
                return -ENOMEM;

        k = get_string(root, "agent_version", false, &s, msg);
        if (k < 0)
                return k;
        if (k > 0 && !(r->agent_version = strdup_truncated(s, 64)))
                return -ENOMEM;

        k = get_uint(root, "timestamp", false, INT64_MAX, &u, msg);
        if (k < 0)
                return k;
        r->timestamp = k > 0 ? (int64_t) u : 0;

        k = get_uint(root, "interval_seconds", false, REPORT_MAX_INTERVAL_SECONDS, &u, msg);
        if (k < 0)
                return k;
        if (k > 0 && u < 1)
                return fail(msg, "'interval_seconds' must be at least 1");
        r->interval_seconds = k > 0 ? (unsigned) u : 0;

        r->ready = true;
        v = json_object_get(root, "ready");
        if (v) {
                if (!json_is_boolean(v))
                        return fail(msg, "'ready' must be a boolean");
                r->ready = json_is_true(v);
        }

        v = json_object_get(root, "source");
        if (!v)
                return fail(msg, "missing field 'source'");
        k = parse_source(r, v, msg);
        if (k < 0)
                return k;

        v = json_object_get(root, "applied_hash");
        if (v && !json_is_null(v)) {
                if (!json_is_string(v) || !sha256_hex_is_valid(json_string_value(v)))
                        return fail(msg, "'applied_hash' must be 64 lowercase hex digits or null");
                memcpy(r->applied_hash, json_string_value(v), 65);
        }

        v = json_object_get(root, "errors");
        if (v && (k = parse_errors(r, v, msg)) < 0)
                return k;

        v = json_object_get(root, "registries");
        if (v && (k = parse_registries(r, v, msg)) < 0)
                return k;

        /* After the registries: its shadowed count wins over theirs. */
        v = json_object_get(root, "registry_counts");
        if (v && (k = parse_registry_counts(r, v, msg)) < 0)
                return k;

        v = json_object_get(root, "targets");
        if (v && (k = parse_targets(r, v, msg)) < 0)
                return k;

        v = json_object_get(root, "soonest_expiry");
        if (v && !json_is_null(v)) {
                if (!json_is_integer(v))
                        return fail(msg, "'soonest_expiry' must be an integer or null");
                r->has_soonest_expiry = true;
                r->soonest_expiry = json_integer_value(v);
        } else if (r->n_certs > 0) {
                /* An older agent may leave it out; the registries tell. */
                r->has_soonest_expiry = true;
                r->soonest_expiry = r->certs[0].not_after;
        }

        v = json_object_get(root, "pull_secret");
        if (v && !json_is_null(v)) {
                if (!json_is_object(v))
                        return fail(msg, "'pull_secret' must be an object");
                k = get_string(v, "state", false, &s, msg);
                if (k < 0)
                        return k;
                if (k > 0) {
                        if (!streq(s, "absent") && !streq(s, "applied") && !streq(s, "invalid"))
                                return fail(msg, "pull_secret.state must be absent, applied or invalid");
                        if (!(r->pull_secret_state = strdup(s)))
                                return -ENOMEM;
                }
        }
        return 0;
}

int report_parse(const char *data, size_t size, Report **ret, RejectReason *ret_why, char **ret_message) {
        json_auto_t *root = NULL;
        _cleanup_(report_freep) Report *r = NULL;
        RejectReason why = REJECT_BAD_JSON;
        json_error_t err;
        int k;

        /* A request without a body has "" (httpd.h). NULL is let through
         * with size 0 only: jansson refuses it as invalid JSON, as before. */
        assert(data || size == 0);
        assert(ret);
        assert(ret_why);
        assert(ret_message);

        *ret_message = NULL;
        root = json_loadb(data, size, JSON_REJECT_DUPLICATES, &err);
        if (!root) {
                *ret_why = REJECT_BAD_JSON;
                return fail(ret_message, "invalid JSON at line %d column %d: %s", err.line,
                            err.column, err.text);
        }

        r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        k = parse_report(r, root, &why, ret_message);
        if (k < 0) {
                *ret_why = why;
                return k == -ENOMEM ? k : -EINVAL;
        }
        *ret = TAKE_PTR(r);
        return 0;
}
