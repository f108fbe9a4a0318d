/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "curl-request.h"
#include "log.h"
#include "node-condition.h"
#include "node-status.h"
#include "source-kube-client.h"
#include "random.h"
#include "ratelimit.h"
#include "source-kube-api.h"
#include "source-kube-config.h"
#include "utf8.h"

#define CONNECT_TIMEOUT_MS 10000
#define TOTAL_TIMEOUT_MS 30000
/* A Node object with its images list can be large; the answer is only
 * read for the uid and our condition. */
#define ANSWER_MAX (4U * 1024U * 1024U)
#define MERGE_PATCH "application/strategic-merge-patch+json"

typedef enum RequestKind {
        REQUEST_NONE,
        REQUEST_READ,  /* PATCH "{}": the node as it is */
        REQUEST_PATCH, /* the condition */
        REQUEST_EVENT,
} RequestKind;

struct NodeStatus {
        sd_event *event;
        CurlGlue *glue;
        KubeClient client; /* its configuration, kept current; no watches */
        char *node;
        char *status_url, *events_url;
        uint64_t heartbeat_usec;
        sd_event_source *timer;

        CurlRequest *req; /* in flight, NULL when idle */
        RequestKind req_kind;
        char *token_sent; /* wiped after each request */

        NodeCondition want; /* from the last State; UNKNOWN before the first sync */

        /* What the node shows, once read (node_known). */
        bool node_known;
        char *uid;
        NodeCondition on_node; /* reason NULL: the node has no such condition */
        time_t on_node_transition;

        NodeCondition inflight;
        time_t inflight_transition;

        bool dirty;           /* want (or a heartbeat) is not on the node yet */
        uint64_t heartbeat_at; /* CLOCK_MONOTONIC of the next heartbeat patch */
        NodeCondition event_condition; /* the change to tell, when event_pending */
        bool event_pending;
        TokenBucket event_bucket;

        unsigned failures; /* consecutive, for the backoff */
        uint64_t backoff_until;

        /* The last failure said at warning level, so that an outage is
         * logged once; cleared by a success. */
        LogRepeat logged;

        NodeStatusStats stats;
};

static uint64_t now_usec(NodeStatus *n) {
        uint64_t t = 0;

        (void) sd_event_now(n->event, CLOCK_MONOTONIC, &t);
        return t;
}

static void wipe_token(char **t) {
        if (*t) {
                explicit_bzero(*t, strlen(*t));
                free(*t);
                *t = NULL;
        }
}

static bool need_request(const NodeStatus *n) {
        return n->want.status != NODE_CONDITION_UNKNOWN && (!n->node_known || n->event_pending || n->dirty);
}

/* Arm the one timer for whatever comes next: a request as soon as the
 * backoff allows, else the next heartbeat. */
static void node_status_schedule(NodeStatus *n) {
        uint64_t now = now_usec(n), when;

        if (n->req || n->want.status == NODE_CONDITION_UNKNOWN)
                return;
        if (need_request(n))
                when = n->backoff_until > now ? n->backoff_until : now;
        else
                when = n->heartbeat_at;
        (void) sd_event_source_set_time(n->timer, when);
        (void) sd_event_source_set_enabled(n->timer, SD_EVENT_ONESHOT);
}

static void node_status_backoff(NodeStatus *n) {
        uint64_t cap = n->heartbeat_usec < NODE_STATUS_BACKOFF_MAX_USEC ? n->heartbeat_usec : NODE_STATUS_BACKOFF_MAX_USEC;

        n->backoff_until = now_usec(n) + kube_backoff_usec(n->failures, NODE_STATUS_BACKOFF_MIN_USEC,
                                                           cap > NODE_STATUS_BACKOFF_MIN_USEC ? cap : NODE_STATUS_BACKOFF_MIN_USEC,
                                                           random_u64());
        n->failures++;
}

static const char *request_what(RequestKind k) {
        return k == REQUEST_EVENT ? "record an event for" : "update the status of";
}

/* The API's Status message, made safe for one log line. */
static char *answer_message(CurlRequest *req) {
        _cleanup_free_ char *msg = NULL;
        const char *body;
        size_t size;
        int code = 0;

        body = curl_request_body(req, &size);
        if (!body)
                return NULL;
        kube_status_parse(body, size, &code, &msg);
        if (!msg)
                return NULL;
        if (strlen(msg) > 200)
                msg[200] = 0;
        utf8_one_line(msg);
        return TAKE_PTR(msg);
}

