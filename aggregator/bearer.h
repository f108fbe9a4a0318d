/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The bearer tokens agents must present. The token file holds one token per
 * non-empty line, so an operator can rotate: add the new token, roll the
 * agents, remove the old one. The file is re-read when it changes (checked
 * on each request: a stat() is cheap next to a report). Only sha256 digests
 * of the tokens are kept, and presented tokens are compared by digest in
 * constant time, so neither timing nor length tells an attacker anything.
 */

#include <stdbool.h>
#include <sys/stat.h>

#include "cleanup.h"

#define TOKEN_MAX 16U
#define TOKEN_FILE_MAX 16384U

typedef struct TokenFile {
        char *path;
        unsigned char digests[TOKEN_MAX][32];
        size_t n_tokens;
        /* What the file looked like when last read, to notice a change. */
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime;
        bool loaded;
} TokenFile;

/* Load path; fails (-ENOENT, -EACCES, -ENODATA for no token, ...) when it
 * cannot be read, which at start-up is fatal for the caller. */
int token_file_new(const char *path, TokenFile **ret);
TokenFile *token_file_free(TokenFile *t);
DEFINE_POINTER_CLEANUP(TokenFile, token_file_free)

/* Re-read the file when it changed. On failure (a half-written or removed
 * file) the tokens from the last good read stay in force; returns the error
 * so the caller can log it, 1 when the tokens changed, 0 when not. */
int token_file_refresh(TokenFile *t);

/* true when an Authorization header value is "Bearer <a current token>". */
bool token_file_check_authorization(const TokenFile *t, const char *authorization);
