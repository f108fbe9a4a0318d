/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

/* 64 random bits for jitter (not for keys): getrandom() without blocking,
 * random() when the pool is not ready yet early at boot. */
uint64_t random_u64(void);

/* usec spread uniformly over +-10% by r (random_u64() in use, fixed values
 * in tests), so a thousand nodes started together do not stay in step. */
uint64_t jitter_usec(uint64_t usec, uint64_t r);

static inline uint64_t jitter_usec_random(uint64_t usec) {
        return jitter_usec(usec, random_u64());
}
