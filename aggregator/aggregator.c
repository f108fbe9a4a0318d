/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "aggregator.h"
#include "log.h"

/* Housekeeping (forgetting silent nodes, STATUS=) runs this often. */
#define HOUSEKEEPING_USEC (60 * USEC_PER_SEC)
/* STATUS= follows a report within this long. Summarizing walks every node,
 * so it is done once per burst, not once per report: a fleet of thousands
 * reporting every 30 s would otherwise summarize hundreds of times a second. */
#define STATUS_DELAY_USEC (1 * USEC_PER_SEC)
#define LOG_WINDOW_USEC (10 * USEC_PER_SEC)
#define LOG_WINDOW_LINES 20U

uint64_t aggregator_now(Aggregator *a) {
        uint64_t now;

        assert(a);

        /* The loop's notion of now: every request of one iteration agrees. */
        if (a->event && sd_event_now(a->event, CLOCK_REALTIME, &now) >= 0)
                return now;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

void aggregator_log_ratelimited(Aggregator *a, const char *fmt, ...) {
        _cleanup_free_ char *m = NULL;
        uint64_t now;
        va_list ap;

        assert(a);
        assert(fmt);

        now = aggregator_now(a);
        if (now - a->log_window_start > LOG_WINDOW_USEC) {
                if (a->log_suppressed > 0)
                        log_notice("Suppressed %u similar messages in the last %llu s", a->log_suppressed,
                                   (unsigned long long) (LOG_WINDOW_USEC / USEC_PER_SEC));
                a->log_window_start = now;
                a->log_window_count = 0;
                a->log_suppressed = 0;
        }
        if (a->log_window_count >= LOG_WINDOW_LINES) {
                a->log_suppressed++;
                return;
        }
        a->log_window_count++;

        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        if (m)
                log_notice("%s", m);
}

/* Send STATUS= with the fleet counts, only when the text changed. Node
 * states also change with time alone (lagging, then stale): housekeeping
 * calls this too. */
static void aggregator_update_status(Aggregator *a) {
        FleetSummary s;
        char status[sizeof a->status];

        fleet_summarize(a->fleet, aggregator_now(a), &s);
        snprintf(status, sizeof status, "%zu nodes: %zu converged, %zu lagging, %zu failing, %zu stale", s.total,
                 s.counts[NODE_CONVERGED], s.counts[NODE_LAGGING], s.counts[NODE_FAILING], s.counts[NODE_STALE]);
        if (streq(status, a->status))
                return;
        memcpy(a->status, status, sizeof status);
        (void) sd_notifyf(false, "STATUS=%s", status);
}

static int on_status_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s;
        (void) usec;
        aggregator_update_status(userdata);
        return 0;
}

void aggregator_fleet_changed(Aggregator *a) {
        int enabled = SD_EVENT_OFF;

        assert(a);
        /* Already due: that update will see this change too. */
        if (!a->status_timer || (sd_event_source_get_enabled(a->status_timer, &enabled) >= 0 &&
                                 enabled != SD_EVENT_OFF))
                return;
        (void) sd_event_source_set_time_relative(a->status_timer, STATUS_DELAY_USEC);
        (void) sd_event_source_set_enabled(a->status_timer, SD_EVENT_ONESHOT);
}

