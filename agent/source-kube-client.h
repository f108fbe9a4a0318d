/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The client configuration of the API source, kept current: loaded from
 * the kubeconfig (or the in-cluster service account) at start, and loaded
 * again before a request when the kubeconfig or a file it names (CA,
 * client certificate and key) changed since: a stat() of each at every
 * list or watch, which costs nothing next to the request and needs no
 * inotify on directories the agent does not own. A watch that is up keeps
 * its connection until it ends (at its timeout, minutes); one that is
 * failing is retried at once with the new configuration.
 *
 * The CA file, client certificate and key are read here, once per load,
 * bounded and only as regular files (libcurl would open a path during
 * each TLS handshake, on the loop: a FIFO there hung the agent), each
 * stamped before it is read: what was stamped is what is used, and a file
 * that goes missing or unreadable keeps the last good configuration (and
 * says so) instead of failing every new connection. A configuration that
 * does not load is tried again when any file it names changes, one that
 * appears included.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "curl-request.h"
#include "source-kube-config.h"

/* What stat() said of a file the client configuration came from. */
typedef struct KubeFileStamp {
        bool exists;
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime, ctime;
} KubeFileStamp;
/* The kubeconfig, its CA, client certificate and key. */
#define KUBE_CLIENT_STAMPS 4

/* What every watch of one source shares. Plain data, owned by the source. */
typedef struct KubeWatch KubeWatch;

typedef struct KubeClient {
        sd_event *event;
        CurlGlue *glue;
        KubeConfig *config;
        unsigned watch_timeout_sec;    /* timeoutSeconds asked for (jittered up to +25%) */
        uint64_t request_timeout_usec; /* a list, or a watch's 200, must arrive within this */
        uint64_t backoff_base_usec;
        uint64_t backoff_cap_usec;
        KubeWatch *watches; /* every watch of this client (source-kube-watch.c keeps the list) */

        /* Where config came from, so that it is loaded again when it or a
         * file it names changes (source-kube-client.c). Unset (a test's
         * hand-made client): config is never reloaded. */
        bool loaded;
        char *kubeconfig_path; /* NULL: in-cluster */
        KubeFileStamp stamps[KUBE_CLIENT_STAMPS];
        char *stamp_paths[KUBE_CLIENT_STAMPS]; /* what stamps are of; [0] unused (kubeconfig_path) */
        char config_error[240]; /* why the changed configuration was not taken; "" when it was */
} KubeClient;


/* Load c->config from kubeconfig_path (NULL: in-cluster) and remember
 * what it came from. On error *ret_error says why. */
int kube_client_load(KubeClient *c, const char *kubeconfig_path, char **ret_error);

/* Load again when something changed since the last load (or try). A
 * configuration that no longer loads leaves the last good one in place,
 * with the reason in c->config_error, until the files change again.
 * Returns true when c->config was replaced. */
bool kube_client_refresh(KubeClient *c);

/* Free what kube_client_load() set. */
void kube_client_done(KubeClient *c);
