/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "state.h"
#include "strv.h"
#include "utf8.h"

static const char *const registry_state_names[_REGISTRY_STATE_MAX] = {
        [REGISTRY_APPLIED] = "applied",
        [REGISTRY_REFUSED] = "refused",
        [REGISTRY_CONFLICT] = "conflict",
        [REGISTRY_FAILED] = "failed",
        [REGISTRY_SHADOWED] = "shadowed",
};

static const char *const registry_target_state_names[_REGISTRY_TARGET_STATE_MAX] = {
        [REGISTRY_TARGET_APPLIED] = "applied",
        [REGISTRY_TARGET_CONFLICT] = "conflict",
        [REGISTRY_TARGET_SHADOWED] = "shadowed",
        [REGISTRY_TARGET_FAILED] = "failed",
        [REGISTRY_TARGET_INACTIVE] = "inactive",
};

static const char *const pull_secret_status_names[_PULL_SECRET_STATUS_MAX] = {
        [PULL_SECRET_ABSENT] = "absent",
        [PULL_SECRET_INVALID] = "invalid",
        [PULL_SECRET_VALID] = "applied",
};

const char *pull_secret_status_to_string(PullSecretStatus s) {
        return s >= 0 && s < _PULL_SECRET_STATUS_MAX ? pull_secret_status_names[s] : "unknown";
}

static const char *const verify_state_names[_VERIFY_STATE_MAX] = {
        [VERIFY_NOT_CHECKED] = "not_checked",
        [VERIFY_VERIFIED] = "verified",
        [VERIFY_MISMATCH] = "mismatch",
        [VERIFY_UNREACHABLE] = "unreachable",
};

const char *verify_state_to_string(VerifyStateType t) {
        return t >= 0 && t < _VERIFY_STATE_MAX ? verify_state_names[t] : "unknown";
}

void registry_verification_done(RegistryVerification *v) {
        if (!v)
                return;
        free(v->reason);
        free(v->issuer);
        *v = (RegistryVerification){};
}

static int registry_verification_copy(RegistryVerification *dst, const RegistryVerification *src) {
        RegistryVerification c = *src;

        c.reason = src->reason ? strdup(src->reason) : NULL;
        c.issuer = src->issuer ? strdup(src->issuer) : NULL;
        if ((src->reason && !c.reason) || (src->issuer && !c.issuer)) {
                registry_verification_done(&c);
                return -ENOMEM;
        }
        registry_verification_done(dst);
        *dst = c;
        return 0;
}

static bool registry_verification_equal(const RegistryVerification *a, const RegistryVerification *b) {
        return a->state == b->state && streq_ptr(a->reason, b->reason) && streq_ptr(a->issuer, b->issuer) &&
               a->server_not_after == b->server_not_after;
}

const char *registry_target_state_to_string(RegistryTargetStateType t) {
        return t >= 0 && t < _REGISTRY_TARGET_STATE_MAX ? registry_target_state_names[t] : "unknown";
}

const char *registry_state_to_string(RegistryStateType t) {
        return t >= 0 && t < _REGISTRY_STATE_MAX ? registry_state_names[t] : "unknown";
}

/* A copy of s with every byte that is not printable UTF-8 replaced. */
static char *printable_dup(const char *s) {
        char *c = strdup(s);

        return c ? utf8_printable(c) : NULL;
}

static void results_free(RegistryResult *r, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(r[i].key);
                free(r[i].registry);
                free(r[i].reason);
                for (size_t k = 0; k < ELEMENTSOF(targets); k++)
                        free(r[i].targets[k].reason);
                registry_verification_done(&r[i].verify);
        }
        free(r);
}

static int set_reason(char **field, const char *prefix, const char *why) {
        free(*field);
        *field = NULL;
        if (prefix)
                return asprintf(field, "%s: %s", prefix, why) < 0 ? -ENOMEM : 0;
        return (*field = strdup(why)) ? 0 : -ENOMEM;
}

void state_set_runtime(State *s, RuntimeStatus *rs) {
        assert(s);
        assert(rs);

        if (!runtime_status_equal(&s->runtime, rs))
                s->revision++;
        runtime_status_done(&s->runtime);
        s->runtime = *rs;
        *rs = (RuntimeStatus){};
        s->n_inactive_targets = 0;
        for (size_t i = 0; i < ELEMENTSOF(targets); i++)
                s->n_inactive_targets += s->runtime.targets[i].enabled &&
                                         s->runtime.targets[i].state == TARGET_STATE_INACTIVE;
}

/* Record one plan action in its registry's result for that target. The
 * worst outcome wins: failed > conflict > shadowed > applied. */
