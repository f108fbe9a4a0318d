/* SPDX-License-Identifier: MIT */
/*
 * The physical-limit reference for bench/run.py: writes the files nodetrustd
 * writes for a trust source (ROOT/etc/<target>/certs.d/<host:port>/ca.crt
 * for every key, all three targets, then a manifest), with the same crash
 * guarantee (every file old or new after a crash: a temp file in the same
 * directory, made durable, renamed over, the rename made durable; the
 * manifest last and durable), and nothing else: no parsing, no hashing, no
 * logging. Two orders:
 *
 *   A  per file: write the temp, fsync, rename, fsync the directory
 *      (what write_file_atomic_at() does for each file today);
 *   B  write every temp, one syncfs(), rename every temp, one syncfs()
 *      (durability batched for the whole plan).
 *
 * New registry directories are made durable with the certs.d directory's
 * fsync (A, only when one was made) or the syncfs (B); the manifest is
 * written after everything, per-file durable, in both.
 *
 *   physical-limit A|B SOURCE ROOT [REPEAT]
 *
 * SOURCE is a plain or kubelet-layout directory (dot entries skipped,
 * symlinks followed), key `host..port` -> directory `host:port`. REPEAT
 * rewrites the same files again (directories then exist) and prints one
 * line per round:
 *
 *   RESULT physical variant=A files=12000 bytes=7200000 files_seconds=1.200 seconds=1.234
 *
 * files_seconds ends when the last ca.crt is durable, seconds after the
 * manifest too.
 *
 * Exit 0, or 1 with the failing call named on stderr.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const targets[] = { "docker", "containers", "containerd" };
#define N_TARGETS 3

typedef struct Key {
        char *host;
        char *data;
        size_t size;
} Key;

static void die(const char *fmt, ...) {
        va_list ap;
        int e = errno;

        va_start(ap, fmt);
        fputs("physical-limit: ", stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, ": %s\n", strerror(e));
        exit(1);
}

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static char *read_all(int dirfd, const char *name, size_t *size) {
        int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
        struct stat st;
        char *buf;
        size_t got = 0;

        if (fd < 0 || fstat(fd, &st) < 0)
                die("open %s", name);
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                die("malloc");
        while (got < (size_t) st.st_size) {
                ssize_t n = read(fd, buf + got, (size_t) st.st_size - got);
                if (n <= 0)
                        die("read %s", name);
                got += (size_t) n;
        }
        close(fd);
        *size = got;
        return buf;
}

static Key *read_source(const char *path, size_t *n_keys) {
        int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d;
        struct dirent *de;
        Key *keys = NULL;
        size_t n = 0, cap = 0;

        if (dfd < 0 || !(d = fdopendir(dfd)))
                die("open %s", path);
        while ((errno = 0, de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                if (n == cap) {
                        cap = cap ? cap * 2 : 256;
                        keys = realloc(keys, cap * sizeof *keys);
                        if (!keys)
                                die("realloc");
                }
                Key *k = &keys[n++];
                k->host = strdup(de->d_name);
                if (!k->host)
                        die("strdup");
                char *sep = strstr(k->host, "..");
                for (char *s = sep; s; s = strstr(s + 1, ".."))
                        sep = s; /* the last ".." is the port's */
                if (sep)
                        memmove(sep, ":", 1), memmove(sep + 1, sep + 2, strlen(sep + 2) + 1);
                k->data = read_all(dfd, de->d_name, &k->size);
        }
        if (errno)
                die("readdir %s", path);
        closedir(d);
        *n_keys = n;
        return keys;
}

static int dirs_created; /* since the last certs.d fsync */

static int mkdir_open(int parent, const char *name) {
        if (mkdirat(parent, name, 0755) == 0)
                dirs_created++;
        else if (errno != EEXIST)
                die("mkdir %s", name);
        int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                die("open %s", name);
        return fd;
}

static void write_temp(int dirfd, const char *tmp, const void *data, size_t size, int do_fsync) {
        int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        size_t off = 0;

        if (fd < 0)
                die("create %s", tmp);
        while (off < size) {
                ssize_t w = write(fd, (const char *) data + off, size - off);
                if (w < 0)
                        die("write %s", tmp);
                off += (size_t) w;
        }
        if (fchmod(fd, 0644) < 0)
                die("fchmod %s", tmp);
        if (do_fsync && fsync(fd) < 0)
                die("fsync %s", tmp);
        close(fd);
}

/* One durable atomic write, variant A's unit (and the manifest's in both). */
static void write_durable(int dirfd, const char *name, const void *data, size_t size) {
        char tmp[512];

        snprintf(tmp, sizeof tmp, ".#%s.ref", name);
        write_temp(dirfd, tmp, data, size, 1);
        if (renameat(dirfd, tmp, dirfd, name) < 0)
                die("rename %s", name);
        if (fsync(dirfd) < 0)
                die("fsync directory of %s", name);
}

