/* SPDX-License-Identifier: MIT */
/* The CurlRequest half of curl-event.h: one HTTP request with its buffers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "curl-request.h"

#define DEFAULT_MAX_SIZE (4u * 1024 * 1024)
#define DEFAULT_CONNECT_TIMEOUT_MS 10000

struct CurlRequest {
        CURL *easy;
        CurlGlue *glue; /* set while running */
        struct curl_slist *headers;
        char errbuf[CURL_ERROR_SIZE];

        char *buf;
        size_t size, allocated, max_size;

        curl_request_line_t on_line;
        void *line_userdata;
        curl_request_headers_t on_headers;
        void *headers_userdata;
        int streaming; /* -1: undecided until the first byte, 0/1 */

        /* Why our write callback refused data (-EFBIG, the line callback's error). */
        int local_error;
        long status;

        curl_request_done_t done;
        void *userdata;
};

static void wipe_free(char *p, size_t n) {
        if (p) {
                explicit_bzero(p, n);
                free(p);
        }
}

static void headers_free(struct curl_slist *l) {
        /* The list may hold the bearer token. */
        for (struct curl_slist *i = l; i; i = i->next)
                explicit_bzero(i->data, strlen(i->data));
        curl_slist_free_all(l);
}

static int buffer_append(CurlRequest *req, const char *p, size_t n) {
        if (n > req->max_size || req->size > req->max_size - n)
                return -EFBIG;
        if (req->size + n + 1 > req->allocated) {
                size_t a = req->allocated ? req->allocated : 4096;
                char *nb;

                while (a < req->size + n + 1)
                        a *= 2;
                /* Grow by copy, not realloc, so that no stale copy of a
                 * secret is left behind in freed heap. */
                nb = malloc(a);
                if (!nb)
                        return -ENOMEM;
                if (req->buf)
                        memcpy(nb, req->buf, req->size);
                wipe_free(req->buf, req->allocated);
                req->buf = nb;
                req->allocated = a;
        }
        memcpy(req->buf + req->size, p, n);
        req->size += n;
        req->buf[req->size] = 0;
        return 0;
}

/* Hand out every complete line and keep the unterminated tail. */
static int deliver_lines(CurlRequest *req, size_t scan_from) {
        size_t start = 0;
        char *nl;
        int r = 0;

        while ((nl = memchr(req->buf + scan_from, '\n', req->size - scan_from))) {
                size_t end = (size_t) (nl - req->buf);
                size_t len = end - start;

                *nl = 0;
                if (len > 0 && req->buf[start + len - 1] == '\r')
                        req->buf[start + --len] = 0;
                if (len > 0) {
                        r = req->on_line(req, req->buf + start, len, req->line_userdata);
                        if (r < 0)
                                break;
                }
                start = scan_from = end + 1;
        }

        if (start > 0) {
                memmove(req->buf, req->buf + start, req->size - start);
                explicit_bzero(req->buf + req->size - start, start);
                req->size -= start;
                req->buf[req->size] = 0;
        }
        return r;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *userdata) {
        CurlRequest *req = userdata;
        size_t n = size * nmemb, old_size = req->size;
        int r;

        /* Only a 2xx body is a stream of lines: an error reply (401, 410,
         * 500) is one JSON Status object the caller wants whole. */
        if (req->streaming < 0) {
                long code = 0;
                curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &code);
                req->streaming = req->on_line && code >= 200 && code < 300;
        }

        r = buffer_append(req, p, n);
        if (r < 0) {
                req->local_error = r;
                return 0;
        }
        if (req->streaming) {
                r = deliver_lines(req, old_size);
                if (r < 0) {
                        req->local_error = r;
                        return 0;
                }
        }
        return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *userdata) {
        CurlRequest *req = userdata;
        size_t n = size * nmemb;
        long code = 0;
        int r;

        /* The empty line ends a header block; 1xx blocks are not the answer. */
        if (!req->on_headers || !((n == 2 && p[0] == '\r' && p[1] == '\n') || (n == 1 && p[0] == '\n')))
                return n;
        curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code < 200)
                return n;
        r = req->on_headers(req, code, req->headers_userdata);
        if (r < 0) {
                req->local_error = r;
                return 0;
        }
        return n;
}

