/* SPDX-License-Identifier: MIT */
/* libFuzzer target: a .dockerconfigjson from the cluster, and the node's
 * existing credentials file it is merged into, are both hostile. The input
 * is SECRET, optionally "\n----\n" EXISTING, optionally "\n----\n" and the
 * registries nodetrustd wrote there before, one a line.
 *
 * A secret is accepted or refused with a reason that is one printable line
 * and quotes no credential of either file; replace writes the secret back
 * as it is; merge keeps node-local registries, drops the ones we no longer
 * own, takes the cluster's entries, and is a fixed point: merging again
 * into what it wrote changes nothing. */
#include <errno.h>
#include <string.h>

#include "fuzz-util.h"
#include "pullsecret-render.h"
#include "pullsecret-validate.h"
#include "strv.h"

#define SEP "\n----\n"

/* The fixed words of every reason pull_secret_parse() and
 * pull_secret_render() give (pullsecret-validate.c, pullsecret-render.c,
 * hostname.c): a credential that happens to be part of them is not
 * quoted. A new reason text that trips the check below belongs here. */
static const char templates[] =
        "no credentials ('auth', 'identitytoken', or 'username' and 'password') "
        "'auth' decodes to an empty user name; 'auth' does not decode to user:password; 'auth' is not valid base64 "
        "'auths' is not an object; entry is not an object; 'registrytoken' is not a string; 'email' "
        "no 'auths' object (a kubernetes.io/dockerconfigjson secret has one); not a JSON object "
        "key #1 of 'auths' is not a registry (host, host:port, optionally with a path): "
        "registry ': port out of range 1-65535; malformed IPv6 address; invalid character after the host; "
        "invalid character in path; longer than 1024 characters; larger than 1 MiB; empty "
        "not valid JSON (line 1, column 1): invalid UTF-8; unexpected end of input; trailing data after the JSON value; "
        "duplicate object key; NUL character; NUL byte in an object key; number out of range; out of memory; "
        "nested too deeply; syntax error; nested deeper than 32 levels "
        "the existing file is nested deeper than 32 levels; not merging into it; "
        "the existing file is not valid JSON (line 1, column 1: ); the existing file is not a JSON object; "
        "the existing file's 'auths' is not an object; "
        "empty host name; host name longer than 253 characters; empty label in host name; host name label ends with '-'; "
        "'_' is not allowed in a host name; invalid character in host name; host name label starts with '-'; "
        "host name label longer than 63 characters";

/* The strings a reason must never quote: every credential in an "auths"
 * entry of 8 bytes or more (shorter ones, and one that is part of a
 * registry name there, may appear by chance). */
/* Registry names may be quoted, and with them any part of one. */
static bool in_a_key(json_t *auths, const char *s) {
        const char *key;
        json_t *e;

        json_object_foreach(auths, key, e)
                if (strstr(key, s))
                        return true;
        return false;
}

