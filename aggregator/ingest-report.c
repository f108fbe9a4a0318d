/* SPDX-License-Identifier: MIT */
/*
 * The Report itself, apart from reading one: the names of its states (as
 * the wire format, the API and the metrics spell them), what counts as a
 * valid node name, target name and hash, and freeing it. The parser
 * (ingest.c), the fleet, the API and the metrics all use these.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "strv.h"

static const char *const registry_state_names[_REGISTRY_STATE_MAX] = {
        [REGISTRY_APPLIED] = "applied",
        [REGISTRY_REFUSED] = "refused",
        [REGISTRY_CONFLICT] = "conflict",
        [REGISTRY_FAILED] = "failed",
        [REGISTRY_SHADOWED] = "shadowed",
};

static const char *const target_state_names[_TARGET_STATE_MAX] = {
        [TARGET_ACTIVE] = "active",
        [TARGET_NOT_INSTALLED] = "not_installed",
        [TARGET_INACTIVE] = "inactive",
};

static const char *const verification_state_names[_VERIFICATION_STATE_MAX] = {
        [VERIFICATION_NOT_CHECKED] = "not_checked",
        [VERIFICATION_VERIFIED] = "verified",
        [VERIFICATION_MISMATCH] = "mismatch",
        [VERIFICATION_UNREACHABLE] = "unreachable",
};

static const char *const reject_reason_names[_REJECT_REASON_MAX] = {
        [REJECT_UNAUTHORIZED] = "unauthorized",
        [REJECT_TOO_LARGE] = "too_large",
        [REJECT_BAD_JSON] = "bad_json",
        [REJECT_BAD_SCHEMA] = "bad_schema",
        [REJECT_BAD_NODE_NAME] = "bad_node_name",
        [REJECT_NODE_LIMIT] = "node_limit",
};

const char *registry_state_to_string(RegistryState s) {
        return s >= 0 && s < _REGISTRY_STATE_MAX ? registry_state_names[s] : NULL;
}

const char *target_state_to_string(TargetState s) {
        return s >= 0 && s < _TARGET_STATE_MAX ? target_state_names[s] : NULL;
}

const char *verification_state_to_string(VerificationState s) {
        return s >= 0 && s < _VERIFICATION_STATE_MAX ? verification_state_names[s] : NULL;
}

const char *reject_reason_to_string(RejectReason r) {
        return r >= 0 && r < _REJECT_REASON_MAX ? reject_reason_names[r] : NULL;
}

bool node_name_is_valid(const char *name) {
        size_t n;

        /* ^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$ */
        if (!name)
                return false;
        n = strlen(name);
        if (n < 1 || n > 253)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
                if (i == 0 || i == n - 1) {
                        if (!alnum)
                                return false;
                } else if (!alnum && c != '-' && c != '.')
                        return false;
        }
        return true;
}

bool sha256_hex_is_valid(const char *s) {
        if (!s || strlen(s) != 64)
                return false;
        for (size_t i = 0; i < 64; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

bool target_name_is_valid(const char *name) {
        size_t n;

        if (!name)
                return false;
        n = strlen(name);
        if (n < 1 || n > REPORT_MAX_TARGET_NAME)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
                        return false;
        }
        return true;
}

bool report_has_inactive_target(const Report *r) {
        assert(r);

        for (size_t i = 0; i < r->n_targets; i++)
                if (r->targets[i].state == TARGET_INACTIVE)
                        return true;
        return false;
}

const RegistryEntry *report_find_registry(const Report *r, const char *name) {
        size_t lo = 0, hi;

        assert(r);
        assert(name);

        hi = r->n_entries;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(r->entries[mid].name, name);
                if (c == 0)
                        return &r->entries[mid];
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

Report *report_free(Report *r) {
        if (!r)
                return NULL;
        free(r->node);
        free(r->agent_version);
        free(r->source_kind);
        free(r->pull_secret_state);
        strv_free(r->errors);
        for (size_t i = 0; i < r->n_certs; i++)
                free(r->certs[i].registry);
        free(r->certs);
        for (size_t i = 0; i < r->n_entries; i++)
                free(r->entries[i].name);
        free(r->entries);
        for (size_t i = 0; i < r->n_targets; i++)
                free(r->targets[i].reason);
        free(r);
        return NULL;
}
