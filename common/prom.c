/* SPDX-License-Identifier: MIT */
#include <assert.h>

#include "prom.h"

void prom_label_value(FILE *f, const char *v) {
        assert(f);
        assert(v);

        for (; *v; v++) {
                if (*v == '\\')
                        fputs("\\\\", f);
                else if (*v == '"')
                        fputs("\\\"", f);
                else if (*v == '\n')
                        fputs("\\n", f);
                else
                        fputc(*v, f);
        }
}
