/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply.h"
#include "certgen.h"
#include "cleanup.h"
#include "fs.h"
#include "plan.h"
#include "trust.h"

#define STATE_DIR "var/lib/nodetrust"

typedef struct Fixture {
        char root[64];
        int rootfd;
        Manifest *manifest;
        char *ca1, *ca2;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);

        snprintf(f->root, sizeof f->root, "/tmp/nodetrust-test-plan.XXXXXX");
        assert_non_null(mkdtemp(f->root));
        f->rootfd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(f->rootfd >= 0);
        f->manifest = manifest_new();
        f->ca1 = certgen_pem("CA one");
        f->ca2 = certgen_pem("CA two");
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        char cmd[128];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->root);
        assert_int_equal(system(cmd), 0);
        close(f->rootfd);
        manifest_free(f->manifest);
        free(f->ca1);
        free(f->ca2);
        free(f);
        return 0;
}

/* Build a trust set from key/value pairs (NULL-terminated). */
static TrustSet *trust(const char *const *kv) {
        _cleanup_(snapshot_freep) Snapshot *s = snapshot_new();
        TrustSet *t = NULL;

        for (size_t i = 0; kv[i]; i += 2)
                assert_int_equal(snapshot_add_entry(s, kv[i], kv[i + 1], strlen(kv[i + 1])), 0);
        snapshot_sort(s);
        assert_int_equal(trust_set_from_snapshot(s, NULL, time(NULL), NULL, &t), 0);
        return t;
}

static Plan *plan(Fixture *f, const TrustSet *t, unsigned mask) {
        Plan *p = NULL;
        assert_int_equal(plan_compute(f->rootfd, t, f->manifest, mask, &p), 0);
        return p;
}

static void apply(Fixture *f, Plan *p) {
        assert_int_equal(apply_plan(f->rootfd, STATE_DIR, p, f->manifest), 0);
}

static const PlanAction *find(const Plan *p, const char *target, const char *registry) {
        for (size_t i = 0; i < p->n_actions; i++)
                if (streq(p->actions[i].target->name, target) && streq(p->actions[i].registry, registry))
                        return &p->actions[i];
        fail_msg("no action for %s %s", target, registry);
        return NULL;
}

static char *slurp(Fixture *f, const char *rel) {
        char *data = NULL;
        int r = read_file_at(f->rootfd, rel, false, 1 << 20, &data, NULL);
        return r < 0 ? NULL : data;
}

static void put(Fixture *f, const char *rel, const char *content) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", f->root, rel);
        FILE *fp = fopen(path, "we");
        assert_non_null(fp);
        fputs(content, fp);
        fclose(fp);
}

static mode_t mode_of(Fixture *f, const char *rel) {
        struct stat st;
        assert_int_equal(fstatat(f->rootfd, rel, &st, AT_SYMLINK_NOFOLLOW), 0);
        return st.st_mode & 07777;
}

static void test_create_then_noop(void **state) {
        Fixture *f = *state;
        const char *kv[] = { "reg.example.com..5000", f->ca1, NULL };
        _cleanup_(trust_set_freep) TrustSet *t = trust(kv);
        _cleanup_(plan_freep) Plan *p = plan(f, t, TARGET_ALL);
        _cleanup_free_ char *got = NULL;

        assert_int_equal(p->n_actions, 3);
        assert_int_equal(plan_count(p, ACTION_CREATE), 3);
        apply(f, p);
        for (size_t i = 0; i < p->n_actions; i++)
                assert_int_equal(p->actions[i].error, 0);

        got = slurp(f, "etc/containers/certs.d/reg.example.com:5000/ca.crt");
        assert_non_null(got);
        assert_string_equal(got, t->entries[0].bundle->pem);
        assert_int_equal(mode_of(f, "etc/docker/certs.d/reg.example.com:5000/ca.crt"), 0644);
        assert_int_equal(mode_of(f, "etc/docker/certs.d/reg.example.com:5000"), 0755);
        assert_int_equal(f->manifest->n_entries, 3);
        assert_true(manifest_find(f->manifest, "containerd", "reg.example.com:5000")->dir_created);

        /* The manifest survives a reload. */
        _cleanup_(manifest_freep) Manifest *m2 = NULL;
        assert_int_equal(manifest_load(f->rootfd, STATE_DIR, &m2), 0);
        assert_int_equal(m2->n_entries, 3);

        /* Same input again: nothing to do. */
        _cleanup_(plan_freep) Plan *p2 = plan(f, t, TARGET_ALL);
        assert_int_equal(plan_count(p2, ACTION_UNCHANGED), 3);
        assert_false(plan_changes(p2));
}

