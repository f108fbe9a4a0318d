/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

int base64_char_value(char c) {
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

int base64_decode_alloc(const char *s, size_t len, unsigned char **ret, size_t *ret_size) {
        unsigned char *out;
        unsigned acc = 0, bits = 0;
        size_t n = 0, pad = 0, group = 0;

        assert(s || len == 0);
        assert(ret);
        assert(ret_size);

        out = malloc(len / 4 * 3 + 4);
        if (!out)
                return -ENOMEM;

        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                int v;

                if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
                        continue;
                if (c == '=') {
                        pad++;
                        group++;
                        continue;
                }
                v = base64_char_value(c);
                /* Nothing but padding and blanks may follow padding. */
                if (v < 0 || pad > 0)
                        goto bad;
                acc = (acc << 6) | (unsigned) v;
                bits += 6;
                group++;
                if (bits >= 8) {
                        bits -= 8;
                        out[n++] = (unsigned char) (acc >> bits);
                        acc &= (1u << bits) - 1;
                }
        }
        /* 6 leftover bits cannot be a byte; padding beyond the group is junk. */
        if (bits >= 6 || pad > 2 || (pad > 0 && group % 4 != 0))
                goto bad;
        out[n] = 0;
        *ret = out;
        *ret_size = n;
        return 0;
bad:
        explicit_bzero(out, n);
        free(out);
        return -EBADMSG;
}
