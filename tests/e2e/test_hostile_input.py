# SPDX-License-Identifier: MIT
"""Hostile values in a plain-directory or mounted-volume source (issue 13,
classes 2, 3 and 7).

Every case runs the real nodetrustd (--once, --dry-run or the daemon)
against a --root and a source under a temporary directory, and asserts the
exact outcome: the exit status, the refused key's reason, and the files
written for the other keys. One bad value refuses one key and never blocks,
truncates or fails another; no value can block the loop.

Symlinks: a key that is a symlink is followed (the kubelet's keys are
symlinks into "..data") and what it points to is judged as the value, so a
symlink to /dev/null is a character device, refused; a symlink to nothing
is refused as such.
"""

import json
import os
import socket
import stat
import subprocess
import time
import urllib.request

import pytest

import peers
from peers import ca_path

GOOD = "good.example.com..5000"
GOOD_HOST = "good.example.com:5000"
TIMEOUT = 10


@pytest.fixture
def src(tmp_path):
    d = tmp_path / "trust"
    d.mkdir()
    return d


@pytest.fixture
def run(nodetrustd_bin, root, src, tmp_path):
    """run(mode, *args) -> CompletedProcess; --targets docker, health off.
    Every run has a 10 s timeout: a read that blocks fails the test."""
    agent = peers.Agent(root, src, binary=nodetrustd_bin, targets="docker", workdir=tmp_path)

    def go(mode="--once", *args, pull_secret=None):
        agent.pull_secret = pull_secret
        return agent.run(mode, *args, timeout=TIMEOUT)
    go.agent = agent
    return go


def refusals(p):
    """{key: reason} from --dry-run's "refuse KEY: REASON" lines."""
    out = {}
    for line in p.stdout.splitlines():
        if line.startswith("refuse "):
            key, _, reason = line[len("refuse "):].partition(": ")
            out[key] = reason
    return out


def logged_refusal(p, key):
    """The REASON= of the agent's "Refused key KEY=key" log line, or None."""
    for line in p.stderr.splitlines():
        if "Refused key" in line and f"KEY={key} " in line:
            return line.split("REASON=", 1)[1]
    return None


def written(root, host):
    p = ca_path(root, "docker", host)
    return p.read_bytes() if p.exists() else None


def docker_dirs(root):
    d = root / peers.TARGET_DIRS["docker"]
    return sorted(x.name for x in d.iterdir()) if d.exists() else []


def pem_blocks(data):
    return peers.pem_certs_der(data)


def assert_refused_once(run, root, src, key, reason, test_ca):
    """--once: exit 1, key refused with exactly reason (log and plan), the
    good key written and nothing else."""
    (src / GOOD).write_bytes(test_ca.pem())
    p = run("--once")
    assert p.returncode == 1, p.stderr
    assert logged_refusal(p, key) == reason, p.stderr
    assert written(root, GOOD_HOST) == test_ca.pem()
    assert docker_dirs(root) == [GOOD_HOST]
    d = run("--dry-run")
    assert refusals(d) == {key: reason}, d.stdout
    return p


# --------------------------------------------------------------------------
# Class 2: no read may block the loop; anything but a regular file is refused.

def test_fifo_value_refused_promptly(run, root, src, test_ca):
    os.mkfifo(src / "fifo.example.com")
    t = time.monotonic()
    assert_refused_once(run, root, src, "fifo.example.com", "is a FIFO, not a regular file", test_ca)
    assert time.monotonic() - t < TIMEOUT


def test_socket_value_refused(run, root, src, test_ca):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(os.fspath(src / "sock.example.com"))
        assert_refused_once(run, root, src, "sock.example.com", "is a socket, not a regular file", test_ca)
    finally:
        s.close()


