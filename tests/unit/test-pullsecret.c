/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "fs.h"
#include "hash.h"
#include "pullsecret.h"
#include "strv.h"

#define STATE_DIR "/var/lib/nodetrust"
#define TARGET "/var/lib/kubelet/config.json"

/* base64("alice:s3cret-PW"), base64("bob:hunter2"), base64("nocolon") */
#define AUTH_ALICE "YWxpY2U6czNjcmV0LVBX"
#define AUTH_BOB "Ym9iOmh1bnRlcjI="
#define AUTH_NOCOLON "bm9jb2xvbg=="
#define PASSWORD "s3cret-PW"

/* ------------------------------------------------------------------------
 * Validation. */

static char *parse_reason(const char *text) {
        json_t *j = NULL;
        char *reason = NULL;
        int r = pull_secret_parse(text, strlen(text), &j, &reason);

        assert_int_equal(r, -EBADMSG);
        assert_null(j);
        assert_non_null(reason);
        return reason;
}

static void assert_valid(const char *text) {
        json_t *j = NULL;
        char *reason = NULL;
        int r = pull_secret_parse(text, strlen(text), &j, &reason);

        if (r != 0)
                fail_msg("refused %s: %s", text, reason);
        assert_non_null(j);
        assert_null(reason);
        json_decref(j);
}

static void assert_refused(const char *text, const char *expect) {
        _cleanup_free_ char *reason = parse_reason(text);

        if (!strstr(reason, expect))
                fail_msg("reason for %s is '%s', expected it to contain '%s'", text, reason, expect);
}

static void test_valid_secrets(void **state) {
        (void) state;
        assert_valid("{\"auths\":{\"registry.example.com\":{\"auth\":\"" AUTH_ALICE "\"}}}");
        assert_valid("{\"auths\":{\"registry.example.com:5000\":{\"auth\":\"" AUTH_BOB "\",\"email\":\"a@b\"}}}");
        assert_valid("{\"auths\":{\"quay.io/org/repo\":{\"identitytoken\":\"tok\"}}}");
        assert_valid("{\"auths\":{\"10.0.0.1:5000\":{\"username\":\"u\",\"password\":\"p\"}}}");
        assert_valid("{\"auths\":{\"[::1]:5000\":{\"auth\":\"" AUTH_ALICE "\"}}}");
        /* What `kubectl create secret docker-registry` writes by default. */
        assert_valid("{\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":\"" AUTH_ALICE "\"}}}");
        /* An empty "auth" next to a token, as some tools write it. */
        assert_valid("{\"auths\":{\"r.example\":{\"auth\":\"\",\"identitytoken\":\"tok\"}}}");
        /* Several registries, other top-level keys, an empty auths. */
        assert_valid("{\"auths\":{\"a.example\":{\"auth\":\"" AUTH_ALICE "\"},\"b.example:443\":{\"auth\":\"" AUTH_BOB
                     "\"}},\"credHelpers\":{\"gcr.io\":\"gcloud\"}}");
        assert_valid("{\"auths\":{}}");
        /* Base64 wrapped at 76 columns the way base64(1) does. */
        assert_valid("{\"auths\":{\"r.example\":{\"auth\":\"YWxpY2U6\\ncz\\r\\nNjcmV0LVBX\"}}}");
}

static void test_refused_shape(void **state) {
        (void) state;
        assert_refused("", "empty");
        assert_refused("not json", "not valid JSON");
        assert_refused("{\"auths\":{}} trailing", "trailing data");
        assert_refused("[1,2]", "not a JSON object");
        assert_refused("{}", "no 'auths' object");
        assert_refused("{\"registry.example.com\":{\"auth\":\"" AUTH_ALICE "\"}}", "no 'auths' object");
        assert_refused("{\"auths\":[]}", "'auths' is not an object");
        assert_refused("{\"auths\":{\"r.example\":\"" AUTH_ALICE "\"}}", "registry 'r.example': entry is not an object");
        assert_refused("{\"auths\":{\"r.example\":[]}}", "registry 'r.example': entry is not an object");
        assert_refused("{\"auths\":{\"r.example\":null}}", "entry is not an object");
        assert_refused("{\"auths\":{\"r.example\":{}}}", "registry 'r.example': no credentials");
        assert_refused("{\"auths\":{\"r.example\":{\"email\":\"a@b\"}}}", "no credentials");
        assert_refused("{\"auths\":{\"r.example\":{\"username\":\"u\"}}}", "no credentials");
        assert_refused("{\"auths\":{\"r.example\":{\"auth\":42}}}", "'auth' is not a string");
        assert_refused("{\"auths\":{\"r.example\":{\"auth\":\"" AUTH_ALICE "\"},\"r.example\":{\"auth\":\"" AUTH_BOB
                       "\"}}}",
                       "duplicate object key");
}

static void test_refused_auth(void **state) {
        (void) state;
        /* Not base64 at all, a bad character, wrong length, padding inside. */
        assert_refused("{\"auths\":{\"r.example\":{\"auth\":\"!!!!\"}}}", "registry 'r.example': 'auth' is not valid base64");
        assert_refused("{\"auths\":{\"r.example\":{\"auth\":\"YWxpY2U6c*NjcmV0\"}}}", "'auth' is not valid base64");
        assert_refused("{\"auths\":{\"r.example\":{\"auth\":\"YWxpY2U6czNjcmV0LVB\"}}}", "'auth' is not valid base64");
        assert_refused("{\"auths\":{\"r.example\":{\"auth\":\"YW=xY2U6czNjcmV0LVBX\"}}}", "'auth' is not valid base64");
        assert_refused("{\"auths\":{\"r.example\":{\"auth\":\"YWxpY2U6czNjcmV0LVBX===\"}}}", "'auth' is not valid base64");
        /* Valid base64, but not user:password. */
        assert_refused("{\"auths\":{\"r.example\":{\"auth\":\"" AUTH_NOCOLON "\"}}}",
                       "registry 'r.example': 'auth' does not decode to user:password");
        /* base64(":pw"): no user. */
        assert_refused("{\"auths\":{\"r.example\":{\"auth\":\"OnB3\"}}}", "empty user name");
        /* A bad auth is refused even when username/password are there too. */
        assert_refused("{\"auths\":{\"r.example\":{\"auth\":\"" AUTH_NOCOLON "\",\"username\":\"u\",\"password\":\"p\"}}}",
                       "does not decode");
}