static void test_update_and_drift(void **state) {
        Fixture *f = *state;
        const char *kv1[] = { "reg.example.com", f->ca1, NULL };
        const char *kv2[] = { "reg.example.com", f->ca2, NULL };
        _cleanup_(trust_set_freep) TrustSet *t1 = trust(kv1), *t2 = trust(kv2);
        _cleanup_(plan_freep) Plan *p1 = plan(f, t1, TARGET_DOCKER);

        apply(f, p1);

        /* New CA: update. */
        _cleanup_(plan_freep) Plan *p2 = plan(f, t2, TARGET_DOCKER);
        assert_int_equal(find(p2, "docker", "reg.example.com")->type, ACTION_UPDATE);
        apply(f, p2);
        _cleanup_free_ char *got = slurp(f, "etc/docker/certs.d/reg.example.com/ca.crt");
        assert_string_equal(got, t2->entries[0].bundle->pem);

        /* Someone edits our file: update restores it. */
        put(f, "etc/docker/certs.d/reg.example.com/ca.crt", "tampered\n");
        _cleanup_(plan_freep) Plan *p3 = plan(f, t2, TARGET_DOCKER);
        assert_int_equal(find(p3, "docker", "reg.example.com")->type, ACTION_UPDATE);

        /* Someone deletes our file: update. Our directory: create, still ours. */
        assert_int_equal(unlinkat(f->rootfd, "etc/docker/certs.d/reg.example.com/ca.crt", 0), 0);
        _cleanup_(plan_freep) Plan *p4 = plan(f, t2, TARGET_DOCKER);
        assert_int_equal(find(p4, "docker", "reg.example.com")->type, ACTION_UPDATE);
        assert_int_equal(unlinkat(f->rootfd, "etc/docker/certs.d/reg.example.com", AT_REMOVEDIR), 0);
        _cleanup_(plan_freep) Plan *p5 = plan(f, t2, TARGET_DOCKER);
        assert_int_equal(find(p5, "docker", "reg.example.com")->type, ACTION_CREATE);
        apply(f, p5);
        assert_true(manifest_find(f->manifest, "docker", "reg.example.com")->dir_created);
}

static void test_prune_only_ours(void **state) {
        Fixture *f = *state;
        const char *kv[] = { "a.example.com", f->ca1, "b.example.com", f->ca1, NULL };
        const char *none[] = { NULL };
        _cleanup_(trust_set_freep) TrustSet *t = trust(kv), *empty = trust(none);
        _cleanup_(plan_freep) Plan *p = plan(f, t, TARGET_DOCKER);
        struct stat st;

        apply(f, p);
        /* An admin drops a client cert into our b directory, and places
         * their own directory beside ours. */
        put(f, "etc/docker/certs.d/b.example.com/client.cert", "admin\n");
        assert_int_equal(mkdirat(f->rootfd, "etc/docker/certs.d/admin.example.com", 0755), 0);
        put(f, "etc/docker/certs.d/admin.example.com/ca.crt", "admin ca\n");

        _cleanup_(plan_freep) Plan *p2 = plan(f, empty, TARGET_DOCKER);
        assert_int_equal(p2->n_actions, 2);
        assert_int_equal(plan_count(p2, ACTION_REMOVE), 2);
        apply(f, p2);

        assert_int_equal(fstatat(f->rootfd, "etc/docker/certs.d/a.example.com", &st, 0), -1);
        assert_int_equal(errno, ENOENT);
        /* Our ca.crt went, their file and so the directory stayed. */
        assert_int_equal(fstatat(f->rootfd, "etc/docker/certs.d/b.example.com/ca.crt", &st, 0), -1);
        _cleanup_free_ char *client = slurp(f, "etc/docker/certs.d/b.example.com/client.cert");
        assert_string_equal(client, "admin\n");
        _cleanup_free_ char *admin = slurp(f, "etc/docker/certs.d/admin.example.com/ca.crt");
        assert_string_equal(admin, "admin ca\n");
        assert_int_equal(f->manifest->n_entries, 0);
}

