/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply.h"
#include "cleanup.h"
#include "fs.h"
#include "manifest.h"
#include "plan.h"
#include "trust.h"

#define STATE_DIR "var/lib/nodetrust"

typedef struct Fixture {
        char root[64];
        int rootfd;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);

        snprintf(f->root, sizeof f->root, "/tmp/nodetrust-test-manifest.XXXXXX");
        assert_non_null(mkdtemp(f->root));
        f->rootfd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(f->rootfd >= 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        char cmd[128];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->root);
        assert_int_equal(system(cmd), 0);
        close(f->rootfd);
        free(f);
        return 0;
}

/* What jansson writes for the manifest's tree (as manifest_save did
 * before it wrote the text itself). */
static char *jansson_text(const Manifest *m) {
        json_auto_t *j = json_object(), *entries = json_array();
        json_object_set_new(j, "version", json_integer(1));
        json_object_set(j, "entries", entries);
        for (size_t i = 0; i < m->n_entries; i++) {
                const ManifestEntry *e = &m->entries[i];
                json_t *o = json_pack("{s:s, s:s, s:s, s:b}", "target", e->target, "registry", e->registry,
                                      "sha256", e->sha256, "dir_created", e->dir_created);
                assert_non_null(o);
                if (e->hosts_sha256[0])
                        json_object_set_new(o, "hosts_toml_sha256", json_string(e->hosts_sha256));
                json_array_append_new(entries, o);
        }
        /* manifest_render sorts by target, then registry. */
        size_t n = json_array_size(entries);
        for (size_t a = 0; a < n; a++)
                for (size_t b = a + 1; b < n; b++) {
                        json_t *x = json_array_get(entries, a), *y = json_array_get(entries, b);
                        int c = strcmp(json_string_value(json_object_get(x, "target")),
                                       json_string_value(json_object_get(y, "target")));
                        if (c == 0)
                                c = strcmp(json_string_value(json_object_get(x, "registry")),
                                           json_string_value(json_object_get(y, "registry")));
                        if (c > 0) {
                                json_incref(x);
                                json_incref(y);
                                json_array_set_new(entries, a, y);
                                json_array_set_new(entries, b, x);
                        }
                }
        return json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
}

/* manifest_render() writes the text itself, byte for byte what jansson
 * wrote (a manifest of the last version reads and compares the same),
 * names with quotes, backslashes and control bytes escaped as JSON says;
 * and what it writes loads back to the same entries. */
