/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "strv.h"

char **strv_free(char **l) {
        if (l)
                for (char **p = l; *p; p++)
                        free(*p);
        free(l);
        return NULL;
}

size_t strv_length(char *const *l) {
        size_t n = 0;
        while (l && l[n])
                n++;
        return n;
}

bool strv_contains(char *const *l, const char *s) {
        assert(s);

        for (size_t i = 0; l && l[i]; i++)
                if (streq(l[i], s))
                        return true;
        return false;
}

int strv_extend(char ***l, const char *s) {
        size_t n;
        char **m;
        char *c;

        assert(l);
        assert(s);

        n = strv_length(*l);
        c = strdup(s);
        if (!c)
                return -ENOMEM;
        m = realloc(*l, (n + 2) * sizeof *m);
        if (!m) {
                free(c);
                return -ENOMEM;
        }
        m[n] = c;
        m[n + 1] = NULL;
        *l = m;
        return 0;
}

int strv_split_comma(const char *s, char ***ret) {
        _cleanup_free_ char *copy = NULL;
        char *save = NULL;
        char **l;

        assert(s);
        assert(ret);

        copy = strdup(s);
        l = calloc(1, sizeof *l);
        if (!copy || !l) {
                free(l);
                return -ENOMEM;
        }
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                char *e;
                while (*t == ' ' || *t == '\t')
                        t++;
                e = t + strlen(t);
                while (e > t && (e[-1] == ' ' || e[-1] == '\t'))
                        *--e = 0;
                if (*t && strv_extend(&l, t) < 0) {
                        strv_free(l);
                        return -ENOMEM;
                }
        }
        *ret = l;
        return 0;
}

char *strv_join(char *const *l, const char *sep) {
        size_t len = 1, ls;
        char *r, *p;

        assert(sep);

        ls = strlen(sep);
        for (size_t i = 0; l && l[i]; i++)
                len += strlen(l[i]) + ls;
        r = p = malloc(len);
        if (!r)
                return NULL;
        *p = 0;
        for (size_t i = 0; l && l[i]; i++) {
                if (i > 0)
                        p = stpcpy(p, sep);
                p = stpcpy(p, l[i]);
        }
        return r;
}

bool strv_equal(char *const *a, char *const *b) {
        for (; a && *a && b && *b; a++, b++)
                if (strcmp(*a, *b) != 0)
                        return false;
        return !(a && *a) && !(b && *b);
}

int strv_compare(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}
