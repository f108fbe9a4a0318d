/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "fs.h"
#include "containerd-hosts.h"
#include "toml.h"
#include "utf8.h"

#define CA_NAME "ca.crt"

/* The URL containerd should talk to for registry. containerd's own default
 * for docker.io is registry-1.docker.io; every other name is itself. */
static const char *server_host(const char *registry) {
        return streq(registry, "docker.io") ? "registry-1.docker.io" : registry;
}

int containerd_hosts_render(const char *registry, char **ret, size_t *ret_size) {
        const char *host;
        int n;

        assert(registry);
        assert(ret);
        assert(ret_size);

        host = server_host(registry);
        /* The server's CA twice, on purpose: containerd 1.6 refuses a
         * hosts.toml without a [host] table (and falls back to *.crt over
         * plain HTTP for loopback names), while the top-level ca covers the
         * server entry it appends last (the one pushes use). */
        n = asprintf(ret,
                     HOSTS_MARKER " Rewritten when the trust config map changes, removed with its key.\n"
                     "# To configure this registry yourself, delete this first line: nodetrustd then\n"
                     "# leaves the file alone (and reports whether it still uses " CA_NAME ").\n"
                     "server = \"https://%s\"\n"
                     "ca = \"" CA_NAME "\"\n"
                     "\n"
                     "[host.\"https://%s\"]\n"
                     "  capabilities = [\"pull\", \"resolve\", \"push\"]\n"
                     "  ca = \"" CA_NAME "\"\n",
                     host, host);
        if (n < 0)
                return -ENOMEM;
        *ret_size = (size_t) n;
        return 0;
}

int containerd_hosts_read(int rootfd, int dfd, const char *registry, char **ret, size_t *ret_size, int *ret_error) {
        _cleanup_free_ char *path = NULL;
        struct stat st;
        int r;

        assert(rootfd >= 0);
        assert(dfd >= 0);
        assert(registry);
        assert(ret);
        assert(ret_size);
        assert(ret_error);

        *ret = NULL;
        *ret_size = 0;
        *ret_error = 0;
        if (fstatat(dfd, HOSTS_FILE, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                        return HOSTS_ABSENT;
                *ret_error = errno;
                return HOSTS_UNREADABLE;
        }
        if (S_ISREG(st.st_mode)) {
                r = read_file_at(dfd, HOSTS_FILE, false, HOSTS_FILE_MAX, ret, ret_size);
                if (r == -ENOENT)
                        return HOSTS_ABSENT;
        } else if (S_ISLNK(st.st_mode)) {
                /* Never ours (we write regular files), but containerd reads
                 * where it points: so do we, as the host resolves it. */
                if (asprintf(&path, CONTAINERD_CERTS_DIR "/%s/" HOSTS_FILE, registry) < 0)
                        return -ENOMEM;
                r = read_file_in_root(rootfd, path, HOSTS_FILE_MAX, ret, ret_size);
        } else
                r = S_ISDIR(st.st_mode) ? -EISDIR : -EBADFD;
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                *ret_error = -r;
                return HOSTS_UNREADABLE;
        }
        return S_ISREG(st.st_mode) && containerd_hosts_is_ours(*ret, *ret_size) ? HOSTS_OURS : HOSTS_FOREIGN;
}

bool containerd_hosts_is_ours(const char *text, size_t size) {
        size_t n = strlen(HOSTS_MARKER);

        assert(text || size == 0);

        return size >= n && memcmp(text, HOSTS_MARKER, n) == 0;
}

