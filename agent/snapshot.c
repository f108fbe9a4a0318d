/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "hash.h"
#include "snapshot.h"

Snapshot *snapshot_new(void) {
        return calloc(1, sizeof(Snapshot));
}

Snapshot *snapshot_free(Snapshot *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_entries; i++) {
                free(s->entries[i].key);
                free(s->entries[i].value);
        }
        free(s->entries);
        if (s->pull_secret) {
                /* The pull secret is a credential: do not leave it in freed heap. */
                explicit_bzero(s->pull_secret, s->pull_secret_size);
                free(s->pull_secret);
        }
        free(s->origin);
        free(s);
        return NULL;
}

int snapshot_add_entry(Snapshot *s, const char *key, const void *value, size_t size) {
        SnapshotEntry *n;
        unsigned char *v;
        char *k;

        assert(s);
        assert(key);
        assert(value || size == 0);

        k = strdup(key);
        v = malloc(size + 1);
        if (!k || !v) {
                free(k);
                free(v);
                return -ENOMEM;
        }
        memcpy(v, value, size);
        v[size] = 0;
        n = realloc(s->entries, (s->n_entries + 1) * sizeof *n);
        if (!n) {
                free(k);
                free(v);
                return -ENOMEM;
        }
        s->entries = n;
        s->entries[s->n_entries++] = (SnapshotEntry){ .key = k, .value = v, .size = size };
        s->have_trust = true;
        return 0;
}

int snapshot_set_pull_secret(Snapshot *s, const void *data, size_t size) {
        unsigned char *v;

        assert(s);
        assert(data || size == 0);

        v = malloc(size + 1);
        if (!v)
                return -ENOMEM;
        memcpy(v, data, size);
        v[size] = 0;
        if (s->pull_secret) {
                explicit_bzero(s->pull_secret, s->pull_secret_size);
                free(s->pull_secret);
        }
        s->pull_secret = v;
        s->pull_secret_size = size;
        s->have_pull_secret = true;
        return 0;
}

static int entry_cmp(const void *a, const void *b) {
        return strcmp(((const SnapshotEntry *) a)->key, ((const SnapshotEntry *) b)->key);
}

void snapshot_sort(Snapshot *s) {
        assert(s);

        if (s->n_entries > 1)
                qsort(s->entries, s->n_entries, sizeof *s->entries, entry_cmp);
}

void snapshot_trust_hash(const Snapshot *s, char ret[65]) {
        Sha256 *h;

        assert(s);
        assert(ret);

        h = sha256_begin();
        /* Length-prefix every field in decimal, so ("ab","c") and ("a","bc")
         * differ and every node computes the same hash for the same map
         * whatever its word size or byte order. */
        for (size_t i = 0; i < s->n_entries; i++) {
                char len[64];
                int n = snprintf(len, sizeof len, "%zu:%zu:", strlen(s->entries[i].key), s->entries[i].size);
                sha256_feed(h, len, (size_t) n);
                sha256_feed(h, s->entries[i].key, strlen(s->entries[i].key));
                sha256_feed(h, s->entries[i].value, s->entries[i].size);
        }
        sha256_end(h, ret);
}
