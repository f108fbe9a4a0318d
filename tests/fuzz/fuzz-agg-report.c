/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the aggregator's report parser (what any holder of a
 * report token can send) never crashes or leaks, refuses with a reason, and
 * what it accepts is bounded as docs/report-format.md says. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Report *r = NULL;
        RejectReason why = 0;
        char *msg = NULL;

        if (report_parse((const char *) data, size, &r, &why, &msg) >= 0) {
                size_t kept = 0;

                if (!r || !r->node || strlen(r->source_hash) != 64)
                        __builtin_trap();
                for (char **e = r->errors; e && *e; e++, kept++)
                        if (strlen(*e) > REPORT_MAX_ERROR_LEN)
                                __builtin_trap();
                if (kept > REPORT_MAX_ERRORS || kept > r->n_errors)
                        __builtin_trap();
                report_free(r);
        } else if (r)
                __builtin_trap();
        free(msg);
        return 0;
}
