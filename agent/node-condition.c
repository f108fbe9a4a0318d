/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "node-condition.h"
#include "source-kube-check.h"
#include "utf8.h"

/* Long enough for any registry name (253 + ":65535"), short enough that
 * five of them and a sync error keep the message readable. */
#define NAME_MAX_LEN 260
#define ERROR_MAX_LEN 256

static const char *const status_names[_NODE_CONDITION_STATUS_MAX] = {
        [NODE_CONDITION_UNKNOWN] = "Unknown",
        [NODE_CONDITION_TRUE] = "True",
        [NODE_CONDITION_FALSE] = "False",
};

const char *node_condition_status_to_string(NodeConditionStatus s) {
        return s >= 0 && s < _NODE_CONDITION_STATUS_MAX ? status_names[s] : "Unknown";
}

NodeConditionStatus node_condition_status_from_string(const char *s) {
        for (int i = 0; s && i < _NODE_CONDITION_STATUS_MAX; i++)
                if (streq(s, status_names[i]))
                        return (NodeConditionStatus) i;
        return NODE_CONDITION_UNKNOWN;
}

void node_condition_done(NodeCondition *c) {
        if (!c)
                return;
        free(c->reason);
        free(c->message);
        *c = (NodeCondition){};
}

bool node_condition_equal(const NodeCondition *a, const NodeCondition *b) {
        return a->status == b->status && streq_ptr(a->reason, b->reason) && streq_ptr(a->message, b->message);
}

int node_condition_copy(NodeCondition *dst, const NodeCondition *src) {
        NodeCondition c = { .status = src->status };

        if ((src->reason && !(c.reason = strdup(src->reason))) ||
            (src->message && !(c.message = strdup(src->message)))) {
                node_condition_done(&c);
                return -ENOMEM;
        }
        node_condition_done(dst);
        *dst = c;
        return 0;
}

/* A growing string; any failure sticks and is reported at the end. */
typedef struct Buf {
        char *s;
        size_t len;
        bool oom;
} Buf;

_printf_(2, 3) static void buf_printf(Buf *b, const char *fmt, ...) {
        _cleanup_free_ char *add = NULL;
        va_list ap;
        int n;
        char *s;

        if (b->oom)
                return;
        va_start(ap, fmt);
        n = vasprintf(&add, fmt, ap);
        va_end(ap);
        if (n < 0 || !(s = realloc(b->s, b->len + (size_t) n + 1))) {
                b->oom = true;
                return;
        }
        memcpy(s + b->len, add, (size_t) n + 1);
        b->s = s;
        b->len += (size_t) n;
}

/* Text from a key, a file name or an error, made one printable line. */
static void buf_add_clean(Buf *b, const char *text, size_t max) {
        size_t n = strlen(text);
        bool cut = n > max;
        char *c = strndup(text, cut ? max : n);

        if (!c) {
                b->oom = true;
                return;
        }
        /* A key that is not UTF-8 (a plain directory can hold any bytes)
         * would make the patch unbuildable: JSON strings are UTF-8. */
        utf8_one_line(c);
        buf_printf(b, "%s%s", c, cut ? "..." : "");
        free(c);
}

static const char *result_name(const RegistryResult *r) {
        return r->registry ? r->registry : r->key ? r->key : "?";
}

/* Why r is a trust problem, or NULL when it is none. */
static const char *result_problem(const RegistryResult *r) {
        if (r->state != REGISTRY_APPLIED)
                return registry_state_to_string(r->state);
        if (r->verify.state == VERIFY_MISMATCH)
                return "mismatch";
        return NULL;
}

/* "a (conflict), b (refused) and 3 more": the first few results for
 * which pick() says something. Returns how many it found. */
static size_t buf_add_list(Buf *b, const State *s, const char *(*pick)(const RegistryResult *)) {
        size_t n = 0;

        for (size_t i = 0; i < s->n_registries; i++) {
                const char *why = pick(&s->registries[i]);

                if (!why)
                        continue;
                if (n < NODE_CONDITION_MAX_NAMED) {
                        if (n > 0)
                                buf_printf(b, ", ");
                        buf_add_clean(b, result_name(&s->registries[i]), NAME_MAX_LEN);
                        buf_printf(b, " (%s)", why);
                }
                n++;
        }
        if (n > NODE_CONDITION_MAX_NAMED)
                buf_printf(b, " and %zu more", n - NODE_CONDITION_MAX_NAMED);
        return n;
}

