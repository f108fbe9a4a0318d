/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The few macros every module uses, in one place: attributes, array and
 * string helpers, and time units (microseconds, as sd_event counts them).
 */

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define streq(a, b) (strcmp((a), (b)) == 0)

/* streq() where either may be NULL: equal when both are, or both say the same. */
static inline bool streq_ptr(const char *a, const char *b) {
        return a && b ? streq(a, b) : a == b;
}

#define USEC_PER_MSEC 1000ULL
#define USEC_PER_SEC 1000000ULL
#define MSEC_PER_SEC 1000ULL
