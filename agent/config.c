/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "fs.h"
#include "target.h"
#include "strv.h"
#include "trust.h"

/* One table drives getopt_long, the config file and --help, so the three
 * cannot drift apart (a test compares --help with the man page). */
typedef struct Option {
        const char *name;
        const char *arg; /* NULL: a switch */
        const char *help;
} Option;

static const Option options[] = {
        { "trust-source", "PATH", "trust config map: mounted volume or plain directory" },
        { "pull-secret", "PATH", "pull secret: mounted secret volume or .dockerconfigjson file" },
        { "pull-secret-target", "FILE", "pull credentials file to keep (repeatable; default " DEFAULT_PULL_SECRET_TARGET ")" },
        { "pull-secret-policy", "POLICY", "replace (the file is the secret) or merge (keep node-local registries); default replace" },
        { "pull-secret-owner", "UID[:GID]", "owner of the written pull credentials; default 0:0" },
        { "kubeconfig", "FILE", "read the trust config map and pull secret from the Kubernetes API" },
        { "in-cluster", NULL, "like --kubeconfig, with the pod's service account" },
        { "kube-watch-timeout", "SECONDS", "API watches are renewed this often, and count as dead when silent longer (plus a margin); default 300" },
        { "root", "DIR", "prefix for every path written; default /" },
        { "targets", "LIST", "any of docker,containers,containerd; default all three" },
        { "containerd-hosts-toml", "MODE", "always: an owned hosts.toml (server, ca) beside each containerd ca.crt; never: ca.crt only; default always" },
        { "containerd-config", "FILE", "containerd's config, read under --root to check it reads certs.d; default " DEFAULT_CONTAINERD_CONFIG },
        { "state-dir", "DIR", "ownership manifest and state, under --root; default " DEFAULT_STATE_DIR },
        { "once", NULL, "apply once and exit (0 applied, 1 partial, 3 failed); verifies nothing" },
        { "dry-run", NULL, "print the plan, write nothing, exit" },
        { "resync-interval", "SECONDS", "periodic full resync (drift repair); default 300" },
        { "verify-interval", "SECONDS", "daemon: TLS handshake to each registry written, its certificate checked with the CA written, this often (jittered 10%); 0 disables; default 21600" },
        { "verify-timeout", "SECONDS", "give up on a registry's handshake after this; default 10" },
        { "ignore-keys", "LIST", "config map keys that are not registries; default " DEFAULT_IGNORE_KEYS },
        { "health-listen", "ADDR:PORT", "health endpoint, or 'none'; default " DEFAULT_HEALTH_LISTEN },
        { "report-url", "URL", "aggregator base URL to report to; default off" },
        { "report-token-file", "FILE", "bearer token for the aggregator (re-read when it changes)" },
        { "report-ca", "FILE", "CA bundle to verify the aggregator's TLS certificate" },
        { "report-interval", "SECONDS", "report period; default 30" },
        { "node-name", "NAME", "node name reported; default $NODE_NAME, else the host name" },
        { "node-status", "MODE", "keep the RegistryTrustReady condition on this node and record events on change: "
                                 "auto (on when the agent has API credentials), on, off; default auto" },
        { "node-status-kubeconfig", "FILE", "API credentials for node status only, with --trust-source (needs patch nodes/status, create events in default)" },
        { "node-status-in-cluster", NULL, "like --node-status-kubeconfig, with the pod's service account" },
        { "node-status-heartbeat", "SECONDS", "re-patch the condition this often, changed or not; default 300" },
        { "config", "FILE", "config file; default " DEFAULT_CONFIG_FILE " if present" },
        { "log-level", "LEVEL", "debug, info, notice, warning or err; default info" },
        { "help", NULL, "show this help and exit" },
        { "version", NULL, "show the version and exit" },
};