static int on_housekeeping(sd_event_source *s, uint64_t usec, void *userdata) {
        Aggregator *a = userdata;
        size_t n;

        if (a->config.forget_seconds > 0) {
                n = fleet_prune(a->fleet, aggregator_now(a), a->config.forget_seconds * USEC_PER_SEC);
                if (n > 0) {
                        a->stats.nodes_forgotten += n;
                        log_info("Forgot %zu nodes silent for more than %llu s", n,
                                 (unsigned long long) a->config.forget_seconds);
                }
        }
        aggregator_update_status(a);
        (void) sd_event_source_set_time(s, usec + HOUSEKEEPING_USEC);
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Aggregator *a = userdata;

        (void) s;
        log_info("Received %s, exiting", si->ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
        return sd_event_exit(a->event, 0);
}

int aggregator_new(const AggregatorConfig *config, Aggregator **ret) {
        /* Agents post every --interval and hang up; 1024 at once is a fleet
         * of many thousands reporting in step. 16 KiB per connection holds
         * any agent's or browser's headers and caps what idle or stalled
         * clients cost at 16 MiB; report bodies (--max-body) are buffered
         * only once the token is checked (docs/connection-limits.md). */
        static const HttpdLimits limits = {
                .connections = 1024,
                .idle_timeout_sec = 10,
                .memory_per_connection = 16 * 1024,
        };
        _cleanup_(aggregator_freep) Aggregator *a = NULL;
        sigset_t mask;
        uint64_t now;
        int r;

        assert(config);
        assert(ret);

        a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a->config = *config;

        r = token_file_new(config->token_file, &a->tokens);
        if (r < 0)
                return log_error_errno(r, "Failed to read token file '%s'", config->token_file);

        r = continue_key_init(&a->continue_key);
        if (r < 0)
                return log_error_errno(r, "Failed to draw the key of continue tokens");

        r = fleet_new(config->max_nodes, config->interval_seconds, &a->fleet);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the fleet");

        r = sd_event_default(&a->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate event loop");

        /* Under a unit with WatchdogSec= the loop itself feeds the watchdog,
         * so a stalled loop gets the service restarted. */
        r = sd_event_set_watchdog(a->event, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the watchdog, ignoring");

        /* Signals are delivered through the loop, so block them first. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(-errno, "Failed to block signals");
        r = sd_event_add_signal(a->event, &a->sigterm_source, SIGTERM, on_signal, a);
        if (r >= 0)
                r = sd_event_add_signal(a->event, &a->sigint_source, SIGINT, on_signal, a);
        if (r < 0)
                return log_error_errno(r, "Failed to watch signals");
        (void) sd_event_source_set_description(a->sigterm_source, "sigterm");
        (void) sd_event_source_set_description(a->sigint_source, "sigint");

        r = sd_event_now(a->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return log_error_errno(r, "Failed to read the clock");
        r = sd_event_add_time(a->event, &a->housekeeping_timer, CLOCK_MONOTONIC, now + HOUSEKEEPING_USEC,
                              USEC_PER_SEC, on_housekeeping, a);
        if (r < 0)
                return log_error_errno(r, "Failed to add housekeeping timer");
        (void) sd_event_source_set_description(a->housekeeping_timer, "housekeeping");
        r = sd_event_source_set_enabled(a->housekeeping_timer, SD_EVENT_ON);
        if (r < 0)
                return log_error_errno(r, "Failed to enable housekeeping timer");
        r = sd_event_add_time_relative(a->event, &a->status_timer, CLOCK_MONOTONIC, STATUS_DELAY_USEC,
                                       STATUS_DELAY_USEC / 10, on_status_timer, a);
        if (r < 0)
                return log_error_errno(r, "Failed to add the status timer");
        (void) sd_event_source_set_enabled(a->status_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(a->status_timer, "status");

        r = httpd_new_limited(a->event, config->listen, &limits, aggregator_handle_request, a, &a->httpd);
        if (r < 0)
                return log_error_errno(r, "Failed to listen on %s", config->listen);
        httpd_set_max_body(a->httpd, config->max_body);
        httpd_set_header_handler(a->httpd, aggregator_handle_headers);

        a->stats.start_time = aggregator_now(a);
        *ret = TAKE_PTR(a);
        return 0;
}

Aggregator *aggregator_free(Aggregator *a) {
        if (!a)
                return NULL;
        httpd_free(a->httpd);
        sd_event_source_disable_unref(a->housekeeping_timer);
        sd_event_source_disable_unref(a->status_timer);
        sd_event_source_disable_unref(a->sigterm_source);
        sd_event_source_disable_unref(a->sigint_source);
        sd_event_unref(a->event);
        fleet_free(a->fleet);
        token_file_free(a->tokens);
        free(a);
        return NULL;
}

int aggregator_run(Aggregator *a) {
        HttpdLimits limits;
        unsigned long long rlimit;
        char why[48] = "";
        int r;

        assert(a);

        httpd_get_limits(a->httpd, &limits, &rlimit);
        if (rlimit > 0)
                (void) snprintf(why, sizeof why, " (RLIMIT_NOFILE %llu)", rlimit);
        log_info("Listening on %s port %u (report interval %u s, body limit %zu bytes, at most %zu nodes, "
                 "at most %u connections%s, idle ones closed after %u s)",
                 a->config.listen, httpd_get_port(a->httpd), a->config.interval_seconds, a->config.max_body,
                 a->fleet->max_nodes, limits.connections, why, limits.idle_timeout_sec);
        (void) sd_notify(false, "READY=1");
        aggregator_update_status(a);

        r = sd_event_loop(a->event);
        (void) sd_notify(false, "STOPPING=1");
        if (r < 0)
                return log_error_errno(r, "Event loop failed");
        return 0;
}