static void on_patch_ok(NodeStatus *n, CurlRequest *req, bool read) {
        _cleanup_(node_condition_done) NodeCondition seen = {};
        const char *body;
        time_t transition = 0;
        size_t size;
        int r;

        body = curl_request_body(req, &size);
        r = body ? node_parse(body, size, &n->uid, &seen, &transition) : -EBADMSG;
        if (read) {
                if (r < 0) {
                        /* Not "no condition on the node": that would reset
                         * lastTransitionTime. Ask again, with backoff. */
                        log_warning_errno(r, "The API's answer for node %s is not a Node; asking again with backoff",
                                          n->node);
                        n->stats.patch_failures_total++;
                        node_status_backoff(n);
                        return;
                }
                node_condition_done(&n->on_node);
                n->on_node = seen;
                seen = (NodeCondition){};
                n->on_node_transition = transition;
                n->node_known = true;
                /* Patch now: the heartbeat is ours to keep from here on. */
                n->dirty = true;
                log_debug("Node %s has %s %s%s%s", n->node, NODE_CONDITION_TYPE,
                          node_condition_status_to_string(n->on_node.status), n->on_node.reason ? "/" : "",
                          n->on_node.reason ? n->on_node.reason : " (not set)");
                return;
        }

        /* The condition's status or reason changed on the node: tell it,
         * unless the node has been flapping faster than the bucket allows. */
        if (n->on_node.status != n->inflight.status || !streq_ptr(n->on_node.reason, n->inflight.reason)) {
                log_full(n->inflight.status == NODE_CONDITION_TRUE ? LOG_INFO : LOG_WARNING,
                         "Node condition " NODE_CONDITION_TYPE " changed", "NODE=%s", n->node, "STATUS=%s",
                         node_condition_status_to_string(n->inflight.status), "REASON=%s", n->inflight.reason,
                         "MESSAGE_DETAIL=%s", n->inflight.message ? n->inflight.message : "", NULL);
                if (token_bucket_take(&n->event_bucket, now_usec(n))) {
                        if (node_condition_copy(&n->event_condition, &n->inflight) >= 0)
                                n->event_pending = true;
                } else {
                        n->stats.events_suppressed_total++;
                        log_notice("Not recording an event for node %s: more than %u changes within %llu s",
                                   n->node, NODE_EVENT_BURST,
                                   (unsigned long long) (NODE_EVENT_BURST * NODE_EVENT_INTERVAL_USEC / USEC_PER_SEC));
                }
        }
        node_condition_done(&n->on_node);
        n->on_node = n->inflight;
        n->inflight = (NodeCondition){};
        n->on_node_transition = n->inflight_transition;
        n->dirty = !node_condition_equal(&n->want, &n->on_node);
        /* +-10%: nodes started together (a DaemonSet rollout) do not
         * patch the API server in step forever after. */
        n->heartbeat_at = now_usec(n) + jitter_usec_random(n->heartbeat_usec);
}

static void on_request_done(CurlRequest *req, int error, void *userdata) {
        NodeStatus *n = userdata;
        RequestKind kind = n->req_kind;
        long status = curl_request_status(req);
        bool ok = error >= 0 && status >= 200 && status < 300;

        n->req = NULL;
        n->req_kind = REQUEST_NONE;
        wipe_token(&n->token_sent);
        if (kind == REQUEST_EVENT) {
                n->stats.events_total++;
                n->event_pending = false;
                node_condition_done(&n->event_condition);
        } else
                n->stats.patches_total++;

        if (ok) {
                if (log_repeat_clear(&n->logged))
                        log_info("The Kubernetes API takes node %s's status again", n->node);
                n->failures = 0;
                n->backoff_until = 0;
                if (kind != REQUEST_EVENT)
                        on_patch_ok(n, req, kind == REQUEST_READ);
        } else {
                _cleanup_free_ char *msg = error >= 0 ? answer_message(req) : NULL;

                if (kind == REQUEST_EVENT)
                        n->stats.event_failures_total++;
                else {
                        n->stats.patch_failures_total++;
                        node_condition_done(&n->inflight);
                }
                if (error < 0)
                        log_repeat(&n->logged, 0, error, "Failed to %s node %s: %s (%s); retrying with backoff",
                                    request_what(kind), n->node, strerror(-error), curl_request_error_message(req));
                else if (status == 404 && kind != REQUEST_EVENT)
                        log_repeat(&n->logged, status, 0, "Node %s does not exist in the API (is --node-name right?)", n->node);
                else if (status == 401 || status == 403)
                        log_repeat(&n->logged, status, 0, "The API refused to let nodetrustd %s node %s (HTTP %ld%s%s); check its RBAC (patch nodes/status, create events in namespace default)",
                                    request_what(kind), n->node, status, msg ? ": " : "", msg ? msg : "");
                else
                        log_repeat(&n->logged, status, 0, "Failed to %s node %s: HTTP %ld%s%s", request_what(kind), n->node,
                                    status, msg ? ": " : "", msg ? msg : "");
                /* An event is not worth retrying: the condition is what counts. */
                node_status_backoff(n);
        }
        curl_request_free(req);
        node_status_schedule(n);
}

