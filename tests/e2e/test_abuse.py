# SPDX-License-Identifier: MIT
"""Both servers survive abuse from the loopback: the agent's health endpoint
and the aggregator keep answering while thousands of idle sockets, stalled
half-requests, huge headers, huge bodies and pipelined requests are thrown at
them, and come back to normal by themselves (docs/connection-limits.md says what
the limits are and why).

Everything here is on 127.0.0.1 and bounded: a few thousand sockets, each
case a few seconds, the file well under a minute.
"""

import http.client
import json
import os
import resource
import socket
import subprocess
import threading
import time

import pytest

import peers
from peers import wait_for
from test_aggregator import TOKEN, Aggregator, report

# The documented limits (common/httpd.h, docs/connection-limits.md).
AGENT_CONNECTION_LIMIT = 256
AGGREGATOR_CONNECTION_LIMIT = 1024
IDLE_TIMEOUT = 10
IDLE = 2000
HALF = 500

# The abuse needs more descriptors than the usual soft limit of 1024: take
# what the hard limit allows (the servers inherit it, and must still not
# hold more than their own limit).
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
_want = 4 * (IDLE + HALF) + 512
if _soft < _want and (_hard == resource.RLIM_INFINITY or _hard >= _want):
    resource.setrlimit(resource.RLIMIT_NOFILE, (_want, _hard))


def open_sockets(port, n, first=b""):
    """n connections to 127.0.0.1:port, each having sent first (nothing, or
    the start of a request that never ends)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if first:
                s.sendall(first)
            socks.append(s)
    except BaseException:
        close_all(socks)
        raise
    return socks


def close_all(socks):
    for s in socks:
        s.close()


HALF_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def server_connections(pid, port):
    """How many accepted TCP connections on local port the process pid holds
    a descriptor of (not those still in the accept queue, nor those it
    closed while the client holds on)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            f = line.split()
            local_port = int(f[1].rsplit(":", 1)[1], 16)
            if local_port == port and f[3] != "0A" and int(f[9]) in inodes:
                n += 1
    return n


def get(port, path, *, method="GET", body=None, headers=None, timeout=1.0):
    """(status, body bytes, seconds) of one request on a fresh connection."""
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, data, time.monotonic() - t0
    finally:
        c.close()


def answers_quickly(port, path, expect_body=None, **kw):
    status, body, took = get(port, path, **kw)
    assert status == 200, (path, status, body)
    assert took < 1.0, f"{path} took {took:.2f}s under abuse"
    if expect_body is not None:
        assert body == expect_body
    return body