static void test_render_is_jansson_text(void **state) {
        Fixture *f = *state;
        _cleanup_(manifest_freep) Manifest *m = manifest_new(), *empty = manifest_new(), *back = NULL;
        const char sha[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

        for (int k = 0; k < 2; k++) {
                const Manifest *x = k == 0 ? empty : m;
                _cleanup_free_ char *want = jansson_text(x), *got = NULL;
                size_t size;

                assert_int_equal(manifest_render(x, &got, &size), 0);
                assert_int_equal(size, strlen(got));
                assert_string_equal(got, want);
                if (k == 1)
                        break;
                assert_int_equal(manifest_put(m, "docker", "a.example", sha, true), 0);
                assert_int_equal(manifest_put(m, "containers", "b.example:5000", "", false), 0);
                assert_int_equal(manifest_put(m, "containerd", "c.example", sha, true), 0);
                memcpy(manifest_find(m, "containerd", "c.example")->hosts_sha256, sha, sizeof sha);
                assert_int_equal(manifest_put(m, "docker", "q\"uo\\te\n\t\x01\x7f", "", false), 0);
        }
        /* The one with bytes no name may hold is dropped on load, by design. */
        manifest_remove(m, "docker", "q\"uo\\te\n\t\x01\x7f");
        assert_int_equal(manifest_save(f->rootfd, STATE_DIR, m), 0);
        assert_int_equal(manifest_load(f->rootfd, STATE_DIR, &back), 0);
        assert_int_equal(back->n_entries, 3);
        for (size_t i = 0; i < m->n_entries; i++) {
                const ManifestEntry *e = &m->entries[i], *b = manifest_find(back, e->target, e->registry);
                assert_non_null(b);
                assert_string_equal(b->sha256, e->sha256);
                assert_string_equal(b->hosts_sha256, e->hosts_sha256);
                assert_int_equal(b->dir_created, e->dir_created);
        }
}

/* The index finds every entry after any mix of puts and removals (a
 * removal moves the last entry into the hole), and a prune of 3 x 4,096
 * entries is linear: it was a memmove per removal. */
static void test_index(void **state) {
        _cleanup_(manifest_freep) Manifest *m = manifest_new();
        const char *tg[] = { "docker", "containers", "containerd" };
        enum { N = 4096 };
        char reg[64];

        (void) state;
        for (int i = 0; i < N; i++)
                for (size_t t = 0; t < ELEMENTSOF(tg); t++) {
                        snprintf(reg, sizeof reg, "r%d.example:%d", i, 1 + i % 7);
                        assert_int_equal(manifest_put(m, tg[t], reg, "", t == 0), 0);
                }
        assert_int_equal(m->n_entries, 3 * N);
        for (int i = 0; i < N; i += 3)
                for (size_t t = 0; t < ELEMENTSOF(tg); t++) {
                        snprintf(reg, sizeof reg, "r%d.example:%d", i, 1 + i % 7);
                        manifest_remove(m, tg[t], reg);
                        manifest_remove(m, tg[t], reg); /* gone already: nothing */
                }
        for (int i = 0; i < N; i++)
                for (size_t t = 0; t < ELEMENTSOF(tg); t++) {
                        ManifestEntry *e;
                        snprintf(reg, sizeof reg, "r%d.example:%d", i, 1 + i % 7);
                        e = manifest_find(m, tg[t], reg);
                        if (i % 3 == 0)
                                assert_null(e);
                        else {
                                assert_non_null(e);
                                assert_string_equal(e->registry, reg);
                                assert_string_equal(e->target, tg[t]);
                                assert_true(e->dir_created == (t == 0));
                        }
                }
        assert_null(manifest_find(m, "docker", "r1.example:1"));
        for (size_t i = m->n_entries; i > 0; i--)
                manifest_remove(m, m->entries[i - 1].target, m->entries[i - 1].registry);
        assert_int_equal(m->n_entries, 0);
        assert_null(manifest_find(m, "docker", "r1.example:2"));
}

/* Saved sorted by (target, registry), whatever the order in memory. */
static void test_saved_sorted(void **state) {
        Fixture *f = *state;
        _cleanup_(manifest_freep) Manifest *m = manifest_new(), *back = NULL;
        const char *regs[] = { "m.example", "a.example", "z.example:5000", "b.example" };

        for (size_t i = 0; i < ELEMENTSOF(regs); i++) {
                assert_int_equal(manifest_put(m, "docker", regs[i], "", true), 0);
                assert_int_equal(manifest_put(m, "containerd", regs[i], "", false), 0);
        }
        manifest_remove(m, "docker", "a.example");
        assert_int_equal(manifest_save(f->rootfd, STATE_DIR, m), 0);
        assert_int_equal(manifest_load(f->rootfd, STATE_DIR, &back), 0);
        assert_int_equal(back->n_entries, 7);
        for (size_t i = 1; i < back->n_entries; i++) {
                int c = strcmp(back->entries[i - 1].target, back->entries[i].target);
                assert_true(c < 0 || (c == 0 && strcmp(back->entries[i - 1].registry, back->entries[i].registry) < 0));
        }
        assert_null(manifest_find(back, "docker", "a.example"));
        assert_non_null(manifest_find(back, "containerd", "a.example"));
}

static void test_registry_problem(void **state) {
        const char *bad[] = { "", ".", "..", "a/b", "../x", "/abs", "a\nb", "a b", "host:05000", "host:70000",
                              "host:", "a..b", "-a.example", "a_b", "h:1:2", "\xff" };
        const char *good[] = { "a.example", "a.example:5000", "127.0.0.1:5443", "localhost", "A-1.example" };
        int error;

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_non_null(manifest_registry_problem(bad[i], &error));
                assert_int_equal(error, 0);
        }
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                assert_null(manifest_registry_problem(good[i], &error));
                assert_int_equal(error, 0);
        }
}

