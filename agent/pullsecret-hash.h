/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The pull secret's published hash (State.pull_secret_hash: /status, the
 * aggregator report, log lines). A plain sha256 of the secret would let
 * anyone who sees it test password guesses offline, so it is an
 * HMAC-SHA256 of the normalized secret keyed with a random per-node key
 * that never leaves <state-dir>/hash.key (32 bytes, mode 0600, in the 0700
 * state directory). It still changes exactly when the secret changes on
 * that node, which is all it is for; nothing compares it across nodes.
 */

#include <stddef.h>
#include <stdint.h>

#define PULL_SECRET_KEY_FILE "hash.key"
#define PULL_SECRET_KEY_SIZE 32

typedef enum PullSecretKeyOrigin {
        PULL_SECRET_KEY_NONE,     /* no key was needed (no valid secret) */
        PULL_SECRET_KEY_LOADED,   /* read from the state directory */
        PULL_SECRET_KEY_NEW,      /* there was none: a fresh one, not saved yet */
        PULL_SECRET_KEY_REPLACED, /* the file was not a key: a fresh one, not saved yet */
} PullSecretKeyOrigin;

/* Read the key from <state_dir>/hash.key below rootfd. When the file is
 * missing, or is not a regular file of exactly PULL_SECRET_KEY_SIZE bytes,
 * ret is a fresh random key and *ret_origin says NEW or REPLACED: save it
 * with pull_secret_hash_key_save() before publishing a hash made with it.
 * Writes nothing. Other read errors are returned (negative errno). */
int pull_secret_hash_key_load(int rootfd, const char *state_dir, uint8_t ret[PULL_SECRET_KEY_SIZE],
                              PullSecretKeyOrigin *ret_origin);

/* Write the key to <state_dir>/hash.key atomically, mode 0600, creating the
 * state directory 0700 if needed. */
int pull_secret_hash_key_save(int rootfd, const char *state_dir, const uint8_t key[PULL_SECRET_KEY_SIZE]);

/* HMAC-SHA256 of data keyed with key, as 64 lowercase hex digits plus NUL.
 * -EIO when OpenSSL fails (ret is then ""). */
int pull_secret_hash(const uint8_t key[PULL_SECRET_KEY_SIZE], const void *data, size_t size, char ret[65]);
