/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Where the Kubernetes API is and how to talk to it: from a kubeconfig file
 * (YAML or JSON, as kubectl writes it; the current context only) or from
 * the pod's service account (in-cluster). Only what nodetrustd uses is
 * kept: server, CA, bearer token or client certificate.
 */

#include <stdbool.h>
#include <stddef.h>

/* The service-account mount; NODETRUST_SERVICEACCOUNT_DIR overrides it
 * (tests, or a host that copies a token elsewhere). */
#define KUBE_SERVICEACCOUNT_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

typedef struct KubeConfig {
        char *server; /* "https://host:port", no trailing '/' */

        /* Trust for the server's certificate: data (PEM) wins over file. */
        char *ca_file;
        unsigned char *ca_data;
        size_t ca_data_size;

        /* Client identity, optional: data wins over file. */
        char *cert_file;
        unsigned char *cert_data;
        size_t cert_data_size;
        char *key_file;
        unsigned char *key_data;
        size_t key_data_size;

        /* Bearer token: a fixed one, or a file re-read at every request
         * (the in-cluster token is rotated by the kubelet). */
        char *token;
        char *token_file;

        /* Secret-free, for logs and status: "kubeconfig FILE context NAME". */
        char *origin;
} KubeConfig;

/* Parse kubeconfig text; relative paths are taken from base_dir. On error
 * returns -EINVAL (or -ENOMEM) and sets *ret_error to what is wrong. */
int kubeconfig_parse(const char *text, size_t size, const char *base_dir, KubeConfig **ret, char **ret_error);

/* Read and parse the file path (-errno of the read, with *ret_error set). */
int kubeconfig_load(const char *path, KubeConfig **ret, char **ret_error);

/* KUBERNETES_SERVICE_HOST/PORT plus token and ca.crt of sa_dir (NULL: the
 * environment's NODETRUST_SERVICEACCOUNT_DIR, else KUBE_SERVICEACCOUNT_DIR). */
int kubeconfig_in_cluster(const char *sa_dir, KubeConfig **ret, char **ret_error);

KubeConfig *kubeconfig_free(KubeConfig *k);
static inline void kubeconfig_freep(KubeConfig **k) {
        kubeconfig_free(*k);
}

/* The bearer token to send now (*ret NULL when the config has none, e.g.
 * client-certificate auth). Re-reads token_file. Wipe and free the result. */
int kubeconfig_token(const KubeConfig *k, char **ret);
