/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <microhttpd.h>
#include <string.h>

#include "httpd-reply.h"

const char *httpd_request_query(HttpdRequest *req, const char *key) {
        assert(req);
        assert(key);

        return MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, key);
}

const char *httpd_request_header(HttpdRequest *req, const char *name) {
        assert(req);
        assert(name);

        return MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, name);
}

/* Queue resp with its headers; takes resp (MHD keeps its own reference). */
static int queue_response(struct MHD_Connection *c, struct MHD_Response *resp, unsigned status,
                          const char *content_type, const char *const *extra_headers) {
        enum MHD_Result ok;

        if (content_type && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES)
                goto fail;
        for (size_t i = 0; extra_headers && extra_headers[i] && extra_headers[i + 1]; i += 2)
                if (MHD_add_response_header(resp, extra_headers[i], extra_headers[i + 1]) != MHD_YES)
                        goto fail;
        ok = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return ok == MHD_YES ? 0 : -EIO;
fail:
        MHD_destroy_response(resp);
        return -ENOMEM;
}

int httpd_queue_reply(void *connection, unsigned status, const char *content_type, const void *body, size_t len,
                      const char *const *extra_headers) {
        struct MHD_Response *resp;

        resp = MHD_create_response_from_buffer(len, (void *) (body ? body : ""), MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return -ENOMEM;
        return queue_response(connection, resp, status, content_type, extra_headers);
}

int httpd_reply_take(HttpdRequest *req, unsigned status, const char *content_type, char **body, size_t len,
                     const char *const *extra_headers) {
        struct MHD_Response *resp;
        int r;

        assert(req);
        assert(body);
        assert(*body);

        if (req->replied)
                return -EALREADY;
        /* MHD frees the buffer once the answer is sent (or the connection
         * dies): a big answer is held once, not copied. */
        resp = MHD_create_response_from_buffer(len, *body, MHD_RESPMEM_MUST_FREE);
        if (!resp)
                return -ENOMEM;
        *body = NULL;
        r = queue_response(req->connection, resp, status, content_type, extra_headers);
        if (r >= 0)
                req->replied = true;
        return r;
}

int httpd_reply_full(HttpdRequest *req, unsigned status, const char *content_type,
                     const void *body, size_t len, const char *const *extra_headers) {
        int r;

        assert(req);
        assert(body || len == 0);

        if (req->replied)
                return -EALREADY;
        r = httpd_queue_reply(req->connection, status, content_type, body, len, extra_headers);
        if (r >= 0)
                req->replied = true;
        return r;
}

int httpd_reply(HttpdRequest *req, unsigned status, const char *content_type, const void *body, size_t len) {
        assert(req);
        assert(body || len == 0);

        return httpd_reply_full(req, status, content_type, body, len, NULL);
}

int httpd_reply_text(HttpdRequest *req, unsigned status, const char *text) {
        assert(req);
        assert(text);

        return httpd_reply(req, status, "text/plain; charset=utf-8", text, strlen(text));
}

int httpd_reply_too_large(void *connection) {
        static const char msg[] = "{\"error\": \"request body too large\"}\n";
        /* The unread rest of the body makes the connection unusable. */
        static const char *const headers[] = { "Connection", "close", NULL };

        return httpd_queue_reply(connection, 413, "application/json", msg, sizeof msg - 1, headers);
}
