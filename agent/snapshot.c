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
                free(s->entries[i].error);
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

/* Room for one more entry. From n_entries, not n_allocated alone: a test
 * may have built the array by hand (n_allocated 0). */
static int entries_reserve(Snapshot *s) {
        if (s->n_allocated < s->n_entries)
                s->n_allocated = s->n_entries;
        return greedy_realloc((void **) &s->entries, &s->n_allocated, s->n_entries + 1, 8, sizeof *s->entries);
}

static int entry_add(Snapshot *s, const char *key, const void *value, size_t size, const char *error) {
        _cleanup_free_ char *k = NULL, *e = NULL;
        unsigned char *v;

        k = strdup(key);
        e = error ? strdup(error) : NULL;
        if (!k || (error && !e) || entries_reserve(s) < 0)
                return -ENOMEM;
        v = malloc(size + 1);
        if (!v)
                return -ENOMEM;
        if (size > 0)
                memcpy(v, value, size);
        v[size] = 0;
        s->entries[s->n_entries++] =
                (SnapshotEntry){ .key = TAKE_PTR(k), .value = v, .size = size, .error = TAKE_PTR(e) };
        s->have_trust = true;
        return 0;
}

int snapshot_add_entry(Snapshot *s, const char *key, const void *value, size_t size) {
        assert(s);
        assert(key);
        assert(value || size == 0);

        return entry_add(s, key, value, size, NULL);
}

int snapshot_add_refused(Snapshot *s, const char *key, const char *reason) {
        assert(s);
        assert(key);
        assert(reason);

        return entry_add(s, key, NULL, 0, reason);
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

int snapshot_limit_entries(Snapshot *s) {
        char reason[128];

        assert(s);

        if (s->n_entries <= SNAPSHOT_ENTRIES_MAX)
                return 0;
        snapshot_sort(s);
        snprintf(reason, sizeof reason, "beyond the agent's limit of %u keys per map (the map has %zu)",
                 (unsigned) SNAPSHOT_ENTRIES_MAX, s->n_entries);
        for (size_t i = SNAPSHOT_ENTRIES_MAX; i < s->n_entries; i++) {
                SnapshotEntry *e = &s->entries[i];
                char *why = strdup(reason);

                if (!why)
                        return -ENOMEM;
                free(e->error);
                e->error = why;
                /* The value is not kept: a refused key holds no memory. */
                explicit_bzero(e->value, e->size);
                e->value[0] = 0;
                e->size = 0;
        }
        return 0;
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
                const SnapshotEntry *e = &s->entries[i];
                char len[64];
                int n;

                /* "!" marks a refused entry, hashed with its reason: a map
                 * whose FIFO became a file is a different map. */
                if (e->error)
                        n = snprintf(len, sizeof len, "%zu:!%zu:", strlen(e->key), strlen(e->error));
                else
                        n = snprintf(len, sizeof len, "%zu:%zu:", strlen(e->key), e->size);
                sha256_feed(h, len, (size_t) n);
                sha256_feed(h, e->key, strlen(e->key));
                if (e->error)
                        sha256_feed(h, e->error, strlen(e->error));
                else
                        sha256_feed(h, e->value, e->size);
        }
        sha256_end(h, ret);
}
