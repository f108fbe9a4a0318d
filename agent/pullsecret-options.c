/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "macro.h"
#include "pullsecret-options.h"

static const char *const policy_names[] = {
        [PULL_SECRET_REPLACE] = "replace",
        [PULL_SECRET_MERGE] = "merge",
};

int pull_secret_policy_from_string(const char *s, PullSecretPolicy *ret) {
        assert(ret);

        if (s && streq(s, "replace"))
                *ret = PULL_SECRET_REPLACE;
        else if (s && streq(s, "merge"))
                *ret = PULL_SECRET_MERGE;
        else
                return -EINVAL;
        return 0;
}

const char *pull_secret_policy_to_string(PullSecretPolicy p) {
        return p >= 0 && p < (PullSecretPolicy) ELEMENTSOF(policy_names) ? policy_names[p] : "unknown";
}

static int parse_id(const char *s, size_t len, unsigned long *ret) {
        unsigned long v = 0;

        if (len == 0 || len > 10)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned long) (s[i] - '0');
        }
        /* (uid_t) -1 means "leave unchanged" to chown, not an id. */
        if (v >= 0xffffffffUL)
                return -EINVAL;
        *ret = v;
        return 0;
}

int pull_secret_owner_parse(const char *s, uid_t *ret_uid, gid_t *ret_gid) {
        const char *colon;
        unsigned long u, g = (unsigned long) (gid_t) -1;

        assert(s);

        colon = strchr(s, ':');
        if (parse_id(s, colon ? (size_t) (colon - s) : strlen(s), &u) < 0)
                return -EINVAL;
        if (colon && parse_id(colon + 1, strlen(colon + 1), &g) < 0)
                return -EINVAL;
        if (ret_uid)
                *ret_uid = (uid_t) u;
        if (ret_gid)
                *ret_gid = (gid_t) g;
        return 0;
}
