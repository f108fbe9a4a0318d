/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certgen.h"
#include "cleanup.h"
#include "strv.h"
#include "trust.h"

static void check_key(const char *key, const char *want) {
        _cleanup_free_ char *name = NULL;
        const char *reason = NULL;
        int r = registry_from_key(key, &name, &reason);

        if (want) {
                if (r < 0)
                        fail_msg("key '%s' refused: %s", key, reason);
                assert_string_equal(name, want);
        } else {
                if (r >= 0)
                        fail_msg("key '%s' accepted as '%s'", key, name);
                assert_int_equal(r, -EINVAL);
                assert_non_null(reason);
        }
}

static void test_key_decoding(void **state) {
        (void) state;
        check_key("registry.example.com", "registry.example.com");
        check_key("a..5000", "a:5000");
        check_key("registry-with-port.example.com..5000", "registry-with-port.example.com:5000");
        check_key("10.0.0.1..443", "10.0.0.1:443");
        check_key("localhost", "localhost");
        check_key("a..1", "a:1");
        check_key("a..65535", "a:65535");
        /* The last ".." is the separator: "a." is no host name. */
        check_key("a...6000", NULL);
        check_key("..x", NULL);
        check_key("a/b", NULL);
        check_key("a:5000", NULL);
        check_key("a..0", NULL);
        check_key("a..65536", NULL);
        check_key("a..99999", NULL);
        check_key("a..050", NULL);
        check_key("a..", NULL);
        check_key("a..b", NULL);
        check_key("a..50x0", NULL);
        check_key("", NULL);
        check_key("-a.example.com", NULL);
        check_key("a-.example.com", NULL);
        check_key("under_score.example.com", NULL);
        check_key("a..b..5000", NULL);
}

static void test_key_lengths(void **state) {
        char label64[65], key[300];

        (void) state;
        memset(label64, 'a', 64);
        label64[64] = 0;
        check_key(label64, NULL);
        label64[63] = 0;
        check_key(label64, label64);

        /* 4 labels of 63 + 3 dots = 255 > 253: too long as a key. */
        snprintf(key, sizeof key, "%s.%s.%s.%s", label64, label64, label64, label64);
        check_key(key, NULL);
        /* Exactly 253 characters is allowed. */
        memset(key, 'b', sizeof key);
        for (int i = 63; i < 253; i += 64)
                key[i] = '.';
        key[253] = 0;
        check_key(key, key);
}

static Snapshot *snap_with(const char *const *kv) {
        Snapshot *s = snapshot_new();
        for (size_t i = 0; kv[i]; i += 2)
                assert_int_equal(snapshot_add_entry(s, kv[i], kv[i + 1], strlen(kv[i + 1])), 0);
        snapshot_sort(s);
        return s;
}

static const TrustRefusal *find_refusal(const TrustSet *t, const char *key) {
        for (size_t i = 0; i < t->n_refused; i++)
                if (streq(t->refused[i].key, key))
                        return &t->refused[i];
        return NULL;
}

static void test_trust_set(void **state) {
        _cleanup_free_ char *pem = certgen_pem("CA one");
        _cleanup_free_ char *key = certgen_key_pem();
        _cleanup_strv_free_ char **ignore = NULL;
        const char *kv[] = {
                "good.example.com..5000", pem,
                "storage-ca-bundle.pem", pem,
                "bad..0", pem,
                "keyed.example.com", key,
                "garbage.example.com", "this is not a certificate",
                "empty.example.com", "",
                NULL,
        };
        _cleanup_(snapshot_freep) Snapshot *s = snap_with(kv);
        _cleanup_(trust_set_freep) TrustSet *t = NULL;

        (void) state;
        assert_int_equal(strv_split_comma(DEFAULT_IGNORE_KEYS, &ignore), 0);
        assert_int_equal(trust_set_from_snapshot(s, ignore, time(NULL), NULL, &t), 0);

        assert_int_equal(t->n_entries, 1);
        assert_string_equal(t->entries[0].registry, "good.example.com:5000");
        assert_string_equal(t->entries[0].key, "good.example.com..5000");
        assert_false(t->entries[0].expired);

        assert_int_equal(strv_length(t->ignored), 1);
        assert_string_equal(t->ignored[0], "storage-ca-bundle.pem");

        assert_int_equal(t->n_refused, 4);
        assert_null(find_refusal(t, "bad..0")->registry);
        assert_non_null(strstr(find_refusal(t, "keyed.example.com")->reason, "private key"));
        assert_string_equal(find_refusal(t, "keyed.example.com")->registry, "keyed.example.com");
        assert_non_null(find_refusal(t, "garbage.example.com"));
        assert_non_null(find_refusal(t, "empty.example.com"));
        /* A bad value must be findable by registry, so its last good file is kept. */
        assert_non_null(trust_set_find_refused(t, "garbage.example.com"));

        /* Nothing about the private key may reach a refusal reason. */
        for (size_t i = 0; i < t->n_refused; i++)
                assert_null(strstr(t->refused[i].reason, "BEGIN"));
}

