# SPDX-License-Identifier: MIT
"""nodetrust-aggregator end to end: the real binary on 127.0.0.1, reports
posted with urllib like an agent would, the fleet read back through the JSON
API, /metrics and the page in a real (headless) chromium.

Fake nodes stand in for agents here; the fleet test with real agents lives
with the agent's health tests. The Aggregator helper below is meant to be
reused by them.
"""

import concurrent.futures
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import promparse

REPO_ROOT = Path(__file__).resolve().parents[2]
BROWSER_DIR = Path(__file__).resolve().parent / "browser"
SCREENSHOT = REPO_ROOT / "build" / "test-output" / "aggregator.png"
TOKEN = "e2e-token-0123456789"
STATES = ("converged", "lagging", "failing", "stale")


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


HASH_OLD = sha("trust v1")
HASH_NEW = sha("trust v2")


def aggregator_path():
    """The aggregator under test: $NODETRUST_AGGREGATOR, else build/."""
    env = os.environ.get("NODETRUST_AGGREGATOR")
    return Path(env).resolve() if env else REPO_ROOT / "build" / "nodetrust-aggregator"


class Aggregator:
    """nodetrust-aggregator on 127.0.0.1 with a free port it picks itself.

    Use as a context manager; .url, .port, .token_file, .log() and the
    request helpers below. Stops with SIGTERM and expects a clean exit.
    """

    def __init__(self, workdir, *args, token=TOKEN, binary=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.token_file = self.workdir / "token"
        self.token_file.write_text(token + "\n")
        self.binary = binary or aggregator_path()
        self.args = list(args)
        self.stderr_path = self.workdir / "aggregator.log"
        self.proc = None
        self.port = None

    def start(self, timeout=10):
        if not os.access(self.binary, os.X_OK):
            pytest.fail(f"nodetrust-aggregator not built at {self.binary}: run `make`", pytrace=False)
        stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [str(self.binary), "--listen", "127.0.0.1:0", "--token-file", str(self.token_file),
             *self.args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
        stderr.close()
        # Port 0: the aggregator logs the port it got.
        deadline = time.monotonic() + timeout
        while self.port is None:
            for line in self.log().splitlines():
                if "Listening on" in line and " port " in line:
                    self.port = int(line.split(" port ")[1].split()[0])
            if self.proc.poll() is not None:
                raise AssertionError(f"aggregator exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"aggregator did not start:\n{self.log()}")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def stop(self, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("aggregator did not exit on SIGTERM")
        return self.proc.returncode if self.proc else None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        rc = self.stop()
        if exc[0] is None:
            assert rc == 0, f"aggregator exit status {rc}:\n{self.log()}"

    def log(self):
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def alive(self):
        return self.proc.poll() is None

    # -- requests ---------------------------------------------------------

    def request(self, path, *, method="GET", body=None, headers=None, timeout=10):
        """(status, headers, body bytes); HTTP errors are answers, not exceptions."""
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.headers, e.read()

    def get_json(self, path):
        status, headers, body = self.request(path)
        assert status == 200, (path, status, body)
        assert headers["Content-Type"] == "application/json"
        return json.loads(body)

    def post_report(self, report, token=TOKEN, raw=None):
        """POST a report (a dict, or raw bytes); (status, parsed JSON or None)."""
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        body = raw if raw is not None else json.dumps(report).encode()
        status, _, answer = self.request("/api/v1/reports", method="POST", body=body, headers=headers)
        try:
            return status, json.loads(answer) if answer else None
        except ValueError:
            return status, answer

    def summary(self):
        return self.get_json("/api/v1/summary")

    def node_list(self, query=""):
        """Every node of GET /api/v1/nodes, following the continue tokens."""
        out, token = [], None
        while True:
            q = query + (("&" if query else "") + "continue=" + token if token else "")
            page = self.get_json("/api/v1/nodes" + ("?" + q if q else ""))
            out += page["nodes"]
            token = page["metadata"].get("continue")
            if not token:
                return out

    def nodes(self):
        return {n["name"]: n for n in self.node_list()}

    def metrics(self):
        status, headers, body = self.request("/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return promparse.parse(body.decode())

    def healthy(self):
        return self.request("/healthz")[0] == 200


def report(node, source=HASH_NEW, applied=HASH_NEW, *, errors=(), interval=30, ready=True,
           registries=None, soonest=None, targets=None, registry_counts=None):
    """A report as docs/report-format.md describes it; without targets and
    registry_counts it is an older agent's (they are left out)."""
    if registries is None:
        registries = [{"name": "registry.example.com:5000", "state": "applied",
                       "fingerprint": sha("bundle"), "not_after": int(time.time()) + 400 * 86400}]
    with_expiry = [r["not_after"] for r in registries if r.get("not_after") is not None]
    extra = {}
    if targets is not None:
        extra["targets"] = targets
    if registry_counts is not None:
        extra["registry_counts"] = registry_counts
    return {
        **extra,
        "schema": 1,
        "node": node,
        "agent_version": "0.1.0",
        "timestamp": int(time.time()),
        "interval_seconds": interval,
        "ready": ready,
        "source": {"kind": "dir", "generation": 7, "hash": source},
        "applied_hash": applied,
        "errors": list(errors),
        "registries": registries,
        "soonest_expiry": soonest if soonest is not None else (min(with_expiry) if with_expiry else None),
        "pull_secret": {"state": "applied", "hash": sha("not the secret")},
    }


def wait_for(predicate, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def post_three_nodes(agg, expiring_in_days=10):
    """worker-1 converged (with a certificate expiring soon), worker-2
    lagging on the old hash, worker-3 failing."""
    now = int(time.time())
    soon = now + expiring_in_days * 86400
    # The old config first, then worker-1 moves to the new one: NEW is current.
    assert agg.post_report(report("worker-2", HASH_OLD, HASH_OLD))[0] == 200
    st, body = agg.post_report(report("worker-1", HASH_NEW, HASH_NEW, registries=[
        {"name": "registry.example.com:5000", "state": "applied", "fingerprint": sha("a"),
         "not_after": now + 400 * 86400},
        {"name": "soon.example.com", "state": "applied", "fingerprint": sha("b"), "not_after": soon},
        {"name": "bad..key", "state": "refused", "reason": "port out of range"},
    ]))
    assert st == 200, body
    assert body == {"node": "worker-1", "state": "converged", "current_hash": HASH_NEW}
    st, body = agg.post_report(report("worker-3", HASH_NEW, HASH_OLD,
                                      errors=["failed to write /etc/docker/certs.d/x/ca.crt: EROFS"]))
    assert st == 200 and body["state"] == "failing", body
    return soon


@pytest.fixture
def agg(tmp_path):
    with Aggregator(tmp_path / "agg", "--interval", "30") as a:
        yield a


# ---------------------------------------------------------------------------

def test_summary_and_nodes(agg):
    soon = post_three_nodes(agg)

    s = agg.summary()
    assert s["total"] == 3
    assert s["counts"] == {"converged": 1, "lagging": 1, "failing": 1, "stale": 0}
    assert s["current_hash"] == HASH_NEW
    assert s["soonest_expiry"] == soon
    assert s["soonest_expiry_node"] == "worker-1"
    assert s["soonest_expiry_registry"] == "soon.example.com"
    assert s["expiring_within_days"] == 30
    assert s["expiring"] == [{"node": "worker-1", "registry": "soon.example.com", "not_after": soon}]

    listing = agg.get_json("/api/v1/nodes")
    assert listing["total"] == 3 and listing["current_hash"] == HASH_NEW
    # In name order: the order that pages stably (the page asks state by state).
    assert [n["name"] for n in listing["nodes"]] == ["worker-1", "worker-2", "worker-3"]
    nodes = {n["name"]: n for n in listing["nodes"]}
    assert nodes["worker-1"]["state"] == "converged"
    assert nodes["worker-2"]["state"] == "lagging"
    assert nodes["worker-3"]["state"] == "failing"
    w1 = nodes["worker-1"]
    assert w1["applied_hash"] == HASH_NEW and w1["source"]["hash"] == HASH_NEW
    assert w1["registries"] == {"applied": 2, "refused": 1, "conflict": 0, "failed": 0, "shadowed": 0,
                                "total": 3}
    # An older agent reports no targets: none shown, nothing shadowed, no warning.
    assert w1["targets"] == {} and w1["shadowed"] == 0
    assert (s["shadowed"], s["inactive_target"], s["targets"]) == (0, 0, {})
    assert w1["soonest_expiry"] == soon
    assert abs(w1["last_seen"] - time.time()) < 30
    assert nodes["worker-3"]["errors"] == ["failed to write /etc/docker/certs.d/x/ca.crt: EROFS"]

    # Filter by state, and one node by name.
    failing = agg.get_json("/api/v1/nodes?state=failing")["nodes"]
    assert [n["name"] for n in failing] == ["worker-3"]
    assert agg.get_json("/api/v1/nodes/worker-2")["state"] == "lagging"
    assert agg.request("/api/v1/nodes/nope")[0] == 404
    assert agg.request("/api/v1/nodes?state=happy")[0] == 400
    # A page of one; total still counts every node.
    first = agg.get_json("/api/v1/nodes?limit=1")
    assert first["total"] == 3 and [n["name"] for n in first["nodes"]] == ["worker-1"]
    assert agg.request("/api/v1/nodes?limit=-1")[0] == 400

    # worker-2 catches up; the fleet converges except the failing node.
    assert agg.post_report(report("worker-2"))[0] == 200
    assert agg.summary()["counts"] == {"converged": 2, "lagging": 0, "failing": 1, "stale": 0}


def test_no_secret_fields_echoed(agg):
    post_three_nodes(agg)
    everything = json.dumps(agg.node_list()) + json.dumps(agg.summary())
    # The pull secret's hash is allowed in a report but the fleet view has no use for it.
    assert sha("not the secret") not in everything


def test_unauthorized(agg):
    good = report("worker-1")
    for token in (None, "wrong", TOKEN + "x", TOKEN[:-1], ""):
        status, body = agg.post_report(good, token=token)
        assert status == 401, (token, status, body)
        assert "token" in body["error"]
    status, headers, _ = agg.request("/api/v1/reports", method="POST", body=b"{}",
                                     headers={"Authorization": "Basic " + TOKEN})
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert agg.summary()["total"] == 0
    assert agg.post_report(good)[0] == 200

    # The token file is re-read when it changes: rotate to a new token.
    tmp = agg.token_file.with_suffix(".new")
    tmp.write_text("rotated-token\n")
    tmp.replace(agg.token_file)
    assert agg.post_report(good)[0] == 401
    assert agg.post_report(good, token="rotated-token")[0] == 200
    m = agg.metrics()
    assert promparse.value(m, "nodetrust_aggregator_reports_rejected_total", reason="unauthorized") == 7


def test_oversized(agg):
    big = report("worker-1")
    big["errors"] = ["x" * 1000] * 270   # about 270 KB > 256 KiB
    body = json.dumps(big).encode()
    assert len(body) > 262144
    status, answer = agg.post_report(None, raw=body)
    assert status == 413, answer
    assert "larger than 262144" in answer["error"]
    assert agg.healthy()
    # Without a token, a big body is a 401: strangers learn nothing.
    assert agg.post_report(None, raw=body, token=None)[0] == 401
    assert agg.post_report(report("worker-1"))[0] == 200


def test_oversized_refused_before_upload(agg):
    """An agent that asks first (Expect: 100-continue, as libcurl does for big
    bodies) is refused from the headers alone and never sends the body."""
    with socket.create_connection(("127.0.0.1", agg.port), timeout=10) as s:
        s.sendall(b"POST /api/v1/reports HTTP/1.1\r\nHost: x\r\n"
                  b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 100000000\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    # Without a token the answer comes from the headers alone too, even for a
    # body within the limit: a stranger cannot make the aggregator buffer.
    with socket.create_connection(("127.0.0.1", agg.port), timeout=10) as s:
        s.sendall(b"POST /api/v1/reports HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n")
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert agg.healthy()


def test_no_body_buffered_outside_reports(agg):
    """Only an authenticated report has a body worth reading: any other
    request is answered from its headers, so a stranger cannot make the
    aggregator hold a body (up to the report limit) on each connection."""
    for line, status in ((b"POST / HTTP/1.1", b"405"), (b"PUT /api/v1/reports HTTP/1.1", b"405"),
                         (b"GET /healthz HTTP/1.1", b"200"), (b"POST /nope HTTP/1.1", b"404")):
        with socket.create_connection(("127.0.0.1", agg.port), timeout=5) as s:
            s.sendall(line + b"\r\nHost: x\r\nContent-Length: 200000\r\n\r\n")
            answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 " + status), (line, answer)
    with socket.create_connection(("127.0.0.1", agg.port), timeout=5) as s:
        s.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 405")
    # A request without a body keeps its connection.
    c = http.client.HTTPConnection("127.0.0.1", agg.port, timeout=5)
    for _ in range(3):
        c.request("GET", "/healthz")
        r = c.getresponse()
        assert (r.status, r.read(), r.getheader("Connection")) == (200, b"ok\n", None)
        assert c.sock is not None
    c.close()
    assert agg.healthy()
    assert agg.post_report(report("worker-1"))[0] == 200


def test_malformed(agg):
    cases = [
        (b"{not json", "invalid JSON"),
        (b"", "invalid JSON"),
        (b"\xff\xfe", "invalid JSON"),
        (json.dumps([1, 2]).encode(), "object"),
        (json.dumps({**report("w"), "schema": 2}).encode(), "schema"),
        (json.dumps({**report("w"), "source": {"hash": "abc"}}).encode(), "hash"),
        (json.dumps({**report("w"), "registries": [{"name": "r", "state": "bogus"}]}).encode(), "state"),
        (json.dumps({**report("w"), "interval_seconds": 0}).encode(), "interval"),
        (json.dumps(report("Worker_1")).encode(), "node"),
        (json.dumps(report("../etc/passwd")).encode(), "node"),
    ]
    for body, reason in cases:
        status, answer = agg.post_report(None, raw=body)
        assert status == 400, (body, status, answer)
        assert reason in answer["error"], (body, answer)
        # The aggregator keeps serving after each.
        assert agg.healthy()
    assert agg.post_report(report("worker-1"))[0] == 200
    assert agg.summary()["total"] == 1
    m = agg.metrics()
    assert promparse.value(m, "nodetrust_aggregator_reports_rejected_total", reason="bad_json") == 3
    assert promparse.value(m, "nodetrust_aggregator_reports_rejected_total", reason="bad_schema") == 5
    assert promparse.value(m, "nodetrust_aggregator_reports_rejected_total", reason="bad_node_name") == 2
    assert promparse.value(m, "nodetrust_aggregator_reports_accepted_total") == 1
    assert agg.alive()


def test_stale(tmp_path):
    with Aggregator(tmp_path / "agg", "--interval", "1") as agg:
        assert agg.post_report(report("quiet", interval=1))[0] == 200
        # No interval_seconds: the aggregator's --interval counts.
        r = report("default-interval")
        del r["interval_seconds"]
        assert agg.post_report(r)[0] == 200
        start = time.monotonic()
        assert agg.nodes()["quiet"]["state"] == "converged"

        # A node that keeps reporting stays fresh while the silent ones go stale.
        def quiet_is_stale():
            assert agg.post_report(report("chatty", interval=1))[0] == 200
            return agg.nodes()["quiet"]["state"] == "stale"
        wait_for(quiet_is_stale, timeout=8, what="the silent node to go stale")
        elapsed = time.monotonic() - start
        assert elapsed > 3 - 0.2, f"stale after {elapsed:.1f}s, before 3 intervals"
        wait_for(lambda: agg.nodes()["default-interval"]["state"] == "stale", timeout=3)

        nodes = agg.nodes()
        assert nodes["chatty"]["state"] == "converged"
        s = agg.summary()
        assert s["counts"]["stale"] == 2 and s["counts"]["converged"] == 1
        # A report brings it back.
        assert agg.post_report(report("quiet", interval=1))[0] == 200
        assert agg.nodes()["quiet"]["state"] == "converged"


def test_metrics(agg):
    soon = post_three_nodes(agg)
    agg.post_report(None, raw=b"nope")
    m = agg.metrics()
    for state, n in {"converged": 1, "lagging": 1, "failing": 1, "stale": 0}.items():
        assert promparse.value(m, "nodetrust_aggregator_nodes", state=state) == n
    assert m["nodetrust_aggregator_nodes"].type == "gauge"
    assert promparse.value(m, "nodetrust_aggregator_nodes_total") == 3
    assert promparse.value(m, "nodetrust_aggregator_soonest_certificate_expiry_timestamp_seconds") == soon
    assert promparse.value(m, "nodetrust_aggregator_reports_received_total") == 4
    assert m["nodetrust_aggregator_reports_received_total"].type == "counter"
    assert promparse.value(m, "nodetrust_aggregator_reports_accepted_total") == 3
    assert promparse.value(m, "nodetrust_aggregator_reports_rejected_total", reason="bad_json") == 1
    reasons = {l["reason"] for l, _ in promparse.samples(m, "nodetrust_aggregator_reports_rejected_total")}
    assert reasons == {"unauthorized", "too_large", "bad_json", "bad_schema", "bad_node_name", "node_limit"}
    assert promparse.value(m, "nodetrust_aggregator_reports_per_second") > 0
    assert promparse.value(m, "nodetrust_aggregator_certificates_expiring") == 1
    assert promparse.value(m, "nodetrust_aggregator_current_source_info", hash=HASH_NEW) == 1
    assert promparse.value(m, "nodetrust_aggregator_nodes_shadowed") == 0
    assert promparse.value(m, "nodetrust_aggregator_nodes_inactive_target") == 0
    assert promparse.samples(m, "nodetrust_aggregator_target_nodes") == []
    for fam in m.values():
        # The aggregator's own, and the runtime-trust warnings of the fleet.
        assert fam.name.startswith("nodetrust_aggregator_"), fam.name
        assert fam.help and fam.type


def test_metrics_before_any_report(agg):
    m = agg.metrics()
    assert promparse.value(m, "nodetrust_aggregator_nodes_total") == 0
    # No made-up expiry when there is no certificate.
    assert promparse.samples(m, "nodetrust_aggregator_soonest_certificate_expiry_timestamp_seconds") == []


CONTAINERD_INACTIVE = ("containerd config_path is not set in /etc/containerd/config.toml; "
                       "containerd will not read /etc/containerd/certs.d")
SHADOW_REASON = ("containerd: hosts.toml was not written by nodetrustd and has no ca entry naming ca.crt; "
                 "containerd will not use this CA")


def shadowed_registry(name="reg.example.com:5000", reason=SHADOW_REASON):
    return {"name": name, "key": name.replace(":", ".."), "state": "shadowed", "reason": reason,
            "fingerprint": sha("shadowed " + name), "not_after": int(time.time()) + 400 * 86400,
            "targets": {"containerd": {"state": "shadowed", "reason": reason},
                        "docker": {"state": "applied"}}}


def post_effective_trust_nodes(agg, containerd_reason=CONTAINERD_INACTIVE):
    """containerd-node: converged, containerd inactive and one registry
    shadowed; crio-node: containerd not installed (normal, no warning);
    old-node: an older agent that sends no targets."""
    applied = {"name": "ok.example.com", "state": "applied", "fingerprint": sha("ok"),
               "not_after": int(time.time()) + 400 * 86400}
    st, body = agg.post_report(report(
        "containerd-node", registries=[applied, shadowed_registry()],
        targets={"docker": {"state": "not_installed"}, "containers": {"state": "active"},
                 "containerd": {"state": "inactive", "reason": containerd_reason}},
        registry_counts={"applied": 1, "refused": 0, "conflict": 0, "failed": 0, "shadowed": 1, "ignored": 0}))
    # Warnings are not states.
    assert (st, body["state"]) == (200, "converged"), body
    st, body = agg.post_report(report(
        "crio-node", registries=[applied],
        targets={"docker": {"state": "not_installed"}, "containers": {"state": "active"},
                 "containerd": {"state": "not_installed"}},
        registry_counts={"applied": 1, "shadowed": 0}))
    assert (st, body["state"]) == (200, "converged"), body
    assert agg.post_report(report("old-node", registries=[applied]))[0] == 200


def test_effective_trust(agg):
    post_effective_trust_nodes(agg)

    s = agg.summary()
    assert s["counts"] == {"converged": 3, "lagging": 0, "failing": 0, "stale": 0}
    assert s["shadowed"] == 1
    assert s["inactive_target"] == 1
    assert s["targets"] == {
        "containerd": {"active": 0, "not_installed": 1, "inactive": 1},
        "containers": {"active": 2, "not_installed": 0, "inactive": 0},
        "docker": {"active": 0, "not_installed": 2, "inactive": 0},
    }
    assert s["targets_omitted"] == 0

    nodes = agg.nodes()
    c = nodes["containerd-node"]
    assert c["state"] == "converged"
    assert c["targets"] == {"containerd": {"state": "inactive", "reason": CONTAINERD_INACTIVE},
                            "containers": {"state": "active"}, "docker": {"state": "not_installed"}}
    assert c["shadowed"] == 1
    assert c["registries"] == {"applied": 1, "refused": 0, "conflict": 0, "failed": 0, "shadowed": 1,
                               "total": 2}
    # A shadowed CA still expires, and is listed with the others.
    assert {x["registry"] for x in c["certificates"]} == {"ok.example.com", "reg.example.com:5000"}
    assert nodes["crio-node"]["shadowed"] == 0
    assert nodes["crio-node"]["targets"]["containerd"] == {"state": "not_installed"}
    assert nodes["old-node"]["targets"] == {} and nodes["old-node"]["shadowed"] == 0
    assert agg.get_json("/api/v1/nodes/containerd-node")["targets"] == c["targets"]

    m = agg.metrics()
    assert promparse.value(m, "nodetrust_aggregator_nodes_shadowed") == 1
    assert promparse.value(m, "nodetrust_aggregator_nodes_inactive_target") == 1
    assert m["nodetrust_aggregator_nodes_shadowed"].type == "gauge" and m["nodetrust_aggregator_nodes_shadowed"].help
    assert m["nodetrust_aggregator_target_nodes"].type == "gauge" and m["nodetrust_aggregator_target_nodes"].help
    for target, counts in s["targets"].items():
        for state, n in counts.items():
            assert promparse.value(m, "nodetrust_aggregator_target_nodes", target=target, state=state) == n
    assert len(promparse.samples(m, "nodetrust_aggregator_target_nodes")) == 9
    assert promparse.value(m, "nodetrust_aggregator_nodes", state="converged") == 3

    # The shadowed count comes from registry_counts when the agent gives it...
    assert agg.post_report(report("counted", registries=[shadowed_registry("a.example.com")],
                                  registry_counts={"shadowed": 4}))[0] == 200
    assert agg.nodes()["counted"]["shadowed"] == 4
    # ... else from the registries.
    assert agg.post_report(report("counted", registries=[shadowed_registry("a.example.com"),
                                                         shadowed_registry("b.example.com")]))[0] == 200
    assert agg.nodes()["counted"]["shadowed"] == 2
    assert agg.summary()["shadowed"] == 2

    # containerd-node fixes its config: the warnings go, the node stays converged.
    assert agg.post_report(report("containerd-node", targets={"containerd": {"state": "active"}}))[0] == 200
    s = agg.summary()
    assert (s["shadowed"], s["inactive_target"]) == (1, 0)
    assert s["targets"]["containerd"] == {"active": 1, "not_installed": 1, "inactive": 0}
    m = agg.metrics()
    assert promparse.value(m, "nodetrust_aggregator_nodes_inactive_target") == 0


def test_effective_trust_stale_not_counted(tmp_path):
    """A stale node's last word may no longer be true: its warnings and
    targets are not counted (it shows as stale)."""
    with Aggregator(tmp_path / "agg", "--interval", "1") as agg:
        assert agg.post_report(report("silent", interval=1, registries=[shadowed_registry()],
                                      targets={"containerd": {"state": "inactive"}}))[0] == 200
        s = agg.summary()
        assert (s["shadowed"], s["inactive_target"]) == (1, 1)
        wait_for(lambda: agg.summary()["counts"]["stale"] == 1, timeout=8, what="the node to go stale")
        s = agg.summary()
        assert (s["shadowed"], s["inactive_target"], s["targets"]) == (0, 0, {})
        m = agg.metrics()
        assert promparse.value(m, "nodetrust_aggregator_nodes_shadowed") == 0
        assert promparse.samples(m, "nodetrust_aggregator_target_nodes") == []
        # The node itself still shows what it last said.
        assert agg.nodes()["silent"]["targets"] == {"containerd": {"state": "inactive"}}


def test_effective_trust_malformed(agg):
    good = report("w", targets={"containerd": {"state": "active"}})
    assert agg.post_report(good)[0] == 200
    too_many = {f"t{i}": {"state": "active"} for i in range(9)}
    cases = [
        ({"targets": []}, "'targets' must be an object"),
        ({"targets": too_many}, "'targets' must have at most 8"),
        ({"targets": {"Docker": {"state": "active"}}}, "'targets' names"),
        ({"targets": {"<script>alert(1)</script>": {"state": "active"}}}, "'targets' names"),
        ({"targets": {"x" * 64: {"state": "active"}}}, "'targets' names"),
        ({"targets": {"docker": "active"}}, "targets.docker must be an object"),
        ({"targets": {"docker": {}}}, "targets.docker.state"),
        ({"targets": {"docker": {"state": "shadowed"}}}, "targets.docker.state"),
        ({"targets": {"docker": {"state": "inactive", "reason": 5}}}, "targets.docker.reason"),
        ({"registries": [{"name": "r", "state": "inactive"}]}, "registries[0].state"),
        ({"registries": [{"name": "r", "state": "shadowed", "targets": ["containerd"]}]},
         "registries[0].targets must be an object"),
        ({"registry_counts": 3}, "'registry_counts' must be an object"),
        ({"registry_counts": {"shadowed": -1}}, "registry_counts.shadowed"),
        ({"registry_counts": {"shadowed": "1"}}, "registry_counts.shadowed"),
    ]
    for fields, reason in cases:
        status, answer = agg.post_report({**good, **fields})
        assert status == 400, (fields, status, answer)
        assert reason in answer["error"], (fields, answer)
        assert "<script>" not in answer["error"]
    assert promparse.value(agg.metrics(), "nodetrust_aggregator_reports_rejected_total",
                           reason="bad_schema") == len(cases)
    # The refused reports changed nothing.
    assert agg.nodes()["w"]["targets"] == {"containerd": {"state": "active"}}
    # A long reason is kept, cut to 512 bytes.
    long = report("w", targets={"containerd": {"state": "inactive", "reason": "r" * 5000}})
    assert agg.post_report(long)[0] == 200
    assert agg.nodes()["w"]["targets"]["containerd"]["reason"] == "r" * 512
    assert "<script>" not in agg.log()


def test_node_limit(tmp_path):
    with Aggregator(tmp_path / "agg", "--max-nodes", "2") as agg:
        assert agg.post_report(report("a"))[0] == 200
        assert agg.post_report(report("b"))[0] == 200
        status, body = agg.post_report(report("c"))
        assert status == 503 and "at most 2 nodes" in body["error"]
        assert agg.post_report(report("a"))[0] == 200   # known nodes still report
        assert promparse.value(agg.metrics(), "nodetrust_aggregator_reports_rejected_total",
                               reason="node_limit") == 1


def test_http_surface(agg):
    status, headers, body = agg.request("/healthz")
    assert (status, body) == (200, b"ok\n")
    assert agg.request("/healthz", method="HEAD")[0] == 200
    status, _, body = agg.request("/nope")
    assert status == 404 and json.loads(body)["error"] == "not found"
    status, headers, _ = agg.request("/api/v1/reports")
    assert status == 405 and headers["Allow"] == "POST"
    status, headers, _ = agg.request("/api/v1/summary", method="DELETE")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    status, headers, body = agg.request("/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    page = body.decode()
    # Self-contained: no external script, style, font or image.
    for needle in ("<script src", "<link", "http://", "https://", "@import", "url("):
        assert needle not in page, needle
    for state in ("total",) + STATES:
        assert f'id="count-{state}"' in page


def test_command_line(tmp_path):
    binary = aggregator_path()
    if not os.access(binary, os.X_OK):
        pytest.fail(f"nodetrust-aggregator not built at {binary}: run `make`", pytrace=False)

    def run(*args):
        return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=10)

    p = run("--help")
    assert p.returncode == 0 and "--token-file" in p.stdout and "--listen" in p.stdout
    p = run("--version")
    assert p.returncode == 0 and p.stdout.startswith("nodetrust-aggregator ")
    p = run()
    assert p.returncode == 2 and "--token-file is required" in p.stderr
    token = tmp_path / "token"
    token.write_text("t\n")
    for bad in ("localhost:80", "127.0.0.1", "[::1]", "127.0.0.1:70000"):
        p = run("--token-file", str(token), "--listen", bad)
        assert p.returncode == 2 and "Invalid --listen" in p.stderr, (bad, p.stderr)
    p = run("--token-file", str(token), "--interval", "0")
    assert p.returncode == 2
    p = run("--token-file", str(tmp_path / "missing"), "--listen", "127.0.0.1:0")
    assert p.returncode == 1 and "token file" in p.stderr
    empty = tmp_path / "empty"
    empty.write_text("\n")
    p = run("--token-file", str(empty), "--listen", "127.0.0.1:0")
    assert p.returncode == 1


def test_sd_notify_ready_and_sigterm(tmp_path):
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(10)
    agg = Aggregator(tmp_path / "agg")
    env_before = os.environ.get("NOTIFY_SOCKET")
    os.environ["NOTIFY_SOCKET"] = str(sock_path)
    try:
        agg.start()
    finally:
        if env_before is None:
            del os.environ["NOTIFY_SOCKET"]
        else:
            os.environ["NOTIFY_SOCKET"] = env_before
    try:
        messages = [sock.recv(4096).decode()]
        while not any("READY=1" in m for m in messages):
            messages.append(sock.recv(4096).decode())
        assert agg.healthy()
    finally:
        rc = agg.stop()
    assert rc == 0
    sock.settimeout(2)
    try:
        while True:
            messages.append(sock.recv(4096).decode())
            if "STOPPING=1" in messages[-1]:
                break
    except socket.timeout:
        pass
    sock.close()
    assert any("STOPPING=1" in m for m in messages), messages
    assert any(m.startswith("STATUS=0 nodes") for m in messages), messages
    assert "Received SIGTERM" in agg.log()


def test_sd_notify_status_follows_reports(tmp_path):
    """STATUS= says what changed within a second of the report that changed
    it (it used to wait for the minute's housekeeping), and only then: a
    report that changes no count sends no new STATUS=."""
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.1)
    messages = []

    def statuses(until=None, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                messages.extend(sock.recv(4096).decode().splitlines())
            except socket.timeout:
                pass
            if until and any(m.startswith(until) for m in messages):
                break
        return [m for m in messages if m.startswith("STATUS=")]

    agg = Aggregator(tmp_path / "agg")
    env_before = os.environ.get("NOTIFY_SOCKET")
    os.environ["NOTIFY_SOCKET"] = str(sock_path)
    try:
        agg.start()
    finally:
        if env_before is None:
            del os.environ["NOTIFY_SOCKET"]
        else:
            os.environ["NOTIFY_SOCKET"] = env_before
    try:
        assert statuses("STATUS=0 nodes", timeout=5)[-1].startswith("STATUS=0 nodes")
        t0 = time.monotonic()
        assert agg.post_report(report("n1"))[0] == 200
        one = "STATUS=1 nodes: 1 converged, 0 lagging, 0 failing, 0 stale"
        assert statuses(one, timeout=5)[-1] == one, messages
        assert time.monotonic() - t0 < 3
        assert agg.post_report(report("n2", applied=HASH_OLD))[0] == 200
        two = "STATUS=2 nodes: 1 converged, 1 lagging, 0 failing, 0 stale"
        assert statuses(two, timeout=5)[-1] == two, messages
        n = len(statuses(timeout=0.2))
        assert agg.post_report(report("n1"))[0] == 200  # no count changes
        assert len(statuses(timeout=1.5)) == n, messages
    finally:
        rc = agg.stop()
        sock.close()
    assert rc == 0


def test_load(agg, request):
    """2000 reports over 4 keep-alive connections; print the rate, assert only
    that every one was accepted and the aggregator still answers."""
    total, workers = 2000, 4
    bodies = [json.dumps(report(f"load-{i % 500}")).encode() for i in range(total)]
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def worker(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", agg.port, timeout=10)
        ok = 0
        for body in chunk:
            conn.request("POST", "/api/v1/reports", body=body, headers=headers)
            r = conn.getresponse()
            r.read()
            ok += r.status == 200
        conn.close()
        return ok

    chunks = [bodies[i::workers] for i in range(workers)]
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        accepted = sum(pool.map(worker, chunks, timeout=120))
    elapsed = time.monotonic() - start
    rate = total / elapsed
    line = (f"aggregator load: {total} reports over {workers} keep-alive connections in "
            f"{elapsed:.2f} s = {rate:.0f} reports/s (Python client on the same 2 cores)")
    try:
        request.getfixturevalue("report_line")(line)
    except pytest.FixtureLookupError:
        print(line)
    assert accepted == total
    assert agg.summary()["total"] == 500
    m = agg.metrics()
    assert promparse.value(m, "nodetrust_aggregator_reports_accepted_total") == total
    assert agg.healthy()


# ---------------------------------------------------------------------------
# The page, in a real browser.

def _browser_ready():
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are needed for the browser test (scripts/deps.sh test)", pytrace=False)
    if not os.access("/usr/bin/chromium", os.X_OK):
        pytest.fail("/usr/bin/chromium is missing (scripts/deps.sh test installs it)", pytrace=False)
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        p = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=BROWSER_DIR,
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, f"npm install failed:\n{p.stdout}\n{p.stderr}"
    return node


def test_page_in_browser(tmp_path):
    node = _browser_ready()
    with Aggregator(tmp_path / "agg", "--interval", "1") as agg:
        post_three_nodes(agg)
        # A fourth node, silent long enough to be stale, and a fifth converged.
        assert agg.post_report(report("worker-4", interval=1))[0] == 200
        for i in range(5, 9):
            assert agg.post_report(report(f"worker-{i}", interval=60))[0] == 200
        wait_for(lambda: agg.summary()["counts"]["stale"] >= 1, timeout=8, what="worker-4 stale")
        # worker-1..3 reported with a 30 s interval: still fresh.

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        if SCREENSHOT.exists():
            SCREENSHOT.unlink()
        p = subprocess.run([node, str(BROWSER_DIR / "screenshot.js"), agg.url + "/", str(SCREENSHOT)],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, f"browser script failed:\n{p.stdout}\n{p.stderr}"
        seen = json.loads(p.stdout.strip().splitlines()[-1])
        summary = agg.summary()

    print(f"screenshot: {SCREENSHOT}")
    assert seen["problems"] == [], seen["problems"]
    assert not seen["banner_shown"]
    assert seen["counts"]["total"] == summary["total"] == 8
    for state in STATES:
        assert seen["counts"][state] == summary["counts"][state], (state, seen, summary)
    # Older agents' reports: no runtime warnings anywhere.
    assert seen["counts"]["shadowed"] == seen["counts"]["inactive-target"] == 0
    assert all(n["warnings"] == [] for n in seen["nodes"])
    # Nodes needing attention come first.
    order = [n["state"] for n in seen["nodes"]]
    rank = {"failing": 0, "stale": 1, "lagging": 2, "converged": 3}
    assert order == sorted(order, key=rank.get), order
    assert seen["nodes"][0]["name"] == "worker-3"
    assert "EROFS" in seen["nodes"][0]["problem"]
    assert [e["registry"] for e in seen["expiring"]] == ["soon.example.com"]
    assert seen["current_hash"] == HASH_NEW[:12]
    data = SCREENSHOT.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000


HOSTILE = ('<script>window.__nodetrust_injected = true</script>'
           '<img src=x onerror="window.__nodetrust_injected = true">&amp; "quoted"')


def test_page_shows_runtime_warnings(tmp_path):
    """An inactive containerd target and a shadowed registry show on the
    page: the counts beside the states, the target with its reason on the
    node's row, the number of shadowed registries. A reason is text, never
    markup, whatever it holds."""
    node = _browser_ready()
    with Aggregator(tmp_path / "agg") as agg:
        post_effective_trust_nodes(agg)
        st, _ = agg.post_report(report(
            "hostile-node", registries=[shadowed_registry("a.example.com", HOSTILE),
                                        shadowed_registry("b.example.com", HOSTILE)],
            targets={"containerd": {"state": "inactive", "reason": HOSTILE},
                     "docker": {"state": "inactive"}}))
        assert st == 200
        p = subprocess.run([node, str(BROWSER_DIR / "screenshot.js"), agg.url + "/",
                            str(REPO_ROOT / "build" / "test-output" / "aggregator-warnings.png")],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, f"browser script failed:\n{p.stdout}\n{p.stderr}"
        seen = json.loads(p.stdout.strip().splitlines()[-1])
        summary = agg.summary()
        m = agg.metrics()

    assert seen["problems"] == [], seen["problems"]
    assert not seen["banner_shown"]
    assert summary["shadowed"] == seen["counts"]["shadowed"] == 2
    assert summary["inactive_target"] == seen["counts"]["inactive-target"] == 2
    assert promparse.value(m, "nodetrust_aggregator_nodes_inactive_target") == 2
    assert promparse.value(m, "nodetrust_aggregator_target_nodes", target="containerd", state="inactive") == 2
    # Which targets are inactive, at a glance.
    assert seen["inactive_targets"] == "containerd 2, docker 1"
    # Warnings are not states: all four are converged.
    assert {n["state"] for n in seen["nodes"]} == {"converged"}

    rows = {n["name"]: n for n in seen["nodes"]}
    c = rows["containerd-node"]
    assert [w["target"] for w in c["warnings"]] == ["containerd", None]
    target, shadowed = c["warnings"]
    assert target["text"].startswith("containerd inactive")
    assert "config_path is not set" in target["text"]
    assert CONTAINERD_INACTIVE in target["title"]
    assert shadowed["text"] == "1 shadowed registry"
    assert "1 shadowed" in c["registries"]
    assert rows["crio-node"]["warnings"] == [] and rows["old-node"]["warnings"] == []

    h = rows["hostile-node"]
    assert [w["target"] for w in h["warnings"]] == ["containerd", "docker", None]
    hostile = h["warnings"][0]
    # The whole reason as the tooltip, the start of it as text; both verbatim.
    assert hostile["title"].endswith(HOSTILE)
    assert hostile["text"].startswith("containerd inactive" + HOSTILE[:40])
    assert "&lt;script&gt;" in hostile["html"] and "<script" not in hostile["html"]
    assert hostile["elements"] == 2
    assert h["warnings"][1]["text"] == "docker inactive"
    assert h["warnings"][2]["text"] == "2 shadowed registries"
    assert seen["scripts"] == 1 and seen["images"] == 0
    assert not seen["injected"]


def test_page_survives_absurd_expiry(tmp_path):
    """A report's not_after is any integer; one beyond what a JavaScript Date
    holds (about 285,000 years either way) must not break the whole page."""
    node = _browser_ready()
    with Aggregator(tmp_path / "agg") as agg:
        for name, t in (("worker-1", -10**13), ("worker-2", 10**15)):
            regs = [{"name": "odd.example.com", "state": "applied", "fingerprint": sha("b"), "not_after": t}]
            assert agg.post_report(report(name, registries=regs))[0] == 200
        p = subprocess.run([node, str(BROWSER_DIR / "screenshot.js"), agg.url + "/", str(tmp_path / "page.png"),
                            "--timeout", "15000"], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, f"browser script failed:\n{p.stdout}\n{p.stderr}"
        seen = json.loads(p.stdout.strip().splitlines()[-1])
    assert seen["problems"] == [], seen["problems"]
    assert not seen["banner_shown"]
    assert seen["counts"]["total"] == 2


# ---------------------------------------------------------------------------
# The exposition parser must itself be strict, or the checks above prove little.

@pytest.mark.parametrize("text", [
    "x 1",                                                       # no final newline
    "# HELP x h\n# TYPE x gauge\nx 1\n\n",                       # blank line
    "x 1\n",                                                     # no HELP/TYPE
    "# TYPE x gauge\nx 1\n",                                     # no HELP
    "# HELP x h\n# TYPE x gauge\nx 1\n# HELP x again\n",         # HELP after samples
    "# HELP x h\n# TYPE x gauge\n# TYPE x counter\nx 1\n",       # second TYPE
    "# HELP x h\n# TYPE x meter\nx 1\n",                         # unknown type
    "# HELP 1x h\n# TYPE 1x gauge\n1x 1\n",                      # bad name
    "# HELP x h\n# TYPE x gauge\nx{a=\"1\"} one\n",              # bad value
    "# HELP x h\n# TYPE x gauge\nx{a=1} 1\n",                    # unquoted label
    "# HELP x h\n# TYPE x gauge\nx{a=\"\\t\"} 1\n",              # bad escape
    "# HELP x h\n# TYPE x gauge\nx{__a=\"1\"} 1\n",              # reserved label
    "# HELP x h\n# TYPE x gauge\nx{a=\"1\",a=\"2\"} 1\n",        # label twice
    "# HELP x h\n# TYPE x gauge\nx 1\nx 2\n",                    # duplicate series
    "# HELP x h\n# TYPE x gauge\nx{a=\"1\"} 1\n# HELP y h\n# TYPE y gauge\ny 1\nx{a=\"2\"} 1\n",  # not contiguous
    "# HELP x h\n# TYPE x counter\nx -1\n",                      # negative counter
    "# HELP x h\n# TYPE x gauge\nx 1 1.5\n",                     # float timestamp
    "# HELP x h\n# TYPE x gauge\nx  1\n",                        # two spaces
    "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n",  # no +Inf bucket
])
def test_promparse_rejects(text):
    with pytest.raises(promparse.ParseError):
        promparse.parse(text)


def test_promparse_accepts():
    text = ("# HELP a_total Things, with \\\\ and \\n escapes.\n# TYPE a_total counter\n"
            "a_total{reason=\"x \\\"q\\\" \\\\ \\n\",b=\"\",} 3 1700000000000\n"
            "# just a comment\n"
            "# HELP g A gauge.\n# TYPE g gauge\ng NaN\ng{x=\"1\"} +Inf\ng{x=\"2\"} -1.5e3\n"
            "# HELP h A histogram.\n# TYPE h histogram\n"
            "h_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.7\nh_count 2\n")
    m = promparse.parse(text)
    assert m["a_total"].help == "Things, with \\ and \n escapes."
    assert promparse.value(m, "a_total", reason="x \"q\" \\ \n", b="") == 3
    assert promparse.value(m, "g", x="2") == -1500
    assert promparse.value(m, "h_count") == 2
    assert m["h"].type == "histogram"
