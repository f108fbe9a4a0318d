/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "pullsecret-render.h"
#include "pullsecret-validate.h"

/* Serialize like every file we write: sorted keys, two-space indent, a
 * final newline. The result holds credentials: the caller wipes it. */
static int dump(const json_t *j, char **ret, size_t *ret_size) {
        char *s = json_dumps(j, PULL_SECRET_DUMP_FLAGS), *n;
        size_t len;

        if (!s)
                return -ENOMEM;
        len = strlen(s);
        n = malloc(len + 2);
        if (!n) {
                pull_secret_wipe_free(s, len);
                return -ENOMEM;
        }
        memcpy(n, s, len);
        n[len] = '\n';
        n[len + 1] = 0;
        pull_secret_wipe_free(s, len);
        *ret = n;
        *ret_size = len + 1;
        return 0;
}

static int render_merge(const json_t *secret, const char *existing, size_t existing_size, char *const *previous,
                        char **ret_content, size_t *ret_size, bool *ret_same, char **ret_reason) {
        json_auto_t *old = NULL, *merged = NULL;
        const json_t *want = json_object_get(secret, "auths");
        json_t *auths, *e;
        const char *key;
        json_error_t err;

        if (existing) {
                if (!pull_secret_depth_within(existing, existing_size, PULL_SECRET_DEPTH_MAX))
                        return pull_secret_refuse(ret_reason,
                                                  "the existing file is nested deeper than %u levels; not merging into it",
                                                  PULL_SECRET_DEPTH_MAX);
                old = json_loadb(existing, existing_size, JSON_REJECT_DUPLICATES, &err);
                if (!old) {
                        int r = pull_secret_refuse(
                                ret_reason,
                                "the existing file is not valid JSON (line %d, column %d: %s); not merging into it",
                                err.line, err.column, pull_secret_json_error_describe(&err));
                        explicit_bzero(&err, sizeof err);
                        return r;
                }
                if (!json_is_object(old))
                        return pull_secret_refuse(ret_reason,
                                                  "the existing file is not a JSON object; not merging into it");
                auths = json_object_get(old, "auths");
                if (auths && !json_is_object(auths))
                        return pull_secret_refuse(ret_reason,
                                                  "the existing file's 'auths' is not an object; not merging into it");
                merged = json_deep_copy(old);
        } else
                merged = json_object();
        if (!merged)
                return -ENOMEM;

        auths = json_object_get(merged, "auths");
        if (!auths) {
                auths = json_object();
                if (!auths || json_object_set_new(merged, "auths", auths) < 0)
                        return -ENOMEM;
        }
        /* Ours before, no longer in the secret: remove. Node-local: keep. */
        for (char *const *p = previous; p && *p; p++)
                if (!json_object_get(want, *p))
                        (void) json_object_del(auths, *p);
        /* The cluster secret wins a conflict. */
        json_object_foreach((json_t *) want, key, e)
                if (json_object_set(auths, key, e) < 0)
                        return -ENOMEM;

        *ret_same = old && json_equal(old, merged);
        return dump(merged, ret_content, ret_size);
}

int pull_secret_render(const json_t *secret, PullSecretPolicy policy, const char *existing, size_t existing_size,
                       char *const *previous, char **ret_content, size_t *ret_size, bool *ret_same,
                       char **ret_reason) {
        int r;

        assert(secret);
        assert(existing || existing_size == 0);
        assert(ret_content);
        assert(ret_size);
        assert(ret_same);
        assert(ret_reason);

        *ret_reason = NULL;
        *ret_same = false;
        if (policy == PULL_SECRET_MERGE)
                return render_merge(secret, existing, existing_size, previous, ret_content, ret_size, ret_same,
                                    ret_reason);

        r = dump(secret, ret_content, ret_size);
        if (r < 0)
                return r;
        *ret_same = existing && existing_size == *ret_size && memcmp(existing, *ret_content, existing_size) == 0;
        return 0;
}
