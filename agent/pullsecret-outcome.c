/* SPDX-License-Identifier: MIT */
/*
 * What a sync makes of a pull-secret plan and what applying it did: the
 * status, error and hash State records, and the log lines. Declared in
 * pullsecret.h with the stages they follow.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "log.h"
#include "pullsecret.h"
#include "strv.h"

static int append(char **s, const char *path, const char *what) {
        char *n = NULL;

        if (asprintf(&n, "%s%s%s: %s", *s ? *s : "", *s ? "; " : "", path, what) < 0)
                return -ENOMEM;
        free(*s);
        *s = n;
        return 0;
}

int pull_secret_outcome(const PullSecretPlan *p, const PullSecretResult *res, PullSecretStatus *ret_status,
                        char **ret_error, const char **ret_hash) {
        _cleanup_free_ char *error = NULL;
        int r;

        assert(p);
        assert(!res || res->n_targets == p->n_targets);
        assert(ret_status);
        assert(ret_error);
        assert(ret_hash);

        if (p->status != PULL_SECRET_VALID) {
                if (p->status == PULL_SECRET_INVALID && !(error = strdup(p->reason)))
                        return -ENOMEM;
                *ret_status = p->status;
                *ret_error = TAKE_PTR(error);
                *ret_hash = NULL;
                return 0;
        }

        /* VALID ("applied") only when every target holds the secret. */
        for (size_t i = 0; i < p->n_targets; i++) {
                const PullSecretTarget *t = &p->targets[i];
                int e = res ? res->targets[i].error : 0;

                if (t->type == PULL_SECRET_CONFLICT)
                        r = append(&error, t->path, t->reason);
                else if (e < 0)
                        r = append(&error, t->path, strerror(-e));
                else
                        continue;
                if (r < 0)
                        return r;
        }
        *ret_status = error ? PULL_SECRET_INVALID : PULL_SECRET_VALID;
        /* The hash says what the node holds: it moves only when every target
         * does. A dry run never publishes one made with a key it did not save. */
        *ret_hash = !error && (res || p->hash_key_origin == PULL_SECRET_KEY_LOADED) ? p->hash : NULL;
        *ret_error = TAKE_PTR(error);
        return 0;
}

void pull_secret_plan_log(const PullSecretPlan *p, const char *state_dir) {
        assert(p);
        assert(state_dir);

        if (p->status == PULL_SECRET_VALID && p->ledger_corrupt)
                log_error("'%s/%s' is corrupt; treating every registry in the pull secret files as node-local",
                          state_dir, PULL_SECRET_STATE_FILE);
}

/* The first registries of a secret, for a log line: one of 20,000 names
 * was a 200 KB line. */
#define LOG_MAX_REGISTRIES 20
static char *registries_for_log(char *const *registries) {
        size_t n = strv_length(registries);
        _cleanup_free_ char *head = NULL;
        char *out = NULL;

        if (n <= LOG_MAX_REGISTRIES)
                return strv_join(registries, ",");
        {
                char *first[LOG_MAX_REGISTRIES + 1];
                memcpy(first, registries, LOG_MAX_REGISTRIES * sizeof *first);
                first[LOG_MAX_REGISTRIES] = NULL;
                head = strv_join(first, ",");
        }
        if (!head || asprintf(&out, "%s and %zu more", head, n - LOG_MAX_REGISTRIES) < 0)
                return NULL;
        return out;
}

static void log_target(const PullSecretPlan *p, const PullSecretTarget *t, const PullSecretTargetResult *tr,
                       bool changed) {
        _cleanup_free_ char *regs = NULL;
        char file_hash[65];

        switch (t->type) {
        case PULL_SECRET_CREATE:
        case PULL_SECRET_UPDATE:
                if (tr->error < 0) {
                        log_full(LOG_ERR, "Failed to write the pull secret", "TARGET=%s", t->path, "ERROR=%s",
                                 strerror(-tr->error), NULL);
                        break;
                }
                /* Keyed like the secret's hash: the file's plain sha256 (kept
                 * in the private ledger) is as good as the secret's for
                 * testing password guesses. */
                regs = registries_for_log(t->registries);
                (void) pull_secret_hash(p->hash_key, t->content, t->size, file_hash);
                log_full(LOG_INFO, t->type == PULL_SECRET_CREATE ? "Created pull secret file" : "Updated pull secret file",
                         "TARGET=%s", t->path, "POLICY=%s", pull_secret_policy_to_string(p->policy), "FILE_HASH=%s",
                         file_hash, "SECRET_HASH=%s", p->hash, "REGISTRIES=%s", regs ? regs : "", NULL);
                break;
        case PULL_SECRET_CONFLICT:
                /* Repeats on every resync: say it when it changes. */
                log_full(changed ? LOG_WARNING : LOG_DEBUG, "Pull secret target left untouched", "TARGET=%s",
                         t->path, "REASON=%s", t->reason, NULL);
                break;
        case PULL_SECRET_UNCHANGED:
                log_debug("Pull secret file '%s' unchanged", t->path);
                break;
        default:
                break;
        }
}

void pull_secret_log(const PullSecretPlan *p, const PullSecretResult *res, const char *state_dir, bool changed) {
        assert(p);
        assert(res);
        assert(res->n_targets == p->n_targets);
        assert(state_dir);

        if (p->status == PULL_SECRET_VALID && p->hash_key_origin == PULL_SECRET_KEY_REPLACED)
                log_warning("'%s/%s' was not a valid hash key; replaced it with a new one, so the published "
                            "pull secret hash changes once",
                            state_dir, PULL_SECRET_KEY_FILE);
        else if (p->status == PULL_SECRET_VALID && p->hash_key_origin == PULL_SECRET_KEY_NEW)
                log_info("Created the pull secret hash key '%s/%s'", state_dir, PULL_SECRET_KEY_FILE);

        for (size_t i = 0; i < p->n_targets; i++)
                log_target(p, &p->targets[i], &res->targets[i], changed);
        if (p->status == PULL_SECRET_INVALID)
                log_full(changed ? LOG_WARNING : LOG_DEBUG,
                         "Pull secret refused; keeping the last good pull credentials", "REASON=%s", p->reason, NULL);
        else if (p->status == PULL_SECRET_ABSENT && changed)
                log_info("No pull secret at the source; pull credentials files left as they are");
}