def test_device_node_value_refused(run, root, src, test_ca):
    try:
        os.mknod(src / "dev.example.com", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs CAP_MKNOD")
    assert_refused_once(run, root, src, "dev.example.com", "is a character device, not a regular file", test_ca)


def test_symlink_to_dev_null_refused(run, root, src, test_ca):
    (src / "null.example.com").symlink_to("/dev/null")
    assert_refused_once(run, root, src, "null.example.com", "is a character device, not a regular file", test_ca)


def test_symlink_to_fifo_refused(run, root, src, tmp_path, test_ca):
    os.mkfifo(tmp_path / "elsewhere")
    (src / "lfifo.example.com").symlink_to(tmp_path / "elsewhere")
    assert_refused_once(run, root, src, "lfifo.example.com", "is a FIFO, not a regular file", test_ca)


def test_dangling_symlink_refused(run, root, src, test_ca):
    (src / "dangling.example.com").symlink_to("nowhere")
    assert_refused_once(run, root, src, "dangling.example.com",
                        "is a symbolic link to a file that does not exist", test_ca)


def test_symlink_to_regular_file_followed(run, root, src, tmp_path, test_ca):
    (tmp_path / "ca.pem").write_bytes(test_ca.pem())
    (src / "linked.example.com").symlink_to(tmp_path / "ca.pem")
    (src / GOOD).write_bytes(test_ca.pem())
    p = run("--once")
    assert p.returncode == 0, p.stderr
    assert written(root, "linked.example.com") == test_ca.pem()
    assert docker_dirs(root) == [GOOD_HOST, "linked.example.com"]


def test_subdirectory_refused(run, root, src, test_ca):
    (src / "sub.example.com").mkdir()
    assert_refused_once(run, root, src, "sub.example.com", "is a directory, not a regular file", test_ca)


def test_fifo_in_kubelet_volume(nodetrustd_bin, root, tmp_path, test_ca):
    vol = peers.KubeletVolume(tmp_path / "vol", {GOOD: test_ca.pem()})
    data = vol.path / "..data"
    os.mkfifo(data / "fifo.example.com")
    (vol.path / "fifo.example.com").symlink_to("..data/fifo.example.com")
    agent = peers.Agent(root, vol.path, binary=nodetrustd_bin, targets="docker", workdir=tmp_path)
    p = agent.run_once(timeout=TIMEOUT)
    assert p.returncode == 1, p.stderr
    assert logged_refusal(p, "fifo.example.com") == "is a FIFO, not a regular file", p.stderr
    assert written(root, GOOD_HOST) == test_ca.pem()


def test_pull_secret_fifo_file(run, root, src, tmp_path, test_ca):
    """A FIFO as the pull secret file is an invalid secret (exit 1, partly
    applied): the trust map applies (the whole source read failed, exit 3)."""
    (src / GOOD).write_bytes(test_ca.pem())
    os.mkfifo(tmp_path / "secret.json")
    p = run("--once", pull_secret=tmp_path / "secret.json")
    assert p.returncode == 1, p.stderr
    assert "Pull secret refused; keeping the last good pull credentials REASON=is a FIFO, not a regular file" \
        in p.stderr
    assert written(root, GOOD_HOST) == test_ca.pem()
    assert not (root / "var/lib/kubelet/config.json").exists()


def test_pull_secret_fifo_in_volume(run, root, src, tmp_path, test_ca):
    (src / GOOD).write_bytes(test_ca.pem())
    vol = tmp_path / "secret-vol"
    vol.mkdir()
    os.mkfifo(vol / ".dockerconfigjson")
    p = run("--once", pull_secret=vol)
    assert p.returncode == 1, p.stderr
    assert "REASON=is a FIFO, not a regular file" in p.stderr
    assert written(root, GOOD_HOST) == test_ca.pem()


def test_daemon_with_fifo_answers_and_stops(nodetrustd_bin, root, src, tmp_path, test_ca):
    """The daemon with a FIFO value answers /healthz and /status (the key
    refused there), and stops on SIGTERM."""
    (src / GOOD).write_bytes(test_ca.pem())
    os.mkfifo(src / "fifo.example.com")
    port = peers.free_port()
    agent = peers.Agent(root, src, binary=nodetrustd_bin, targets="docker",
                        health=f"127.0.0.1:{port}", workdir=tmp_path)
    with agent.daemon() as d:
        d.wait_notify("READY=1")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
            status = json.load(r)
        refused = [x for x in status["registries"] if x.get("key") == "fifo.example.com"]
        assert len(refused) == 1, status["registries"]
        assert refused[0]["state"] == "refused"
        assert refused[0]["reason"] == "is a FIFO, not a regular file"
        assert written(root, GOOD_HOST) == test_ca.pem()


# --------------------------------------------------------------------------
# Class 3: one bad key never blocks or truncates another.

def test_oversize_value_refused_others_applied(run, root, src, test_ca):
    with open(src / "big.example.com", "wb") as f:
        f.truncate(1024 * 1024 + 1)
    assert_refused_once(run, root, src, "big.example.com", "larger than 1 MiB, the limit for a value", test_ca)


def test_value_at_size_limit_is_judged(run, root, src, test_ca):
    """Exactly 1 MiB is read (and refused for what it holds, not its size)."""
    pem = test_ca.pem()
    (src / "edge.example.com").write_bytes(pem + b"\n" * (1024 * 1024 - len(pem)))
    (src / GOOD).write_bytes(pem)
    p = run("--once")
    assert p.returncode == 0, p.stderr
    assert written(root, "edge.example.com") == pem


def test_corrupt_middle_certificate_refuses_the_bundle(run, root, src, test_ca, other_ca, pki):
    third = peers.make_ca(pki, "nodetrust-third-ca")
    bad = other_ca.pem().decode().splitlines(keepends=True)
    bad[1] = "AAAA" + bad[1][4:]
    (src / "bundle.example.com").write_bytes(test_ca.pem() + "".join(bad).encode() + third.pem())
    (src / GOOD).write_bytes(test_ca.pem())
    p = run("--once")
    assert p.returncode == 1, p.stderr
    reason = logged_refusal(p, "bundle.example.com")
    assert reason.startswith("certificate 2 of 3 could not be parsed: "), p.stderr
    # Nothing of the bundle is written: not its first certificate alone.
    assert written(root, "bundle.example.com") is None
    assert written(root, GOOD_HOST) == test_ca.pem()


def test_corrupt_bundle_keeps_the_last_good(run, root, src, test_ca, other_ca):
    (src / "bundle.example.com").write_bytes(test_ca.pem() + other_ca.pem())
    assert run("--once").returncode == 0
    before = written(root, "bundle.example.com")
    assert len(pem_blocks(before)) == 2
    cut = test_ca.pem() + other_ca.pem()[:-40]
    (src / "bundle.example.com").write_bytes(cut)
    p = run("--once")
    assert p.returncode == 1, p.stderr
    assert logged_refusal(p, "bundle.example.com") == \
        "certificate 2 of 2 could not be parsed: malformed PEM (bad base64 or no END line)"
    assert written(root, "bundle.example.com") == before


def test_over_certificate_limit(run, root, src, test_ca, other_ca):
    (src / "many.example.com").write_bytes(test_ca.pem() * 256 + other_ca.pem() * 257)
    assert_refused_once(run, root, src, "many.example.com", "more than 512 certificates (the bundle has 513)",
                        test_ca)


def test_nul_bytes_value(run, root, src, test_ca):
    (src / "nul.example.com").write_bytes(b"\0" * 16)
    assert_refused_once(run, root, src, "nul.example.com", "not PEM, base64 or a DER certificate", test_ca)


def test_nul_inside_pem(run, root, src, test_ca):
    pem = bytearray(test_ca.pem())
    pem[40] = 0
    (src / "nulpem.example.com").write_bytes(bytes(pem))
    (src / GOOD).write_bytes(test_ca.pem())
    p = run("--once")
    assert p.returncode == 1, p.stderr
    assert logged_refusal(p, "nulpem.example.com").startswith("certificate 1 of 1 could not be parsed: ")


def test_empty_value(run, root, src, test_ca):
    (src / "empty.example.com").write_bytes(b"")
    assert_refused_once(run, root, src, "empty.example.com", "the value is empty", test_ca)


def test_whitespace_value(run, root, src, test_ca):
    (src / "blank.example.com").write_bytes(b" \r\n\t\n")
    assert_refused_once(run, root, src, "blank.example.com", "the value is empty", test_ca)


def test_crlf_pem_is_the_same_ca(run, root, src, test_ca):
    (src / "crlf.example.com").write_bytes(test_ca.pem().replace(b"\n", b"\r\n"))
    (src / GOOD).write_bytes(test_ca.pem())
    p = run("--once")
    assert p.returncode == 0, p.stderr
    assert written(root, "crlf.example.com") == test_ca.pem()


def test_private_key_value(run, root, src, test_ca):
    (src / "key.example.com").write_bytes(test_ca.key.read_bytes())
    assert_refused_once(run, root, src, "key.example.com",
                        "the value holds a private key; only CA certificates belong here", test_ca)


def test_more_keys_than_the_limit(run, root, src, test_ca):
    """4,100 keys: the first 4,096 by name are judged, the other 4 refused
    naming the limit (the whole read failed: 'Argument list too long').
    --dry-run: 4,096 durable writes take longer than this test may."""
    pem = test_ca.pem()
    for i in range(4100):
        (src / f"r{i:05d}.example.com").write_bytes(pem)
    p = run("--dry-run")
    assert p.returncode == 1, p.stderr[-2000:]
    reason = "beyond the agent's limit of 4096 keys per map (the map has 4100)"
    assert refusals(p) == {f"r{i:05d}.example.com": reason for i in range(4096, 4100)}
    creates = [l for l in p.stdout.splitlines() if l.startswith("create docker ")]
    assert len(creates) == 4096
    assert creates[0].split()[2] == "r00000.example.com" and creates[-1].split()[2] == "r04095.example.com"
    assert docker_dirs(root) == []


def test_invalid_key_with_special_value(run, root, src, test_ca):
    """A key that is no registry says so, whatever its file is."""
    os.mkfifo(src / "bad~key")
    assert_refused_once(run, root, src, "bad~key",
                        "invalid character in key (allowed: letters, digits, '-', '.', '_')", test_ca)


def test_report_ca_fifo_does_not_block(nodetrustd_bin, root, src, tmp_path, test_ca):
    """--report-ca naming a FIFO: libcurl opened it on the loop, and the
    agent stopped answering /healthz and SIGTERM. The agent reads it
    itself now; the report fails with the reason and the agent answers."""
    (src / GOOD).write_bytes(test_ca.pem())
    os.mkfifo(tmp_path / "ca.fifo")
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)  # accepts by backlog; never answers
    port = peers.free_port()
    agent = peers.Agent(root, src, binary=nodetrustd_bin, targets="docker",
                        health=f"127.0.0.1:{port}", workdir=tmp_path,
                        extra=["--report-url", f"https://127.0.0.1:{lsock.getsockname()[1]}",
                               "--report-ca", tmp_path / "ca.fifo", "--report-interval", "1"])
    try:
        with agent.daemon() as d:
            d.wait_notify("READY=1")
            deadline = time.monotonic() + 5
            while "Failed to read the report CA file" not in d.log() and time.monotonic() < deadline:
                time.sleep(0.1)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                assert r.status == 200
            assert f"Failed to read the report CA file '{tmp_path / 'ca.fifo'}': not a regular file" in d.log()
    finally:
        lsock.close()


