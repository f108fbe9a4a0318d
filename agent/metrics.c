/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "prom.h"
#include "metrics.h"

/* One metric family header: HELP and TYPE lines. */
static void family(FILE *f, const char *name, const char *type, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_u64(FILE *f, const char *name, unsigned long long v) {
        fprintf(f, "%s %llu\n", name, v);
}

static void sample_time(FILE *f, const char *name, time_t t) {
        fprintf(f, "%s %lld\n", name, (long long) t);
}

int metrics_render(const State *s, const MetricsInfo *info, char **ret, size_t *ret_size) {
        static const char *const pull_states[] = { "absent", "applied", "invalid" };
        _cleanup_free_ char *buf = NULL;
        const char *pull;
        size_t size = 0;
        time_t soonest;
        FILE *f;

        assert(s);
        assert(info);
        assert(ret);
        assert(ret_size);

        pull = pull_secret_status_to_string(s->pull_secret_status);
        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;

        family(f, "nodetrust_build_info", "gauge", "Always 1; the labels say which nodetrustd this is.");
        fputs("nodetrust_build_info{version=\"", f);
        prom_label_value(f, info->version ? info->version : "unknown");
        fputs("\",source=\"", f);
        prom_label_value(f, info->source_kind ? info->source_kind : "unknown");
        fputs("\"} 1\n", f);

        family(f, "nodetrust_start_time_seconds", "gauge", "When nodetrustd started, in unix seconds.");
        sample_time(f, "nodetrust_start_time_seconds", info->start_time);

        family(f, "nodetrust_ready", "gauge",
               "1 when the first sync finished, the last one succeeded and the source is live.");
        sample_u64(f, "nodetrust_ready", info->ready);

        family(f, "nodetrust_syncs_total", "counter", "Syncs run (source read, planned, applied).");
        sample_u64(f, "nodetrust_syncs_total", s->syncs_total);
        family(f, "nodetrust_sync_failures_total", "counter",
               "Syncs that could not read the source or write every file.");
        sample_u64(f, "nodetrust_sync_failures_total", s->sync_failures_total);
        family(f, "nodetrust_files_written_total", "counter", "Files created or rewritten: ca.crt, and containerd's hosts.toml.");
        sample_u64(f, "nodetrust_files_written_total", s->files_written_total);
        family(f, "nodetrust_files_removed_total", "counter", "Files pruned because their key went away: ca.crt and hosts.toml.");
        sample_u64(f, "nodetrust_files_removed_total", s->files_removed_total);

        /* Only after a sync: a 0 timestamp would read as 1970 on a dashboard. */
        family(f, "nodetrust_last_sync_timestamp_seconds", "gauge", "When the last sync finished, in unix seconds.");
        if (s->last_sync)
                sample_time(f, "nodetrust_last_sync_timestamp_seconds", s->last_sync);
        family(f, "nodetrust_last_successful_sync_timestamp_seconds", "gauge",
               "When the last successful sync finished, in unix seconds.");
        if (s->last_success)
                sample_time(f, "nodetrust_last_successful_sync_timestamp_seconds", s->last_success);

        family(f, "nodetrust_source_generation", "gauge",
               "Increases each time the trust content read from the source changes.");
        sample_u64(f, "nodetrust_source_generation", s->generation);
        family(f, "nodetrust_source_applied", "gauge",
               "1 when the content last read from the source is what was last applied without errors.");
        sample_u64(f, "nodetrust_source_applied", s->source_hash[0] && streq(s->source_hash, s->applied_hash));

        family(f, "nodetrust_registries", "gauge", "Registry keys in the trust config map, by result.");
        for (RegistryStateType t = 0; t < _REGISTRY_STATE_MAX; t++) {
                unsigned n = t == REGISTRY_APPLIED    ? s->n_applied
                             : t == REGISTRY_REFUSED  ? s->n_refused
                             : t == REGISTRY_CONFLICT ? s->n_conflicts
                             : t == REGISTRY_SHADOWED ? s->n_shadowed
                                                      : s->n_failed;
                fprintf(f, "nodetrust_registries{state=\"%s\"} %u\n", registry_state_to_string(t), n);
        }

        family(f, "nodetrust_target_active", "gauge",
               "1 when the target's runtime is installed and reads the directory nodetrustd writes, else 0.");
        for (size_t i = 0; i < ELEMENTSOF(targets); i++)
                if (s->runtime.targets[i].enabled)
                        fprintf(f, "nodetrust_target_active{target=\"%s\"} %d\n", targets[i].name,
                                s->runtime.targets[i].state == TARGET_STATE_ACTIVE);
        family(f, "nodetrust_target_state", "gauge",
               "1 for each enabled target's state (active, not_installed, inactive), 0 for the others.");
        for (size_t i = 0; i < ELEMENTSOF(targets); i++)
                for (TargetStateType t = 0; s->runtime.targets[i].enabled && t < _TARGET_STATE_MAX; t++)
                        fprintf(f, "nodetrust_target_state{target=\"%s\",state=\"%s\"} %d\n", targets[i].name,
                                target_state_to_string(t), s->runtime.targets[i].state == t);
        /* Only the pairs that need attention: a series per registry and
         * target in the good case would be 3N lines saying nothing. */
        family(f, "nodetrust_registry_target_ineffective", "gauge",
               "1 for each registry and target where the CA is not used: conflict, shadowed or failed.");
        for (size_t i = 0; i < s->n_valid; i++)
                for (size_t k = 0; k < ELEMENTSOF(targets); k++) {
                        const RegistryTargetResult *rt = &s->registries[i].targets[k];
                        if (!rt->enabled || rt->state == REGISTRY_TARGET_APPLIED || rt->state == REGISTRY_TARGET_INACTIVE)
                                continue;
                        fputs("nodetrust_registry_target_ineffective{registry=\"", f);
                        prom_label_value(f, s->registries[i].registry);
                        fprintf(f, "\",target=\"%s\",state=\"%s\"} 1\n", targets[k].name,
                                registry_target_state_to_string(rt->state));
                }
        family(f, "nodetrust_ignored_keys", "gauge", "Keys skipped by the ignore list.");
        sample_u64(f, "nodetrust_ignored_keys", s->n_ignored);

        family(f, "nodetrust_certificate_not_after_timestamp_seconds", "gauge",
               "The soonest notAfter in each registry's CA bundle, in unix seconds.");
        for (size_t i = 0; i < s->n_registries; i++) {
                const RegistryResult *r = &s->registries[i];
                if (!r->registry || !r->not_after || r->state == REGISTRY_REFUSED)
                        continue;
                fputs("nodetrust_certificate_not_after_timestamp_seconds{registry=\"", f);
                prom_label_value(f, r->registry);
                fprintf(f, "\"} %lld\n", (long long) r->not_after);
        }
        /* Proof of trust (verify.c), for every registry written. */
        family(f, "nodetrust_registry_verified", "gauge",
               "1 when a TLS handshake to the registry validated its certificate with exactly the CA bundle written, else 0.");
        for (size_t i = 0; i < s->n_valid; i++) {
                const RegistryResult *r = &s->registries[i];
                if (!registry_result_verifiable(r))
                        continue;
                fputs("nodetrust_registry_verified{registry=\"", f);
                prom_label_value(f, r->registry);
                fprintf(f, "\"} %d\n", r->verify.state == VERIFY_VERIFIED);
        }
        family(f, "nodetrust_registry_verification_state", "gauge",
               "1 for each written registry's verification state (verified, mismatch, unreachable, not_checked), 0 for the others.");
        for (size_t i = 0; i < s->n_valid; i++) {
                const RegistryResult *r = &s->registries[i];
                if (!registry_result_verifiable(r))
                        continue;
                for (VerifyStateType t = 0; t < _VERIFY_STATE_MAX; t++) {
                        fputs("nodetrust_registry_verification_state{registry=\"", f);
                        prom_label_value(f, r->registry);
                        fprintf(f, "\",state=\"%s\"} %d\n", verify_state_to_string(t), r->verify.state == t);
                }
        }
        family(f, "nodetrust_registry_server_certificate_not_after_timestamp_seconds", "gauge",
               "The notAfter of the certificate the registry presented at the last check, in unix seconds.");
        for (size_t i = 0; i < s->n_valid; i++) {
                const RegistryResult *r = &s->registries[i];
                if (!registry_result_verifiable(r) || !r->verify.server_not_after)
                        continue;
                fputs("nodetrust_registry_server_certificate_not_after_timestamp_seconds{registry=\"", f);
                prom_label_value(f, r->registry);
                fprintf(f, "\"} %lld\n", (long long) r->verify.server_not_after);
        }

        family(f, "nodetrust_certificate_expiry_soonest_timestamp_seconds", "gauge",
               "The soonest notAfter over every registry CA bundle, in unix seconds.");
        soonest = state_soonest_expiry(s);
        if (soonest)
                sample_time(f, "nodetrust_certificate_expiry_soonest_timestamp_seconds", soonest);

        family(f, "nodetrust_pull_secret_state", "gauge", "1 for the pull secret's current state, 0 for the others.");
        for (size_t i = 0; i < ELEMENTSOF(pull_states); i++)
                fprintf(f, "nodetrust_pull_secret_state{state=\"%s\"} %d\n", pull_states[i],
                        streq(pull, pull_states[i]));

        if (info->reporter) {
                const ReporterStats *rs = info->reporter;
                family(f, "nodetrust_reports_total", "counter", "Reports sent to the aggregator.");
                sample_u64(f, "nodetrust_reports_total", rs->reports_total);
                family(f, "nodetrust_report_failures_total", "counter",
                       "Reports the aggregator did not accept or could not be reached for.");
                sample_u64(f, "nodetrust_report_failures_total", rs->report_failures_total);
                family(f, "nodetrust_last_report_timestamp_seconds", "gauge",
                       "When the aggregator last accepted a report, in unix seconds.");
                if (rs->last_success)
                        sample_time(f, "nodetrust_last_report_timestamp_seconds", rs->last_success);
        }

        if (fclose(f) != 0)
                return -ENOMEM;
        *ret_size = size;
        *ret = TAKE_PTR(buf);
        return 0;
}
