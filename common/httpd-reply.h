/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * One request as the handler sees it, and its answer (httpd-reply.c):
 * the query, the headers, one reply. httpd.h includes this; the server
 * itself (httpd.c) fills the request and answers a body over the limit
 * with httpd_reply_too_large().
 */

#include <stdbool.h>
#include <stddef.h>

typedef struct HttpdRequest {
        const char *method;   /* "GET", "POST", ... */
        const char *path;     /* URL path, percent-decoded, without the query */
        const char *body;     /* the request body, NUL-terminated; "" when none */
        size_t body_size;     /* bytes in body, not counting the NUL */
        bool body_too_large;  /* the body exceeded the limit and was dropped */
        void *connection;     /* struct MHD_Connection *, for the helpers below */
        bool replied;
} HttpdRequest;

/* The value of query parameter key ("?key=value"), or NULL. */
const char *httpd_request_query(HttpdRequest *req, const char *key);

/* The value of request header name (case-insensitive), or NULL. */
const char *httpd_request_header(HttpdRequest *req, const char *name);

/* Answer with status, a Content-Type (NULL for none) and len bytes of body
 * (copied). extra_headers is NULL or a NULL-terminated list of name, value
 * pairs. Returns 0, -EALREADY when already answered, -ENOMEM or -EIO. */
int httpd_reply_full(HttpdRequest *req, unsigned status, const char *content_type,
                     const void *body, size_t len, const char *const *extra_headers);

/* httpd_reply_full() with a malloc()ed body that the answer takes over
 * (*body becomes NULL once it did; MHD frees it when sent), not copied. */
int httpd_reply_take(HttpdRequest *req, unsigned status, const char *content_type, char **body, size_t len,
                     const char *const *extra_headers);

/* httpd_reply_full() without extra headers. */
int httpd_reply(HttpdRequest *req, unsigned status, const char *content_type, const void *body, size_t len);

/* Answer with a text/plain; charset=utf-8 body. */
int httpd_reply_text(HttpdRequest *req, unsigned status, const char *text);

/* Queue a response on the MHD connection, as httpd_reply_full() does
 * but for a request the handler never saw. */
int httpd_queue_reply(void *connection, unsigned status, const char *content_type, const void *body, size_t len,
                      const char *const *extra_headers);

/* 413 with "Connection: close", before the body is read. */
int httpd_reply_too_large(void *connection);