def vm_rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def raw_exchange(port, data, timeout=5):
    """Send data on one connection, read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def wait_closed(sock, timeout):
    """Seconds until the server closed sock (recv returns b"")."""
    t0 = time.monotonic()
    sock.settimeout(timeout)
    assert sock.recv(4096) == b""
    return time.monotonic() - t0


# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def agent(nodetrustd_bin, tmp_path_factory, test_ca):
    d = tmp_path_factory.mktemp("abuse-agent")
    vol = peers.KubeletVolume(d / "trust", {"registry.example.com..5000": test_ca.pem()})
    port = peers.free_port()
    a = peers.Agent(d / "root", vol.path, binary=nodetrustd_bin, workdir=d,
                    health=f"127.0.0.1:{port}", extra=["--verify-interval", "0"])
    with a.daemon() as daemon:
        daemon.wait_notify("READY=1")
        daemon.port = port
        yield daemon


@pytest.fixture(scope="module")
def agg(tmp_path_factory):
    with Aggregator(tmp_path_factory.mktemp("abuse-agg"), "--interval", "30") as a:
        yield a


def test_agent_health_answers_through_idle_and_half_requests(agent):
    port, pid = agent.port, agent.proc.pid
    idle = open_sockets(port, IDLE)
    half = open_sockets(port, HALF, HALF_REQUEST)
    try:
        answers_quickly(port, "/healthz", b"ok\n")
        answers_quickly(port, "/readyz", b"ready\n")
        # Never more than the limit, however many the clients hold.
        assert server_connections(pid, port) <= AGENT_CONNECTION_LIMIT
    finally:
        close_all(idle + half)
    # Back to normal by itself: nothing of the abuse is left.
    wait_for(lambda: server_connections(pid, port) == 0, timeout=5, what="abuse connections closed")
    answers_quickly(port, "/healthz", b"ok\n")
    assert agent.alive()


def test_aggregator_answers_through_idle_and_half_requests(agg):
    port, pid = agg.port, agg.proc.pid
    rss_before = vm_rss_kib(agg.proc.pid)
    idle = open_sockets(port, IDLE)
    half = open_sockets(port, HALF, HALF_REQUEST)
    try:
        answers_quickly(port, "/healthz", b"ok\n")
        answers_quickly(port, "/api/v1/summary")
        # A report still gets in.
        status, body, took = get(port, "/api/v1/reports", method="POST",
                                 body=json.dumps(report("abused-node")).encode(),
                                 headers={"Authorization": f"Bearer {TOKEN}",
                                          "Content-Type": "application/json"})
        assert status == 200 and took < 1.0, (status, body, took)
        assert json.loads(body)["node"] == "abused-node"
        assert server_connections(pid, port) <= AGGREGATOR_CONNECTION_LIMIT
        rss_during = vm_rss_kib(agg.proc.pid)
    finally:
        close_all(idle + half)
    wait_for(lambda: server_connections(pid, port) == 0, timeout=5, what="abuse connections closed")
    summary = json.loads(answers_quickly(port, "/api/v1/summary"))
    assert summary["total"] == 1, summary
    # Memory follows the connection limit times the per-connection limit
    # (1024 x 16 KiB), not the number of sockets thrown at it.
    assert rss_during - rss_before < 32 * 1024, (rss_before, rss_during)
    assert vm_rss_kib(agg.proc.pid) - rss_before < 32 * 1024


def test_huge_headers_get_431_and_cost_no_memory(agent, agg):
    header = b"X-Big: " + b"a" * (256 * 1024) + b"\r\n"
    for port in (agent.port, agg.port):
        out = raw_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n")
        assert out.startswith(b"HTTP/1.1 431 "), out[:80]
    # Many at once: each connection's memory is capped, so the total is too.
    rss_before = vm_rss_kib(agg.proc.pid)
    results = []

    def one():
        try:
            results.append(raw_exchange(agg.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + header)[:13])
        except OSError as e:  # the server may close while we still send
            results.append(type(e).__name__)

    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert all(r in (b"HTTP/1.1 431 ", "ConnectionResetError", "BrokenPipeError") for r in results), results
    assert results.count(b"HTTP/1.1 431 ") >= 1
    assert vm_rss_kib(agg.proc.pid) - rss_before < 16 * 1024
    answers_quickly(agent.port, "/healthz", b"ok\n")
    answers_quickly(agg.port, "/healthz", b"ok\n")


def test_huge_report_bodies_are_refused_unread(agg):
    port = agg.port
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
    refusal = b'\r\n\r\n{"error":"report larger than 262144 bytes"}'
    rss_before = vm_rss_kib(agg.proc.pid)
    # Announced: 413 before a byte of the body is sent, 50 at once.
    head = (b"POST /api/v1/reports HTTP/1.1\r\nHost: x\r\n" + auth +
            b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n")
    socks = open_sockets(port, 50, head)
    try:
        for s in socks:
            s.settimeout(5)
            answer = s.recv(4096)
            assert answer.startswith(b"HTTP/1.1 413 ") and answer.endswith(refusal), answer
    finally:
        close_all(socks)
    # Chunked, never announced: 413 once the whole body is in, with only the
    # limit (256 KiB) ever buffered, however much more (4 MiB) is sent.
    chunk = b"x" * 65536
    body = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 64 + b"0\r\n\r\n"
    head = (b"POST /api/v1/reports HTTP/1.1\r\nHost: x\r\n" + auth +
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    out = raw_exchange(port, head + body, timeout=10)
    assert out.startswith(b"HTTP/1.1 413 ") and out.endswith(refusal), out[:200]
    assert vm_rss_kib(agg.proc.pid) - rss_before < 16 * 1024
    answers_quickly(port, "/healthz", b"ok\n")


def test_pipelined_requests_each_get_their_answer(agent, agg):
    n = 300
    for port, path in ((agent.port, b"/healthz"), (agg.port, b"/healthz")):
        one = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        last = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        out = raw_exchange(port, one * (n - 1) + last, timeout=10)
        assert out.count(b"HTTP/1.1 200 OK\r\n") == n
        assert out.count(b"\r\n\r\nok\n") == n


def test_idle_and_stalled_connections_time_out(agent, agg):
    # One of each per server, no pressure: the idle timeout alone closes them.
    socks = [open_sockets(agent.port, 1)[0], open_sockets(agent.port, 1, HALF_REQUEST)[0],
             open_sockets(agg.port, 1)[0], open_sockets(agg.port, 1, HALF_REQUEST)[0]]
    try:
        t0 = time.monotonic()
        for s in socks:
            s.settimeout(max(0.1, IDLE_TIMEOUT + 5 - (time.monotonic() - t0)))
            assert s.recv(4096) == b""
        took = time.monotonic() - t0
        assert IDLE_TIMEOUT - 1 <= took <= IDLE_TIMEOUT + 3, took
    finally:
        close_all(socks)


def test_low_descriptor_limit_lowers_the_connection_limit(nodetrustd_bin, tmp_path, test_ca):
    """With RLIMIT_NOFILE at 128 the server takes fewer connections than its
    limit and says so, and still answers while flooded: it never runs out of
    descriptors itself (accept failing with EMFILE would stall it)."""
    vol = peers.KubeletVolume(tmp_path / "trust", {"registry.example.com..5000": test_ca.pem()})
    port = peers.free_port()
    a = peers.Agent(tmp_path / "root", vol.path, binary=nodetrustd_bin, workdir=tmp_path,
                    health=f"127.0.0.1:{port}", extra=["--verify-interval", "0"])
    with a.daemon(prefix=("prlimit", "--nofile=128:128", "--")) as d:
        d.wait_notify("READY=1")
        pid = d.proc.pid
        assert "at most 64 connections (RLIMIT_NOFILE 128)" in d.log(), d.log()
        socks = open_sockets(port, 400) + open_sockets(port, 100, HALF_REQUEST)
        try:
            answers_quickly(port, "/healthz", b"ok\n")
            assert server_connections(pid, port) <= 64
        finally:
            close_all(socks)
        wait_for(lambda: server_connections(pid, port) == 0, timeout=5, what="connections closed")
        assert "Too many open files" not in d.log()


def start_briefly(argv, ready_marker, env):
    """Run a server until it logs ready_marker (then SIGTERM it) or exits,
    at most 5 s; (exit status or None when it came up, stderr)."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=env)
    raw = b""
    deadline = time.monotonic() + 5
    os.set_blocking(p.stderr.fileno(), False)
    while time.monotonic() < deadline:
        raw += p.stderr.read() or b""
        err = raw.decode(errors="replace")
        if ready_marker in err:
            p.terminate()
            p.wait(5)
            p.stderr.close()
            return None, err
        if p.poll() is not None:
            os.set_blocking(p.stderr.fileno(), True)
            raw += p.stderr.read()
            p.stderr.close()
            return p.returncode, raw.decode(errors="replace")
        time.sleep(0.01)
    p.kill()
    p.wait()
    raise AssertionError(f"neither ready nor exited:\n{raw.decode(errors='replace')}")


