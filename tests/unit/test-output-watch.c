/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
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
#include "manifest.h"
#include "output-watch.h"
#include "strv.h"
#include "target.h"

/* A --root with the docker target and registries under it; the watches
 * on a real inotify descriptor and a real loop. */
static char root[64];
static sd_event *event;
static Manifest *manifest;
static OutputWatches watches;
static unsigned changes;

static void on_change(void *userdata) {
        (void) userdata;
        changes++;
}

static const char *path_of(const char *rel) {
        static char buf[4][256];
        static unsigned k;
        char *p = buf[k++ % 4];
        snprintf(p, sizeof buf[0], "%s/%s", root, rel);
        return p;
}

static void sh(const char *fmt, const char *a, const char *b) {
        char cmd[768];
        snprintf(cmd, sizeof cmd, fmt, a, b);
        assert_int_equal(system(cmd), 0);
}

static void touch(const char *rel) {
        FILE *f = fopen(path_of(rel), "we");
        assert_non_null(f);
        assert_int_equal(fclose(f), 0);
}

static void add_registry(const char *registry) {
        char rel[128];
        snprintf(rel, sizeof rel, "etc/docker/certs.d/%s", registry);
        assert_int_equal(mkdir(path_of(rel), 0755), 0);
        assert_int_equal(manifest_put(manifest, "docker", registry, "", true), 0);
}

static void update(void) {
        OutputWatchSet set = {
                .event = event,
                .root = root,
                .target_mask = TARGET_DOCKER,
                .handler = on_change,
        };
        assert_int_equal(output_watches_update(&watches, &set, manifest), 0);
}

/* Dispatch whatever the kernel queued, then start counting afresh. */
static unsigned drain(void) {
        unsigned n;
        while (sd_event_run(event, 50 * 1000) > 0)
                ;
        n = changes;
        changes = 0;
        return n;
}