static void test_conflict_left_untouched(void **state) {
        Fixture *f = *state;
        const char *kv[] = { "admin.example.com", f->ca1, NULL };
        _cleanup_(trust_set_freep) TrustSet *t = trust(kv);

        int fd = -1;
        assert_int_equal(open_dir_beneath(f->rootfd, "etc/docker/certs.d/admin.example.com", 0755, &fd, NULL), 0);
        close(fd);
        put(f, "etc/docker/certs.d/admin.example.com/ca.crt", "admin ca\n");

        _cleanup_(plan_freep) Plan *p = plan(f, t, TARGET_DOCKER | TARGET_CONTAINERS);
        const PlanAction *a = find(p, "docker", "admin.example.com");
        assert_int_equal(a->type, ACTION_CONFLICT);
        assert_non_null(a->reason);
        /* The other target is still written. */
        assert_int_equal(find(p, "containers", "admin.example.com")->type, ACTION_CREATE);
        apply(f, p);
        _cleanup_free_ char *admin = slurp(f, "etc/docker/certs.d/admin.example.com/ca.crt");
        assert_string_equal(admin, "admin ca\n");
        assert_null(manifest_find(f->manifest, "docker", "admin.example.com"));

        /* Removing the key later must not touch the admin's entry either. */
        const char *none[] = { NULL };
        _cleanup_(trust_set_freep) TrustSet *empty = trust(none);
        _cleanup_(plan_freep) Plan *p2 = plan(f, empty, TARGET_DOCKER | TARGET_CONTAINERS);
        assert_int_equal(p2->n_actions, 1);
        assert_string_equal(p2->actions[0].target->name, "containers");
        apply(f, p2);
        _cleanup_free_ char *admin2 = slurp(f, "etc/docker/certs.d/admin.example.com/ca.crt");
        assert_string_equal(admin2, "admin ca\n");
}

static void test_symlinks_refused(void **state) {
        Fixture *f = *state;
        const char *kv[] = { "evil.example.com", f->ca1, NULL };
        _cleanup_(trust_set_freep) TrustSet *t = trust(kv);
        struct stat st;
        int fd = -1;

        /* A symlinked registry directory in docker, and a symlinked
         * certs.d in containers: neither may be written through. */
        assert_int_equal(open_dir_beneath(f->rootfd, "etc/docker/certs.d", 0755, &fd, NULL), 0);
        assert_int_equal(symlinkat("/tmp", fd, "evil.example.com"), 0);
        close(fd);
        assert_int_equal(open_dir_beneath(f->rootfd, "etc/containers", 0755, &fd, NULL), 0);
        assert_int_equal(mkdirat(f->rootfd, "elsewhere", 0755), 0);
        char target[128];
        snprintf(target, sizeof target, "%s/elsewhere", f->root);
        assert_int_equal(symlinkat(target, fd, "certs.d"), 0);
        close(fd);

        _cleanup_(plan_freep) Plan *p = plan(f, t, TARGET_DOCKER | TARGET_CONTAINERS);
        assert_int_equal(find(p, "docker", "evil.example.com")->type, ACTION_CONFLICT);
        assert_int_equal(find(p, "containers", "evil.example.com")->type, ACTION_CONFLICT);
        apply(f, p);
        assert_int_equal(fstatat(f->rootfd, "elsewhere/evil.example.com", &st, 0), -1);
        assert_int_equal(f->manifest->n_entries, 0);

        /* Even a forged manifest entry does not make apply follow it. */
        PlanAction forged = { .type = ACTION_UPDATE, .target = target_by_name("containers"),
                              .registry = (char *) "evil.example.com", .entry = &t->entries[0] };
        Plan fp = { .actions = &forged, .n_actions = 1 };
        assert_int_equal(apply_plan(f->rootfd, STATE_DIR, &fp, f->manifest), 1);
        assert_int_equal(forged.error, -ELOOP);
        assert_int_equal(fstatat(f->rootfd, "elsewhere/evil.example.com", &st, 0), -1);
}

