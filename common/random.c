/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <sys/random.h>

#include "random.h"

uint64_t random_u64(void) {
        uint64_t v;

        if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t) sizeof v)
                v = ((uint64_t) random() << 32) ^ (uint64_t) random();
        return v;
}

uint64_t jitter_usec(uint64_t usec, uint64_t r) {
        uint64_t span = usec / 5; /* 20%: from -10% to +10% */

        if (span == 0)
                return usec;
        return usec - usec / 10 + r % (span + 1);
}