static int open_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        int n = 0;
        assert_non_null(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

static int setup(void **state) {
        (void) state;
        snprintf(root, sizeof root, "/tmp/nodetrust-test-output-watch.XXXXXX");
        assert_non_null(mkdtemp(root));
        sh("mkdir -p '%s/etc/docker/certs.d'%s", root, "");
        assert_int_equal(sd_event_new(&event), 0);
        manifest = manifest_new();
        assert_non_null(manifest);
        changes = 0;
        return 0;
}

static int teardown(void **state) {
        (void) state;
        output_watches_clear(&watches);
        manifest = manifest_free(manifest);
        event = sd_event_unref(event);
        sh("rm -rf '%s'%s", root, "");
        return 0;
}

/* The CI failure this module was rewritten for: an update that drops and
 * re-adds every watch loses what the kernel queued for the old ones. A
 * file deleted before an update that changes nothing must still be heard. */
static void test_event_before_an_update_is_not_lost(void **state) {
        (void) state;
        add_registry("a.example.com");
        touch("etc/docker/certs.d/a.example.com/ca.crt");
        update();
        assert_int_equal(output_watches_active(&watches), 2);
        assert_int_equal(unlink(path_of("etc/docker/certs.d/a.example.com/ca.crt")), 0);
        add_registry("b.example.com"); /* an apply that adds another */
        update();
        assert_true(drain() >= 1);
        assert_int_equal(output_watches_active(&watches), 3);
}

static void test_one_descriptor_for_any_number_of_watches(void **state) {
        char name[64];
        int before;

        (void) state;
        update();
        before = open_fds();
        for (int i = 0; i < 1000; i++) {
                snprintf(name, sizeof name, "r%04d.example.com:5000", i);
                add_registry(name);
        }
        update();
        assert_int_equal(output_watches_active(&watches), 1001);
        assert_int_equal(open_fds(), before);
        /* The last one is watched like the first. */
        (void) drain();
        touch("etc/docker/certs.d/r0999.example.com:5000/ca.crt");
        assert_int_equal(drain(), 1);
}

static void test_removed_watch_is_quiet(void **state) {
        (void) state;
        add_registry("a.example.com");
        add_registry("b.example.com");
        update();
        manifest_remove(manifest, "docker", "b.example.com");
        update();
        assert_int_equal(output_watches_active(&watches), 2);
        /* Ending our own watch (IN_IGNORED) is no news, nor is a change
         * in a directory no longer ours. */
        assert_int_equal(drain(), 0);
        touch("etc/docker/certs.d/b.example.com/x");
        assert_int_equal(drain(), 0);
        touch("etc/docker/certs.d/a.example.com/x");
        assert_int_equal(drain(), 1);
        assert_false(output_watches_need_update(&watches));
}

static void test_deleted_directory_is_watched_again(void **state) {
        (void) state;
        add_registry("a.example.com");
        update();
        sh("rm -rf '%s/etc/docker/certs.d/a.example.com' && mkdir '%s/etc/docker/certs.d/a.example.com'", root,
           root);
        assert_true(drain() >= 1);
        assert_true(output_watches_need_update(&watches));
        update();
        assert_false(output_watches_need_update(&watches));
        touch("etc/docker/certs.d/a.example.com/ca.crt");
        assert_int_equal(drain(), 1);
}

/* The target directory moved away and a new one made in its place (what
 * an admin's `mv certs.d certs.d.old` does): the registry watch stays on
 * the old directory until the agent says it wrote into the path. */
static void test_moved_target_directory_and_refresh(void **state) {
        (void) state;
        add_registry("a.example.com");
        update();
        sh("mv '%s/etc/docker/certs.d' '%s/etc/docker/certs.d.old'", root, root);
        sh("mkdir -p '%s/etc/docker/certs.d/a.example.com'%s", root, "");
        assert_true(drain() >= 1);
        assert_true(output_watches_need_update(&watches));
        output_watches_refresh(&watches, "etc/docker/certs.d", "a.example.com");
        update();
        (void) drain();
        touch("etc/docker/certs.d/a.example.com/ca.crt");
        assert_int_equal(drain(), 1);
        /* The old directories are no longer watched. */
        touch("etc/docker/certs.d.old/a.example.com/ca.crt");
        touch("etc/docker/certs.d.old/x");
        assert_int_equal(drain(), 0);
}

static void test_missing_directory_is_tried_again(void **state) {
        (void) state;
        assert_int_equal(manifest_put(manifest, "docker", "late.example.com", "", true), 0);
        update();
        assert_int_equal(output_watches_active(&watches), 1);
        assert_int_equal(mkdir(path_of("etc/docker/certs.d/late.example.com"), 0755), 0);
        (void) drain();
        output_watches_refresh(&watches, "etc/docker/certs.d", "late.example.com");
        update();
        assert_int_equal(output_watches_active(&watches), 2);
        touch("etc/docker/certs.d/late.example.com/ca.crt");
        assert_int_equal(drain(), 1);
}


/* What the watches say changed: the registry whose directory had the
 * event, the name an event in the target directory was about (and the
 * HOST:PORT a HOST_PORT_ directory stands for), everything when the
 * kernel ended a watch; and "complete" only when every watch is up. */
static bool in_target;

static void take(char ***ret, size_t *n, bool *all) {
        output_watches_take_changes(&watches, ret, n, all, &in_target);
}

static void test_changes_name_registries(void **state) {
        _cleanup_strv_free_ char **c1 = NULL, **c2 = NULL, **c3 = NULL, **c4 = NULL;
        size_t n;
        bool all;

        (void) state;
        add_registry("a.example.com:5000");
        add_registry("b.example.com");
        update();
        assert_true(output_watches_complete(&watches));
        take(&c1, &n, &all);
        assert_false(all);
        assert_int_equal(n, 0);

        touch("etc/docker/certs.d/b.example.com/ca.crt");
        (void) drain();
        take(&c1, &n, &all);
        assert_false(in_target);
        assert_int_equal(n, 1);
        c1 = strv_free(c1);

        touch("etc/docker/certs.d/b.example.com/ca.crt");
        touch("etc/docker/certs.d/b.example.com/other");
        assert_int_equal(mkdir(path_of("etc/docker/certs.d/a.example.com_5000_"), 0755), 0);
        (void) drain();
        take(&c2, &n, &all);
        assert_false(all);
        assert_true(in_target);
        assert_int_equal(n, 3);
        assert_string_equal(c2[0], "a.example.com:5000");
        assert_string_equal(c2[1], "a.example.com_5000_");
        assert_string_equal(c2[2], "b.example.com");
        assert_null(c2[3]);
        /* Taken: nothing left. */
        take(&c3, &n, &all);
        assert_false(all);
        assert_int_equal(n, 0);

        sh("rm -rf '%s/etc/docker/certs.d/b.example.com'%s", root, "");
        (void) drain();
        assert_false(output_watches_complete(&watches));
        take(&c4, &n, &all);
        assert_true(all);
        assert_null(c4);
        update();
        /* b's directory is gone, its watch wanted: incomplete until it is back. */
        assert_false(output_watches_complete(&watches));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_event_before_an_update_is_not_lost, setup, teardown),
                cmocka_unit_test_setup_teardown(test_one_descriptor_for_any_number_of_watches, setup, teardown),
                cmocka_unit_test_setup_teardown(test_removed_watch_is_quiet, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deleted_directory_is_watched_again, setup, teardown),
                cmocka_unit_test_setup_teardown(test_moved_target_directory_and_refresh, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_directory_is_tried_again, setup, teardown),
                cmocka_unit_test_setup_teardown(test_changes_name_registries, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
