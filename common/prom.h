/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdio.h>

/* Write v as a Prometheus label value wants it (text format 0.0.4):
 * backslash, double quote and newline escaped. */
void prom_label_value(FILE *f, const char *v);
