# SPDX-License-Identifier: MIT
"""The agent's local health endpoint, end to end: the real nodetrustd on
127.0.0.1, asked over HTTP the way a kubelet probe or Prometheus would.

/healthz, /readyz, /metrics (read by the strict exposition-format parser in
promparse.py), /status; readiness before the first sync, after a failed one
and after recovery; and a stalled loop (SIGSTOP) that must not look alive.
"""

import base64
import datetime
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

import peers
import promparse
from peers import wait_for

# A password that must never appear in anything the endpoint serves.
PULL_PASSWORD = "pull-secret-password-7f3a9c"


def request(port, path, method="GET", timeout=5.0):
    """(status, headers dict with lower-case names, body text)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        c.close()


def not_after(cert_path):
    """The certificate's notAfter as unix seconds (openssl CLI)."""
    out = peers.run(["openssl", "x509", "-in", cert_path, "-noout", "-enddate"]).stdout.strip()
    stamp = out.split("=", 1)[1].replace(" GMT", "")
    t = datetime.datetime.strptime(" ".join(stamp.split()), "%b %d %H:%M:%S %Y")
    return int(t.replace(tzinfo=datetime.timezone.utc).timestamp())


def health_agent(nodetrustd_bin, root, source, tmp_path, *extra):
    """An Agent with its health endpoint on a free loopback port."""
    port = peers.free_port()
    a = peers.Agent(root, source, binary=nodetrustd_bin, workdir=tmp_path,
                    health=f"127.0.0.1:{port}", extra=extra)
    a.port = port
    return a


def wait_http(port, path, status, timeout=peers.DEFAULT_TIMEOUT):
    """Poll until path answers status; return (status, headers, body)."""
    last = []

    def check():
        try:
            got = request(port, path, timeout=1.0)
        except OSError:
            return None
        last[:] = [got]
        return got if got[0] == status else None
    try:
        return wait_for(check, timeout, interval=0.05, what=f"{path} -> {status}")
    except AssertionError as e:
        raise AssertionError(f"{e}; last answer: {last}") from None


def metrics(port):
    status, headers, body = request(port, "/metrics")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return promparse.parse(body), body


