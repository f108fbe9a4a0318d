# SPDX-License-Identifier: MIT
"""A plan takes over what no event touched (issue 14), and still sees
every kind of drift.

The agent keeps what its last plan concluded; the next plan takes over
each registry no output event named, and a full sync (SIGHUP, resync)
each one whose files a stat() finds unchanged. These tests make drift of
the kinds that slip past one or the other, after the agent has been up
long enough (over 2 s) for its full sync to know the files by their
times: each must show in /status and on disk as it did before.
"""

import ctypes
import os
import re
import signal
import time
from pathlib import Path

import peers
import runtimes

KEY = "reg.example.com..5000"
REG = "reg.example.com:5000"
OTHER = "other.example.com"


def start(tmp_path, nodetrustd_bin, test_ca, *extra):
    root, source = tmp_path / "root", tmp_path / "source"
    source.mkdir()
    (source / KEY).write_bytes(test_ca.pem())
    (source / OTHER).write_bytes(test_ca.pem())
    runtimes.write_containerd_config(root)
    agent = runtimes.health_agent(nodetrustd_bin, root, source, tmp_path, "--resync-interval", "3600",
                                  "--verify-interval", "0", *extra)
    return root, source, agent


def settle(d):
    """Past the 2 s a file's times need, then a full sync that records them."""
    time.sleep(2.5)
    n = d.log().count("Sync complete") + d.log().count("resyncing now")
    d.proc.send_signal(signal.SIGHUP)
    peers.wait_for(lambda: "Received SIGHUP" in d.log(), timeout=10, what="SIGHUP taken")
    time.sleep(0.5)
    return n


def containerd_state(port, key=KEY):
    return runtimes.containerd_target_state(runtimes.status(port), key)


def test_truncated_file_is_repaired_at_once(tmp_path, nodetrustd_bin, test_ca):
    """truncate(2) raises only IN_MODIFY: it was not watched, and the plan
    that takes over what no event named left the empty file in place."""
    root, source, agent = start(tmp_path, nodetrustd_bin, test_ca)
    ca = peers.ca_path(root, "docker", REG)
    with agent.daemon() as d:
        d.wait_notify("READY=1")
        settle(d)
        os.truncate(ca, 0)
        peers.wait_for(lambda: ca.read_bytes() == test_ca.pem(), timeout=5, what="truncated ca.crt rewritten")
        # A write through a descriptor kept open: no IN_CLOSE_WRITE yet.
        with open(ca, "r+b") as f:
            f.write(b"X")
            f.flush()
            peers.wait_for(lambda: ca.read_bytes() == test_ca.pem(), timeout=5,
                           what="ca.crt written through an open descriptor rewritten")


def test_admin_hosts_toml_is_judged_when_ours_is_off(tmp_path, nodetrustd_bin, test_ca):
    """With --containerd-hosts-toml never the memo owns no hosts.toml: one
    an admin writes into our directory (no ca entry) must make the registry
    shadowed, at the event and at the next full sync."""
    root, source, agent = start(tmp_path, nodetrustd_bin, test_ca, "--containerd-hosts-toml", "never")
    with agent.daemon() as d:
        d.wait_notify("READY=1")
        peers.wait_for(lambda: containerd_state(agent.port) == "applied", timeout=10, what="applied")
        settle(d)
        hosts = root / "etc/containerd/certs.d" / REG / "hosts.toml"
        hosts.write_text(f'server = "https://{REG}"\n\n[host."https://{REG}"]\n  capabilities = ["pull", "resolve"]\n')
        peers.wait_for(lambda: containerd_state(agent.port) == "shadowed", timeout=5,
                       what="shadowed after the admin's hosts.toml")
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert containerd_state(agent.port) == "shadowed"
        assert hosts.read_text().startswith("server =")  # theirs, untouched


def test_registry_directory_swapped_for_a_symlink_is_a_conflict(tmp_path, nodetrustd_bin, test_ca):
    """RENAME_EXCHANGE puts a symlink where our directory was, pointing at
    it: the files keep their inode and times, but the path now goes through
    a symlink, which the agent never follows."""
    root, source, agent = start(tmp_path, nodetrustd_bin, test_ca)
    d_reg = root / "etc/containerd/certs.d" / REG
    elsewhere = tmp_path / "elsewhere"
    with agent.daemon() as d:
        d.wait_notify("READY=1")
        settle(d)
        os.symlink(elsewhere, elsewhere)  # becomes the link at d_reg after the exchange
        libc = ctypes.CDLL(None, use_errno=True)
        AT_FDCWD, RENAME_EXCHANGE = -100, 2
        assert libc.renameat2(AT_FDCWD, bytes(d_reg), AT_FDCWD, bytes(elsewhere), RENAME_EXCHANGE) == 0, \
            os.strerror(ctypes.get_errno())
        assert d_reg.is_symlink()
        peers.wait_for(lambda: containerd_state(agent.port) == "conflict", timeout=5,
                       what="conflict after the swap")
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert containerd_state(agent.port) == "conflict"
        assert d_reg.is_symlink()


def test_one_key_change_reads_one_registry(tmp_path, nodetrustd_bin, test_ca, other_ca):
    """What the cost claim rests on, seen in the debug log: after a one-key
    change every other registry is taken over without being read, and the
    repair its own writes trigger plans nothing."""
    root, source, agent = start(tmp_path, nodetrustd_bin, test_ca, "--log-level", "debug")
    with agent.daemon() as d:
        d.wait_notify("READY=1")
        time.sleep(0.5)
        n = len(d.log())
        (source / KEY).write_bytes(other_ca.pem())
        ca = peers.ca_path(root, "containerd", REG)
        peers.wait_for(lambda: ca.read_bytes() == other_ca.pem(), timeout=5, what="new CA written")
        peers.wait_for(lambda: "Drift check" in d.log()[n:], timeout=5, what="the repair after our writes")
        new = d.log()[n:]
        # 2 registries x 3 targets: the changed one is read, the other taken over in all three.
        assert re.search(r"Planned \d+ actions, 3 registries taken over unread", new), new
        assert "Drift check: the 1 registries touched are as the last plan left them" in new, new
        assert new.count("Planned ") == 1, new