static void test_ignore_list_configurable(void **state) {
        _cleanup_free_ char *pem = certgen_pem("CA");
        _cleanup_strv_free_ char **ignore = NULL;
        const char *kv[] = { "storage-ca-bundle.pem", pem, "skip.example.com", pem, NULL };
        _cleanup_(snapshot_freep) Snapshot *s = snap_with(kv);
        _cleanup_(trust_set_freep) TrustSet *t = NULL;

        (void) state;
        /* A custom list replaces the default: storage-ca-bundle.pem is then a
         * key like any other, and as it is a valid host name it is applied. */
        assert_int_equal(strv_split_comma("skip.example.com", &ignore), 0);
        assert_int_equal(trust_set_from_snapshot(s, ignore, time(NULL), NULL, &t), 0);
        assert_int_equal(strv_length(t->ignored), 1);
        assert_string_equal(t->ignored[0], "skip.example.com");
        assert_int_equal(t->n_entries, 1);
        assert_string_equal(t->entries[0].registry, "storage-ca-bundle.pem");
}

static void test_expiry_flags(void **state) {
        size_t n;
        _cleanup_free_ char *expired = certgen("old", -7200, -3600, false, &n);
        _cleanup_free_ char *future = certgen("future", 3600, 7200, false, &n);
        const char *kv[] = { "expired.example.com", expired, "future.example.com", future, NULL };
        _cleanup_(snapshot_freep) Snapshot *s = snap_with(kv);
        _cleanup_(trust_set_freep) TrustSet *t = NULL;

        (void) state;
        assert_int_equal(trust_set_from_snapshot(s, NULL, time(NULL), NULL, &t), 0);
        /* Written but flagged, never refused. */
        assert_int_equal(t->n_entries, 2);
        assert_int_equal(t->n_refused, 0);
        assert_true(trust_set_find(t, "expired.example.com")->expired);
        assert_false(trust_set_find(t, "expired.example.com")->not_yet_valid);
        assert_true(trust_set_find(t, "future.example.com")->not_yet_valid);
        assert_false(trust_set_find(t, "future.example.com")->expired);
}

static void test_snapshot_hash(void **state) {
        const char *a[] = { "ab", "c", NULL }, *b[] = { "a", "bc", NULL };
        _cleanup_(snapshot_freep) Snapshot *sa = snap_with(a), *sb = snap_with(b);
        char ha[65], hb[65], ha2[65];

        (void) state;
        snapshot_trust_hash(sa, ha);
        snapshot_trust_hash(sb, hb);
        snapshot_trust_hash(sa, ha2);
        assert_int_equal(strlen(ha), 64);
        assert_string_not_equal(ha, hb);
        assert_string_equal(ha, ha2);
}

