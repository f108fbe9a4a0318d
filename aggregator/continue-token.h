/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The continue token of a paged list (GET /api/v1/nodes, as the Kubernetes
 * API pages with ?limit= and metadata.continue): where the previous page
 * ended, for the same filter. Opaque to clients: base64url (no padding) of
 * a version byte, the filter, the last name listed, and an HMAC-SHA256
 * (cut to 16 bytes) under a key drawn at start, so a token is accepted only
 * by the aggregator process that issued it. Nothing in it is secret: it
 * names a node the client has already seen.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONTINUE_TOKEN_KEY_SIZE 32U
/* The longest name a token carries: a Kubernetes node name or a registry's. */
#define CONTINUE_TOKEN_MAX_NAME 300U

typedef struct ContinueKey {
        uint8_t key[CONTINUE_TOKEN_KEY_SIZE];
} ContinueKey;

/* A new random key (getrandom); -errno when there is no randomness. */
int continue_key_init(ContinueKey *k);

/* The token saying "after `last`, with filter `filter`" (a small number the
 * list defines, -1 for none), as a new NUL-terminated string in *ret. */
int continue_token_encode(const ContinueKey *k, int filter, const char *last, char **ret);

/* Read a token back for a list asked with filter `filter`: the name it ends
 * after into ret_last (at least CONTINUE_TOKEN_MAX_NAME + 1 bytes). On
 * failure -EINVAL and *ret_reason says why, in words for a 400 answer
 * (malformed, not issued by this aggregator, issued for another filter). */
int continue_token_decode(const ContinueKey *k, const char *token, int filter, char *ret_last,
                          const char **ret_reason);
