/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/* Check the first len bytes of h as an RFC 1123 host name: dot-separated
 * labels of 1-63 letters, digits and hyphens, not starting or ending with a
 * hyphen, at most 253 characters; IPv4 addresses pass too. Returns NULL when
 * valid, else a static reason. */
const char *hostname_check(const char *h, size_t len);
