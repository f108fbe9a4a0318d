/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fs.h"
#include "hash.h"
#include "log.h"
#include "pullsecret.h"
#include "strv.h"

#define DIR_MODE 0755
#define FILE_MODE 0600
/* An admin's credentials file larger than this is not one we merge into. */
#define EXISTING_MAX (4u * 1024 * 1024)
#define STATE_MAX (4u * 1024 * 1024)
#define DUMP_FLAGS (JSON_INDENT(2) | JSON_SORT_KEYS)

/*
 * jansson copies every string it parses (credentials included) into its own
 * buffers and frees them with the function set here. Wiping on free keeps
 * credentials out of freed heap without touching jansson's internals. The
 * underlying allocator is still malloc, so objects made before this ran (or
 * by other modules) are freed correctly too.
 */
static void wiping_free(void *p) {
        if (!p)
                return;
        explicit_bzero(p, malloc_usable_size(p));
        free(p);
}

__attribute__((constructor)) static void pull_secret_wipe_json_frees(void) {
        json_set_alloc_funcs(malloc, wiping_free);
}

static void wipe_free(char *p, size_t size) {
        if (!p)
                return;
        explicit_bzero(p, size);
        free(p);
}

static const char *const action_names[_PULL_SECRET_ACTION_MAX] = {
        [PULL_SECRET_CREATE] = "create",     [PULL_SECRET_UPDATE] = "update",
        [PULL_SECRET_UNCHANGED] = "unchanged", [PULL_SECRET_CONFLICT] = "conflict",
        [PULL_SECRET_KEEP] = "keep",
};

const char *pull_secret_action_to_string(PullSecretActionType t) {
        return t >= 0 && t < _PULL_SECRET_ACTION_MAX ? action_names[t] : "unknown";
}

