/* SPDX-License-Identifier: MIT */
/*
 * Atomic, durable writes (a temp file of our own naming, fsync, rename,
 * fsync of the directory), the same in parts for a caller that batches
 * durability (every temp first, one syncfs per file system, every rename,
 * one syncfs: docs/durability.md), and the sweep of the temp files a
 * killed write left behind. Declared in fs.h with the rest of the file helpers.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fs.h"

/* A temp file is ".#" NAME "." and 16 hex digits, NAME cut to 200 bytes. */
#define TEMP_PREFIX ".#"
#define TEMP_NAME_MAX 200
#define TEMP_RANDOM_LEN 16

_Static_assert(ATOMIC_TEMP_SIZE == NAME_MAX + 1, "a temp name is one directory entry");

static int write_all(int fd, const void *data, size_t size) {
        const char *p = data;

        while (size > 0) {
                ssize_t n = write(fd, p, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t size, mode_t mode,
                         uid_t uid, gid_t gid) {
        assert(dirfd >= 0 || dirfd == AT_FDCWD);
        assert(name);
        assert(data || size == 0);

        return write_file_atomic_full(dirfd, name, data, size, mode, uid, gid, false);
}

uint64_t atomic_temp_random(void) {
        uint64_t rnd;

        if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
                rnd = (uint64_t) getpid() ^ (uint64_t) (uintptr_t) &rnd;
        return rnd;
}

int atomic_temp_name(const char *name, uint64_t rnd, char ret[static ATOMIC_TEMP_SIZE]) {
        assert(name);

        /* The temp name starts with '.' so readers globbing *.crt skip it;
         * is_atomic_temp_name() knows exactly this shape. */
        if (snprintf(ret, ATOMIC_TEMP_SIZE, TEMP_PREFIX "%.*s.%016llx", TEMP_NAME_MAX, name,
                     (unsigned long long) rnd) >= ATOMIC_TEMP_SIZE)
                return -ENAMETOOLONG;
        return 0;
}

int atomic_temp_write_at(int dirfd, const char *tmp, const void *data, size_t size, mode_t mode, uid_t uid,
                         gid_t gid, bool sync) {
        _cleanup_close_ int fd = -1;
        int r;

        assert(dirfd >= 0 || dirfd == AT_FDCWD);
        assert(tmp);
        assert(data || size == 0);

        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;

        r = write_all(fd, data, size);
        if (r >= 0 && (uid != (uid_t) -1 || gid != (gid_t) -1) && fchown(fd, uid, gid) < 0)
                r = -errno;
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = -errno;
        if (r >= 0 && sync && fsync(fd) < 0)
                r = -errno;
        if (r < 0)
                (void) unlinkat(dirfd, tmp, 0);
        return r;
}

int atomic_temp_commit_at(int dirfd, const char *tmp, const char *name, bool noreplace) {
        assert(dirfd >= 0 || dirfd == AT_FDCWD);
        assert(tmp);
        assert(name);

        if (renameat2(dirfd, tmp, dirfd, name, noreplace ? RENAME_NOREPLACE : 0) < 0) {
                int r = -errno;
                (void) unlinkat(dirfd, tmp, 0);
                return r;
        }
        return 0;
}

int write_file_atomic_full(int dirfd, const char *name, const void *data, size_t size, mode_t mode, uid_t uid,
                           gid_t gid, bool noreplace) {
        char tmp[ATOMIC_TEMP_SIZE];
        int r;

        assert(dirfd >= 0 || dirfd == AT_FDCWD);
        assert(name);
        assert(data || size == 0);

        r = atomic_temp_name(name, atomic_temp_random(), tmp);
        if (r < 0)
                return r;
        r = atomic_temp_write_at(dirfd, tmp, data, size, mode, uid, gid, true);
        if (r < 0)
                return r;
        r = atomic_temp_commit_at(dirfd, tmp, name, noreplace);
        if (r < 0)
                return r;
        if (fsync(dirfd) < 0)
                return -errno;
        return 0;
}

int sync_set_add(SyncSet *s, int fd) {
        struct stat st;
        int r;

        assert(s);
        assert(fd >= 0);

        if (fstat(fd, &st) < 0)
                return -errno;
        for (size_t i = 0; i < s->n; i++)
                if (s->fs[i].dev == st.st_dev)
                        return 0;
        r = greedy_realloc((void **) &s->fs, &s->n_allocated, s->n + 1, 4, sizeof *s->fs);
        if (r < 0)
                return r;
        s->fs[s->n].fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (s->fs[s->n].fd < 0)
                return -errno;
        s->fs[s->n++].dev = st.st_dev;
        return 0;
}

int sync_set_sync(const SyncSet *s) {
        int r = 0;

        assert(s);

        for (size_t i = 0; i < s->n; i++)
                if (syncfs(s->fs[i].fd) < 0 && r == 0)
                        r = -errno;
        return r;
}

void sync_set_done(SyncSet *s) {
        assert(s);

        for (size_t i = 0; i < s->n; i++)
                safe_close(s->fs[i].fd);
        s->fs = mfree(s->fs);
        s->n = s->n_allocated = 0;
}

typedef struct DumpBuffer {
        char *data;
        size_t size, alloc;
        bool failed;
} DumpBuffer;

static int dump_append(const char *p, size_t n, void *userdata) {
        DumpBuffer *b = userdata;

        if (b->size + n + 1 > b->alloc) {
                size_t want = (b->size + n + 1) * 2;
                char *d = realloc(b->data, want);
                if (!d) {
                        b->failed = true;
                        return -1;
                }
                b->data = d;
                b->alloc = want;
        }
        memcpy(b->data + b->size, p, n);
        b->size += n;
        b->data[b->size] = 0;
        return 0;
}

int write_json_atomic_at(int dirfd, const char *name, const json_t *j, size_t flags, mode_t mode) {
        DumpBuffer b = {};
        int r;

        assert(dirfd >= 0 || dirfd == AT_FDCWD);
        assert(name);
        assert(j);

        /* Not json_dumps(): jansson ignores a failure to write an object's
         * key (dump_string's result), so out of memory its text can lack
         * a key and still be returned. Our writer remembers that it failed. */
        r = json_dump_callback(j, dump_append, &b, flags);
        if (r < 0 || b.failed || !b.data)
                r = -ENOMEM;
        else
                r = write_file_atomic_at(dirfd, name, b.data, b.size, mode, (uid_t) -1, (gid_t) -1);
        free(b.data);
        return r;
}

bool is_atomic_temp_name(const char *entry, const char *name) {
        size_t n;

        assert(entry);
        assert(name);

        if (strncmp(entry, TEMP_PREFIX, strlen(TEMP_PREFIX)) != 0)
                return false;
        entry += strlen(TEMP_PREFIX);
        n = strnlen(name, TEMP_NAME_MAX);
        if (strncmp(entry, name, n) != 0 || entry[n] != '.')
                return false;
        entry += n + 1;
        return strspn(entry, "0123456789abcdef") == TEMP_RANDOM_LEN && entry[TEMP_RANDOM_LEN] == 0;
}

int sweep_atomic_temp_files_at(int dirfd, char *const *names) {
        struct dirent *de;
        DIR *d;
        int fd, n = 0, r = 0;

        assert(dirfd >= 0 || dirfd == AT_FDCWD);

        fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                r = -errno;
                close(fd);
                return r;
        }
        while ((de = readdir(d))) {
                struct stat st;
                bool ours = false;

                for (char *const *p = names; p && *p && !ours; p++)
                        ours = is_atomic_temp_name(de->d_name, *p);
                /* Only a regular file: a directory or a link of that name
                 * was made by someone else. */
                if (!ours || fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                        continue;
                if (unlinkat(dirfd, de->d_name, 0) < 0) {
                        if (errno != ENOENT && r == 0)
                                r = -errno;
                        continue;
                }
                n++;
        }
        closedir(d);
        if (n > 0 && fsync(dirfd) < 0 && r == 0)
                r = -errno;
        return r < 0 ? r : n;
}
