#!/bin/sh
# SPDX-License-Identifier: MIT
# The baseline bench/run.py measures nodetrustd against: the poll-and-copy
# loop of OpenShift's node-ca DaemonSet, written here from its documented
# algorithm in the same style (a /bin/sh loop, one `cp` per key, a `sed` per
# name, `sleep INTERVAL` between passes):
#
#   every INTERVAL seconds, for each key of the mounted config map, copy it
#   to CERTS_D/<host:port>/ca.crt (key `host..port`, the last `..` is the
#   `:`), making the directory when missing (`cp -u`: only when the key's
#   file is newer than the copy); then delete every CERTS_D directory that
#   has no key.
#
# Like node-ca it writes one target (docker's certs.d) and writes in place
# (no temp file, no fsync). It echoes each name it handles, as node-ca does;
# after each pass it writes "pass N" to stderr so the bench can time passes.
#
#   bench/node-ca-loop.sh SOURCE CERTS_D INTERVAL
set -u
src=$1
certs=$2
interval=$3
pass=0
trap 'kill $! 2>/dev/null; exit 0' TERM INT
while true; do
	for key in $(ls "$src"); do
		echo "$key"
		host=$(echo "$key" | sed -r 's/(.*)\.\./\1:/')
		dir="$certs/$host"
		if [ -e "$dir" ]; then
			cp -u "$src/$key" "$dir/ca.crt"
		else
			mkdir "$dir"
			cp "$src/$key" "$dir/ca.crt"
		fi
	done
	for host in $(ls "$certs"); do
		echo "$host"
		key=$(echo "$host" | sed -r 's/(.*):/\1../')
		if [ ! -e "$src/$key" ]; then
			rm -rf "$certs/$host"
		fi
	done
	pass=$((pass + 1))
	echo "pass $pass" >&2
	sleep "$interval" &
	wait $!
done
