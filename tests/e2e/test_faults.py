# SPDX-License-Identifier: MIT
"""Fault injection: the disk under a target refuses writes, and the agent
must keep running, keep the last good files whole, say degraded with a
reason that names every target that failed and why, and mend itself
within seconds of the fault being lifted, with no restart and no resync
(--resync-interval 3600).

Each fault lives in a private mount namespace made for the agent alone
(`unshare --mount`, then a tmpfs on a target directory), so nothing here
touches the machine's mounts; the test reaches the agent's view of its
files through /proc/PID/root and changes the mount with nsenter.
  ENOSPC  the tmpfs fills up
  EROFS   the tmpfs is remounted read-only (no sandbox changed: the agent
          must not exit, unlike a systemd sandbox gone stale)
  EPERM   the registry's directory is made immutable (chattr +i)
"""

import json
import subprocess
import time

import pytest

import peers
from peers import wait_for
from test_health import request, wait_http

REG = "fault.example.com"
OTHER = "steady.example.com:5000"

# Mount a small tmpfs on each target directory the case names, inside the
# agent's own mount namespace, then become the agent.
SETUP = r"""
set -e
for t in $FAULT_DIRS; do
    mkdir -p "$ROOT/$t"
    mount -t tmpfs -o size=256k,mode=0755 tmpfs "$ROOT/$t"
done
exec "$@"
"""


def in_ns(pid, *cmd):
    r = subprocess.run(["nsenter", "-t", str(pid), "-m", "--", *cmd], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 0, f"{cmd}: {r.stderr}"
    return r.stdout


def seen(pid, root, target, host):
    """The agent's ca.crt for host, as the agent's mount namespace shows it."""
    p = f"/proc/{pid}/root{root}/{peers.TARGET_DIRS[target]}/{host}/ca.crt"
    try:
        with open(p, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


FAULTS = {
    # name: (target dirs on tmpfs, inject, lift, error text)
    "enospc": ("etc/docker/certs.d",
               lambda d: f'dd if=/dev/zero of="{d}/fill" bs=4k count=100 2>/dev/null || true',
               lambda d: f'rm -f "{d}/fill"',
               "No space left on device"),
    "erofs": ("etc/docker/certs.d",
              lambda d: f'mount -o remount,ro "{d}"',
              lambda d: f'mount -o remount,rw "{d}"',
              "Read-only file system"),
    "eperm": ("etc/docker/certs.d",
              lambda d: f'chattr +i "{d}/{REG}"',
              lambda d: f'chattr -i "{d}/{REG}"',
              "Operation not permitted"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_degrades_names_the_target_and_heals(fault, nodetrustd_bin, root, trust_volume, tmp_path,
                                                   test_ca, other_ca, report_line):
    dirs, inject, lift, error = FAULTS[fault]
    trust_volume.update({REG: test_ca.pem(), OTHER.replace(":", ".."): test_ca.pem()})
    port = peers.free_port()
    agent = peers.Agent(root, trust_volume.path, binary=nodetrustd_bin, workdir=tmp_path,
                        health=f"127.0.0.1:{port}",
                        extra=["--resync-interval", "3600", "--verify-interval", "0"])
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c", SETUP, "sh"]
    env = {"ROOT": str(root), "FAULT_DIRS": dirs}
    with agent.daemon(prefix=prefix, env=env) as d:
        d.wait_notify("READY=1")
        pid = d.proc.pid
        wait_http(port, "/readyz", 200)
        old = seen(pid, root, "docker", REG)
        assert old is not None and peers.pem_certs_der(old.decode()) == peers.pem_certs_der(test_ca.pem())
        # The tmpfs is the agent's alone: the test's own view has none of it.
        assert not peers.ca_path(root, "docker", REG).exists()

        docker_dir = f"{root}/{peers.TARGET_DIRS['docker']}"
        in_ns(pid, "sh", "-c", inject(docker_dir))
        # A new CA for both registries: docker cannot take it.
        trust_volume.update({REG: other_ca.pem(), OTHER.replace(":", ".."): other_ca.pem()})

        status, _, body = wait_http(port, "/readyz", 503)
        want = f"docker: {REG}, {OTHER} ({error})" if fault != "eperm" else f"docker: {REG} ({error})"
        assert want in body, body
        st = json.loads(request(port, "/status")[2])
        assert st["ready"] is False and st["last_sync_ok"] is False
        assert want in st["last_error"], st["last_error"]
        assert st["not_ready_reason"] == st["last_error"]
        # Running, and the last good file is whole; the other targets moved on.
        assert d.alive() and request(port, "/healthz")[0] == 200
        assert seen(pid, root, "docker", REG) == old
        for t in ("containers", "containerd"):
            got = seen(pid, root, t, REG)
            assert got and peers.pem_certs_der(got.decode()) == peers.pem_certs_der(other_ca.pem()), t

        t0 = time.monotonic()
        in_ns(pid, "sh", "-c", lift(docker_dir))
        wait_for(lambda: (lambda b: b and peers.pem_certs_der(b.decode()) ==
                          peers.pem_certs_der(other_ca.pem()))(seen(pid, root, "docker", REG)),
                 timeout=20, what=f"docker's {REG} healed after the {fault} fault")
        wait_http(port, "/readyz", 200, timeout=20)
        healed = time.monotonic() - t0
        assert d.alive()
        assert "Target directory is read-only" not in d.log()
        report_line(f"fault {fault}: degraded with the target named; healed {healed:.1f} s after it was lifted")


def test_every_failed_target_is_named(nodetrustd_bin, root, trust_volume, tmp_path, test_ca, other_ca):
    """Two targets fail for two reasons: the reason names both, not only
    the last one written."""
    trust_volume.update({REG: test_ca.pem()})
    port = peers.free_port()
    agent = peers.Agent(root, trust_volume.path, binary=nodetrustd_bin, workdir=tmp_path,
                        health=f"127.0.0.1:{port}",
                        extra=["--resync-interval", "3600", "--verify-interval", "0"])
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c", SETUP, "sh"]
    env = {"ROOT": str(root), "FAULT_DIRS": "etc/docker/certs.d etc/containerd/certs.d"}
    with agent.daemon(prefix=prefix, env=env) as d:
        d.wait_notify("READY=1")
        pid = d.proc.pid
        in_ns(pid, "sh", "-c", f'mount -o remount,ro "{root}/etc/docker/certs.d"; '
                               f'chattr +i "{root}/etc/containerd/certs.d/{REG}"')
        trust_volume.update({REG: other_ca.pem()})
        _, _, body = wait_http(port, "/readyz", 503)
        assert body == (f"not ready: could not write 2 files: docker: {REG} (Read-only file system); "
                        f"containerd: {REG} (Operation not permitted)\n"), body
        got = seen(pid, root, "containers", REG)
        assert got and peers.pem_certs_der(got.decode()) == peers.pem_certs_der(other_ca.pem())
        in_ns(pid, "sh", "-c", f'mount -o remount,rw "{root}/etc/docker/certs.d"; '
                               f'chattr -i "{root}/etc/containerd/certs.d/{REG}"')
        wait_http(port, "/readyz", 200, timeout=20)
        for t in ("docker", "containerd"):
            got = seen(pid, root, t, REG)
            assert got and peers.pem_certs_der(got.decode()) == peers.pem_certs_der(other_ca.pem()), t
