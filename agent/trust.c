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
        strv_free(t->ignored);
        free(t);
        return NULL;
}

static int refuse(TrustSet *t, const char *key, const char *registry, const char *reason) {
        TrustRefusal *n = realloc(t->refused, (t->n_refused + 1) * sizeof *n);

        if (!n)
                return -ENOMEM;
        t->refused = n;
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

static int entry_cmp(const void *a, const void *b) {
        return strcmp(((const TrustEntry *) a)->registry, ((const TrustEntry *) b)->registry);
}

/* Take the bundle parsed from a value with this hash out of reuse, or NULL. */
static CertBundle *reuse_take(TrustSet *reuse, const char *value_hash) {
        for (size_t i = 0; reuse && i < reuse->n_entries; i++)
                if (reuse->entries[i].bundle && streq(reuse->entries[i].value_hash, value_hash))
                        return TAKE_PTR(reuse->entries[i].bundle);
        return NULL;
}

int trust_set_from_snapshot(const Snapshot *s, char *const *ignore, time_t now, TrustSet *reuse,
                            TrustSet **ret) {
        _cleanup_(trust_set_freep) TrustSet *t = NULL;
        int r;

        /* ignore (no keys skipped) and reuse (nothing parsed before) may be NULL. */
        assert(s);
        assert(ret);

        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;

        for (size_t i = 0; i < s->n_entries; i++) {
                const SnapshotEntry *e = &s->entries[i];
                _cleanup_free_ char *registry = NULL;
                _cleanup_(cert_bundle_freep) CertBundle *bundle = NULL;
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
                if (r < 0) {
                        r = refuse(t, e->key, NULL, reason);
                        if (r < 0)
                                return r;
                        continue;
                }

                if (trust_set_find(t, registry)) {
                        r = refuse(t, e->key, registry, "another key names the same registry");
                        if (r < 0)
                                return r;
                        continue;
                }

                char value_hash[65];
                sha256_hex(e->value, e->size, value_hash);
                bundle = reuse_take(reuse, value_hash);
                if (!bundle) {
                        r = cert_bundle_parse(e->value, e->size, &bundle, &reason);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0) {
                                r = refuse(t, e->key, registry, reason);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                }

                TrustEntry *n = realloc(t->entries, (t->n_entries + 1) * sizeof *n);
                if (!n)
                        return -ENOMEM;
                t->entries = n;
                n = &t->entries[t->n_entries];
                *n = (TrustEntry){ .key = strdup(e->key) };
                if (!n->key)
                        return -ENOMEM;
                n->registry = TAKE_PTR(registry);
                memcpy(n->value_hash, value_hash, sizeof value_hash);
                sha256_hex(bundle->pem, bundle->pem_size, n->fingerprint);
                for (size_t c = 0; c < bundle->n_certs; c++) {
                        if (bundle->certs[c].not_after < now)
                                n->expired = true;
                        if (bundle->certs[c].not_before > now)
                                n->not_yet_valid = true;
                }
                n->bundle = TAKE_PTR(bundle);
                t->n_entries++;
        }

        if (t->n_entries > 1)
                qsort(t->entries, t->n_entries, sizeof *t->entries, entry_cmp);
        *ret = TAKE_PTR(t);
        return 0;
}

const TrustEntry *trust_set_find(const TrustSet *t, const char *registry) {
        assert(t);
        assert(registry);

        for (size_t i = 0; i < t->n_entries; i++)
                if (streq(t->entries[i].registry, registry))
                        return &t->entries[i];
        return NULL;
}

const TrustRefusal *trust_set_find_refused(const TrustSet *t, const char *registry) {
        assert(t);
        assert(registry);

        for (size_t i = 0; i < t->n_refused; i++)
                if (t->refused[i].registry && streq(t->refused[i].registry, registry))
                        return &t->refused[i];
        return NULL;
}
