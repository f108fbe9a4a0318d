/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What the libFuzzer targets share: the entry point's prototype, a check
 * that crashes (so libFuzzer keeps the input), and a scratch root for the
 * readers that take a directory fd, made once per process on a tmpfs when
 * there is one (a write per input, and no fsync cost).
 */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test: false is a finding. */
#define fuzz_check(cond)                                                               \
        do {                                                                           \
                if (!(cond)) {                                                         \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
                        abort();                                                       \
                }                                                                      \
        } while (0)

static char fuzz_root_path[64];

static inline int fuzz_rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void) st;
        (void) type;
        (void) ftw;
        (void) remove(path);
        return 0;
}

static inline void fuzz_root_remove(void) {
        (void) nftw(fuzz_root_path, fuzz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A directory fd that stands for --root, the same for the whole run. */
static inline int fuzz_root_fd(void) {
        static int fd = -1;
        char *tmpl = fuzz_root_path;

        if (fd >= 0)
                return fd;
        snprintf(tmpl, sizeof fuzz_root_path, "%s/nodetrust-fuzz-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(tmpl))
                abort();
        fd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                abort();
        /* Nothing in it outlives the process (unless it crashes). */
        atexit(fuzz_root_remove);
        return fd;
}

/* Make relative directory path (one level at a time) below the root. */
static inline int fuzz_mkdirs(const char *path) {
        char buf[256];

        snprintf(buf, sizeof buf, "%s", path);
        for (char *p = buf; (p = strchr(p + 1, '/'));) {
                *p = 0;
                (void) mkdirat(fuzz_root_fd(), buf, 0755);
                *p = '/';
        }
        return mkdirat(fuzz_root_fd(), buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/* Replace the file at relative path below the root with data[0..size). */
static inline void fuzz_write(const char *path, const void *data, size_t size) {
        int fd = openat(fuzz_root_fd(), path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);

        if (fd < 0)
                abort();
        for (const char *p = data; size > 0;) {
                ssize_t n = write(fd, p, size);
                if (n <= 0)
                        abort();
                p += n;
                size -= (size_t) n;
        }
        close(fd);
}

/* The part of data before the first occurrence of sep, and what follows
 * it (*rest NULL when sep is absent): one input carries several files. */
static inline size_t fuzz_split(const uint8_t *data, size_t size, const char *sep, const uint8_t **rest,
                                size_t *rest_size) {
        const uint8_t *m = memmem(data, size, sep, strlen(sep));

        if (!m) {
                *rest = NULL;
                *rest_size = 0;
                return size;
        }
        *rest = m + strlen(sep);
        *rest_size = size - (size_t) (*rest - data);
        return (size_t) (m - data);
}
