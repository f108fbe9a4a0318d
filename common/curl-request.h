/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * CurlRequest: the usual HTTP request on a CurlGlue (curl-event.h): URL,
 * bearer token, CA / client certificate as files or in-memory blobs,
 * timeouts, a body buffer with a size cap, or a line-by-line streaming mode
 * for watches.
 *
 * Callbacks run from the loop, never from inside a curl call, except the
 * line and headers callbacks, which curl invokes: they must not cancel or
 * free their request (return a negative errno to end the transfer instead).
 * Free every request before the glue it runs on.
 */

#include "curl-event.h"

typedef struct CurlRequest CurlRequest;

/* The transfer ended. error is 0 when an HTTP response arrived whole (any
 * status: see curl_request_status()), else a negative errno: the transport
 * failure, -EFBIG when the body or a line outgrew the cap, or what the line
 * callback returned. */
typedef void (*curl_request_done_t)(CurlRequest *req, int error, void *userdata);

/* Streaming mode: called for each complete '\n'-terminated line of a 2xx
 * response (line is NUL-terminated in place, without "\r\n"; empty lines are
 * skipped). Return a negative errno to end the transfer with that error. */
typedef int (*curl_request_line_t)(CurlRequest *req, char *line, size_t len, void *userdata);

/* Called once the final response's headers are in (status >= 200), before
 * any body: e.g. to learn that a watch is established. Same rules as the
 * line callback. */
typedef int (*curl_request_headers_t)(CurlRequest *req, long status, void *userdata);

/* Where TLS trust and the client identity come from. Each is either a file
 * or an in-memory PEM blob (copied); all NULL means the system CA store and
 * no client certificate. */
typedef struct CurlTls {
        const char *ca_file;
        const void *ca_blob;
        size_t ca_blob_size;
        const char *cert_file;
        const void *cert_blob;
        size_t cert_blob_size;
        const char *key_file;
        const void *key_blob;
        size_t key_blob_size;
} CurlTls;

/* A GET of url with safe defaults: no redirects, http(s) only, TLS
 * verification on, TCP keepalive, connect timeout 10 s, body cap 4 MiB. */
int curl_request_new(const char *url, CurlRequest **ret);
/* Cancel (if running) and free; NULL is fine. Buffers are wiped: they may
 * have held a token or a secret. */
CurlRequest *curl_request_free(CurlRequest *req);
static inline void curl_request_freep(CurlRequest **req) {
        curl_request_free(*req);
}

/* Send "Authorization: Bearer <token>" (the token is never logged). */
int curl_request_set_bearer(CurlRequest *req, const char *token);
/* Add a raw header line, e.g. "Accept: application/json". */
int curl_request_add_header(CurlRequest *req, const char *header);
/* Make it a POST of a copy of data with this Content-Type. */
int curl_request_set_body(CurlRequest *req, const char *content_type, const void *data, size_t size);
int curl_request_set_tls(CurlRequest *req, const CurlTls *tls);
/* Timeouts in milliseconds; 0 leaves curl's default (total: none). */
int curl_request_set_timeouts(CurlRequest *req, uint64_t connect_ms, uint64_t total_ms);
/* Cap the buffered body (or, when streaming, one line) at max bytes. */
void curl_request_set_max_size(CurlRequest *req, size_t max);
/* Switch to streaming mode (see curl_request_line_t). */
void curl_request_set_line_callback(CurlRequest *req, curl_request_line_t cb, void *userdata);
void curl_request_set_headers_callback(CurlRequest *req, curl_request_headers_t cb, void *userdata);
/* The underlying easy handle, for options not covered here (not PRIVATE). */
CURL *curl_request_easy(CurlRequest *req);

/* Start the transfer on g; done is called once when it ends. A finished
 * request may be started again: its body and status are reset. */
int curl_request_start(CurlRequest *req, CurlGlue *g, curl_request_done_t done, void *userdata);
/* Stop a running transfer without calling done. */
void curl_request_cancel(CurlRequest *req);
bool curl_request_running(const CurlRequest *req);

/* The HTTP status of the last response (0 when none arrived). */
long curl_request_status(const CurlRequest *req);
/* The buffered body, NUL-terminated (in streaming mode: only a non-2xx
 * body, or the unterminated tail). Valid until the next start or free. */
const char *curl_request_body(const CurlRequest *req, size_t *ret_size);
/* curl's own description of the last failure ("" when none), for logs. */
const char *curl_request_error_message(const CurlRequest *req);
