/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/* Decode standard base64 (RFC 4648, '=' padding optional, ASCII whitespace
 * ignored) into a new NUL-terminated buffer. -EBADMSG on any other byte or
 * a dangling bit group, -ENOMEM. The caller frees (and wipes, for secrets). */
int base64_decode_alloc(const char *s, size_t len, unsigned char **ret, size_t *ret_size);

/* The 6-bit value of one standard base64 character, or -1. For decoders
 * that must not hold the decoded bytes in a buffer (credentials). */
int base64_char_value(char c);
