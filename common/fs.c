/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "fs.h"

int open_dir_beneath(int dirfd, const char *relpath, mode_t mode, int *ret_fd, bool *ret_created) {
        _cleanup_free_ char *copy = NULL;
        _cleanup_close_ int fd = -1;
        bool created = false;
        char *save = NULL;

        assert(dirfd >= 0 || dirfd == AT_FDCWD);
        assert(relpath);
        assert(ret_fd);

        copy = strdup(relpath);
        if (!copy)
                return -ENOMEM;

        fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;

        for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                int next;

                if (streq(c, "."))
                        continue;
                if (streq(c, ".."))
                        return -EINVAL;

                created = false;
                next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0 && errno == ENOENT && mode != 0) {
                        if (mkdirat(fd, c, mode) == 0)
                                created = true;
                        else if (errno != EEXIST)
                                return -errno;
                        next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        /* mkdirat honours the umask; the mode we promise does not. */
                        if (next >= 0 && created && fchmod(next, mode) < 0) {
                                int r = -errno;
                                close(next);
                                return r;
                        }
                }
                if (next < 0) {
                        /* O_NOFOLLOW on a symlink gives ELOOP, or ENOTDIR
                         * with O_DIRECTORY on some kernels; say which. */
                        int r = -errno;
                        struct stat st;
                        if (fstatat(fd, c, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
                                return -ELOOP;
                        return r;
                }
                close(fd);
                fd = next;
        }

        if (ret_created)
                *ret_created = created;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int open_private_dir_beneath(int dirfd, const char *relpath, int *ret_fd) {
        _cleanup_free_ char *parent = NULL;
        _cleanup_close_ int pfd = -1;
        size_t len;
        char *slash;
        int r;

        assert(dirfd >= 0 || dirfd == AT_FDCWD);
        assert(relpath);
        assert(ret_fd);

        parent = strdup(relpath);
        if (!parent)
                return -ENOMEM;
        len = strlen(parent);
        while (len > 1 && parent[len - 1] == '/')
                parent[--len] = 0;
        slash = strrchr(parent, '/');
        if (!slash)
                return open_dir_beneath(dirfd, parent, 0700, ret_fd, NULL);
        *slash = 0;
        r = open_dir_beneath(dirfd, parent, 0755, &pfd, NULL);
        if (r < 0)
                return r;
        return open_dir_beneath(pfd, slash + 1, 0700, ret_fd, NULL);
}

int read_file_at(int dirfd, const char *name, bool follow, size_t max, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -1;
        struct stat st;

        assert(dirfd >= 0 || dirfd == AT_FDCWD);
        assert(name);
        assert(ret);

        /* Only a regular file is opened: opening a device can act on it (a
         * watchdog arms), and a FIFO would block. The type is looked at
         * first; O_NONBLOCK and read_fd()'s own check cover a swap since. */
        if (fstatat(dirfd, name, &st, follow ? 0 : AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        if (S_ISLNK(st.st_mode))
                return -ELOOP;
        if (!S_ISREG(st.st_mode))
                return S_ISDIR(st.st_mode) ? -EISDIR : -EBADFD;
        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (follow ? 0 : O_NOFOLLOW));
        if (fd < 0)
                return -errno;
        return read_fd(fd, max, ret, ret_size);
}

int read_file_at_regular(int dirfd, const char *name, size_t max, char **ret, size_t *ret_size) {
        int fd;

        assert(dirfd >= 0 || dirfd == AT_FDCWD);
        assert(name);
        assert(ret);

        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
        if (fd < 0)
                /* Since replaced, by a link or anything else: look first. */
                return errno == ELOOP ? read_file_at(dirfd, name, true, max, ret, ret_size) : -errno;
        _cleanup_close_ int owned = fd;
        return read_fd(owned, max, ret, ret_size);
}

int read_fd(int fd, size_t max, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, alloc = 0;
        struct stat st;

        assert(fd >= 0);
        assert(ret);

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return S_ISDIR(st.st_mode) ? -EISDIR : -EBADFD;
        if ((size_t) st.st_size > max)
                return -EFBIG;

        for (;;) {
                ssize_t n;

                if (size + 1 >= alloc) {
                        /* Room for the size stat() gave and one byte more:
                         * a read that stops short there is at the end. */
                        size_t want = alloc ? alloc * 2 : (size_t) st.st_size + 64;
                        char *p = realloc(buf, want);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        alloc = want;
                }
                n = read(fd, buf + size, alloc - size - 1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                size += (size_t) n;
                if (size > max)
                        return -EFBIG;
                /* A regular file read short exactly at its size is read
                 * whole, without one more read() to see the end. */
                if (st.st_size > 0 && size == (size_t) st.st_size && size + 1 < alloc)
                        break;
        }
        buf[size] = 0;
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = size;
        return 0;
}

int unlink_file_at(int dirfd, const char *name) {
        assert(dirfd >= 0 || dirfd == AT_FDCWD);
        assert(name);

        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
                return -errno;
        if (fsync(dirfd) < 0)
                return -errno;
        return 0;
}

bool filename_is_plain(const char *name) {
        assert(name);

        return *name && !streq(name, ".") && !streq(name, "..") && !strchr(name, '/');
}

int open_child_dir(int dirfd, const char *name) {
        int fd;

        assert(dirfd >= 0 || dirfd == AT_FDCWD);
        assert(name);

        /* One component, not followed: "a/b" would be walked with the
         * middle followed, and ".." leaves dirfd. */
        if (!filename_is_plain(name))
                return -EINVAL;
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return fd >= 0 ? fd : -errno;
}

int dir_is_empty_at(int dirfd, const char *name) {
        struct dirent *de;
        DIR *d;
        int fd, r = 1;

        assert(dirfd >= 0 || dirfd == AT_FDCWD);
        assert(name);

        fd = open_child_dir(dirfd, name);
        if (fd < 0)
                return fd;
        d = fdopendir(fd);
        if (!d) {
                r = -errno;
                close(fd);
                return r;
        }
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, "..")) {
                        r = 0;
                        break;
                }
        closedir(d);
        return r;
}

char *path_join(const char *a, const char *b) {
        char *p;
        size_t la;

        assert(a);
        assert(b);

        la = strlen(a);
        /* Trailing slashes go, all of them: "/" joined with "x" is "/x". */
        while (la > 0 && a[la - 1] == '/')
                la--;
        while (*b == '/')
                b++;
        if (asprintf(&p, "%.*s/%s", (int) la, a, b) < 0)
                return NULL;
        return p;
}

int open_in_root(int rootfd, const char *path, int flags) {
        /* openat2 refuses O_NOCTTY beside O_PATH, where it means nothing. */
        struct open_how how = {
                .flags = (uint64_t) (flags | O_CLOEXEC | (flags & O_PATH ? 0 : O_NOCTTY)),
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        const char *rel;
        int fd;

        assert(rootfd >= 0);
        assert(path);

        rel = path + strspn(path, "/");
        if (!*rel)
                rel = ".";
        fd = (int) syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
        if (fd >= 0)
                return fd;
        if (errno != ENOSYS && errno != EPERM)
                return -errno;

        /* No openat2 (an old kernel, or a seccomp filter that predates it):
         * fail closed. Walk the directories with no symlink and no "..",
         * and open the last component without following it either. */
        _cleanup_free_ char *dir = strdup(rel);
        _cleanup_close_ int dfd = -1;
        char *base;
        int r;

        if (!dir)
                return -ENOMEM;
        base = strrchr(dir, '/');
        if (base)
                *base++ = 0;
        else {
                base = (char *) rel;
                dir[0] = 0;
        }
        if (streq(base, ".."))
                return -EINVAL;
        r = open_dir_beneath(rootfd, dir, 0, &dfd, NULL);
        if (r < 0)
                return r;
        fd = openat(dfd, base, (int) how.flags | O_NOFOLLOW);
        return fd >= 0 ? fd : -errno;
}

int open_in_root_regular(int rootfd, const char *path) {
        _cleanup_close_ int pfd = -1;
        struct stat st, st2;
        char proc[64];
        int fd;

        assert(rootfd >= 0);
        assert(path);

        /* O_PATH opens nothing: a device, a FIFO or a socket is refused
         * before anything could act on an open(2) of it. */
        pfd = open_in_root(rootfd, path, O_PATH);
        if (pfd < 0)
                return pfd;
        if (fstat(pfd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return S_ISDIR(st.st_mode) ? -EISDIR : -EBADFD;
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
        fd = open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 && errno == ENOENT)
                /* No /proc: by path again, checked to be the same file. */
                fd = open_in_root(rootfd, path, O_RDONLY | O_NONBLOCK);
        else if (fd < 0)
                return -errno;
        if (fd < 0)
                return fd;
        if (fstat(fd, &st2) < 0 || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino) {
                close(fd);
                return -ESTALE;
        }
        return fd;
}

int read_file_in_root(int rootfd, const char *path, size_t max, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -1;

        assert(rootfd >= 0);
        assert(path);
        assert(ret);

        fd = open_in_root_regular(rootfd, path);
        if (fd < 0)
                return fd;
        return read_fd(fd, max, ret, ret_size);
}
