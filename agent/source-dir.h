/* SPDX-License-Identifier: MIT */
#pragma once

#include "source.h"

/* A source reading a mounted volume (kubelet "..data" layout) or a plain
 * directory for the trust config map, and a mounted secret volume or a
 * plain file for the pull secret. Either path may be NULL. */
int source_dir_new(const char *trust_path, const char *pull_secret_path, Source **ret);
