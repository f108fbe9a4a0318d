/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The fleet page served at "/": one self-contained HTML document, inline
 * style and script, no external assets, so it works on an air-gapped
 * cluster and under a strict Content-Security-Policy. The script reads
 * /api/v1/summary and /api/v1/nodes and refreshes itself every 5 seconds;
 * it builds the DOM with textContent only, so nothing an agent reports can
 * inject markup.
 */

#include <stddef.h>

extern const char page_html[];
extern const size_t page_html_size;
