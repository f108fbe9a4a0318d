/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base64.h"
#include "cleanup.h"
#include "fs.h"
#include "source-kube-config.h"
#include "utf8.h"

#define KUBECONFIG_MAX (1024 * 1024)
#define TOKEN_MAX (64 * 1024)
/* Deep enough for any kubeconfig, shallow enough that an alias loop ends. */
#define YAML_MAX_DEPTH 32

static void wipe_free(void *p, size_t n) {
        if (p) {
                explicit_bzero(p, n);
                free(p);
        }
}

KubeConfig *kubeconfig_free(KubeConfig *k) {
        if (!k)
                return NULL;
        free(k->server);
        free(k->ca_file);
        free(k->ca_data);
        free(k->cert_file);
        free(k->cert_data);
        free(k->key_file);
        wipe_free(k->key_data, k->key_data_size);
        if (k->token)
                wipe_free(k->token, strlen(k->token));
        free(k->token_file);
        free(k->origin);
        free(k);
        return NULL;
}

_printf_(2, 3) static int fail(char **ret_error, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(ret_error, fmt, ap) < 0)
                *ret_error = NULL;
        va_end(ap);
        /* It quotes names from the file: one printable line, whatever
         * bytes they hold (a newline forged a log line). */
        if (*ret_error)
                (void) utf8_one_line(*ret_error);
        return -EINVAL;
}

/* libyaml's document tree as jansson values: every scalar becomes a string
 * (kubeconfig has no field where the YAML type matters beyond that). JSON
 * is YAML, so this reads both formats. */
/* Aliases let a few hundred bytes of YAML name the same node billions of
 * times (a "billion laughs"): the depth bounds nesting, *budget bounds the
 * nodes made in all. A kubeconfig has a few dozen. */
#define YAML_MAX_NODES 10000

static json_t *yaml_to_json(yaml_document_t *doc, yaml_node_t *node, unsigned depth, unsigned *budget) {
        if (!node || depth > YAML_MAX_DEPTH || *budget == 0)
                return NULL;
        (*budget)--;
        switch (node->type) {
        case YAML_SCALAR_NODE:
                return json_stringn((const char *) node->data.scalar.value, node->data.scalar.length);
        case YAML_SEQUENCE_NODE: {
                json_auto_t *j = json_array();

                for (yaml_node_item_t *i = node->data.sequence.items.start; j && i < node->data.sequence.items.top; i++) {
                        json_t *v = yaml_to_json(doc, yaml_document_get_node(doc, *i), depth + 1, budget);
                        if (!v || json_array_append_new(j, v) < 0)
                                return NULL;
                }
                return TAKE_PTR(j);
        }
        case YAML_MAPPING_NODE: {
                json_auto_t *j = json_object();

                for (yaml_node_pair_t *p = node->data.mapping.pairs.start; j && p < node->data.mapping.pairs.top; p++) {
                        yaml_node_t *k = yaml_document_get_node(doc, p->key);
                        _cleanup_free_ char *key = NULL;
                        json_t *v;

                        if (!k || k->type != YAML_SCALAR_NODE ||
                            !(key = strndup((const char *) k->data.scalar.value, k->data.scalar.length)))
                                return NULL;
                        v = yaml_to_json(doc, yaml_document_get_node(doc, p->value), depth + 1, budget);
                        if (!v || json_object_set_new(j, key, v) < 0)
                                return NULL;
                }
                return TAKE_PTR(j);
        }
        default:
                return NULL;
        }
}

static int parse_yaml(const char *text, size_t size, json_t **ret, char **ret_error) {
        yaml_parser_t parser;
        yaml_document_t doc;
        json_auto_t *j = NULL;

        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *) text, size);
        if (!yaml_parser_load(&parser, &doc)) {
                int r = fail(ret_error, "not valid YAML or JSON: %s at line %zu",
                             parser.problem ? parser.problem : "parse error", parser.problem_mark.line + 1);
                yaml_parser_delete(&parser);
                return r;
        }
        unsigned budget = YAML_MAX_NODES;
        j = yaml_to_json(&doc, yaml_document_get_root_node(&doc), 0, &budget);
        yaml_document_delete(&doc);
        yaml_parser_delete(&parser);
        if (budget == 0)
                return fail(ret_error, "not a kubeconfig: more than %u YAML nodes (aliases expanding?)", YAML_MAX_NODES);
        if (!j || !json_is_object(j))
                return fail(ret_error, "not a kubeconfig: expected a mapping at the top");
        *ret = TAKE_PTR(j);
        return 0;
}

static const char *get_str(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        return s && *s ? s : NULL;
}

