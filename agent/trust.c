/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "hash.h"
#include "hostname.h"
#include "strv.h"
#include "trust.h"

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int registry_from_key(const char *key, char **ret, const char **ret_reason) {
        const char *sep = NULL, *reason;
        size_t len;
        char *name;

        assert(key);
        assert(ret);
        assert(ret_reason);

        len = strlen(key);
        /* The shape Kubernetes itself enforces on config map keys. */
        if (len == 0) {
                *ret_reason = "empty key";
                return -EINVAL;
        }
        if (len > KEY_MAX) {
                *ret_reason = "key longer than 253 characters";
                return -EINVAL;
        }
        if (strncmp(key, "..", 2) == 0) {
                *ret_reason = "key starts with '..'";
                return -EINVAL;
        }
        for (size_t i = 0; i < len; i++)
                if (!is_alnum(key[i]) && !strchr("-._", key[i])) {
                        *ret_reason = "invalid character in key (allowed: letters, digits, '-', '.', '_')";
                        return -EINVAL;
                }

        /* The last ".." separates the port, as OpenShift's node-ca reads it. */
        for (const char *p = key; (p = strstr(p, "..")); p++)
                sep = p;

        size_t host_len = sep ? (size_t) (sep - key) : len;
        reason = hostname_check(key, host_len);
        if (reason) {
                *ret_reason = reason;
                return -EINVAL;
        }

        if (sep) {
                const char *port = sep + 2;
                size_t pl = strlen(port);
                unsigned long v = 0;

                if (pl == 0) {
                        *ret_reason = "empty port after '..'";
                        return -EINVAL;
                }
                for (size_t i = 0; i < pl; i++)
                        if (port[i] < '0' || port[i] > '9') {
                                *ret_reason = "port is not a number";
                                return -EINVAL;
                        }
                /* A leading zero would name a directory no runtime looks up. */
                if (pl > 5 || port[0] == '0') {
                        *ret_reason = "port out of range 1-65535";
                        return -EINVAL;
                }
                v = strtoul(port, NULL, 10);
                if (v < 1 || v > 65535) {
                        *ret_reason = "port out of range 1-65535";
                        return -EINVAL;
                }
                if (asprintf(&name, "%.*s:%lu", (int) host_len, key, v) < 0)
                        return -ENOMEM;
        } else {
                name = strdup(key);
                if (!name)
                        return -ENOMEM;
        }
        *ret = name;
        return 0;
}

TrustSet *trust_set_free(TrustSet *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_entries; i++) {
                free(t->entries[i].key);
                free(t->entries[i].registry);
                cert_bundle_free(t->entries[i].bundle);
        }
        free(t->entries);
        for (size_t i = 0; i < t->n_refused; i++) {
                free(t->refused[i].key);
                free(t->refused[i].registry);
                free(t->refused[i].reason);
        }
        free(t->refused);
        free(t->refused_by_registry);
        strv_free(t->ignored);
        free(t);
        return NULL;
}

static int refuse(TrustSet *t, size_t *allocated, const char *key, const char *registry, const char *reason) {
        TrustRefusal *n;

        if (greedy_realloc((void **) &t->refused, allocated, t->n_refused + 1, 16, sizeof *t->refused) < 0)
                return -ENOMEM;
        n = &t->refused[t->n_refused];
        *n = (TrustRefusal){ .key = strdup(key), .registry = registry ? strdup(registry) : NULL,
                             .reason = strdup(reason) };
        if (!n->key || !n->reason || (registry && !n->registry)) {
                free(n->key);
                free(n->registry);
                free(n->reason);
                return -ENOMEM;
        }
        t->n_refused++;
        return 0;
}

static int refusal_cmp(const void *a, const void *b) {
        const TrustRefusal *x = a, *y = b;
        int c = strcmp(x->key, y->key);

        return c != 0 ? c : strcmp(x->reason, y->reason);
}