static void test_temp_names(void **state) {
        (void) state;
        assert_true(is_atomic_temp_name(".#ca.crt.0123456789abcdef", "ca.crt"));
        assert_false(is_atomic_temp_name(".#ca.crt.0123456789ABCDEF", "ca.crt"));
        assert_false(is_atomic_temp_name(".#ca.crt.0123456789abcde", "ca.crt"));
        assert_false(is_atomic_temp_name(".#ca.crt.0123456789abcdef0", "ca.crt"));
        assert_false(is_atomic_temp_name(".#ca.crt.0123456789abcdef", "hosts.toml"));
        assert_false(is_atomic_temp_name("#ca.crt.0123456789abcdef", "ca.crt"));
        assert_false(is_atomic_temp_name(".#ca.crtX0123456789abcdef", "ca.crt"));
        assert_false(is_atomic_temp_name(".#ca.crt.", "ca.crt"));

        assert_true(filename_is_plain("a.example:5000"));
        assert_false(filename_is_plain(""));
        assert_false(filename_is_plain("."));
        assert_false(filename_is_plain(".."));
        assert_false(filename_is_plain("a/b"));
        assert_int_equal(open_child_dir(AT_FDCWD, ".."), -EINVAL);
        assert_int_equal(open_child_dir(AT_FDCWD, "tmp/x"), -EINVAL);
}

