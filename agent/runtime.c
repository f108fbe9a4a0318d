/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "fs.h"
#include "runtime.h"
#include "strv.h"
#include "toml.h"
#include "utf8.h"

/* config.toml and what it imports: plenty for any real one. */
#define CONFIG_FILE_MAX (1024u * 1024)
#define CONFIG_FILES_MAX 32
#define CONTAINERD_DIR "/etc/containerd/certs.d"
#define DOCKER_DIR "/etc/docker/certs.d"

static const char *const target_state_names[_TARGET_STATE_MAX] = {
        [TARGET_STATE_ACTIVE] = "active",
        [TARGET_STATE_NOT_INSTALLED] = "not_installed",
        [TARGET_STATE_INACTIVE] = "inactive",
};

const char *target_state_to_string(TargetStateType t) {
        return t >= 0 && t < _TARGET_STATE_MAX ? target_state_names[t] : "unknown";
}

/* Is there a file of this type (S_IFREG, S_IFSOCK, 0 = any) at the host
 * path, seen below rootfd? */
static bool present(int rootfd, const char *path, mode_t type) {
        _cleanup_close_ int fd = open_in_root(rootfd, path, O_PATH);
        struct stat st;

        if (fd < 0 || fstat(fd, &st) < 0)
                return false;
        return type == 0 || (st.st_mode & S_IFMT) == type;
}

/* The first of paths that is present, or NULL. */
static const char *first_present(int rootfd, const char *const *paths) {
        for (; *paths; paths++)
                if (present(rootfd, *paths, strstr(*paths, ".sock") ? S_IFSOCK : 0))
                        return *paths;
        return NULL;
}

static int set_status(TargetStatus *ts, TargetStateType state, const char *fmt, ...) _printf_(3, 4);
static int set_status(TargetStatus *ts, TargetStateType state, const char *fmt, ...) {
        va_list ap;
        int r = 0;

        ts->state = state;
        free(ts->reason);
        ts->reason = NULL;
        if (fmt) {
                va_start(ap, fmt);
                r = vasprintf(&ts->reason, fmt, ap) < 0 ? -ENOMEM : 0;
                va_end(ap);
                /* File names come from the node: any bytes at all. */
                if (r == 0)
                        utf8_printable(ts->reason);
        }
        return r;
}

/* Docker reads every *.crt in /etc/docker/certs.d/HOST:PORT; CRI-O and the
 * containers/image tools read /etc/containers/certs.d (then /etc/docker's).
 * Neither can be told not to, so installed means active. Directories do not
 * count: nodetrustd itself creates /etc/docker and /etc/containers. */
static int check_present(int rootfd, const char *const *paths, const char *what, TargetStatus *ts) {
        if (first_present(rootfd, paths))
                return set_status(ts, TARGET_STATE_ACTIVE, NULL);
        return set_status(ts, TARGET_STATE_NOT_INSTALLED, "no %s found (%s, ...)", what, paths[0]);
}

/* ------------------------------------------------------------------------
 * containerd: config.toml, its imports, and the CRI registry's config_path. */

typedef struct ConfigFile {
        char *path;
        TomlValue *doc;
} ConfigFile;

typedef struct ConfigSet {
        ConfigFile files[CONFIG_FILES_MAX];
        size_t n;
} ConfigSet;

static void config_set_done(ConfigSet *cs) {
        for (size_t i = 0; i < cs->n; i++) {
                free(cs->files[i].path);
                toml_free(cs->files[i].doc);
        }
        cs->n = 0;
}

/* Read and parse one file; -ENOENT, or a reason in *ret_why for anything
 * else that keeps containerd from reading it the way we would. */
static int config_load_one(int rootfd, const char *path, ConfigSet *cs, char **ret_why) {
        _cleanup_free_ char *text = NULL, *copy = NULL;
        TomlValue *doc = NULL;
        char err[200];
        size_t size;
        int r;

        for (size_t i = 0; i < cs->n; i++)
                if (streq(cs->files[i].path, path))
                        return 0; /* imported twice, or a cycle: once is enough */
        if (cs->n == CONFIG_FILES_MAX)
                return asprintf(ret_why, "%s: more than %d imported files", path, CONFIG_FILES_MAX) < 0 ? -ENOMEM
                                                                                                     : -EINVAL;
        /* Only a regular file is opened: an import may name a device. */
        r = read_file_in_root(rootfd, path, CONFIG_FILE_MAX, &text, &size);
        if (r == -ENOENT || r == -ENOMEM)
                return r;
        if (r < 0)
                return asprintf(ret_why, "cannot read %s: %s", path, strerror(-r)) < 0 ? -ENOMEM : -EINVAL;
        r = toml_parse(text, size, &doc, err, sizeof err);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                /* The line, not the parser's words: they may quote what
                 * the file holds, and an import can name any file. */
                unsigned line = 0;
                if (sscanf(err, "line %u", &line) == 1)
                        r = asprintf(ret_why, "%s is not valid TOML (line %u); containerd will not start with it", path,
                                     line);
                else
                        r = asprintf(ret_why, "%s is not valid TOML; containerd will not start with it", path);
                return r < 0 ? -ENOMEM : -EINVAL;
        }
        copy = strdup(path);
        if (!copy) {
                toml_free(doc);
                return -ENOMEM;
        }
        cs->files[cs->n++] = (ConfigFile){ .path = TAKE_PTR(copy), .doc = doc };
        return 0;
}

