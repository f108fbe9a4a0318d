/* SPDX-License-Identifier: MIT */
/* libFuzzer target: containerd's config.toml as runtime_check() reads it
 * (the TOML reader plus what the agent makes of plugins, imports and
 * config_path). The input is /etc/containerd/config.toml, optionally
 * followed by "\n#----\n" and /etc/containerd/conf.d/10.toml, which an
 * import may name. Any content gets a verdict, never a crash: active
 * without a reason, otherwise a reason that is one printable line; and
 * the same files give the same verdict again. */
#include <errno.h>
#include <string.h>

#include "fuzz-util.h"
#include "runtime.h"

static bool printable_line(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool made = false;
        RuntimeStatus a = {}, b = {};
        const TargetStatus *ts = NULL;
        const uint8_t *rest;
        size_t n, rest_size;

        if (!made) {
                if (fuzz_mkdirs("etc/containerd/conf.d") < 0)
                        abort();
                made = true;
        }
        n = fuzz_split(data, size, "\n#----\n", &rest, &rest_size);
        fuzz_write("etc/containerd/config.toml", data, n);
        if (rest)
                fuzz_write("etc/containerd/conf.d/10.toml", rest, rest_size);
        else
                (void) unlinkat(fuzz_root_fd(), "etc/containerd/conf.d/10.toml", 0);

        fuzz_check(runtime_check(fuzz_root_fd(), "/etc/containerd/config.toml", TARGET_CONTAINERD, &a) == 0);
        for (size_t i = 0; i < N_TARGETS; i++)
                if (targets[i].bit == TARGET_CONTAINERD)
                        ts = &a.targets[i];
                else
                        fuzz_check(!a.targets[i].enabled);
        fuzz_check(ts && ts->enabled);
        if (ts->state == TARGET_STATE_ACTIVE)
                fuzz_check(!ts->reason);
        else
                fuzz_check(ts->state == TARGET_STATE_INACTIVE && ts->reason && *ts->reason &&
                           printable_line(ts->reason));

        fuzz_check(runtime_check(fuzz_root_fd(), "/etc/containerd/config.toml", TARGET_CONTAINERD, &b) == 0);
        fuzz_check(runtime_status_equal(&a, &b));
        runtime_status_done(&a);
        runtime_status_done(&b);
        return 0;
}