int pull_secret_policy_from_string(const char *s, PullSecretPolicy *ret) {
        if (s && streq(s, "replace"))
                *ret = PULL_SECRET_REPLACE;
        else if (s && streq(s, "merge"))
                *ret = PULL_SECRET_MERGE;
        else
                return -EINVAL;
        return 0;
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
        const char *colon = strchr(s, ':');
        unsigned long u, g = (unsigned long) (gid_t) -1;

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

/* ------------------------------------------------------------------------
 * Validation. */

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 1123 host name (IPv4 addresses pass too), or a bracketed IPv6 address. */
static const char *host_check(const char *h, size_t len) {
        size_t label = 0;

        if (len == 0)
                return "empty host name";
        if (h[0] == '[') {
                char buf[INET6_ADDRSTRLEN + 1];
                struct in6_addr a;
                if (len < 3 || h[len - 1] != ']' || len - 2 >= sizeof buf)
                        return "malformed IPv6 address";
                memcpy(buf, h + 1, len - 2);
                buf[len - 2] = 0;
                return inet_pton(AF_INET6, buf, &a) == 1 ? NULL : "malformed IPv6 address";
        }
        if (len > 253)
                return "host name longer than 253 characters";
        for (size_t i = 0; i < len; i++) {
                char c = h[i];
                if (c == '.') {
                        if (label == 0 || h[i - 1] == '-')
                                return "malformed host name label";
                        label = 0;
                        continue;
                }
                if (!is_alnum(c) && c != '-')
                        return "invalid character in host name";
                if ((c == '-' && label == 0) || ++label > 63)
                        return "malformed host name label";
        }
        if (label == 0 || h[len - 1] == '-')
                return "malformed host name label";
        return NULL;
}

/*
 * A key of "auths": host, host:port, optionally followed by a /path. The
 * legacy Docker form with a scheme ("https://index.docker.io/v1/", what
 * `kubectl create secret docker-registry` writes by default) is accepted
 * too: the kubelet and containers/image both read it.
 */
static const char *registry_key_check(const char *key) {
        const char *p = key, *host, *reason;
        size_t len = strlen(key);

        if (len == 0)
                return "empty";
        if (len > 1024)
                return "longer than 1024 characters";
        if (strncmp(p, "https://", 8) == 0)
                p += 8;
        else if (strncmp(p, "http://", 7) == 0)
                p += 7;

        host = p;
        if (*p == '[') {
                p = strchr(p, ']');
                if (!p)
                        return "malformed IPv6 address";
                p++;
        } else
                p += strcspn(p, ":/");
        reason = host_check(host, (size_t) (p - host));
        if (reason)
                return reason;

        if (*p == ':') {
                const char *port = ++p;
                unsigned long v = 0;
                while (*p >= '0' && *p <= '9')
                        p++;
                if (p == port || p - port > 5 || port[0] == '0')
                        return "port out of range 1-65535";
                v = strtoul(port, NULL, 10);
                if (v < 1 || v > 65535)
                        return "port out of range 1-65535";
        }
        if (*p == '/') {
                for (; *p; p++)
                        if (!is_alnum(*p) && !strchr("-._/", *p))
                                return "invalid character in path";
        }
        if (*p)
                return "invalid character after the host";
        return NULL;
}

static int b64_value(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

/*
 * Check that s is standard base64 (Go's base64.StdEncoding, what the kubelet
 * and containers/image decode with: padded, CR/LF ignored) of "user:password"
 * with a non-empty user. Decoded on the fly, a byte at a time, so the
 * plain-text credential never sits in a buffer.
 */
static const char *auth_check(const char *s) {
        unsigned bits = 0, nbits = 0, n = 0, pad = 0;
        size_t out = 0;
        bool colon = false;

        for (; *s; s++) {
                int v;
                if (*s == '\r' || *s == '\n')
                        continue;
                n++;
                if (*s == '=') {
                        pad++;
                        continue;
                }
                v = b64_value(*s);
                if (v < 0 || pad > 0)
                        return "'auth' is not valid base64";
                bits = (bits << 6) | (unsigned) v;
                nbits += 6;
                if (nbits >= 8) {
                        nbits -= 8;
                        unsigned char c = (unsigned char) (bits >> nbits);
                        bits &= (1u << nbits) - 1;
                        if (c == ':' && !colon) {
                                if (out == 0)
                                        return "'auth' decodes to an empty user name";
                                colon = true;
                        }
                        out++;
                }
        }
        if (n % 4 != 0 || pad > 2)
                return "'auth' is not valid base64";
        if (!colon)
                return "'auth' does not decode to user:password";
        return NULL;
}

static bool nonempty_string(const json_t *v) {
        return json_is_string(v) && json_string_length(v) > 0;
}

/* What is wrong with one entry of "auths", or NULL. */
static const char *entry_check(const json_t *e) {
        static const char *const string_fields[] = { "auth", "identitytoken", "username", "password", "email",
                                                     "registrytoken" };
        const json_t *auth = json_object_get(e, "auth");

        if (!json_is_object(e))
                return "entry is not an object";
        for (size_t i = 0; i < ELEMENTSOF(string_fields); i++) {
                const json_t *v = json_object_get(e, string_fields[i]);
                if (v && !json_is_string(v)) {
                        static char why[64];
                        snprintf(why, sizeof why, "'%s' is not a string", string_fields[i]);
                        return why;
                }
        }
        /* An empty "auth" is what some tools write next to a token. */
        if (nonempty_string(auth))
                return auth_check(json_string_value(auth));
        if (nonempty_string(json_object_get(e, "identitytoken")))
                return NULL;
        if (nonempty_string(json_object_get(e, "username")) && json_object_get(e, "password"))
                return NULL;
        return "no credentials ('auth', 'identitytoken', or 'username' and 'password')";
}

/* Bound the nesting before jansson recurses into it. Counts brackets
 * outside strings; whether the JSON is well-formed is jansson's job. */
static bool depth_within(const char *p, size_t n, unsigned max) {
        unsigned depth = 0;
        bool str = false, esc = false;

        for (size_t i = 0; i < n; i++) {
                char c = p[i];
                if (str) {
                        if (esc)
                                esc = false;
                        else if (c == '\\')
                                esc = true;
                        else if (c == '"')
                                str = false;
                } else if (c == '"')
                        str = true;
                else if (c == '{' || c == '[') {
                        if (++depth > max)
                                return false;
                } else if ((c == '}' || c == ']') && depth > 0)
                        depth--;
        }
        return true;
}

/* jansson's error text quotes the input near the error ("near 'xyz'"),
 * which may be a credential: describe the error by its code only. */
static const char *json_error_describe(const json_error_t *e) {
        switch (json_error_code(e)) {
        case json_error_invalid_utf8: return "invalid UTF-8";
        case json_error_premature_end_of_input: return "unexpected end of input";
        case json_error_end_of_input_expected: return "trailing data after the JSON value";
        case json_error_duplicate_key: return "duplicate object key";
        case json_error_null_character: return "NUL character";
        case json_error_null_byte_in_key: return "NUL byte in an object key";
        case json_error_numeric_overflow: return "number out of range";
        case json_error_out_of_memory: return "out of memory";
        case json_error_stack_overflow: return "nested too deeply";
        default: return "syntax error";
        }
}

static int refuse(char **ret_reason, const char *fmt, ...) _printf_(2, 3);
static int refuse(char **ret_reason, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(ret_reason, fmt, ap);
        va_end(ap);
        if (r < 0) {
                *ret_reason = NULL;
                return -ENOMEM;
        }
        return -EBADMSG;
}

int pull_secret_parse(const void *data, size_t size, json_t **ret, char **ret_reason) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        const json_t *auths, *e;
        const char *key, *why;
        json_error_t err;
        size_t i = 0;

        *ret_reason = NULL;
        if (size == 0)
                return refuse(ret_reason, "empty");
        if (size > PULL_SECRET_MAX)
                return refuse(ret_reason, "larger than 1 MiB");
        if (!depth_within(data, size, PULL_SECRET_DEPTH_MAX))
                return refuse(ret_reason, "nested deeper than %u levels", PULL_SECRET_DEPTH_MAX);

        j = json_loadb(data, size, JSON_REJECT_DUPLICATES, &err);
        if (!j) {
                int r = json_error_code(&err) == json_error_out_of_memory
                                ? -ENOMEM
                                : refuse(ret_reason, "not valid JSON (line %d, column %d): %s", err.line,
                                         err.column, json_error_describe(&err));
                /* err.text quotes the input. */
                explicit_bzero(&err, sizeof err);
                return r;
        }
        if (!json_is_object(j))
                return refuse(ret_reason, "not a JSON object");
        auths = json_object_get(j, "auths");
        if (!auths)
                return refuse(ret_reason, "no 'auths' object (a kubernetes.io/dockerconfigjson secret has one)");
        if (!json_is_object(auths))
                return refuse(ret_reason, "'auths' is not an object");

        json_object_foreach((json_t *) auths, key, e) {
                i++;
                /* A key that is not a registry name is not quoted: it is
                 * not known to be harmless. Its position finds it. */
                why = registry_key_check(key);
                if (why)
                        return refuse(ret_reason, "key #%zu of 'auths' is not a registry (host, host:port, optionally with a path): %s",
                                      i, why);
                why = entry_check(e);
                if (why)
                        return refuse(ret_reason, "registry '%s': %s", key, why);
        }

        *ret = TAKE_PTR(j);
        return 0;
}

static int strv_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static void strv_sort(char **l) {
        qsort(l, strv_length(l), sizeof *l, strv_cmp);
}

int pull_secret_registries(const json_t *secret, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        const char *key;
        json_t *e;

        json_object_foreach(json_object_get(secret, "auths"), key, e)
                if (strv_extend(&l, key) < 0)
                        return -ENOMEM;
        if (!l && !(l = calloc(1, sizeof *l)))
                return -ENOMEM;
        strv_sort(l);
        *ret = TAKE_PTR(l);
        return 0;
}

/* Serialize like every file we write: sorted keys, two-space indent, a
 * final newline. The result holds credentials: the caller wipes it. */
static int dump(const json_t *j, char **ret, size_t *ret_size) {
        char *s = json_dumps(j, DUMP_FLAGS), *n;
        size_t len;

        if (!s)
                return -ENOMEM;
        len = strlen(s);
        n = malloc(len + 2);
        if (!n) {
                wipe_free(s, len);
                return -ENOMEM;
        }
        memcpy(n, s, len);
        n[len] = '\n';
        n[len + 1] = 0;
        wipe_free(s, len);
        *ret = n;
        *ret_size = len + 1;
        return 0;
}

static int render_merge(const json_t *secret, const char *existing, size_t existing_size, char *const *previous,
                        char **ret_content, size_t *ret_size, bool *ret_same, char **ret_reason) {
        _cleanup_(json_decrefp) json_t *old = NULL, *merged = NULL;
        const json_t *want = json_object_get(secret, "auths");
        json_t *auths, *e;
        const char *key;
        json_error_t err;

        if (existing) {
                if (!depth_within(existing, existing_size, PULL_SECRET_DEPTH_MAX))
                        return refuse(ret_reason, "the existing file is nested deeper than %u levels; not merging into it",
                                      PULL_SECRET_DEPTH_MAX);
                old = json_loadb(existing, existing_size, JSON_REJECT_DUPLICATES, &err);
                if (!old) {
                        int r = refuse(ret_reason,
                                       "the existing file is not valid JSON (line %d, column %d: %s); not merging into it",
                                       err.line, err.column, json_error_describe(&err));
                        explicit_bzero(&err, sizeof err);
                        return r;
                }
                if (!json_is_object(old))
                        return refuse(ret_reason, "the existing file is not a JSON object; not merging into it");
                auths = json_object_get(old, "auths");
                if (auths && !json_is_object(auths))
                        return refuse(ret_reason, "the existing file's 'auths' is not an object; not merging into it");
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

/* ------------------------------------------------------------------------
 * The state file: which registries nodetrustd put in each target. */

static int ledger_load(int rootfd, const char *state_dir, json_t **ret) {
        _cleanup_free_ char *data = NULL;
        _cleanup_close_ int dfd = -1;
        json_t *j;
        size_t size;
        int r;

        r = open_dir_beneath(rootfd, state_dir, 0, &dfd, NULL);
        if (r >= 0)
                r = read_file_at(dfd, PULL_SECRET_STATE_FILE, false, STATE_MAX, &data, &size);
        if (r == -ENOENT) {
                *ret = json_pack("{s:i, s:{}}", "version", 1, "targets");
                return *ret ? 0 : -ENOMEM;
        }
        if (r < 0)
                return r;
        j = json_loadb(data, size, 0, NULL);
        if (!json_is_object(json_object_get(j, "targets"))) {
                json_decref(j);
                return -EBADMSG;
        }
        *ret = j;
        return 0;
}

static int ledger_registries(const json_t *ledger, const char *path, char ***ret) {
        const json_t *regs = json_object_get(json_object_get(json_object_get(ledger, "targets"), path),
                                             "registries");
        _cleanup_strv_free_ char **l = NULL;
        size_t i;
        json_t *v;

        json_array_foreach(regs, i, v)
                if (json_is_string(v) && strv_extend(&l, json_string_value(v)) < 0)
                        return -ENOMEM;
        *ret = TAKE_PTR(l);
        return 0;
}

/* Record registries (and the file's sha256) for path; *ret_changed tells
 * whether that differs from what was recorded. */
static int ledger_set(json_t *ledger, const char *path, char *const *registries, const char *sha256,
                      bool *ret_changed) {
        json_t *by_path = json_object_get(ledger, "targets"), *regs = json_array(), *entry;

        if (!regs)
                return -ENOMEM;
        for (char *const *p = registries; p && *p; p++)
                if (json_array_append_new(regs, json_string(*p)) < 0) {
                        json_decref(regs);
                        return -ENOMEM;
                }
        entry = json_pack("{s:o, s:s}", "registries", regs, "sha256", sha256);
        if (!entry)
                return -ENOMEM;
        if (json_equal(entry, json_object_get(by_path, path))) {
                json_decref(entry);
                return 0;
        }
        *ret_changed = true;
        return json_object_set_new(by_path, path, entry) < 0 ? -ENOMEM : 0;
}

/* Open (creating) the state directory 0700, its missing parents 0755 like
 * any system directory: a fresh --root must not get a private /var/lib. */
static int open_state_dir(int rootfd, const char *state_dir, int *ret) {
        _cleanup_free_ char *parent = strdup(state_dir);
        _cleanup_close_ int pfd = -1;
        size_t len;
        char *slash;
        int r;

        if (!parent)
                return -ENOMEM;
        len = strlen(parent);
        while (len > 1 && parent[len - 1] == '/')
                parent[--len] = 0;
        slash = strrchr(parent, '/');
        if (!slash)
                return open_dir_beneath(rootfd, parent, 0700, ret, NULL);
        *slash = 0;
        r = open_dir_beneath(rootfd, parent, 0755, &pfd, NULL);
        if (r < 0)
                return r;
        return open_dir_beneath(pfd, slash + 1, 0700, ret, NULL);
}

static int ledger_save(int rootfd, const char *state_dir, const json_t *ledger) {
        _cleanup_free_ char *text = json_dumps(ledger, DUMP_FLAGS);
        _cleanup_close_ int dfd = -1;
        int r;

        if (!text)
                return -ENOMEM;
        r = open_state_dir(rootfd, state_dir, &dfd);
        if (r < 0)
                return r;
        return write_file_atomic_at(dfd, PULL_SECRET_STATE_FILE, text, strlen(text), 0600, (uid_t) -1,
                                    (gid_t) -1);
}

/* ------------------------------------------------------------------------
 * Plan and apply. */

/* "/var/lib/kubelet/config.json" -> "/var/lib/kubelet/" and "config.json". */
static int target_split(const char *path, char **ret_dir, const char **ret_name) {
        const char *slash = strrchr(path, '/');
        const char *name = slash ? slash + 1 : path;

        if (!*name || streq(name, ".") || streq(name, ".."))
                return -EINVAL;
        *ret_dir = strndup(path, (size_t) (name - path));
        if (!*ret_dir)
                return -ENOMEM;
        *ret_name = name;
        return 0;
}

static int set_conflict(PullSecretTarget *t, const char *reason) {
        t->type = PULL_SECRET_CONFLICT;
        free(t->reason);
        t->reason = strdup(reason);
        return t->reason ? 0 : -ENOMEM;
}

static const char *open_problem(int r) {
        switch (r) {
        case -ELOOP:
        case -ENOTDIR:
                return "a component of the directory is a symlink or not a directory; refusing to write through it";
        case -EINVAL:
                return "the path is not a plain file name below --root";
        default:
                return strerror(-r);
        }
}

static int plan_target(int rootfd, const PullSecretPlan *p, const json_t *secret, PullSecretTarget *t, uid_t uid,
                       gid_t gid) {
        _cleanup_free_ char *dir = NULL, *existing = NULL;
        _cleanup_close_ int dfd = -1;
        size_t existing_size = 0;
        bool exists = false, attrs_ok = false, same = false;
        char existing_sha[65] = "";
        const char *name;
        struct stat st;
        char *reason = NULL;
        int r;

        r = target_split(t->path, &dir, &name);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return set_conflict(t, open_problem(r));

        r = open_dir_beneath(rootfd, dir, 0, &dfd, NULL);
        if (r == -ENOMEM)
                return r;
        if (r < 0 && r != -ENOENT)
                return set_conflict(t, open_problem(r));

        if (dfd >= 0 && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                exists = true;
                if (S_ISLNK(st.st_mode))
                        return set_conflict(t, "is a symlink; not following it");
                if (!S_ISREG(st.st_mode))
                        return set_conflict(t, "exists and is not a regular file");
                attrs_ok = (st.st_mode & 07777) == FILE_MODE && (uid == (uid_t) -1 || st.st_uid == uid) &&
                           (gid == (gid_t) -1 || st.st_gid == gid);
                r = read_file_at(dfd, name, false, EXISTING_MAX, &existing, &existing_size);
                if (r == -EFBIG && p->policy == PULL_SECRET_REPLACE)
                        r = 0; /* different from anything we write: replace it */
                else if (r == -EFBIG)
                        return set_conflict(t, "the existing file is larger than 4 MiB; not merging into it");
                else if (r == -ENOMEM)
                        return r;
                else if (r < 0)
                        return set_conflict(t, strerror(-r));
        } else if (dfd >= 0 && errno != ENOENT)
                return set_conflict(t, strerror(errno));

        if (existing)
                sha256_hex(existing, existing_size, existing_sha);
        r = pull_secret_render(secret, p->policy, existing, existing_size, t->previous, &t->content, &t->size, &same,
                               &reason);
        if (existing)
                explicit_bzero(existing, existing_size);
        if (r == -EBADMSG) {
                r = set_conflict(t, reason);
                free(reason);
                return r;
        }
        if (r < 0)
                return r;

        r = pull_secret_registries(secret, &t->registries);
        if (r < 0)
                return r;
        if (!exists)
                t->type = PULL_SECRET_CREATE;
        else if (same && attrs_ok)
                t->type = PULL_SECRET_UNCHANGED;
        else
                t->type = PULL_SECRET_UPDATE;

        if (t->type == PULL_SECRET_UNCHANGED) {
                /* Nothing to write: record what is on disk, drop the copy. */
                memcpy(t->sha256, existing_sha, sizeof t->sha256);
                wipe_free(t->content, t->size);
                t->content = NULL;
                t->size = 0;
        } else
                sha256_hex(t->content, t->size, t->sha256);
        return 0;
}

int pull_secret_plan_compute(int rootfd, const char *state_dir, const Snapshot *snap, char *const *paths,
                             PullSecretPolicy policy, uid_t uid, gid_t gid, PullSecretPlan **ret) {
        _cleanup_(pull_secret_plan_freep) PullSecretPlan *p = calloc(1, sizeof *p);
        _cleanup_(json_decrefp) json_t *secret = NULL;
        size_t n = strv_length(paths);
        int r;

        if (!p)
                return -ENOMEM;
        p->policy = policy;
        p->targets = calloc(n ? n : 1, sizeof *p->targets);
        if (!p->targets)
                return -ENOMEM;

        r = ledger_load(rootfd, state_dir, &p->ledger);
        if (r == -EBADMSG) {
                /* Without it we cannot tell our registries from node-local
                 * ones: own none, so merge removes nothing. */
                p->ledger_corrupt = true;
                p->ledger = json_pack("{s:i, s:{}}", "version", 1, "targets");
                r = p->ledger ? 0 : -ENOMEM;
        }
        if (r < 0)
                return r;

        if (!snap->have_pull_secret)
                p->status = PULL_SECRET_ABSENT;
        else if (snap->pull_secret_error) {
                p->status = PULL_SECRET_INVALID;
                p->reason = strdup(snap->pull_secret_error);
                if (!p->reason)
                        return -ENOMEM;
        } else {
                r = pull_secret_parse(snap->pull_secret, snap->pull_secret_size, &secret, &p->reason);
                if (r == -EBADMSG)
                        p->status = PULL_SECRET_INVALID;
                else if (r < 0)
                        return r;
                else {
                        _cleanup_free_ char *canon = json_dumps(secret, JSON_COMPACT | JSON_SORT_KEYS);
                        if (!canon)
                                return -ENOMEM;
                        sha256_hex(canon, strlen(canon), p->hash);
                        explicit_bzero(canon, strlen(canon));
                        p->status = PULL_SECRET_VALID;
                        r = pull_secret_registries(secret, &p->registries);
                        if (r < 0)
                                return r;
                }
        }

        for (size_t i = 0; i < n; i++) {
                PullSecretTarget *t = &p->targets[i];

                t->type = PULL_SECRET_KEEP;
                t->path = strdup(paths[i]);
                if (!t->path)
                        return -ENOMEM;
                p->n_targets++;
                r = ledger_registries(p->ledger, t->path, &t->previous);
                if (r < 0)
                        return r;
                if (p->status != PULL_SECRET_VALID)
                        continue;
                r = plan_target(rootfd, p, secret, t, uid, gid);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(p);
        return 0;
}

static int target_write(int rootfd, const PullSecretTarget *t, uid_t uid, gid_t gid) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_close_ int dfd = -1;
        const char *name;
        int r;

        r = target_split(t->path, &dir, &name);
        if (r < 0)
                return r;
        r = open_dir_beneath(rootfd, dir, DIR_MODE, &dfd, NULL);
        if (r < 0)
                return r;
        return write_file_atomic_at(dfd, name, t->content, t->size, FILE_MODE, uid, gid);
}

/* previous plus every registry of now not in it (strv). */
static int strv_union(char *const *previous, char *const *now, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;

        for (char *const *p = previous; p && *p; p++)
                if (strv_extend(&l, *p) < 0)
                        return -ENOMEM;
        for (char *const *p = now; p && *p; p++)
                if (!strv_contains(l, *p) && strv_extend(&l, *p) < 0)
                        return -ENOMEM;
        if (l)
                strv_sort(l);
        *ret = TAKE_PTR(l);
        return 0;
}

int pull_secret_apply(int rootfd, const char *state_dir, PullSecretPlan *p, uid_t uid, gid_t gid) {
        bool changed = false;
        int failed = 0, r;

        for (size_t i = 0; i < p->n_targets; i++) {
                PullSecretTarget *t = &p->targets[i];

                if (t->type == PULL_SECRET_CREATE || t->type == PULL_SECRET_UPDATE) {
                        _cleanup_strv_free_ char **both = NULL;
                        bool grows = false;

                        /* Record the new registries as ours before writing
                         * them: if we die in between, the next run must
                         * still know they are ours, or a registry dropped
                         * from the secret later would stay as node-local. */
                        r = strv_union(t->previous, t->registries, &both);
                        if (r < 0)
                                return r;
                        if (strv_length(both) != strv_length(t->previous)) {
                                const json_t *old = json_object_get(json_object_get(json_object_get(p->ledger, "targets"),
                                                                                    t->path), "sha256");
                                r = ledger_set(p->ledger, t->path, both, json_string_value(old) ?: "", &grows);
                                if (r >= 0 && grows)
                                        r = ledger_save(rootfd, state_dir, p->ledger);
                                if (r < 0)
                                        return r;
                        }

                        t->error = target_write(rootfd, t, uid, gid);
                        if (t->error < 0) {
                                failed++;
                                continue;
                        }
                } else if (t->type != PULL_SECRET_UNCHANGED)
                        continue;

                r = ledger_set(p->ledger, t->path, t->registries, t->sha256, &changed);
                if (r < 0)
                        return r;
        }

        if (changed) {
                r = ledger_save(rootfd, state_dir, p->ledger);
                if (r < 0)
                        return r;
        }
        return failed;
}

void pull_secret_plan_print(FILE *f, const PullSecretPlan *p, const char *root) {
        if (p->status == PULL_SECRET_ABSENT)
                fprintf(f, "absent pull-secret\n");
        else if (p->status == PULL_SECRET_INVALID)
                fprintf(f, "refuse pull-secret: %s\n", p->reason);

        /* Like the trust plan: ROOT + the path, one '/' between (root "/" included). */
        size_t la = strlen(root);
        while (la > 0 && root[la - 1] == '/')
                la--;
        for (size_t i = 0; i < p->n_targets; i++) {
                const PullSecretTarget *t = &p->targets[i];

                fprintf(f, "%s pull-secret %.*s/%s", pull_secret_action_to_string(t->type), (int) la, root,
                        t->path + strspn(t->path, "/"));
                if (t->reason)
                        fprintf(f, ": %s", t->reason);
                fputc('\n', f);
        }
}

PullSecretPlan *pull_secret_plan_free(PullSecretPlan *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_targets; i++) {
                PullSecretTarget *t = &p->targets[i];
                free(t->path);
                wipe_free(t->content, t->size);
                strv_free(t->registries);
                strv_free(t->previous);
                free(t->reason);
        }
        free(p->targets);
        free(p->reason);
        strv_free(p->registries);
        json_decref(p->ledger);
        free(p);
        return NULL;
}

/* ------------------------------------------------------------------------
 * The sync step the manager calls. */

static int append(char **s, const char *path, const char *what) {
        char *n = NULL;

        if (asprintf(&n, "%s%s%s: %s", *s ? *s : "", *s ? "; " : "", path, what) < 0)
                return -ENOMEM;
        free(*s);
        *s = n;
        return 0;
}

static void log_target(const PullSecretPlan *p, const PullSecretTarget *t, const char *policy, bool reason_changed) {
        _cleanup_free_ char *regs = NULL;

        switch (t->type) {
        case PULL_SECRET_CREATE:
        case PULL_SECRET_UPDATE:
                if (t->error < 0) {
                        log_full(LOG_ERR, "Failed to write the pull secret", "TARGET=%s", t->path, "ERROR=%s",
                                 strerror(-t->error), NULL);
                        break;
                }
                regs = strv_join(t->registries, ",");
                log_full(LOG_INFO, t->type == PULL_SECRET_CREATE ? "Created pull secret file" : "Updated pull secret file",
                         "TARGET=%s", t->path, "POLICY=%s", policy, "SHA256=%s", t->sha256, "SECRET_SHA256=%s",
                         p->hash, "REGISTRIES=%s", regs ? regs : "", NULL);
                break;
        case PULL_SECRET_CONFLICT:
                /* Repeats on every resync: say it when it changes. */
                log_full(reason_changed ? LOG_WARNING : LOG_DEBUG, "Pull secret target left untouched", "TARGET=%s",
                         t->path, "REASON=%s", t->reason, NULL);
                break;
        case PULL_SECRET_UNCHANGED:
                log_debug("Pull secret file '%s' unchanged", t->path);
                break;
        default:
                break;
        }
}

int pull_secret_sync(int rootfd, const Config *c, const Snapshot *snap, State *s) {
        _cleanup_(pull_secret_plan_freep) PullSecretPlan *p = NULL;
        _cleanup_free_ char *error = NULL;
        PullSecretPolicy policy = PULL_SECRET_REPLACE;
        uid_t uid = 0;
        gid_t gid = 0;
        const char *new_state;
        bool all_ok = true, reason_changed;
        int failed = 0, r;

        /* Both were validated at start-up. */
        (void) pull_secret_policy_from_string(c->pull_secret_policy, &policy);
        if (c->pull_secret_owner)
                (void) pull_secret_owner_parse(c->pull_secret_owner, &uid, &gid);

        r = pull_secret_plan_compute(rootfd, c->state_dir, snap, c->pull_secret_targets, policy, uid, gid, &p);
        if (r < 0)
                return r;

        if (c->dry_run) {
                pull_secret_plan_print(stdout, p, c->root);
                fflush(stdout);
        } else if (p->status == PULL_SECRET_VALID) {
                if (p->ledger_corrupt)
                        log_error("'%s/%s' is corrupt; treating every registry in the pull secret files as node-local",
                                  c->state_dir, PULL_SECRET_STATE_FILE);
                failed = pull_secret_apply(rootfd, c->state_dir, p, uid, gid);
                if (failed < 0)
                        return failed;
        }

        /* State: "applied" only when every target holds the secret. */
        if (p->status == PULL_SECRET_INVALID) {
                new_state = "invalid";
                error = strdup(p->reason);
                if (!error)
                        return -ENOMEM;
        } else if (p->status == PULL_SECRET_ABSENT)
                new_state = "absent";
        else {
                for (size_t i = 0; i < p->n_targets; i++) {
                        const PullSecretTarget *t = &p->targets[i];
                        if (t->type == PULL_SECRET_CONFLICT)
                                r = append(&error, t->path, t->reason);
                        else if (t->error < 0)
                                r = append(&error, t->path, strerror(-t->error));
                        else
                                continue;
                        if (r < 0)
                                return r;
                        all_ok = false;
                }
                new_state = all_ok ? "applied" : "invalid";
        }

        reason_changed = !s->pull_secret_state || !streq(s->pull_secret_state, new_state) ||
                         !streq(s->pull_secret_error ?: "", error ?: "");

        if (!c->dry_run) {
                for (size_t i = 0; i < p->n_targets; i++) {
                        const PullSecretTarget *t = &p->targets[i];
                        log_target(p, t, c->pull_secret_policy, reason_changed);
                }
                if (p->status == PULL_SECRET_INVALID)
                        log_full(reason_changed ? LOG_WARNING : LOG_DEBUG,
                                 "Pull secret refused; keeping the last good pull credentials", "REASON=%s", p->reason,
                                 NULL);
                else if (p->status == PULL_SECRET_ABSENT && reason_changed)
                        log_info("No pull secret at the source; pull credentials files left as they are");
        }

        s->pull_secret_state = new_state;
        free(s->pull_secret_error);
        s->pull_secret_error = TAKE_PTR(error);
        /* The hash says what the node holds: it moves only when every target does. */
        if (p->status == PULL_SECRET_VALID && all_ok)
                memcpy(s->pull_secret_hash, p->hash, sizeof s->pull_secret_hash);
        return failed > 0 ? -EIO : 0;
}