/* The URLs on the configuration's server. */
static int node_status_urls(NodeStatus *n) {
        char *status_url = NULL, *events_url = NULL;

        if (asprintf(&status_url, "%s/api/v1/nodes/%s/status", n->client.config->server, n->node) < 0)
                return -ENOMEM;
        if (asprintf(&events_url, "%s/api/v1/namespaces/default/events", n->client.config->server) < 0) {
                free(status_url);
                return -ENOMEM;
        }
        free(n->status_url);
        free(n->events_url);
        n->status_url = status_url;
        n->events_url = events_url;
        return 0;
}

static int node_status_start_request(NodeStatus *n, RequestKind kind, const char *url, const char *method,
                                     const char *content_type, const char *body) {
        _cleanup_(curl_request_freep) CurlRequest *req = NULL;
        const KubeConfig *k;
        CurlTls tls;
        int r;

        /* A kubeconfig (or a CA, certificate or key it names) that changed
         * is read again, as the API source does; one that no longer loads
         * leaves the last good one. */
        if (kube_client_refresh(&n->client)) {
                r = node_status_urls(n);
                if (r < 0)
                        return r;
                url = kind == REQUEST_EVENT ? n->events_url : n->status_url;
        }
        k = n->client.config;
        tls = (CurlTls){
                .ca_file = k->ca_file, .ca_blob = k->ca_data, .ca_blob_size = k->ca_data_size,
                .cert_file = k->cert_file, .cert_blob = k->cert_data, .cert_blob_size = k->cert_data_size,
                .key_file = k->key_file, .key_blob = k->key_data, .key_blob_size = k->key_data_size,
        };

        r = curl_request_new(url, &req);
        if (r < 0)
                return r;
        r = curl_request_set_tls(req, &tls);
        if (r < 0)
                return r;
        r = curl_request_set_body(req, content_type, body, strlen(body));
        if (r < 0)
                return r;
        if (curl_easy_setopt(curl_request_easy(req), CURLOPT_CUSTOMREQUEST, method) != CURLE_OK)
                return -ENOMEM;
        r = curl_request_add_header(req, "Accept: application/json");
        if (r < 0)
                return r;
        /* The token file is re-read for every request: the kubelet rotates it. */
        r = kubeconfig_token(k, &n->token_sent);
        if (r < 0)
                return r;
        if (n->token_sent) {
                r = curl_request_set_bearer(req, n->token_sent);
                if (r < 0)
                        return r;
        }
        r = curl_request_set_timeouts(req, CONNECT_TIMEOUT_MS, TOTAL_TIMEOUT_MS);
        if (r < 0)
                return r;
        curl_request_set_max_size(req, ANSWER_MAX);
        (void) curl_easy_setopt(curl_request_easy(req), CURLOPT_USERAGENT, "nodetrustd/" NODETRUST_VERSION);
        r = curl_request_start(req, n->glue, on_request_done, n);
        if (r < 0)
                return r;
        n->req = TAKE_PTR(req);
        n->req_kind = kind;
        return 0;
}

