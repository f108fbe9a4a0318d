/* SPDX-License-Identifier: MIT */
#pragma once

#include "source.h"

#define SOURCE_KUBE_WATCH_TIMEOUT_SEC 300

/*
 * The Kubernetes API source (kind "kube"): follows
 * image.config.openshift.io/cluster .spec.additionalTrustedCA.name to a
 * config map in openshift-config, merges openshift-config-managed/
 * image-registry-ca, and reads openshift-config/pull-secret, each by list +
 * watch. kubeconfig_path NULL means in-cluster (service account).
 * watch_timeout_sec 0 means SOURCE_KUBE_WATCH_TIMEOUT_SEC. Configuration
 * errors are logged here, with the detail, and returned.
 *
 * Its parts, as timesyncd names its own: source-kube-config.c finds the
 * API server and credentials, source-kube-api.c is the list/watch protocol
 * without I/O, source-kube-watch.c keeps one object current on the loop
 * and source-kube-watch-reply.c reads what the server answers it.
 */
int source_kube_new(const char *kubeconfig_path, unsigned watch_timeout_sec, Source **ret);
