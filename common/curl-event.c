/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "cleanup.h"
#include "curl-event.h"
#include "log.h"

/* One per socket curl asked us to poll; kept in a list so that freeing the
 * glue can release io sources curl never told us to remove. */
typedef struct GlueSocket {
        sd_event_source *io;
        struct GlueSocket *prev, *next;
} GlueSocket;

/* One per running easy handle, reachable through CURLOPT_PRIVATE. */
typedef struct GlueSlot {
        CurlGlue *glue;
        CURL *easy;
        curl_glue_done_t done;
        void *userdata;
        struct GlueSlot *prev, *next;
} GlueSlot;

struct CurlGlue {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;
        GlueSocket *sockets;
        GlueSlot *slots;
};

#define LIST_PREPEND(head, item)                \
        do {                                    \
                (item)->prev = NULL;            \
                (item)->next = (head);          \
                if (head)                       \
                        (head)->prev = (item);  \
                (head) = (item);                \
        } while (0)

#define LIST_UNLINK(head, item)                         \
        do {                                            \
                if ((item)->prev)                       \
                        (item)->prev->next = (item)->next; \
                else                                    \
                        (head) = (item)->next;          \
                if ((item)->next)                       \
                        (item)->next->prev = (item)->prev; \
                (item)->prev = (item)->next = NULL;     \
        } while (0)

int curl_code_to_errno(CURLcode c) {
        switch (c) {
        case CURLE_OK:
                return 0;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_ENGINE_NOTFOUND:
        case CURLE_SSL_ENGINE_SETFAILED:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_CRL_BADFILE:
                return -EPROTO;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_PARTIAL_FILE:
        case CURLE_GOT_NOTHING:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
                return -ECONNRESET;
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
                return -EINVAL;
        default:
                return -EIO;
        }
}

/* Hand every finished transfer to its owner. The slot is unlinked and the
 * handle removed from the multi first, so the callback may do anything with
 * it; curl_multi_remove_handle also drops any queued message for a handle a
 * callback removes, so the loop never sees a stale one. */
static void glue_dispatch_done(CurlGlue *g) {
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(g->multi, &left))) {
                GlueSlot *slot = NULL;
                CURL *easy = msg->easy_handle;
                CURLcode result = msg->data.result;
                curl_glue_done_t done;
                void *userdata;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &slot) != CURLE_OK || !slot ||
                    slot->glue != g) {
                        curl_multi_remove_handle(g->multi, easy);
                        continue;
                }
                done = slot->done;
                userdata = slot->userdata;
                curl_glue_remove(g, easy);
                if (done)
                        done(easy, result, userdata);
        }
}

static int glue_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        CurlGlue *g = userdata;
        int action = 0, running;

        (void) s;
        if (revents & EPOLLIN)
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                action |= CURL_CSELECT_ERR;

        if (curl_multi_socket_action(g->multi, fd, action, &running) != CURLM_OK)
                log_debug("curl_multi_socket_action() failed on fd %d", fd);
        glue_dispatch_done(g);
        return 0;
}

static int glue_on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        CurlGlue *g = userdata;
        int running;

        (void) s;
        (void) usec;
        if (curl_multi_socket_action(g->multi, CURL_SOCKET_TIMEOUT, 0, &running) != CURLM_OK)
                log_debug("curl_multi_socket_action() failed on timeout");
        glue_dispatch_done(g);
        return 0;
}

static void glue_socket_free(CurlGlue *g, GlueSocket *gs) {
        LIST_UNLINK(g->sockets, gs);
        sd_event_source_disable_unref(gs->io);
        free(gs);
}

static int glue_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        CurlGlue *g = userp;
        GlueSocket *gs = socketp;
        uint32_t events = 0;

        (void) easy;
        if (what == CURL_POLL_REMOVE) {
                if (gs) {
                        curl_multi_assign(g->multi, fd, NULL);
                        glue_socket_free(g, gs);
                }
                return 0;
        }

        if (what & CURL_POLL_IN)
                events |= EPOLLIN;
        if (what & CURL_POLL_OUT)
                events |= EPOLLOUT;

        if (gs) {
                if (sd_event_source_set_io_events(gs->io, events) < 0)
                        return -1;
                if (sd_event_source_set_enabled(gs->io, events ? SD_EVENT_ON : SD_EVENT_OFF) < 0)
                        return -1;
                return 0;
        }

        gs = calloc(1, sizeof *gs);
        if (!gs)
                return -1;
        if (sd_event_add_io(g->event, &gs->io, fd, events, glue_on_io, g) < 0) {
                free(gs);
                return -1;
        }
        (void) sd_event_source_set_description(gs->io, "curl-io");
        if (!events)
                (void) sd_event_source_set_enabled(gs->io, SD_EVENT_OFF);
        LIST_PREPEND(g->sockets, gs);
        if (curl_multi_assign(g->multi, fd, gs) != CURLM_OK) {
                glue_socket_free(g, gs);
                return -1;
        }
        return 0;
}

