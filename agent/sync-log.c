/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "cleanup.h"
#include "containerd-hosts.h"
#include "log.h"
#include "sync-log.h"

#define SYNC_LOG_MAX_REFUSED 100

void sync_log_plan(const Plan *p, const TrustSet *t, bool content_changed) {
        assert(p);
        assert(t);

        for (size_t i = 0; i < p->n_actions; i++) {
                const PlanAction *a = &p->actions[i];
                const char *what = NULL;

                if (a->error < 0) {
                        log_full(LOG_ERR, "Failed to apply registry CA", "REGISTRY=%s", a->registry,
                                 "TARGET=%s", a->target->name, "FILE=%s", a->file,
                                 "ACTION=%s", action_type_to_string(a->type),
                                 "ERROR=%s", strerror(-a->error), NULL);
                        continue;
                }
                bool hosts = streq(a->file, HOSTS_FILE);
                switch (a->type) {
                case ACTION_CREATE: what = hosts ? "Created containerd hosts.toml" : "Created registry CA"; break;
                case ACTION_UPDATE: what = hosts ? "Updated containerd hosts.toml" : "Updated registry CA"; break;
                case ACTION_REMOVE: what = hosts ? "Removed containerd hosts.toml" : "Removed registry CA"; break;
                default: break;
                }
                if (what)
                        log_full(LOG_INFO, what, "REGISTRY=%s", a->registry, "TARGET=%s", a->target->name,
                                 "FILE=%s", a->file, "FINGERPRINT=%s", a->entry ? a->entry->fingerprint : "-", NULL);
                /* Conflicts and refusals repeat on every resync; say them
                 * once per content change, not every few minutes. */
                else if (a->type == ACTION_CONFLICT && content_changed)
                        log_full(LOG_WARNING, "Conflict, left untouched", "REGISTRY=%s", a->registry,
                                 "TARGET=%s", a->target->name, "FILE=%s", a->file, "REASON=%s", a->reason, NULL);
                else if (a->type == ACTION_DISOWN)
                        log_full(LOG_WARNING, "Registry CA left in place", "REGISTRY=%s", a->registry, "TARGET=%s",
                                 a->target->name, "REASON=%s", a->reason ? a->reason : "-", NULL);
                else if (a->type == ACTION_KEEP && content_changed)
                        log_full(LOG_WARNING, "Key refused; keeping the last good CA", "REGISTRY=%s",
                                 a->registry, "TARGET=%s", a->target->name, NULL);
        }
        /* Written, but an operator must hear that the CA will not verify. */
        for (size_t i = 0; content_changed && i < t->n_entries; i++) {
                const TrustEntry *e = &t->entries[i];
                if (e->expired || e->not_yet_valid)
                        log_full(LOG_WARNING,
                                 e->expired ? "CA bundle holds an expired certificate; written anyway"
                                            : "CA bundle holds a certificate that is not yet valid; written anyway",
                                 "REGISTRY=%s", e->registry, "FINGERPRINT=%s", e->fingerprint, NULL);
        }
        /* A line per refused key, up to a bound: a directory of 100,000
         * entries must not log 96,000 lines at each change. /status
         * lists them all. */
        for (size_t i = 0; content_changed && i < t->n_refused && i < SYNC_LOG_MAX_REFUSED; i++)
                log_full(LOG_WARNING, "Refused key", "KEY=%s", t->refused[i].key, "REASON=%s",
                         t->refused[i].reason, NULL);
        if (content_changed && t->n_refused > SYNC_LOG_MAX_REFUSED)
                log_warning("%zu more keys refused, not logged one by one; /status lists them all",
                            t->n_refused - SYNC_LOG_MAX_REFUSED);
}

void sync_notify(const State *s, bool first) {
        char status[512];

        assert(s);

        if (s->last_sync_ok) {
                int n = snprintf(status, sizeof status,
                                 "Trusting %u registries (%u refused, %u conflicting, %u shadowed), generation %llu",
                                 s->n_applied, s->n_refused, s->n_conflicts, s->n_shadowed,
                                 (unsigned long long) s->generation);
                /* A runtime that will not read what we write is said here
                 * too, where systemctl status shows it. */
                for (size_t i = 0; i < ELEMENTSOF(targets) && n > 0 && (size_t) n < sizeof status; i++) {
                        const TargetStatus *ts = &s->runtime.targets[i];
                        if (ts->enabled && ts->state == TARGET_STATE_INACTIVE)
                                n += snprintf(status + n, sizeof status - (size_t) n, "; %s inactive: %s",
                                              targets[i].name, ts->reason);
                }
        } else
                snprintf(status, sizeof status, "Degraded: %s", s->last_error ? s->last_error : "sync failed");
        (void) sd_notifyf(false, "%sSTATUS=%s", first ? "READY=1\n" : "", status);
}