static int result_add_action(RegistryTargetResult *rt, const PlanAction *pa) {
        _cleanup_free_ char *why = NULL;

        rt->enabled = true;
        if (pa->error < 0) {
                rt->state = REGISTRY_TARGET_FAILED;
                if (asprintf(&why, "writing %s: %s", pa->file, strerror(-pa->error)) < 0)
                        return -ENOMEM;
                return set_reason(&rt->reason, NULL, why);
        }
        if (rt->state == REGISTRY_TARGET_FAILED)
                return 0;
        /* Someone else's hosts.toml is not a conflict of the registry: its
         * verdict is the ca.crt action's shadowed. */
        if (pa->type == ACTION_CONFLICT && streq(pa->file, CA_FILE)) {
                rt->state = REGISTRY_TARGET_CONFLICT;
                return set_reason(&rt->reason, NULL, pa->reason ? pa->reason : "conflict");
        }
        /* Applied through it: still say the file is not ours. */
        if (pa->type == ACTION_CONFLICT && rt->state == REGISTRY_TARGET_APPLIED && !rt->reason && pa->reason)
                return set_reason(&rt->reason, NULL, pa->reason);
        if (pa->shadowed && rt->state != REGISTRY_TARGET_CONFLICT) {
                rt->state = REGISTRY_TARGET_SHADOWED;
                return set_reason(&rt->reason, NULL, pa->shadowed);
        }
        return 0;
}

/* The registry's own state and reason from its targets'. A target whose
 * runtime does not read it says inactive there; the target's own warning
 * covers that, so it does not make the registry worse. */
static int result_finish(RegistryResult *r, const RuntimeStatus *rs) {
        static const RegistryStateType from_target[] = {
                [REGISTRY_TARGET_APPLIED] = REGISTRY_APPLIED, [REGISTRY_TARGET_CONFLICT] = REGISTRY_CONFLICT,
                [REGISTRY_TARGET_SHADOWED] = REGISTRY_SHADOWED, [REGISTRY_TARGET_FAILED] = REGISTRY_FAILED,
                [REGISTRY_TARGET_INACTIVE] = REGISTRY_APPLIED,
        };
        static const int rank[_REGISTRY_STATE_MAX] = {
                [REGISTRY_APPLIED] = 0, [REGISTRY_SHADOWED] = 1, [REGISTRY_CONFLICT] = 2, [REGISTRY_FAILED] = 3,
        };
        int r_;

        r->state = REGISTRY_APPLIED;
        for (size_t k = 0; k < ELEMENTSOF(targets); k++) {
                RegistryTargetResult *rt = &r->targets[k];
                const TargetStatus *ts = &rs->targets[k];
                RegistryStateType st;

                if (!rt->enabled)
                        continue;
                if ((rt->state == REGISTRY_TARGET_APPLIED || rt->state == REGISTRY_TARGET_SHADOWED) && ts->enabled &&
                    ts->state != TARGET_STATE_ACTIVE) {
                        rt->state = REGISTRY_TARGET_INACTIVE;
                        r_ = set_reason(&rt->reason, NULL, ts->reason ? ts->reason : target_state_to_string(ts->state));
                        if (r_ < 0)
                                return r_;
                }
                st = from_target[rt->state];
                if (rank[st] > rank[r->state] || (st != REGISTRY_APPLIED && rank[st] == rank[r->state])) {
                        r->state = st;
                        r_ = set_reason(&r->reason, targets[k].name, rt->reason);
                        if (r_ < 0)
                                return r_;
                }
        }
        return 0;
}

static bool result_differs(const RegistryResult *a, const RegistryResult *b) {
        if (a->state != b->state || !streq_ptr(a->reason, b->reason))
                return true;
        for (size_t k = 0; k < ELEMENTSOF(targets); k++) {
                const RegistryTargetResult *x = &a->targets[k], *y = &b->targets[k];
                if (x->enabled != y->enabled || x->state != y->state || !streq_ptr(x->reason, y->reason))
                        return true;
        }
        return false;
}

/* What the report shows of a result (status.c, STATUS_DETAIL_REPORT): a
 * difference only /status shows (certificate count, a note on an applied
 * registry's target) tells the aggregator nothing and sends no report. */
