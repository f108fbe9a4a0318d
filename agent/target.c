/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "target.h"

const Target targets[N_TARGETS] = {
        { "docker", "etc/docker/certs.d", TARGET_DOCKER },
        { "containers", "etc/containers/certs.d", TARGET_CONTAINERS },
        { "containerd", "etc/containerd/certs.d", TARGET_CONTAINERD },
};

const Target *target_by_name(const char *name) {
        assert(name);

        for (size_t i = 0; i < ELEMENTSOF(targets); i++)
                if (streq(targets[i].name, name))
                        return &targets[i];
        return NULL;
}

int targets_parse(const char *list, unsigned *ret, const char **ret_bad) {
        _cleanup_free_ char *copy = NULL;
        static char bad[64];
        unsigned mask = 0;
        char *save = NULL;

        assert(list);
        assert(ret);
        assert(ret_bad);

        copy = strdup(list);
        if (!copy)
                return -ENOMEM;
        for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
                const Target *tg = target_by_name(t);
                if (!tg) {
                        snprintf(bad, sizeof bad, "%s", t);
                        *ret_bad = bad;
                        return -EINVAL;
                }
                mask |= tg->bit;
        }
        if (mask == 0) {
                *ret_bad = "(empty)";
                return -EINVAL;
        }
        *ret = mask;
        return 0;
}
