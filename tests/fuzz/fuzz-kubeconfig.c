/* SPDX-License-Identifier: MIT */
/* libFuzzer target: a kubeconfig (YAML or JSON, any bytes) parses or is
 * refused with a reason, never crashes or runs away; what parses names an
 * https:// server without a trailing '/', has a client certificate only
 * with its key, and hands out its token unchanged. No file is read: a
 * tokenFile is only recorded.
 *
 * FUZZ_STRICT=1 also demands what the hardening work makes true: the
 * reason is one printable line, and a token is never something that
 * would split the Authorization header. */
#include <errno.h>
#include <string.h>

#include "fuzz-util.h"
#include "source-kube-config.h"

#ifndef FUZZ_STRICT
#define FUZZ_STRICT 0
#endif

static bool one_line(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        KubeConfig *k = NULL;
        char *error = NULL, *token = NULL;
        size_t n;
        int r;

        r = kubeconfig_parse((const char *) data, size, "/etc/kubernetes", &k, &error);
        if (r < 0) {
                fuzz_check(!k && (r == -ENOMEM || (r == -EINVAL && error && *error)));
                if (FUZZ_STRICT)
                        fuzz_check(one_line(error));
                free(error);
                return 0;
        }
        fuzz_check(k && !error && k->origin);
        n = strlen(k->server);
        fuzz_check(strncmp(k->server, "https://", 8) == 0 && (n == 8 || k->server[n - 1] != '/'));
        fuzz_check(!!(k->cert_file || k->cert_data) == !!(k->key_file || k->key_data));
        fuzz_check(!k->ca_file || k->ca_file[0] == '/');
        fuzz_check(!k->token_file || k->token_file[0] == '/');
        if (k->token) {
                fuzz_check(kubeconfig_token(k, &token) >= 0 && token && strcmp(token, k->token) == 0);
                if (FUZZ_STRICT)
                        fuzz_check(one_line(token));
                free(token);
        }
        kubeconfig_free(k);
        return 0;
}