static int node_status_send(NodeStatus *n) {
        _cleanup_free_ char *body = NULL;
        json_auto_t *doc = NULL;
        time_t now = time(NULL);
        struct timespec ts;

        if (!n->node_known)
                return node_status_start_request(n, REQUEST_READ, n->status_url, "PATCH", MERGE_PATCH, "{}");

        if (n->event_pending) {
                (void) clock_gettime(CLOCK_REALTIME, &ts);
                doc = node_event_json(n->node, n->uid, &n->event_condition, now,
                                      (unsigned long long) ts.tv_sec * 1000000000ULL + (unsigned long long) ts.tv_nsec);
                body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
                if (!body)
                        return -ENOMEM;
                return node_status_start_request(n, REQUEST_EVENT, n->events_url, "POST", "application/json", body);
        }

        /* lastTransitionTime moves only with the status, as Kubernetes expects. */
        int r = node_condition_copy(&n->inflight, &n->want);
        if (r < 0)
                return r;
        n->inflight_transition = !n->on_node.reason || n->on_node.status != n->want.status || !n->on_node_transition
                                         ? now
                                         : n->on_node_transition;
        doc = node_condition_patch_json(&n->inflight, now, n->inflight_transition);
        body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        if (!body)
                return -ENOMEM;
        return node_status_start_request(n, REQUEST_PATCH, n->status_url, "PATCH", MERGE_PATCH, body);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        NodeStatus *n = userdata;
        int r;

        (void) s;
        if (n->req || n->want.status == NODE_CONDITION_UNKNOWN)
                return 0;
        if (n->node_known && usec >= n->heartbeat_at)
                n->dirty = true;
        if (need_request(n) && usec >= n->backoff_until) {
                r = node_status_send(n);
                if (r < 0) {
                        wipe_token(&n->token_sent);
                        node_condition_done(&n->inflight);
                        log_repeat(&n->logged, -1, r, "Failed to start a request for node %s: %s", n->node, strerror(-r));
                        if (n->event_pending) {
                                /* Do not let one unsendable event hold up the condition. */
                                n->event_pending = false;
                                node_condition_done(&n->event_condition);
                        }
                        node_status_backoff(n);
                }
        }
        node_status_schedule(n);
        return 0;
}

int node_status_new(sd_event *event, const NodeStatusOptions *o, NodeStatus **ret) {
        _cleanup_(node_status_freep) NodeStatus *n = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        assert(event);
        assert(o);
        assert(o->node);
        assert(ret);

        if (!kube_name_is_valid(o->node)) {
                log_error("The node name '%.253s' is not a valid Kubernetes name; give the node's name with --node-name",
                          o->node);
                return -EINVAL;
        }
        n = calloc(1, sizeof *n);
        if (!n)
                return -ENOMEM;
        n->event = sd_event_ref(event);
        n->heartbeat_usec = (o->heartbeat_sec ? o->heartbeat_sec : 300) * USEC_PER_SEC;
        token_bucket_init(&n->event_bucket, NODE_EVENT_BURST, NODE_EVENT_INTERVAL_USEC);
        n->node = strdup(o->node);
        if (!n->node)
                return -ENOMEM;

        r = kube_client_load(&n->client, o->kubeconfig, &error);
        if (r < 0) {
                if (o->kubeconfig)
                        log_error("Invalid kubeconfig '%s' for node status: %s", o->kubeconfig, error ? error : strerror(-r));
                else
                        log_error("Cannot use the in-cluster configuration for node status: %s", error ? error : strerror(-r));
                return r;
        }
        r = node_status_urls(n);
        if (r < 0)
                return r;

        r = curl_glue_new(event, &n->glue);
        if (r < 0)
                return r;
        r = sd_event_add_time(event, &n->timer, CLOCK_MONOTONIC, 0, USEC_PER_MSEC, on_timer, n);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(n->timer, "node-status-timer");
        (void) sd_event_source_set_enabled(n->timer, SD_EVENT_OFF);

        log_info("Keeping node %s's %s condition through the Kubernetes API: %s", n->node, NODE_CONDITION_TYPE,
                 n->client.config->origin);
        *ret = TAKE_PTR(n);
        return 0;
}

NodeStatus *node_status_free(NodeStatus *n) {
        if (!n)
                return NULL;
        /* The request runs on the glue: first out. */
        curl_request_free(n->req);
        curl_glue_free(n->glue);
        sd_event_source_disable_unref(n->timer);
        wipe_token(&n->token_sent);
        kube_client_done(&n->client);
        node_condition_done(&n->want);
        node_condition_done(&n->on_node);
        node_condition_done(&n->inflight);
        node_condition_done(&n->event_condition);
        sd_event_unref(n->event);
        free(n->node);
        free(n->uid);
        free(n->status_url);
        free(n->events_url);
        free(n);
        return NULL;
}

void node_status_update(NodeStatus *n, const State *s) {
        _cleanup_(node_condition_done) NodeCondition c = {};
        int r;

        assert(n);
        assert(s);

        r = node_condition_compute(s, &c);
        if (r < 0) {
                log_warning_errno(r, "Failed to compute node %s's %s condition, ignoring", n->node, NODE_CONDITION_TYPE);
                return;
        }
        if (c.status == NODE_CONDITION_UNKNOWN || node_condition_equal(&c, &n->want))
                return;
        node_condition_done(&n->want);
        n->want = c;
        c = (NodeCondition){};
        if (n->node_known && !node_condition_equal(&n->want, &n->on_node))
                n->dirty = true;
        node_status_schedule(n);
}

const NodeStatusStats *node_status_get_stats(const NodeStatus *n) {
        assert(n);
        return &n->stats;
}
