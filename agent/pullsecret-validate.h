/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Validation of a .dockerconfigjson, and the few helpers the rest of the
 * pull-secret code shares for handling credentials: wiping buffers, bounding
 * JSON nesting, describing jansson errors without quoting the input.
 *
 * Linking this module also makes every jansson free wipe the memory first,
 * so credentials parsed anywhere in the agent do not linger in freed heap.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "cleanup.h"

/* Kubernetes caps a secret at 1 MiB; a real pull secret nests 3 levels. */
#define PULL_SECRET_MAX (1024u * 1024)
#define PULL_SECRET_DEPTH_MAX 32

/* Validate a .dockerconfigjson. On success *ret is the parsed object. On
 * refusal returns -EBADMSG and *ret_reason says why without quoting any
 * value (registry names only). -ENOMEM on allocation failure. */
int pull_secret_parse(const void *data, size_t size, json_t **ret, char **ret_reason);

/* Why key cannot be a registry of "auths" (the checks pull_secret_parse()
 * makes), or NULL when it can: for names read back from state. */
const char *pull_secret_registry_check(const char *key);

/* The registries of a parsed secret's "auths", sorted (strv). */
int pull_secret_registries(const json_t *secret, char ***ret);

/* Sort a strv of registry names in place, the order every list here uses. */
void pull_secret_registries_sort(char **l);

/* Wipe size bytes of p, then free it; NULL is fine. */
void pull_secret_wipe_free(char *p, size_t size);

/* Whether the JSON text p[0..n) nests at most max levels of brackets. */
bool pull_secret_depth_within(const char *p, size_t n, unsigned max);

/* A jansson parse error by its code only: its text may quote a credential. */
const char *pull_secret_json_error_describe(const json_error_t *e);

/* Set *ret_reason to the formatted (secret-free) reason and return -EBADMSG,
 * or -ENOMEM with *ret_reason NULL. */
int pull_secret_refuse(char **ret_reason, const char *fmt, ...) _printf_(2, 3);
