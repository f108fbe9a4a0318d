#!/bin/sh
# SPDX-License-Identifier: MIT
# nodetrustd memory with 100 registries and ..data swap -> disk latency
# (see agent-rss.py and bench/README.md). Records numbers; asserts nothing.
exec /usr/bin/python3 "$(dirname "$0")/agent-rss.py" "$@"
