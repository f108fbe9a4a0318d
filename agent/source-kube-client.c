/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "fs.h"
#include "log.h"
#include "source-kube-client.h"

/* A CA bundle for one API server is a few certificates. */
#define CA_FILE_MAX (1024 * 1024)

static void stamp_take(KubeFileStamp *st, const char *path) {
        struct stat s;

        *st = (KubeFileStamp){};
        /* Followed: the service-account CA is a symlink into a directory
         * the kubelet swaps, and what counts is the file behind it. */
        if (!path || stat(path, &s) < 0)
                return;
        *st = (KubeFileStamp){
                .exists = true, .dev = s.st_dev, .ino = s.st_ino, .size = s.st_size,
                .mtime = s.st_mtim, .ctime = s.st_ctim,
        };
}

static bool stamp_equal(const KubeFileStamp *a, const KubeFileStamp *b) {
        return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
               a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
               a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* The files a configuration came from, in stamps order. */
static void config_files(const KubeClient *c, const KubeConfig *k, const char *files[KUBE_CLIENT_STAMPS]) {
        files[0] = c->kubeconfig_path;
        files[1] = k ? k->ca_file : NULL;
        files[2] = k ? k->cert_file : NULL;
        files[3] = k ? k->key_file : NULL;
}

static void stamps_take(const KubeClient *c, const KubeConfig *k, KubeFileStamp stamps[KUBE_CLIENT_STAMPS]) {
        const char *files[KUBE_CLIENT_STAMPS];

        config_files(c, k, files);
        for (size_t i = 0; i < KUBE_CLIENT_STAMPS; i++)
                stamp_take(&stamps[i], files[i]);
}

/* Parse the configuration, and read its CA file into its CA data. */
static int config_load(const char *path, KubeConfig **ret, char **ret_error) {
        _cleanup_(kubeconfig_freep) KubeConfig *k = NULL;
        char *pem = NULL;
        size_t size;
        int r;

        r = path ? kubeconfig_load(path, &k, ret_error) : kubeconfig_in_cluster(NULL, &k, ret_error);
        if (r < 0)
                return r;
        if (k->ca_file && !k->ca_data) {
                r = read_file_at(AT_FDCWD, k->ca_file, true, CA_FILE_MAX, &pem, &size);
                if (r < 0) {
                        if (asprintf(ret_error, "cannot read the CA file '%s': %s", k->ca_file, strerror(-r)) < 0)
                                *ret_error = NULL;
                        return r;
                }
                k->ca_data = (unsigned char *) pem;
                k->ca_data_size = size;
        }
        *ret = TAKE_PTR(k);
        return 0;
}

int kube_client_load(KubeClient *c, const char *kubeconfig_path, char **ret_error) {
        KubeFileStamp before[KUBE_CLIENT_STAMPS];
        KubeConfig *k = NULL;
        int r;

        assert(c);
        assert(ret_error);

        *ret_error = NULL;
        if (kubeconfig_path) {
                c->kubeconfig_path = strdup(kubeconfig_path);
                if (!c->kubeconfig_path)
                        return -ENOMEM;
        }
        /* The kubeconfig's stamp before it is read, so that a change
         * while it is read shows at the next look. */
        stamp_take(&before[0], kubeconfig_path);
        r = config_load(kubeconfig_path, &k, ret_error);
        if (r < 0)
                return r;
        stamps_take(c, k, c->stamps);
        c->stamps[0] = before[0];
        c->config = k;
        c->loaded = true;
        return 0;
}

bool kube_client_refresh(KubeClient *c) {
        KubeFileStamp now[KUBE_CLIENT_STAMPS];
        _cleanup_free_ char *error = NULL;
        KubeConfig *k = NULL;
        bool same = true;
        int r;

        assert(c);

        if (!c->loaded)
                return false;
        stamps_take(c, c->config, now);
        for (size_t i = 0; i < KUBE_CLIENT_STAMPS; i++)
                same = same && stamp_equal(&now[i], &c->stamps[i]);
        if (same)
                return false;

        r = config_load(c->kubeconfig_path, &k, &error);
        if (r < 0) {
                char e[sizeof c->config_error];

                if (c->kubeconfig_path)
                        snprintf(e, sizeof e, "kubeconfig %s: %s", c->kubeconfig_path, error ? error : strerror(-r));
                else
                        snprintf(e, sizeof e, "in-cluster configuration: %s", error ? error : strerror(-r));
                if (!streq(e, c->config_error))
                        log_warning("The Kubernetes client configuration changed and cannot be used (%s); keeping the last good one",
                                    e);
                snprintf(c->config_error, sizeof c->config_error, "%s", e);
                /* Tried: the next attempt waits for the next change. */
                memcpy(c->stamps, now, sizeof now);
                return false;
        }
        log_full(LOG_INFO, "Kubernetes client configuration changed, loaded again", "ORIGIN=%s", k->origin, NULL);
        c->config_error[0] = 0;
        kubeconfig_free(c->config);
        c->config = k;
        /* Stamps of the files the new configuration names, the kubeconfig
         * as it was when this look began. */
        stamps_take(c, k, c->stamps);
        c->stamps[0] = now[0];
        return true;
}

void kube_client_done(KubeClient *c) {
        assert(c);

        c->config = kubeconfig_free(c->config);
        free(c->kubeconfig_path);
        c->kubeconfig_path = NULL;
        c->loaded = false;
}
