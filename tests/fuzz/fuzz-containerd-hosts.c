/* SPDX-License-Identifier: MIT */
/* libFuzzer target: an administrator's hosts.toml, whatever it holds, gets a
 * verdict (effective, or shadowed with a reason) and never a crash, and the
 * hosts.toml we write for any registry name passes our own check. The
 * first input byte picks the registry name the file is judged for. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "containerd-hosts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const registries[] = { "reg.example.com", "reg.example.com:5000", "localhost:5000",
                                                  "127.0.0.1:5443", "docker.io" };
        const char *registry;
        char *why = NULL, *ours = NULL;
        size_t n;

        if (size == 0)
                return 0;
        registry = registries[data[0] % (sizeof registries / sizeof *registries)];
        if (containerd_hosts_check((const char *) data + 1, size - 1, registry, "/etc/containerd/certs.d", &why) < 0)
                return 0; /* out of memory */
        if (why && !*why)
                __builtin_trap();
        free(why);
        why = NULL;

        if (containerd_hosts_render(registry, &ours, &n) < 0)
                return 0;
        if (!containerd_hosts_is_ours(ours, n) ||
            containerd_hosts_check(ours, n, registry, "/etc/containerd/certs.d", &why) < 0 || why)
                __builtin_trap();
        free(ours);
        return 0;
}
