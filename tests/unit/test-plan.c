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
#include "containerd-hosts.h"
#include "fs.h"
#include "openat2.h"
#include "plan.h"
#include "state.h"
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

static Plan *plan_with(Fixture *f, const TrustSet *t, const PlanOptions *o) {
        Plan *p = NULL;
        assert_int_equal(plan_compute(f->rootfd, t, f->manifest, o, &p), 0);
        return p;
}

/* The ca.crt tests: containerd's hosts.toml has its own tests below. */
static Plan *plan(Fixture *f, const TrustSet *t, unsigned mask) {
        return plan_with(f, t, &(PlanOptions){ .target_mask = mask });
}

static Plan *plan_hosts(Fixture *f, const TrustSet *t, bool hosts_toml) {
        return plan_with(f, t, &(PlanOptions){ .target_mask = TARGET_CONTAINERD, .containerd_hosts_toml = hosts_toml });
}

static void apply(Fixture *f, Plan *p) {
        assert_int_equal(apply_plan(f->rootfd, STATE_DIR, p, f->manifest), 0);
}

static const PlanAction *find_file(const Plan *p, const char *target, const char *registry, const char *file) {
        for (size_t i = 0; i < p->n_actions; i++)
                if (streq(p->actions[i].target->name, target) && streq(p->actions[i].registry, registry) &&
                    streq(p->actions[i].file, file))
                        return &p->actions[i];
        fail_msg("no action for %s %s %s", target, registry, file);
        return NULL;
}

static const PlanAction *find(const Plan *p, const char *target, const char *registry) {
        return find_file(p, target, registry, CA_FILE);
}

static const PlanAction *find_hosts(const Plan *p, const char *registry) {
        return find_file(p, "containerd", registry, HOSTS_FILE);
}

