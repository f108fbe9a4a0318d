/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the pull-secret ledger (state/pullsecret.json) is read
 * back from disk like the manifest: any content loads or is refused, never
 * crashes; every lookup a sync makes on it answers; what loads saves and
 * loads back equal; recording an entry and reading it back agree.
 *
 * FUZZ_STRICT=1 (make FUZZ_STRICT=1 fuzz) also demands that every registry it hands out
 * is a registry name (no path separator, no "..", no control byte): turn
 * it on once pull_secret_ledger_load() checks names. */
#include <errno.h>
#include <string.h>

#include "fuzz-util.h"
#include "pullsecret-validate.h"
#include "pullsecret-ledger.h"
#include "strv.h"

#ifndef FUZZ_STRICT
#define FUZZ_STRICT 0
#endif

static const char *const paths[] = { "/var/lib/kubelet/config.json", "/root/.docker/config.json", "" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        json_t *ledger = NULL, *again = NULL, *e;
        const char *key;
        char **regs = NULL;
        bool changed = false;
        int r;

        if (fuzz_mkdirs("state") < 0)
                abort();
        fuzz_write("state/pullsecret.json", data, size);
        r = pull_secret_ledger_load(fuzz_root_fd(), "state", &ledger);
        if (r < 0) {
                fuzz_check(!ledger && (r == -EBADMSG || r == -EINVAL || r == -ENOMEM));
                return 0;
        }
        fuzz_check(json_is_object(json_object_get(ledger, "targets")));

        json_object_foreach(json_object_get(ledger, "targets"), key, e) {
                fuzz_check(pull_secret_ledger_registries(ledger, key, &regs) >= 0);
                for (char **p = regs; p && *p; p++)
                        /* Keys of a merged config.json, not paths: what
                         * the secret's own checks take ("quay.io/org" is
                         * one), nothing they refuse. */
                        if (FUZZ_STRICT)
                                fuzz_check(pull_secret_registry_check(*p) == NULL);
                regs = strv_free(regs);
                fuzz_check(pull_secret_ledger_sha256(ledger, key));
        }

        r = pull_secret_ledger_save(fuzz_root_fd(), "saved", ledger);
        fuzz_check(r >= 0);
        r = pull_secret_ledger_load(fuzz_root_fd(), "saved", &again);
        fuzz_check(r >= 0 && json_equal(ledger, again));

        /* What a sync records is what the next one reads. */
        for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
                char *const want[] = { "quay.io", "reg.example.com:5000", NULL };
                fuzz_check(pull_secret_ledger_set(ledger, paths[i], want, "00ff", &changed) >= 0);
                fuzz_check(pull_secret_ledger_registries(ledger, paths[i], &regs) >= 0);
                fuzz_check(strv_length(regs) == 2 && strcmp(regs[0], want[0]) == 0 && strcmp(regs[1], want[1]) == 0);
                fuzz_check(strcmp(pull_secret_ledger_sha256(ledger, paths[i]), "00ff") == 0);
                regs = strv_free(regs);
                changed = false;
                fuzz_check(pull_secret_ledger_set(ledger, paths[i], want, "00ff", &changed) >= 0 && !changed);
        }

        json_decref(again);
        json_decref(ledger);
        return 0;
}
