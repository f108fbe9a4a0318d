/* SPDX-License-Identifier: MIT */
/*
 * The directory source's reading half: one snapshot of a kubelet-layout
 * volume or a plain directory, each value read as a regular file with a
 * bounded, non-blocking read; what cannot be read is refused by key with
 * its reason. source-dir.c watches and calls these.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "fs.h"
#include "log.h"
#include "source-dir-read.h"

/* Kubernetes caps a config map or secret at 1 MiB in total. */
#define VALUE_MAX (1024u * 1024)
#define PULL_SECRET_KEY ".dockerconfigjson"

/* Open the directory to read from: "..data" when the kubelet layout is
 * there (all keys then come from one generation even if a swap happens
 * while we read), else the directory itself. */
static int open_volume(const char *path, int *ret) {
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int data;

        if (fd < 0)
                return -errno;
        data = openat(fd, "..data", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (data >= 0) {
                close(fd);
                fd = data;
        }
        *ret = fd;
        return 0;
}

/* One generation is whole only while it is current: after renaming the
 * new "..data" into place the kubelet deletes the old directory, so a read
 * that opened the old one just before the swap may see some keys, or none.
 * True when fd (what open_volume() gave) is no longer what path reads. */
static bool volume_swapped(const char *path, int fd) {
        struct stat a, b;
        int pfd, r;

        pfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd < 0)
                return true;
        r = fstatat(pfd, "..data", &b, 0);
        if ((r < 0 && errno == ENOENT) || (r >= 0 && !S_ISDIR(b.st_mode)))
                r = fstat(pfd, &b); /* a plain directory, as open_volume() read it */
        close(pfd);
        if (r < 0 || fstat(fd, &a) < 0)
                return true;
        return a.st_dev != b.st_dev || a.st_ino != b.st_ino;
}

/* What a key's file is when it is not a regular file, as its refusal. */
static const char *file_type_reason(mode_t m) {
        if (S_ISFIFO(m))
                return "is a FIFO, not a regular file";
        if (S_ISSOCK(m))
                return "is a socket, not a regular file";
        if (S_ISCHR(m))
                return "is a character device, not a regular file";
        if (S_ISBLK(m))
                return "is a block device, not a regular file";
        if (S_ISDIR(m))
                return "is a directory, not a regular file";
        return "is not a regular file";
}

/* Why a value could not be read, as a static string (a refused key's
 * reason, or the pull secret's error). NULL: the file is gone, as if it
 * had never been listed (deleted since readdir(), a kubelet swap). */
static const char *read_error_reason(int dfd, const char *name, int r) {
        struct stat st;

        switch (r) {
        case -ENOENT:
                /* A symlink whose target is missing stays listed: say so. */
                if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) >= 0 && S_ISLNK(st.st_mode))
                        return "is a symbolic link to a file that does not exist";
                return NULL;
        case -EFBIG:
                return "larger than 1 MiB, the limit for a value";
        case -ELOOP:
                return "is a symbolic link loop";
        case -EACCES:
        case -EPERM:
                return "cannot be read: permission denied";
        case -EISDIR:
        case -EBADFD:
                /* read_file_at() looked at the type: look again to name it. */
                if (fstatat(dfd, name, &st, 0) >= 0)
                        return file_type_reason(st.st_mode);
                return "is not a regular file";
        default:
                return "cannot be read";
        }
}

/* Read one value of the trust map into snap. A value the agent cannot take
 * (a FIFO, a socket, a device, one over the size limit) is a refused key
 * with its reason, never the end of the read: every other key still
 * applies. read_file_at() looks at the type before it opens anything and
 * opens O_NONBLOCK, so no value can block the loop. Symlinks are followed
 * (the kubelet's keys are symlinks into "..data"); what they point to is
 * judged as the value. */