int curl_request_new(const char *url, CurlRequest **ret) {
        CurlRequest *req;

        req = calloc(1, sizeof *req);
        if (!req)
                return -ENOMEM;
        req->max_size = DEFAULT_MAX_SIZE;
        req->streaming = -1;
        req->easy = curl_easy_init();
        if (!req->easy) {
                free(req);
                return -ENOMEM;
        }

        if (curl_easy_setopt(req->easy, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_PROTOCOLS_STR, "https,http") != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_ERRORBUFFER, req->errbuf) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_WRITEFUNCTION, on_write) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_WRITEDATA, req) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_HEADERDATA, req) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_CONNECTTIMEOUT_MS, (long) DEFAULT_CONNECT_TIMEOUT_MS) != CURLE_OK ||
            /* Long-lived watches must notice a peer that vanished without a FIN. */
            curl_easy_setopt(req->easy, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_TCP_KEEPIDLE, 30L) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_TCP_KEEPINTVL, 10L) != CURLE_OK) {
                curl_request_free(req);
                return -EINVAL;
        }
        curl_easy_no_resolver_wait(req->easy);
        *ret = req;
        return 0;
}

CurlRequest *curl_request_free(CurlRequest *req) {
        if (!req)
                return NULL;
        curl_request_cancel(req);
        curl_easy_cleanup(req->easy);
        headers_free(req->headers);
        wipe_free(req->buf, req->allocated);
        free(req);
        return NULL;
}

int curl_request_add_header(CurlRequest *req, const char *header) {
        struct curl_slist *l = curl_slist_append(req->headers, header);

        if (!l)
                return -ENOMEM;
        req->headers = l;
        return curl_easy_setopt(req->easy, CURLOPT_HTTPHEADER, req->headers) == CURLE_OK ? 0 : -EINVAL;
}

int curl_request_set_bearer(CurlRequest *req, const char *token) {
        _cleanup_free_ char *h = NULL;
        size_t n;
        int r;

        if (!token || !*token || strpbrk(token, "\r\n"))
                return -EINVAL;
        n = strlen("Authorization: Bearer ") + strlen(token) + 1;
        h = malloc(n);
        if (!h)
                return -ENOMEM;
        snprintf(h, n, "Authorization: Bearer %s", token);
        r = curl_request_add_header(req, h);
        explicit_bzero(h, n);
        return r;
}

int curl_request_set_body(CurlRequest *req, const char *content_type, const void *data, size_t size) {
        if (content_type) {
                _cleanup_free_ char *h = NULL;
                int r;

                if (asprintf(&h, "Content-Type: %s", content_type) < 0)
                        return -ENOMEM;
                r = curl_request_add_header(req, h);
                if (r < 0)
                        return r;
        }
        if (curl_easy_setopt(req->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) size) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_COPYPOSTFIELDS, data) != CURLE_OK)
                return -ENOMEM;
        return 0;
}

static int set_blob(CURL *easy, CURLoption opt, const void *data, size_t size) {
        struct curl_blob b = { .data = (void *) data, .len = size, .flags = CURL_BLOB_COPY };

        return curl_easy_setopt(easy, opt, &b) == CURLE_OK ? 0 : -EOPNOTSUPP;
}