/* curl wants to be woken after timeout_ms (-1: never). Even 0 goes through
 * the loop: curl must not be re-entered from inside its own callback. */
static int glue_timer_cb(CURLM *multi, long timeout_ms, void *userp) {
        CurlGlue *g = userp;

        (void) multi;
        if (timeout_ms < 0)
                return sd_event_source_set_enabled(g->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
        if (sd_event_source_set_time_relative(g->timer, (uint64_t) timeout_ms * 1000) < 0)
                return -1;
        if (sd_event_source_set_enabled(g->timer, SD_EVENT_ONESHOT) < 0)
                return -1;
        return 0;
}

int curl_glue_new(sd_event *event, CurlGlue **ret) {
        CurlGlue *g;
        int r;

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return -EIO;

        g = calloc(1, sizeof *g);
        if (!g) {
                curl_global_cleanup();
                return -ENOMEM;
        }
        g->event = sd_event_ref(event);

        /* Accuracy 1 us: sd-event's default (250 ms) would delay every step
         * curl schedules "now" (connect, TLS, retries). */
        r = sd_event_add_time_relative(event, &g->timer, CLOCK_MONOTONIC, 0, 1, glue_on_timer, g);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(g->timer, "curl-timer");
        r = sd_event_source_set_enabled(g->timer, SD_EVENT_OFF);
        if (r < 0)
                goto fail;

        r = -ENOMEM;
        g->multi = curl_multi_init();
        if (!g->multi)
                goto fail;
        r = -EINVAL;
        if (curl_multi_setopt(g->multi, CURLMOPT_SOCKETFUNCTION, glue_socket_cb) != CURLM_OK ||
            curl_multi_setopt(g->multi, CURLMOPT_SOCKETDATA, g) != CURLM_OK ||
            curl_multi_setopt(g->multi, CURLMOPT_TIMERFUNCTION, glue_timer_cb) != CURLM_OK ||
            curl_multi_setopt(g->multi, CURLMOPT_TIMERDATA, g) != CURLM_OK)
                goto fail;

        *ret = g;
        return 0;
fail:
        curl_glue_free(g);
        return r;
}

CurlGlue *curl_glue_free(CurlGlue *g) {
        if (!g)
                return NULL;

        while (g->slots)
                curl_glue_remove(g, g->slots->easy);
        if (g->multi)
                curl_multi_cleanup(g->multi);
        while (g->sockets)
                glue_socket_free(g, g->sockets);
        sd_event_source_disable_unref(g->timer);
        sd_event_unref(g->event);
        free(g);
        curl_global_cleanup();
        return NULL;
}

int curl_glue_add(CurlGlue *g, CURL *easy, curl_glue_done_t done, void *userdata) {
        GlueSlot *slot;

        slot = calloc(1, sizeof *slot);
        if (!slot)
                return -ENOMEM;
        *slot = (GlueSlot){ .glue = g, .easy = easy, .done = done, .userdata = userdata };

        if (curl_easy_setopt(easy, CURLOPT_PRIVATE, slot) != CURLE_OK) {
                free(slot);
                return -EINVAL;
        }
        if (curl_multi_add_handle(g->multi, easy) != CURLM_OK) {
                curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
                free(slot);
                return -EIO;
        }
        LIST_PREPEND(g->slots, slot);
        return 0;
}

void curl_glue_remove(CurlGlue *g, CURL *easy) {
        GlueSlot *slot = NULL;

        if (!g || !easy)
                return;
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &slot) != CURLE_OK || !slot ||
            slot->glue != g)
                return;

        curl_multi_remove_handle(g->multi, easy);
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        LIST_UNLINK(g->slots, slot);
        free(slot);
}