def test_aggregator_token_file_fifo_exits_with_reason(tmp_path):
    """The aggregator's --token-file naming a FIFO: open(2) blocked for
    ever before the type was looked at; now it exits 1 at start, naming
    the file."""
    binary = os.path.join(os.path.dirname(peers.nodetrustd_path()), "nodetrust-aggregator")
    os.mkfifo(tmp_path / "tokens")
    p = subprocess.run([binary, "--token-file", tmp_path / "tokens", "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 1, p.stderr
    assert f"Failed to read token file '{tmp_path / 'tokens'}': Bad file descriptor" in p.stderr


def test_refusal_log_lines_are_bounded(run, src, test_ca):
    """250 keys that are no registry: 100 log lines name a key each, one
    more says how many were left out; /status (here the --once exit and
    the plan) still counts them all. A directory of 100,000 entries logged
    96,000 lines at each change."""
    pem = test_ca.pem()
    for i in range(250):
        (src / f"bad~key{i:03d}").write_bytes(pem)
    p = run("--once")
    assert p.returncode == 1, p.stderr[-2000:]
    lines = [l for l in p.stderr.splitlines() if "Refused key" in l]
    assert len(lines) == 100, len(lines)
    assert "150 more keys refused, not logged one by one; /status lists them all" in p.stderr
