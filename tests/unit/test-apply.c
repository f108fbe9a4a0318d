/* SPDX-License-Identifier: MIT */
/*
 * apply_plan()'s batched durability (agent/apply-write.h, docs/durability.md):
 * a plan that writes many files writes every temp file, syncs the file
 * system once, renames every ca.crt, syncs, renames every hosts.toml,
 * syncs, and saves the manifest last; a file that fails on the way fails
 * its action alone, with its errno, and leaves the old file whole.
 *
 * fsync(), syncfs() and renameat2() are defined here, over the system
 * calls, so the test sees the order of what apply does (the static
 * objects under test bind to these definitions) and can fail one call.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "apply-write.h"
#include "apply.h"
#include "certgen.h"
#include "cleanup.h"
#include "containerd-hosts.h"
#include "fs.h"
#include "plan.h"
#include "trust.h"

#define STATE_DIR "var/lib/nodetrust"
#define N_REGISTRIES 20 /* 20 x (3 ca.crt + 1 hosts.toml) = 80 files: a batch */

/* What apply did, one letter per call: F fsync, S syncfs, and for a
 * rename the file it put in place: C ca.crt, H hosts.toml, M manifest. */
static char events[4096];
static size_t n_events;
static int syncfs_errors; /* this many syncfs() calls fail with EIO */
static const char *fsync_fail; /* an fsync of a file whose path holds this fails with EIO */

static void event(char c) {
        if (n_events + 1 < sizeof events)
                events[n_events++] = c;
        events[n_events] = 0;
}

int fsync(int fd) {
        char link[64], path[4096];
        ssize_t n;

        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        n = readlink(link, path, sizeof path - 1);
        path[n > 0 ? n : 0] = 0;
        event('F');
        if (fsync_fail && strstr(path, fsync_fail)) {
                errno = EIO;
                return -1;
        }
        return (int) syscall(SYS_fsync, fd);
}

int syncfs(int fd) {
        event('S');
        if (syncfs_errors > 0) {
                syncfs_errors--;
                errno = EIO;
                return -1;
        }
        return (int) syscall(SYS_syncfs, fd);
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
        event(streq(newpath, CA_FILE) ? 'C' : streq(newpath, HOSTS_FILE) ? 'H' : streq(newpath, MANIFEST_FILE) ? 'M' : '?');
        return (int) syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
}

typedef struct Fixture {
        char root[64];
        int rootfd;
        Manifest *manifest;
        char *ca1, *ca2;
        char immutable[256]; /* a directory made immutable, to clear at the end */
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);

        snprintf(f->root, sizeof f->root, "/tmp/nodetrust-test-apply.XXXXXX");
        assert_non_null(mkdtemp(f->root));
        f->rootfd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(f->rootfd >= 0);
        f->manifest = manifest_new();
        f->ca1 = certgen_pem("CA one");
        f->ca2 = certgen_pem("CA two");
        n_events = 0;
        events[0] = 0;
        syncfs_errors = 0;
        fsync_fail = NULL;
        *state = f;
        return 0;
}

static int set_immutable(const char *path, bool on) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int flags;

        if (fd < 0 || ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0)
                return -errno;
        flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
        return ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0 ? -errno : 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        char cmd[128];

        if (f->immutable[0])
                (void) set_immutable(f->immutable, false);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->root);
        assert_int_equal(system(cmd), 0);
        close(f->rootfd);
        manifest_free(f->manifest);
        free(f->ca1);
        free(f->ca2);
        free(f);
        return 0;
}

static const char *reg(size_t i) {
        static char name[N_REGISTRIES][64];
        snprintf(name[i], sizeof name[i], "registry-%02zu.example.com:5000", i);
        return name[i];
}

/* Every registry with pem; n registries of them. */
static Plan *plan_all(Fixture *f, const char *pem, size_t n, TrustSet **ret_t) {
        _cleanup_(snapshot_freep) Snapshot *s = snapshot_new();
        Plan *p = NULL;

        for (size_t i = 0; i < n; i++) {
                char key[64];
                snprintf(key, sizeof key, "registry-%02zu.example.com..5000", i);
                assert_int_equal(snapshot_add_entry(s, key, pem, strlen(pem)), 0);
        }
        snapshot_sort(s);
        assert_int_equal(trust_set_from_snapshot(s, NULL, time(NULL), NULL, ret_t), 0);
        assert_int_equal(plan_compute(f->rootfd, *ret_t,
                                      f->manifest,
                                      &(PlanOptions){ .target_mask = TARGET_DOCKER | TARGET_CONTAINERS |
                                                                     TARGET_CONTAINERD,
                                                      .containerd_hosts_toml = true },
                                      &p),
                         0);
        return p;
}

