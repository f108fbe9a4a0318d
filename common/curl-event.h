/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * libcurl multi driven by an sd_event loop, no threads, in the manner of
 * systemd-importd's curl glue: curl tells us which sockets to poll
 * (CURLMOPT_SOCKETFUNCTION -> one sd_event io source per socket) and when to
 * wake it (CURLMOPT_TIMERFUNCTION -> one sd_event timer); we hand readiness
 * back with curl_multi_socket_action() and then drain curl_multi_info_read()
 * to call each transfer's completion callback.
 *
 * CurlGlue runs any CURL easy handle and calls its completion callback;
 * the glue owns CURLOPT_PRIVATE of the handles it runs. The usual HTTP
 * request on top of it is curl-request.h.
 *
 * Completion callbacks run from the loop, never from inside a curl call.
 */

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

typedef struct CurlGlue CurlGlue;

/* Called once when easy's transfer ends. The handle is already out of the
 * multi: the callback may free it, add it again, or add others. */
typedef void (*curl_glue_done_t)(CURL *easy, CURLcode result, void *userdata);

/* Create a multi handle whose sockets and timer live on event. */
int curl_glue_new(sd_event *event, CurlGlue **ret);
/* Stop every transfer (without completion callbacks) and free the glue. NULL is fine. */
CurlGlue *curl_glue_free(CurlGlue *g);
static inline void curl_glue_freep(CurlGlue **g) {
        curl_glue_free(*g);
}

/* Start easy on the loop; done(easy, result, userdata) is called when it ends. */
int curl_glue_add(CurlGlue *g, CURL *easy, curl_glue_done_t done, void *userdata);
/* Stop easy's transfer without calling done; a handle not running is ignored. */
void curl_glue_remove(CurlGlue *g, CURL *easy);

/* Never let libcurl wait for its resolver thread when a transfer that is
 * still resolving ends or is removed: with a name server that does not
 * answer, that wait would stall the whole loop (libcurl >= 7.87 knows how;
 * older ones do not, and then a stuck resolve still blocks). */
static inline void curl_easy_no_resolver_wait(CURL *easy) {
#if LIBCURL_VERSION_NUM >= 0x075700
        (void) curl_easy_setopt(easy, CURLOPT_QUICK_EXIT, 1L);
#else
        (void) easy;
#endif
}

/* Map a CURLcode to a negative errno (timeouts -ETIMEDOUT, refused
 * -ECONNREFUSED, resolve -EHOSTUNREACH, TLS -EPROTO, dropped -ECONNRESET). */
int curl_code_to_errno(CURLcode c);