static const char *result_unreachable(const RegistryResult *r) {
        return r->state == REGISTRY_APPLIED && r->verify.state == VERIFY_UNREACHABLE ? "unreachable" : NULL;
}

static size_t count(const State *s, const char *(*pick)(const RegistryResult *), bool *ret_other) {
        size_t n = 0;

        *ret_other = false;
        for (size_t i = 0; i < s->n_registries; i++)
                if (pick(&s->registries[i])) {
                        n++;
                        if (s->registries[i].state != REGISTRY_APPLIED)
                                *ret_other = true;
                }
        return n;
}

int node_condition_compute(const State *s, NodeCondition *ret) {
        NodeCondition c = {};
        Buf msg = {};
        const char *reason;
        bool not_mismatch;
        size_t n_bad, n_unreachable;

        assert(s);
        assert(ret);

        if (!s->first_sync_done) {
                node_condition_done(ret);
                return 0;
        }

        n_bad = count(s, result_problem, &not_mismatch);
        n_unreachable = count(s, result_unreachable, &(bool){ false });
        if (!s->last_sync_ok) {
                c.status = NODE_CONDITION_FALSE;
                reason = NODE_REASON_SYNC_FAILED;
                buf_printf(&msg, "The last sync failed: ");
                buf_add_clean(&msg, s->last_error ? s->last_error : "unknown error", ERROR_MAX_LEN);
                if (n_bad > 0) {
                        buf_printf(&msg, "; not trusted: ");
                        buf_add_list(&msg, s, result_problem);
                }
        } else if (n_bad > 0) {
                c.status = NODE_CONDITION_FALSE;
                reason = not_mismatch ? NODE_REASON_NOT_TRUSTED : NODE_REASON_MISMATCH;
                buf_printf(&msg, "%zu registr%s not trusted: ", n_bad, n_bad == 1 ? "y" : "ies");
                buf_add_list(&msg, s, result_problem);
        } else {
                c.status = NODE_CONDITION_TRUE;
                reason = NODE_REASON_TRUSTED;
                if (s->n_valid == 0)
                        buf_printf(&msg, "No registries configured");
                else
                        buf_printf(&msg, "All %zu registr%s trusted", s->n_valid, s->n_valid == 1 ? "y" : "ies");
        }
        /* A registry that is down is not a trust problem, but worth a word. */
        if (n_unreachable > 0) {
                buf_printf(&msg, "; unreachable: ");
                buf_add_list(&msg, s, result_unreachable);
        }

        c.reason = strdup(reason);
        c.message = msg.s;
        if (msg.oom || !c.reason || !c.message) {
                node_condition_done(&c); /* frees msg.s too */
                return -ENOMEM;
        }
        node_condition_done(ret);
        *ret = c;
        return 0;
}

int node_time_format(time_t t, char buf[static 21]) {
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) != 20)
                return -EINVAL;
        return 0;
}

time_t node_time_parse(const char *s) {
        struct tm tm = {};
        const char *end;

        if (!s)
                return 0;
        end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!end)
                return 0;
        /* Fractions are allowed in RFC 3339; the API writes none here. */
        if (*end == '.')
                end += 1 + strspn(end + 1, "0123456789");
        if (!streq(end, "Z"))
                return 0;
        return timegm(&tm);
}

static json_t *json_time(time_t t) {
        char buf[21];

        return node_time_format(t, buf) < 0 ? NULL : json_string(buf);
}

json_t *node_condition_patch_json(const NodeCondition *c, time_t heartbeat, time_t transition) {
        assert(c);
        return json_pack("{s:{s:[{s:s, s:s, s:s, s:s, s:o?, s:o?}]}}", "status", "conditions",
                         "type", NODE_CONDITION_TYPE,
                         "status", node_condition_status_to_string(c->status),
                         "reason", c->reason ? c->reason : "",
                         "message", c->message ? c->message : "",
                         "lastHeartbeatTime", json_time(heartbeat),
                         "lastTransitionTime", json_time(transition));
}

