/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

/* 64 random bits for jitter (not for keys): getrandom() without blocking,
 * random() when the pool is not ready yet early at boot. */
uint64_t random_u64(void);
