/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "source-dir.h"

static char vol[64];
static unsigned generation;
static bool swap_on_open;

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        fputs(text, f);
        assert_int_equal(fclose(f), 0);
}

/* What the kubelet's AtomicWriter does: a new timestamped directory, a
 * "..data_tmp" symlink renamed over "..data", the old directory deleted. */
static void kubelet_write(const char *const *keys) {
        char dir[128], path[256], old[128] = "", cmd[300];
        ssize_t n;

        n = readlink(strcat(strcpy(path, vol), "/..data"), old, sizeof old - 1);
        old[n > 0 ? n : 0] = 0;
        snprintf(dir, sizeof dir, "..2026_11_21_16_00_00.%u", ++generation);
        snprintf(path, sizeof path, "%s/%s", vol, dir);
        assert_int_equal(mkdir(path, 0755), 0);
        for (size_t i = 0; keys[i]; i++) {
                snprintf(path, sizeof path, "%s/%s/%s", vol, dir, keys[i]);
                write_file(path, "value");
                snprintf(path, sizeof path, "%s/%s", vol, keys[i]);
                char target[128];
                snprintf(target, sizeof target, "..data/%s", keys[i]);
                (void) symlink(target, path);
        }
        snprintf(path, sizeof path, "%s/..data_tmp", vol);
        assert_int_equal(symlink(dir, path), 0);
        char data[128];
        snprintf(data, sizeof data, "%s/..data", vol);
        assert_int_equal(rename(path, data), 0);
        if (*old) {
                snprintf(cmd, sizeof cmd, "rm -rf '%s/%s'", vol, old);
                assert_int_equal(system(cmd), 0);
        }
}

static const char *const keys[] = { "a.example.com", "b.example.com", NULL };

/* source-dir.c lists a volume with fdopendir(): a swap that lands right
 * after it opened "..data" is this one, made deterministic. */
DIR *fdopendir(int fd) {
        static DIR *(*real)(int);

        if (!real)
                real = (DIR * (*) (int)) dlsym(RTLD_NEXT, "fdopendir");
        if (swap_on_open) {
                swap_on_open = false;
                kubelet_write(keys);
        }
        return real(fd);
}

static int setup(void **state) {
        (void) state;
        snprintf(vol, sizeof vol, "/tmp/nodetrust-test-source-dir.XXXXXX");
        assert_non_null(mkdtemp(vol));
        generation = 0;
        kubelet_write(keys);
        return 0;
}

static int teardown(void **state) {
        char cmd[128];

        (void) state;
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", vol);
        assert_int_equal(system(cmd), 0);
        return 0;
}

static void test_reads_kubelet_volume(void **state) {
        _cleanup_(source_freep) Source *s = NULL;
        _cleanup_(snapshot_freep) Snapshot *snap = NULL;

        (void) state;
        assert_int_equal(source_dir_new(vol, NULL, &s), 0);
        assert_int_equal(source_read(s, &snap), 0);
        assert_true(snap->have_trust);
        assert_int_equal(snap->n_entries, 2);
}

static void test_swap_during_read_is_not_a_partial_snapshot(void **state) {
        _cleanup_(source_freep) Source *s = NULL;
        _cleanup_(snapshot_freep) Snapshot *snap = NULL;

        (void) state;
        assert_int_equal(source_dir_new(vol, NULL, &s), 0);
        /* The generation we opened is deleted before we list it: reading
         * it would give an empty trust map, and every registry pruned. */
        swap_on_open = true;
        assert_int_equal(source_read(s, &snap), 0);
        assert_false(swap_on_open);
        assert_int_equal(snap->n_entries, 2);
        assert_string_equal(snap->entries[0].key, "a.example.com");
        assert_string_equal(snap->entries[1].key, "b.example.com");
}

static void test_plain_directory(void **state) {
        _cleanup_(source_freep) Source *s = NULL;
        _cleanup_(snapshot_freep) Snapshot *snap = NULL;
        char dir[128], path[192];

        (void) state;
        snprintf(dir, sizeof dir, "%s/plain", vol);
        assert_int_equal(mkdir(dir, 0755), 0);
        snprintf(path, sizeof path, "%s/c.example.com", dir);
        write_file(path, "value");
        assert_int_equal(source_dir_new(dir, NULL, &s), 0);
        assert_int_equal(source_read(s, &snap), 0);
        assert_int_equal(snap->n_entries, 1);
}

static const SnapshotEntry *entry(const Snapshot *snap, const char *key) {
        for (size_t i = 0; i < snap->n_entries; i++)
                if (strcmp(snap->entries[i].key, key) == 0)
                        return &snap->entries[i];
        fail_msg("no entry '%s'", key);
        return NULL;
}