static int *open_bases(int rootfd) {
        static int bases[N_TARGETS];

        for (size_t t = 0; t < N_TARGETS; t++) {
                int etc = mkdir_open(rootfd, "etc");
                int tdir = mkdir_open(etc, targets[t]);
                bases[t] = mkdir_open(tdir, "certs.d");
                close(tdir);
                close(etc);
        }
        return bases;
}

static double files_done;

static void write_manifest(int rootfd, const Key *keys, size_t n) {
        files_done = now();
        int var = mkdir_open(rootfd, "var"), lib = mkdir_open(var, "lib"), st = mkdir_open(lib, "bench-ref");
        size_t cap = 64 + n * N_TARGETS * 160, len = 0;
        char *buf = malloc(cap);

        if (!buf)
                die("malloc");
        len += (size_t) snprintf(buf + len, cap - len, "{\"version\":1,\"entries\":[");
        for (size_t t = 0; t < N_TARGETS; t++)
                for (size_t i = 0; i < n; i++)
                        len += (size_t) snprintf(buf + len, cap - len,
                                                 "%s{\"target\":\"%s\",\"registry\":\"%s\",\"size\":%zu}",
                                                 t || i ? "," : "", targets[t], keys[i].host, keys[i].size);
        len += (size_t) snprintf(buf + len, cap - len, "]}\n");
        write_durable(st, "manifest.json", buf, len);
        free(buf);
        close(st);
        close(lib);
        close(var);
}

static void variant_a(int rootfd, const Key *keys, size_t n) {
        int *bases = open_bases(rootfd);

        for (size_t t = 0; t < N_TARGETS; t++) {
                for (size_t i = 0; i < n; i++) {
                        int dfd = mkdir_open(bases[t], keys[i].host);
                        write_durable(dfd, "ca.crt", keys[i].data, keys[i].size);
                        close(dfd);
                }
                /* The new registry directories' entries (none when only
                 * files were replaced). */
                if (dirs_created && fsync(bases[t]) < 0)
                        die("fsync certs.d");
                dirs_created = 0;
        }
        write_manifest(rootfd, keys, n);
        for (size_t t = 0; t < N_TARGETS; t++)
                close(bases[t]);
}

static void variant_b(int rootfd, const Key *keys, size_t n) {
        int *bases = open_bases(rootfd);
        char from[600], to[600];

        for (size_t t = 0; t < N_TARGETS; t++)
                for (size_t i = 0; i < n; i++) {
                        int dfd = mkdir_open(bases[t], keys[i].host);
                        write_temp(dfd, ".#ca.crt.ref", keys[i].data, keys[i].size, 0);
                        close(dfd);
                }
        if (syncfs(rootfd) < 0)
                die("syncfs");
        for (size_t t = 0; t < N_TARGETS; t++)
                for (size_t i = 0; i < n; i++) {
                        snprintf(from, sizeof from, "%s/.#ca.crt.ref", keys[i].host);
                        snprintf(to, sizeof to, "%s/ca.crt", keys[i].host);
                        if (renameat(bases[t], from, bases[t], to) < 0)
                                die("rename %s", to);
                }
        if (syncfs(rootfd) < 0)
                die("syncfs");
        write_manifest(rootfd, keys, n);
        for (size_t t = 0; t < N_TARGETS; t++)
                close(bases[t]);
}

int main(int argc, char **argv) {
        if (argc < 4 || argc > 5 || (strcmp(argv[1], "A") && strcmp(argv[1], "B"))) {
                fprintf(stderr, "usage: %s A|B SOURCE ROOT [REPEAT]\n", argv[0]);
                return 2;
        }
        size_t n, bytes = 0;
        Key *keys = read_source(argv[2], &n);
        int repeat = argc == 5 ? atoi(argv[4]) : 1;
        int rootfd = open(argv[3], O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (rootfd < 0)
                die("open %s", argv[3]);
        for (size_t i = 0; i < n; i++)
                bytes += keys[i].size * N_TARGETS;
        for (int r = 0; r < repeat; r++) {
                double t0 = now();
                if (argv[1][0] == 'A')
                        variant_a(rootfd, keys, n);
                else
                        variant_b(rootfd, keys, n);
                double t1 = now();
                printf("RESULT physical variant=%s files=%zu bytes=%zu files_seconds=%.6f seconds=%.6f\n", argv[1],
                       n * N_TARGETS, bytes, files_done - t0, t1 - t0);
                fflush(stdout);
        }
        return 0;
}