def test_every_path(nodetrustd_bin, root, trust_volume, tmp_path, test_ca):
    trust_volume.update({"localhost..5000": test_ca.pem(),
                         "bad..key..99999": test_ca.pem()})
    secret = tmp_path / "pull-secret.json"
    secret.write_text(peers.dockerconfigjson({"localhost:5000": ("puller", PULL_PASSWORD)}))
    agent = health_agent(nodetrustd_bin, root, trust_volume.path, tmp_path,
                         "--pull-secret", secret, "--node-name", "worker-7")

    with agent.daemon() as d:
        d.wait_notify("READY=1")
        port = agent.port

        status, headers, body = request(port, "/healthz")
        assert (status, body) == (200, "ok\n")
        assert headers["content-type"].startswith("text/plain")

        status, _, body = request(port, "/readyz")
        assert (status, body) == (200, "ready\n")

        fams, text = metrics(port)
        # Every family is ours, with HELP and TYPE (the parser insists).
        assert all(name.startswith("nodetrust_") for name in fams)
        v = promparse.value
        assert v(fams, "nodetrust_ready") == 1
        assert v(fams, "nodetrust_syncs_total") >= 1
        assert fams["nodetrust_syncs_total"].type == "counter"
        assert v(fams, "nodetrust_sync_failures_total") == 0
        assert v(fams, "nodetrust_registries", state="applied") == 1
        assert v(fams, "nodetrust_registries", state="refused") == 1
        assert v(fams, "nodetrust_registries", state="conflict") == 0
        assert v(fams, "nodetrust_registries", state="failed") == 0
        assert v(fams, "nodetrust_source_generation") == 1
        # Three ca.crt and containerd's hosts.toml.
        assert v(fams, "nodetrust_files_written_total") == 4
        assert fams["nodetrust_files_written_total"].type == "counter"
        assert abs(v(fams, "nodetrust_last_successful_sync_timestamp_seconds") - time.time()) < 60
        assert v(fams, "nodetrust_certificate_not_after_timestamp_seconds",
                 registry="localhost:5000") == not_after(test_ca.cert)
        assert v(fams, "nodetrust_pull_secret_state", state="applied") == 1
        assert v(fams, "nodetrust_pull_secret_state", state="absent") == 0
        assert v(fams, "nodetrust_pull_secret_state", state="invalid") == 0
        assert v(fams, "nodetrust_build_info", version="0.1.0", source="dir") == 1

        status, headers, body = request(port, "/status")
        assert status == 200
        assert headers["content-type"] == "application/json"
        st = json.loads(body)
        assert st["node"] == "worker-7"
        assert st["ready"] is True and st["last_sync_ok"] is True
        assert st["source"]["generation"] == 1 and len(st["source"]["hash"]) == 64
        assert st["applied_hash"] == st["source"]["hash"]
        regs = {r["key"]: r for r in st["registries"]}
        assert regs["localhost..5000"]["name"] == "localhost:5000"
        assert regs["localhost..5000"]["state"] == "applied"
        # The fingerprint is the sha256 of the bundle as written.
        written = peers.ca_path(root, "containers", "localhost:5000").read_bytes()
        assert regs["localhost..5000"]["fingerprint"] == hashlib.sha256(written).hexdigest()
        assert regs["localhost..5000"]["not_after"] == not_after(test_ca.cert)
        assert regs["bad..key..99999"]["state"] == "refused"
        assert regs["bad..key..99999"]["reason"]
        assert st["pull_secret"]["state"] == "applied"
        assert st["counters"]["syncs_total"] >= 1

        # The pull secret's content shows nowhere: not the password, not the
        # base64 "auth" that carries it.
        auth = base64.b64encode(f"puller:{PULL_PASSWORD}".encode()).decode()
        for path in ("/healthz", "/readyz", "/metrics", "/status"):
            _, _, out = request(port, path)
            assert PULL_PASSWORD not in out and auth not in out, path
        assert PULL_PASSWORD not in d.log() and auth not in d.log()

        assert request(port, "/")[0] == 404
        assert request(port, "/nope")[0] == 404
        assert request(port, "/healthz/extra")[0] == 404
        for method in ("POST", "PUT", "DELETE"):
            status, headers, _ = request(port, "/healthz", method=method)
            assert status == 405, method
            assert headers["allow"] == "GET, HEAD"

        # HEAD: GET's status and headers, no body.
        status, headers, body = request(port, "/metrics", method="HEAD")
        assert status == 200 and body == ""
        assert int(headers["content-length"]) == len(text.encode())


def test_readyz_follows_failed_sync_and_recovery(nodetrustd_bin, root, tmp_path, test_ca):
    # A plain directory (bare-metal host): taking it away makes the next
    # sync fail; the files from the last good sync stay.
    source = tmp_path / "trust"
    source.mkdir()
    (source / "localhost..5000").write_bytes(test_ca.pem())
    agent = health_agent(nodetrustd_bin, root, source, tmp_path)

    with agent.daemon() as d:
        d.wait_notify("READY=1")
        wait_http(agent.port, "/readyz", 200)

        shutil.move(source, tmp_path / "trust.away")
        # The directory watch sees it go and a sync fails on it.
        fams = wait_for(lambda: (lambda f: f if promparse.value(f, "nodetrust_sync_failures_total") >= 1
                                 else None)(metrics(agent.port)[0]), what="a failed sync")
        assert promparse.value(fams, "nodetrust_ready") == 0
        status, _, body = request(agent.port, "/readyz")
        assert status == 503
        assert body == "not ready: Failed to read the source: the trust source directory does not exist\n", body
        # Still alive, and the last good CA is still in place.
        assert request(agent.port, "/healthz")[0] == 200
        assert peers.ca_path(root, "containers", "localhost:5000").is_file()
        st = json.loads(request(agent.port, "/status")[2])
        assert st["ready"] is False and st["last_sync_ok"] is False
        assert st["last_error"] and st["not_ready_reason"]

        shutil.move(tmp_path / "trust.away", source)
        wait_http(agent.port, "/readyz", 200)
        fams, _ = metrics(agent.port)
        assert promparse.value(fams, "nodetrust_ready") == 1


