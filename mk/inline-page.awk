# SPDX-License-Identifier: MIT
# The fleet page is edited as three files (aggregator/page/) but served as
# one self-contained document, so that it needs no second request and runs
# under the page's Content-Security-Policy (see aggregator/page.c). This
# puts the style sheet and the script into the HTML where it links them:
#
#   awk -f mk/inline-page.awk aggregator/page/index.html > index.html
#
# The line <link rel="stylesheet" href="page.css"> becomes <style>, the
# file, </style>; <script src="page.js"></script> becomes <script>, the
# file, </script>. Both files are read from the HTML file's directory, as a
# browser opening index.html from disk would. A first line naming the
# licence (SPDX-License-Identifier) belongs to the source file, not to the
# page, and is left out of each. Each link must appear exactly once.

function inline(tag, file,    line, n, r) {
        print "<" tag ">"
        while ((r = (getline line < file)) > 0)
                if (++n > 1 || line !~ /SPDX-License-Identifier/)
                        print line
        if (r < 0)
                fail("cannot read " file)
        close(file)
        print "</" tag ">"
}

function fail(message) {
        print "inline-page.awk: " message > "/dev/stderr"
        failed = 1
        exit 1
}

FNR == 1 {
        dir = FILENAME
        sub(/[^\/]*$/, "", dir)
        if (/SPDX-License-Identifier/)
                next
}

$0 == "<link rel=\"stylesheet\" href=\"page.css\">" {
        inline("style", dir "page.css")
        css++
        next
}

$0 == "<script src=\"page.js\"></script>" {
        inline("script", dir "page.js")
        js++
        next
}

{ print }

END {
        if (failed)
                exit 1
        if (css != 1 || js != 1)
                fail("expected page.css and page.js linked once each, found " css + 0 " and " js + 0)
}