static int refusal_ptr_cmp_registry(const void *a, const void *b) {
        return strcmp((*(TrustRefusal *const *) a)->registry, (*(TrustRefusal *const *) b)->registry);
}

/*
 * A trust set being built. Entries are appended in snapshot order; a bundle
 * lent by the previous set (reuse) is only noted (lent[i], its index there)
 * and moved when the set is complete, so a failure (ENOMEM) anywhere leaves
 * reuse exactly as it was. Lookups into reuse go through by_hash, its
 * entries sorted by value hash, with bsearch(): a scan per key was O(n^2)
 * at the 4,096-key limit.
 */
typedef struct Build {
        TrustSet *t;
        size_t entries_allocated, refused_allocated;
        size_t *lent; /* per t->entries: index into reuse->entries, or SIZE_MAX */
        size_t lent_allocated;

        TrustSet *reuse;
        size_t *by_hash; /* indices into reuse->entries with a bundle */
        size_t n_by_hash;
        bool *claimed; /* per reuse->entries: lent to an entry of t */
} Build;

static int by_hash_cmp(const void *a, const void *b, void *userdata) {
        const TrustEntry *e = userdata;
        return strcmp(e[*(const size_t *) a].value_hash, e[*(const size_t *) b].value_hash);
}

static int reuse_init(Build *b, TrustSet *reuse) {
        b->reuse = reuse;
        if (!reuse || reuse->n_entries == 0)
                return 0;
        b->by_hash = calloc(reuse->n_entries, sizeof *b->by_hash);
        b->claimed = calloc(reuse->n_entries, sizeof *b->claimed);
        if (!b->by_hash || !b->claimed)
                return -ENOMEM;
        for (size_t i = 0; i < reuse->n_entries; i++)
                if (reuse->entries[i].bundle)
                        b->by_hash[b->n_by_hash++] = i;
        qsort_r(b->by_hash, b->n_by_hash, sizeof *b->by_hash, by_hash_cmp, reuse->entries);
        return 0;
}

/* The index (into reuse->entries) of a bundle parsed from a value with this
 * hash and not lent yet, now lent; SIZE_MAX when there is none. */