def test_readyz_false_before_first_sync(nodetrustd_bin, root, tmp_path):
    """The API source against a stand-in API server that never answers: the
    agent is alive (/healthz 200) but has not synced, so not ready."""
    import kubeapi

    api = kubeapi.KubeAPI(str(tmp_path / "api")).start()
    try:
        api.set_delay(60)  # every response held back longer than the test
        kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
        agent = health_agent(nodetrustd_bin, root, None, tmp_path, "--kubeconfig", kubeconfig)
        with agent.daemon(notify=True) as d:
            wait_http(agent.port, "/healthz", 200)
            st = json.loads(request(agent.port, "/status")[2])
            assert st["source"]["kind"] == "kube"
            assert st["first_sync_done"] is False
            # Give it time to try; it must stay not ready all along.
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                status, _, body = request(agent.port, "/readyz")
                assert status == 503, body
                assert "first sync" in body
                time.sleep(0.2)
            fams, _ = metrics(agent.port)
            assert promparse.value(fams, "nodetrust_ready") == 0
            assert promparse.value(fams, "nodetrust_syncs_total") == 0
            assert "READY=1" not in d.notifications
    finally:
        api.set_delay(0)
        api.stop()


def test_stalled_loop_is_not_healthy(nodetrustd_bin, root, trust_volume, tmp_path, test_ca):
    trust_volume.update({"localhost..5000": test_ca.pem()})
    agent = health_agent(nodetrustd_bin, root, trust_volume.path, tmp_path)

    with agent.daemon() as d:
        d.wait_notify("READY=1")
        wait_http(agent.port, "/healthz", 200)

        d.signal(signal.SIGSTOP)
        try:
            # The kernel still completes the TCP handshake (the listen
            # backlog), but nobody answers: no 200 within the timeout.
            with pytest.raises((socket.timeout, TimeoutError, ConnectionError, http.client.HTTPException)):
                request(agent.port, "/healthz", timeout=1.5)
        finally:
            d.signal(signal.SIGCONT)

        status, _, body = wait_http(agent.port, "/healthz", 200, timeout=5)
        assert body == "ok\n"


def test_health_listen_none_and_busy_port(nodetrustd_bin, root, trust_volume, tmp_path, test_ca):
    trust_volume.update({"localhost..5000": test_ca.pem()})

    # "none": no endpoint at all, the agent runs as usual.
    agent = peers.Agent(root, trust_volume.path, binary=nodetrustd_bin, workdir=tmp_path, health="none")
    with agent.daemon() as d:
        d.wait_notify("READY=1")
        assert "Serving /healthz" not in d.log()

    # A port someone else holds: a clear start-up error, not a silent daemon.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        busy = s.getsockname()[1]
        agent = peers.Agent(root, trust_volume.path, binary=nodetrustd_bin, workdir=tmp_path,
                            health=f"127.0.0.1:{busy}")
        p = subprocess.run(agent.argv(), capture_output=True, text=True, timeout=30,
                           env={k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"})
        assert p.returncode == 3, p.stderr
        assert f"127.0.0.1:{busy}" in p.stderr and "Address already in use" in p.stderr


def test_any_bytes_in_a_key_keep_status_and_logs_whole(nodetrustd_bin, root, tmp_path, test_ca):
    """A plain directory may hold a file whose name is not UTF-8 or holds a
    newline. It is refused, and everything else stays whole: /status
    answers valid JSON naming it printably, the good key is applied, and
    the log line about it is one line (no forged second line)."""
    src = tmp_path / "plain"
    src.mkdir()
    (src / "good.example.com").write_bytes(test_ca.pem())
    evil = b"bad\xff\nINFO nodetrust: Sync complete FORGED=1"
    with open(os.path.join(os.fsencode(src), evil), "wb") as f:
        f.write(test_ca.pem())
    a = health_agent(nodetrustd_bin, root, src, tmp_path)
    with a.daemon() as d:
        d.wait_notify("READY=1")
        status, _, body = wait_http(a.port, "/status", 200)
        doc = json.loads(body)
        regs = {r["key"]: r for r in doc["registries"]}
        assert regs["good.example.com"]["state"] == "applied"
        refused = [r for r in doc["registries"] if r["state"] == "refused"]
        assert len(refused) == 1
        assert refused[0]["key"] == "bad??INFO nodetrust: Sync complete FORGED=1"
        assert wait_http(a.port, "/readyz", 200)[0] == 200
        log = d.log()
    # The refusal is said on one line, the bytes escaped; no line starts
    # with the forged text.
    lines = [ln for ln in log.splitlines() if "Refused key" in ln]
    assert len(lines) == 1, log
    assert "bad\\xff\\x0aINFO" in lines[0]
    assert not any(ln.startswith("INFO nodetrust: Sync complete FORGED") for ln in log.splitlines())
