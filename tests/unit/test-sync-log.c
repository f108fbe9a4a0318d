/* SPDX-License-Identifier: MIT */
/*
 * Why a sync failed, as /readyz, /status, STATUS= and the report say it:
 * every target that failed, its first files and its errors.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cleanup.h"
#include "containerd-hosts.h"
#include "sync-log.h"

#define DOCKER (&targets[0])
#define CONTAINERS (&targets[1])
#define CONTAINERD (&targets[2])

static PlanAction act(ActionType type, const Target *t, const char *file, const char *registry, int error) {
        return (PlanAction){ .type = type, .target = t, .file = file, .registry = (char *) registry, .error = error };
}

static char *reason_of(PlanAction *a, size_t n) {
        Plan p = { .actions = a, .n_actions = n };
        char *r = (char *) 1;
        assert_int_equal(sync_failure_reason(&p, &r), 0);
        return r;
}

static void test_nothing_failed(void **unused) {
        PlanAction a[] = {
                act(ACTION_CREATE, DOCKER, CA_FILE, "a.example.com", 0),
                act(ACTION_UNCHANGED, CONTAINERD, CA_FILE, "a.example.com", 0),
        };
        (void) unused;
        assert_null(reason_of(a, ELEMENTSOF(a)));
}

static void test_every_target_named(void **unused) {
        PlanAction a[] = {
                act(ACTION_UPDATE, DOCKER, CA_FILE, "a.example.com", -ENOSPC),
                act(ACTION_UPDATE, CONTAINERS, CA_FILE, "a.example.com", 0),
                act(ACTION_UPDATE, CONTAINERD, CA_FILE, "a.example.com", -EROFS),
                act(ACTION_CREATE, CONTAINERD, HOSTS_FILE, "a.example.com", -EROFS),
                act(ACTION_CREATE, DOCKER, CA_FILE, "b.example.com:5000", -ENOSPC),
        };
        _cleanup_free_ char *r = NULL;

        (void) unused;
        r = reason_of(a, ELEMENTSOF(a));
        assert_string_equal(r, "could not write 4 files: docker: a.example.com, b.example.com:5000 (No space left on "
                               "device); containerd: a.example.com, a.example.com/hosts.toml (Read-only file system)");
}

static void test_many_files_and_errors_are_bounded(void **unused) {
        PlanAction a[] = {
                act(ACTION_UPDATE, CONTAINERS, CA_FILE, "r1", -ENOSPC),
                act(ACTION_UPDATE, CONTAINERS, CA_FILE, "r2", -EACCES),
                act(ACTION_UPDATE, CONTAINERS, CA_FILE, "r3", -EPERM),
                act(ACTION_UPDATE, CONTAINERS, CA_FILE, "r4", -ENOSPC),
                act(ACTION_REMOVE, CONTAINERS, CA_FILE, "r5", -EBUSY),
        };
        _cleanup_free_ char *r = NULL;

        (void) unused;
        r = reason_of(a, ELEMENTSOF(a));
        assert_string_equal(r, "could not write 4 files and remove 1: containers: r1, r2, r3 and 2 more (No space left "
                               "on device, Permission denied)");
}

static void test_removals_only(void **unused) {
        PlanAction a[] = { act(ACTION_REMOVE, DOCKER, CA_FILE, "gone.example.com", -EACCES) };
        _cleanup_free_ char *r = NULL;

        (void) unused;
        r = reason_of(a, ELEMENTSOF(a));
        assert_string_equal(r, "could not remove 1 file: docker: gone.example.com (Permission denied)");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_nothing_failed),
                cmocka_unit_test(test_every_target_named),
                cmocka_unit_test(test_many_files_and_errors_are_bounded),
                cmocka_unit_test(test_removals_only),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