json_t *node_event_json(const char *node, const char *uid, const NodeCondition *c, time_t now,
                        unsigned long long name_suffix) {
        _cleanup_free_ char *name = NULL;
        json_auto_t *ev = NULL, *involved = NULL;
        json_t *ts;

        assert(node);
        assert(c);

        /* An object name is at most 253 characters. */
        if (asprintf(&name, "%.235s.%llx", node, name_suffix) < 0)
                return NULL;
        involved = json_pack("{s:s, s:s, s:s}", "apiVersion", "v1", "kind", "Node", "name", node);
        if (!involved || (uid && json_object_set_new(involved, "uid", json_string(uid)) < 0))
                return NULL;
        ts = json_time(now);
        ev = json_pack("{s:s, s:s, s:{s:s, s:s}, s:O, s:s, s:s, s:s, s:{s:s, s:s}, s:o, s:O, s:i, s:s, s:s}",
                       "apiVersion", "v1", "kind", "Event",
                       "metadata", "name", name, "namespace", "default",
                       "involvedObject", involved,
                       "reason", c->reason ? c->reason : "",
                       "message", c->message ? c->message : "",
                       "type", c->status == NODE_CONDITION_TRUE ? "Normal" : "Warning",
                       "source", "component", "nodetrustd", "host", node,
                       "firstTimestamp", ts,
                       "lastTimestamp", ts,
                       "count", 1,
                       "reportingComponent", "nodetrustd",
                       "reportingInstance", node);
        return TAKE_PTR(ev);
}

static bool json_type_or_absent(const json_t *v, json_type t) {
        return !v || json_typeof(v) == t;
}

int node_parse(const char *body, size_t size, char **ret_uid, NodeCondition *ret_condition, time_t *ret_transition) {
        json_auto_t *node = NULL;
        _cleanup_free_ char *uid = NULL;
        NodeCondition c = {};
        time_t transition = 0;
        json_t *conds, *e;
        const char *u;
        size_t i;

        assert(body);
        assert(ret_uid);
        assert(ret_condition);
        assert(ret_transition);

        node = json_loadb(body, size, 0, NULL);
        char why[128];
        if (kube_check_kind(node, "v1", "Node", true, why, sizeof why) < 0)
                return -EBADMSG;
        /* A field of the wrong type is a bad answer, not an absent field. */
        if (!json_type_or_absent(json_object_get(json_object_get(node, "metadata"), "uid"), JSON_STRING))
                return -EBADMSG;
        u = json_string_value(json_object_get(json_object_get(node, "metadata"), "uid"));
        if (u && !(uid = strdup(u)))
                return -ENOMEM;

        conds = json_object_get(json_object_get(node, "status"), "conditions");
        if (!json_type_or_absent(conds, JSON_ARRAY))
                return -EBADMSG;
        json_array_foreach(conds, i, e) {
                const char *type = json_string_value(json_object_get(e, "type"));
                const char *reason = json_string_value(json_object_get(e, "reason"));
                const char *message = json_string_value(json_object_get(e, "message"));

                if (!type || !streq(type, NODE_CONDITION_TYPE))
                        continue;
                if (!json_is_string(json_object_get(e, "status")) ||
                    !json_type_or_absent(json_object_get(e, "reason"), JSON_STRING) ||
                    !json_type_or_absent(json_object_get(e, "message"), JSON_STRING) ||
                    !json_type_or_absent(json_object_get(e, "lastTransitionTime"), JSON_STRING))
                        return -EBADMSG;
                c.status = node_condition_status_from_string(json_string_value(json_object_get(e, "status")));
                if ((!(c.reason = strdup(reason ? reason : ""))) || (message && !(c.message = strdup(message)))) {
                        node_condition_done(&c);
                        return -ENOMEM;
                }
                transition = node_time_parse(json_string_value(json_object_get(e, "lastTransitionTime")));
                break;
        }

        free(*ret_uid);
        *ret_uid = TAKE_PTR(uid);
        node_condition_done(ret_condition);
        *ret_condition = c;
        *ret_transition = transition;
        return 0;
}
