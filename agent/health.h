/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The agent's local health endpoint, served by the manager's own loop
 * (common/httpd: libmicrohttpd in external-poll mode, no threads), so a
 * stalled loop answers nothing at all:
 *
 *   /healthz  200 "ok": the loop is alive
 *   /readyz   200 when manager_is_ready(), else 503 with the reason
 *   /metrics  Prometheus text exposition (metrics.c)
 *   /status   JSON: the whole State, no secret values
 *
 * Anything else is 404; methods other than GET and HEAD get 405.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "report.h"
#include "state.h"

typedef struct Manager Manager;
typedef struct Health Health;

/* What /status says besides the State. */
typedef struct StatusInfo {
        const char *node;
        const char *version;
        const char *source_kind;
        bool ready;
        const char *not_ready_reason; /* when !ready */
        time_t start_time;
        const char *report_url;        /* NULL when not reporting */
        const ReporterStats *reporter; /* NULL when not reporting */
} StatusInfo;

/* The /status document for s. NULL on allocation failure. */
json_t *health_status_json(const State *s, const StatusInfo *info);

/* Serve m's health on listen ("ADDR:PORT"; port 0 picks one) on m's loop. */
int health_new(Manager *m, const char *listen, Health **ret);
Health *health_free(Health *h);
static inline void health_freep(Health **h) {
        health_free(*h);
}

/* The port bound. */
uint16_t health_get_port(const Health *h);