static void test_refused_keys(void **state) {
        (void) state;
        assert_refused("{\"auths\":{\"bad host\":{\"auth\":\"" AUTH_ALICE "\"}}}", "key #1 of 'auths' is not a registry");
        assert_refused("{\"auths\":{\"ok.example\":{\"auth\":\"" AUTH_ALICE "\"},\"bad_host\":{\"auth\":\"" AUTH_ALICE
                       "\"}}}",
                       "key #2 of 'auths'");
        assert_refused("{\"auths\":{\"r.example:99999\":{\"auth\":\"" AUTH_ALICE "\"}}}", "port out of range");
        assert_refused("{\"auths\":{\"r.example:0\":{\"auth\":\"" AUTH_ALICE "\"}}}", "port out of range");
        assert_refused("{\"auths\":{\"r.example:\":{\"auth\":\"" AUTH_ALICE "\"}}}", "port out of range");
        assert_refused("{\"auths\":{\"-r.example\":{\"auth\":\"" AUTH_ALICE "\"}}}", "not a registry");
        assert_refused("{\"auths\":{\"\":{\"auth\":\"" AUTH_ALICE "\"}}}", "not a registry");
        assert_refused("{\"auths\":{\"r.example/a?b\":{\"auth\":\"" AUTH_ALICE "\"}}}", "invalid character in path");
        assert_refused("{\"auths\":{\"user@r.example\":{\"auth\":\"" AUTH_ALICE "\"}}}", "not a registry");
        assert_refused("{\"auths\":{\"[zz]:5000\":{\"auth\":\"" AUTH_ALICE "\"}}}", "IPv6");
}

static void test_refused_huge_and_deep(void **state) {
        size_t n = PULL_SECRET_MAX + 1;
        char *big = malloc(n + 1), *deep, *reason = NULL;
        json_t *j = NULL;
        size_t k = 0;

        (void) state;
        if (!big)
                abort();
        /* Valid JSON, a byte too large. */
        k += (size_t) sprintf(big, "{\"auths\":{\"r.example\":{\"auth\":\"" AUTH_ALICE "\",\"pad\":\"");
        memset(big + k, 'x', n - k - 4);
        memcpy(big + n - 4, "\"}}}", 5);
        assert_int_equal(strlen(big), n);
        assert_int_equal(pull_secret_parse(big, n, &j, &reason), -EBADMSG);
        assert_string_equal(reason, "larger than 1 MiB");
        free(reason);
        free(big);

        /* Nesting: 33 levels refused before jansson sees it, 32 accepted. */
        deep = malloc(4096);
        if (!deep)
                abort();
        for (int depth = PULL_SECRET_DEPTH_MAX; depth <= PULL_SECRET_DEPTH_MAX + 1; depth++) {
                k = (size_t) sprintf(deep, "{\"auths\":{\"r.example\":{\"auth\":\"" AUTH_ALICE "\"}},\"x\":");
                for (int i = 0; i < depth - 1; i++)
                        deep[k++] = '[';
                for (int i = 0; i < depth - 1; i++)
                        deep[k++] = ']';
                deep[k++] = '}';
                deep[k] = 0;
                reason = NULL;
                j = NULL;
                if (depth <= PULL_SECRET_DEPTH_MAX) {
                        assert_int_equal(pull_secret_parse(deep, k, &j, &reason), 0);
                        json_decref(j);
                } else {
                        assert_int_equal(pull_secret_parse(deep, k, &j, &reason), -EBADMSG);
                        assert_non_null(strstr(reason, "nested deeper than 32 levels"));
                        free(reason);
                }
        }
        /* Brackets inside strings do not count. */
        k = (size_t) sprintf(deep, "{\"auths\":{\"r.example\":{\"auth\":\"" AUTH_ALICE "\",\"email\":\"");
        for (int i = 0; i < 100; i++)
                deep[k++] = '[';
        k += (size_t) sprintf(deep + k, "\\\"{\"}}}");
        assert_int_equal(pull_secret_parse(deep, k, &j, &reason), 0);
        json_decref(j);
        /* 10000 levels: refused, no recursion. */
        free(deep);
        deep = malloc(20001);
        if (!deep)
                abort();
        memset(deep, '[', 10000);
        memset(deep + 10000, ']', 10000);
        assert_int_equal(pull_secret_parse(deep, 20000, &j, &reason), -EBADMSG);
        free(reason);
        free(deep);
}

/* jansson's own error text quotes the input ("near '...'"): a reason must
 * never carry a credential, whatever the input looks like. */
static void test_reasons_hold_no_credential(void **state) {
        static const char *const inputs[] = {
                "{\"auths\":{\"r.example\":{\"auth\":\"" AUTH_ALICE "\"}} " PASSWORD,
                "{\"auths\":{\"r.example\":{\"password\":" PASSWORD "}}}",
                "{\"auths\":{\"r.example\":{\"auth\":\"" AUTH_ALICE "\" " PASSWORD "}}}",
                "{\"auths\":{\"" PASSWORD " x\":{\"auth\":\"" AUTH_ALICE "\"}}}",
                "{\"auths\":{\"r.example\":{\"auth\":\"" AUTH_ALICE "x\"}}}",
                "{\"auths\":{\"r.example\":{\"auth\":\"" AUTH_ALICE "\",\"auth\":\"" AUTH_ALICE "\"}}}",
                "{\"auths\":{\"r.example\":{\"identitytoken\":42,\"password\":\"" PASSWORD "\"}}}",
                "[\"" AUTH_ALICE "\"]",
                "\"" PASSWORD,
        };
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(inputs); i++) {
                _cleanup_free_ char *reason = parse_reason(inputs[i]);
                if (strstr(reason, PASSWORD) || strstr(reason, AUTH_ALICE) || strstr(reason, "YWxpY2U"))
                        fail_msg("reason leaks a credential: %s", reason);
        }
}

static void test_owner_and_policy(void **state) {
        PullSecretPolicy p;
        uid_t u;
        gid_t g;

        (void) state;
        assert_int_equal(pull_secret_owner_parse("0:0", &u, &g), 0);
        assert_int_equal(u, 0);
        assert_int_equal(g, 0);
        assert_int_equal(pull_secret_owner_parse("1000:27", &u, &g), 0);
        assert_int_equal(u, 1000);
        assert_int_equal(g, 27);
        assert_int_equal(pull_secret_owner_parse("1000", &u, &g), 0);
        assert_int_equal(u, 1000);
        assert_true(g == (gid_t) -1);
        assert_int_equal(pull_secret_owner_parse("4294967294", NULL, NULL), 0);
        assert_int_equal(pull_secret_owner_parse("4294967295", NULL, NULL), -EINVAL);
        assert_int_equal(pull_secret_owner_parse("root", NULL, NULL), -EINVAL);
        assert_int_equal(pull_secret_owner_parse("", NULL, NULL), -EINVAL);
        assert_int_equal(pull_secret_owner_parse("0:", NULL, NULL), -EINVAL);
        assert_int_equal(pull_secret_owner_parse(":0", NULL, NULL), -EINVAL);
        assert_int_equal(pull_secret_owner_parse("-1", NULL, NULL), -EINVAL);
        assert_int_equal(pull_secret_owner_parse("0:0:0", NULL, NULL), -EINVAL);
        assert_int_equal(pull_secret_policy_from_string("merge", &p), 0);
        assert_int_equal(p, PULL_SECRET_MERGE);
        assert_int_equal(pull_secret_policy_from_string("replace", &p), 0);
        assert_int_equal(p, PULL_SECRET_REPLACE);
        assert_int_equal(pull_secret_policy_from_string("Merge", &p), -EINVAL);
        assert_string_equal(pull_secret_policy_to_string(PULL_SECRET_MERGE), "merge");
        assert_string_equal(pull_secret_policy_to_string(PULL_SECRET_REPLACE), "replace");
}