static char *slurp(Fixture *f, const char *target_dir, const char *registry, const char *file) {
        char rel[512], *data = NULL;
        snprintf(rel, sizeof rel, "%s/%s/%s", target_dir, registry, file);
        return read_file_at(f->rootfd, rel, false, 1 << 20, &data, NULL) < 0 ? NULL : data;
}

/* Temp files anywhere below the root: there must be none after apply. */
static int n_temp_files(Fixture *f) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "test -z \"$(find '%s' -name '.#*')\"", f->root);
        return system(cmd) == 0 ? 0 : 1;
}

static const PlanAction *action(const Plan *p, const char *target, const char *registry, const char *file) {
        for (size_t i = 0; i < p->n_actions; i++)
                if (streq(p->actions[i].target->name, target) && streq(p->actions[i].registry, registry) &&
                    streq(p->actions[i].file, file))
                        return &p->actions[i];
        fail_msg("no action for %s %s %s", target, registry, file);
        return NULL;
}

/* A first apply of 20 registries is one batch: the intents saved, every
 * temp written with no fsync, one syncfs, the 60 ca.crt renamed, one
 * syncfs, the 20 hosts.toml renamed, one syncfs, the manifest saved. */
static void test_batch_order(void **state) {
        Fixture *f = *state;
        _cleanup_(trust_set_freep) TrustSet *t = NULL;
        _cleanup_(plan_freep) Plan *p = plan_all(f, f->ca1, N_REGISTRIES, &t);
        char want[256], *w = want;

        n_events = 0;
        assert_int_equal(apply_plan(f->rootfd, STATE_DIR, p, f->manifest), 0);

        w += sprintf(w, "FMF" "S");
        for (size_t i = 0; i < 3 * N_REGISTRIES; i++)
                *w++ = 'C';
        *w++ = 'S';
        for (size_t i = 0; i < N_REGISTRIES; i++)
                *w++ = 'H';
        strcpy(w, "S" "FMF");
        assert_string_equal(events, want);

        for (size_t i = 0; i < N_REGISTRIES; i++) {
                for (size_t tg = 0; tg < N_TARGETS; tg++) {
                        _cleanup_free_ char *ca = slurp(f, targets[tg].dir, reg(i), CA_FILE);
                        assert_non_null(ca);
                        assert_string_equal(ca, f->ca1);
                        ManifestEntry *me = manifest_find(f->manifest, targets[tg].name, reg(i));
                        assert_non_null(me);
                        assert_string_equal(me->sha256, action(p, targets[tg].name, reg(i), CA_FILE)->entry->fingerprint);
                }
                _cleanup_free_ char *hosts = slurp(f, "etc/containerd/certs.d", reg(i), HOSTS_FILE);
                assert_non_null(hosts);
                assert_string_equal(manifest_find(f->manifest, "containerd", reg(i))->hosts_sha256,
                                    action(p, "containerd", reg(i), HOSTS_FILE)->content_sha);
        }
        assert_int_equal(n_temp_files(f), 0);
}

/* A plan of one registry uses no syncfs (it would wait for everything
 * anyone left dirty on the file system): each temp is fsynced as it is
 * written, then every ca.crt renamed, each of their directories fsynced,
 * then the hosts.toml; no directory fsync between two ca.crt renames. */
static void test_small_plan_not_batched(void **state) {
        Fixture *f = *state;
        _cleanup_(trust_set_freep) TrustSet *t = NULL;
        _cleanup_(plan_freep) Plan *p = plan_all(f, f->ca1, 1, &t);

        n_events = 0;
        assert_int_equal(apply_plan(f->rootfd, STATE_DIR, p, f->manifest), 0);
        assert_string_equal(events, "FMF" "FFFF" "CCC" "FFF" "H" "F" "FMF");
}

/* Every registry gets CA two over CA one, and one registry directory of
 * the batch is immutable: only its write fails (EPERM), its ca.crt keeps
 * CA one whole, the manifest keeps CA one's hash for it, every other file
 * is CA two, and no temp file is left. */