static void test_reuse_moves_unchanged_bundles(void **state) {
        _cleanup_free_ char *a = certgen_pem("A"), *b = certgen_pem("B"), *c = certgen_pem("C");
        const char *kv1[] = { "a.example.com", a, "b.example.com", b, NULL };
        /* b's value changed; a's did not, though its key moved. */
        const char *kv2[] = { "a2.example.com", a, "b.example.com", c, NULL };
        _cleanup_(snapshot_freep) Snapshot *s1 = snap_with(kv1), *s2 = snap_with(kv2);
        _cleanup_(trust_set_freep) TrustSet *t1 = NULL, *t2 = NULL;

        (void) state;
        assert_int_equal(trust_set_from_snapshot(s1, NULL, time(NULL), NULL, &t1), 0);
        CertBundle *bundle_a = t1->entries[0].bundle;
        assert_int_equal(trust_set_from_snapshot(s2, NULL, time(NULL), t1, &t2), 0);

        /* Same bytes: the very same parsed bundle, taken out of t1. */
        assert_ptr_equal(trust_set_find(t2, "a2.example.com")->bundle, bundle_a);
        assert_null(trust_set_find(t1, "a.example.com")->bundle);
        /* Changed bytes: parsed afresh, and t1 keeps its own. */
        assert_non_null(trust_set_find(t1, "b.example.com")->bundle);
        assert_non_null(strstr(trust_set_find(t2, "b.example.com")->bundle->certs[0].subject, "CN=C"));
        assert_string_equal(trust_set_find(t2, "a2.example.com")->fingerprint,
                            trust_set_find(t1, "a.example.com")->fingerprint);
}

/* strdup() fails at its fail_at-th call from now (0: never), to prove
 * what a failure mid-build leaves behind. */
static unsigned strdup_calls, strdup_fail_at;

char *strdup(const char *p) {
        size_t n = strlen(p) + 1;
        char *c;

        if (strdup_fail_at && ++strdup_calls == strdup_fail_at)
                return NULL;
        c = malloc(n);
        return c ? memcpy(c, p, n) : NULL;
}

/* A value the source could not take is that key's refusal, with the
 * source's reason and the registry named; the other keys apply. */
static void test_source_refusals(void **state) {
        _cleanup_free_ char *pem = certgen_pem("CA");
        const char *kv[] = { "good.example.com", pem, NULL };
        _cleanup_(snapshot_freep) Snapshot *s = snap_with(kv);
        _cleanup_(trust_set_freep) TrustSet *t = NULL;

        (void) state;
        assert_int_equal(snapshot_add_refused(s, "fifo.example.com..5000", "is a FIFO, not a regular file"), 0);
        assert_int_equal(snapshot_add_refused(s, "bad key", "is a FIFO, not a regular file"), 0);
        snapshot_sort(s);
        assert_int_equal(trust_set_from_snapshot(s, NULL, time(NULL), NULL, &t), 0);
        assert_int_equal(t->n_entries, 1);
        assert_int_equal(t->n_refused, 2);
        assert_string_equal(trust_set_find_refused(t, "fifo.example.com:5000")->reason,
                            "is a FIFO, not a regular file");
        /* A key that is no registry says so first. */
        assert_non_null(strstr(find_refusal(t, "bad key")->reason, "invalid character"));

        /* A refused entry changes the map's hash, and its reason does too. */
        const char *kv2[] = { "good.example.com", pem, NULL };
        _cleanup_(snapshot_freep) Snapshot *a = snap_with(kv2), *b = snap_with(kv2), *c = snap_with(kv2);
        char ha[65], hb[65], hc[65];
        assert_int_equal(snapshot_add_refused(b, "x.example.com", "is a FIFO, not a regular file"), 0);
        assert_int_equal(snapshot_add_refused(c, "x.example.com", "is a socket, not a regular file"), 0);
        snapshot_trust_hash(a, ha);
        snapshot_trust_hash(b, hb);
        snapshot_trust_hash(c, hc);
        assert_string_not_equal(ha, hb);
        assert_string_not_equal(hb, hc);
}

/* A snapshot from any source over the key limit: the first 4096 by key
 * are judged, the rest refused naming the limit. */
static void test_key_limit(void **state) {
        _cleanup_(snapshot_freep) Snapshot *s = snapshot_new();
        _cleanup_(trust_set_freep) TrustSet *t = NULL;
        char key[64];

        (void) state;
        for (unsigned i = 0; i < SNAPSHOT_ENTRIES_MAX + 4; i++) {
                snprintf(key, sizeof key, "r%05u.example.com", i);
                assert_int_equal(snapshot_add_entry(s, key, "x", 1), 0);
        }
        snapshot_sort(s);
        assert_int_equal(trust_set_from_snapshot(s, NULL, time(NULL), NULL, &t), 0);
        assert_int_equal(t->n_refused, SNAPSHOT_ENTRIES_MAX + 4);
        assert_string_equal(find_refusal(t, "r04095.example.com")->reason, "not PEM, base64 or a DER certificate");
        assert_string_equal(find_refusal(t, "r04096.example.com")->reason,
                            "beyond the agent's limit of 4096 keys per map (the map has 4100)");
        assert_string_equal(trust_set_find_refused(t, "r04099.example.com")->registry, "r04099.example.com");
}