/* Say a target's change of state once, when it happens. */
void sync_log_runtime(const RuntimeStatus *old, const RuntimeStatus *now) {
        assert(old);
        assert(now);

        for (size_t i = 0; i < ELEMENTSOF(targets); i++) {
                const TargetStatus *o = &old->targets[i], *n = &now->targets[i];
                if (!n->enabled || target_status_equal(o, n))
                        continue;
                log_full(n->state == TARGET_STATE_INACTIVE ? LOG_WARNING : LOG_INFO,
                         n->state == TARGET_STATE_INACTIVE ? "Target inactive: its runtime will not read what nodetrustd writes"
                         : n->state == TARGET_STATE_ACTIVE ? "Target active"
                                                           : "Target's runtime is not installed",
                         "TARGET=%s", targets[i].name, "TARGET_STATE=%s", target_state_to_string(n->state),
                         "REASON=%s", n->reason ? n->reason : "-", NULL);
        }
}

/* A registry's CA that a runtime will not use, said when that changes. */
void sync_log_shadowed(const State *s) {
        assert(s);

        for (size_t i = 0; i < s->n_valid; i++) {
                const RegistryResult *r = &s->registries[i];
                if (!r->changed)
                        continue;
                for (size_t k = 0; k < ELEMENTSOF(targets); k++)
                        if (r->targets[k].enabled && r->targets[k].state == REGISTRY_TARGET_SHADOWED)
                                log_full(LOG_WARNING, "Registry CA shadowed: the runtime will not use it",
                                         "REGISTRY=%s", r->registry, "TARGET=%s", targets[k].name, "REASON=%s",
                                         r->targets[k].reason, NULL);
        }
}

void runtime_print(FILE *f, const RuntimeStatus *rs) {
        assert(f);
        assert(rs);

        for (size_t i = 0; i < ELEMENTSOF(targets); i++) {
                const TargetStatus *ts = &rs->targets[i];
                if (!ts->enabled)
                        continue;
                fprintf(f, "target %s %s", targets[i].name, target_state_to_string(ts->state));
                if (ts->reason)
                        fprintf(f, ": %s", ts->reason);
                fputc('\n', f);
        }
}

/* The files of target k that failed, "a.example.com, b.example.com/hosts.toml
 * and 3 more (No space left on device)"; false when none did. */
static bool failure_target(FILE *f, const Plan *p, size_t k) {
        enum { MAX_NAMES = 3, MAX_ERRORS = 2 };
        int errors[MAX_ERRORS] = {};
        size_t n = 0, n_errors = 0;

        for (size_t i = 0; i < p->n_actions; i++) {
                const PlanAction *a = &p->actions[i];
                size_t e;

                if (a->error >= 0 || a->target != &targets[k])
                        continue;
                if (n == 0)
                        fprintf(f, "%s%s: ", ftell(f) > 0 ? "; " : "", targets[k].name);
                if (n < MAX_NAMES)
                        fprintf(f, "%s%s%s%s", n > 0 ? ", " : "", a->registry, streq(a->file, CA_FILE) ? "" : "/",
                                streq(a->file, CA_FILE) ? "" : a->file);
                n++;
                for (e = 0; e < n_errors && errors[e] != a->error; e++)
                        ;
                if (e == n_errors && n_errors < MAX_ERRORS)
                        errors[n_errors++] = a->error;
        }
        if (n == 0)
                return false;
        if (n > MAX_NAMES)
                fprintf(f, " and %zu more", n - MAX_NAMES);
        fputs(" (", f);
        for (size_t e = 0; e < n_errors; e++)
                fprintf(f, "%s%s", e > 0 ? ", " : "", strerror(-errors[e]));
        fputc(')', f);
        return true;
}

int sync_failure_reason(const Plan *p, char **ret) {
        _cleanup_free_ char *detail = NULL;
        char *reason = NULL;
        size_t size = 0, writes = 0, removals = 0;
        FILE *f;

        assert(p);
        assert(ret);

        *ret = NULL;
        for (size_t i = 0; i < p->n_actions; i++)
                if (p->actions[i].error < 0) {
                        removals += p->actions[i].type == ACTION_REMOVE;
                        writes += p->actions[i].type != ACTION_REMOVE;
                }
        if (writes + removals == 0)
                return 0;
        f = open_memstream(&detail, &size);
        if (!f)
                return -ENOMEM;
        for (size_t k = 0; k < N_TARGETS; k++)
                (void) failure_target(f, p, k);
        if (fclose(f) != 0)
                return -ENOMEM;
        if (writes > 0 && removals > 0) {
                if (asprintf(&reason, "could not write %zu file%s and remove %zu: %s", writes, writes == 1 ? "" : "s",
                             removals, detail) < 0)
                        return -ENOMEM;
        } else if (asprintf(&reason, "could not %s %zu file%s: %s", writes > 0 ? "write" : "remove",
                            writes + removals, writes + removals == 1 ? "" : "s", detail) < 0)
                return -ENOMEM;
        *ret = reason;
        return 0;
}