/* Anything but a regular file is one refused key with its reason; the
 * others still read. A FIFO was skipped without a word, a value over the
 * size limit failed the whole read (nothing applied). */
static void test_special_files_are_refused_keys(void **state) {
        _cleanup_(source_freep) Source *s = NULL;
        _cleanup_(snapshot_freep) Snapshot *snap = NULL;
        char dir[128], path[192];
        int fd;

        (void) state;
        snprintf(dir, sizeof dir, "%s/plain", vol);
        assert_int_equal(mkdir(dir, 0755), 0);
        snprintf(path, sizeof path, "%s/good.example.com", dir);
        write_file(path, "value");
        snprintf(path, sizeof path, "%s/fifo.example.com", dir);
        assert_int_equal(mkfifo(path, 0644), 0);
        snprintf(path, sizeof path, "%s/null.example.com", dir);
        assert_int_equal(symlink("/dev/null", path), 0);
        snprintf(path, sizeof path, "%s/dangling.example.com", dir);
        assert_int_equal(symlink("nowhere", path), 0);
        snprintf(path, sizeof path, "%s/sub.example.com", dir);
        assert_int_equal(mkdir(path, 0755), 0);
        snprintf(path, sizeof path, "%s/big.example.com", dir);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, 1024 * 1024 + 1), 0);
        close(fd);
        snprintf(path, sizeof path, "%s/link.example.com", dir);
        assert_int_equal(symlink("good.example.com", path), 0);

        assert_int_equal(source_dir_new(dir, NULL, &s), 0);
        assert_int_equal(source_read(s, &snap), 0);
        assert_int_equal(snap->n_entries, 7);
        assert_null(entry(snap, "good.example.com")->error);
        assert_string_equal((const char *) entry(snap, "good.example.com")->value, "value");
        /* A symlink to a regular file is read, as the kubelet's keys are. */
        assert_null(entry(snap, "link.example.com")->error);
        assert_string_equal((const char *) entry(snap, "link.example.com")->value, "value");
        assert_string_equal(entry(snap, "fifo.example.com")->error, "is a FIFO, not a regular file");
        assert_string_equal(entry(snap, "null.example.com")->error, "is a character device, not a regular file");
        assert_string_equal(entry(snap, "dangling.example.com")->error,
                            "is a symbolic link to a file that does not exist");
        assert_string_equal(entry(snap, "sub.example.com")->error, "is a directory, not a regular file");
        assert_string_equal(entry(snap, "big.example.com")->error, "larger than 1 MiB, the limit for a value");
        assert_int_equal(entry(snap, "big.example.com")->size, 0);
}

/* A pull secret that is a FIFO is an invalid secret; the trust map still
 * reads (it failed the whole source read). */
static void test_pull_secret_fifo(void **state) {
        _cleanup_(source_freep) Source *s = NULL;
        _cleanup_(snapshot_freep) Snapshot *snap = NULL;
        char path[192];

        (void) state;
        snprintf(path, sizeof path, "%s/secret", vol);
        assert_int_equal(mkfifo(path, 0600), 0);
        assert_int_equal(source_dir_new(vol, path, &s), 0);
        assert_int_equal(source_read(s, &snap), 0);
        assert_int_equal(snap->n_entries, 2);
        assert_true(snap->have_pull_secret);
        assert_string_equal(snap->pull_secret_error, "is a FIFO, not a regular file");
}

/* Over the key limit, the first SNAPSHOT_ENTRIES_MAX by name are read and
 * every other is refused naming the limit (it failed the whole read with
 * "Argument list too long"). */
static void test_over_key_limit(void **state) {
        _cleanup_(source_freep) Source *s = NULL;
        _cleanup_(snapshot_freep) Snapshot *snap = NULL;
        char dir[128], path[192];
        size_t n = SNAPSHOT_ENTRIES_MAX + 3;

        (void) state;
        snprintf(dir, sizeof dir, "%s/many", vol);
        assert_int_equal(mkdir(dir, 0755), 0);
        for (size_t i = 0; i < n; i++) {
                snprintf(path, sizeof path, "%s/r%05zu.example.com", dir, i);
                int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                assert_true(fd >= 0);
                assert_int_equal(write(fd, "v", 1), 1);
                close(fd);
        }
        assert_int_equal(source_dir_new(dir, NULL, &s), 0);
        assert_int_equal(source_read(s, &snap), 0);
        assert_int_equal(snap->n_entries, n);
        for (size_t i = 0; i < n; i++) {
                const SnapshotEntry *e = &snap->entries[i];
                snprintf(path, sizeof path, "r%05zu.example.com", i);
                assert_string_equal(e->key, path);
                if (i < SNAPSHOT_ENTRIES_MAX) {
                        assert_null(e->error);
                        assert_int_equal(e->size, 1);
                } else
                        assert_string_equal(e->error,
                                            "beyond the agent's limit of 4096 keys per map (the map has 4099)");
        }
}

