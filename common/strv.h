/* SPDX-License-Identifier: MIT */
#pragma once

/* NULL-terminated string arrays. */

#include <stdbool.h>
#include <stddef.h>

#include "cleanup.h"

char **strv_free(char **l);
#define _cleanup_strv_free_ _cleanup_(strv_freep)
static inline void strv_freep(char ***l) {
        strv_free(*l);
}
size_t strv_length(char *const *l);
bool strv_contains(char *const *l, const char *s);
/* Append a copy of s; -ENOMEM on failure. */
int strv_extend(char ***l, const char *s);
/* Split s at commas, trimming blanks and dropping empty items. */
int strv_split_comma(const char *s, char ***ret);
/* Join with sep into a new string (NULL on allocation failure). */
char *strv_join(char *const *l, const char *sep);
/* The same strings in the same order (NULL is the empty list). */
bool strv_equal(char *const *a, char *const *b);
/* strcmp() of two char * elements, for qsort() and bsearch() of a string array. */
int strv_compare(const void *a, const void *b);
