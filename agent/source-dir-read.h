/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Reading the directory source (source-dir-read.c): the trust map from a
 * kubelet-layout volume ("..data", one generation) or a plain directory,
 * and the pull secret from a file or a secret volume. -ESTALE when a
 * kubelet swap happened during the read (read again); other errors are
 * what failed the whole read. A value that cannot be taken is a refused
 * key in snap, never an error.
 */

#include "snapshot.h"

int source_dir_read_trust(const char *path, Snapshot *snap);
int source_dir_read_pull_secret(const char *path, Snapshot *snap);