typedef struct Calls {
        unsigned changes, health;
} Calls;

static void count_change(void *userdata) {
        ((Calls *) userdata)->changes++;
}

static void count_health(void *userdata) {
        ((Calls *) userdata)->health++;
}

/* Run the loop until *counter reaches want (or 5 s pass), then a little
 * longer so that a call that should not come would. */
static void run_until(sd_event *e, const unsigned *counter, unsigned want) {
        for (int i = 0; i < 50 && *counter < want; i++)
                assert_true(sd_event_run(e, 100 * 1000) >= 0);
        for (int i = 0; i < 3; i++)
                assert_true(sd_event_run(e, 20 * 1000) >= 0);
}

static void test_health_pushed_when_trust_dir_goes_and_comes(void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(source_freep) Source *s = NULL;
        const char *reason = NULL;
        char dir[128], path[192], cmd[160];
        Calls calls = {};

        (void) state;
        snprintf(dir, sizeof dir, "%s/cm", vol);
        assert_int_equal(mkdir(dir, 0755), 0);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(source_dir_new(dir, NULL, &s), 0);
        s->on_change = count_change;
        s->on_health_change = count_health;
        s->userdata = &calls;
        assert_int_equal(source_start(s, e), 0);
        assert_true(source_healthy(s, &reason));

        /* New content is a change, not a health change. */
        snprintf(path, sizeof path, "%s/c.example.com", dir);
        write_file(path, "value");
        run_until(e, &calls.changes, 1);
        assert_true(calls.changes >= 1);
        assert_int_equal(calls.health, 0);

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
        run_until(e, &calls.health, 1);
        assert_int_equal(calls.health, 1);
        assert_false(source_healthy(s, &reason));
        assert_string_equal(reason, "the trust source directory does not exist");

        /* While it is missing its parent is watched: another name there
         * is not news about the trust directory. */
        calls.changes = 0;
        snprintf(path, sizeof path, "%s/unrelated", vol);
        write_file(path, "x");
        run_until(e, &calls.changes, 1);
        assert_true(calls.changes >= 1);
        assert_int_equal(calls.health, 1);

        assert_int_equal(mkdir(dir, 0755), 0);
        run_until(e, &calls.health, 2);
        assert_int_equal(calls.health, 2);
        assert_true(source_healthy(s, &reason));
}

/* A trust source that is a symlink: removing or replacing the link leaves
 * the directory it pointed at alone, so only its parent sees it. */
static void test_health_pushed_when_trust_link_goes(void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(source_freep) Source *s = NULL;
        const char *reason = NULL;
        char real[128], link[128], other[128];
        Calls calls = {};

        (void) state;
        snprintf(real, sizeof real, "%s/real", vol);
        snprintf(link, sizeof link, "%s/link", vol);
        assert_int_equal(mkdir(real, 0755), 0);
        assert_int_equal(symlink("real", link), 0);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(source_dir_new(link, NULL, &s), 0);
        s->on_change = count_change;
        s->on_health_change = count_health;
        s->userdata = &calls;
        assert_int_equal(source_start(s, e), 0);
        assert_true(source_healthy(s, &reason));

        assert_int_equal(unlink(link), 0);
        run_until(e, &calls.health, 1);
        assert_int_equal(calls.health, 1);
        assert_false(source_healthy(s, &reason));

        /* Another name in the same parent is not news. */
        snprintf(other, sizeof other, "%s/other", vol);
        write_file(other, "x");
        for (int i = 0; i < 5; i++)
                assert_true(sd_event_run(e, 20 * 1000) >= 0);
        assert_int_equal(calls.health, 1);

        assert_int_equal(symlink("real", link), 0);
        run_until(e, &calls.health, 2);
        assert_int_equal(calls.health, 2);
        assert_true(source_healthy(s, &reason));
        assert_int_equal(unlink(other), 0);
        assert_int_equal(unlink(link), 0);
        assert_int_equal(rmdir(real), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_reads_kubelet_volume, setup, teardown),
                cmocka_unit_test_setup_teardown(test_swap_during_read_is_not_a_partial_snapshot, setup, teardown),
                cmocka_unit_test_setup_teardown(test_plain_directory, setup, teardown),
                cmocka_unit_test_setup_teardown(test_special_files_are_refused_keys, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pull_secret_fifo, setup, teardown),
                cmocka_unit_test_setup_teardown(test_over_key_limit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_health_pushed_when_trust_dir_goes_and_comes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_health_pushed_when_trust_link_goes, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
