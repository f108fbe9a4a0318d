/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "fleet-registries.h"
#include "prom.h"
#include "prometheus.h"

static void header(FILE *f, const char *name, const char *type, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Per registry: as many series as registries (at most FLEET_MAX_REGISTRIES,
 * which the agent's 4096-key limit keeps a fleet on one config map under),
 * each with 5 states. */
static int render_registries(FILE *f, const Fleet *fleet, uint64_t now) {
        static const struct {
                const char *label;
                bool verification;
                int index;
        } states[] = {
                { "applied", false, REGISTRY_APPLIED },
                { "verified", true, VERIFICATION_VERIFIED },
                { "mismatch", true, VERIFICATION_MISMATCH },
                { "unreachable", true, VERIFICATION_UNREACHABLE },
                { "lacking", false, -1 },
        };
        _cleanup_(fleet_registries_freep) FleetRegistries *regs = NULL;
        int r;

        r = fleet_registries(fleet, now, &regs);
        if (r < 0)
                return r;

        header(f, "nodetrust_aggregator_registry_nodes", "gauge",
               "Nodes (not stale) by registry: CA applied, server verified with it, mismatch, unreachable, "
               "or the registry lacking while other nodes list it.");
        for (size_t i = 0; i < regs->n_registries; i++) {
                const FleetRegistry *reg = &regs->registries[i];

                for (size_t k = 0; k < ELEMENTSOF(states); k++) {
                        size_t v = states[k].index < 0 ? reg->lacking :
                                   states[k].verification ? reg->verification[states[k].index] :
                                                            reg->states[states[k].index];
                        fputs("nodetrust_aggregator_registry_nodes{registry=\"", f);
                        prom_label_value(f, reg->name);
                        fprintf(f, "\",state=\"%s\"} %zu\n", states[k].label, v);
                }
        }

        /* Only registries some agent checked: no made-up 0 ("expired in 1970"). */
        header(f, "nodetrust_aggregator_registry_server_certificate_expiry_soonest_timestamp_seconds", "gauge",
               "Soonest notAfter of the certificate a registry's server presented to any node's check, unix seconds.");
        for (size_t i = 0; i < regs->n_registries; i++) {
                const FleetRegistry *reg = &regs->registries[i];

                if (!reg->has_soonest_server_not_after)
                        continue;
                fputs("nodetrust_aggregator_registry_server_certificate_expiry_soonest_timestamp_seconds{registry=\"", f);
                prom_label_value(f, reg->name);
                fprintf(f, "\"} %lld\n", (long long) reg->soonest_server_not_after);
        }
        return 0;
}

static void render_rollout(FILE *f, const Fleet *fleet) {
        const Rollout *ro = &fleet->rollouts.current;

        header(f, "nodetrust_aggregator_rollout_converged_nodes", "gauge",
               "Nodes that reported the current source hash applied since it became current.");
        if (ro->id)
                fprintf(f, "nodetrust_aggregator_rollout_converged_nodes %zu\n", ro->converged);

        header(f, "nodetrust_aggregator_rollout_started_timestamp_seconds", "gauge",
               "When the current source hash became current (the rollout started), unix seconds.");
        if (ro->id)
                fprintf(f, "nodetrust_aggregator_rollout_started_timestamp_seconds %llu\n",
                        (unsigned long long) (ro->started / USEC_PER_SEC));
}

int metrics_render(const Fleet *fleet, const AggregatorStats *stats, uint64_t now, char **ret, size_t *ret_size) {
        _cleanup_free_ ExpiringCert *e = NULL;
        _cleanup_free_ char *buf = NULL;
        FleetSummary s;
        size_t size = 0, n_expiring;
        FILE *f;
        int r;

        assert(fleet);
        assert(stats);
        assert(ret);
        assert(ret_size);

        fleet_summarize(fleet, now, &s);
        r = fleet_expiring(fleet, (int64_t) (now / USEC_PER_SEC) + API_EXPIRING_DAYS * 86400, &e, &n_expiring);
        if (r < 0)
                return r;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;

        header(f, "nodetrust_aggregator_nodes", "gauge",
               "Nodes by fleet state (converged, lagging, failing, stale).");
        for (int i = 0; i < _NODE_STATE_MAX; i++)
                fprintf(f, "nodetrust_aggregator_nodes{state=\"%s\"} %zu\n", node_state_to_string(i), s.counts[i]);

        header(f, "nodetrust_aggregator_nodes_total", "gauge", "Nodes the aggregator holds a report of.");
        fprintf(f, "nodetrust_aggregator_nodes_total %zu\n", s.total);

        header(f, "nodetrust_aggregator_nodes_max", "gauge", "Most nodes the aggregator keeps; reports of more are refused.");
        fprintf(f, "nodetrust_aggregator_nodes_max %zu\n", fleet->max_nodes);

        /* Warnings, not states: such a node is counted under its state too. */
        header(f, "nodetrust_aggregator_nodes_shadowed", "gauge",
               "Nodes (not stale) with a registry CA written that a container runtime will not use.");
        fprintf(f, "nodetrust_aggregator_nodes_shadowed %zu\n", s.shadowed);

        header(f, "nodetrust_aggregator_nodes_inactive_target", "gauge",
               "Nodes (not stale) with a container runtime installed that will not read the CA directory.");
        fprintf(f, "nodetrust_aggregator_nodes_inactive_target %zu\n", s.inactive_target);

        header(f, "nodetrust_aggregator_target_nodes", "gauge",
               "Nodes (not stale) by runtime target and its state (active, not_installed, inactive).");
        for (size_t i = 0; i < s.n_targets; i++)
                for (int k = 0; k < _TARGET_STATE_MAX; k++) {
                        fputs("nodetrust_aggregator_target_nodes{target=\"", f);
                        prom_label_value(f, s.targets[i].name);
                        fprintf(f, "\",state=\"%s\"} %zu\n", target_state_to_string(k), s.targets[i].counts[k]);
                }

        /* No sample without a certificate: a made-up 0 would read as "expired in 1970". */
        header(f, "nodetrust_aggregator_soonest_certificate_expiry_timestamp_seconds", "gauge",
               "Soonest notAfter of any registry certificate on any node, unix seconds.");
        if (s.has_soonest_expiry)
                fprintf(f, "nodetrust_aggregator_soonest_certificate_expiry_timestamp_seconds %lld\n",
                        (long long) s.soonest_expiry);

        header(f, "nodetrust_aggregator_certificates_expiring", "gauge",
               "Node certificates that expire within 30 days (expired ones included).");
        fprintf(f, "nodetrust_aggregator_certificates_expiring %zu\n", n_expiring);

        header(f, "nodetrust_aggregator_current_source_info", "gauge",
               "The source hash the fleet converges on (value always 1).");
        if (fleet->current_hash[0])
                fprintf(f, "nodetrust_aggregator_current_source_info{hash=\"%s\"} 1\n", fleet->current_hash);

        header(f, "nodetrust_aggregator_current_source_since_timestamp_seconds", "gauge",
               "When the current source hash was adopted, unix seconds.");
        if (fleet->current_hash[0])
                fprintf(f, "nodetrust_aggregator_current_source_since_timestamp_seconds %llu\n",
                        (unsigned long long) (fleet->current_since / USEC_PER_SEC));

        r = render_registries(f, fleet, now);
        if (r < 0) {
                fclose(f);
                return r;
        }
        render_rollout(f, fleet);

        header(f, "nodetrust_aggregator_reports_received_total", "counter",
               "Reports posted to the aggregator, accepted or not.");
        fprintf(f, "nodetrust_aggregator_reports_received_total %llu\n", (unsigned long long) stats->reports_received);

        header(f, "nodetrust_aggregator_reports_accepted_total", "counter", "Reports accepted.");
        fprintf(f, "nodetrust_aggregator_reports_accepted_total %llu\n", (unsigned long long) stats->reports_accepted);

        header(f, "nodetrust_aggregator_reports_rejected_total", "counter", "Reports refused, by reason.");
        for (int i = 0; i < _REJECT_REASON_MAX; i++)
                fprintf(f, "nodetrust_aggregator_reports_rejected_total{reason=\"%s\"} %llu\n",
                        reject_reason_to_string(i), (unsigned long long) stats->reports_rejected[i]);

        header(f, "nodetrust_aggregator_reports_per_second", "gauge",
               "Accepted reports per second over the last minute.");
        fprintf(f, "nodetrust_aggregator_reports_per_second %.3f\n", rate_window_per_second(&stats->accepted_rate, now));

        header(f, "nodetrust_aggregator_nodes_forgotten_total", "counter",
               "Nodes dropped after being silent longer than --forget.");
        fprintf(f, "nodetrust_aggregator_nodes_forgotten_total %llu\n", (unsigned long long) stats->nodes_forgotten);

        header(f, "nodetrust_aggregator_start_time_seconds", "gauge", "When the aggregator started, unix seconds.");
        fprintf(f, "nodetrust_aggregator_start_time_seconds %llu\n", (unsigned long long) (stats->start_time / USEC_PER_SEC));

        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}
