/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * nodetrust-aggregator's owner struct: the event loop, the HTTP server, the
 * fleet and the counters. One process, one thread; every request is handled
 * to completion on the loop, which is cheap because everything is in memory.
 */

#include <stdint.h>
#include <systemd/sd-event.h>

#include "fleet.h"
#include "httpd.h"
#include "prometheus.h"
#include "bearer.h"
#include "continue-token.h"

#define AGGREGATOR_DEFAULT_LISTEN "127.0.0.1:9448"
#define AGGREGATOR_DEFAULT_INTERVAL 30U
#define AGGREGATOR_DEFAULT_MAX_BODY (256U * 1024U)
#define AGGREGATOR_DEFAULT_FORGET_SECONDS (7U * 24U * 3600U)

typedef struct AggregatorConfig {
        const char *listen;
        const char *token_file;
        unsigned interval_seconds;
        size_t max_body;
        size_t max_nodes;
        uint64_t forget_seconds; /* 0: never forget a silent node */
} AggregatorConfig;

typedef struct Aggregator {
        AggregatorConfig config;  /* strings borrowed from the caller */
        sd_event *event;
        sd_event_source *sigterm_source;
        sd_event_source *sigint_source;
        sd_event_source *housekeeping_timer;
        sd_event_source *status_timer; /* STATUS= soon after the fleet changed */
        Httpd *httpd;
        Fleet *fleet;
        TokenFile *tokens;
        ContinueKey continue_key; /* signs the continue tokens of paged lists */
        AggregatorStats stats;
        int token_error;          /* last token file refresh error, logged once */
        uint64_t log_window_start;/* rate limit for per-request log lines */
        unsigned log_window_count;
        unsigned log_suppressed;
        char status[192];         /* the last STATUS= sent, to send only changes */
} Aggregator;

/* Set up everything (read the token file, bind the socket) without running. */
int aggregator_new(const AggregatorConfig *config, Aggregator **ret);
Aggregator *aggregator_free(Aggregator *a);
DEFINE_POINTER_CLEANUP(Aggregator, aggregator_free)

/* Tell systemd we are ready, run until SIGTERM/SIGINT, say we are stopping. */
int aggregator_run(Aggregator *a);

/* A report changed the fleet: refresh STATUS= shortly (bursts coalesce). */
void aggregator_fleet_changed(Aggregator *a);

/* The current time for the fleet: unix microseconds. */
uint64_t aggregator_now(Aggregator *a);

/* The HTTP entry points (routes.c): once the headers are in (counts and
 * authenticates reports, answers everything else), and once the whole
 * request is. */
int aggregator_handle_headers(HttpdRequest *req, void *userdata);
int aggregator_handle_request(HttpdRequest *req, void *userdata);

/* Log at notice level, at most a few lines per 10 seconds, so a misbehaving
 * fleet cannot flood the journal. */
void aggregator_log_ratelimited(Aggregator *a, const char *fmt, ...) _printf_(2, 3);