@pytest.mark.parametrize("which", ["agent", "aggregator"])
def test_descriptor_exhaustion_at_start_names_the_real_cause(which, nodetrustd_bin, tmp_path, test_ca):
    """Started with too few descriptors to listen, each server fails naming
    'Too many open files', never a busy address; with a few more it starts."""
    if which == "agent":
        vol = peers.KubeletVolume(tmp_path / "trust", {"registry.example.com..5000": test_ca.pem()})
        a = peers.Agent(tmp_path / "root", vol.path, binary=nodetrustd_bin, workdir=tmp_path,
                        health=f"127.0.0.1:{peers.free_port()}", extra=["--verify-interval", "0"])
        argv, marker = a.argv(), "Serving /healthz"
    else:
        tok = tmp_path / "token"
        tok.write_text(TOKEN + "\n")
        argv = [str(Aggregator(tmp_path / "a").binary), "--listen", "127.0.0.1:0", "--token-file", str(tok)]
        marker = "Listening on"
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    listen_failures = []
    for n in range(4, 64):
        rc, err = start_briefly(["prlimit", f"--nofile={n}:{n}", "--", *argv], marker, env)
        if rc is None:
            break
        if "127.0.0.1:" in err:  # it failed at the listener
            listen_failures.append(n)
            assert "Address already in use" not in err, (n, err)
            assert "Too many open files" in err, (n, err)
    else:
        raise AssertionError("never started, even with 63 descriptors")
    assert listen_failures, "no descriptor limit made the listener fail"
