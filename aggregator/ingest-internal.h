/* SPDX-License-Identifier: MIT */
#pragma once

/* What report_parse() (ingest.c) and its parts (ingest-registries.c) share. */

#include <stdbool.h>
#include <stdint.h>

#include "cleanup.h"
#include "ingest.h"
#include "ingest-json.h"

/* Set *ret_message and return -EINVAL, so validators can "return ingest_fail(...)". */
_printf_(2, 3) int ingest_fail(char **ret_message, const char *fmt, ...);

/* A copy of s cut to at most max bytes, never inside a UTF-8 sequence. */
char *ingest_strdup_truncated(const char *s, size_t max);

/* An integer field from 0 to max: 0 when absent (and not required), 1 with *ret set. */
int ingest_get_uint(const Jv *o, const char *key, bool required, uint64_t max, uint64_t *ret, char **msg);

/* A string field: 0 when absent (and not required), 1 with *ret set. */
int ingest_get_string(const Jv *o, const char *key, bool required, const char **ret, char **msg);

/* A report's "registries" array and "registry_counts" object into r. */
int ingest_parse_registries(Report *r, const Jv *regs, char **msg);
int ingest_parse_registry_counts(Report *r, const Jv *counts, char **msg);