static bool result_report_equal(const RegistryResult *a, const RegistryResult *b) {
        bool show_targets = a->state == REGISTRY_CONFLICT || a->state == REGISTRY_FAILED ||
                            a->state == REGISTRY_SHADOWED;

        if (a->state != b->state || !streq(a->key, b->key) || !streq_ptr(a->registry, b->registry) ||
            !streq_ptr(a->reason, b->reason) || a->expired != b->expired || a->not_yet_valid != b->not_yet_valid)
                return false;
        if (a->state != REGISTRY_REFUSED && (!streq(a->fingerprint, b->fingerprint) || a->not_after != b->not_after))
                return false;
        if (!registry_verification_equal(&a->verify, &b->verify))
                return false;
        for (size_t k = 0; show_targets && k < ELEMENTSOF(targets); k++) {
                const RegistryTargetResult *x = &a->targets[k], *y = &b->targets[k];
                if (x->enabled != y->enabled || (x->enabled && (x->state != y->state || !streq_ptr(x->reason, y->reason))))
                        return false;
        }
        return true;
}

static bool results_equal(const RegistryResult *a, size_t n_a, const RegistryResult *b, size_t n_b) {
        if (n_a != n_b)
                return false;
        for (size_t i = 0; i < n_a; i++)
                if (!result_report_equal(&a[i], &b[i]))
                        return false;
        return true;
}

static int result_cmp_registry(const void *key, const void *elem) {
        return strcmp(key, ((const RegistryResult *) elem)->registry);
}

int state_set_registries(State *s, const TrustSet *t, const Plan *p) {
        unsigned applied = 0, refused = 0, conflicts = 0, failed = 0, shadowed = 0;
        RegistryResult *res;
        size_t n;
        int r;

        assert(s);
        assert(t);

        n = t->n_entries + t->n_refused;
        res = calloc(n ? n : 1, sizeof *res);
        if (!res)
                return -ENOMEM;

        for (size_t i = 0; i < t->n_entries; i++) {
                const TrustEntry *e = &t->entries[i];
                RegistryResult *rr = &res[i];

                rr->key = strdup(e->key);
                rr->registry = strdup(e->registry);
                if (!rr->key || !rr->registry)
                        goto oom;
                memcpy(rr->fingerprint, e->fingerprint, sizeof rr->fingerprint);
                rr->not_after = cert_bundle_not_after(e->bundle);
                rr->n_certs = (unsigned) e->bundle->n_certs;
                rr->expired = e->expired;
                rr->not_yet_valid = e->not_yet_valid;
        }

        /* One pass over the plan: every action with an entry points into
         * t->entries, so its index is its result's. */
        for (size_t a = 0; p && a < p->n_actions; a++) {
                const PlanAction *pa = &p->actions[a];
                if (!pa->entry || pa->entry < t->entries || pa->entry >= t->entries + t->n_entries)
                        continue;
                r = result_add_action(&res[pa->entry - t->entries].targets[pa->target - targets], pa);
                if (r < 0)
                        goto oom;
        }

        for (size_t i = 0; i < t->n_entries; i++) {
                RegistryResult *rr = &res[i];
                const RegistryResult *old;

                if (result_finish(rr, &s->runtime) < 0)
                        goto oom;
                applied += rr->state == REGISTRY_APPLIED;
                conflicts += rr->state == REGISTRY_CONFLICT;
                failed += rr->state == REGISTRY_FAILED;
                shadowed += rr->state == REGISTRY_SHADOWED;
                old = s->registries ? bsearch(rr->registry, s->registries, s->n_valid, sizeof *s->registries,
                                              result_cmp_registry)
                                    : NULL;
                rr->changed = !old || result_differs(rr, old);
                /* A check holds for the bundle it checked. */
                if (old && old->verify.state != VERIFY_NOT_CHECKED && streq(old->verify.fingerprint, rr->fingerprint) &&
                    registry_verification_copy(&rr->verify, &old->verify) < 0)
                        goto oom;
        }
        for (size_t i = 0; i < t->n_refused; i++) {
                RegistryResult *rr = &res[t->n_entries + i];
                /* A refused key may hold any bytes (a plain directory's
                 * file name): the State shows it as printable UTF-8, so
                 * /status, the report and the node condition stay whole. */
                rr->key = printable_dup(t->refused[i].key);
                rr->registry = t->refused[i].registry ? strdup(t->refused[i].registry) : NULL;
                rr->reason = printable_dup(t->refused[i].reason);
                rr->state = REGISTRY_REFUSED;
                if (!rr->key || !rr->reason || (t->refused[i].registry && !rr->registry))
                        goto oom;
                refused++;
        }

        if (!results_equal(res, n, s->registries, s->n_registries) || s->n_ignored != strv_length(t->ignored))
                s->revision++;
        results_free(s->registries, s->n_registries);
        s->registries = res;
        s->n_registries = n;
        s->n_valid = t->n_entries;
        s->n_applied = applied;
        s->n_refused = refused;
        s->n_conflicts = conflicts;
        s->n_failed = failed;
        s->n_shadowed = shadowed;
        s->n_ignored = (unsigned) strv_length(t->ignored);
        return 0;
oom:
        results_free(res, n);
        return -ENOMEM;
}