/* In a list of {"name": N, KIND: {...}} return the KIND object named name. */
static json_t *find_named(json_t *root, const char *list, const char *kind, const char *name) {
        json_t *l = json_object_get(root, list), *e;
        size_t i;

        json_array_foreach(l, i, e) {
                const char *n = get_str(e, "name");
                if (n && streq(n, name))
                        return json_is_object(json_object_get(e, kind)) ? json_object_get(e, kind) : NULL;
        }
        return NULL;
}

static int set_path(char **field, const char *base_dir, const char *p) {
        if (!p)
                return 0;
        /* kubectl resolves relative paths against the kubeconfig's directory. */
        *field = p[0] == '/' || !base_dir ? strdup(p) : path_join(base_dir, p);
        return *field ? 0 : -ENOMEM;
}

static int set_data(unsigned char **data, size_t *size, const char *b64, const char *what, char **ret_error) {
        int r;

        if (!b64)
                return 0;
        r = base64_decode_alloc(b64, strlen(b64), data, size);
        if (r == -EBADMSG)
                return fail(ret_error, "%s is not valid base64", what);
        return r;
}

static bool is_true(json_t *v) {
        return json_is_true(v) || (json_is_string(v) && (streq(json_string_value(v), "true") ||
                                                         streq(json_string_value(v), "True")));
}

