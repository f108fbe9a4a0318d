/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "cleanup.h"
#include "hostname.h"
#include "pullsecret-validate.h"
#include "strv.h"

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

void pull_secret_wipe_free(char *p, size_t size) {
        if (!p)
                return;
        explicit_bzero(p, size);
        free(p);
}

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 1123 host name (IPv4 addresses pass too), or a bracketed IPv6 address. */
static const char *host_check(const char *h, size_t len) {
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
        return hostname_check(h, len);
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
                v = base64_char_value(*s);
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
bool pull_secret_depth_within(const char *p, size_t n, unsigned max) {
        unsigned depth = 0;
        bool str = false, esc = false;

        assert(p || n == 0);

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
const char *pull_secret_json_error_describe(const json_error_t *e) {
        assert(e);

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

int pull_secret_refuse(char **ret_reason, const char *fmt, ...) {
        va_list ap;
        int r;

        assert(ret_reason);
        assert(fmt);

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
        json_auto_t *j = NULL;
        const json_t *auths, *e;
        const char *key, *why;
        json_error_t err;
        size_t i = 0;

        assert(data || size == 0);
        assert(ret);
        assert(ret_reason);

        *ret_reason = NULL;
        if (size == 0)
                return pull_secret_refuse(ret_reason, "empty");
        if (size > PULL_SECRET_MAX)
                return pull_secret_refuse(ret_reason, "larger than 1 MiB");
        if (!pull_secret_depth_within(data, size, PULL_SECRET_DEPTH_MAX))
                return pull_secret_refuse(ret_reason, "nested deeper than %u levels", PULL_SECRET_DEPTH_MAX);

        j = json_loadb(data, size, JSON_REJECT_DUPLICATES, &err);
        if (!j) {
                int r = json_error_code(&err) == json_error_out_of_memory
                                ? -ENOMEM
                                : pull_secret_refuse(ret_reason, "not valid JSON (line %d, column %d): %s",
                                                     err.line, err.column, pull_secret_json_error_describe(&err));
                /* err.text quotes the input. */
                explicit_bzero(&err, sizeof err);
                return r;
        }
        if (!json_is_object(j))
                return pull_secret_refuse(ret_reason, "not a JSON object");
        auths = json_object_get(j, "auths");
        if (!auths)
                return pull_secret_refuse(ret_reason,
                                          "no 'auths' object (a kubernetes.io/dockerconfigjson secret has one)");
        if (!json_is_object(auths))
                return pull_secret_refuse(ret_reason, "'auths' is not an object");

        json_object_foreach((json_t *) auths, key, e) {
                i++;
                /* A key that is not a registry name is not quoted: it is
                 * not known to be harmless. Its position finds it. */
                why = registry_key_check(key);
                if (why)
                        return pull_secret_refuse(ret_reason,
                                                  "key #%zu of 'auths' is not a registry (host, host:port, optionally with a path): %s",
                                                  i, why);
                why = entry_check(e);
                if (why)
                        return pull_secret_refuse(ret_reason, "registry '%s': %s", key, why);
        }

        *ret = TAKE_PTR(j);
        return 0;
}

void pull_secret_registries_sort(char **l) {
        qsort(l, strv_length(l), sizeof *l, strv_compare);
}

int pull_secret_registries(const json_t *secret, char ***ret) {
        const json_t *auths = json_object_get(secret, "auths");
        _cleanup_strv_free_ char **l = NULL;
        const char *key;
        size_t n = 0;
        json_t *e;

        assert(secret);
        assert(ret);

        /* One allocation for the list: strv_extend() per key walked the list
         * each time, O(n^2) (a secret of 20,000 registries took seconds). */
        l = calloc(json_object_size(auths) + 1, sizeof *l);
        if (!l)
                return -ENOMEM;
        json_object_foreach((json_t *) auths, key, e) {
                l[n] = strdup(key);
                if (!l[n])
                        return -ENOMEM;
                n++;
        }
        pull_secret_registries_sort(l);
        *ret = TAKE_PTR(l);
        return 0;
}

const char *pull_secret_registry_check(const char *key) {
        assert(key);

        return registry_key_check(key);
}
