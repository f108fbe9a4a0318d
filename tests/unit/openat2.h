/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Whether openat2(2) works here. Following ".." and symlinks inside --root
 * needs it: without it (an old kernel, a seccomp filter that predates it,
 * or valgrind 3.19, which does not know the system call) common/fs.c
 * falls back to refusing both, so tests of where they lead skip those
 * cases there. */
static inline bool have_openat2(void) {
        struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT };
        int fd = (int) syscall(SYS_openat2, AT_FDCWD, ".", &how, sizeof how);

        if (fd < 0)
                return errno != ENOSYS && errno != EPERM;
        close(fd);
        return true;
}
