#!/bin/sh
# SPDX-License-Identifier: MIT
# The cost of containerd's hosts.toml on a 100-registry ..data swap: the
# agent-rss benchmark with --containerd-hosts-toml never and always,
# interleaved, in one run (see hosts-toml.py and bench/README.md).
exec /usr/bin/python3 "$(dirname "$0")/hosts-toml.py" "$@"