int curl_request_set_tls(CurlRequest *req, const CurlTls *tls) {
        int r;

        if (tls->ca_blob) {
                r = set_blob(req->easy, CURLOPT_CAINFO_BLOB, tls->ca_blob, tls->ca_blob_size);
                if (r < 0)
                        return r;
        } else if (tls->ca_file && curl_easy_setopt(req->easy, CURLOPT_CAINFO, tls->ca_file) != CURLE_OK)
                return -EINVAL;

        if (tls->cert_blob) {
                r = set_blob(req->easy, CURLOPT_SSLCERT_BLOB, tls->cert_blob, tls->cert_blob_size);
                if (r < 0)
                        return r;
        } else if (tls->cert_file && curl_easy_setopt(req->easy, CURLOPT_SSLCERT, tls->cert_file) != CURLE_OK)
                return -EINVAL;

        if (tls->key_blob) {
                r = set_blob(req->easy, CURLOPT_SSLKEY_BLOB, tls->key_blob, tls->key_blob_size);
                if (r < 0)
                        return r;
        } else if (tls->key_file && curl_easy_setopt(req->easy, CURLOPT_SSLKEY, tls->key_file) != CURLE_OK)
                return -EINVAL;

        if (curl_easy_setopt(req->easy, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
            curl_easy_setopt(req->easy, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK)
                return -EINVAL;
        return 0;
}

int curl_request_set_timeouts(CurlRequest *req, uint64_t connect_ms, uint64_t total_ms) {
        if (connect_ms > 0 && curl_easy_setopt(req->easy, CURLOPT_CONNECTTIMEOUT_MS, (long) connect_ms) != CURLE_OK)
                return -EINVAL;
        if (curl_easy_setopt(req->easy, CURLOPT_TIMEOUT_MS, (long) total_ms) != CURLE_OK)
                return -EINVAL;
        return 0;
}

void curl_request_set_max_size(CurlRequest *req, size_t max) {
        req->max_size = max;
}

void curl_request_set_line_callback(CurlRequest *req, curl_request_line_t cb, void *userdata) {
        req->on_line = cb;
        req->line_userdata = userdata;
}

void curl_request_set_headers_callback(CurlRequest *req, curl_request_headers_t cb, void *userdata) {
        req->on_headers = cb;
        req->headers_userdata = userdata;
}

CURL *curl_request_easy(CurlRequest *req) {
        return req->easy;
}

static void on_glue_done(CURL *easy, CURLcode result, void *userdata) {
        CurlRequest *req = userdata;
        int error;

        (void) easy;
        req->glue = NULL;
        curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &req->status);

        if (result == CURLE_OK)
                error = 0;
        else if ((result == CURLE_WRITE_ERROR || result == CURLE_ABORTED_BY_CALLBACK) && req->local_error < 0)
                error = req->local_error;
        else
                error = curl_code_to_errno(result);

        /* Last: the callback may free or restart req. */
        if (req->done)
                req->done(req, error, req->userdata);
}

int curl_request_start(CurlRequest *req, CurlGlue *g, curl_request_done_t done, void *userdata) {
        int r;

        if (req->glue)
                return -EBUSY;
        if (req->buf)
                explicit_bzero(req->buf, req->allocated);
        req->size = 0;
        req->streaming = -1;
        req->local_error = 0;
        req->status = 0;
        req->errbuf[0] = 0;
        req->done = done;
        req->userdata = userdata;

        r = curl_glue_add(g, req->easy, on_glue_done, req);
        if (r < 0)
                return r;
        req->glue = g;
        return 0;
}

void curl_request_cancel(CurlRequest *req) {
        if (!req || !req->glue)
                return;
        curl_glue_remove(req->glue, req->easy);
        req->glue = NULL;
}

bool curl_request_running(const CurlRequest *req) {
        return req->glue != NULL;
}

long curl_request_status(const CurlRequest *req) {
        return req->status;
}

const char *curl_request_body(const CurlRequest *req, size_t *ret_size) {
        if (ret_size)
                *ret_size = req->size;
        return req->buf ? req->buf : "";
}

const char *curl_request_error_message(const CurlRequest *req) {
        return req->errbuf;
}
