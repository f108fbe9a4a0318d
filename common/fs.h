/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * File helpers that never follow a symlink they were not asked to follow.
 * Paths passed as "relpath" are relative to a directory fd and are walked
 * one component at a time with O_NOFOLLOW, so a symlink planted anywhere
 * below that fd cannot redirect a write. All return negative errno.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Open the directory relpath below dirfd, component by component, refusing
 * symlinks (-ELOOP) and non-directories (-ENOTDIR). With mode != 0, missing
 * components are created with that mode; *ret_created (if not NULL) is set
 * when the last component was created by this call. "" or "." is dirfd. */
int open_dir_beneath(int dirfd, const char *relpath, mode_t mode, int *ret_fd, bool *ret_created);

/* Like open_dir_beneath(), creating missing parents 0755 and the last
 * component 0700: for private state directories such as /var/lib/nodetrust. */
int open_private_dir_beneath(int dirfd, const char *relpath, int *ret_fd);

/* Read the regular file name in dirfd (no symlink follow unless follow is
 * true) into a NUL-terminated buffer of at most max bytes (-EFBIG beyond). */
/* read_file_at() of a name readdir() just listed as a regular file
 * (DT_REG): that listing was the look before opening, one fstatat() less
 * per file. It races a swap exactly as the fstatat() would, and read_fd()
 * still refuses anything opened that is not a regular file; a name that
 * became a symlink is read as read_file_at(..., follow) reads it. */
int read_file_at_regular(int dirfd, const char *name, size_t max, char **ret, size_t *ret_size);

int read_file_at(int dirfd, const char *name, bool follow, size_t max, char **ret, size_t *ret_size);

/* Read the regular file open at fd, as read_file_at() does. */
int read_fd(int fd, size_t max, char **ret, size_t *ret_size);

/* Open the absolute path below rootfd as if rootfd were "/": symlinks are
 * followed but resolved inside rootfd (openat2 RESOLVE_IN_ROOT), so a host
 * file seen through --root resolves as the host resolves it and never
 * escapes. Where openat2 is missing, it fails closed: no symlink is
 * followed and ".." is refused (-EINVAL).
 * flags are open(2) flags; O_CLOEXEC and O_NOCTTY are added. */
int open_in_root(int rootfd, const char *path, int flags);

/* Like open_in_root(), read-only, for a regular file only: anything else is
 * refused without ever being opened for reading (-EISDIR, -EBADFD). */
int open_in_root_regular(int rootfd, const char *path);

/* Read the regular file at the host path below rootfd (open_in_root_regular())
 * as read_file_at() reads: at most max bytes, NUL-terminated. */
int read_file_in_root(int rootfd, const char *path, size_t max, char **ret, size_t *ret_size);

/* Replace name in dirfd atomically and durably: write a temp file in dirfd,
 * fchmod, fsync, rename over name, fsync dirfd. uid/gid (uid_t)-1 = keep. */
int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t size, mode_t mode,
                         uid_t uid, gid_t gid);

/* The same; with noreplace, -EEXIST instead of replacing a file that is
 * already there (renameat2 RENAME_NOREPLACE), so a file someone else made
 * since we looked is never clobbered. */
int write_file_atomic_full(int dirfd, const char *name, const void *data, size_t size, mode_t mode, uid_t uid,
                           gid_t gid, bool noreplace);

/* The parts of write_file_atomic_full(), for a caller that makes many
 * files durable at once (docs/durability.md): name the temp file, write
 * it (fsynced only with sync), rename it over. A temp name has room for
 * one directory entry; atomic_temp_random() is its random part. */
#define ATOMIC_TEMP_SIZE 256
uint64_t atomic_temp_random(void);
/* The temp name of name with random part rnd, as is_atomic_temp_name() knows it. */
int atomic_temp_name(const char *name, uint64_t rnd, char ret[static ATOMIC_TEMP_SIZE]);
/* Create tmp in dirfd (never an existing one) holding data, owned uid/gid
 * ((uid_t)-1 = keep), with mode; fsynced when sync. Nothing is left on failure. */
int atomic_temp_write_at(int dirfd, const char *tmp, const void *data, size_t size, mode_t mode, uid_t uid,
                         gid_t gid, bool sync);
/* Rename tmp over name in dirfd (noreplace: -EEXIST rather than replace one
 * that is there); tmp is removed on failure. Nothing is fsynced. */
int atomic_temp_commit_at(int dirfd, const char *tmp, const char *name, bool noreplace);

/* The distinct file systems a batch touched, one descriptor each, so that
 * one syncfs(2) per file system makes all of the batch durable. */
typedef struct SyncSet {
        struct {
                dev_t dev;
                int fd;
        } *fs;
        size_t n, n_allocated;
} SyncSet;
/* Note the file system fd is on (a duplicate of fd is kept, once per file system). */
int sync_set_add(SyncSet *s, int fd);
/* syncfs() every file system of s: 0, or the first error (all are tried). */
int sync_set_sync(const SyncSet *s);
/* Close and free what s holds; s is empty after. */
void sync_set_done(SyncSet *s);

/* Write the JSON document j as name in dirfd, as write_file_atomic_at()
 * does, dumped with json_dumps() flags: -ENOMEM rather than a text that
 * lacks part of j. */
typedef struct json_t json_t;
int write_json_atomic_at(int dirfd, const char *name, const json_t *j, size_t flags, mode_t mode);

/* Remove file name from dirfd (no error when it is already gone) and fsync dirfd. */
int unlink_file_at(int dirfd, const char *name);

/* true when the directory name in dirfd (one component, as
 * open_child_dir()) holds no entries besides . and .. */
int dir_is_empty_at(int dirfd, const char *name);

/* Whether name is one entry of a directory: not "", ".", ".." and no '/'. */
bool filename_is_plain(const char *name);

/* Open the directory name in dirfd, never following a symlink: name must
 * be one component (filename_is_plain(), else -EINVAL). fd or -errno. */
int open_child_dir(int dirfd, const char *name);

/* Whether entry is a temp file write_file_atomic_full() makes on the way
 * to name: ".#" name "." and 16 lowercase hex digits, exactly. */
bool is_atomic_temp_name(const char *entry, const char *name);

/* Remove the regular files in dirfd that are temp files of one of names
 * (a strv), left by a write that never finished (the writer was killed).
 * Nothing else is touched. The number removed, or -errno. */
int sweep_atomic_temp_files_at(int dirfd, char *const *names);

/* Join a and b with exactly one '/'; NULL on allocation failure. */
char *path_join(const char *a, const char *b);