bool registry_is_loopback(const char *registry) {
        unsigned a, b, c, d;
        size_t len;
        char tail;

        assert(registry);

        len = strcspn(registry, ":");
        if (len == strlen("localhost") && strncmp(registry, "localhost", len) == 0)
                return true;
        /* 127.0.0.0/8, dotted quad only: a config map key cannot hold ::1. */
        _cleanup_free_ char *h = strndup(registry, len);
        if (!h)
                return false;
        return sscanf(h, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 && c < 256 &&
               d < 256;
}

/* Does a "ca" value (a string or an array of strings) name our ca.crt? A
 * relative path is relative to the registry directory, as containerd
 * resolves it. */
static bool ca_names_ours(const TomlValue *ca, const char *ours_abs) {
        size_t n;

        if (!ca)
                return false;
        if (toml_type(ca) == TOML_STRING) {
                const char *p = toml_string(ca);
                while (p[0] == '.' && p[1] == '/')
                        p += 2;
                return streq(p, CA_NAME) || streq(p, ours_abs);
        }
        if (toml_type(ca) != TOML_ARRAY)
                return false;
        n = toml_array_size(ca);
        for (size_t i = 0; i < n; i++)
                if (ca_names_ours(toml_array_at(ca, i), ours_abs))
                        return true;
        return false;
}

static bool is_string_array(const TomlValue *v) {
        if (toml_type(v) != TOML_ARRAY)
                return false;
        for (size_t i = 0; i < toml_array_size(v); i++)
                if (!toml_string(toml_array_at(v, i)))
                        return false;
        return true;
}

/* Go's time.ParseDuration: "0", or an optional sign and one or more
 * decimal numbers each followed by ns, us, µs, μs, ms, s, m or h. */
static bool go_duration_valid(const char *s) {
        static const char *const units[] = { "ns", "us", "\xc2\xb5s", "\xce\xbcs", "ms", "s", "m", "h" };

        if (*s == '+' || *s == '-')
                s++;
        if (streq(s, "0"))
                return true;
        if (!*s)
                return false;
        while (*s) {
                size_t ip = strspn(s, "0123456789"), fp = 0, best = 0;
                s += ip;
                if (*s == '.')
                        fp = strspn(++s, "0123456789"), s += fp;
                if (ip + fp == 0)
                        return false;
                /* The longest unit that matches: "ms" before "m". */
                for (size_t u = 0; u < ELEMENTSOF(units); u++)
                        if (strncmp(s, units[u], strlen(units[u])) == 0 && strlen(units[u]) > best)
                                best = strlen(units[u]);
                if (!best)
                        return false;
                s += best;
        }
        return true;
}

/* Would containerd's parseHostConfig accept this table (the top level or a
 * [host."URL"] one)? On any error it drops the whole file and reads *.crt
 * instead, so a file it refuses is as good as absent. */
static bool host_table_valid(const TomlValue *t) {
        const TomlValue *v;

        if (!t || toml_type(t) != TOML_TABLE)
                return false;
        if ((v = toml_table_get(t, "capabilities"))) {
                if (!is_string_array(v))
                        return false;
                for (size_t i = 0; i < toml_array_size(v); i++) {
                        const char *c = toml_string(toml_array_at(v, i));
                        if (strcasecmp(c, "pull") && strcasecmp(c, "resolve") && strcasecmp(c, "push"))
                                return false;
                }
        }
        if ((v = toml_table_get(t, "ca")) && !toml_string(v) && !is_string_array(v))
                return false;
        if ((v = toml_table_get(t, "client")) && !toml_string(v)) {
                if (toml_type(v) != TOML_ARRAY)
                        return false;
                for (size_t i = 0; i < toml_array_size(v); i++) {
                        const TomlValue *e = toml_array_at(v, i);
                        if (!toml_string(e) && (!is_string_array(e) || toml_array_size(e) != 2))
                                return false;
                }
        }
        if ((v = toml_table_get(t, "skip_verify")) && toml_type(v) != TOML_BOOLEAN)
                return false;
        if ((v = toml_table_get(t, "dial_timeout")) && (!toml_string(v) || !go_duration_valid(toml_string(v))))
                return false;
        if ((v = toml_table_get(t, "override_path")) && toml_type(v) != TOML_BOOLEAN)
                return false;
        if ((v = toml_table_get(t, "header"))) {
                if (toml_type(v) != TOML_TABLE)
                        return false;
                for (size_t i = 0; i < toml_table_size(v); i++) {
                        const TomlValue *h = toml_table_value_at(v, i);
                        if (!toml_string(h) && !is_string_array(h))
                                return false;
                }
        }
        return true;
}

/* Are pulls sent to this host? Without capabilities, it does everything. */
static bool can_pull(const TomlValue *t) {
        const TomlValue *caps = toml_table_get(t, "capabilities");

        if (!caps || toml_array_size(caps) == 0)
                return true;
        for (size_t i = 0; i < toml_array_size(caps); i++)
                if (strcasecmp(toml_string(toml_array_at(caps, i)), "pull") == 0)
                        return true;
        return false;
}

static bool file_valid(const TomlValue *root) {
        const TomlValue *server = toml_table_get(root, "server"), *hosts = toml_table_get(root, "host");

        if (!host_table_valid(root) || (server && !toml_string(server)))
                return false;
        if (hosts && toml_type(hosts) != TOML_TABLE)
                return false;
        for (size_t i = 0; hosts && i < toml_table_size(hosts); i++)
                if (!host_table_valid(toml_table_value_at(hosts, i)))
                        return false;
        return true;
}

/* The host part of a [host."URL"] key, or of server = "URL": scheme and path
 * stripped. *https is false only for an explicit http:// scheme. */
static char *url_host(const char *url, bool *https) {
        const char *p = url;

        *https = true;
        if (strncmp(p, "https://", 8) == 0)
                p += 8;
        else if (strncmp(p, "http://", 7) == 0) {
                p += 7;
                *https = false;
        }
        return strndup(p, strcspn(p, "/"));
}

static int hosts_check(const char *text, size_t size, const char *registry, const char *certs_dir,
                       char **ret_reason);

int containerd_hosts_check(const char *text, size_t size, const char *registry, const char *certs_dir,
                           char **ret_reason) {
        int r;

        assert(text || size == 0);
        assert(registry);
        assert(certs_dir);
        assert(ret_reason);

        r = hosts_check(text, size, registry, certs_dir, ret_reason);
        /* The parser's message may quote the file: show it safely. */
        if (r >= 0 && *ret_reason)
                utf8_printable(*ret_reason);
        return r;
}

static int hosts_check(const char *text, size_t size, const char *registry, const char *certs_dir,
                       char **ret_reason) {
        _cleanup_(toml_freep) TomlValue *root = NULL;
        _cleanup_free_ char *ours = NULL, *server_host_part = NULL;
        const TomlValue *server, *hosts;
        bool loopback = registry_is_loopback(registry), server_https = true;
        char err[160];
        int r;

        *ret_reason = NULL;
        /* An empty file is no file to containerd. */
        r = size == 0 ? -EBADMSG : toml_parse(text, size, &root, err, sizeof err);
        if (r == -ENOMEM)
                return r;
        if (r >= 0 && !file_valid(root))
                r = -EINVAL;
        if (r < 0) {
                /* containerd logs "failed to decode hosts.toml" and reads
                 * *.crt instead, as if the file were not there; but only
                 * over HTTPS when the name is not a loopback one. The
                 * parser's words are not repeated: they may quote a file
                 * the reader of the reason could not read. */
                if (!loopback)
                        return 0;
                return asprintf(ret_reason,
                                HOSTS_FILE " is empty or not one containerd accepts (%s), so containerd ignores it and talks plain HTTP to a loopback registry",
                                size == 0 ? "empty" : r == -EINVAL ? "a value of the wrong type" : "not valid TOML") < 0
                               ? -ENOMEM
                               : 0;
        }
        if (asprintf(&ours, "%s/%s/" CA_NAME, certs_dir, registry) < 0)
                return -ENOMEM;

        /* The top level configures the server: the one named by server =,
         * or the registry itself when there is none. */
        server = toml_table_get(root, "server");
        if (server && toml_string(server)) {
                server_host_part = url_host(toml_string(server), &server_https);
                if (!server_host_part)
                        return -ENOMEM;
        }
        /* Without server =, containerd gives the registry itself every
         * capability, whatever the top level says. */
        if (ca_names_ours(toml_table_get(root, "ca"), ours) && (!server_host_part || can_pull(root)) && server_https &&
            (!server_host_part || streq(server_host_part, server_host(registry))) &&
            (server_host_part || !loopback))
                return 0;

        /* Or a [host."https://REGISTRY"] table of its own that names it. */
        hosts = toml_table_get(root, "host");
        for (size_t i = 0; hosts && i < toml_table_size(hosts); i++) {
                const TomlValue *h = toml_table_value_at(hosts, i);
                _cleanup_free_ char *hp = NULL;
                bool https;

                hp = url_host(toml_table_key_at(hosts, i), &https);
                if (!hp)
                        return -ENOMEM;
                if (https && streq(hp, server_host(registry)) && can_pull(h) &&
                    ca_names_ours(toml_table_get(h, "ca"), ours))
                        return 0;
        }

        if (loopback && !server_host_part)
                return asprintf(ret_reason,
                                HOSTS_FILE " was not written by nodetrustd and names no https:// server for this loopback registry, so containerd talks plain HTTP to it") < 0
                               ? -ENOMEM
                               : 0;
        return asprintf(ret_reason,
                        HOSTS_FILE " was not written by nodetrustd and has no ca entry naming " CA_NAME
                        " for https://%s, so containerd will not use this CA",
                        server_host(registry)) < 0
                       ? -ENOMEM
                       : 0;
}

bool containerd_hosts_names_ca(const char *text, size_t size, const char *registry, const char *certs_dir) {
        _cleanup_(toml_freep) TomlValue *root = NULL;
        _cleanup_free_ char *ours = NULL;
        const TomlValue *hosts;

        assert(text || size == 0);
        assert(registry);
        assert(certs_dir);

        if (size == 0 || toml_parse(text, size, &root, NULL, 0) < 0 || !file_valid(root) ||
            asprintf(&ours, "%s/%s/" CA_NAME, certs_dir, registry) < 0)
                return false;
        if (ca_names_ours(toml_table_get(root, "ca"), ours))
                return true;
        hosts = toml_table_get(root, "host");
        for (size_t i = 0; hosts && i < toml_table_size(hosts); i++)
                if (ca_names_ours(toml_table_get(toml_table_value_at(hosts, i), "ca"), ours))
                        return true;
        return false;
}

int containerd_hosts_prune_kind(int rootfd, int dfd, const char *registry, bool *ret_names_ours) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int kind, error;

        assert(rootfd >= 0);
        assert(dfd >= 0);
        assert(registry);
        assert(ret_names_ours);

        *ret_names_ours = false;
        kind = containerd_hosts_read(rootfd, dfd, registry, &text, &size, &error);
        if (kind == HOSTS_FOREIGN)
                *ret_names_ours = containerd_hosts_names_ca(text, size, registry, CONTAINERD_CERTS_DIR);
        return kind;
}