void config_help(const char *argv0) {
        printf("Usage: %s [OPTIONS]\n\n"
               "Keep this node's container runtimes trusting the registries of the\n"
               "additionalTrustedCA config map, and its pull credentials current.\n\n",
               argv0);
        for (size_t i = 0; i < ELEMENTSOF(options); i++) {
                char left[64];
                snprintf(left, sizeof left, "--%s%s%s", options[i].name, options[i].arg ? " " : "",
                         options[i].arg ? options[i].arg : "");
                printf("  %-32s %s\n", left, options[i].help);
        }
        printf("\nSignals: SIGHUP resyncs now; SIGTERM and SIGINT stop.\n"
               "Exit status: 0 applied, 1 partially applied (--once), 2 usage error, 3 failure.\n");
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || end == s || *end || *s == '-' || v < min || v > max)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

static int set_string(char **field, const char *value) {
        char *c = strdup(value);
        if (!c)
                return -ENOMEM;
        free(*field);
        *field = c;
        return 0;
}

static int parse_bool(const char *v, bool *ret) {
        if (!v || streq(v, "yes") || streq(v, "true") || streq(v, "1") || streq(v, "on"))
                *ret = true;
        else if (streq(v, "no") || streq(v, "false") || streq(v, "0") || streq(v, "off"))
                *ret = false;
        else
                return -EINVAL;
        return 0;
}

/* Apply one setting. from_cmdline matters for the repeatable list option:
 * the command line replaces the file's list instead of adding to it. */
static bool cmdline_targets_seen;

static int config_set(Config *c, const char *name, const char *v, bool from_cmdline, const char **err) {
        int r;

        *err = NULL;
        if (streq(name, "trust-source"))
                return set_string(&c->trust_source, v);
        if (streq(name, "pull-secret"))
                return set_string(&c->pull_secret, v);
        if (streq(name, "pull-secret-target")) {
                if (v[0] != '/') {
                        *err = "must be an absolute path";
                        return -EINVAL;
                }
                if (from_cmdline && !cmdline_targets_seen) {
                        c->pull_secret_options.paths = strv_free(c->pull_secret_options.paths);
                        cmdline_targets_seen = true;
                }
                return strv_extend(&c->pull_secret_options.paths, v);
        }
        if (streq(name, "pull-secret-policy")) {
                if (pull_secret_policy_from_string(v, &c->pull_secret_options.policy) < 0) {
                        *err = "must be 'replace' or 'merge'";
                        return -EINVAL;
                }
                return 0;
        }
        if (streq(name, "pull-secret-owner")) {
                /* Parsed here, not at the first write: a typo must stop
                 * start-up, not leave credentials owned by the wrong user. */
                if (pull_secret_owner_parse(v, &c->pull_secret_options.uid, &c->pull_secret_options.gid) < 0) {
                        *err = "expected a numeric UID or UID:GID (0-4294967294)";
                        return -EINVAL;
                }
                return 0;
        }
        if (streq(name, "kubeconfig"))
                return set_string(&c->kubeconfig, v);
        if (streq(name, "in-cluster"))
                return parse_bool(v, &c->in_cluster);
        if (streq(name, "kube-watch-timeout")) {
                r = parse_uint(v, 1, 3600, &c->kube_watch_timeout_sec);
                if (r < 0)
                        *err = "expected a number of seconds between 1 and 3600";
                return r;
        }
        if (streq(name, "root"))
                return set_string(&c->root, v);
        if (streq(name, "targets")) {
                const char *bad = NULL;
                r = targets_parse(v, &c->targets, &bad);
                if (r == -EINVAL)
                        *err = "expected a comma-separated list of docker, containers, containerd";
                return r;
        }
        if (streq(name, "containerd-hosts-toml")) {
                if (streq(v, "always"))
                        c->containerd_hosts_toml = true;
                else if (streq(v, "never"))
                        c->containerd_hosts_toml = false;
                else {
                        *err = "must be 'always' or 'never'";
                        return -EINVAL;
                }
                return 0;
        }
        if (streq(name, "containerd-config")) {
                if (v[0] != '/') {
                        *err = "must be an absolute path (it is read under --root)";
                        return -EINVAL;
                }
                return set_string(&c->containerd_config, v);
        }
        if (streq(name, "state-dir"))
                return set_string(&c->state_dir, v);
        if (streq(name, "once"))
                return parse_bool(v, &c->once);
        if (streq(name, "dry-run"))
                return parse_bool(v, &c->dry_run);
        if (streq(name, "resync-interval") || streq(name, "report-interval")) {
                r = parse_uint(v, 1, 7 * 24 * 3600, streq(name, "resync-interval") ? &c->resync_sec : &c->report_interval_sec);
                if (r < 0)
                        *err = "expected a number of seconds between 1 and 604800";
                return r;
        }
        if (streq(name, "verify-interval")) {
                r = parse_uint(v, 0, 7 * 24 * 3600, &c->verify_interval_sec);
                if (r < 0)
                        *err = "expected a number of seconds between 0 (off) and 604800";
                return r;
        }
        if (streq(name, "verify-timeout")) {
                r = parse_uint(v, 1, 300, &c->verify_timeout_sec);
                if (r < 0)
                        *err = "expected a number of seconds between 1 and 300";
                return r;
        }
        if (streq(name, "ignore-keys")) {
                c->ignore_keys = strv_free(c->ignore_keys);
                return strv_split_comma(v, &c->ignore_keys);
        }
        if (streq(name, "health-listen")) {
                if (streq(v, "none") || streq(v, "")) {
                        free(c->health_listen);
                        c->health_listen = NULL;
                        return 0;
                }
                return set_string(&c->health_listen, v);
        }
        if (streq(name, "report-url"))
                return set_string(&c->report_url, v);
        if (streq(name, "report-token-file"))
                return set_string(&c->report_token_file, v);
        if (streq(name, "report-ca"))
                return set_string(&c->report_ca, v);
        if (streq(name, "node-name"))
                return set_string(&c->node_name, v);
        if (streq(name, "node-status")) {
                if (streq(v, "auto"))
                        c->node_status = NODE_STATUS_AUTO;
                else if (streq(v, "on"))
                        c->node_status = NODE_STATUS_ON;
                else if (streq(v, "off"))
                        c->node_status = NODE_STATUS_OFF;
                else {
                        *err = "must be 'auto', 'on' or 'off'";
                        return -EINVAL;
                }
                return 0;
        }
        if (streq(name, "node-status-kubeconfig"))
                return set_string(&c->node_status_kubeconfig, v);
        if (streq(name, "node-status-in-cluster"))
                return parse_bool(v, &c->node_status_in_cluster);
        if (streq(name, "node-status-heartbeat")) {
                r = parse_uint(v, 1, 3600, &c->node_status_heartbeat_sec);
                if (r < 0)
                        *err = "expected a number of seconds between 1 and 3600";
                return r;
        }
        if (streq(name, "log-level")) {
                static const char *const levels[] = { "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug" };
                for (int i = 0; i < (int) ELEMENTSOF(levels); i++)
                        if (streq(v, levels[i]) || (i == LOG_ERR && streq(v, "error")) || (i == LOG_WARNING && streq(v, "warn"))) {
                                c->log_level = i;
                                return 0;
                        }
                *err = "expected debug, info, notice, warning or err";
                return -EINVAL;
        }
        if (streq(name, "config"))
                return set_string(&c->config_file, v);
        *err = "unknown setting";
        return -EINVAL;
}