static bool has_file(const Plan *p, const char *registry, const char *file) {
        for (size_t i = 0; i < p->n_actions; i++)
                if (streq(p->actions[i].registry, registry) && streq(p->actions[i].file, file))
                        return true;
        return false;
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
        PlanAction forged = { .type = ACTION_UPDATE, .target = target_by_name("containers"), .file = CA_FILE,
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


#define REG_DIR "etc/containerd/certs.d/reg.example.com:5000"

/* Ours: written after ca.crt, recorded, kept current, repaired, removed
 * before ca.crt with the key. */
static void test_hosts_toml_lifecycle(void **state) {
        Fixture *f = *state;
        const char *kv[] = { "reg.example.com..5000", f->ca1, NULL };
        const char *none[] = { NULL };
        _cleanup_(trust_set_freep) TrustSet *t = trust(kv), *empty = trust(none);
        _cleanup_(plan_freep) Plan *p1 = plan_hosts(f, t, true);
        struct stat st;

        assert_int_equal(p1->n_actions, 2);
        assert_string_equal(p1->actions[0].file, CA_FILE);
        assert_int_equal(p1->actions[1].type, ACTION_CREATE);
        assert_string_equal(p1->actions[1].file, HOSTS_FILE);
        assert_null(p1->actions[0].shadowed);
        apply(f, p1);
        _cleanup_free_ char *h = slurp(f, REG_DIR "/hosts.toml");
        assert_non_null(h);
        assert_true(containerd_hosts_is_ours(h, strlen(h)));
        assert_non_null(strstr(h, "\nserver = \"https://reg.example.com:5000\"\n"));
        assert_non_null(strstr(h, "\n[host.\"https://reg.example.com:5000\"]\n"));
        assert_non_null(strstr(h, "  ca = \"ca.crt\"\n"));
        assert_int_equal(mode_of(f, REG_DIR "/hosts.toml"), 0644);
        assert_string_equal(manifest_find(f->manifest, "containerd", "reg.example.com:5000")->hosts_sha256,
                            p1->actions[1].content_sha);
        /* The manifest on disk says so too. */
        _cleanup_(manifest_freep) Manifest *saved = NULL;
        assert_int_equal(manifest_load(f->rootfd, STATE_DIR, &saved), 0);
        assert_string_equal(manifest_find(saved, "containerd", "reg.example.com:5000")->hosts_sha256,
                            p1->actions[1].content_sha);

        _cleanup_(plan_freep) Plan *p2 = plan_hosts(f, t, true);
        assert_false(plan_changes(p2));
        assert_int_equal(find_hosts(p2, "reg.example.com:5000")->type, ACTION_UNCHANGED);

        /* Deleted: drift, rewritten. Edited with our first line kept: ours, rewritten. */
        assert_int_equal(unlinkat(f->rootfd, REG_DIR "/hosts.toml", 0), 0);
        _cleanup_(plan_freep) Plan *p3 = plan_hosts(f, t, true);
        assert_int_equal(find_hosts(p3, "reg.example.com:5000")->type, ACTION_UPDATE);
        apply(f, p3);
        put(f, REG_DIR "/hosts.toml", HOSTS_MARKER "\nserver = \"http://evil\"\n");
        _cleanup_(plan_freep) Plan *p4 = plan_hosts(f, t, true);
        assert_int_equal(find_hosts(p4, "reg.example.com:5000")->type, ACTION_UPDATE);
        apply(f, p4);
        _cleanup_free_ char *h2 = slurp(f, REG_DIR "/hosts.toml");
        assert_string_equal(h2, h);

        /* The key goes: hosts.toml first, then ca.crt, then the directory. */
        _cleanup_(plan_freep) Plan *p5 = plan_hosts(f, empty, true);
        assert_int_equal(p5->n_actions, 2);
        assert_string_equal(p5->actions[0].file, HOSTS_FILE);
        assert_int_equal(p5->actions[0].type, ACTION_REMOVE);
        assert_string_equal(p5->actions[1].file, CA_FILE);
        apply(f, p5);
        assert_int_equal(fstatat(f->rootfd, REG_DIR, &st, AT_SYMLINK_NOFOLLOW), -1);
        assert_int_equal(errno, ENOENT);
        assert_int_equal(f->manifest->n_entries, 0);
}

static const char admin_mirror[] = "server = \"https://reg.example.com:5000\"\n"
                                   "[host.\"https://mirror.example.com\"]\n"
                                   "  capabilities = [\"pull\"]\n";
static const char admin_with_ca[] = "server = \"https://reg.example.com:5000\"\n"
                                    "[host.\"https://reg.example.com:5000\"]\n"
                                    "  ca = [\"other.crt\", \"ca.crt\"]\n";

/* Someone else's hosts.toml in our directory: never rewritten or removed;
 * shadowed unless it names our ca.crt. */
static void test_hosts_toml_admin(void **state) {
        Fixture *f = *state;
        const char *kv[] = { "reg.example.com..5000", f->ca1, NULL };
        const char *none[] = { NULL };
        _cleanup_(trust_set_freep) TrustSet *t = trust(kv), *empty = trust(none);
        _cleanup_(plan_freep) Plan *p1 = plan_hosts(f, t, true);

        apply(f, p1);
        put(f, REG_DIR "/hosts.toml", admin_mirror);
        _cleanup_(plan_freep) Plan *p2 = plan_hosts(f, t, true);
        assert_int_equal(find_hosts(p2, "reg.example.com:5000")->type, ACTION_CONFLICT);
        assert_non_null(find(p2, "containerd", "reg.example.com:5000")->shadowed);
        assert_non_null(strstr(find(p2, "containerd", "reg.example.com:5000")->shadowed, "no ca entry naming ca.crt"));
        apply(f, p2);
        _cleanup_free_ char *got = slurp(f, REG_DIR "/hosts.toml");
        assert_string_equal(got, admin_mirror);

        /* The state says shadowed, for containerd and for the registry. */
        State s = {};
        RuntimeStatus rs = { .targets = { [2] = { .enabled = true, .state = TARGET_STATE_ACTIVE } } };
        state_set_runtime(&s, &rs);
        assert_int_equal(state_set_registries(&s, t, p2), 0);
        assert_int_equal(s.registries[0].state, REGISTRY_SHADOWED);
        assert_int_equal(s.registries[0].targets[2].state, REGISTRY_TARGET_SHADOWED);
        assert_int_equal(s.n_shadowed, 1);
        assert_int_equal(s.n_applied, 0);
        assert_true(s.registries[0].changed);
        assert_true(strncmp(s.registries[0].reason, "containerd: ", 12) == 0);

        /* With a ca entry naming ca.crt: applied, still not rewritten. */
        put(f, REG_DIR "/hosts.toml", admin_with_ca);
        _cleanup_(plan_freep) Plan *p3 = plan_hosts(f, t, true);
        assert_int_equal(find_hosts(p3, "reg.example.com:5000")->type, ACTION_CONFLICT);
        assert_null(find(p3, "containerd", "reg.example.com:5000")->shadowed);
        assert_false(plan_changes(p3));
        assert_int_equal(state_set_registries(&s, t, p3), 0);
        assert_int_equal(s.registries[0].state, REGISTRY_APPLIED);
        assert_int_equal(s.registries[0].targets[2].state, REGISTRY_TARGET_APPLIED);
        /* Applied through their file, which is still said to be theirs. */
        assert_non_null(s.registries[0].targets[2].reason);
        assert_non_null(strstr(s.registries[0].targets[2].reason, "not written by nodetrustd"));
        assert_true(s.registries[0].changed);
        assert_int_equal(state_set_registries(&s, t, p3), 0);
        assert_false(s.registries[0].changed);

        /* The same, but containerd will not read certs.d at all. */
        RuntimeStatus off = { .targets = { [2] = { .enabled = true, .state = TARGET_STATE_INACTIVE,
                                                   .reason = strdup("config_path is not set") } } };
        state_set_runtime(&s, &off);
        assert_int_equal(state_set_registries(&s, t, p2), 0);
        assert_int_equal(s.registries[0].targets[2].state, REGISTRY_TARGET_INACTIVE);
        assert_string_equal(s.registries[0].targets[2].reason, "config_path is not set");
        assert_int_equal(s.registries[0].state, REGISTRY_APPLIED);
        assert_int_equal(s.n_inactive_targets, 1);
        state_done(&s);

        /* The key goes while their hosts.toml names our ca.crt: removing
         * it would break them, so it stays, theirs now, and we forget it. */
        _cleanup_(plan_freep) Plan *p4 = plan_hosts(f, empty, true);
        assert_int_equal(find(p4, "containerd", "reg.example.com:5000")->type, ACTION_DISOWN);
        assert_false(has_file(p4, "reg.example.com:5000", HOSTS_FILE));
        apply(f, p4);
        _cleanup_free_ char *kept = slurp(f, REG_DIR "/hosts.toml"), *ca = slurp(f, REG_DIR "/ca.crt");
        assert_string_equal(kept, admin_with_ca);
        assert_non_null(ca);
        assert_int_equal(f->manifest->n_entries, 0);
}

/* The key goes under an admin's hosts.toml that does not name ca.crt:
 * our ca.crt goes, their file and so the directory stay. */
static void test_hosts_toml_admin_prune(void **state) {
        Fixture *f = *state;
        const char *kv[] = { "reg.example.com..5000", f->ca1, NULL };
        const char *none[] = { NULL };
        _cleanup_(trust_set_freep) TrustSet *t = trust(kv), *empty = trust(none);
        _cleanup_(plan_freep) Plan *p1 = plan_hosts(f, t, true);

        apply(f, p1);
        /* As if a crash lost the manifest's record of our hosts.toml: its
         * removal is planned all the same, judged by the file, and first. */
        manifest_find(f->manifest, "containerd", "reg.example.com:5000")->hosts_sha256[0] = 0;
        _cleanup_(plan_freep) Plan *p0 = plan_hosts(f, empty, true);
        assert_int_equal(p0->n_actions, 2);
        assert_int_equal(find_hosts(p0, "reg.example.com:5000")->type, ACTION_REMOVE);
        assert_string_equal(p0->actions[0].file, HOSTS_FILE);

        /* Someone else's that does not name ca.crt: only our ca.crt goes. */
        put(f, REG_DIR "/hosts.toml", admin_mirror);
        _cleanup_(plan_freep) Plan *p2 = plan_hosts(f, empty, true);
        assert_false(has_file(p2, "reg.example.com:5000", HOSTS_FILE));
        assert_int_equal(find(p2, "containerd", "reg.example.com:5000")->type, ACTION_REMOVE);
        apply(f, p2);
        _cleanup_free_ char *kept = slurp(f, REG_DIR "/hosts.toml"), *ca = slurp(f, REG_DIR "/ca.crt");
        assert_string_equal(kept, admin_mirror);
        assert_null(ca);
        assert_int_equal(f->manifest->n_entries, 0);
}

/* containerd follows a symlinked hosts.toml (inside the root), so we do:
 * one that names our ca.crt keeps it; one we cannot read keeps it too. */
static void test_hosts_toml_admin_symlink_and_unreadable(void **state) {
        Fixture *f = *state;

        if (!have_openat2())
                skip(); /* before anything is allocated: skip() does not return */
        const char *kv[] = { "reg.example.com..5000", f->ca1, "other.example.com", f->ca1, NULL };
        const char *none[] = { NULL };
        _cleanup_(trust_set_freep) TrustSet *t = trust(kv), *empty = trust(none);
        _cleanup_(plan_freep) Plan *p1 = plan_hosts(f, t, true);
        char path[256];
        int fd = -1;

        apply(f, p1);
        assert_int_equal(open_dir_beneath(f->rootfd, "etc/shared", 0755, &fd, NULL), 0);
        close(fd);
        put(f, "etc/shared/reg.toml", admin_with_ca);
        snprintf(path, sizeof path, "%s/" REG_DIR "/hosts.toml", f->root);
        assert_int_equal(unlink(path), 0);
        /* Absolute: resolved inside the root, as the host resolves it. */
        assert_int_equal(symlink("/etc/shared/reg.toml", path), 0);
        _cleanup_(plan_freep) Plan *p2 = plan_hosts(f, t, true);
        assert_int_equal(find_hosts(p2, "reg.example.com:5000")->type, ACTION_CONFLICT);
        assert_null(find(p2, "containerd", "reg.example.com:5000")->shadowed);

        snprintf(path, sizeof path, "%s/etc/containerd/certs.d/other.example.com/hosts.toml", f->root);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(mkdir(path, 0755), 0);
        _cleanup_(plan_freep) Plan *p3 = plan_hosts(f, empty, true);
        assert_int_equal(find(p3, "containerd", "reg.example.com:5000")->type, ACTION_DISOWN);
        assert_int_equal(find(p3, "containerd", "other.example.com")->type, ACTION_DISOWN);
        apply(f, p3);
        _cleanup_free_ char *a = slurp(f, REG_DIR "/ca.crt"), *b = slurp(f, "etc/containerd/certs.d/other.example.com/ca.crt");
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(f->manifest->n_entries, 0);
}

/* --containerd-hosts-toml never: ca.crt only, ours removed, and loopback
 * registries reported shadowed (containerd talks HTTP to them). */
static void test_hosts_toml_never(void **state) {
        Fixture *f = *state;
        const char *kv[] = { "127.0.0.1..5000", f->ca1, "reg.example.com..5000", f->ca1, NULL };
        _cleanup_(trust_set_freep) TrustSet *t = trust(kv);
        _cleanup_(plan_freep) Plan *p1 = plan_hosts(f, t, true);

        assert_null(find(p1, "containerd", "127.0.0.1:5000")->shadowed);
        apply(f, p1);
        _cleanup_(plan_freep) Plan *p2 = plan_hosts(f, t, false);
        assert_int_equal(find_hosts(p2, "reg.example.com:5000")->type, ACTION_REMOVE);
        assert_non_null(find(p2, "containerd", "127.0.0.1:5000")->shadowed);
        apply(f, p2);
        _cleanup_free_ char *gone = slurp(f, REG_DIR "/hosts.toml"), *kept = slurp(f, REG_DIR "/ca.crt");
        assert_null(gone);
        assert_non_null(kept);
        assert_string_equal(manifest_find(f->manifest, "containerd", "reg.example.com:5000")->hosts_sha256, "");

        _cleanup_(plan_freep) Plan *p3 = plan_hosts(f, t, false);
        assert_false(has_file(p3, "reg.example.com:5000", HOSTS_FILE));
        assert_false(plan_changes(p3));
        assert_non_null(strstr(find(p3, "containerd", "127.0.0.1:5000")->shadowed, "plain HTTP"));
        assert_null(find(p3, "containerd", "reg.example.com:5000")->shadowed);
}

/* A directory containerd searches before ours that has the registry. */
static void test_config_path_order_shadows(void **state) {
        Fixture *f = *state;
        const char *kv[] = { "reg.example.com..5000", f->ca1, NULL };
        _cleanup_(trust_set_freep) TrustSet *t = trust(kv);
        char *first[] = { (char *) "/etc/other/certs.d", NULL };
        PlanOptions o = { .target_mask = TARGET_CONTAINERD, .containerd_hosts_toml = true,
                          .containerd_read_first = first };
        int fd = -1;

        _cleanup_(plan_freep) Plan *p1 = plan_with(f, t, &o);
        assert_null(find(p1, "containerd", "reg.example.com:5000")->shadowed);
        assert_int_equal(open_dir_beneath(f->rootfd, "etc/other/certs.d/reg.example.com:5000", 0755, &fd, NULL), 0);
        close(fd);
        _cleanup_(plan_freep) Plan *p2 = plan_with(f, t, &o);
        assert_non_null(find(p2, "containerd", "reg.example.com:5000")->shadowed);
        assert_non_null(strstr(find(p2, "containerd", "reg.example.com:5000")->shadowed,
                               "/etc/other/certs.d/reg.example.com:5000"));
        assert_int_equal(unlinkat(f->rootfd, "etc/other/certs.d/reg.example.com:5000", AT_REMOVEDIR), 0);

        /* containerd also tries HOST_PORT_ and then _default, in each. */
        assert_int_equal(mkdirat(f->rootfd, "etc/other/certs.d/_default", 0755), 0);
        _cleanup_(plan_freep) Plan *p3 = plan_with(f, t, &o);
        assert_non_null(find(p3, "containerd", "reg.example.com:5000")->shadowed);
        assert_non_null(strstr(find(p3, "containerd", "reg.example.com:5000")->shadowed, "_default"));
        assert_int_equal(unlinkat(f->rootfd, "etc/other/certs.d/_default", AT_REMOVEDIR), 0);

        /* HOST_PORT_ beside ours comes before ours. */
        o.containerd_read_first = NULL;
        assert_int_equal(open_dir_beneath(f->rootfd, "etc/containerd/certs.d/reg.example.com_5000_", 0755, &fd, NULL), 0);
        close(fd);
        _cleanup_(plan_freep) Plan *p4 = plan_with(f, t, &o);
        assert_non_null(find(p4, "containerd", "reg.example.com:5000")->shadowed);
        assert_non_null(strstr(find(p4, "containerd", "reg.example.com:5000")->shadowed, "reg.example.com_5000_"));
        assert_int_equal(unlinkat(f->rootfd, "etc/containerd/certs.d/reg.example.com_5000_", AT_REMOVEDIR), 0);

        /* Our docker target's directory listed first holds our ca.crt: not
         * shadowed, unless the name is loopback (no hosts.toml there). */
        const char *lo[] = { "reg.example.com..5000", f->ca1, "localhost..5000", f->ca1, NULL };
        _cleanup_(trust_set_freep) TrustSet *t2 = trust(lo);
        char *docker_first[] = { (char *) "/etc/docker/certs.d", NULL };
        PlanOptions od = { .target_mask = TARGET_CONTAINERD | TARGET_DOCKER, .containerd_hosts_toml = true,
                           .containerd_read_first = docker_first };
        _cleanup_(plan_freep) Plan *p5 = plan_with(f, t2, &od);
        apply(f, p5);
        _cleanup_(plan_freep) Plan *p6 = plan_with(f, t2, &od);
        assert_null(find(p6, "containerd", "reg.example.com:5000")->shadowed);
        assert_non_null(find(p6, "containerd", "localhost:5000")->shadowed);
        /* An administrator's docker directory there is theirs: it shadows. */
        const char *adm[] = { "admin.example.com", f->ca1, NULL };
        _cleanup_(trust_set_freep) TrustSet *t3 = trust(adm);
        assert_int_equal(open_dir_beneath(f->rootfd, "etc/docker/certs.d/admin.example.com", 0755, &fd, NULL), 0);
        close(fd);
        _cleanup_(plan_freep) Plan *p8 = plan_with(f, t3, &od);
        assert_int_equal(find(p8, "docker", "admin.example.com")->type, ACTION_CONFLICT);
        assert_non_null(find(p8, "containerd", "admin.example.com")->shadowed);

        /* A config_path entry holds any bytes: the reason is printable. */
        char *evil[] = { (char *) "/etc/x\nFAKE\x1b[31m", NULL };
        PlanOptions oe = { .target_mask = TARGET_CONTAINERD, .containerd_read_first = evil };
        assert_int_equal(open_dir_beneath(f->rootfd, "etc/x\nFAKE\x1b[31m/reg.example.com:5000", 0755, &fd, NULL), 0);
        close(fd);
        _cleanup_(plan_freep) Plan *p7 = plan_with(f, t, &oe);
        const char *why = find(p7, "containerd", "reg.example.com:5000")->shadowed;
        assert_non_null(why);
        assert_null(strchr(why, '\n'));
        assert_null(strchr(why, '\x1b'));
}

/* Someone else's directory stays a conflict; no hosts.toml is planned in it. */
static void test_hosts_toml_not_in_foreign_dir(void **state) {
        Fixture *f = *state;
        const char *kv[] = { "reg.example.com..5000", f->ca1, NULL };
        _cleanup_(trust_set_freep) TrustSet *t = trust(kv);
        int fd = -1;

        assert_int_equal(open_dir_beneath(f->rootfd, REG_DIR, 0755, &fd, NULL), 0);
        close(fd);
        _cleanup_(plan_freep) Plan *p = plan_hosts(f, t, true);
        assert_int_equal(p->n_actions, 1);
        assert_int_equal(p->actions[0].type, ACTION_CONFLICT);
        apply(f, p);
        _cleanup_free_ char *none = slurp(f, REG_DIR "/hosts.toml");
        assert_null(none);
}

static void check(const char *text, const char *registry, bool effective) {
        _cleanup_free_ char *why = NULL;
        assert_int_equal(containerd_hosts_check(text, strlen(text), registry, "/etc/containerd/certs.d", &why), 0);
        if (effective != !why)
                fail_msg("%s for %s: expected %s, got %s", text, registry, effective ? "effective" : "shadowed",
                         why ? why : "effective");
}

static void test_hosts_check(void **state) {
        (void) state;
        check("ca = \"ca.crt\"\n", "reg.example.com", true);
        check("ca = \"./ca.crt\"\n", "reg.example.com", true);
        check("ca = \"/etc/containerd/certs.d/reg.example.com/ca.crt\"\n", "reg.example.com", true);
        check("ca = \"/etc/containerd/certs.d/other/ca.crt\"\n", "reg.example.com", false);
        check("ca = [\"a.crt\", \"ca.crt\"]\n", "reg.example.com", true);
        check("server = \"https://reg.example.com\"\nca = \"ca.crt\"\n", "reg.example.com", true);
        check("server = \"https://mirror\"\nca = \"ca.crt\"\n", "reg.example.com", false);
        check("server = \"http://reg.example.com\"\nca = \"ca.crt\"\n", "reg.example.com", false);
        check("[host.\"https://reg.example.com:5000\"]\nca = \"ca.crt\"\n", "reg.example.com:5000", true);
        check("[host.\"https://reg.example.com:5000/v2\"]\nca = \"ca.crt\"\n", "reg.example.com:5000", true);
        check("[host.\"https://mirror\"]\nca = \"ca.crt\"\n", "reg.example.com:5000", false);
        check("[host.\"http://reg.example.com:5000\"]\nca = \"ca.crt\"\n", "reg.example.com:5000", false);
        check("skip_verify = true\n", "reg.example.com", false);
        /* Empty, or not one containerd accepts: as if absent, *.crt is read
         * (over HTTPS only for names that are not loopback). */
        check("", "reg.example.com", true);
        check("", "localhost:5000", false);
        check("capabilities = [\"fetch\"]\n", "reg.example.com", true);
        check("ca = 5\n", "reg.example.com", true);
        check("ca = 5\n", "127.0.0.1:5000", false);
        check("[host.\"https://m\"]\nclient = [[\"a\"]]\n", "reg.example.com", true);
        /* A dial_timeout Go cannot parse drops the file (so: *.crt). */
        check("server = \"https://localhost:5000\"\nca = \"ca.crt\"\ndial_timeout = \"10\"\n", "localhost:5000", false);
        check("server = \"https://localhost:5000\"\nca = \"ca.crt\"\ndial_timeout = \"1m30.5s\"\n", "localhost:5000", true);
        check("server = \"https://localhost:5000\"\nca = \"ca.crt\"\ndial_timeout = 10\n", "localhost:5000", false);
        /* Without server =, the top level's capabilities do not count. */
        check("ca = \"ca.crt\"\ncapabilities = [\"push\"]\n", "reg.example.com", true);
        /* Pulls never go to a host that cannot pull. */
        check("server = \"https://reg.example.com\"\nca = \"ca.crt\"\ncapabilities = [\"push\"]\n", "reg.example.com", false);
        check("[host.\"https://reg.example.com\"]\ncapabilities = [\"resolve\", \"PULL\"]\nca = \"ca.crt\"\n",
              "reg.example.com", true);
        /* Loopback names need an https server named. */
        check("ca = \"ca.crt\"\n", "localhost:5000", false);
        check("server = \"https://localhost:5000\"\nca = \"ca.crt\"\n", "localhost:5000", true);
        check("[host.\"https://127.0.0.1:5000\"]\nca = \"ca.crt\"\n", "127.0.0.1:5000", true);
        /* A file containerd cannot parse is as if absent: ca.crt is used,
         * except over the plain HTTP containerd speaks to loopback names. */
        check("server = \n", "reg.example.com", true);
        check("server = \n", "127.0.0.1:5000", false);
        /* docker.io's server is registry-1.docker.io. */
        check("server = \"https://registry-1.docker.io\"\nca = \"ca.crt\"\n", "docker.io", true);

        assert_true(registry_is_loopback("localhost"));
        assert_true(registry_is_loopback("127.1.2.3:80"));
        assert_false(registry_is_loopback("127.0.0.1.example.com"));
        assert_false(registry_is_loopback("localhost.example.com:5000"));
        assert_false(registry_is_loopback("128.0.0.1"));
}

static void test_hosts_render(void **state) {
        _cleanup_free_ char *text = NULL, *why = NULL;
        size_t size;

        (void) state;
        assert_int_equal(containerd_hosts_render("docker.io", &text, &size), 0);
        assert_int_equal(strlen(text), size);
        assert_non_null(strstr(text, "server = \"https://registry-1.docker.io\""));
        /* What we write passes our own check, as containerd would read it. */
        assert_int_equal(containerd_hosts_check(text, size, "docker.io", "/etc/containerd/certs.d", &why), 0);
        assert_null(why);
        free(text);
        assert_int_equal(containerd_hosts_render("127.0.0.1:5000", &text, &size), 0);
        assert_int_equal(containerd_hosts_check(text, size, "127.0.0.1:5000", "/etc/containerd/certs.d", &why), 0);
        assert_null(why);
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


/* The next plan takes over what no output event touched: it does not read
 * those files (drift there is not seen: the watches would have said), but
 * reads every registry named changed, one whose wanted CA differs from
 * what the manifest records, and one whose previous action failed. */
static void test_previous_plan_taken_over(void **state) {
        Fixture *f = *state;
        const char *kv1[] = { "a.example.com", f->ca1, "b.example.com", f->ca1, "c.example.com", f->ca1, NULL };
        const char *kv2[] = { "a.example.com", f->ca1, "b.example.com", f->ca1, "c.example.com", f->ca2, NULL };
        _cleanup_(trust_set_freep) TrustSet *t1 = trust(kv1), *t2 = trust(kv2);
        PlanOptions o = { .target_mask = TARGET_ALL, .containerd_hosts_toml = true };
        _cleanup_(plan_freep) Plan *p1 = plan_with(f, t1, &o);

        apply(f, p1);
        assert_int_equal(p1->n_reused, 0);

        /* Someone edits a's and b's files; only b's directory is said to have changed. */
        put(f, "etc/docker/certs.d/a.example.com/ca.crt", "tampered\n");
        put(f, "etc/docker/certs.d/b.example.com/ca.crt", "tampered\n");
        char *changed[] = { (char *) "b.example.com", NULL };
        PlanMemo *m1 = NULL, *m2 = NULL;
        assert_int_equal(plan_memo_new(p1, &m1), 0);
        o.previous = m1;
        o.changed = changed;
        o.n_changed = 1;
        _cleanup_(plan_freep) Plan *p2 = plan_with(f, t2, &o);
        /* a: taken over in all three targets, hosts.toml too; b: read, and
         * docker's drift found; c: its CA changed, so read and updated. */
        assert_int_equal(p2->n_reused, 3);
        assert_int_equal(find(p2, "docker", "a.example.com")->type, ACTION_UNCHANGED);
        assert_int_equal(find(p2, "containerd", "a.example.com")->type, ACTION_UNCHANGED);
        assert_int_equal(find_hosts(p2, "a.example.com")->type, ACTION_UNCHANGED);
        assert_int_equal(find(p2, "docker", "b.example.com")->type, ACTION_UPDATE);
        assert_int_equal(find(p2, "containers", "b.example.com")->type, ACTION_UNCHANGED);
        assert_int_equal(find(p2, "docker", "c.example.com")->type, ACTION_UPDATE);
        assert_int_equal(find(p2, "containerd", "c.example.com")->type, ACTION_UPDATE);
        assert_int_equal(find_hosts(p2, "c.example.com")->type, ACTION_UNCHANGED);
        assert_int_equal(p2->n_actions, 3 * 3 + 3);

        /* A failed action is never taken over. */
        apply(f, p2);
        for (size_t i = 0; i < p2->n_actions; i++)
                if (streq(p2->actions[i].registry, "a.example.com") && streq(p2->actions[i].target->name, "containers"))
                        p2->actions[i].error = -ENOSPC;
        assert_int_equal(plan_memo_new(p2, &m2), 0);
        o.previous = m2;
        o.changed = NULL;
        o.n_changed = 0;
        _cleanup_(plan_freep) Plan *p3 = plan_with(f, t2, &o);
        assert_int_equal(p3->n_reused, 8);
        assert_int_equal(find(p3, "containers", "a.example.com")->type, ACTION_UNCHANGED);
        assert_int_equal(find(p3, "docker", "a.example.com")->type, ACTION_UNCHANGED); /* the edit is not seen */

        /* Without a previous plan everything is read again. */
        o.previous = NULL;
        _cleanup_(plan_freep) Plan *p4 = plan_with(f, t2, &o);
        assert_int_equal(p4->n_reused, 0);
        assert_int_equal(find(p4, "docker", "a.example.com")->type, ACTION_UPDATE);
        assert_int_equal(find(p4, "docker", "b.example.com")->type, ACTION_UNCHANGED); /* repaired by p2 */

        /* hosts.toml turned off: the containerd actions are not taken over. */
        PlanMemo *m3 = NULL;
        assert_int_equal(plan_memo_new(p3, &m3), 0);
        o = (PlanOptions){ .target_mask = TARGET_ALL, .previous = m3 };
        _cleanup_(plan_freep) Plan *p5 = plan_with(f, t2, &o);
        assert_int_equal(find_hosts(p5, "a.example.com")->type, ACTION_REMOVE);
        assert_int_equal(find(p5, "containerd", "a.example.com")->type, ACTION_UNCHANGED);
        plan_memo_free(m1);
        plan_memo_free(m2);
        plan_memo_free(m3);
}


/* A full plan (resync) takes a registry over only when a stat() finds
 * the very files the plan before read and found current, and those files
 * were older than the clock's granularity then; an edit of any kind (same
 * size, same mtime even) shows in ctime and inode, so it is read. */
static void test_full_plan_takes_over_by_identity(void **state) {
        Fixture *f = *state;
        const char *kv[] = { "a.example.com", f->ca1, "b.example.com", f->ca1, "c.example.com", f->ca1, NULL };
        _cleanup_(trust_set_freep) TrustSet *t = trust(kv);
        PlanOptions o = { .target_mask = TARGET_ALL, .containerd_hosts_toml = true };
        _cleanup_(plan_freep) Plan *p1 = plan_with(f, t, &o), *p2 = NULL, *p3 = NULL, *p4 = NULL;
        PlanMemo *m2 = NULL, *m3 = NULL;

        apply(f, p1);
        /* Written, then read back at once: too new to be known by their
         * times, so each full plan reads them all again. */
        PlanMemo *m1 = NULL;
        assert_int_equal(plan_memo_new(p1, &m1), 0);
        o.full = true;
        o.previous = m1;
        p2 = plan_with(f, t, &o);
        assert_int_equal(p2->n_reused, 0);
        assert_int_equal(plan_count(p2, ACTION_UNCHANGED), 12);
        assert_int_equal(plan_memo_new(p2, &m2), 0);

        /* Seen later (the clock ten seconds on): read, found current, ids kept. */
        clock_gettime(CLOCK_REALTIME, &o.now);
        o.now.tv_sec += 10;
        o.previous = m2;
        p3 = plan_with(f, t, &o);
        assert_int_equal(p3->n_reused, 0);
        assert_int_equal(plan_memo_new(p3, &m3), 0);
        o.previous = m3;
        p4 = plan_with(f, t, &o);
        assert_int_equal(p4->n_reused, 9);
        assert_int_equal(plan_count(p4, ACTION_UNCHANGED), 12);

        /* b's docker ca.crt rewritten in place with the same bytes and its
         * times set back; c's hosts.toml replaced: both read again. */
        _cleanup_free_ char *same = slurp(f, "etc/docker/certs.d/b.example.com/ca.crt");
        struct stat before;
        char path[256];
        snprintf(path, sizeof path, "%s/etc/docker/certs.d/b.example.com/ca.crt", f->root);
        assert_int_equal(stat(path, &before), 0);
        put(f, "etc/docker/certs.d/b.example.com/ca.crt", same);
        struct timespec times[2] = { before.st_atim, before.st_mtim };
        assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
        _cleanup_free_ char *hosts = slurp(f, "etc/containerd/certs.d/c.example.com/hosts.toml");
        put(f, "etc/containerd/certs.d/c.example.com/hosts.toml.new", hosts);
        snprintf(path, sizeof path, "%s/etc/containerd/certs.d/c.example.com/hosts.toml", f->root);
        char newpath[300];
        snprintf(newpath, sizeof newpath, "%s.new", path);
        assert_int_equal(rename(newpath, path), 0);
        o.now.tv_sec += 10;
        _cleanup_(plan_freep) Plan *p5 = plan_with(f, t, &o);
        assert_int_equal(p5->n_reused, 7);
        assert_int_equal(plan_count(p5, ACTION_UNCHANGED), 12); /* the bytes are right: read, current */
        plan_memo_free(m1);
        plan_memo_free(m2);
        plan_memo_free(m3);
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
                cmocka_unit_test_setup_teardown(test_hosts_toml_lifecycle, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hosts_toml_admin, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hosts_toml_admin_prune, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hosts_toml_admin_symlink_and_unreadable, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hosts_toml_never, setup, teardown),
                cmocka_unit_test_setup_teardown(test_config_path_order_shadows, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hosts_toml_not_in_foreign_dir, setup, teardown),
                cmocka_unit_test_setup_teardown(test_previous_plan_taken_over, setup, teardown),
                cmocka_unit_test_setup_teardown(test_full_plan_takes_over_by_identity, setup, teardown),
                cmocka_unit_test(test_hosts_check),
                cmocka_unit_test(test_hosts_render),
                cmocka_unit_test(test_targets_parse),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
