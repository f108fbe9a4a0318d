/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "aggregator.h"
#include "log.h"

static void help(void) {
        printf("Usage: nodetrust-aggregator --token-file FILE [OPTIONS]\n"
               "\n"
               "Collect the reports of the nodetrustd agents and serve the fleet view:\n"
               "POST /api/v1/reports, GET /api/v1/nodes, /api/v1/summary, /metrics, /healthz, /.\n"
               "\n"
               "  --listen ADDR:PORT     address to serve on (default %s; [IPv6]:PORT)\n"
               "  --token-file FILE      bearer tokens agents must send, one per line (required;\n"
               "                         re-read when it changes)\n"
               "  --interval SECONDS     expected report interval when a report does not say\n"
               "                         (default %u); a node is stale after 3 intervals\n"
               "  --max-body BYTES       largest report accepted (default %u)\n"
               "  --max-nodes N          most nodes kept (default %u)\n"
               "  --forget SECONDS       drop stale nodes silent this long, 0 = never (default %u)\n"
               "  --log-level LEVEL      debug, info, notice, warning or error (default info)\n"
               "  -h --help              show this help\n"
               "     --version           show the version\n",
               AGGREGATOR_DEFAULT_LISTEN, AGGREGATOR_DEFAULT_INTERVAL, AGGREGATOR_DEFAULT_MAX_BODY,
               FLEET_DEFAULT_MAX_NODES, AGGREGATOR_DEFAULT_FORGET_SECONDS);
}

static int parse_level(const char *s) {
        static const struct {
                const char *name;
                int level;
        } levels[] = {
                { "debug", LOG_DEBUG },   { "info", LOG_INFO }, { "notice", LOG_NOTICE },
                { "warning", LOG_WARNING }, { "warn", LOG_WARNING }, { "error", LOG_ERR },
                { "err", LOG_ERR },
        };

        for (size_t i = 0; i < ELEMENTSOF(levels); i++)
                if (strcasecmp(s, levels[i].name) == 0)
                        return levels[i].level;
        return -EINVAL;
}

/* A whole decimal number in [min, max]; -EINVAL otherwise. */
static int parse_number(const char *s, unsigned long long min, unsigned long long max, unsigned long long *ret) {
        unsigned long long v;
        char *end;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end || v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

int main(int argc, char *argv[]) {
        enum { ARG_LISTEN = 0x100, ARG_TOKEN_FILE, ARG_INTERVAL, ARG_MAX_BODY, ARG_MAX_NODES, ARG_FORGET,
               ARG_LOG_LEVEL, ARG_VERSION };
        static const struct option options[] = {
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "token-file", required_argument, NULL, ARG_TOKEN_FILE },
                { "interval", required_argument, NULL, ARG_INTERVAL },
                { "max-body", required_argument, NULL, ARG_MAX_BODY },
                { "max-nodes", required_argument, NULL, ARG_MAX_NODES },
                { "forget", required_argument, NULL, ARG_FORGET },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        AggregatorConfig config = {
                .listen = AGGREGATOR_DEFAULT_LISTEN,
                .interval_seconds = AGGREGATOR_DEFAULT_INTERVAL,
                .max_body = AGGREGATOR_DEFAULT_MAX_BODY,
                .max_nodes = FLEET_DEFAULT_MAX_NODES,
                .forget_seconds = AGGREGATOR_DEFAULT_FORGET_SECONDS,
        };
        _cleanup_(aggregator_freep) Aggregator *a = NULL;
        struct sockaddr_storage ss;
        unsigned long long v;
        int c, level = LOG_INFO;
        size_t len;

        log_setup("nodetrust-aggregator", LOG_INFO);

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case ARG_LISTEN:
                        if (httpd_parse_listen(optarg, &ss, &len) < 0) {
                                log_error("Invalid --listen '%s': expected ADDR:PORT, e.g. 127.0.0.1:9448 or [::1]:9448",
                                          optarg);
                                return 2;
                        }
                        config.listen = optarg;
                        break;
                case ARG_TOKEN_FILE:
                        config.token_file = optarg;
                        break;
                case ARG_INTERVAL:
                        if (parse_number(optarg, 1, REPORT_MAX_INTERVAL_SECONDS, &v) < 0) {
                                log_error("Invalid --interval '%s': expected seconds from 1 to %u", optarg,
                                          REPORT_MAX_INTERVAL_SECONDS);
                                return 2;
                        }
                        config.interval_seconds = (unsigned) v;
                        break;
                case ARG_MAX_BODY:
                        if (parse_number(optarg, 1024, 64ULL * 1024 * 1024, &v) < 0) {
                                log_error("Invalid --max-body '%s': expected bytes from 1024 to 67108864", optarg);
                                return 2;
                        }
                        config.max_body = (size_t) v;
                        break;
                case ARG_MAX_NODES:
                        if (parse_number(optarg, 1, 1000000, &v) < 0) {
                                log_error("Invalid --max-nodes '%s': expected 1 to 1000000", optarg);
                                return 2;
                        }
                        config.max_nodes = (size_t) v;
                        break;
                case ARG_FORGET:
                        if (parse_number(optarg, 0, 366ULL * 86400, &v) < 0) {
                                log_error("Invalid --forget '%s': expected seconds, at most a year", optarg);
                                return 2;
                        }
                        config.forget_seconds = v;
                        break;
                case ARG_LOG_LEVEL:
                        level = parse_level(optarg);
                        if (level < 0) {
                                log_error("Invalid --log-level '%s': expected debug, info, notice, warning or error",
                                          optarg);
                                return 2;
                        }
                        log_setup("nodetrust-aggregator", level);
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("nodetrust-aggregator %s\n", NODETRUST_VERSION);
                        return 0;
                default:
                        return 2;
                }
        }
        if (optind < argc) {
                log_error("Unexpected argument '%s'; see --help", argv[optind]);
                return 2;
        }
        if (!config.token_file) {
                log_error("--token-file is required: agents must authenticate their reports");
                return 2;
        }

        /* Answers of a megabyte or two (a page of nodes, /metrics of many
         * registries) are built and freed many times a minute. With glibc's
         * sliding threshold the first such free raises the mmap threshold,
         * later ones come from the heap, and the heap cannot shrink past the
         * reports that live above them: RSS kept what the largest answers
         * ever took. A fixed threshold (which also stops the sliding) gives
         * every big buffer its own mapping, returned when it is freed. */
        (void) mallopt(M_MMAP_THRESHOLD, 256 * 1024);

        if (aggregator_new(&config, &a) < 0)
                return 1;
        return aggregator_run(a) < 0 ? 1 : 0;
}