#define CONFIG_FILE_MAX (64 * 1024)

static const Option *option_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(options); i++)
                if (streq(options[i].name, name))
                        return &options[i];
        return NULL;
}

/* "key = value" per line, '#' comments, blank lines ignored. Errors name the line. */
static int config_parse_file(Config *c, const char *path, bool must_exist) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *line = NULL, *text = NULL;
        size_t alloc = 0, size = 0;
        unsigned lineno = 0;
        int r;

        /* Read whole and bounded, a regular file only: a FIFO named by
         * --config must not hang the start. /dev/null, the way to say
         * "no file", is the one special file taken as empty. */
        r = streq(path, "/dev/null") ? 0 : read_file_at(AT_FDCWD, path, true, CONFIG_FILE_MAX, &text, &size);
        if (r == -ENOENT && !must_exist)
                return 0;
        if (r < 0) {
                fprintf(stderr, "nodetrustd: cannot read config file '%s': %s\n", path,
                        r == -EBADFD ? "not a regular file" : r == -EFBIG ? "larger than 64 KiB" : strerror(-r));
                return -EINVAL;
        }
        if (size == 0)
                return 0;
        f = fmemopen(text, size, "r");
        if (!f) {
                fprintf(stderr, "nodetrustd: cannot read config file '%s': %s\n", path, strerror(errno));
                return -EINVAL;
        }
        while (getline(&line, &alloc, f) >= 0) {
                char *k = line, *v, *e;
                const Option *o;
                const char *err;

                lineno++;
                k += strspn(k, " \t");
                e = k + strcspn(k, "\r\n");
                *e = 0;
                if (*k == 0 || *k == '#')
                        continue;
                v = strchr(k, '=');
                if (v) {
                        *v++ = 0;
                        v += strspn(v, " \t");
                }
                for (e = k + strlen(k); e > k && (e[-1] == ' ' || e[-1] == '\t');)
                        *--e = 0;
                for (e = v ? v + strlen(v) : NULL; e && e > v && (e[-1] == ' ' || e[-1] == '\t');)
                        *--e = 0;

                o = option_find(k);
                if (!o || streq(k, "config") || streq(k, "help") || streq(k, "version")) {
                        fprintf(stderr, "nodetrustd: %s:%u: unknown setting '%s'\n", path, lineno, k);
                        return -EINVAL;
                }
                if (o->arg && !v) {
                        fprintf(stderr, "nodetrustd: %s:%u: '%s' needs '= value'\n", path, lineno, k);
                        return -EINVAL;
                }
                r = config_set(c, k, v, false, &err);
                if (r < 0) {
                        fprintf(stderr, "nodetrustd: %s:%u: bad value for '%s': %s\n", path, lineno, k,
                                err ? err : strerror(-r));
                        return -EINVAL;
                }
        }
        return 0;
}