/* The matches of a pattern whose wildcards are all in its last component,
 * read inside the root; at most CONFIG_FILES_MAX, at most DIR_SCAN_MAX
 * entries looked at, so one hostile pattern costs one bounded readdir. */
#define DIR_SCAN_MAX 4096
static int glob_in_root(int rootfd, const char *pattern, char ***ret) {
        _cleanup_free_ char *dir = strdup(pattern);
        _cleanup_(strv_freep) char **out = NULL;
        const char *base;
        size_t seen = 0;
        DIR *d;
        int fd, r = 0;

        if (!dir)
                return -ENOMEM;
        *strrchr(dir, '/') = 0;
        base = strrchr(pattern, '/') + 1;
        if (strpbrk(dir, "*?["))
                return -EOPNOTSUPP;
        fd = open_in_root(rootfd, *dir ? dir : "/", O_RDONLY | O_DIRECTORY);
        if (fd == -ENOENT || fd == -ENOTDIR) {
                *ret = NULL;
                return 0;
        }
        if (fd < 0)
                return fd;
        d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }
        for (struct dirent *de; r >= 0 && (de = readdir(d));) {
                _cleanup_free_ char *path = NULL;
                if (++seen > DIR_SCAN_MAX) {
                        r = -E2BIG;
                        break;
                }
                if (streq(de->d_name, ".") || streq(de->d_name, "..") || fnmatch(base, de->d_name, 0) != 0)
                        continue;
                if (strv_length(out) >= CONFIG_FILES_MAX) {
                        r = -E2BIG;
                        break;
                }
                if (asprintf(&path, "%s/%s", dir, de->d_name) < 0)
                        r = -ENOMEM;
                else
                        r = strv_extend(&out, path);
        }
        closedir(d);
        if (r < 0)
                return r;
        if (out)
                qsort(out, strv_length(out), sizeof *out, strv_compare);
        *ret = TAKE_PTR(out);
        return 0;
}

/* Queue what file idx imports, as containerd resolves them: a path with a
 * '*' is a glob (relative ones against containerd's working directory, /),
 * none matching being fine; any other path is relative to the importing
 * file's directory, and missing is an error containerd will not start with. */
static int config_load_imports(int rootfd, size_t idx, ConfigSet *cs, char **ret_why) {
        const TomlValue *imports = toml_table_get(cs->files[idx].doc, "imports");
        _cleanup_free_ char *dir = strdup(cs->files[idx].path);
        const char *from = cs->files[idx].path;
        size_t n = toml_array_size(imports);
        int r;

        if (!dir)
                return -ENOMEM;
        *strrchr(dir, '/') = 0;
        if (imports && toml_type(imports) != TOML_ARRAY)
                return asprintf(ret_why, "imports in %s is not an array", from) < 0 ? -ENOMEM : -EINVAL;
        for (size_t i = 0; i < n; i++) {
                const char *pat = toml_string(toml_array_at(imports, i));
                _cleanup_(strv_freep) char **matches = NULL;
                _cleanup_free_ char *abs = NULL;

                if (!pat || !*pat)
                        return asprintf(ret_why, "imports in %s holds something that is not a path", from) < 0
                                       ? -ENOMEM
                                       : -EINVAL;
                if (!strchr(pat, '*')) {
                        if (asprintf(&abs, "%s%s%s", pat[0] == '/' ? "" : dir, pat[0] == '/' ? "" : "/", pat) < 0)
                                return -ENOMEM;
                        r = config_load_one(rootfd, abs, cs, ret_why);
                        if (r == -ENOENT)
                                return asprintf(ret_why, "%s imports %s, which does not exist; containerd will not start",
                                                from, abs) < 0
                                               ? -ENOMEM
                                               : -EINVAL;
                        if (r < 0)
                                return r;
                        continue;
                }
                if (asprintf(&abs, "%s%s", pat[0] == '/' ? "" : "/", pat) < 0)
                        return -ENOMEM;
                r = glob_in_root(rootfd, abs, &matches);
                if (r == -ENOMEM)
                        return r;
                /* Whatever stops the listing, what containerd reads is not
                 * known: say so rather than count it as no match. */
                if (r == -EOPNOTSUPP)
                        r = asprintf(ret_why,
                                     "%s imports %s: nodetrustd follows wildcards only in the last path component, so it cannot tell what containerd reads",
                                     from, pat);
                else if (r == -E2BIG)
                        r = asprintf(ret_why, "%s imports %s, which matches more than nodetrustd reads (%d files, %d entries)",
                                     from, pat, CONFIG_FILES_MAX, DIR_SCAN_MAX);
                else if (r < 0)
                        r = asprintf(ret_why, "%s imports %s, whose directory cannot be listed: %s", from, pat, strerror(-r));
                else
                        r = 0;
                if (r != 0)
                        return r < 0 ? -ENOMEM : -EINVAL;
                for (char **m = matches; r >= 0 && m && *m; m++) {
                        int q = config_load_one(rootfd, *m, cs, ret_why);
                        if (q < 0 && q != -ENOENT)
                                return q;
                }
        }
        return 0;
}

