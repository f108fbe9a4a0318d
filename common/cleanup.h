/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Scope-bound cleanup, in the style of systemd's _cleanup_. A variable
 * declared with one of these attributes is released when it goes out of
 * scope; TAKE_PTR()/TAKE_FD() hand ownership over and leave NULL/-1 behind.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"

#define _cleanup_(f) __attribute__((cleanup(f)))

#define TAKE_PTR(p)                          \
        ({                                   \
                __typeof__(p) _tp_ = (p);    \
                (p) = NULL;                  \
                _tp_;                        \
        })

#define TAKE_FD(fd)                          \
        ({                                   \
                int _tf_ = (fd);             \
                (fd) = -1;                   \
                _tf_;                        \
        })

/* Define a cleanup helper "name##p" that calls func(*p) when *p is not NULL. */
#define DEFINE_POINTER_CLEANUP(type, func)              \
        static inline void func##p(type **p) {          \
                if (*p)                                 \
                        func(*p);                       \
        }

/* Room for need elements of size bytes in *p, which has room for
 * *allocated: grown by doubling (from min), so n appends cost O(n) copies,
 * where one realloc per element made them O(n^2). 0 or -ENOMEM (*p kept). */
static inline int greedy_realloc(void **p, size_t *allocated, size_t need, size_t min, size_t size) {
        size_t want;
        void *q;

        if (need <= *allocated)
                return 0;
        want = *allocated > min ? *allocated : min;
        while (want < need) {
                if (want > SIZE_MAX / 2)
                        return -ENOMEM;
                want *= 2;
        }
        q = reallocarray(*p, want, size);
        if (!q)
                return -ENOMEM;
        *p = q;
        *allocated = want;
        return 0;
}

/* free(p), and NULL for the assignment: p = mfree(p). */
static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0)
                close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Close fd if open and set it to -1; returns -1 for use in assignments. */
static inline int safe_close(int fd) {
        if (fd >= 0)
                close(fd);
        return -1;
}

