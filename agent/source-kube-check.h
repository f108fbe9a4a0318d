/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What an object from the API server must look like before nodetrustd
 * takes it: the kind and apiVersion it claims, and the type of every field
 * read from it. A field of the wrong type is an error, never "absent": an
 * additionalTrustedCA.name that is a number does not mean "no config map",
 * and a secret of another type is not a pull secret. Each check returns 0,
 * or -EBADMSG with what is wrong in err, naming the field ("data.KEY is a
 * number, not a string"). Pure functions, no I/O.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The type of a pull secret: what the API server validates as holding a
 * .dockerconfigjson key. */
#define KUBE_PULL_SECRET_TYPE "kubernetes.io/dockerconfigjson"

/* A DNS-1123 subdomain, what Kubernetes allows as a config map or secret name. */
bool kube_name_is_valid(const char *name);

typedef int (*kube_object_check_t)(json_t *object, char *err, size_t err_size);

/* "a string", "a number", "an object", "an array", "a boolean", "null",
 * "missing" (v NULL): for messages. */
const char *kube_json_type(json_t *v);

/* o's kind and apiVersion are kind and api_version. With required false
 * each may be absent (a list's items omit them), but not different. */
int kube_check_kind(json_t *o, const char *api_version, const char *kind, bool required, char *err, size_t err_size);

/* A ConfigMap: data and binaryData absent, null or objects of strings,
 * binaryData values base64. */
int kube_check_configmap(json_t *configmap, char *err, size_t err_size);

/* The pull secret: type KUBE_PULL_SECRET_TYPE, data an object whose
 * .dockerconfigjson is a base64 string. */
int kube_check_pull_secret(json_t *secret, char *err, size_t err_size);

/* image.config.openshift.io: spec and spec.additionalTrustedCA absent, null
 * or objects; its name absent, null, empty or a valid config map name. */
int kube_check_image(json_t *image, char *err, size_t err_size);
