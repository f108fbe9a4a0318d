/* SPDX-License-Identifier: MIT */
/*
 * A report's registries: each entry checked (name, state, fingerprint,
 * not_after, verification) and kept bounded, sorted and one per name, with
 * the soonest certificate expiries; and registry_counts.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest-internal.h"
#include "ingest.h"
#include "strv.h"

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
static int get_registry_time(const Jv *o, const char *key, size_t i, const char *where, int64_t *ret, char **msg) {
        const Jv *v = jv_get(o, key);

        if (!v || jv_is_null(v))
                return 0;
        if (!jv_is_integer(v))
                return ingest_fail(msg, "registries[%zu].%s%s must be an integer or null", i, where, key);
        *ret = jv_integer(v);
        return 1;
}

/* registries[i].verification: the agent's TLS check of the registry with
 * the bundle it wrote. Only the state and the server's notAfter are kept;
 * reason, issuer and checked_at are checked for their type. */
static int parse_verification(RegistryEntry *e, const Jv *v, size_t i, char **msg) {
        static const char *const strings[] = { "reason", "issuer" };
        VerificationState vs;
        const char *state;
        int64_t checked_at;
        int k;

        if (!v || jv_is_null(v))
                return 0;
        if (!jv_is_object(v))
                return ingest_fail(msg, "registries[%zu].verification must be an object or null", i);
        state = jv_string(jv_get(v, "state"));
        for (k = VERIFICATION_VERIFIED; state && k < _VERIFICATION_STATE_MAX; k++)
                if (streq(state, verification_state_to_string((VerificationState) k)))
                        break;
        if (!state || k == _VERIFICATION_STATE_MAX)
                return ingest_fail(msg, "registries[%zu].verification.state must be verified, mismatch or unreachable", i);
        vs = (VerificationState) k;
        for (size_t j = 0; j < ELEMENTSOF(strings); j++) {
                const Jv *s = jv_get(v, strings[j]);
                if (s && !jv_is_null(s) && !jv_is_string(s))
                        return ingest_fail(msg, "registries[%zu].verification.%s must be a string or null", i, strings[j]);
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
static int keep_registry(Report *r, size_t *alloc, const char *name, RegistryState s, const Jv *e, size_t i,
                         char **msg) {
        RegistryEntry entry = { .state = s };
        const Jv *fp;
        int k;

        fp = jv_get(e, "fingerprint");
        if (fp && !jv_is_null(fp)) {
                if (!jv_is_string(fp) || !sha256_hex_is_valid(jv_string(fp)))
                        return ingest_fail(msg, "registries[%zu].fingerprint must be 64 lowercase hex digits or null", i);
                memcpy(entry.fingerprint, jv_string(fp), 65);
        }
        k = get_registry_time(e, "not_after", i, "", &entry.not_after, msg);
        if (k < 0)
                return k;
        entry.has_not_after = k > 0;
        k = parse_verification(&entry, jv_get(e, "verification"), i, msg);
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

int ingest_parse_registries(Report *r, const Jv *regs, char **msg) {
        size_t alloc = 0;
        size_t i;
        const Jv *e;

        if (!jv_is_array(regs))
                return ingest_fail(msg, "'registries' must be an array");

        r->certs = calloc(REPORT_MAX_CERTS, sizeof *r->certs);
        if (!r->certs)
                return -ENOMEM;

        jv_array_foreach(regs, i, e) {
                const char *name, *state;
                RegistryState s;
                const Jv *na, *targets;
                int k;

                if (!jv_is_object(e))
                        return ingest_fail(msg, "registries[%zu] must be an object", i);
                name = jv_string(jv_get(e, "name"));
                state = jv_string(jv_get(e, "state"));
                if (!name || !*name || strlen(name) > REPORT_MAX_REGISTRY_NAME)
                        return ingest_fail(msg, "registries[%zu].name must be a string of 1 to %u bytes",
                                    i, REPORT_MAX_REGISTRY_NAME);
                if (!state)
                        return ingest_fail(msg, "registries[%zu].state must be a string", i);
                for (k = 0; k < _REGISTRY_STATE_MAX; k++)
                        if (streq(state, registry_state_to_string((RegistryState) k)))
                                break;
                if (k == _REGISTRY_STATE_MAX)
                        return ingest_fail(msg,
                                    "registries[%zu].state must be applied, refused, conflict, failed or shadowed",
                                    i);
                s = (RegistryState) k;
                r->registries[s]++;

                /* Which runtime shadows it is the agent's business; the fleet
                 * view needs the registry's state only. */
                targets = jv_get(e, "targets");
                if (targets && !jv_is_object(targets))
                        return ingest_fail(msg, "registries[%zu].targets must be an object", i);

                k = keep_registry(r, &alloc, name, s, e, i, msg);
                if (k < 0)
                        return k;

                na = jv_get(e, "not_after");
                if (na && !jv_is_null(na)) {
                        k = keep_cert(r, name, jv_integer(na));
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
int ingest_parse_registry_counts(Report *r, const Jv *counts, char **msg) {
        static const char *const keys[] = { "applied", "refused", "conflict", "failed", "shadowed", "ignored" };

        if (!jv_is_object(counts))
                return ingest_fail(msg, "'registry_counts' must be an object");
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const Jv *v = jv_get(counts, keys[i]);

                if (!v)
                        continue;
                if (!jv_is_integer(v) || jv_integer(v) < 0 || jv_integer(v) > UINT_MAX)
                        return ingest_fail(msg, "registry_counts.%s must be an integer from 0 to %u", keys[i], UINT_MAX);
                if (streq(keys[i], "shadowed"))
                        r->registries[REGISTRY_SHADOWED] = (unsigned) jv_integer(v);
        }
        return 0;
}