static bool reason_is_safe(const char *reason, const char *a, size_t an, const char *b, size_t bn) {
        const char *text[] = { a, b };
        size_t len[] = { an, bn };

        if (!reason || !*reason)
                return false;
        for (const char *p = reason; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        return false;
        for (size_t t = 0; t < 2; t++) {
                json_t *j = text[t] ? json_loadb(text[t], len[t], 0, NULL) : NULL, *e, *v;
                const char *reg, *field;
                bool ok = true;

                json_object_foreach(json_object_get(j, "auths"), reg, e)
                        json_object_foreach(e, field, v)
                                if (json_is_string(v) && json_string_length(v) >= 8 &&
                                    !strstr(templates, json_string_value(v)) &&
                                    strcmp(field, "email") != 0 && strcmp(field, "username") != 0 &&
                                    !in_a_key(json_object_get(j, "auths"), json_string_value(v)) &&
                                    strstr(reason, json_string_value(v)))
                                        ok = false;
                json_decref(j);
                if (!ok)
                        return false;
        }
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const uint8_t *rest, *prev_text = NULL;
        size_t rest_size, prev_size, n_secret, n_existing = 0;
        char *existing = NULL, *reason = NULL, *out = NULL, *again = NULL, *prev_copy = NULL;
        char **previous = NULL, **regs = NULL;
        json_t *secret = NULL, *old = NULL, *merged = NULL, *e;
        size_t out_size, again_size;
        const char *key;
        bool same;
        int r;

        n_secret = fuzz_split(data, size, SEP, &rest, &rest_size);
        if (rest) {
                n_existing = fuzz_split(rest, rest_size, SEP, &prev_text, &prev_size);
                existing = strndup((const char *) rest, n_existing);
                if (!existing || strlen(existing) != n_existing)
                        goto done; /* a NUL: the agent reads text files only */
        }
        if (prev_text && rest) {
                prev_copy = strndup((const char *) prev_text, prev_size);
                for (char *save = NULL, *l = prev_copy ? strtok_r(prev_copy, "\n", &save) : NULL; l;
                     l = strtok_r(NULL, "\n", &save))
                        fuzz_check(strv_extend(&previous, l) >= 0);
        }

        r = pull_secret_parse(data, n_secret, &secret, &reason);
        if (r < 0) {
                fuzz_check(!secret && (r == -ENOMEM || (r == -EBADMSG && reason_is_safe(reason, (const char *) data, n_secret, NULL, 0))));
                goto done;
        }
        fuzz_check(!reason && json_is_object(json_object_get(secret, "auths")));
        fuzz_check(pull_secret_registries(secret, &regs) >= 0);
        fuzz_check(strv_length(regs) == json_object_size(json_object_get(secret, "auths")));
        for (size_t i = 1; i < strv_length(regs); i++)
                fuzz_check(strcmp(regs[i - 1], regs[i]) < 0);

        /* replace: the file says exactly the secret, and knows it does. */
        fuzz_check(pull_secret_render(secret, PULL_SECRET_REPLACE, existing, n_existing, previous, &out, &out_size, &same,
                                      &reason) >= 0);
        merged = json_loadb(out, out_size, 0, NULL);
        fuzz_check(json_equal(merged, secret) && out[out_size - 1] == '\n');
        fuzz_check(pull_secret_render(secret, PULL_SECRET_REPLACE, out, out_size, previous, &again, &again_size, &same,
                                      &reason) >= 0 && same);
        json_decref(merged);
        merged = NULL;
        free(out);
        free(again);
        out = again = NULL;

        /* merge */
        r = pull_secret_render(secret, PULL_SECRET_MERGE, existing, n_existing, previous, &out, &out_size, &same, &reason);
        if (r < 0) {
                fuzz_check(r == -ENOMEM || (r == -EBADMSG && existing &&
                                            reason_is_safe(reason, (const char *) data, n_secret, existing, n_existing)));
                goto done;
        }
        merged = json_loadb(out, out_size, JSON_REJECT_DUPLICATES, NULL);
        fuzz_check(json_is_object(json_object_get(merged, "auths")));
        json_object_foreach(json_object_get(secret, "auths"), key, e)
                fuzz_check(json_equal(json_object_get(json_object_get(merged, "auths"), key), e));
        for (char **p = previous; p && *p; p++)
                if (!json_object_get(json_object_get(secret, "auths"), *p))
                        fuzz_check(!json_object_get(json_object_get(merged, "auths"), *p));
        old = existing ? json_loadb(existing, n_existing, 0, NULL) : NULL;
        json_object_foreach(json_object_get(old, "auths"), key, e)
                if (!strv_contains(previous, key) && !json_object_get(json_object_get(secret, "auths"), key))
                        fuzz_check(json_equal(json_object_get(json_object_get(merged, "auths"), key), e));
        fuzz_check(pull_secret_render(secret, PULL_SECRET_MERGE, out, out_size, previous, &again, &again_size, &same,
                                      &reason) >= 0 && same);
        fuzz_check(again_size == out_size && memcmp(again, out, out_size) == 0);

done:
        json_decref(old);
        json_decref(merged);
        json_decref(secret);
        strv_free(regs);
        strv_free(previous);
        free(prev_copy);
        free(out);
        free(again);
        free(reason);
        free(existing);
        return 0;
}