int kubeconfig_parse(const char *text, size_t size, const char *base_dir, KubeConfig **ret, char **ret_error) {
        json_auto_t *root = NULL;
        _cleanup_(kubeconfig_freep) KubeConfig *k = NULL;
        const char *ctx_name, *cluster_name, *user_name, *server, *s;
        json_t *ctx, *cluster, *user;
        int r;

        assert(text);
        assert(ret);
        assert(ret_error);

        *ret_error = NULL;
        r = parse_yaml(text, size, &root, ret_error);
        if (r < 0)
                return r;

        ctx_name = get_str(root, "current-context");
        if (!ctx_name)
                return fail(ret_error, "no current-context");
        ctx = find_named(root, "contexts", "context", ctx_name);
        if (!ctx)
                return fail(ret_error, "current-context '%s' is not in contexts", ctx_name);
        cluster_name = get_str(ctx, "cluster");
        user_name = get_str(ctx, "user");
        if (!cluster_name)
                return fail(ret_error, "context '%s' names no cluster", ctx_name);
        cluster = find_named(root, "clusters", "cluster", cluster_name);
        if (!cluster)
                return fail(ret_error, "cluster '%s' is not in clusters", cluster_name);
        user = user_name ? find_named(root, "users", "user", user_name) : NULL;
        if (user_name && !user)
                return fail(ret_error, "user '%s' is not in users", user_name);

        server = get_str(cluster, "server");
        if (!server)
                return fail(ret_error, "cluster '%s' has no server", cluster_name);
        if (strncmp(server, "https://", 8) != 0)
                return fail(ret_error, "server '%s' is not https://: nodetrustd will not fetch trust over plain HTTP", server);
        /* A trust daemon that skipped verifying its source of trust would
         * hand anyone on the path the power to add registry CAs. */
        if (is_true(json_object_get(cluster, "insecure-skip-tls-verify")))
                return fail(ret_error, "cluster '%s' sets insecure-skip-tls-verify, which nodetrustd refuses", cluster_name);
        if (user && (json_object_get(user, "exec") || json_object_get(user, "auth-provider")) &&
            !get_str(user, "token") && !get_str(user, "tokenFile") && !get_str(user, "client-certificate") &&
            !get_str(user, "client-certificate-data"))
                return fail(ret_error, "user '%s' uses a credential plugin (exec/auth-provider), which nodetrustd does not run; give it a token or a client certificate", user_name);

        k = calloc(1, sizeof *k);
        if (!k)
                return -ENOMEM;
        k->server = strdup(server);
        if (!k->server)
                return -ENOMEM;
        while (strlen(k->server) > 8 && k->server[strlen(k->server) - 1] == '/')
                k->server[strlen(k->server) - 1] = 0;

        if ((s = get_str(cluster, "certificate-authority-data")))
                r = set_data(&k->ca_data, &k->ca_data_size, s, "certificate-authority-data", ret_error);
        else
                r = set_path(&k->ca_file, base_dir, get_str(cluster, "certificate-authority"));
        if (r < 0)
                return r;

        if (user) {
                if ((s = get_str(user, "client-certificate-data")))
                        r = set_data(&k->cert_data, &k->cert_data_size, s, "client-certificate-data", ret_error);
                else
                        r = set_path(&k->cert_file, base_dir, get_str(user, "client-certificate"));
                if (r < 0)
                        return r;
                if ((s = get_str(user, "client-key-data")))
                        r = set_data(&k->key_data, &k->key_data_size, s, "client-key-data", ret_error);
                else
                        r = set_path(&k->key_file, base_dir, get_str(user, "client-key"));
                if (r < 0)
                        return r;
                if ((k->cert_file || k->cert_data) != (k->key_file || k->key_data))
                        return fail(ret_error, "user '%s' has a client certificate without its key, or a key without its certificate", user_name);

                if ((s = get_str(user, "token"))) {
                        /* A header cannot hold it: say so now, not as a
                         * failure of every request. */
                        for (const char *c = s; *c; c++)
                                if ((unsigned char) *c < 0x20 || *c == 0x7f)
                                        return fail(ret_error, "user '%s': the token holds a control character",
                                                    user_name);
                        k->token = strdup(s);
                        if (!k->token)
                                return -ENOMEM;
                } else if ((r = set_path(&k->token_file, base_dir, get_str(user, "tokenFile"))) < 0)
                        return r;
        }

        if (asprintf(&k->origin, "context %s (server %s)", ctx_name, k->server) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(k);
        return 0;
}

int kubeconfig_load(const char *path, KubeConfig **ret, char **ret_error) {
        _cleanup_free_ char *text = NULL, *dir_copy = NULL, *origin = NULL;
        KubeConfig *k = NULL;
        size_t size;
        int r;

        assert(path);
        assert(ret);
        assert(ret_error);

        *ret_error = NULL;
        dir_copy = strdup(path);
        if (!dir_copy)
                return -ENOMEM;
        r = read_file_at(AT_FDCWD, path, true, KUBECONFIG_MAX, &text, &size);
        if (r < 0) {
                if (asprintf(ret_error, "cannot read '%s': %s", path, strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        r = kubeconfig_parse(text, size, dirname(dir_copy), &k, ret_error);
        /* The kubeconfig may hold a token or a client key. */
        explicit_bzero(text, size);
        if (r < 0)
                return r;
        if (asprintf(&origin, "kubeconfig %s %s", path, k->origin) < 0) {
                kubeconfig_free(k);
                return -ENOMEM;
        }
        free(k->origin);
        k->origin = TAKE_PTR(origin);
        *ret = k;
        return 0;
}

int kubeconfig_in_cluster(const char *sa_dir, KubeConfig **ret, char **ret_error) {
        _cleanup_(kubeconfig_freep) KubeConfig *k = NULL;
        const char *host = getenv("KUBERNETES_SERVICE_HOST");
        const char *port = getenv("KUBERNETES_SERVICE_PORT");
        _cleanup_free_ char *token = NULL;
        int r;

        assert(ret);
        assert(ret_error);

        *ret_error = NULL;
        if (!sa_dir)
                sa_dir = getenv("NODETRUST_SERVICEACCOUNT_DIR");
        if (!sa_dir || !*sa_dir)
                sa_dir = KUBE_SERVICEACCOUNT_DIR;
        if (!host || !*host || !port || !*port)
                return fail(ret_error, "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set (is this a pod?)");
        if (strspn(port, "0123456789") != strlen(port) || strpbrk(host, "/@?# "))
                return fail(ret_error, "KUBERNETES_SERVICE_HOST/PORT are not a host and a port");

        k = calloc(1, sizeof *k);
        if (!k)
                return -ENOMEM;
        /* An IPv6 service address needs brackets in a URL. */
        if (asprintf(&k->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host, port) < 0)
                return -ENOMEM;
        k->ca_file = path_join(sa_dir, "ca.crt");
        k->token_file = path_join(sa_dir, "token");
        if (!k->ca_file || !k->token_file)
                return -ENOMEM;

        /* Fail at start-up, with the path, rather than at the first request. */
        r = kubeconfig_token(k, &token);
        if (r < 0) {
                if (asprintf(ret_error, "cannot read the service-account token '%s': %s", k->token_file, strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        wipe_free(token, strlen(token));
        token = NULL;
        if (access(k->ca_file, R_OK) < 0) {
                r = -errno;
                if (asprintf(ret_error, "cannot read the service-account CA '%s': %s", k->ca_file, strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }

        if (asprintf(&k->origin, "in-cluster (server %s)", k->server) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(k);
        return 0;
}

int kubeconfig_token(const KubeConfig *k, char **ret) {
        char *t = NULL;
        size_t size;
        int r;

        assert(k);
        assert(ret);

        if (k->token) {
                t = strdup(k->token);
                if (!t)
                        return -ENOMEM;
        } else if (k->token_file) {
                r = read_file_at(AT_FDCWD, k->token_file, true, TOKEN_MAX, &t, &size);
                if (r < 0)
                        return r;
                /* Token files usually end in a newline; the header must not. */
                while (size > 0 && strchr(" \t\r\n", t[size - 1]))
                        t[--size] = 0;
                if (size == 0 || strpbrk(t, "\r\n")) {
                        wipe_free(t, size);
                        return -EBADMSG;
                }
        }
        *ret = t;
        return 0;
}
