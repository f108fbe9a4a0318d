#!/bin/sh
# SPDX-License-Identifier: MIT
# Run nodetrustd once against the bundled example config map and show what it
# did: the plan, the files it wrote, the keys it refused, its manifest.
#
# Usage: scripts/demo.sh [path/to/nodetrustd]      (make demo passes build/nodetrustd)
#
# Everything happens in a scratch directory (removed at the end; KEEP=1 keeps
# it): the example keys are laid out the way the kubelet mounts a config map,
# and the agent writes under --root there, never to this machine's /etc.
# The example holds one bad key on purpose, so the expected exit status of
# the agent is 1 (partially applied); the demo exits 0 when it is.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
agent=${1:-$top/build/nodetrustd}
case $agent in /*) ;; *) agent=$PWD/$agent ;; esac
data=$top/examples/configmap/data

if [ ! -x "$agent" ]; then
	echo "demo: no agent at $agent (run make first)" >&2
	exit 2
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/nodetrust-demo.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
	trap 'echo "(scratch kept: $scratch)"' EXIT
else
	trap 'rm -rf "$scratch"' EXIT
fi
volume=$scratch/volume
root=$scratch/root
mkdir "$volume" "$root"
# The node, as far as the runtimes go: containerd (Debian's 1.6 config with
# the CRI registry's config_path left empty, as it ships) and CRI-O's
# containers/image (a policy.json); no docker.
mkdir -p "$root/etc/containerd" "$root/etc/containers"
printf '%s\n' 'version = 2' '' '[plugins."io.containerd.grpc.v1.cri".registry]' '  config_path = ""' \
	>"$root/etc/containerd/config.toml"
printf '%s\n' '{"default": [{"type": "insecureAcceptAnything"}]}' >"$root/etc/containers/policy.json"

section() {
	printf '\n== %s\n' "$1"
}

# The kubelet's layout: the files in a timestamped directory, "..data"
# pointing at it, and one "key -> ..data/key" symlink per key.
payload="..$(date -u +%Y_%m_%d_%H_%M_%S).$$"
mkdir "$volume/$payload"
for f in "$data"/*; do
	cp "$f" "$volume/$payload/"
done
ln -s "$payload" "$volume/..data"
for f in "$data"/*; do
	key=$(basename "$f")
	ln -s "..data/$key" "$volume/$key"
done

section "Config map (kubelet layout) in $volume"
ls -la "$volume" | sed -n '2,$p'

run_agent() {
	"$agent" --root "$root" --trust-source "$volume" --health-listen none "$@"
}

section "Plan: nodetrustd --dry-run"
run_agent --dry-run 2>/dev/null | sed "s|$root||g" || true

section "Apply: nodetrustd --once --root $root"
status=0
run_agent --once >"$scratch/stdout" 2>"$scratch/stderr" || status=$?
echo "exit status: $status"

section "Written (ca.crt per registry and runtime)"
written=0
for f in $(find "$root/etc" -name ca.crt 2>/dev/null | sort); do
	written=$((written + 1))
	echo "${f#"$root"}"
	if command -v openssl >/dev/null 2>&1; then
		openssl x509 -noout -subject -enddate -in "$f" | sed 's/^/    /'
	fi
done
[ "$written" -gt 0 ] || echo "(nothing)"

section "containerd's hosts.toml (/etc/containerd/certs.d/registry.example.com/hosts.toml)"
cat "$root/etc/containerd/certs.d/registry.example.com/hosts.toml" 2>/dev/null || echo "(none)"

section "Effective trust: which runtimes read it (from the agent's log)"
grep -E "Target (inactive|active)|not installed" "$scratch/stderr" | sed 's/^[^ ]* //' || echo "(nothing)"

section "containerd fixed: config_path = \"/etc/containerd/certs.d\", nodetrustd --once again"
sed -i 's|config_path = ""|config_path = "/etc/containerd/certs.d"|' "$root/etc/containerd/config.toml"
status2=0
run_agent --once >"$scratch/stdout2" 2>"$scratch/stderr2" || status2=$?
grep -E "Target (inactive|active)" "$scratch/stderr2" | sed 's/^[^ ]* //' || echo "(nothing)"

section "Refused (from the agent's log)"
# Every refusal line, minus the sync summary that only counts them.
grep -i 'refus' "$scratch/stderr" | grep -v 'Sync complete' || echo "(nothing)"

section "Ownership manifest (${root#"$scratch/"}/var/lib/nodetrust/manifest.json)"
cat "$root/var/lib/nodetrust/manifest.json" 2>/dev/null || echo "(none)"
echo

# Three registries in three runtime directories; storage-ca-bundle.pem is
# ignored, bad_host..99999 refused.
section "Summary"
problems=""
[ "$status" -eq 1 ] || problems="$problems exit status $status (expected 1: one bad key);"
[ "$written" -eq 9 ] || problems="$problems $written ca.crt files (expected 9);"
grep -q 'bad_host\.\.99999' "$scratch/stderr" || problems="$problems bad_host..99999 not refused;"
[ -f "$root/etc/containerd/certs.d/registry.example.com/hosts.toml" ] || problems="$problems no hosts.toml;"
grep -q 'TARGET=containerd TARGET_STATE=inactive' "$scratch/stderr" ||
	problems="$problems containerd without config_path not reported inactive;"
grep -q 'TARGET=containerd TARGET_STATE=active' "$scratch/stderr2" ||
	problems="$problems containerd with config_path not reported active;"
[ ! -e "$root/etc/docker/certs.d/storage-ca-bundle.pem" ] ||
	problems="$problems storage-ca-bundle.pem was not ignored;"
if [ -n "$problems" ]; then
	echo "demo FAILED:$problems"
	echo "agent log:"
	sed 's/^/    /' "$scratch/stderr"
	exit 1
fi
echo "demo OK: 3 registries written for docker, containers and containerd (with hosts.toml);"
echo "trusted by CRI-O/podman (active) and, once config_path named certs.d, containerd;"
echo "docker not installed; storage-ca-bundle.pem ignored; bad_host..99999 refused (exit status 1, partial)."
