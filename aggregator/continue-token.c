/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "continue-token.h"

#define TOKEN_VERSION 1
#define MAC_SIZE 16U
/* version, filter + 1, name, MAC */
#define MAX_RAW (2U + CONTINUE_TOKEN_MAX_NAME + MAC_SIZE)
#define MAX_ENCODED ((MAX_RAW * 4 + 2) / 3)

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int continue_key_init(ContinueKey *k) {
        size_t got = 0;

        assert(k);

        while (got < sizeof k->key) {
                ssize_t n = getrandom(k->key + got, sizeof k->key - got, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                got += (size_t) n;
        }
        return 0;
}

static void mac(const ContinueKey *k, const uint8_t *data, size_t len, uint8_t ret[MAC_SIZE]) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned md_len = 0;

        /* HMAC() fails only without memory for its context: then no token
         * made now matches, which is safe (the client starts over). */
        if (!HMAC(EVP_sha256(), k->key, (int) sizeof k->key, data, len, md, &md_len) || md_len < MAC_SIZE)
                memset(md, 0, MAC_SIZE);
        memcpy(ret, md, MAC_SIZE);
}

int continue_token_encode(const ContinueKey *k, int filter, const char *last, char **ret) {
        uint8_t raw[MAX_RAW];
        size_t n, len, o = 0;
        uint32_t acc = 0;
        int bits = 0;
        char *s;

        assert(k);
        assert(last);
        assert(ret);
        assert(filter >= -1 && filter < 254);

        n = strlen(last);
        if (n == 0 || n > CONTINUE_TOKEN_MAX_NAME)
                return -EINVAL;
        raw[0] = TOKEN_VERSION;
        raw[1] = (uint8_t) (filter + 1);
        memcpy(raw + 2, last, n);
        len = 2 + n;
        mac(k, raw, len, raw + len);
        len += MAC_SIZE;

        s = malloc((len * 4 + 2) / 3 + 1);
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
                acc = (acc << 8) | raw[i];
                bits += 8;
                while (bits >= 6) {
                        bits -= 6;
                        s[o++] = alphabet[(acc >> bits) & 63];
                }
        }
        if (bits > 0)
                s[o++] = alphabet[(acc << (6 - bits)) & 63];
        s[o] = 0;
        *ret = s;
        return 0;
}

static int value_of(char c) {
        const char *p = c ? strchr(alphabet, c) : NULL;

        return p ? (int) (p - alphabet) : -1;
}

static int fail(const char **ret_reason, const char *reason) {
        *ret_reason = reason;
        return -EINVAL;
}

int continue_token_decode(const ContinueKey *k, const char *token, int filter, char *ret_last,
                          const char **ret_reason) {
        uint8_t raw[MAX_RAW], want[MAC_SIZE];
        size_t len = 0, n;
        uint32_t acc = 0;
        int bits = 0;

        assert(k);
        assert(token);
        assert(ret_last);
        assert(ret_reason);

        n = strlen(token);
        if (n == 0 || n > MAX_ENCODED || n % 4 == 1)
                return fail(ret_reason, "continue is not a token this aggregator issued (malformed)");
        for (size_t i = 0; i < n; i++) {
                int v = value_of(token[i]);
                if (v < 0)
                        return fail(ret_reason, "continue is not a token this aggregator issued (malformed)");
                acc = (acc << 6) | (uint32_t) v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        raw[len++] = (uint8_t) (acc >> bits);
                }
        }
        /* Leftover bits must be zero, so each token has one spelling. */
        if (acc & ((1U << bits) - 1))
                return fail(ret_reason, "continue is not a token this aggregator issued (malformed)");
        if (len < 3 + MAC_SIZE)
                return fail(ret_reason, "continue is not a token this aggregator issued (malformed)");

        mac(k, raw, len - MAC_SIZE, want);
        if (CRYPTO_memcmp(want, raw + len - MAC_SIZE, MAC_SIZE) != 0)
                return fail(ret_reason,
                            "continue is not a token this aggregator issued (forged, or from before a restart): "
                            "list again from the start");
        if (raw[0] != TOKEN_VERSION)
                return fail(ret_reason, "continue token has an unknown version");
        if ((int) raw[1] - 1 != filter)
                return fail(ret_reason, "continue token was issued for another filter: ask with the same "
                                        "parameters as the first page");
        len -= MAC_SIZE + 2;
        if (memchr(raw + 2, 0, len))
                return fail(ret_reason, "continue is not a token this aggregator issued (malformed)");
        memcpy(ret_last, raw + 2, len);
        ret_last[len] = 0;
        return 0;
}
