/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * containerd's per-registry hosts.toml (containerd docs/hosts.md): the one
 * nodetrustd writes beside its ca.crt, and the check of one someone else
 * wrote. containerd reads *.crt in a registry directory only when there is
 * no hosts.toml, and talks plain HTTP to loopback registries unless a
 * hosts.toml names an https:// server, so a written ca.crt is trust only
 * when the hosts.toml beside it (if any) points at it.
 */

#include <stdbool.h>
#include <stddef.h>

#define HOSTS_FILE "hosts.toml"
/* The first line of every hosts.toml nodetrustd writes. A file that does not
 * start with it is someone else's and is never rewritten or removed. */
#define HOSTS_MARKER "# Managed by nodetrustd."

/* What is at a registry directory's hosts.toml. */
typedef enum HostsFileKind {
        HOSTS_ABSENT,
        HOSTS_OURS,       /* a regular file starting with HOSTS_MARKER */
        HOSTS_FOREIGN,    /* someone else's, read as containerd reads it */
        HOSTS_UNREADABLE, /* someone else's that cannot be read (a directory, a FIFO, too big, ...) */
} HostsFileKind;

#define HOSTS_FILE_MAX (256u * 1024)
#define CONTAINERD_CERTS_DIR "/etc/containerd/certs.d"

/* Look at the hosts.toml in dfd, registry's directory below the containerd
 * target of rootfd (--root), the way containerd reads it: a symlink is
 * followed, but inside the root, and only to a regular file. Returns the
 * kind; with OURS and FOREIGN, *ret (NUL-terminated) and *ret_size hold the
 * text; with UNREADABLE, *ret_error the errno. -ENOMEM only. */
int containerd_hosts_read(int rootfd, int dfd, const char *registry, char **ret, size_t *ret_size, int *ret_error);

/* containerd_hosts_read(), judged for removing the ca.crt beside it:
 * *ret_names_ours when it is someone else's that names our ca.crt. Ours
 * goes first; someone else's that names it, or cannot be read, keeps it. */
int containerd_hosts_prune_kind(int rootfd, int dfd, const char *registry, bool *ret_names_ours);

/* The hosts.toml nodetrustd writes for registry ("host" or "host:port"). */
int containerd_hosts_render(const char *registry, char **ret, size_t *ret_size);

/* true when text is a hosts.toml nodetrustd wrote (it starts with HOSTS_MARKER). */
bool containerd_hosts_is_ours(const char *text, size_t size);

/* Would containerd use the ca.crt in certs_dir/registry/ for registry, given
 * the hosts.toml text found there? 0 and *ret_reason = NULL when it would;
 * 0 and an allocated reason when it would not (shadowed); -ENOMEM. certs_dir
 * is the directory as containerd sees it ("/etc/containerd/certs.d"). */
int containerd_hosts_check(const char *text, size_t size, const char *registry, const char *certs_dir,
                           char **ret_reason);

/* true when a hosts.toml someone else wrote names our ca.crt anywhere (for
 * the server or for any [host]): removing ca.crt would break it. */
bool containerd_hosts_names_ca(const char *text, size_t size, const char *registry, const char *certs_dir);

/* true for the names containerd talks plain HTTP to by default: localhost
 * and 127.0.0.0/8, with or without a port. */
bool registry_is_loopback(const char *registry);