/* config_load() with argv (after "nodetrustd --config /dev/null", so no
 * config file on this machine is read). */
static int load_config(Config *c, char **args) {
        char *argv[16] = { (char *) "nodetrustd", (char *) "--config", (char *) "/dev/null" };
        int argc = 3;

        for (; *args; args++)
                argv[argc++] = *args;
        optind = 0; /* getopt's state outlives a call of config_load() */
        return config_load(c, argc, argv);
}

/* The pull-secret flags are parsed once, by config, into the options every
 * sync plans with: no string is left for a sync to parse again. */
static void test_options_parsed_by_config(void **state) {
        Config c = {};

        (void) state;
        {
                char *args[] = { (char *) "--trust-source", (char *) "/trust", NULL };
                assert_int_equal(load_config(&c, args), 0);
                assert_int_equal(c.pull_secret_options.policy, PULL_SECRET_REPLACE);
                assert_int_equal(c.pull_secret_options.uid, 0);
                assert_int_equal(c.pull_secret_options.gid, 0);
                assert_int_equal(strv_length(c.pull_secret_options.paths), 1);
                assert_string_equal(c.pull_secret_options.paths[0], DEFAULT_PULL_SECRET_TARGET);
                assert_false(c.pull_secret_options.enabled);
                config_done(&c);
        }
        {
                char *args[] = { (char *) "--pull-secret", (char *) "/secret",
                                 (char *) "--pull-secret-policy", (char *) "merge",
                                 (char *) "--pull-secret-owner", (char *) "1000",
                                 (char *) "--pull-secret-target", (char *) "/a/config.json",
                                 (char *) "--pull-secret-target", (char *) "/b/config.json", NULL };
                assert_int_equal(load_config(&c, args), 0);
                assert_int_equal(c.pull_secret_options.policy, PULL_SECRET_MERGE);
                assert_int_equal(c.pull_secret_options.uid, 1000);
                assert_true(c.pull_secret_options.gid == (gid_t) -1);
                assert_int_equal(strv_length(c.pull_secret_options.paths), 2);
                assert_string_equal(c.pull_secret_options.paths[0], "/a/config.json");
                assert_string_equal(c.pull_secret_options.paths[1], "/b/config.json");
                assert_true(c.pull_secret_options.enabled);
                config_done(&c);
        }
        {
                char *args[] = { (char *) "--pull-secret", (char *) "/secret", (char *) "--pull-secret-owner",
                                 (char *) "1000:27", NULL };
                assert_int_equal(load_config(&c, args), 0);
                assert_int_equal(c.pull_secret_options.uid, 1000);
                assert_int_equal(c.pull_secret_options.gid, 27);
                config_done(&c);
        }
        /* A bad value stops start-up, as before. */
        {
                char *args[] = { (char *) "--pull-secret", (char *) "/secret", (char *) "--pull-secret-policy",
                                 (char *) "Merge", NULL };
                assert_int_equal(load_config(&c, args), -EINVAL);
                config_done(&c);
        }
        {
                char *args[] = { (char *) "--pull-secret", (char *) "/secret", (char *) "--pull-secret-owner",
                                 (char *) "root", NULL };
                assert_int_equal(load_config(&c, args), -EINVAL);
                config_done(&c);
        }
}

/* ------------------------------------------------------------------------
 * Rendering: what each policy makes of an existing file. */

static json_t *secret(const char *text) {
        json_t *j = NULL;
        char *reason = NULL;

        if (pull_secret_parse(text, strlen(text), &j, &reason) < 0)
                fail_msg("refused: %s", reason);
        return j;
}

/* Render and parse the result back; *same as pull_secret_render says. */
static json_t *render(const json_t *s, PullSecretPolicy policy, const char *existing, char *const *previous,
                      bool *same) {
        char *content = NULL, *reason = NULL;
        size_t size;
        json_t *out;

        assert_int_equal(pull_secret_render(s, policy, existing, existing ? strlen(existing) : 0, previous, &content,
                                            &size, same, &reason),
                         0);
        assert_null(reason);
        assert_int_equal(strlen(content), size);
        assert_true(content[size - 1] == '\n');
        out = json_loads(content, 0, NULL);
        assert_non_null(out);
        free(content);
        return out;
}

static void assert_json(const json_t *j, const char *expect) {
        json_t *e = json_loads(expect, 0, NULL);
        char *got = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);

        assert_non_null(e);
        if (!json_equal(j, e))
                fail_msg("got %s, expected %s", got, expect);
        free(got);
        json_decref(e);
}

#define S1 "{\"auths\":{\"cluster.example\":{\"auth\":\"" AUTH_ALICE "\"},\"shared.example\":{\"auth\":\"" AUTH_ALICE "\"}}}"

static void test_replace(void **state) {
        json_t *s = secret(S1), *out;
        char *content = NULL, *reason = NULL;
        size_t size;
        bool same;

        (void) state;
        /* Whatever was there goes: node-local entries, other keys, garbage. */
        out = render(s, PULL_SECRET_REPLACE,
                     "{\"auths\":{\"node.example\":{\"auth\":\"" AUTH_BOB "\"}},\"credHelpers\":{\"gcr.io\":\"gcloud\"}}",
                     NULL, &same);
        assert_false(same);
        assert_json(out, S1);
        json_decref(out);
        out = render(s, PULL_SECRET_REPLACE, "not json at all", NULL, &same);
        assert_false(same);
        json_decref(out);
        out = render(s, PULL_SECRET_REPLACE, NULL, NULL, &same);
        assert_false(same);
        json_decref(out);

        /* The content is the secret re-serialized: sorted keys, indent 2,
         * final newline; byte-equal content is "same", anything else not. */
        assert_int_equal(pull_secret_render(s, PULL_SECRET_REPLACE, NULL, 0, NULL, &content, &size, &same, &reason), 0);
        assert_string_equal(content, "{\n"
                                     "  \"auths\": {\n"
                                     "    \"cluster.example\": {\n"
                                     "      \"auth\": \"" AUTH_ALICE "\"\n"
                                     "    },\n"
                                     "    \"shared.example\": {\n"
                                     "      \"auth\": \"" AUTH_ALICE "\"\n"
                                     "    }\n"
                                     "  }\n"
                                     "}\n");
        out = render(s, PULL_SECRET_REPLACE, content, NULL, &same);
        assert_true(same);
        json_decref(out);
        out = render(s, PULL_SECRET_REPLACE, S1, NULL, &same); /* same JSON, other bytes */
        assert_false(same);
        json_decref(out);
        free(content);
        json_decref(s);
}

