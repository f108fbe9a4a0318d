/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "fs.h"
#include "log.h"
#include "pullsecret-ledger.h"
#include "pullsecret-render.h"
#include "pullsecret-validate.h"
#include "strv.h"
#include "utf8.h"

#define STATE_MAX (4u * 1024 * 1024)
/* A name longer than this is cut in a warning: the line stays readable. */
#define SHOWN_MAX 200

int pull_secret_ledger_new(json_t **ret) {
        assert(ret);

        *ret = json_pack("{s:i, s:{}}", "version", 1, "targets");
        return *ret ? 0 : -ENOMEM;
}

/* A copy of s (any bytes from the node) fit for one log line. */
static char *shown(const char *s) {
        char *c = strndup(s, SHOWN_MAX);
        return c ? utf8_one_line(c) : NULL;
}

static void warn_dropped(const char *path, const char *registry, const char *reason) {
        _cleanup_free_ char *p = shown(path), *reg = registry ? shown(registry) : NULL;

        if (registry)
                log_warning("Dropping registry '%s' of '%s' from the pull-secret ledger: %s; "
                            "a merge no longer removes it as nodetrustd's",
                            reg ?: "?", p ?: "?", reason);
        else
                log_warning("Dropping '%s' from the pull-secret ledger: %s; "
                            "a merge no longer removes any registry from it as nodetrustd's",
                            p ?: "?", reason);
}

/* "" (none recorded) or a sha256 as we write it: 64 lowercase hex digits. */
static bool sha256_valid(const char *s) {
        size_t n = strspn(s, "0123456789abcdef");
        return s[n] == 0 && (n == 0 || n == 64);
}

/* Why path cannot be a target we recorded, or NULL: --pull-secret-target
 * takes an absolute path, and we never wrote a control byte in one. */
static const char *path_problem(const char *path) {
        if (path[0] != '/')
                return "not an absolute path";
        if (strlen(path) > PATH_MAX)
                return "longer than PATH_MAX";
        for (const char *c = path; *c; c++)
                if ((unsigned char) *c < 0x20 || *c == 0x7f)
                        return "a control character in the path";
        return NULL;
}

/* Drop from a loaded ledger whatever we could not have written, saying
 * so: the registries it lists are removed from a merged file, so it is
 * input like the secret, and a name there must pass the secret's checks. */
static int ledger_clean(json_t *j) {
        json_t *targets = json_object_get(j, "targets"), *entry, *tmp;
        const char *path;

        json_object_foreach_safe(targets, tmp, path, entry) {
                json_t *regs = json_object_get(entry, "registries"), *sha = json_object_get(entry, "sha256");
                const char *reason = path_problem(path);
                json_auto_t *clean = NULL;
                size_t i;
                json_t *v;

                if (!reason && !json_is_object(entry))
                        reason = "its entry is not a JSON object";
                if (!reason && regs && !json_is_array(regs))
                        reason = "'registries' is not an array";
                if (!reason && sha && (!json_is_string(sha) || !sha256_valid(json_string_value(sha))))
                        reason = "'sha256' is not 64 hexadecimal digits";
                if (reason) {
                        warn_dropped(path, NULL, reason);
                        if (json_object_del(targets, path) < 0)
                                return -ENOMEM;
                        continue;
                }
                clean = json_array();
                if (!clean)
                        return -ENOMEM;
                json_array_foreach(regs, i, v) {
                        const char *name = json_string_value(v);

                        if (!name)
                                reason = "not a string";
                        else if (strlen(name) != json_string_length(v))
                                reason = "holds a NUL byte";
                        else
                                reason = pull_secret_registry_check(name);
                        if (reason) {
                                warn_dropped(path, name ?: "(not a string)", reason);
                                continue;
                        }
                        if (json_array_append(clean, v) < 0)
                                return -ENOMEM;
                }
                if (json_array_size(clean) != json_array_size(regs) &&
                    json_object_set(entry, "registries", clean) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int pull_secret_ledger_load(int rootfd, const char *state_dir, json_t **ret) {
        _cleanup_free_ char *data = NULL;
        _cleanup_close_ int dfd = -1;
        json_auto_t *j = NULL;
        json_error_t err;
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
        j = json_loadb(data, size, 0, &err);
        if (!j && json_error_code(&err) == json_error_out_of_memory)
                return -ENOMEM; /* not corrupt: it must not be taken for it */
        if (!json_is_object(json_object_get(j, "targets")))
                return -EBADMSG;
        r = ledger_clean(j);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(j);
        return 0;
}

static const json_t *entry_get(const json_t *ledger, const char *path, const char *field) {
        return json_object_get(json_object_get(json_object_get(ledger, "targets"), path), field);
}

int pull_secret_ledger_registries(const json_t *ledger, const char *path, char ***ret) {
        const json_t *regs = entry_get(ledger, path, "registries");
        _cleanup_strv_free_ char **l = NULL;
        size_t i, n = 0;
        json_t *v;

        assert(ledger);
        assert(path);
        assert(ret);

        /* One allocation for the list: strv_extend() per name walked the
         * list each time, quadratic at 20,000 registries. */
        l = calloc(json_array_size(regs) + 1, sizeof *l);
        if (!l)
                return -ENOMEM;
        json_array_foreach(regs, i, v)
                if (json_is_string(v) && !(l[n++] = strdup(json_string_value(v))))
                        return -ENOMEM;
        /* None: NULL, as strv_extend() left it. */
        *ret = n > 0 ? TAKE_PTR(l) : NULL;
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
        _cleanup_close_ int dfd = -1;
        int r;

        assert(state_dir);
        assert(ledger);

        r = open_private_dir_beneath(rootfd, state_dir, &dfd);
        if (r < 0)
                return r;
        return write_json_atomic_at(dfd, PULL_SECRET_STATE_FILE, ledger, PULL_SECRET_DUMP_FLAGS, 0600);
}