static void test_batch_one_write_fails(void **state) {
        Fixture *f = *state;
        _cleanup_(trust_set_freep) TrustSet *t1 = NULL, *t2 = NULL;
        _cleanup_(plan_freep) Plan *p1 = plan_all(f, f->ca1, N_REGISTRIES, &t1);
        _cleanup_(plan_freep) Plan *p2 = NULL;
        char old_sha[65];
        int r;

        assert_int_equal(apply_plan(f->rootfd, STATE_DIR, p1, f->manifest), 0);
        memcpy(old_sha, manifest_find(f->manifest, "containers", reg(7))->sha256, sizeof old_sha);
        p2 = plan_all(f, f->ca2, N_REGISTRIES, &t2);

        snprintf(f->immutable, sizeof f->immutable, "%s/etc/containers/certs.d/%s", f->root, reg(7));
        r = set_immutable(f->immutable, true);
        if (r < 0) {
                f->immutable[0] = 0;
                print_message("cannot make a directory immutable here (%s): skipped\n", strerror(-r));
                skip();
        }
        assert_int_equal(apply_plan(f->rootfd, STATE_DIR, p2, f->manifest), 1);

        for (size_t i = 0; i < p2->n_actions; i++) {
                const PlanAction *a = &p2->actions[i];
                bool broken = streq(a->target->name, "containers") && streq(a->registry, reg(7));
                assert_int_equal(a->error, broken ? -EPERM : 0);
        }
        for (size_t i = 0; i < N_REGISTRIES; i++)
                for (size_t tg = 0; tg < N_TARGETS; tg++) {
                        bool broken = tg == 1 && i == 7;
                        _cleanup_free_ char *ca = slurp(f, targets[tg].dir, reg(i), CA_FILE);
                        assert_non_null(ca);
                        assert_string_equal(ca, broken ? f->ca1 : f->ca2);
                        ManifestEntry *me = manifest_find(f->manifest, targets[tg].name, reg(i));
                        assert_string_equal(me->sha256, broken ? old_sha
                                                               : action(p2, targets[tg].name, reg(i), CA_FILE)->entry->fingerprint);
                }
        assert_int_equal(n_temp_files(f), 0);
}

/* The first syncfs reports an error (an I/O error somewhere on the file
 * system), and one temp file of ours is the one that cannot be written
 * out: each temp is fsynced to find it, only that action fails (EIO, and
 * the hosts.toml that would name it with it), nothing of it is renamed,
 * and every other file is in place. */
static void test_batch_sync_error_names_the_file(void **state) {
        Fixture *f = *state;
        _cleanup_(trust_set_freep) TrustSet *t = NULL;
        _cleanup_(plan_freep) Plan *p = plan_all(f, f->ca1, N_REGISTRIES, &t);
        char needle[128];

        snprintf(needle, sizeof needle, "containerd/certs.d/%s/.#" CA_FILE ".", reg(3));
        fsync_fail = needle;
        syncfs_errors = 1;
        assert_int_equal(apply_plan(f->rootfd, STATE_DIR, p, f->manifest), 1);
        assert_non_null(strchr(events, 'S'));

        for (size_t i = 0; i < p->n_actions; i++) {
                const PlanAction *a = &p->actions[i];
                bool broken = streq(a->target->name, "containerd") && streq(a->registry, reg(3));
                assert_int_equal(a->error, broken ? -EIO : 0);
        }
        for (size_t i = 0; i < N_REGISTRIES; i++)
                for (size_t tg = 0; tg < N_TARGETS; tg++) {
                        _cleanup_free_ char *ca = slurp(f, targets[tg].dir, reg(i), CA_FILE);
                        if (tg == 2 && i == 3)
                                assert_null(ca);
                        else
                                assert_string_equal(ca, f->ca1);
                }
        _cleanup_free_ char *hosts = slurp(f, "etc/containerd/certs.d", reg(3), HOSTS_FILE);
        assert_null(hosts);
        /* Not recorded as written: only the intent for its directory. */
        assert_string_equal(manifest_find(f->manifest, "containerd", reg(3))->sha256, "");
        assert_int_equal(n_temp_files(f), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_batch_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_small_plan_not_batched, setup, teardown),
                cmocka_unit_test_setup_teardown(test_batch_one_write_fails, setup, teardown),
                cmocka_unit_test_setup_teardown(test_batch_sync_error_names_the_file, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
