/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "cleanup.h"
#include "source-kube-check.h"

/* Keys and values quoted in a message are cut here: a reason is one line
 * of /status, not a copy of the object. */
#define QUOTE_MAX 64

_printf_(3, 4) static int bad(char *err, size_t err_size, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
        return -EBADMSG;
}

bool kube_name_is_valid(const char *name) {
        size_t n = name ? strlen(name) : 0;

        if (n == 0 || n > 253)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
                        return false;
        }
        /* Each dot-separated label starts and ends alphanumeric. */
        for (size_t i = 0; i < n; i++)
                if ((name[i] == '-' || name[i] == '.') &&
                    (i == 0 || i == n - 1 || name[i - 1] == '.' || name[i + 1] == '.'))
                        return false;
        return true;
}

const char *kube_json_type(json_t *v) {
        if (!v)
                return "missing";
        switch (json_typeof(v)) {
        case JSON_OBJECT:
                return "an object";
        case JSON_ARRAY:
                return "an array";
        case JSON_STRING:
                return "a string";
        case JSON_INTEGER:
        case JSON_REAL:
                return "a number";
        case JSON_TRUE:
        case JSON_FALSE:
                return "a boolean";
        case JSON_NULL:
        default:
                return "null";
        }
}

static int check_string_field(json_t *o, const char *field, const char *want, bool required, char *err,
                              size_t err_size) {
        json_t *v = json_object_get(o, field);

        if (!v && !required)
                return 0;
        if (!json_is_string(v))
                return bad(err, err_size, "%s is %s, not the string \"%s\"", field, kube_json_type(v), want);
        if (!streq(json_string_value(v), want))
                return bad(err, err_size, "%s is \"%.*s\", not \"%s\"", field, QUOTE_MAX, json_string_value(v), want);
        return 0;
}

int kube_check_kind(json_t *o, const char *api_version, const char *kind, bool required, char *err, size_t err_size) {
        int r;

        assert(api_version);
        assert(kind);
        assert(err);

        if (!json_is_object(o))
                return bad(err, err_size, "the object is %s, not an object", kube_json_type(o));
        r = check_string_field(o, "kind", kind, required, err, err_size);
        if (r < 0)
                return r;
        return check_string_field(o, "apiVersion", api_version, required, err, err_size);
}

/* field absent or null: fine; else it must be an object. */
static int check_optional_object(json_t *o, const char *field, char *err, size_t err_size) {
        json_t *v = json_object_get(o, field);

        if (v && !json_is_null(v) && !json_is_object(v))
                return bad(err, err_size, "%s is %s, not an object", field, kube_json_type(v));
        return 0;
}

int kube_check_configmap(json_t *configmap, char *err, size_t err_size) {
        static const char *const fields[] = { "data", "binaryData" };
        int r;

        assert(err);

        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                json_t *m, *v;
                const char *key;

                r = check_optional_object(configmap, fields[i], err, err_size);
                if (r < 0)
                        return r;
                m = json_object_get(configmap, fields[i]);
                json_object_foreach(m, key, v) {
                        _cleanup_free_ unsigned char *dec = NULL;
                        size_t n;

                        if (!json_is_string(v))
                                return bad(err, err_size, "%s.%.*s is %s, not a string", fields[i], QUOTE_MAX, key,
                                           kube_json_type(v));
                        if (i == 0)
                                continue;
                        r = base64_decode_alloc(json_string_value(v), json_string_length(v), &dec, &n);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0)
                                return bad(err, err_size, "binaryData.%.*s is not base64", QUOTE_MAX, key);
                }
        }
        return 0;
}

int kube_check_pull_secret(json_t *secret, char *err, size_t err_size) {
        unsigned char *dec = NULL;
        json_t *data, *v;
        size_t n;
        int r;

        assert(err);

        /* Only this type is validated by the API server as a registry
         * credential; an Opaque secret of the same name is someone's
         * mistake (or worse), not the node's credentials. */
        r = check_string_field(secret, "type", KUBE_PULL_SECRET_TYPE, true, err, err_size);
        if (r < 0)
                return r;
        data = json_object_get(secret, "data");
        if (!json_is_object(data))
                return bad(err, err_size, "data is %s, not an object", kube_json_type(data));
        v = json_object_get(data, ".dockerconfigjson");
        if (!json_is_string(v))
                return bad(err, err_size, "data..dockerconfigjson is %s, not a string", kube_json_type(v));
        r = base64_decode_alloc(json_string_value(v), json_string_length(v), &dec, &n);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return bad(err, err_size, "data..dockerconfigjson is not base64");
        /* Credentials: wiped, as every buffer that held them. */
        explicit_bzero(dec, n);
        free(dec);
        return 0;
}

int kube_check_image(json_t *image, char *err, size_t err_size) {
        json_t *spec, *ca, *name;
        int r;

        assert(err);

        r = check_optional_object(image, "spec", err, err_size);
        if (r < 0)
                return r;
        spec = json_object_get(image, "spec");
        r = check_optional_object(spec, "additionalTrustedCA", err, err_size);
        if (r < 0)
                return bad(err, err_size, "spec.additionalTrustedCA is %s, not an object",
                           kube_json_type(json_object_get(spec, "additionalTrustedCA")));
        ca = json_object_get(spec, "additionalTrustedCA");
        name = json_object_get(ca, "name");
        if (!name || json_is_null(name))
                return 0;
        if (!json_is_string(name))
                return bad(err, err_size, "spec.additionalTrustedCA.name is %s, not a string", kube_json_type(name));
        if (json_string_length(name) > 0 && !kube_name_is_valid(json_string_value(name)))
                return bad(err, err_size, "spec.additionalTrustedCA.name '%.*s' is not a valid config map name",
                           QUOTE_MAX, json_string_value(name));
        return 0;
}