time_t state_soonest_expiry(const State *s) {
        time_t t = 0;

        assert(s);
        for (size_t i = 0; i < s->n_registries; i++) {
                const RegistryResult *r = &s->registries[i];
                if (r->state != REGISTRY_REFUSED && r->not_after && (t == 0 || r->not_after < t))
                        t = r->not_after;
        }
        return t;
}

int state_set_error(State *s, const char *error) {
        char *e = NULL;

        assert(s);

        if (error && !(e = strdup(error)))
                return -ENOMEM;
        /* Whatever a reason quotes (a key, a server's answer), it leaves
         * as one printable line of UTF-8. */
        if (e)
                (void) utf8_one_line(e);
        if (streq_ptr(s->last_error, e)) {
                free(e);
                return 0;
        }
        free(s->last_error);
        s->last_error = e;
        s->revision++;
        return 0;
}

bool state_set_source(State *s, const char *hash, const char *origin) {
        assert(s);
        assert(hash);

        if (s->first_sync_done && streq(hash, s->source_hash))
                return false;
        s->generation++;
        s->revision++;
        snprintf(s->source_hash, sizeof s->source_hash, "%s", hash);
        free(s->source_origin);
        s->source_origin = origin ? strdup(origin) : NULL;
        return true;
}

void state_sync_done(State *s, bool ok, const char *error) {
        assert(s);

        if (!s->first_sync_done || s->last_sync_ok != ok)
                s->revision++;
        s->first_sync_done = true;
        s->last_sync_ok = ok;
        (void) state_set_error(s, ok ? NULL : (error ? error : "sync failed"));
        if (ok) {
                s->last_success = s->last_sync;
                if (!streq(s->applied_hash, s->source_hash)) {
                        memcpy(s->applied_hash, s->source_hash, sizeof s->applied_hash);
                        s->revision++;
                }
        } else
                s->sync_failures_total++;
}

void state_set_failed(State *s, const char *error) {
        assert(s);

        if (s->last_sync_ok)
                s->revision++;
        s->last_sync_ok = false;
        (void) state_set_error(s, error ? error : "sync failed");
}

bool state_is_ready(const State *s, bool source_healthy, const char *source_reason, const char **reason) {
        assert(s);
        assert(reason);

        *reason = NULL;
        if (!s->first_sync_done) {
                *reason = "the first sync has not completed";
                return false;
        }
        if (!s->last_sync_ok) {
                *reason = s->last_error ? s->last_error : "the last sync failed";
                return false;
        }
        if (!source_healthy) {
                *reason = source_reason;
                return false;
        }
        return true;
}

int state_set_pull_secret(State *s, PullSecretStatus status, const char *hash, const char *error) {
        char *e = NULL;
        bool changed;

        assert(s);

        if (error && !(e = strdup(error)))
                return -ENOMEM;
        changed = !s->pull_secret_synced || s->pull_secret_status != status ||
                  !streq(s->pull_secret_error ?: "", error ?: "");
        /* The report shows the state and the hash, not the error. */
        if (!s->pull_secret_synced || s->pull_secret_status != status || (hash && !streq(hash, s->pull_secret_hash)))
                s->revision++;
        s->pull_secret_synced = true;
        s->pull_secret_status = status;
        free(s->pull_secret_error);
        s->pull_secret_error = e;
        if (hash)
                snprintf(s->pull_secret_hash, sizeof s->pull_secret_hash, "%s", hash);
        return changed;
}

int state_set_verification(State *s, const char *registry, const RegistryVerification *v) {
        RegistryResult *r;
        bool changed;
        int k;

        assert(s);
        assert(registry);
        assert(v);

        r = s->registries ? bsearch(registry, s->registries, s->n_valid, sizeof *s->registries, result_cmp_registry)
                          : NULL;
        if (!r)
                return -ENOENT;
        if (!streq(r->fingerprint, v->fingerprint))
                return -ESTALE;
        changed = !registry_verification_equal(&r->verify, v);
        k = registry_verification_copy(&r->verify, v);
        if (k < 0)
                return k;
        if (changed)
                s->revision++;
        return changed;
}

void state_done(State *s) {
        results_free(s->registries, s->n_registries);
        runtime_status_done(&s->runtime);
        free(s->last_error);
        free(s->source_origin);
        free(s->pull_secret_error);
        *s = (State){};
}
