/* SPDX-License-Identifier: MIT */
#pragma once

/* What manifest.c (load) and manifest-save.c (save) share. */

#include <stdint.h>

#include "manifest.h"

/* What the manifest says is ours, content hashes left out (entries,
 * dir_created, whether a ca.crt or hosts.toml was written): a save that
 * leaves it as it was on disk changes only content hashes. */
uint64_t manifest_ownership_signature(const Manifest *m);