static int config_defaults(Config *c) {
        char host[256];
        const char *n = getenv("NODE_NAME");

        /* The pull secret's owner defaults to 0:0, its policy to replace. */
        *c = (Config){ .targets = TARGET_ALL, .containerd_hosts_toml = true, .resync_sec = DEFAULT_RESYNC_SEC,
                       .report_interval_sec = DEFAULT_REPORT_INTERVAL_SEC,
                       .verify_interval_sec = DEFAULT_VERIFY_INTERVAL_SEC,
                       .verify_timeout_sec = DEFAULT_VERIFY_TIMEOUT_SEC, .log_level = LOG_INFO,
                       .node_status_heartbeat_sec = DEFAULT_NODE_STATUS_HEARTBEAT_SEC,
                       .pull_secret_options = { .policy = PULL_SECRET_REPLACE, .uid = 0, .gid = 0 } };
        if (!n || !*n) {
                if (gethostname(host, sizeof host) < 0)
                        snprintf(host, sizeof host, "localhost");
                host[sizeof host - 1] = 0;
                n = host;
        }
        if (set_string(&c->root, "/") < 0 || set_string(&c->state_dir, DEFAULT_STATE_DIR) < 0 ||
            set_string(&c->containerd_config, DEFAULT_CONTAINERD_CONFIG) < 0 ||
            set_string(&c->health_listen, DEFAULT_HEALTH_LISTEN) < 0 || set_string(&c->node_name, n) < 0 ||
            strv_extend(&c->pull_secret_options.paths, DEFAULT_PULL_SECRET_TARGET) < 0 ||
            strv_split_comma(DEFAULT_IGNORE_KEYS, &c->ignore_keys) < 0)
                return -ENOMEM;
        return 0;
}

