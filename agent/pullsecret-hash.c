/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "fs.h"
#include "pullsecret-hash.h"
#include "pullsecret-ledger.h"
#include "pullsecret-validate.h"

/* Larger files are not keys; read_file_at() says -EFBIG before reading them. */
#define KEY_FILE_MAX 4096

/* A key of all zero bytes is what a file system leaves behind when it lost
 * the data but kept the size: not a key. */
static bool key_plausible(const char *data, size_t size) {
        if (size != PULL_SECRET_KEY_SIZE)
                return false;
        for (size_t i = 0; i < size; i++)
                if (data[i] != 0)
                        return true;
        return false;
}

int pull_secret_hash_key_load(int rootfd, const char *state_dir, uint8_t ret[PULL_SECRET_KEY_SIZE],
                              PullSecretKeyOrigin *ret_origin) {
        _cleanup_close_ int dfd = -1;
        char *data = NULL;
        size_t size = 0;
        int r;

        assert(state_dir);
        assert(ret);
        assert(ret_origin);

        r = open_dir_beneath(rootfd, state_dir, 0, &dfd, NULL);
        if (r < 0 && r != -ENOENT)
                return r;
        if (r >= 0)
                r = read_file_at(dfd, PULL_SECRET_KEY_FILE, false, KEY_FILE_MAX, &data, &size);
        if (r >= 0 && key_plausible(data, size)) {
                memcpy(ret, data, PULL_SECRET_KEY_SIZE);
                pull_secret_wipe_free(data, size);
                *ret_origin = PULL_SECRET_KEY_LOADED;
                return 0;
        }
        pull_secret_wipe_free(data, size);

        switch (r) {
        case -ENOENT:
                *ret_origin = PULL_SECRET_KEY_NEW;
                break;
        case 0:       /* wrong size, or all zeros */
        case -EFBIG:  /* far too large */
        case -ELOOP:  /* a symlink: never followed, replaced by a file */
        case -EISDIR: /* not a file at all: saving will say why */
        case -EBADFD:
                *ret_origin = PULL_SECRET_KEY_REPLACED;
                break;
        default:
                return r;
        }
        if (RAND_bytes(ret, PULL_SECRET_KEY_SIZE) != 1)
                return -EIO;
        return 0;
}

int pull_secret_hash_key_save(int rootfd, const char *state_dir, const uint8_t key[PULL_SECRET_KEY_SIZE]) {
        _cleanup_close_ int dfd = -1;
        int r;

        assert(state_dir);
        assert(key);

        r = open_private_dir_beneath(rootfd, state_dir, &dfd);
        if (r < 0)
                return r;
        return write_file_atomic_at(dfd, PULL_SECRET_KEY_FILE, key, PULL_SECRET_KEY_SIZE, 0600, (uid_t) -1,
                                    (gid_t) -1);
}

int pull_secret_hash(const uint8_t key[PULL_SECRET_KEY_SIZE], const void *data, size_t size, char ret[65]) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned len = 0;

        assert(key);
        assert(data || size == 0);
        assert(ret);

        ret[0] = 0;
        if (!HMAC(EVP_sha256(), key, PULL_SECRET_KEY_SIZE, data, size, mac, &len) || len != 32)
                return -EIO;
        for (unsigned i = 0; i < len; i++)
                snprintf(ret + 2 * i, 3, "%02x", mac[i]);
        return 0;
}