/* Duplicates are found by sorting now, not by a lookup per key: at the
 * limit still exactly each second key naming a registry is refused, and
 * every lookup finds what it should. */
static void test_duplicates_at_scale(void **state) {
        _cleanup_free_ char *pem = certgen_pem("CA");
        _cleanup_(snapshot_freep) Snapshot *s = snapshot_new();
        _cleanup_(trust_set_freep) TrustSet *t = NULL;
        const unsigned n = SNAPSHOT_ENTRIES_MAX / 2;
        char key[64];

        (void) state;
        for (unsigned i = 0; i < n; i++) {
                snprintf(key, sizeof key, "r%05u.example.com..5000", i);
                assert_int_equal(snapshot_add_entry(s, key, pem, strlen(pem)), 0);
                assert_int_equal(snapshot_add_entry(s, key, pem, strlen(pem)), 0);
        }
        snapshot_sort(s);
        assert_int_equal(trust_set_from_snapshot(s, NULL, time(NULL), NULL, &t), 0);
        assert_int_equal(t->n_entries, n);
        assert_int_equal(t->n_refused, n);
        for (unsigned i = 0; i < n; i++) {
                snprintf(key, sizeof key, "r%05u.example.com:5000", i);
                assert_string_equal(t->entries[i].registry, key);
                assert_non_null(trust_set_find(t, key));
                assert_string_equal(trust_set_find_refused(t, key)->reason, "another key names the same registry");
        }
        assert_null(trust_set_find(t, "r99999.example.com:5000"));
        assert_null(trust_set_find_refused(t, "r00000.example.com"));
}

/* A failure (ENOMEM) half-way must leave the previous set whole: bundles
 * taken from it were freed with the half-built set, and the manager,
 * keeping the previous set, then held registries with no bundle. */
static void test_reuse_survives_failure(void **state) {
        _cleanup_free_ char *a = certgen_pem("A"), *b = certgen_pem("B"), *c = certgen_pem("C");
        const char *kv[] = { "a.example.com", a, "b.example.com", b, "c.example.com", c, NULL };
        _cleanup_(snapshot_freep) Snapshot *s = snap_with(kv);
        _cleanup_(trust_set_freep) TrustSet *t1 = NULL, *t2 = NULL;
        int r;

        (void) state;
        assert_int_equal(trust_set_from_snapshot(s, NULL, time(NULL), NULL, &t1), 0);
        /* Every strdup() of the build in turn fails, until one succeeds. */
        for (unsigned k = 1;; k++) {
                strdup_calls = 0;
                strdup_fail_at = k;
                r = trust_set_from_snapshot(s, NULL, time(NULL), t1, &t2);
                strdup_fail_at = 0;
                if (r >= 0)
                        break;
                assert_int_equal(r, -ENOMEM);
                assert_int_equal(t1->n_entries, 3);
                for (size_t i = 0; i < t1->n_entries; i++)
                        assert_non_null(t1->entries[i].bundle);
        }
        /* And when it succeeds, every bundle moved. */
        for (size_t i = 0; i < t1->n_entries; i++) {
                assert_null(t1->entries[i].bundle);
                assert_non_null(t2->entries[i].bundle);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_key_decoding),
                cmocka_unit_test(test_key_lengths),
                cmocka_unit_test(test_trust_set),
                cmocka_unit_test(test_ignore_list_configurable),
                cmocka_unit_test(test_expiry_flags),
                cmocka_unit_test(test_snapshot_hash),
                cmocka_unit_test(test_reuse_moves_unchanged_bundles),
                cmocka_unit_test(test_source_refusals),
                cmocka_unit_test(test_key_limit),
                cmocka_unit_test(test_duplicates_at_scale),
                cmocka_unit_test(test_reuse_survives_failure),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
