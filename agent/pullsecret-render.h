/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What a pull credentials file becomes under each policy (the policies are
 * described in pullsecret.h): the secret re-serialized (replace), or the
 * existing file with the secret's registries merged into its "auths".
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "pullsecret-options.h"

/* How every file nodetrustd writes here is serialized (plus a final newline). */
#define PULL_SECRET_DUMP_FLAGS (JSON_INDENT(2) | JSON_SORT_KEYS)

/* Compute a target file's content from a parsed secret. existing (NULL: no
 * file) is the current file; previous the registries nodetrustd put there
 * earlier. *ret_same is true when the file already says exactly this (see
 * the policies in pullsecret.h). -EBADMSG with *ret_reason when merge cannot
 * use the existing file. The caller wipes and frees *ret_content. */
int pull_secret_render(const json_t *secret, PullSecretPolicy policy, const char *existing, size_t existing_size,
                       char *const *previous, char **ret_content, size_t *ret_size, bool *ret_same,
                       char **ret_reason);
