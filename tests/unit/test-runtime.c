/* SPDX-License-Identifier: MIT */
/* Is each target's runtime there, and will it read what nodetrustd writes?
 * Every case is a real file tree under a temporary --root. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "fs.h"
#include "openat2.h"
#include "runtime.h"
#include "utf8.h"

#define CONFIG "/etc/containerd/config.toml"
#define CD 2 /* containerd's index in targets[] */

typedef struct Fixture {
        char root[64];
        int rootfd;
        RuntimeStatus rs;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);

        snprintf(f->root, sizeof f->root, "/tmp/nodetrust-test-runtime.XXXXXX");
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
        runtime_status_done(&f->rs);
        free(f);
        return 0;
}

/* Write rel (below the root) with content, making its directories. */
static void put(Fixture *f, const char *rel, const char *content) {
        _cleanup_free_ char *dir = strdup(rel);
        char path[512];
        int fd = -1;

        *strrchr(dir, '/') = 0;
        assert_int_equal(open_dir_beneath(f->rootfd, dir, 0755, &fd, NULL), 0);
        close(fd);
        snprintf(path, sizeof path, "%s/%s", f->root, rel);
        FILE *fp = fopen(path, "we");
        assert_non_null(fp);
        fputs(content, fp);
        fclose(fp);
}

static const TargetStatus *check(Fixture *f, unsigned mask) {
        runtime_status_done(&f->rs);
        assert_int_equal(runtime_check(f->rootfd, CONFIG, mask, &f->rs), 0);
        return &f->rs.targets[CD];
}

static void assert_state(const TargetStatus *ts, TargetStateType state, const char *reason_part) {
        if (ts->state != state)
                fail_msg("state %s, expected %s (reason: %s)", target_state_to_string(ts->state),
                         target_state_to_string(state), ts->reason ? ts->reason : "none");
        if (state == TARGET_STATE_ACTIVE)
                assert_null(ts->reason);
        else
                assert_non_null(ts->reason);
        if (reason_part && !strstr(ts->reason, reason_part))
                fail_msg("reason '%s' does not mention '%s'", ts->reason, reason_part);
}

static void test_nothing_installed(void **state) {
        Fixture *f = *state;

        /* The directories nodetrustd itself makes do not count. */
        put(f, "etc/docker/certs.d/x/ca.crt", "x");
        put(f, "etc/containers/certs.d/x/ca.crt", "x");
        put(f, "etc/containerd/certs.d/x/ca.crt", "x");
        check(f, TARGET_ALL);
        for (size_t i = 0; i < 3; i++) {
                assert_true(f->rs.targets[i].enabled);
                assert_state(&f->rs.targets[i], TARGET_STATE_NOT_INSTALLED, NULL);
        }
        check(f, TARGET_DOCKER);
        assert_false(f->rs.targets[CD].enabled);
}

static void test_docker_and_containers_present(void **state) {
        Fixture *f = *state;

        put(f, "etc/docker/daemon.json", "{}");
        put(f, "usr/bin/podman", "");
        check(f, TARGET_ALL);
        assert_state(&f->rs.targets[0], TARGET_STATE_ACTIVE, NULL);
        assert_state(&f->rs.targets[1], TARGET_STATE_ACTIVE, NULL);
}

