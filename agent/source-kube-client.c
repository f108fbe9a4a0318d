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
#define FILE_MAX (1024 * 1024)

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

/* Read the file the configuration names into its data, bounded, a
 * regular file only (a FIFO there would block the loop in the TLS
 * handshake), stamping it first: what was stamped is what is used, and a
 * change after the stamp shows at the next look. */
static int read_named(const char *file, const char *what, KubeFileStamp *st, unsigned char **data, size_t *size,
                      char **ret_error) {
        char *text = NULL;
        int r;

        stamp_take(st, file);
        r = read_file_at(AT_FDCWD, file, true, FILE_MAX, &text, size);
        if (r < 0) {
                if (asprintf(ret_error, "cannot read the %s '%s': %s", what, file,
                             r == -EBADFD ? "not a regular file" : strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        *data = (unsigned char *) text;
        return 0;
}

/* Parse the configuration at path (NULL: in-cluster), and read the CA,
 * client certificate and key files it names into its data. stamps gets
 * the kubeconfig's stamp (taken before it is read) and each named file's,
 * whether or not the load works: a file that a failed configuration names
 * and that appears later is then a change, and the load is tried again. */
static int config_load(const char *path, KubeConfig **ret, KubeFileStamp stamps[KUBE_CLIENT_STAMPS],
                       char *paths[KUBE_CLIENT_STAMPS], char **ret_error) {
        _cleanup_(kubeconfig_freep) KubeConfig *k = NULL;
        int r;

        for (size_t i = 0; i < KUBE_CLIENT_STAMPS; i++) {
                stamps[i] = (KubeFileStamp){};
                paths[i] = mfree(paths[i]);
        }
        stamp_take(&stamps[0], path);
        if (path && !(paths[0] = strdup(path)))
                return -ENOMEM;
        r = path ? kubeconfig_load(path, &k, ret_error) : kubeconfig_in_cluster(NULL, &k, ret_error);
        if (r < 0)
                return r;

        struct {
                const char *file, *what;
                unsigned char **data;
                size_t *size;
        } named[] = {
                /* The key's data is wiped when the configuration is freed. */
                { k->ca_file, "CA file", &k->ca_data, &k->ca_data_size },
                { k->cert_file, "client certificate", &k->cert_data, &k->cert_data_size },
                { k->key_file, "client key", &k->key_data, &k->key_data_size },
        };
        for (size_t i = 0; i < ELEMENTSOF(named); i++) {
                if (!named[i].file || *named[i].data)
                        continue;
                if (!(paths[i + 1] = strdup(named[i].file)))
                        return -ENOMEM;
                r = read_named(named[i].file, named[i].what, &stamps[i + 1], named[i].data, named[i].size,
                               ret_error);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(k);
        return 0;
}

int kube_client_load(KubeClient *c, const char *kubeconfig_path, char **ret_error) {
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
        r = config_load(kubeconfig_path, &k, c->stamps, c->stamp_paths, ret_error);
        if (r < 0)
                return r;
        c->config = k;
        c->loaded = true;
        return 0;
}

bool kube_client_refresh(KubeClient *c) {
        KubeFileStamp now;
        _cleanup_free_ char *error = NULL;
        KubeConfig *k = NULL;
        bool same = true;
        int r;

        assert(c);

        if (!c->loaded)
                return false;
        /* The files the last attempt named, loaded or not. */
        for (size_t i = 0; i < KUBE_CLIENT_STAMPS && same; i++) {
                const char *file = i == 0 ? c->kubeconfig_path : c->stamp_paths[i];
                if (i > 0 && !file)
                        continue;
                stamp_take(&now, file);
                same = stamp_equal(&now, &c->stamps[i]);
        }
        if (same)
                return false;

        r = config_load(c->kubeconfig_path, &k, c->stamps, c->stamp_paths, &error);
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
                return false;
        }
        log_full(LOG_INFO, "Kubernetes client configuration changed, loaded again", "ORIGIN=%s", k->origin, NULL);
        c->config_error[0] = 0;
        kubeconfig_free(c->config);
        c->config = k;
        return true;
}

void kube_client_done(KubeClient *c) {
        assert(c);

        c->config = kubeconfig_free(c->config);
        free(c->kubeconfig_path);
        c->kubeconfig_path = NULL;
        for (size_t i = 0; i < KUBE_CLIENT_STAMPS; i++)
                c->stamp_paths[i] = mfree(c->stamp_paths[i]);
        c->loaded = false;
}
