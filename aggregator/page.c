/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <stddef.h>

#include "page.h"

/* The document built from aggregator/page/ and embedded by the stub the
 * Makefile generates ($(B)/aggregator/page-data.c): the bytes from
 * page_html to page_html_end, then a NUL. */
extern const char page_html[], page_html_end[];

int page_reply(HttpdRequest *req) {
        /* The page is self-contained: inline style and script, data from
         * this origin only. The policy keeps it that way. */
        static const char *const headers[] = {
                "Content-Security-Policy",
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                "X-Content-Type-Options", "nosniff",
                "Referrer-Policy", "no-referrer",
                "Cache-Control", "no-store",
                NULL
        };

        assert(req);

        return httpd_reply_full(req, 200, "text/html; charset=utf-8", page_html, (size_t) (page_html_end - page_html), headers);
}
