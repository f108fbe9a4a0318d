/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * nodetrustd's settings: from an optional config file ("key = value", keys
 * are the long flag names) and then the command line, which wins.
 */

#include <stdbool.h>

#include "pullsecret-options.h"

#define DEFAULT_CONFIG_FILE "/etc/nodetrust/nodetrustd.conf"
#define DEFAULT_STATE_DIR "/var/lib/nodetrust"
#define DEFAULT_PULL_SECRET_TARGET "/var/lib/kubelet/config.json"
#define DEFAULT_HEALTH_LISTEN "127.0.0.1:9447"
#define DEFAULT_RESYNC_SEC 300
#define DEFAULT_REPORT_INTERVAL_SEC 30
#define DEFAULT_CONTAINERD_CONFIG "/etc/containerd/config.toml"
#define DEFAULT_VERIFY_INTERVAL_SEC 21600 /* 6 h */
#define DEFAULT_VERIFY_TIMEOUT_SEC 10
#define DEFAULT_NODE_STATUS_HEARTBEAT_SEC 300

/* --node-status: the RegistryTrustReady node condition and its events. */
typedef enum NodeStatusMode {
        NODE_STATUS_AUTO, /* on when the agent has API credentials */
        NODE_STATUS_ON,   /* on; no credentials is a usage error */
        NODE_STATUS_OFF,
} NodeStatusMode;

typedef struct Config {
        char *config_file;
        char *trust_source;
        char *pull_secret;
        /* --pull-secret-target (default DEFAULT_PULL_SECRET_TARGET),
         * --pull-secret-policy (default replace), --pull-secret-owner
         * (default 0:0), parsed; enabled once the flags are all read. */
        PullSecretOptions pull_secret_options;
        char *kubeconfig;
        bool in_cluster;
        unsigned kube_watch_timeout_sec; /* 0: the API source's default */
        char *root;
        unsigned targets; /* TARGET_* bit mask */
        bool containerd_hosts_toml; /* write an owned hosts.toml beside each containerd ca.crt */
        char *containerd_config;    /* read (never written) under --root to see whether containerd reads certs.d */
        char *state_dir;
        bool once;
        bool dry_run;
        unsigned resync_sec;
        char **ignore_keys;  /* strv */
        char *health_listen; /* NULL: disabled ("none") */
        char *report_url;
        char *report_token_file;
        char *report_ca;
        unsigned report_interval_sec;
        unsigned verify_interval_sec; /* proof of trust, daemon only; 0: never */
        unsigned verify_timeout_sec;
        char *node_name;
        NodeStatusMode node_status;
        char *node_status_kubeconfig; /* credentials for node status alone (directory source) */
        bool node_status_in_cluster;  /* the pod's service account, for node status alone */
        unsigned node_status_heartbeat_sec;
        int log_level; /* LOG_DEBUG..LOG_ERR */
} Config;

/* Exit statuses, shared by --once, start-up errors and the man page. */
enum {
        EXIT_APPLIED = 0,
        EXIT_PARTIAL = 1, /* --once: applied, but keys refused or conflicting */
        EXIT_USAGE = 2,   /* bad flags or config file */
        EXIT_FAILURE_ = 3, /* source unreadable or writes failed */
};

/* Parse argv (and the config file it names, or the default one if it
 * exists). Returns 0 to run, 1 when --help/--version was printed, or
 * -EINVAL after printing a clear message to stderr. */
int config_load(Config *c, int argc, char **argv);
void config_done(Config *c);

/* Whether node status runs, and with which credentials: *ret_kubeconfig
 * is the file, NULL for the pod's service account. */
bool config_node_status_enabled(const Config *c, const char **ret_kubeconfig);
void config_help(const char *argv0);
