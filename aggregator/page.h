/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The fleet page served at "/": one self-contained HTML document, inline
 * style and script, no external assets, so it works on an air-gapped
 * cluster and under a strict Content-Security-Policy. The script reads
 * /api/v1/summary and /api/v1/nodes and refreshes itself every 5 seconds;
 * it builds the DOM with textContent only, so nothing an agent reports can
 * inject markup.
 *
 * It is edited as aggregator/page/index.html, page.css and page.js; the
 * build puts the three into one document and links it in as data (see the
 * Makefile and mk/inline-page.awk).
 */

#include "httpd.h"

/* Answer req with the page and the headers that keep it self-contained. */
int page_reply(HttpdRequest *req);
