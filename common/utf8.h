/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Make s safe to show anywhere (JSON, a log line, a metric label): every
 * byte that is not part of valid UTF-8, and every control character, is
 * replaced in place by '?'. Returns s. Text from the node (file names,
 * parser messages) goes through this before it becomes a reason. */
char *utf8_printable(char *s);