static void test_refused_value_keeps_last_good(void **state) {
        Fixture *f = *state;
        const char *good[] = { "reg.example.com", f->ca1, NULL };
        const char *bad[] = { "reg.example.com", "garbage", NULL };
        _cleanup_(trust_set_freep) TrustSet *t1 = trust(good), *t2 = trust(bad);
        _cleanup_(plan_freep) Plan *p1 = plan(f, t1, TARGET_DOCKER);

        apply(f, p1);
        _cleanup_(plan_freep) Plan *p2 = plan(f, t2, TARGET_DOCKER);
        assert_int_equal(p2->n_actions, 1);
        assert_int_equal(p2->actions[0].type, ACTION_KEEP);
        apply(f, p2);
        _cleanup_free_ char *got = slurp(f, "etc/docker/certs.d/reg.example.com/ca.crt");
        assert_string_equal(got, t1->entries[0].bundle->pem);
}

static void test_disabled_target_pruned(void **state) {
        Fixture *f = *state;
        const char *kv[] = { "reg.example.com", f->ca1, NULL };
        _cleanup_(trust_set_freep) TrustSet *t = trust(kv);
        _cleanup_(plan_freep) Plan *p1 = plan(f, t, TARGET_ALL);

        apply(f, p1);
        _cleanup_(plan_freep) Plan *p2 = plan(f, t, TARGET_DOCKER);
        assert_int_equal(find(p2, "docker", "reg.example.com")->type, ACTION_UNCHANGED);
        assert_int_equal(find(p2, "containers", "reg.example.com")->type, ACTION_REMOVE);
        assert_int_equal(find(p2, "containerd", "reg.example.com")->type, ACTION_REMOVE);
}

/* A directory we failed to create is not ours: were it still in the
 * manifest, an admin's directory made there later would be overwritten,
 * and pruned once the key goes. */
static void test_failed_create_claims_nothing(void **state) {
        Fixture *f = *state;
        const char *kv[] = { "reg.example.com", f->ca1, NULL };
        _cleanup_(trust_set_freep) TrustSet *t = trust(kv);
        _cleanup_(plan_freep) Plan *p = plan(f, t, TARGET_DOCKER | TARGET_CONTAINERS);
        int fd = -1;

        /* After the plan, before apply: etc/docker becomes a file. */
        assert_int_equal(open_dir_beneath(f->rootfd, "etc", 0755, &fd, NULL), 0);
        close(fd);
        put(f, "etc/docker", "not a directory\n");
        assert_int_equal(apply_plan(f->rootfd, STATE_DIR, p, f->manifest), 1);
        assert_int_equal(find(p, "docker", "reg.example.com")->error, -ENOTDIR);
        assert_null(manifest_find(f->manifest, "docker", "reg.example.com"));
        assert_non_null(manifest_find(f->manifest, "containers", "reg.example.com"));
        _cleanup_(manifest_freep) Manifest *saved = NULL;
        assert_int_equal(manifest_load(f->rootfd, STATE_DIR, &saved), 0);
        assert_null(manifest_find(saved, "docker", "reg.example.com"));

        /* The admin makes the directory: theirs, left alone. */
        assert_int_equal(unlinkat(f->rootfd, "etc/docker", 0), 0);
        assert_int_equal(open_dir_beneath(f->rootfd, "etc/docker/certs.d/reg.example.com", 0755, &fd, NULL), 0);
        close(fd);
        put(f, "etc/docker/certs.d/reg.example.com/ca.crt", "admin ca\n");
        _cleanup_(plan_freep) Plan *p2 = plan(f, t, TARGET_DOCKER | TARGET_CONTAINERS);
        assert_int_equal(find(p2, "docker", "reg.example.com")->type, ACTION_CONFLICT);
}

/* The same when the intents cannot be recorded at all: nothing was
 * created, so nothing may be claimed, in memory either. */