static void test_v2_config_path(void **state) {
        Fixture *f = *state;

        put(f, "etc/containerd/config.toml",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_ACTIVE, NULL);
        assert_null(f->rs.targets[CD].read_first);

        /* Trailing slash, a list with ours second. */
        put(f, "etc/containerd/config.toml",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n"
            "  config_path = \"/etc/mirrors/certs.d:/etc/containerd/certs.d/\"\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_ACTIVE, NULL);
        assert_non_null(f->rs.targets[CD].read_first);
        assert_string_equal(f->rs.targets[CD].read_first[0], "/etc/mirrors/certs.d");
        assert_null(f->rs.targets[CD].read_first[1]);

        /* Dotted keys spell the same table. */
        put(f, "etc/containerd/config.toml",
            "version = 2\n[plugins]\n\"io.containerd.grpc.v1.cri\".registry.config_path = \"/etc/containerd/certs.d\"\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_ACTIVE, NULL);
}

static void test_v2_unset_or_elsewhere(void **state) {
        Fixture *f = *state;

        put(f, "etc/containerd/config.toml",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"\"\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "config_path is not set");
        put(f, "etc/containerd/config.toml", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"x\"\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "config_path is not set");
        put(f, "etc/containerd/config.toml", "# all defaults\n");
        /* No version: containerd 1.x reads it as version 1. */
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "[plugins.\"cri\".registry]");
        put(f, "etc/containerd/config.toml",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/elsewhere\"\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "\"/etc/elsewhere\"");
        /* /etc/docker/certs.d is ours too when the docker target writes it,
         * but the containerd target's directory is still not read. */
        put(f, "etc/containerd/config.toml",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/docker/certs.d\"\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "will not read /etc/containerd/certs.d");
        /* The deprecated mirrors beside config_path: the CRI plugin refuses to load. */
        put(f, "etc/containerd/config.toml",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n"
            "[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"docker.io\"]\n  endpoint = [\"https://m\"]\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "mirrors");
        /* configs for auth only are fine beside config_path; tls is not. */
        put(f, "etc/containerd/config.toml",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n"
            "[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"r\".auth]\n  username = \"u\"\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_ACTIVE, NULL);
        put(f, "etc/containerd/config.toml",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n"
            "[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"r\".tls]\n  ca_file = \"/x\"\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "configs.*.tls");
        /* CRI disabled. */
        put(f, "etc/containerd/config.toml", "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "disables containerd's CRI plugin");
}

static void test_v3(void **state) {
        Fixture *f = *state;

        /* Unset: only containerd 2.2 and later default config_path to
         * ours (2.0 and 2.1 do not), and the file does not say which. */
        put(f, "etc/containerd/config.toml", "version = 3\n[plugins.\"io.containerd.cri.v1.runtime\"]\n  x = 1\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "containerd before 2.2");
        assert_non_null(strstr(f->rs.targets[CD].reason, "io.containerd.cri.v1.images"));
        put(f, "etc/containerd/config.toml",
            "version = 3\n[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_ACTIVE, NULL);
        put(f, "etc/containerd/config.toml",
            "version = 3\n[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = \"/srv/certs.d\"\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "/srv/certs.d");
        put(f, "etc/containerd/config.toml", "version = 4\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "version 4");
        put(f, "etc/containerd/config.toml", "version = \"2\"\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "not an integer");
}

static void test_malformed(void **state) {
        Fixture *f = *state;

        put(f, "etc/containerd/config.toml", "version = 2\n\n[plugins\nconfig_path = 1\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "line 3");
        assert_non_null(strstr(f->rs.targets[CD].reason, CONFIG));
        /* An import can name any file: the reason never quotes it. */
        put(f, "etc/kubernetes/bootstrap-token", "abcdef.0123456789abcdef\n");
        put(f, "etc/containerd/config.toml", "version = 2\nimports = [\"../kubernetes/bootstrap-token\"]\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE,
                     have_openat2() ? "bootstrap-token is not valid TOML (line 1)" : "bootstrap-token");
        assert_null(strstr(f->rs.targets[CD].reason, "0123456789abcdef"));
        put(f, "etc/containerd/config.toml",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = [\"/etc/containerd/certs.d\"]\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "not a string");
        /* Not a regular file (a FIFO must not hang us). */
        assert_int_equal(unlinkat(f->rootfd, "etc/containerd/config.toml", 0), 0);
        assert_int_equal(mkfifoat(f->rootfd, "etc/containerd/config.toml", 0644), 0);
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "cannot read");
}

static void test_imports(void **state) {
        Fixture *f = *state;

        /* The last file with the plugin's table decides; globs are sorted. */
        put(f, "etc/containerd/config.toml",
            "version = 2\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"\"\n");
        put(f, "etc/containerd/conf.d/20-registry.toml",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_ACTIVE, NULL);
        put(f, "etc/containerd/conf.d/30-later.toml",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"x\"\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "conf.d/30-later.toml");
        /* A malformed import, a missing plain import. */
        put(f, "etc/containerd/conf.d/30-later.toml", "[[[\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "30-later.toml is not valid TOML");
        put(f, "etc/containerd/config.toml", "version = 2\nimports = [\"/etc/containerd/missing.toml\"]\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "missing.toml, which does not exist");
        /* A relative glob is relative to containerd's working directory
         * (/), a relative plain path to the importing file's directory. */
        put(f, "etc/containerd/config.toml", "version = 2\nimports = [\"etc/containerd/conf.d/2*.toml\"]\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_ACTIVE, NULL);
        put(f, "etc/containerd/config.toml", "version = 2\nimports = [\"conf.d/20-registry.toml\"]\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_ACTIVE, NULL);
        /* A glob stays inside --root, and a wildcard directory is said, not walked. */
        put(f, "etc/containerd/config.toml", "version = 2\nimports = [\"/../../../../*\"]\n");
        /* (The root's own etc/ matched: a directory, which containerd cannot load either.) */
        if (have_openat2())
                assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "/../../../../etc: Is a directory");
        put(f, "etc/containerd/config.toml", "version = 2\nimports = [\"/*/*/*/*/*/*\"]\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "wildcards only in the last path component");
        /* More matches than are read: said, not silently cut short. */
        for (int i = 0; i < 40; i++) {
                char rel[96];
                snprintf(rel, sizeof rel, "etc/containerd/many.d/%02d.toml", i);
                put(f, rel, "version = 2\n");
        }
        put(f, "etc/containerd/config.toml", "version = 2\nimports = [\"/etc/containerd/many.d/*.toml\"]\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "matches more than nodetrustd reads");
        /* A device an import names is never opened. */
        assert_int_equal(mknodat(f->rootfd, "etc/containerd/null.toml", S_IFCHR | 0644, makedev(1, 3)), 0);
        put(f, "etc/containerd/config.toml", "version = 2\nimports = [\"null.toml\"]\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "cannot read /etc/containerd/null.toml");
                /* Imports that import each other end. */
        put(f, "etc/containerd/config.toml", "version = 2\nimports = [\"a.toml\"]\n");
        put(f, "etc/containerd/a.toml",
            "version = 2\nimports = [\"config.toml\"]\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n"
            "  config_path = \"/etc/containerd/certs.d\"\n");
        assert_state(check(f, TARGET_ALL), TARGET_STATE_ACTIVE, NULL);
}

/* A file name with any bytes (here invalid UTF-8 and a newline) becomes a
 * printable reason: /status, the journal and metrics stay whole. */
static void test_hostile_file_name(void **state) {
        Fixture *f = *state;
        char bad[] = "a\xff\xc0\n\x1b[31m\xe2\x82\xac.txt";

        put(f, "etc/containerd/config.toml", "version = 2\nimports = [\"/etc/containerd/conf.d/*\"]\n");
        put(f, "etc/containerd/conf.d/x", "");
        char rel[128];
        snprintf(rel, sizeof rel, "etc/containerd/conf.d/%s", bad);
        put(f, rel, "[[[\n");
        const TargetStatus *ts = check(f, TARGET_ALL);
        assert_state(ts, TARGET_STATE_INACTIVE, "is not valid TOML");
        for (const unsigned char *p = (const unsigned char *) ts->reason; *p; p++)
                assert_true(*p >= 0x20 && *p != 0x7f && *p != 0xff && *p != 0xc0);
        /* Valid UTF-8 survives: the euro sign is kept. */
        assert_non_null(strstr(ts->reason, "a????[31m\xe2\x82\xac.txt"));
}

static void test_utf8_printable(void **state) {
        char a[] = "ok \xed\xa0\x80 \xf4\x90\x80\x80 \xe0\x80\xaf \xf0\x9f\x98\x80\x7f";
        char c1[] = "a\xc2\x9b" "31m \xc2\x85 \xc2\x9f \xc2\xa0 \xc3\xa9";

        (void) state;
        /* A surrogate, above U+10FFFF, overlong: each byte replaced; an
         * emoji kept; DEL replaced. */
        assert_string_equal(utf8_printable(a), "ok ??? ???? ??? \xf0\x9f\x98\x80?");
        /* C1 controls (CSI, NEL, APC) are control characters too; from
         * U+00A0 on, text. */
        assert_string_equal(utf8_printable(c1), "a??31m ?? ?? \xc2\xa0 \xc3\xa9");
        assert_null(utf8_printable(NULL));
}

static void test_no_config_but_installed(void **state) {
        Fixture *f = *state;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = -1, s;

        assert_int_equal(open_dir_beneath(f->rootfd, "run/containerd", 0755, &fd, NULL), 0);
        close(fd);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s/run/containerd/containerd.sock", f->root);
        s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(s >= 0);
        assert_int_equal(bind(s, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "does not: containerd 1.x");
        close(s);
}

/* config.toml may be a symlink (some distributions ship it so): followed,
 * but inside --root, so an absolute target is the host's file, not ours. */
static void test_symlinked_config_stays_in_root(void **state) {
        Fixture *f = *state;

        if (!have_openat2())
                skip();

        put(f, "usr/share/containerd/config.toml",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n");
        put(f, "etc/containerd/.keep", "");
        assert_int_equal(symlinkat("/usr/share/containerd/config.toml", f->rootfd, "etc/containerd/config.toml"), 0);
        assert_state(check(f, TARGET_ALL), TARGET_STATE_ACTIVE, NULL);
        /* ../../.. cannot climb out of the root either. */
        assert_int_equal(unlinkat(f->rootfd, "etc/containerd/config.toml", 0), 0);
        assert_int_equal(symlinkat("../../../../../../../../usr/share/containerd/config.toml", f->rootfd,
                                   "etc/containerd/config.toml"),
                         0);
        assert_state(check(f, TARGET_ALL), TARGET_STATE_ACTIVE, NULL);
}

static char *data_file(const char *name) {
        const char *dir = getenv("NODETRUST_TEST_DATA") ?: "tests/data";
        char *text = NULL;
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        assert_true(dfd >= 0);
        assert_int_equal(read_file_at(dfd, name, false, 1 << 20, &text, NULL), 0);
        close(dfd);
        return text;
}

/* What containerd itself prints. */
static void test_real_configs(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *v16 = data_file("containerd-1.6-default.toml");
        _cleanup_free_ char *v2 = data_file("containerd-2-default.toml");
        _cleanup_free_ char *dump = data_file("containerd-1.6-dump.toml");
        char *imports;

        /* containerd 1.6's `containerd config default`: config_path "". */
        put(f, "etc/containerd/config.toml", v16);
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "config_path is not set");
        /* containerd 2.x's: version 3, both certs.d directories. */
        put(f, "etc/containerd/config.toml", v2);
        assert_state(check(f, TARGET_ALL), TARGET_STATE_ACTIVE, NULL);
        /* `containerd config dump` of a config whose import set config_path;
         * the dump names the files it merged, gone here: say so. */
        put(f, "etc/containerd/config.toml", dump);
        assert_state(check(f, TARGET_ALL), TARGET_STATE_INACTIVE, "which does not exist");
        imports = strstr(dump, "\nimports = [");
        assert_non_null(imports);
        memcpy(imports + 1, "#", 1);
        put(f, "etc/containerd/config.toml", dump);
        assert_state(check(f, TARGET_ALL), TARGET_STATE_ACTIVE, NULL);
}

static void test_equal(void **state) {
        Fixture *f = *state;
        RuntimeStatus a = {};

        check(f, TARGET_ALL);
        assert_int_equal(runtime_check(f->rootfd, CONFIG, TARGET_ALL, &a), 0);
        assert_true(runtime_status_equal(&a, &f->rs));
        put(f, "usr/bin/containerd", "");
        check(f, TARGET_ALL);
        assert_false(runtime_status_equal(&a, &f->rs));
        runtime_status_done(&a);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_nothing_installed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_docker_and_containers_present, setup, teardown),
                cmocka_unit_test_setup_teardown(test_v2_config_path, setup, teardown),
                cmocka_unit_test_setup_teardown(test_v2_unset_or_elsewhere, setup, teardown),
                cmocka_unit_test_setup_teardown(test_v3, setup, teardown),
                cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_imports, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hostile_file_name, setup, teardown),
                cmocka_unit_test(test_utf8_printable),
                cmocka_unit_test_setup_teardown(test_no_config_but_installed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_symlinked_config_stays_in_root, setup, teardown),
                cmocka_unit_test_setup_teardown(test_real_configs, setup, teardown),
                cmocka_unit_test_setup_teardown(test_equal, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
