/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The agent's local health endpoint, served by the manager's own loop
 * (common/httpd: libmicrohttpd in external-poll mode, no threads), so a
 * stalled loop answers nothing at all:
 *
 *   /healthz  200 "ok": the loop is alive
 *   /readyz   200 when the published status says ready, else 503 with the reason
 *   /metrics  Prometheus text exposition (metrics.c)
 *   /status   JSON: the whole State, no secret values (status.c)
 *
 * Anything else is 404; methods other than GET and HEAD get 405.
 */

#include <stdint.h>
#include <systemd/sd-event.h>

#include "status.h"

typedef struct Health Health;

/* Serve health on listen ("ADDR:PORT"; port 0 picks one) on event, saying
 * st until the next health_update(). */
int health_new(sd_event *event, const char *listen, const AgentStatus *st, Health **ret);
Health *health_free(Health *h);
static inline void health_freep(Health **h) {
        health_free(*h);
}

/* What to say from now on; st's pointers must stay valid until the next call. */
void health_update(Health *h, const AgentStatus *st);

/* The reporter's counters for /metrics and /status: stats is read on each
 * request and must outlive h (or be replaced). NULL: not reporting. */
void health_set_reporter(Health *h, const char *report_url, const ReporterStats *stats);

/* The port bound. */
uint16_t health_get_port(const Health *h);
