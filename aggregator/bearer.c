/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bearer.h"

static void digest(const char *s, size_t n, unsigned char ret[32]) {
        /* SHA256() and not EVP_Digest(): this runs for every report, and
         * EVP_Digest() sets up (and frees) a digest context each time,
         * several times the cost of hashing a token. */
        if (!SHA256((const unsigned char *) s, n, ret))
                /* Cannot happen short of a broken libcrypto; make the digest
                 * unmatchable rather than predictable. */
                memset(ret, 0xff, 32);
}

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Read the file and replace the digests only when it holds a token. */
static int token_file_load(TokenFile *t) {
        unsigned char digests[TOKEN_MAX][32];
        char buf[TOKEN_FILE_MAX + 1];
        _cleanup_close_ int fd = -1;
        size_t size = 0, n = 0;
        struct stat st;
        ssize_t k;

        /* O_NONBLOCK: a FIFO there blocked the loop in open(2) before the
         * type was looked at; a regular file reads the same with it. */
        fd = open(t->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        while (size < sizeof buf) {
                k = read(fd, buf + size, sizeof buf - size);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                size += (size_t) k;
        }
        if (size > TOKEN_FILE_MAX)
                return -EFBIG;
        buf[size] = 0;

        for (char *line = buf, *next; line && *line; line = next) {
                char *end;

                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                while (is_blank(*line))
                        line++;
                end = line + strlen(line);
                while (end > line && is_blank(end[-1]))
                        *--end = 0;
                if (!*line || *line == '#')
                        continue;
                if (n == TOKEN_MAX)
                        return -E2BIG;
                digest(line, (size_t) (end - line), digests[n++]);
        }
        explicit_bzero(buf, sizeof buf);
        if (n == 0)
                return -ENODATA;

        memcpy(t->digests, digests, sizeof digests);
        t->n_tokens = n;
        t->dev = st.st_dev;
        t->ino = st.st_ino;
        t->size = st.st_size;
        t->mtime = st.st_mtim;
        t->loaded = true;
        return 0;
}

int token_file_new(const char *path, TokenFile **ret) {
        _cleanup_(token_file_freep) TokenFile *t = NULL;
        int r;

        assert(path);
        assert(ret);

        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        t->path = strdup(path);
        if (!t->path)
                return -ENOMEM;
        r = token_file_load(t);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(t);
        return 0;
}

TokenFile *token_file_free(TokenFile *t) {
        if (t) {
                explicit_bzero(t->digests, sizeof t->digests);
                free(t->path);
                free(t);
        }
        return NULL;
}

int token_file_refresh(TokenFile *t) {
        struct stat st;
        int r;

        assert(t);

        /* stat() follows the symlinks a mounted secret is made of, so the
         * kubelet's ..data swap shows up as a new inode. */
        if (stat(t->path, &st) < 0)
                return -errno;
        if (t->loaded && st.st_dev == t->dev && st.st_ino == t->ino && st.st_size == t->size &&
            st.st_mtim.tv_sec == t->mtime.tv_sec && st.st_mtim.tv_nsec == t->mtime.tv_nsec)
                return 0;
        r = token_file_load(t);
        return r < 0 ? r : 1;
}

bool token_file_check_authorization(const TokenFile *t, const char *authorization) {
        unsigned char d[32];
        const char *s, *end;
        int match = 0;

        if (!t || !authorization)
                return false;
        s = authorization;
        while (*s == ' ' || *s == '\t')
                s++;
        if (strncasecmp(s, "Bearer", 6) != 0 || (s[6] != ' ' && s[6] != '\t'))
                return false;
        s += 6;
        while (*s == ' ' || *s == '\t')
                s++;
        end = s + strlen(s);
        while (end > s && is_blank(end[-1]))
                end--;
        if (end == s)
                return false;

        digest(s, (size_t) (end - s), d);
        /* Look at every token, so the time taken does not say which matched. */
        for (size_t i = 0; i < t->n_tokens; i++)
                match |= CRYPTO_memcmp(d, t->digests[i], sizeof d) == 0;
        return match;
}