static void test_unsaved_intents_claim_nothing(void **state) {
        Fixture *f = *state;
        const char *kv[] = { "reg.example.com", f->ca1, NULL };
        _cleanup_(trust_set_freep) TrustSet *t = trust(kv);
        _cleanup_(plan_freep) Plan *p = plan(f, t, TARGET_DOCKER);
        int fd = -1;

        assert_int_equal(open_dir_beneath(f->rootfd, "var/lib", 0755, &fd, NULL), 0);
        close(fd);
        put(f, STATE_DIR, "not a directory\n");
        assert_true(apply_plan(f->rootfd, STATE_DIR, p, f->manifest) < 0);
        assert_int_equal(f->manifest->n_entries, 0);

        assert_int_equal(open_dir_beneath(f->rootfd, "etc/docker/certs.d/reg.example.com", 0755, &fd, NULL), 0);
        close(fd);
        _cleanup_(plan_freep) Plan *p2 = plan(f, t, TARGET_DOCKER);
        assert_int_equal(find(p2, "docker", "reg.example.com")->type, ACTION_CONFLICT);
}

/* Our directory replaced by a symlink or a file is no longer ours: the
 * prune leaves it alone and forgets it, instead of failing every sync. */
static void test_prune_of_replaced_dir_forgets_it(void **state) {
        Fixture *f = *state;
        const char *kv[] = { "a.example.com", f->ca1, "b.example.com", f->ca1, NULL };
        const char *none[] = { NULL };
        _cleanup_(trust_set_freep) TrustSet *t = trust(kv), *empty = trust(none);
        _cleanup_(plan_freep) Plan *p = plan(f, t, TARGET_DOCKER);
        struct stat st;

        apply(f, p);
        assert_int_equal(unlinkat(f->rootfd, "etc/docker/certs.d/a.example.com/ca.crt", 0), 0);
        assert_int_equal(unlinkat(f->rootfd, "etc/docker/certs.d/a.example.com", AT_REMOVEDIR), 0);
        assert_int_equal(mkdirat(f->rootfd, "shared", 0755), 0);
        put(f, "shared/ca.crt", "admin ca\n");
        char target[128];
        snprintf(target, sizeof target, "%s/shared", f->root);
        assert_int_equal(symlinkat(target, f->rootfd, "etc/docker/certs.d/a.example.com"), 0);
        assert_int_equal(unlinkat(f->rootfd, "etc/docker/certs.d/b.example.com/ca.crt", 0), 0);
        assert_int_equal(unlinkat(f->rootfd, "etc/docker/certs.d/b.example.com", AT_REMOVEDIR), 0);
        put(f, "etc/docker/certs.d/b.example.com", "a file\n");

        _cleanup_(plan_freep) Plan *p2 = plan(f, empty, TARGET_DOCKER);
        assert_int_equal(plan_count(p2, ACTION_REMOVE), 2);
        apply(f, p2);
        for (size_t i = 0; i < p2->n_actions; i++)
                assert_int_equal(p2->actions[i].error, 0);
        assert_int_equal(f->manifest->n_entries, 0);
        _cleanup_free_ char *admin = slurp(f, "shared/ca.crt");
        assert_string_equal(admin, "admin ca\n");
        assert_int_equal(fstatat(f->rootfd, "etc/docker/certs.d/a.example.com", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISLNK(st.st_mode));
        _cleanup_free_ char *file = slurp(f, "etc/docker/certs.d/b.example.com");
        assert_string_equal(file, "a file\n");
}

static void test_targets_parse(void **state) {
        unsigned mask = 0;
        const char *bad = NULL;

        (void) state;
        assert_int_equal(targets_parse("docker,containerd", &mask, &bad), 0);
        assert_int_equal(mask, TARGET_DOCKER | TARGET_CONTAINERD);
        assert_int_equal(targets_parse("docker,cri-o", &mask, &bad), -EINVAL);
        assert_string_equal(bad, "cri-o");
        assert_int_equal(targets_parse("", &mask, &bad), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_create_then_noop, setup, teardown),
                cmocka_unit_test_setup_teardown(test_update_and_drift, setup, teardown),
                cmocka_unit_test_setup_teardown(test_prune_only_ours, setup, teardown),
                cmocka_unit_test_setup_teardown(test_conflict_left_untouched, setup, teardown),
                cmocka_unit_test_setup_teardown(test_symlinks_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refused_value_keeps_last_good, setup, teardown),
                cmocka_unit_test_setup_teardown(test_disabled_target_pruned, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failed_create_claims_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unsaved_intents_claim_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_prune_of_replaced_dir_forgets_it, setup, teardown),
                cmocka_unit_test(test_targets_parse),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
