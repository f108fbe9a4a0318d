/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Length (1-4) of the valid UTF-8 sequence at the start of s, of which
 * avail bytes may be read; 0 when it is not one (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF, nothing cut short). */
size_t utf8_sequence_length(const char *s, size_t avail);

/* Make s safe to show anywhere (JSON, a log line, a metric label): every
 * byte that is not part of valid UTF-8, and every control character (C0,
 * DEL and C1: each of a C1's two bytes), is replaced in place by '?'.
 * Returns s. Text from the node (file names,
 * parser messages) goes through this before it becomes a reason. */
char *utf8_printable(char *s);

/* Make s one printable line for a reason or a message: control characters
 * (newlines, tabs) become spaces, then as utf8_printable(). Returns s. */
char *utf8_one_line(char *s);
