/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/* sha256 of data as 64 lowercase hex digits plus NUL. */
void sha256_hex(const void *data, size_t size, char ret[65]);

/* Incremental sha256: feed pieces, then finish into hex. */
typedef struct Sha256 Sha256;
Sha256 *sha256_begin(void);
void sha256_feed(Sha256 *h, const void *data, size_t size);
void sha256_end(Sha256 *h, char ret[65]);
