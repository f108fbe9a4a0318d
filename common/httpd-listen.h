/* SPDX-License-Identifier: MIT */
#pragma once

/* The listening side of common/httpd.c; httpd.h includes this. */

#include <stddef.h>
#include <sys/socket.h>

/* Parse "ADDR:PORT" (IPv4 dotted quad or "[IPv6]", port 0-65535) into
 * a sockaddr_storage and its length; -EINVAL when it is not one. */
int httpd_parse_listen(const char *listen, void *ret_sockaddr_storage, size_t *ret_len);

/* A non-blocking listening TCP socket bound to ss ("[::]" also takes IPv4,
 * any other IPv6 address only itself), or the negative errno of the step
 * that failed: -EMFILE, -EADDRINUSE, -EADDRNOTAVAIL, ... */
int httpd_listen_socket(const struct sockaddr_storage *ss, size_t len);

/* wanted, or fewer when RLIMIT_NOFILE leaves fewer descriptors once reserve
 * are kept for the rest of the process; *ret_rlimit is then that soft limit
 * (else 0). Never 0. */
unsigned httpd_connections_allowed(unsigned wanted, unsigned reserve, unsigned long long *ret_rlimit);