static void test_merge_keeps_node_local(void **state) {
        json_t *s = secret(S1), *out;
        bool same;

        (void) state;
        /* No file yet: just the secret's auths. */
        out = render(s, PULL_SECRET_MERGE, NULL, NULL, &same);
        assert_false(same);
        assert_json(out, S1);
        json_decref(out);

        /* Node-local registry kept; the secret wins the shared one; other
         * top-level keys of the file kept. */
        out = render(s, PULL_SECRET_MERGE,
                     "{\"auths\":{\"node.example\":{\"auth\":\"" AUTH_BOB "\"},\"shared.example\":{\"auth\":\"" AUTH_BOB
                     "\"}},\"credHelpers\":{\"gcr.io\":\"gcloud\"},\"HttpHeaders\":{\"User-Agent\":\"x\"}}",
                     NULL, &same);
        assert_false(same);
        assert_json(out, "{\"auths\":{\"node.example\":{\"auth\":\"" AUTH_BOB "\"},\"cluster.example\":{\"auth\":\"" AUTH_ALICE
                         "\"},\"shared.example\":{\"auth\":\"" AUTH_ALICE "\"}},\"credHelpers\":{\"gcr.io\":\"gcloud\"},"
                         "\"HttpHeaders\":{\"User-Agent\":\"x\"}}");
        json_decref(out);

        /* A file with no auths at all gets one. */
        out = render(s, PULL_SECRET_MERGE, "{\"credsStore\":\"pass\"}", NULL, &same);
        assert_json(out, "{\"credsStore\":\"pass\",\"auths\":{\"cluster.example\":{\"auth\":\"" AUTH_ALICE
                         "\"},\"shared.example\":{\"auth\":\"" AUTH_ALICE "\"}}}");
        json_decref(out);
        json_decref(s);
}

static void test_merge_removes_previously_added(void **state) {
        /* The secret dropped shared.example; nodetrustd had added both. */
        json_t *s = secret("{\"auths\":{\"cluster.example\":{\"auth\":\"" AUTH_BOB "\"}}}"), *out;
        char *previous[] = { (char *) "cluster.example", (char *) "shared.example", (char *) "gone.example", NULL };
        bool same;

        (void) state;
        out = render(s, PULL_SECRET_MERGE,
                     "{\"auths\":{\"node.example\":{\"auth\":\"" AUTH_BOB "\"},\"cluster.example\":{\"auth\":\"" AUTH_ALICE
                     "\"},\"shared.example\":{\"auth\":\"" AUTH_ALICE "\"}}}",
                     previous, &same);
        assert_false(same);
        assert_json(out, "{\"auths\":{\"node.example\":{\"auth\":\"" AUTH_BOB "\"},\"cluster.example\":{\"auth\":\"" AUTH_BOB
                         "\"}}}");
        json_decref(out);
        json_decref(s);
}

static void test_merge_same_and_refusals(void **state) {
        json_t *s = secret(S1), *out;
        char *content = NULL, *reason = NULL;
        size_t size;
        bool same;
        static const char *const bad[] = { "not json", "[1]", "{\"auths\":[]}", "{\"auths\":{}", "{\"a\":1,\"a\":2}", "" };

        (void) state;
        /* The same JSON value, formatted by someone else: no rewrite. */
        out = render(s, PULL_SECRET_MERGE,
                     "{ \"auths\" : { \"shared.example\" : {\"auth\":\"" AUTH_ALICE "\"},\n"
                     "\"cluster.example\":{\"auth\":\"" AUTH_ALICE "\"} } }",
                     NULL, &same);
        assert_true(same);
        json_decref(out);

        /* An admin's file that is not a JSON object is never merged into. */
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(pull_secret_render(s, PULL_SECRET_MERGE, bad[i], strlen(bad[i]), NULL, &content, &size,
                                                    &same, &reason),
                                 -EBADMSG);
                assert_non_null(strstr(reason, "not merging into it"));
                free(reason);
                reason = NULL;
        }
        json_decref(s);
}

static void test_merge_ignores_other_secret_keys(void **state) {
        json_t *s = secret("{\"auths\":{\"cluster.example\":{\"auth\":\"" AUTH_ALICE "\"}},\"credsStore\":\"secret-store\"}");
        json_t *out;
        bool same;

        (void) state;
        out = render(s, PULL_SECRET_MERGE, "{\"credsStore\":\"pass\"}", NULL, &same);
        assert_json(out, "{\"credsStore\":\"pass\",\"auths\":{\"cluster.example\":{\"auth\":\"" AUTH_ALICE "\"}}}");
        json_decref(out);
        json_decref(s);
}

/* ------------------------------------------------------------------------
 * Plan and apply under a temporary root. */

typedef struct Fixture {
        char root[64];
        int rootfd;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);

        snprintf(f->root, sizeof f->root, "/tmp/nodetrust-test-pullsecret.XXXXXX");
        assert_non_null(mkdtemp(f->root));
        f->rootfd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(f->rootfd >= 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        char cmd[128];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->root);
        assert_int_equal(system(cmd), 0);
        close(f->rootfd);
        free(f);
        return 0;
}

static PullSecretPlan *plan_with(Fixture *f, const char *text, PullSecretPolicy policy, char *const *paths) {
        _cleanup_(snapshot_freep) Snapshot *snap = snapshot_new();
        char *def[] = { (char *) TARGET, NULL };
        PullSecretOptions o = {
                .paths = (char **) (paths ? paths : def),
                .policy = policy,
                .uid = geteuid(),
                .gid = getegid(),
                .enabled = true,
        };
        PullSecretPlan *p = NULL;

        if (text)
                assert_int_equal(snapshot_set_pull_secret(snap, text, strlen(text)), 0);
        assert_int_equal(pull_secret_plan_compute(f->rootfd, STATE_DIR, snap, &o, &p), 0);
        return p;
}

/* pull_secret_apply() into f's root; returns what it returned, after
 * checking that the result names every target of the plan, as planned. */
static int apply(Fixture *f, const PullSecretPlan *p) {
        _cleanup_(pull_secret_result_freep) PullSecretResult *res = NULL;
        int r = pull_secret_apply(f->rootfd, STATE_DIR, p, &res);

        if (r >= 0) {
                assert_non_null(res);
                assert_int_equal(res->n_targets, p->n_targets);
                for (size_t i = 0; i < p->n_targets; i++) {
                        assert_string_equal(res->targets[i].path, p->targets[i].path);
                        assert_int_equal(res->targets[i].action, p->targets[i].type);
                }
        }
        return r;
}