int config_load(Config *c, int argc, char **argv) {
        struct option longopts[ELEMENTSOF(options) + 1] = {};
        const char *config_file = NULL;
        int opt, idx, r;

        r = config_defaults(c);
        if (r < 0)
                return r;
        cmdline_targets_seen = false;

        for (size_t i = 0; i < ELEMENTSOF(options); i++)
                longopts[i] = (struct option){ options[i].name, options[i].arg ? required_argument : no_argument, NULL, 0 };

        /* First pass: only --help, --version and --config, and flag syntax. */
        opterr = 1;
        while ((opt = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
                if (opt == '?') {
                        fprintf(stderr, "Try '%s --help'.\n", argv[0]);
                        return -EINVAL;
                }
                if (opt == 'h' || streq(options[idx].name, "help")) {
                        config_help(argv[0]);
                        return 1;
                }
                if (streq(options[idx].name, "version")) {
                        printf("nodetrustd %s\n", NODETRUST_VERSION);
                        return 1;
                }
                if (streq(options[idx].name, "config"))
                        config_file = optarg;
        }
        if (optind < argc) {
                fprintf(stderr, "nodetrustd: unexpected argument '%s'. Try '%s --help'.\n", argv[optind], argv[0]);
                return -EINVAL;
        }

        r = config_parse_file(c, config_file ? config_file : DEFAULT_CONFIG_FILE, config_file != NULL);
        if (r < 0)
                return r;
        if (set_string(&c->config_file, config_file ? config_file : DEFAULT_CONFIG_FILE) < 0)
                return -ENOMEM;

        /* Second pass: the command line overrides the file. */
        optind = 0;
        while ((opt = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
                const char *err;
                if (opt != 0 || streq(options[idx].name, "config"))
                        continue;
                r = config_set(c, options[idx].name, optarg, true, &err);
                if (r < 0) {
                        fprintf(stderr, "nodetrustd: bad value for --%s: %s\n", options[idx].name,
                                err ? err : strerror(-r));
                        return -EINVAL;
                }
        }

        if (!c->trust_source && !c->pull_secret && !c->kubeconfig && !c->in_cluster) {
                fprintf(stderr, "nodetrustd: nothing to do: give --trust-source, --pull-secret, --kubeconfig or --in-cluster. Try '%s --help'.\n", argv[0]);
                return -EINVAL;
        }
        if ((c->kubeconfig || c->in_cluster) && (c->trust_source || c->pull_secret)) {
                fprintf(stderr, "nodetrustd: --kubeconfig/--in-cluster read both from the API; do not combine them with --trust-source/--pull-secret\n");
                return -EINVAL;
        }
        if (c->kubeconfig && c->in_cluster) {
                fprintf(stderr, "nodetrustd: give either --kubeconfig or --in-cluster, not both\n");
                return -EINVAL;
        }
        if (c->root[0] != '/') {
                fprintf(stderr, "nodetrustd: --root must be an absolute path\n");
                return -EINVAL;
        }
        if (c->report_token_file && !c->report_url) {
                fprintf(stderr, "nodetrustd: --report-token-file needs --report-url\n");
                return -EINVAL;
        }
        if (c->node_status_kubeconfig && c->node_status_in_cluster) {
                fprintf(stderr, "nodetrustd: give either --node-status-kubeconfig or --node-status-in-cluster, not both\n");
                return -EINVAL;
        }
        if ((c->node_status_kubeconfig || c->node_status_in_cluster) && (c->kubeconfig || c->in_cluster)) {
                fprintf(stderr, "nodetrustd: node status uses the API source's credentials (--kubeconfig/--in-cluster); drop --node-status-kubeconfig/--node-status-in-cluster\n");
                return -EINVAL;
        }
        if (c->node_status == NODE_STATUS_ON && !config_node_status_enabled(c, &(const char *){ NULL })) {
                fprintf(stderr, "nodetrustd: --node-status=on needs API credentials: --kubeconfig, --in-cluster, --node-status-kubeconfig or --node-status-in-cluster\n");
                return -EINVAL;
        }
        c->pull_secret_options.enabled = c->pull_secret || c->kubeconfig || c->in_cluster;
        return 0;
}

bool config_node_status_enabled(const Config *c, const char **ret_kubeconfig) {
        *ret_kubeconfig = c->kubeconfig ? c->kubeconfig : c->node_status_kubeconfig;
        if (c->node_status == NODE_STATUS_OFF)
                return false;
        return c->kubeconfig || c->in_cluster || c->node_status_kubeconfig || c->node_status_in_cluster;
}

void config_done(Config *c) {
        free(c->config_file);
        free(c->trust_source);
        free(c->pull_secret);
        strv_free(c->pull_secret_options.paths);
        free(c->kubeconfig);
        free(c->root);
        free(c->state_dir);
        free(c->containerd_config);
        strv_free(c->ignore_keys);
        free(c->health_listen);
        free(c->report_url);
        free(c->report_token_file);
        free(c->report_ca);
        free(c->node_name);
        free(c->node_status_kubeconfig);
        *c = (Config){};
}
