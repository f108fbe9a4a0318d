/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "fs.h"
#include "pullsecret-ledger.h"
#include "pullsecret-render.h"
#include "strv.h"

#define STATE_MAX (4u * 1024 * 1024)

int pull_secret_ledger_new(json_t **ret) {
        assert(ret);

        *ret = json_pack("{s:i, s:{}}", "version", 1, "targets");
        return *ret ? 0 : -ENOMEM;
}

int pull_secret_ledger_load(int rootfd, const char *state_dir, json_t **ret) {
        _cleanup_free_ char *data = NULL;
        _cleanup_close_ int dfd = -1;
        json_auto_t *j = NULL;
        size_t size;
        int r;

        assert(state_dir);
        assert(ret);

        r = open_dir_beneath(rootfd, state_dir, 0, &dfd, NULL);
        if (r >= 0)
                r = read_file_at(dfd, PULL_SECRET_STATE_FILE, false, STATE_MAX, &data, &size);
        if (r == -ENOENT)
                return pull_secret_ledger_new(ret);
        if (r < 0)
                return r;
        j = json_loadb(data, size, 0, NULL);
        if (!json_is_object(json_object_get(j, "targets")))
                return -EBADMSG;
        *ret = TAKE_PTR(j);
        return 0;
}

static const json_t *entry_get(const json_t *ledger, const char *path, const char *field) {
        return json_object_get(json_object_get(json_object_get(ledger, "targets"), path), field);
}

int pull_secret_ledger_registries(const json_t *ledger, const char *path, char ***ret) {
        const json_t *regs = entry_get(ledger, path, "registries");
        _cleanup_strv_free_ char **l = NULL;
        size_t i;
        json_t *v;

        assert(ledger);
        assert(path);
        assert(ret);

        json_array_foreach(regs, i, v)
                if (json_is_string(v) && strv_extend(&l, json_string_value(v)) < 0)
                        return -ENOMEM;
        *ret = TAKE_PTR(l);
        return 0;
}

const char *pull_secret_ledger_sha256(const json_t *ledger, const char *path) {
        assert(ledger);
        assert(path);

        return json_string_value(entry_get(ledger, path, "sha256")) ?: "";
}

int pull_secret_ledger_set(json_t *ledger, const char *path, char *const *registries, const char *sha256,
                           bool *ret_changed) {
        json_auto_t *regs = NULL, *entry = NULL;
        json_t *by_path;

        assert(ledger);
        assert(path);
        assert(sha256);
        assert(ret_changed);

        by_path = json_object_get(ledger, "targets");
        regs = json_array();
        if (!regs)
                return -ENOMEM;
        for (char *const *p = registries; p && *p; p++)
                if (json_array_append_new(regs, json_string(*p)) < 0)
                        return -ENOMEM;
        entry = json_pack("{s:O, s:s}", "registries", regs, "sha256", sha256);
        if (!entry)
                return -ENOMEM;
        if (json_equal(entry, json_object_get(by_path, path)))
                return 0;
        *ret_changed = true;
        return json_object_set_new(by_path, path, TAKE_PTR(entry)) < 0 ? -ENOMEM : 0;
}

/* Missing parents are 0755 like any system directory: a fresh --root must
 * not get a private /var/lib. */
int pull_secret_ledger_save(int rootfd, const char *state_dir, const json_t *ledger) {
        _cleanup_free_ char *text = json_dumps(ledger, PULL_SECRET_DUMP_FLAGS);
        _cleanup_close_ int dfd = -1;
        int r;

        assert(state_dir);
        assert(ledger);

        if (!text)
                return -ENOMEM;
        r = open_private_dir_beneath(rootfd, state_dir, &dfd);
        if (r < 0)
                return r;
        return write_file_atomic_at(dfd, PULL_SECRET_STATE_FILE, text, strlen(text), 0600, (uid_t) -1,
                                    (gid_t) -1);
}