static int read_value(Snapshot *snap, int dfd, const char *name, bool regular) {
        _cleanup_free_ char *data = NULL;
        const char *why;
        size_t size;
        int r;

        r = regular ? read_file_at_regular(dfd, name, VALUE_MAX, &data, &size)
                    : read_file_at(dfd, name, true, VALUE_MAX, &data, &size);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                why = read_error_reason(dfd, name, r);
                return why ? snapshot_add_refused(snap, name, why) : 0;
        }
        return snapshot_add_entry(snap, name, data, size);
}

/* A name readdir() listed, and whether it said a regular file. */
typedef struct DirName {
        char *name;
        bool regular;
} DirName;

static int name_cmp(const void *a, const void *b) {
        return strcmp(((const DirName *) a)->name, ((const DirName *) b)->name);
}

static void names_free(DirName *names, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(names[i].name);
        free(names);
}

int source_dir_read_trust(const char *path, Snapshot *snap) {
        _cleanup_close_ int fd = -1;
        DirName *names = NULL;
        size_t n = 0, allocated = 0;
        struct dirent *de;
        DIR *dir;
        int r = 0;

        r = open_volume(path, &fd);
        if (r < 0)
                return r;
        dir = fdopendir(fd);
        if (!dir)
                return -errno;
        fd = -1; /* owned by dir now */

        /* An existing directory, even empty, is a trust map with no keys. */
        snap->have_trust = true;

        /* The names first: over the key limit, which keys are read must
         * not depend on readdir() order, and a value beyond it is never
         * read at all. */
        while ((de = readdir(dir))) {
                /* Dot files are the kubelet's own (..data, ..2026_...) or
                 * editors' and installers' temporaries; no registry host
                 * name starts with a dot. */
                if (de->d_name[0] == '.')
                        continue;
                if (greedy_realloc((void **) &names, &allocated, n + 1, 64, sizeof *names) < 0) {
                        r = -ENOMEM;
                        break;
                }
                names[n] = (DirName){ strdup(de->d_name), de->d_type == DT_REG };
                if (!names[n].name) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        if (r >= 0 && n > 1)
                qsort(names, n, sizeof *names, name_cmp);
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = i < SNAPSHOT_ENTRIES_MAX ? read_value(snap, dirfd(dir), names[i].name, names[i].regular)
                                             : snapshot_add_refused(snap, names[i].name, "beyond the key limit");
        names_free(names, n);
        /* The reason beyond the limit names it and the map's size. */
        if (r >= 0)
                r = snapshot_limit_entries(snap);
        if (r >= 0 && volume_swapped(path, dirfd(dir)))
                r = -ESTALE;
        closedir(dir);
        return r;
}

int source_dir_read_pull_secret(const char *path, Snapshot *snap) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *data = NULL;
        struct stat st;
        size_t size;
        int r;

        if (stat(path, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode)) {
                r = open_volume(path, &fd);
                if (r < 0)
                        return r;
                r = read_file_at(fd, PULL_SECRET_KEY, true, VALUE_MAX, &data, &size);
                if (r != -ENOMEM && volume_swapped(path, fd)) {
                        if (data)
                                explicit_bzero(data, size);
                        return -ESTALE;
                }
        } else
                r = read_file_at(AT_FDCWD, path, true, VALUE_MAX, &data, &size);
        if (r < 0 && r != -ENOMEM && r != -ENOENT) {
                /* A secret the agent cannot take (a FIFO, a device, one
                 * over the size limit) is an invalid secret, and must not
                 * stop the trust config map from applying. */
                const char *why = read_error_reason(fd >= 0 ? fd : AT_FDCWD, fd >= 0 ? PULL_SECRET_KEY : path, r);
                snap->have_pull_secret = true;
                snap->pull_secret_error = why ? why : "cannot be read";
                return 0;
        }
        if (r < 0)
                return r;
        r = snapshot_set_pull_secret(snap, data, size);
        explicit_bzero(data, size);
        return r;
}