static size_t reuse_claim(Build *b, const char *value_hash) {
        size_t lo = 0, hi = b->n_by_hash;

        /* The first index whose hash is not below value_hash. */
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (strcmp(b->reuse->entries[b->by_hash[mid]].value_hash, value_hash) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        /* Several keys may share a value: each takes one bundle. */
        for (; lo < b->n_by_hash && streq(b->reuse->entries[b->by_hash[lo]].value_hash, value_hash); lo++)
                if (!b->claimed[b->by_hash[lo]]) {
                        b->claimed[b->by_hash[lo]] = true;
                        return b->by_hash[lo];
                }
        return SIZE_MAX;
}

static void build_done(Build *b) {
        free(b->lent);
        free(b->by_hash);
        free(b->claimed);
}

static int add_entry(Build *b, const SnapshotEntry *e, char **registry, time_t now) {
        _cleanup_(cert_bundle_freep) CertBundle *parsed = NULL;
        TrustSet *t = b->t;
        const CertBundle *bundle;
        const char *reason = NULL;
        char value_hash[65];
        size_t lent;
        int r;

        sha256_hex(e->value, e->size, value_hash);
        lent = reuse_claim(b, value_hash);
        if (lent != SIZE_MAX)
                bundle = b->reuse->entries[lent].bundle;
        else {
                r = cert_bundle_parse(e->value, e->size, &parsed, &reason);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return refuse(t, &b->refused_allocated, e->key, *registry, reason);
                bundle = parsed;
        }

        if (greedy_realloc((void **) &t->entries, &b->entries_allocated, t->n_entries + 1, 16, sizeof *t->entries) < 0 ||
            greedy_realloc((void **) &b->lent, &b->lent_allocated, t->n_entries + 1, 16, sizeof *b->lent) < 0) {
                if (lent != SIZE_MAX)
                        b->claimed[lent] = false;
                return -ENOMEM;
        }
        TrustEntry *n = &t->entries[t->n_entries];
        *n = (TrustEntry){ .key = strdup(e->key) };
        if (!n->key) {
                if (lent != SIZE_MAX)
                        b->claimed[lent] = false;
                return -ENOMEM;
        }
        n->registry = TAKE_PTR(*registry);
        memcpy(n->value_hash, value_hash, sizeof value_hash);
        /* A lent bundle comes with its fingerprint: the same bytes. */
        if (lent != SIZE_MAX)
                memcpy(n->fingerprint, b->reuse->entries[lent].fingerprint, sizeof n->fingerprint);
        else
                sha256_hex(bundle->pem, bundle->pem_size, n->fingerprint);
        for (size_t c = 0; c < bundle->n_certs; c++) {
                if (bundle->certs[c].not_after < now)
                        n->expired = true;
                if (bundle->certs[c].not_before > now)
                        n->not_yet_valid = true;
        }
        /* A lent bundle stays reuse's until the commit. */
        n->bundle = TAKE_PTR(parsed);
        b->lent[t->n_entries++] = lent;
        return 0;
}

static int order_cmp(const void *a, const void *b, void *userdata) {
        const TrustEntry *e = userdata, *x = &e[*(const size_t *) a], *y = &e[*(const size_t *) b];
        int c = strcmp(x->registry, y->registry);

        /* Among keys naming one registry the first by key wins, as the
         * first in the (sorted) snapshot did. */
        return c != 0 ? c : strcmp(x->key, y->key);
}

/* trust_set_find_refused() looks refusals up by registry with bsearch(). */
static int index_refused(TrustSet *t) {
        size_t n = 0;

        if (t->n_refused > 1)
                qsort(t->refused, t->n_refused, sizeof *t->refused, refusal_cmp);
        t->refused_by_registry = calloc(t->n_refused ? t->n_refused : 1, sizeof *t->refused_by_registry);
        if (!t->refused_by_registry)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_refused; i++)
                if (t->refused[i].registry)
                        t->refused_by_registry[n++] = &t->refused[i];
        if (n > 1)
                qsort(t->refused_by_registry, n, sizeof *t->refused_by_registry, refusal_ptr_cmp_registry);
        t->n_refused_by_registry = n;
        return 0;
}

/*
 * Sort the entries by registry, refuse every key but the first naming a
 * registry (sort and compare neighbours: O(n log n), where a lookup per key
 * was O(n^2)), and move the lent bundles over. Everything that can fail
 * comes before the first change to reuse.
 */
static int finish(Build *b) {
        _cleanup_free_ size_t *order = NULL;
        _cleanup_free_ TrustEntry *sorted = NULL;
        TrustSet *t = b->t;
        size_t n = t->n_entries, o = 0;
        int r;

        order = calloc(n ? n : 1, sizeof *order);
        sorted = calloc(n ? n : 1, sizeof *sorted);
        if (!order || !sorted)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                order[i] = i;
        qsort_r(order, n, sizeof *order, order_cmp, t->entries);
        for (size_t k = 1; k < n; k++)
                if (streq(t->entries[order[k]].registry, t->entries[order[k - 1]].registry)) {
                        r = refuse(t, &b->refused_allocated, t->entries[order[k]].key,
                                   t->entries[order[k]].registry, "another key names the same registry");
                        if (r < 0)
                                return r;
                }
        r = index_refused(t);
        if (r < 0)
                return r;

        /* Nothing fails from here on. */
        for (size_t k = 0; k < n; k++) {
                TrustEntry *e = &t->entries[order[k]];
                size_t lent = b->lent[order[k]];

                if (o > 0 && streq(e->registry, sorted[o - 1].registry)) {
                        free(e->key);
                        free(e->registry);
                        cert_bundle_free(e->bundle);
                        continue; /* a lent bundle stays where it was */
                }
                sorted[o] = *e;
                if (lent != SIZE_MAX)
                        sorted[o].bundle = TAKE_PTR(b->reuse->entries[lent].bundle);
                o++;
        }
        free(t->entries);
        t->entries = TAKE_PTR(sorted);
        t->n_entries = o;
        return 0;
}

