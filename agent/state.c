/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "state.h"
#include "strv.h"

static const char *const registry_state_names[_REGISTRY_STATE_MAX] = {
        [REGISTRY_APPLIED] = "applied",
        [REGISTRY_REFUSED] = "refused",
        [REGISTRY_CONFLICT] = "conflict",
        [REGISTRY_FAILED] = "failed",
};

const char *registry_state_to_string(RegistryStateType t) {
        return t >= 0 && t < _REGISTRY_STATE_MAX ? registry_state_names[t] : "unknown";
}

static void results_free(RegistryResult *r, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(r[i].key);
                free(r[i].registry);
                free(r[i].reason);
        }
        free(r);
}

static int set_reason(RegistryResult *r, const char *target, const char *why) {
        free(r->reason);
        r->reason = NULL;
        return asprintf(&r->reason, "%s: %s", target, why) < 0 ? -ENOMEM : 0;
}

int state_set_registries(State *s, const TrustSet *t, const Plan *p) {
        size_t n = t->n_entries + t->n_refused;
        RegistryResult *res = calloc(n ? n : 1, sizeof *res);
        unsigned applied = 0, refused = 0, conflicts = 0, failed = 0;

        if (!res)
                return -ENOMEM;

        for (size_t i = 0; i < t->n_entries; i++) {
                const TrustEntry *e = &t->entries[i];
                RegistryResult *r = &res[i];

                r->key = strdup(e->key);
                r->registry = strdup(e->registry);
                if (!r->key || !r->registry)
                        goto oom;
                memcpy(r->fingerprint, e->fingerprint, sizeof r->fingerprint);
                r->not_after = cert_bundle_not_after(e->bundle);
                r->n_certs = (unsigned) e->bundle->n_certs;
                r->expired = e->expired;
                r->not_yet_valid = e->not_yet_valid;
                r->state = REGISTRY_APPLIED;

                /* The worst outcome over the targets decides: failed > conflict. */
                for (size_t a = 0; p && a < p->n_actions; a++) {
                        const PlanAction *pa = &p->actions[a];
                        if (pa->entry != e)
                                continue;
                        if (pa->error < 0) {
                                r->state = REGISTRY_FAILED;
                                if (set_reason(r, pa->target->name, strerror(-pa->error)) < 0)
                                        goto oom;
                        } else if (pa->type == ACTION_CONFLICT && r->state != REGISTRY_FAILED) {
                                r->state = REGISTRY_CONFLICT;
                                if (set_reason(r, pa->target->name, pa->reason ? pa->reason : "conflict") < 0)
                                        goto oom;
                        }
                }
                applied += r->state == REGISTRY_APPLIED;
                conflicts += r->state == REGISTRY_CONFLICT;
                failed += r->state == REGISTRY_FAILED;
        }
        for (size_t i = 0; i < t->n_refused; i++) {
                RegistryResult *r = &res[t->n_entries + i];
                r->key = strdup(t->refused[i].key);
                r->registry = t->refused[i].registry ? strdup(t->refused[i].registry) : NULL;
                r->reason = strdup(t->refused[i].reason);
                r->state = REGISTRY_REFUSED;
                if (!r->key || !r->reason || (t->refused[i].registry && !r->registry))
                        goto oom;
                refused++;
        }

        results_free(s->registries, s->n_registries);
        s->registries = res;
        s->n_registries = n;
        s->n_applied = applied;
        s->n_refused = refused;
        s->n_conflicts = conflicts;
        s->n_failed = failed;
        s->n_ignored = (unsigned) strv_length(t->ignored);
        return 0;
oom:
        results_free(res, n);
        return -ENOMEM;
}

time_t state_soonest_expiry(const State *s) {
        time_t t = 0;
        for (size_t i = 0; i < s->n_registries; i++) {
                const RegistryResult *r = &s->registries[i];
                if (r->state != REGISTRY_REFUSED && r->not_after && (t == 0 || r->not_after < t))
                        t = r->not_after;
        }
        return t;
}

int state_set_error(State *s, const char *error) {
        char *e = NULL;

        if (error && !(e = strdup(error)))
                return -ENOMEM;
        free(s->last_error);
        s->last_error = e;
        return 0;
}

void state_done(State *s) {
        results_free(s->registries, s->n_registries);
        free(s->last_error);
        free(s->source_origin);
        free(s->pull_secret_error);
        *s = (State){};
}
