/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <stdint.h>

#include "utf8.h"

size_t utf8_sequence_length(const char *text, size_t avail) {
        const unsigned char *s = (const unsigned char *) text;
        uint32_t c;
        size_t n;

        assert(text || avail == 0);

        if (avail == 0)
                return 0;
        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                n = 2, c = s[0] & 0x1f;
        else if (s[0] >= 0xe0 && s[0] <= 0xef)
                n = 3, c = s[0] & 0x0f;
        else if (s[0] >= 0xf0 && s[0] <= 0xf4)
                n = 4, c = s[0] & 0x07;
        else
                return 0;
        if (n > avail)
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                c = (c << 6) | (s[i] & 0x3f);
        }
        if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10ffff)) || (c >= 0xd800 && c <= 0xdfff))
                return 0;
        return n;
}

char *utf8_printable(char *s) {
        unsigned char *p = (unsigned char *) s;

        while (p && *p) {
                /* A NUL ends the string and fails any sequence it cuts short. */
                size_t n = utf8_sequence_length((const char *) p, 4);
                if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f))) {
                        *p++ = '?';
                        continue;
                }
                /* C1 controls (U+0080-U+009F) too: U+009B is a CSI that
                 * a terminal reading the log acts on, U+0085 a line break. */
                if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0) {
                        p[0] = p[1] = '?';
                        p += 2;
                        continue;
                }
                p += n;
        }
        return s;
}

char *utf8_one_line(char *s) {
        for (char *p = s; p && *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = ' ';
        return utf8_printable(s);
}
