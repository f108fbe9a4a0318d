#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian packages nodetrust builds and tests with, when missing.
# Usage: scripts/deps.sh [build|test|bench|all]   (default: all)
# bench: the test packages and what make bench needs (strace, wrk, python3-cryptography).
# Runs apt-get update at most once per invocation, non-interactively.
set -eu

build_pkgs="gcc make pkg-config libsystemd-dev libssl-dev libcurl4-openssl-dev
libjansson-dev libmicrohttpd-dev libcmocka-dev libyaml-dev"
test_pkgs="python3 python3-pytest python3-yaml docker-registry skopeo openssl
inotify-tools systemd groff-base man-db rpm checkpolicy semodule-utils
selinux-policy-dev chromium strace containerd podman debootstrap
systemd-container python3-kubernetes rpmlint prometheus valgrind clang"
bench_pkgs="strace wrk python3-cryptography"

case "${1:-all}" in
build) want="$build_pkgs" ;;
test) want="$build_pkgs $test_pkgs" ;;
bench|all) want="$build_pkgs $test_pkgs $bench_pkgs" ;;
*) echo "usage: $0 [build|test|bench|all]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	# Anything but a fully installed package counts as missing.
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	case "$st" in
	ii*) ;;
	*) missing="$missing $p" ;;
	esac
done

# The browser test drives chromium with playwright-core from npm. Machines of
# this kind ship Node.js and npm outside dpkg; Debian's npm conflicts with
# that build, so install Debian's only where there is no node at all.
if [ "${1:-all}" != build ] && ! command -v npm >/dev/null 2>&1; then
	missing="$missing nodejs npm"
fi

# The node-status tests read results with kubectl. Some machines have the
# upstream kubectl package (1.32 here); Debian's kubernetes-client (1.20)
# conflicts with it, so install Debian's only where there is no kubectl.
if [ "${1:-all}" != build ] && ! command -v kubectl >/dev/null 2>&1; then
	missing="$missing kubernetes-client"
fi

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing Debian packages:$missing (run as root to install)" >&2
	exit 1
fi

echo "deps.sh: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends keeps selinux-policy-dev and chromium small.
apt-get install -y -qq --no-install-recommends $missing >/dev/null