/* What write_file_atomic_at() leaves when killed is what the sweep takes. */
static void test_sweep_matches_the_writer(void **state) {
        Fixture *f = *state;
        char *names[] = { (char *) "ca.crt", NULL };
        char tmp[] = ".#ca.crt.00000000000000ff";
        int fd;

        assert_int_equal(write_file_atomic_at(f->rootfd, "ca.crt", "x", 1, 0644, (uid_t) -1, (gid_t) -1), 0);
        fd = openat(f->rootfd, tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
        assert_true(fd >= 0);
        close(fd);
        fd = openat(f->rootfd, "ca.crt.keep", O_WRONLY | O_CREAT | O_EXCL, 0600);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(sweep_atomic_temp_files_at(f->rootfd, names), 1);
        assert_int_equal(faccessat(f->rootfd, tmp, F_OK, 0), -1);
        assert_int_equal(faccessat(f->rootfd, "ca.crt", F_OK, 0), 0);
        assert_int_equal(faccessat(f->rootfd, "ca.crt.keep", F_OK, 0), 0);
        assert_int_equal(sweep_atomic_temp_files_at(f->rootfd, names), 0);
}

/* A name that is not one path component reached the manifest without the
 * loader's checks (in memory): the prune it plans still cannot leave the
 * target directory. It walked "../../../victim" and removed victim/ca.crt
 * and the directory. */
static void test_prune_stays_beneath(void **state) {
        Fixture *f = *state;
        _cleanup_(manifest_freep) Manifest *m = manifest_new();
        _cleanup_(plan_freep) Plan *p = NULL;
        TrustSet empty = {};
        PlanOptions o = { .target_mask = TARGET_DOCKER };
        const char *bad[] = { "../../../victim", "a/b", ".", ".." };
        int fd, r;

        assert_int_equal(open_dir_beneath(f->rootfd, "etc/docker/certs.d/a/b", 0755, &fd, NULL), 0);
        assert_int_equal(write_file_atomic_at(fd, "ca.crt", "nested", 6, 0644, (uid_t) -1, (gid_t) -1), 0);
        close(fd);
        assert_int_equal(open_dir_beneath(f->rootfd, "victim", 0755, &fd, NULL), 0);
        assert_int_equal(write_file_atomic_at(fd, "ca.crt", "victim", 6, 0644, (uid_t) -1, (gid_t) -1), 0);
        close(fd);
        assert_int_equal(open_dir_beneath(f->rootfd, "etc/docker", 0, &fd, NULL), 0);
        assert_int_equal(write_file_atomic_at(fd, "ca.crt", "parent", 6, 0644, (uid_t) -1, (gid_t) -1), 0);
        close(fd);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(manifest_put(m, "docker", bad[i], "", true), 0);

        assert_int_equal(plan_compute(f->rootfd, &empty, m, &o, &p), 0);
        assert_int_equal(plan_count(p, ACTION_REMOVE), ELEMENTSOF(bad));
        r = apply_plan(f->rootfd, STATE_DIR, p, m);
        assert_int_equal(faccessat(f->rootfd, "victim/ca.crt", F_OK, 0), 0);
        assert_int_equal(faccessat(f->rootfd, "etc/docker/certs.d/a/b/ca.crt", F_OK, 0), 0);
        assert_int_equal(faccessat(f->rootfd, "etc/docker/ca.crt", F_OK, 0), 0);
        assert_int_equal(faccessat(f->rootfd, "etc/docker/certs.d", F_OK, 0), 0);
        assert_int_equal(r, 0);
        assert_int_equal(m->n_entries, 0);
}


/* A daemon's manifest: a save that changes only content hashes waits for
 * manifest_flush(); one that changes what is ours (an entry, dir_created,
 * a hosts.toml now written or not) goes at once; without defer_hashes
 * (--once) every save goes. */
static void test_hash_only_saves_wait_for_flush(void **state) {
        Fixture *f = *state;
        _cleanup_(manifest_freep) Manifest *m = manifest_new();
        const char a[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        const char b[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

        assert_int_equal(manifest_put(m, "docker", "a.example", a, true), 0);
        m->defer_hashes = true;
        assert_int_equal(manifest_save_changes(f->rootfd, STATE_DIR, m), 0); /* a new entry */
        assert_false(m->hashes_unsaved);
        _cleanup_free_ char *first = NULL, *second = NULL, *third = NULL, *fourth = NULL;
        assert_int_equal(read_file_at(f->rootfd, STATE_DIR "/" MANIFEST_FILE, false, 1 << 20, &first, NULL), 0);
        assert_non_null(strstr(first, a));

        assert_int_equal(manifest_put(m, "docker", "a.example", b, true), 0);
        assert_int_equal(manifest_save_changes(f->rootfd, STATE_DIR, m), 0);
        assert_true(m->hashes_unsaved);
        assert_int_equal(read_file_at(f->rootfd, STATE_DIR "/" MANIFEST_FILE, false, 1 << 20, &second, NULL), 0);
        assert_string_equal(second, first); /* not written */

        /* A hosts.toml is ours now: that is ownership, saved at once. */
        memcpy(manifest_find(m, "docker", "a.example")->hosts_sha256, a, sizeof a);
        assert_int_equal(manifest_save_changes(f->rootfd, STATE_DIR, m), 0);
        assert_false(m->hashes_unsaved);
        assert_int_equal(read_file_at(f->rootfd, STATE_DIR "/" MANIFEST_FILE, false, 1 << 20, &third, NULL), 0);
        assert_non_null(strstr(third, b));

        memcpy(manifest_find(m, "docker", "a.example")->hosts_sha256, b, sizeof b);
        assert_int_equal(manifest_save_changes(f->rootfd, STATE_DIR, m), 0);
        assert_true(m->hashes_unsaved);
        assert_int_equal(manifest_flush(f->rootfd, STATE_DIR, m), 0);
        assert_false(m->hashes_unsaved);
        assert_int_equal(read_file_at(f->rootfd, STATE_DIR "/" MANIFEST_FILE, false, 1 << 20, &fourth, NULL), 0);
        assert_null(strstr(fourth, a));

        /* Without defer_hashes, a hash alone is saved too. */
        _cleanup_free_ char *fifth = NULL;
        m->defer_hashes = false;
        assert_int_equal(manifest_put(m, "docker", "a.example", a, true), 0);
        assert_int_equal(manifest_save_changes(f->rootfd, STATE_DIR, m), 0);
        assert_int_equal(read_file_at(f->rootfd, STATE_DIR "/" MANIFEST_FILE, false, 1 << 20, &fifth, NULL), 0);
        assert_non_null(strstr(fifth, a));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_hash_only_saves_wait_for_flush, setup, teardown),
                cmocka_unit_test_setup_teardown(test_render_is_jansson_text, setup, teardown),
                cmocka_unit_test(test_index),
                cmocka_unit_test_setup_teardown(test_saved_sorted, setup, teardown),
                cmocka_unit_test(test_registry_problem),
                cmocka_unit_test(test_temp_names),
                cmocka_unit_test_setup_teardown(test_sweep_matches_the_writer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_prune_stays_beneath, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
