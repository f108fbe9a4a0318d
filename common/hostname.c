/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <stdbool.h>

#include "hostname.h"

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

const char *hostname_check(const char *h, size_t len) {
        size_t label = 0;

        assert(h || len == 0);

        if (len == 0)
                return "empty host name";
        if (len > 253)
                return "host name longer than 253 characters";
        for (size_t i = 0; i < len; i++) {
                char c = h[i];
                if (c == '.') {
                        if (label == 0)
                                return "empty label in host name";
                        if (h[i - 1] == '-')
                                return "host name label ends with '-'";
                        label = 0;
                        continue;
                }
                if (c == '_')
                        return "'_' is not allowed in a host name";
                if (!is_alnum(c) && c != '-')
                        return "invalid character in host name";
                if (c == '-' && label == 0)
                        return "host name label starts with '-'";
                if (++label > 63)
                        return "host name label longer than 63 characters";
        }
        if (label == 0)
                return "empty label in host name";
        if (h[len - 1] == '-')
                return "host name label ends with '-'";
        return NULL;
}
