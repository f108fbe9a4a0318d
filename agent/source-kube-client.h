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

#include "source-kube-watch.h"

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