static int build(Build *b, const Snapshot *s, char *const *ignore, time_t now) {
        TrustSet *t = b->t;
        int r;

        for (size_t i = 0; i < s->n_entries; i++) {
                const SnapshotEntry *e = &s->entries[i];
                _cleanup_free_ char *registry = NULL;
                const char *reason = NULL;

                if (strv_contains(ignore, e->key)) {
                        r = strv_extend(&t->ignored, e->key);
                        if (r < 0)
                                return r;
                        continue;
                }

                r = registry_from_key(e->key, &registry, &reason);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        r = refuse(t, &b->refused_allocated, e->key, NULL, reason);
                else if (e->error)
                        /* The source could not take the value (a FIFO, over
                         * the size limit): this key alone is refused. */
                        r = refuse(t, &b->refused_allocated, e->key, registry, e->error);
                else if (i >= SNAPSHOT_ENTRIES_MAX) {
                        /* The snapshot is sorted: the keys a directory source
                         * refuses too (snapshot_limit_entries()). */
                        _cleanup_free_ char *why = NULL;
                        if (asprintf(&why, "beyond the agent's limit of %u keys per map (the map has %zu)",
                                     (unsigned) SNAPSHOT_ENTRIES_MAX, s->n_entries) < 0)
                                return -ENOMEM;
                        r = refuse(t, &b->refused_allocated, e->key, registry, why);
                } else
                        r = add_entry(b, e, &registry, now);
                if (r < 0)
                        return r;
        }
        return finish(b);
}

int trust_set_from_snapshot(const Snapshot *s, char *const *ignore, time_t now, TrustSet *reuse,
                            TrustSet **ret) {
        _cleanup_(trust_set_freep) TrustSet *t = NULL;
        Build b = {};
        int r;

        /* ignore (no keys skipped) and reuse (nothing parsed before) may be NULL. */
        assert(s);
        assert(ret);

        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        b.t = t;
        r = reuse_init(&b, reuse);
        if (r >= 0)
                r = build(&b, s, ignore, now);
        /* On failure the bundles lent stay in reuse: the entries of t
         * never held them. */
        build_done(&b);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(t);
        return 0;
}

static int find_cmp(const void *key, const void *b) {
        return strcmp(key, ((const TrustEntry *) b)->registry);
}

const TrustEntry *trust_set_find(const TrustSet *t, const char *registry) {
        assert(t);
        assert(registry);

        /* entries are sorted by registry (one per registry). */
        return t->n_entries > 0 ? bsearch(registry, t->entries, t->n_entries, sizeof *t->entries, find_cmp) : NULL;
}

static int find_refused_cmp(const void *key, const void *b) {
        return strcmp(key, (*(TrustRefusal *const *) b)->registry);
}

const TrustRefusal *trust_set_find_refused(const TrustSet *t, const char *registry) {
        TrustRefusal *const *hit;

        assert(t);
        assert(registry);

        /* A set built by hand (tests) has no index: look through it. */
        if (!t->refused_by_registry) {
                for (size_t i = 0; i < t->n_refused; i++)
                        if (t->refused[i].registry && streq(t->refused[i].registry, registry))
                                return &t->refused[i];
                return NULL;
        }
        if (t->n_refused_by_registry == 0)
                return NULL;
        hit = bsearch(registry, t->refused_by_registry, t->n_refused_by_registry, sizeof *t->refused_by_registry,
                      find_refused_cmp);
        return hit ? *hit : NULL;
}