static PullSecretActionType sync_with(Fixture *f, const char *text, PullSecretPolicy policy) {
        _cleanup_(pull_secret_plan_freep) PullSecretPlan *p = plan_with(f, text, policy, NULL);
        PullSecretActionType t = p->targets[0].type;

        assert_int_equal(apply(f, p), 0);
        return t;
}

static char *read_rel(Fixture *f, const char *rel) {
        char *data = NULL;
        int r = read_file_at(f->rootfd, rel, false, 1 << 20, &data, NULL);
        return r < 0 ? NULL : data;
}

static void write_rel(Fixture *f, const char *dir, const char *name, const char *text) {
        _cleanup_close_ int dfd = -1;

        assert_int_equal(open_dir_beneath(f->rootfd, dir, 0755, &dfd, NULL), 0);
        assert_int_equal(write_file_atomic_at(dfd, name, text, strlen(text), 0600, (uid_t) -1, (gid_t) -1), 0);
}

static void test_apply_create_then_unchanged(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *file = NULL, *ledger = NULL;
        struct stat st;

        assert_int_equal(sync_with(f, S1, PULL_SECRET_REPLACE), PULL_SECRET_CREATE);
        assert_int_equal(fstatat(f->rootfd, "var/lib/kubelet", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0755);
        assert_int_equal(fstatat(f->rootfd, "var/lib/kubelet/config.json", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(fstatat(f->rootfd, "var/lib/nodetrust", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        file = read_rel(f, "var/lib/kubelet/config.json");
        assert_non_null(strstr(file, AUTH_ALICE));

        /* The state file names registries and a hash, never a credential. */
        ledger = read_rel(f, "var/lib/nodetrust/" PULL_SECRET_STATE_FILE);
        assert_non_null(ledger);
        assert_non_null(strstr(ledger, "\"cluster.example\""));
        assert_non_null(strstr(ledger, "\"shared.example\""));
        assert_null(strstr(ledger, AUTH_ALICE));

        /* Same input: nothing to write, mtime untouched. */
        struct stat before, after;
        assert_int_equal(fstatat(f->rootfd, "var/lib/kubelet/config.json", &before, 0), 0);
        assert_int_equal(sync_with(f, S1, PULL_SECRET_REPLACE), PULL_SECRET_UNCHANGED);
        assert_int_equal(sync_with(f, S1, PULL_SECRET_MERGE), PULL_SECRET_UNCHANGED);
        assert_int_equal(fstatat(f->rootfd, "var/lib/kubelet/config.json", &after, 0), 0);
        assert_int_equal(before.st_ino, after.st_ino);

        /* A wrong mode is drift: rewritten 0600. */
        assert_int_equal(fchmodat(f->rootfd, "var/lib/kubelet/config.json", 0644, 0), 0);
        assert_int_equal(sync_with(f, S1, PULL_SECRET_REPLACE), PULL_SECRET_UPDATE);
        assert_int_equal(fstatat(f->rootfd, "var/lib/kubelet/config.json", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_apply_merge_lifecycle(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;
        json_t *j;

        /* An admin's file with a node-local registry and a credHelper. */
        write_rel(f, "var/lib/kubelet", "config.json",
                  "{\"auths\":{\"node.example\":{\"auth\":\"" AUTH_BOB "\"}},\"credHelpers\":{\"gcr.io\":\"gcloud\"}}");
        assert_int_equal(sync_with(f, S1, PULL_SECRET_MERGE), PULL_SECRET_UPDATE);
        a = read_rel(f, "var/lib/kubelet/config.json");
        j = json_loads(a, 0, NULL);
        assert_json(j, "{\"auths\":{\"node.example\":{\"auth\":\"" AUTH_BOB "\"},\"cluster.example\":{\"auth\":\"" AUTH_ALICE
                       "\"},\"shared.example\":{\"auth\":\"" AUTH_ALICE "\"}},\"credHelpers\":{\"gcr.io\":\"gcloud\"}}");
        json_decref(j);

        /* The secret drops shared.example and rotates cluster.example: the
         * one we added goes, the node-local one stays. */
        assert_int_equal(sync_with(f, "{\"auths\":{\"cluster.example\":{\"auth\":\"" AUTH_BOB "\"}}}", PULL_SECRET_MERGE),
                         PULL_SECRET_UPDATE);
        b = read_rel(f, "var/lib/kubelet/config.json");
        j = json_loads(b, 0, NULL);
        assert_json(j, "{\"auths\":{\"node.example\":{\"auth\":\"" AUTH_BOB "\"},\"cluster.example\":{\"auth\":\"" AUTH_BOB
                       "\"}},\"credHelpers\":{\"gcr.io\":\"gcloud\"}}");
        json_decref(j);

        /* An invalid secret changes nothing. */
        {
                _cleanup_(pull_secret_plan_freep) PullSecretPlan *p = plan_with(f, "{\"auths\":", PULL_SECRET_MERGE, NULL);
                assert_int_equal(p->status, PULL_SECRET_INVALID);
                assert_int_equal(p->targets[0].type, PULL_SECRET_KEEP);
                assert_int_equal(apply(f, p), 0);
        }
        /* Neither does an absent one. */
        {
                _cleanup_(pull_secret_plan_freep) PullSecretPlan *p = plan_with(f, NULL, PULL_SECRET_MERGE, NULL);
                assert_int_equal(p->status, PULL_SECRET_ABSENT);
                assert_int_equal(p->targets[0].type, PULL_SECRET_KEEP);
        }
        c = read_rel(f, "var/lib/kubelet/config.json");
        assert_string_equal(b, c);
}

/* A secret of registries lo..hi-1, "r%05u.example". */
static char *big_secret(unsigned lo, unsigned hi) {
        size_t alloc = (hi - lo) * 64 + 64, n = 0;
        char *t = malloc(alloc);

        n += (size_t) snprintf(t + n, alloc - n, "{\"auths\":{");
        for (unsigned i = lo; i < hi; i++)
                n += (size_t) snprintf(t + n, alloc - n, "%s\"r%05u.example\":{\"auth\":\"%s\"}", i > lo ? "," : "", i,
                                       AUTH_ALICE);
        snprintf(t + n, alloc - n, "}}");
        return t;
}

/* 20,000 registries: the name lists are built and merged by sorting now
 * (they were O(n^2)); what they hold is exactly what it was. */
static void test_large_secret_merge(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *s1 = big_secret(0, 20000), *s2 = big_secret(10000, 30000), *file = NULL;
        json_t *j, *auths;

        write_rel(f, "var/lib/kubelet", "config.json", "{\"auths\":{\"node.example\":{\"auth\":\"" AUTH_BOB "\"}}}");
        {
                _cleanup_(pull_secret_plan_freep) PullSecretPlan *p = plan_with(f, s1, PULL_SECRET_MERGE, NULL);
                assert_int_equal(p->status, PULL_SECRET_VALID);
                assert_int_equal(strv_length(p->registries), 20000);
                for (unsigned i = 0; i < 20000; i++) {
                        char want[32];
                        snprintf(want, sizeof want, "r%05u.example", i);
                        assert_string_equal(p->registries[i], want);
                }
                assert_int_equal(apply(f, p), 0);
        }
        assert_int_equal(sync_with(f, s2, PULL_SECRET_MERGE), PULL_SECRET_UPDATE);
        assert_int_equal(read_file_at(f->rootfd, "var/lib/kubelet/config.json", false, 8 << 20, &file, NULL), 0);
        j = json_loads(file, 0, NULL);
        auths = json_object_get(j, "auths");
        /* The node-local one, and the second secret's, no more. */
        assert_int_equal(json_object_size(auths), 20001);
        assert_non_null(json_object_get(auths, "node.example"));
        assert_null(json_object_get(auths, "r09999.example"));
        assert_non_null(json_object_get(auths, "r10000.example"));
        assert_non_null(json_object_get(auths, "r29999.example"));
        json_decref(j);
        /* Unchanged when synced again. */
        assert_int_equal(sync_with(f, s2, PULL_SECRET_MERGE), PULL_SECRET_UNCHANGED);
}

static void test_apply_merge_refuses_foreign_file(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *after = NULL;
        _cleanup_(pull_secret_plan_freep) PullSecretPlan *p = NULL;

        write_rel(f, "var/lib/kubelet", "config.json", "# not json, an admin's notes\n");
        p = plan_with(f, S1, PULL_SECRET_MERGE, NULL);
        assert_int_equal(p->targets[0].type, PULL_SECRET_CONFLICT);
        assert_non_null(strstr(p->targets[0].reason, "not valid JSON"));
        assert_int_equal(apply(f, p), 0);
        after = read_rel(f, "var/lib/kubelet/config.json");
        assert_string_equal(after, "# not json, an admin's notes\n");

        /* replace takes it over. */
        assert_int_equal(sync_with(f, S1, PULL_SECRET_REPLACE), PULL_SECRET_UPDATE);
}

static void test_apply_refuses_symlinks(void **state) {
        Fixture *f = *state;
        _cleanup_close_ int dfd = -1;
        char *paths[] = { (char *) "/var/lib/kubelet/config.json", (char *) "/etc/link/config.json", NULL };
        _cleanup_(pull_secret_plan_freep) PullSecretPlan *p = NULL;
        struct stat st;

        assert_int_equal(open_dir_beneath(f->rootfd, "var/lib/kubelet", 0755, &dfd, NULL), 0);
        assert_int_equal(symlinkat("/tmp/elsewhere.json", dfd, "config.json"), 0);
        assert_int_equal(open_dir_beneath(f->rootfd, "etc", 0755, &dfd, NULL), 0);
        assert_int_equal(symlinkat("/tmp", dfd, "link"), 0);

        p = plan_with(f, S1, PULL_SECRET_REPLACE, paths);
        assert_int_equal(p->targets[0].type, PULL_SECRET_CONFLICT);
        assert_non_null(strstr(p->targets[0].reason, "symlink"));
        assert_int_equal(p->targets[1].type, PULL_SECRET_CONFLICT);
        assert_non_null(strstr(p->targets[1].reason, "symlink"));
        assert_int_equal(apply(f, p), 0);
        assert_int_equal(fstatat(f->rootfd, "var/lib/kubelet/config.json", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISLNK(st.st_mode));
}

static void test_apply_several_targets(void **state) {
        Fixture *f = *state;
        char *paths[] = { (char *) "/var/lib/kubelet/config.json", (char *) "/root/.docker/config.json", NULL };
        _cleanup_(pull_secret_plan_freep) PullSecretPlan *p = NULL;
        _cleanup_free_ char *a = NULL, *b = NULL;

        p = plan_with(f, S1, PULL_SECRET_REPLACE, paths);
        assert_int_equal(p->n_targets, 2);
        assert_int_equal(apply(f, p), 0);
        a = read_rel(f, "var/lib/kubelet/config.json");
        b = read_rel(f, "root/.docker/config.json");
        assert_non_null(a);
        assert_non_null(b);
        assert_string_equal(a, b);
}

/* A write that fails after planning is in apply's result, and only there:
 * the plan stays what was planned, the other target is still written. */
static void test_apply_result_reports_failure(void **state) {
        Fixture *f = *state;
        char *paths[] = { (char *) "/var/lib/kubelet/config.json", (char *) "/root/.docker/config.json", NULL };
        _cleanup_(pull_secret_plan_freep) PullSecretPlan *p = NULL;
        _cleanup_(pull_secret_result_freep) PullSecretResult *res = NULL;
        json_auto_t *ledger = NULL;
        _cleanup_free_ char *content = NULL, *error = NULL, *written = NULL;
        PullSecretStatus status;
        const char *hash = "";
        char sha[65];

        p = plan_with(f, S1, PULL_SECRET_REPLACE, paths);
        assert_int_equal(p->targets[0].type, PULL_SECRET_CREATE);
        assert_int_equal(p->targets[1].type, PULL_SECRET_CREATE);
        content = strndup(p->targets[0].content, p->targets[0].size);
        assert_non_null(content);
        memcpy(sha, p->targets[0].sha256, sizeof sha);
        ledger = json_deep_copy(p->ledger);
        assert_non_null(ledger);

        /* Between plan and apply, a file takes the first target's directory's place. */
        write_rel(f, "var/lib", "kubelet", "not a directory\n");

        assert_int_equal(pull_secret_apply(f->rootfd, STATE_DIR, p, &res), 1);
        assert_non_null(res);
        assert_int_equal(res->n_targets, 2);
        assert_string_equal(res->targets[0].path, "/var/lib/kubelet/config.json");
        assert_int_equal(res->targets[0].action, PULL_SECRET_CREATE);
        assert_true(res->targets[0].error < 0);
        assert_string_equal(res->targets[1].path, "/root/.docker/config.json");
        assert_int_equal(res->targets[1].action, PULL_SECRET_CREATE);
        assert_int_equal(res->targets[1].error, 0);
        written = read_rel(f, "root/.docker/config.json");
        assert_non_null(written);
        assert_string_equal(written, content);

        /* The plan is untouched: same actions, content, hashes and ledger. */
        assert_int_equal(p->n_targets, 2);
        assert_int_equal(p->targets[0].type, PULL_SECRET_CREATE);
        assert_int_equal(p->targets[1].type, PULL_SECRET_CREATE);
        assert_int_equal(p->targets[0].size, strlen(content));
        assert_memory_equal(p->targets[0].content, content, p->targets[0].size);
        assert_string_equal(p->targets[0].sha256, sha);
        assert_null(p->targets[0].reason);
        assert_true(json_equal(p->ledger, ledger));

        /* What State hears: not applied, because of that target; no hash. */
        assert_int_equal(pull_secret_outcome(p, res, &status, &error, &hash), 0);
        assert_int_equal(status, PULL_SECRET_INVALID);
        assert_non_null(error);
        assert_ptr_equal(strstr(error, "/var/lib/kubelet/config.json: "), error);
        assert_null(strstr(error, "/root/.docker/config.json"));
        assert_null(hash);
}

static void test_corrupt_state_file(void **state) {
        Fixture *f = *state;
        _cleanup_(pull_secret_plan_freep) PullSecretPlan *p = NULL;

        assert_int_equal(sync_with(f, S1, PULL_SECRET_MERGE), PULL_SECRET_CREATE);
        write_rel(f, "var/lib/nodetrust", PULL_SECRET_STATE_FILE, "garbage");
        /* Without it nothing is known to be ours: nothing is removed. */
        p = plan_with(f, "{\"auths\":{\"cluster.example\":{\"auth\":\"" AUTH_BOB "\"}}}", PULL_SECRET_MERGE, NULL);
        assert_true(p->ledger_corrupt);
        assert_null(p->targets[0].previous);
        assert_non_null(strstr(p->targets[0].content, "shared.example"));
}

static void test_plan_print_holds_no_content(void **state) {
        Fixture *f = *state;
        char *buf = NULL;
        size_t size = 0;
        FILE *m;

        {
                _cleanup_(pull_secret_plan_freep) PullSecretPlan *p = plan_with(f, S1, PULL_SECRET_REPLACE, NULL);
                m = open_memstream(&buf, &size);
                pull_secret_plan_print(m, p, "/ROOT");
                fclose(m);
                assert_string_equal(buf, "create pull-secret /ROOT/var/lib/kubelet/config.json\n");
                free(buf);
        }
        {
                _cleanup_(pull_secret_plan_freep) PullSecretPlan *p =
                        plan_with(f, "{\"auths\":{\"r.example\":{\"auth\":\"" AUTH_ALICE "\"}} " PASSWORD, PULL_SECRET_REPLACE, NULL);
                m = open_memstream(&buf, &size);
                pull_secret_plan_print(m, p, "/");
                fclose(m);
                assert_non_null(strstr(buf, "refuse pull-secret: not valid JSON"));
                assert_non_null(strstr(buf, "keep pull-secret /var/lib/kubelet/config.json\n"));
                assert_null(strstr(buf, PASSWORD));
                assert_null(strstr(buf, AUTH_ALICE));
                free(buf);
        }
}

/* ------------------------------------------------------------------------
 * The status State keeps, and the words it is published with. */

static void test_state_records_pull_secret(void **state) {
        State s = {};

        (void) state;
        assert_string_equal(pull_secret_status_to_string(PULL_SECRET_ABSENT), "absent");
        assert_string_equal(pull_secret_status_to_string(PULL_SECRET_INVALID), "invalid");
        assert_string_equal(pull_secret_status_to_string(PULL_SECRET_VALID), "applied");
        /* Before any sync: absent, as the status pages have always said. */
        assert_string_equal(pull_secret_status_to_string(s.pull_secret_status), "absent");

        /* The first status recorded is a change, even "absent". */
        assert_int_equal(state_set_pull_secret(&s, PULL_SECRET_ABSENT, NULL, NULL), 1);
        assert_int_equal(state_set_pull_secret(&s, PULL_SECRET_ABSENT, NULL, NULL), 0);
        assert_int_equal(state_set_pull_secret(&s, PULL_SECRET_VALID, "aa", NULL), 1);
        assert_string_equal(s.pull_secret_hash, "aa");
        /* A new error is a change; a NULL hash keeps the published one. */
        assert_int_equal(state_set_pull_secret(&s, PULL_SECRET_INVALID, NULL, "/x: no"), 1);
        assert_int_equal(state_set_pull_secret(&s, PULL_SECRET_INVALID, NULL, "/x: no"), 0);
        assert_int_equal(state_set_pull_secret(&s, PULL_SECRET_INVALID, NULL, "/x: other"), 1);
        assert_string_equal(s.pull_secret_error, "/x: other");
        assert_string_equal(s.pull_secret_hash, "aa");
        assert_int_equal(state_set_pull_secret(&s, PULL_SECRET_VALID, NULL, NULL), 1);
        assert_null(s.pull_secret_error);
        state_done(&s);
}

/* ------------------------------------------------------------------------
 * The published hash: keyed with the node's hash.key, never a plain sha256. */

/* The pull-secret stages of a sync, as the manager runs them: plan, apply
 * (or print, for a dry run), outcome, state, log. Returns 0, -EIO when a
 * target could not be written, or another negative errno. */
static int sync_stages(Fixture *f, const Snapshot *snap, const PullSecretOptions *o, bool dry_run, State *s) {
        _cleanup_(pull_secret_plan_freep) PullSecretPlan *p = NULL;
        _cleanup_(pull_secret_result_freep) PullSecretResult *res = NULL;
        _cleanup_free_ char *error = NULL;
        PullSecretStatus status;
        const char *hash;
        int failed = 0, r;

        r = pull_secret_plan_compute(f->rootfd, STATE_DIR, snap, o, &p);
        if (r < 0)
                return r;
        if (dry_run) {
                pull_secret_plan_print(stdout, p, f->root);
                fflush(stdout);
        } else {
                pull_secret_plan_log(p, STATE_DIR);
                failed = pull_secret_apply(f->rootfd, STATE_DIR, p, &res);
                if (failed < 0)
                        return failed;
        }
        r = pull_secret_outcome(p, res, &status, &error, &hash);
        if (r < 0)
                return r;
        r = state_set_pull_secret(s, status, hash, error);
        if (r < 0)
                return r;
        if (!dry_run)
                pull_secret_log(p, res, STATE_DIR, r > 0);
        return failed > 0 ? -EIO : 0;
}

/* A sync with the replace policy into f's root; returns the published
 * hash (a static buffer). */
static const char *sync_hash(Fixture *f, const char *text, bool dry_run) {
        _cleanup_(snapshot_freep) Snapshot *snap = snapshot_new();
        char *paths[] = { (char *) TARGET, NULL };
        static char hash[65];
        State s = {};
        PullSecretOptions o = {
                .paths = paths,
                .policy = PULL_SECRET_REPLACE,
                .uid = geteuid(),
                .gid = getegid(),
                .enabled = true,
        };

        assert_int_equal(snapshot_set_pull_secret(snap, text, strlen(text)), 0);
        assert_int_equal(sync_stages(f, snap, &o, dry_run, &s), 0);
        assert_int_equal(s.pull_secret_status, PULL_SECRET_VALID);
        assert_string_equal(pull_secret_status_to_string(s.pull_secret_status), "applied");
        memcpy(hash, s.pull_secret_hash, sizeof hash);
        state_done(&s);
        return hash;
}

/* The secret as the agent normalizes it before hashing. */
static char *normalized(const char *text) {
        json_t *j = secret(text);
        char *canon = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);

        json_decref(j);
        assert_non_null(canon);
        return canon;
}

static void read_key(Fixture *f, uint8_t key[PULL_SECRET_KEY_SIZE]) {
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        struct stat st;

        assert_int_equal(fstatat(f->rootfd, "var/lib/nodetrust/" PULL_SECRET_KEY_FILE, &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(read_file_at(f->rootfd, "var/lib/nodetrust/" PULL_SECRET_KEY_FILE, false, 4096, &data, &size),
                         0);
        assert_int_equal(size, PULL_SECRET_KEY_SIZE);
        memcpy(key, data, PULL_SECRET_KEY_SIZE);
}

static void test_published_hash_is_keyed(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *canon = normalized(S1), *file = NULL;
        char plain[65], plain_text[65], plain_file[65], first[65], expect[65];
        unsigned char mac[EVP_MAX_MD_SIZE];
        uint8_t key[PULL_SECRET_KEY_SIZE];
        unsigned len = 0;

        memcpy(first, sync_hash(f, S1, false), sizeof first);
        assert_int_equal(strlen(first), 64);
        assert_int_equal(strspn(first, "0123456789abcdef"), 64);

        /* Not the plain sha256 of the secret (normalized or as given), nor
         * of the file written. */
        sha256_hex(canon, strlen(canon), plain);
        sha256_hex(S1, strlen(S1), plain_text);
        file = read_rel(f, "var/lib/kubelet/config.json");
        sha256_hex(file, strlen(file), plain_file);
        assert_string_not_equal(first, plain);
        assert_string_not_equal(first, plain_text);
        assert_string_not_equal(first, plain_file);

        /* It is HMAC-SHA256 of the normalized secret with the key that
         * nodetrustd created in the state directory. */
        read_key(f, key);
        assert_non_null(HMAC(EVP_sha256(), key, sizeof key, (const unsigned char *) canon, strlen(canon), mac, &len));
        assert_int_equal(len, 32);
        for (unsigned i = 0; i < len; i++)
                snprintf(expect + 2 * i, 3, "%02x", mac[i]);
        assert_string_equal(first, expect);

        /* Stable across syncs (and restarts: the key is read back), and
         * the key is not rewritten. */
        {
                uint8_t again[PULL_SECRET_KEY_SIZE];
                assert_string_equal(sync_hash(f, S1, false), first);
                assert_string_equal(sync_hash(f, S1, false), first);
                read_key(f, again);
                assert_memory_equal(key, again, sizeof key);
        }

        /* It moves when the secret does. */
        assert_string_not_equal(sync_hash(f, "{\"auths\":{\"cluster.example\":{\"auth\":\"" AUTH_BOB "\"}}}", false),
                                first);
        assert_string_equal(sync_hash(f, S1, false), first);
}

static void test_hash_key_replaced_when_corrupt(void **state) {
        Fixture *f = *state;
        char first[65], second[65];
        uint8_t key[PULL_SECRET_KEY_SIZE], zeros[PULL_SECRET_KEY_SIZE] = {};
        struct stat st;

        /* A dry run on a fresh root writes no key, and publishes no hash
         * made with one it threw away. */
        assert_string_equal(sync_hash(f, S1, true), "");
        assert_int_equal(fstatat(f->rootfd, "var/lib/nodetrust", &st, 0), -1);

        memcpy(first, sync_hash(f, S1, false), sizeof first);
        read_key(f, key);

        /* Short, long, all zeros, a symlink: each is replaced by a new key. */
        write_rel(f, "var/lib/nodetrust", PULL_SECRET_KEY_FILE, "short");
        memcpy(second, sync_hash(f, S1, false), sizeof second);
        assert_string_not_equal(second, first);
        read_key(f, key);
        assert_string_equal(sync_hash(f, S1, false), second);

        write_rel(f, "var/lib/nodetrust", PULL_SECRET_KEY_FILE, "0123456789012345678901234567890123456789");
        assert_string_not_equal(sync_hash(f, S1, false), second);
        read_key(f, key);

        {
                _cleanup_close_ int dfd = -1;
                assert_int_equal(open_dir_beneath(f->rootfd, "var/lib/nodetrust", 0, &dfd, NULL), 0);
                assert_int_equal(write_file_atomic_at(dfd, PULL_SECRET_KEY_FILE, zeros, sizeof zeros, 0600, (uid_t) -1,
                                                      (gid_t) -1),
                                 0);
                (void) sync_hash(f, S1, false);
                read_key(f, key);
                assert_memory_not_equal(key, zeros, sizeof zeros);

                assert_int_equal(unlinkat(dfd, PULL_SECRET_KEY_FILE, 0), 0);
                assert_int_equal(symlinkat("/dev/zero", dfd, PULL_SECRET_KEY_FILE), 0);
                (void) sync_hash(f, S1, false);
                read_key(f, key);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid_secrets),
                cmocka_unit_test(test_refused_shape),
                cmocka_unit_test(test_refused_auth),
                cmocka_unit_test(test_refused_keys),
                cmocka_unit_test(test_refused_huge_and_deep),
                cmocka_unit_test(test_reasons_hold_no_credential),
                cmocka_unit_test(test_owner_and_policy),
                cmocka_unit_test(test_options_parsed_by_config),
                cmocka_unit_test(test_replace),
                cmocka_unit_test(test_merge_keeps_node_local),
                cmocka_unit_test(test_merge_removes_previously_added),
                cmocka_unit_test(test_merge_same_and_refusals),
                cmocka_unit_test(test_merge_ignores_other_secret_keys),
                cmocka_unit_test_setup_teardown(test_apply_create_then_unchanged, setup, teardown),
                cmocka_unit_test_setup_teardown(test_apply_merge_lifecycle, setup, teardown),
                cmocka_unit_test_setup_teardown(test_large_secret_merge, setup, teardown),
                cmocka_unit_test_setup_teardown(test_apply_merge_refuses_foreign_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_apply_refuses_symlinks, setup, teardown),
                cmocka_unit_test_setup_teardown(test_apply_several_targets, setup, teardown),
                cmocka_unit_test_setup_teardown(test_apply_result_reports_failure, setup, teardown),
                cmocka_unit_test_setup_teardown(test_corrupt_state_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_plan_print_holds_no_content, setup, teardown),
                cmocka_unit_test(test_state_records_pull_secret),
                cmocka_unit_test_setup_teardown(test_published_hash_is_keyed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hash_key_replaced_when_corrupt, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
