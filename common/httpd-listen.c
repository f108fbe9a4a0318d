/* SPDX-License-Identifier: MIT */
/* The listening side of common/httpd.c: "ADDR:PORT" parsed, the socket
 * bound, and how many connections the descriptor limit allows. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "cleanup.h"
#include "httpd-listen.h"

int httpd_parse_listen(const char *listen, void *ret_sockaddr_storage, size_t *ret_len) {
        struct sockaddr_storage *ss = ret_sockaddr_storage;
        char host[INET6_ADDRSTRLEN + 1];
        const char *colon, *port_str;
        unsigned long port;
        char *end;
        size_t n;

        /* listen may be NULL: that is -EINVAL, like any other bad value. */
        assert(ret_sockaddr_storage);
        assert(ret_len);

        if (!listen || !*listen)
                return -EINVAL;

        if (listen[0] == '[') {
                const char *close = strchr(listen, ']');
                if (!close || close[1] != ':')
                        return -EINVAL;
                n = (size_t) (close - listen - 1);
                if (n == 0 || n >= sizeof host)
                        return -EINVAL;
                memcpy(host, listen + 1, n);
                host[n] = 0;
                port_str = close + 2;
        } else {
                colon = strrchr(listen, ':');
                if (!colon || strchr(listen, ':') != colon)
                        return -EINVAL; /* a bare IPv6 address needs brackets */
                n = (size_t) (colon - listen);
                if (n == 0 || n >= sizeof host)
                        return -EINVAL;
                memcpy(host, listen, n);
                host[n] = 0;
                port_str = colon + 1;
        }

        /* Digits only: strtoul would take "+80", " 80" or "0x50". */
        if (port_str[0] < '0' || port_str[0] > '9' || strlen(port_str) > 5)
                return -EINVAL;
        errno = 0;
        port = strtoul(port_str, &end, 10);
        if (errno || *end || port > 65535)
                return -EINVAL;

        memset(ss, 0, sizeof *ss);
        if (listen[0] == '[') {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) ss;
                if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
                        return -EINVAL;
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port = htons((uint16_t) port);
                *ret_len = sizeof *sin6;
        } else {
                struct sockaddr_in *sin = (struct sockaddr_in *) ss;
                if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
                        return -EINVAL;
                sin->sin_family = AF_INET;
                sin->sin_port = htons((uint16_t) port);
                *ret_len = sizeof *sin;
        }
        return 0;
}

/* Bind and listen ourselves rather than let MHD do it: MHD reports a
 * failure without its cause, and the cause is what an operator needs ("Too
 * many open files" is not "Address already in use"). */
int httpd_listen_socket(const struct sockaddr_storage *ss, size_t len) {
        static const int one = 1;
        _cleanup_close_ int fd = -EBADF;

        fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* A restart must not wait for the old connections' TIME_WAIT. */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
                return -errno;
        if (ss->ss_family == AF_INET6) {
                const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) ss;
                /* "[::]:PORT" means every address, IPv4 included; any other
                 * IPv6 address only itself. */
                int v6only = !IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
                if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0)
                        return -errno;
        }
        if (bind(fd, (const struct sockaddr *) ss, (socklen_t) len) < 0)
                return -errno;
        if (listen(fd, SOMAXCONN) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* The connection limit the descriptor limit allows: every connection is a
 * descriptor, and accept() failing with EMFILE would stall the server (MHD
 * stops accepting until one closes) and starve the rest of the process. */
unsigned httpd_connections_allowed(unsigned wanted, unsigned reserve, unsigned long long *ret_rlimit) {
        struct rlimit rl;
        unsigned long long avail;

        *ret_rlimit = 0;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
                return wanted;
        avail = rl.rlim_cur > 2 * reserve ? rl.rlim_cur - reserve : rl.rlim_cur / 2;
        if (avail >= wanted)
                return wanted;
        *ret_rlimit = rl.rlim_cur;
        return avail > 0 ? (unsigned) avail : 1;
}