/* The CRI plugin's table name for each config version containerd knows. */
static const char *cri_plugin(int64_t version) {
        switch (version) {
        case 1: return "cri";
        case 2: return "io.containerd.grpc.v1.cri";
        case 3: return "io.containerd.cri.v1.images";
        default: return NULL;
        }
}

static bool strv_toml_contains(const TomlValue *a, const char *s) {
        for (size_t i = 0; i < toml_array_size(a); i++) {
                const char *v = toml_string(toml_array_at(a, i));
                if (v && streq(v, s))
                        return true;
        }
        return false;
}

/* Strip trailing slashes and collapse doubled ones, so that config_path
 * entries compare the way the file system would see them. */
static void path_normalize(char *p) {
        char *w = p;
        for (char *r = p; *r; r++)
                if (!(*r == '/' && w > p && w[-1] == '/'))
                        *w++ = *r;
        while (w > p + 1 && w[-1] == '/')
                w--;
        *w = 0;
}

/* registry.configs."HOST".tls: refused beside config_path (auth is not). */
static bool configs_have_tls(const TomlValue *configs) {
        for (size_t i = 0; i < toml_table_size(configs); i++)
                if (toml_table_get(toml_table_value_at(configs, i), "tls"))
                        return true;
        return false;
}

static int check_containerd(int rootfd, const char *config, TargetStatus *ts) {
        static const char *const installed[] = { "/run/containerd/containerd.sock", "/usr/bin/containerd",
                                                 "/usr/local/bin/containerd", "/usr/sbin/containerd", NULL };
        _cleanup_free_ char *why = NULL, *list = NULL;
        _cleanup_(config_set_done) ConfigSet cs = {};
        const TomlValue *v, *registry = NULL;
        const char *plugin, *where = config, *found;
        int64_t version = 1;
        int r;

        r = config_load_one(rootfd, config, &cs, &why);
        if (r == -ENOENT) {
                found = first_present(rootfd, installed);
                if (!found)
                        return set_status(ts, TARGET_STATE_NOT_INSTALLED, "no %s, containerd socket or binary", config);
                return set_status(ts, TARGET_STATE_INACTIVE,
                                  "%s exists but %s does not: containerd 1.x then reads no certs.d directory for CRI pulls (2.x reads " CONTAINERD_DIR
                                  "); set config_path to " CONTAINERD_DIR,
                                  found, config);
        }
        for (size_t i = 0; r == 0 && i < cs.n; i++)
                r = config_load_imports(rootfd, i, &cs, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return set_status(ts, TARGET_STATE_INACTIVE, "%s", why);

        v = toml_table_get(cs.files[0].doc, "version");
        if (v && toml_integer(v, &version) < 0)
                return set_status(ts, TARGET_STATE_INACTIVE, "version in %s is not an integer", config);
        plugin = cri_plugin(version);
        if (!plugin)
                return set_status(ts, TARGET_STATE_INACTIVE, "%s has config version %lld, which this nodetrustd does not know",
                                  config, (long long) version);

        /* Whole plugin tables replace earlier ones across imports: the last
         * file that has one decides. */
        for (size_t i = 0; i < cs.n; i++) {
                const TomlValue *dis = toml_table_get(cs.files[i].doc, "disabled_plugins");
                const TomlValue *t = toml_get(cs.files[i].doc, "plugins", plugin, NULL);

                if (strv_toml_contains(dis, plugin) || (version == 3 && strv_toml_contains(dis, "io.containerd.grpc.v1.cri")))
                        return set_status(ts, TARGET_STATE_INACTIVE,
                                          "%s disables containerd's CRI plugin (%s): the kubelet does not pull through containerd",
                                          cs.files[i].path, plugin);
                if (t) {
                        registry = toml_table_get(t, "registry");
                        where = cs.files[i].path;
                }
        }

        v = registry ? toml_table_get(registry, "config_path") : NULL;
        if (v && !toml_string(v))
                return set_status(ts, TARGET_STATE_INACTIVE, "config_path in %s is not a string", where);
        if (v && *toml_string(v) && (toml_table_size(toml_table_get(registry, "mirrors")) > 0 ||
                                     configs_have_tls(toml_table_get(registry, "configs"))))
                return set_status(ts, TARGET_STATE_INACTIVE,
                                  "%s sets config_path together with the deprecated registry mirrors or configs.*.tls, which containerd's CRI plugin refuses to load",
                                  where);
        /* Unset: containerd 1.x, 2.0 and 2.1 read no hosts directory at
         * all; 2.2 and later default to ours (unless mirrors are set). The
         * file does not say which containerd reads it, and trust we cannot
         * prove is not reported: say what to set. */
        if (!v || !*toml_string(v))
                return set_status(ts, TARGET_STATE_INACTIVE,
                                  "config_path is not set in [plugins.\"%s\".registry] of %s: containerd before 2.2 will not read " CONTAINERD_DIR
                                  " (set config_path = \"" CONTAINERD_DIR "\")",
                                  plugin, where);
        list = strdup(toml_string(v));
        if (!list)
                return -ENOMEM;

        /* A colon-separated search list: the first directory that has the
         * registry wins. Remember those before ours. */
        ts->read_first = strv_free(ts->read_first);
        char *save = NULL;
        for (char *d = strtok_r(list, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
                path_normalize(d);
                if (streq(d, CONTAINERD_DIR))
                        return set_status(ts, TARGET_STATE_ACTIVE, NULL);
                r = strv_extend(&ts->read_first, d);
                if (r < 0)
                        return r;
        }
        ts->read_first = strv_free(ts->read_first);
        return set_status(ts, TARGET_STATE_INACTIVE, "config_path in %s is \"%s\": containerd will not read " CONTAINERD_DIR,
                          where, toml_string(v));
}

int runtime_check(int rootfd, const char *containerd_config, unsigned target_mask, RuntimeStatus *ret) {
        static const char *const docker[] = { "/etc/docker/daemon.json", "/run/docker.sock", "/var/run/docker.sock",
                                              "/usr/bin/dockerd", "/usr/sbin/dockerd", "/usr/local/bin/dockerd", NULL };
        static const char *const containers[] = {
                "/etc/containers/registries.conf", "/etc/containers/policy.json", "/etc/containers/storage.conf",
                "/etc/crio/crio.conf", "/run/crio/crio.sock", "/usr/bin/crio", "/usr/local/bin/crio",
                "/usr/bin/podman", "/usr/bin/skopeo", "/usr/bin/buildah", NULL,
        };
        RuntimeStatus s = {};
        int r = 0;

        assert(rootfd >= 0);
        assert(containerd_config);
        assert(ret);

        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(targets); i++) {
                TargetStatus *ts = &s.targets[i];

                ts->enabled = target_mask & targets[i].bit;
                if (!ts->enabled)
                        continue;
                switch (targets[i].bit) {
                case TARGET_DOCKER: r = check_present(rootfd, docker, "docker daemon", ts); break;
                case TARGET_CONTAINERS: r = check_present(rootfd, containers, "CRI-O, podman, skopeo or buildah", ts); break;
                case TARGET_CONTAINERD: r = check_containerd(rootfd, containerd_config, ts); break;
                }
        }
        if (r < 0) {
                runtime_status_done(&s);
                return r;
        }
        *ret = s;
        return 0;
}

bool target_status_equal(const TargetStatus *a, const TargetStatus *b) {
        assert(a);
        assert(b);

        return a->enabled == b->enabled && a->state == b->state && streq_ptr(a->reason, b->reason);
}

bool runtime_status_equal(const RuntimeStatus *a, const RuntimeStatus *b) {
        assert(a);
        assert(b);

        for (size_t i = 0; i < ELEMENTSOF(targets); i++)
                if (!target_status_equal(&a->targets[i], &b->targets[i]))
                        return false;
        return true;
}

void runtime_status_done(RuntimeStatus *s) {
        assert(s);

        for (size_t i = 0; i < ELEMENTSOF(targets); i++) {
                free(s->targets[i].reason);
                strv_free(s->targets[i].read_first);
        }
        *s = (RuntimeStatus){};
}
