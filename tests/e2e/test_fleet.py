# SPDX-License-Identifier: MIT
"""The fleet on loopback: one real nodetrust-aggregator and real nodetrustd
agents, each with its own --root, config map volume and --node-name,
reporting every second.

- a config map change reaches every node and all three are converged on the
  aggregator within two report intervals;
- an agent killed with SIGKILL turns stale (no report for 3 intervals) while
  the others stay converged;
- an agent with a wrong token never shows up, and says so in its log without
  printing the token;
- whatever runtime targets the agents report (none, from an older agent),
  the summary and /metrics count them as /api/v1/nodes shows them;
- what the agents prove about a real TLS registry (verified, mismatch)
  is what the aggregator's per-registry view and metrics count.
"""

import contextlib
import json
import signal
import time
import urllib.request

import peers
import promparse
from peers import wait_for
from test_aggregator import Aggregator

INTERVAL = 1  # seconds, for the aggregator and every agent
NODES = ("node-a", "node-b", "node-c")


def fleet_agent(nodetrustd_bin, tmp_path, name, volume, agg, token_file, health="none"):
    return peers.Agent(tmp_path / name / "root", volume.path, binary=nodetrustd_bin,
                       workdir=tmp_path / name, health=health,
                       extra=["--node-name", name, "--report-url", agg.url,
                              "--report-token-file", str(token_file),
                              "--report-interval", str(INTERVAL)])


def states(agg):
    return {name: n["state"] for name, n in agg.nodes().items()}


def effective_trust_consistent(agg):
    """True when the summary's and the metrics' warnings and target counts
    are those of the nodes (not stale) as /api/v1/nodes shows them. The
    agents keep reporting, so the caller retries a moment of disagreement."""
    s = agg.summary()
    nodes = [n for n in agg.nodes().values() if n["state"] != "stale"]
    m = agg.metrics()
    targets = {}
    for n in nodes:
        assert isinstance(n["targets"], dict) and isinstance(n["shadowed"], int), n
        for name, t in n["targets"].items():
            assert t["state"] in ("active", "not_installed", "inactive"), (name, t)
            targets.setdefault(name, {"active": 0, "not_installed": 0, "inactive": 0})[t["state"]] += 1
    shadowed = sum(1 for n in nodes if n["shadowed"] > 0)
    inactive = sum(1 for n in nodes if any(t["state"] == "inactive" for t in n["targets"].values()))
    exposed = {(l["target"], l["state"]): v for l, v in promparse.samples(m, "nodetrust_aggregator_target_nodes")}
    return (s["targets"] == targets and s["shadowed"] == shadowed and s["inactive_target"] == inactive
            and promparse.value(m, "nodetrust_aggregator_nodes_shadowed") == shadowed
            and promparse.value(m, "nodetrust_aggregator_nodes_inactive_target") == inactive
            and exposed == {(t, st): n for t, c in targets.items() for st, n in c.items()})


def test_fleet_converges_goes_stale_and_refuses_bad_token(nodetrustd_bin, tmp_path, test_ca, other_ca,
                                                          report_line):
    with contextlib.ExitStack() as stack:
        agg = stack.enter_context(Aggregator(tmp_path / "agg", "--interval", str(INTERVAL)))

        # Each node's kubelet has its own copy of the same config map.
        volumes = {n: peers.KubeletVolume(tmp_path / n / "trust", {"localhost..5000": test_ca.pem()})
                   for n in NODES}
        daemons = {}
        for i, n in enumerate(NODES):
            # One of them also serves health, as a DaemonSet pod would.
            health = f"127.0.0.1:{peers.free_port()}" if i == 0 else "none"
            a = fleet_agent(nodetrustd_bin, tmp_path, n, volumes[n], agg, agg.token_file, health)
            # node-c is SIGKILLed below: its exit status is the signal's.
            daemons[n] = stack.enter_context(a.daemon(expect_exit=-signal.SIGKILL if n == "node-c" else 0))

        wait_for(lambda: states(agg) == {n: "converged" for n in NODES}, timeout=10,
                 what="three converged nodes")
        first_hash = agg.summary()["current_hash"]
        assert all(n["applied_hash"] == first_hash for n in agg.nodes().values())
        assert all(n["registries"]["applied"] == 1 for n in agg.nodes().values())
        wait_for(lambda: effective_trust_consistent(agg), timeout=5,
                 what="the summary's runtime targets to match the nodes'")
        # A scratch --root has no runtime installed: each agent says so per
        # target, which is normal and no warning; nothing is shadowed.
        for n in agg.nodes().values():
            assert set(n["targets"]) == {"docker", "containers", "containerd"}, n["targets"]
            assert {t["state"] for t in n["targets"].values()} == {"not_installed"}, n["targets"]
            assert n["shadowed"] == 0
        s = agg.summary()
        assert (s["shadowed"], s["inactive_target"]) == (0, 0)
        assert s["targets"]["containerd"] == {"active": 0, "not_installed": 3, "inactive": 0}

        # The config map changes on every node, as the kubelets swap ..data.
        for n in NODES:
            volumes[n].update({"localhost..5000": test_ca.pem(), "other.example.com": other_ca.pem()})
        swapped = time.monotonic()

        def converged_on_new():
            s = agg.summary()
            nodes = agg.nodes()
            return (s["current_hash"] != first_hash and s["counts"]["converged"] == 3
                    and all(nodes[n]["applied_hash"] == s["current_hash"]
                            and nodes[n]["registries"]["applied"] == 2 for n in NODES))
        wait_for(converged_on_new, timeout=2 * INTERVAL, interval=0.02,
                 what="all three converged on the new config map within two intervals")
        report_line(f"fleet: 3 agents converged on the aggregator "
                    f"{(time.monotonic() - swapped) * 1000:.0f} ms after the config map swap "
                    f"(report interval {INTERVAL} s)")

        # One node dies without a word: stale after 3 missed intervals; the
        # others keep reporting and stay converged.
        daemons["node-c"].signal(signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: states(agg).get("node-c") == "stale", timeout=3 * INTERVAL + 5,
                 interval=0.1, what="node-c stale")
        assert time.monotonic() - killed >= 3 * INTERVAL - 0.5
        assert states(agg) == {"node-a": "converged", "node-b": "converged", "node-c": "stale"}
        assert agg.summary()["counts"]["stale"] == 1
        # The stale node's targets are no longer counted.
        wait_for(lambda: effective_trust_consistent(agg), timeout=5,
                 what="the runtime targets of the nodes that are not stale")

        # An agent with a wrong token is refused: it never appears, and its
        # log names the 401 without the token.
        bad_token = "not-the-fleet-token-5e1d"
        bad_file = tmp_path / "bad-token"
        bad_file.write_text(bad_token + "\n")
        bad_volume = peers.KubeletVolume(tmp_path / "node-x" / "trust", {"localhost..5000": test_ca.pem()})
        bad = fleet_agent(nodetrustd_bin, tmp_path, "node-x", bad_volume, agg, bad_file)
        with bad.daemon() as d:
            d.wait_notify("READY=1")
            wait_for(lambda: "401" in d.log(), timeout=5, what="the agent logging the 401")
            time.sleep(2 * INTERVAL)
            assert "node-x" not in agg.nodes()
            log = d.log()
            assert "refused the report token (HTTP 401" in log
            assert bad_token not in log
        assert set(agg.nodes()) == set(NODES)

        # No token ever reaches a log, ours or the aggregator's.
        fleet_token = agg.token_file.read_text().strip()
        for n in NODES:
            assert fleet_token not in daemons[n].log()
        assert fleet_token not in agg.log() and bad_token not in agg.log()


class TlsReportSink:
    """An HTTPS endpoint for reports (the aggregator speaks plain HTTP and
    sits behind a TLS proxy in production): records each POST's path,
    Authorization header and body, answers 200."""

    def __init__(self, cert, key):
        import http.server
        import ssl
        import threading

        sink = self
        self.posts = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.posts.append((self.path, self.headers.get("Authorization"), body))
                out = b'{"state": "converged"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_report_tls_verified_against_report_ca(nodetrustd_bin, tmp_path, test_ca, other_ca, server_cert):
    import json

    sink = TlsReportSink(*server_cert)
    try:
        token_file = tmp_path / "token"
        token_file.write_text("tls-token-42\n")
        volume = peers.KubeletVolume(tmp_path / "trust", {"localhost..5000": test_ca.pem()})

        def agent(name, ca):
            return peers.Agent(tmp_path / name / "root", volume.path, binary=nodetrustd_bin,
                               workdir=tmp_path / name,
                               extra=["--node-name", name, "--report-url", sink.url,
                                      "--report-token-file", str(token_file), "--report-ca", str(ca.cert),
                                      "--report-interval", "1"])

        # The right CA: the report arrives, with the token, over TLS.
        with agent("trusting", test_ca).daemon() as d:
            d.wait_notify("READY=1")
            wait_for(lambda: sink.posts, what="a report over TLS")
        path, auth, body = sink.posts[0]
        assert path == "/api/v1/reports"
        assert auth == "Bearer tls-token-42"
        report = json.loads(body)
        assert report["node"] == "trusting" and report["schema"] == 1

        # Another CA: the server is not trusted, nothing is sent.
        sink.posts.clear()
        with agent("distrusting", other_ca).daemon() as d:
            d.wait_notify("READY=1")
            wait_for(lambda: "Failed to send the report" in d.log(), what="the TLS failure in the log")
            time.sleep(1.5)
            assert not sink.posts
            assert "certificate" in d.log().lower()
            assert "tls-token-42" not in d.log()
    finally:
        sink.close()


def test_fleet_view_whole_again_after_aggregator_restart(nodetrustd_bin, tmp_path, test_ca,
                                                         report_line):
    """The aggregator keeps soft state only: after a restart on the same
    address, the agents' next reports rebuild the whole fleet view."""
    listen = ["--listen", f"127.0.0.1:{peers.free_port()}", "--interval", str(INTERVAL)]
    with contextlib.ExitStack() as stack:
        agg = stack.enter_context(Aggregator(tmp_path / "agg", *listen))
        for n in NODES:
            volume = peers.KubeletVolume(tmp_path / n / "trust", {"localhost..5000": test_ca.pem()})
            stack.enter_context(fleet_agent(nodetrustd_bin, tmp_path, n, volume, agg,
                                            agg.token_file).daemon())
        wait_for(lambda: states(agg) == {n: "converged" for n in NODES}, timeout=10,
                 what="three converged nodes")
        before = agg.summary()["current_hash"]

        agg.stop()
        agg2 = stack.enter_context(Aggregator(tmp_path / "agg2", *listen))
        assert agg2.url == agg.url
        restarted = time.monotonic()
        assert agg2.nodes() == {}  # soft state: nothing survived the restart
        # One interval (+10% jitter), plus one reporter backoff step (1 s) for
        # an agent whose report hit the moment the address was closed.
        wait_for(lambda: states(agg2) == {n: "converged" for n in NODES},
                 timeout=2 * INTERVAL + 0.5, interval=0.02,
                 what="the whole fleet back after the restart")
        report_line(f"fleet: whole again {(time.monotonic() - restarted) * 1000:.0f} ms after "
                    f"an aggregator restart (report interval {INTERVAL} s)")
        assert agg2.summary()["current_hash"] == before


CONTAINERD_V2 = ('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
                 '  config_path = "{path}"\n')


def test_runtime_warnings_reach_every_channel(nodetrustd_bin, tmp_path, test_ca):
    """A containerd that will not read certs.d (node-a) and an admin's
    hosts.toml that shadows our CA (node-b) are said in the journal (stderr
    lines with TARGET=/REASON=), sd_notify STATUS=, the report, and the
    aggregator's summary and nodes: not only in /status."""
    with contextlib.ExitStack() as stack:
        agg = stack.enter_context(Aggregator(tmp_path / "agg", "--interval", str(INTERVAL)))
        cfg = {"node-a": "", "node-b": "/etc/containerd/certs.d"}
        daemons = {}
        for n, path in cfg.items():
            root = tmp_path / n / "root"
            (root / "etc/containerd").mkdir(parents=True)
            (root / "etc/containerd/config.toml").write_text(CONTAINERD_V2.format(path=path))
            vol = peers.KubeletVolume(tmp_path / n / "trust", {"reg.example.com..5000": test_ca.pem()})
            daemons[n] = stack.enter_context(
                fleet_agent(nodetrustd_bin, tmp_path, n, vol, agg, agg.token_file).daemon())
        for d in daemons.values():
            d.wait_notify("READY=1")

        # node-b: an admin replaces our hosts.toml with one that has no ca.
        hosts = tmp_path / "node-b/root/etc/containerd/certs.d/reg.example.com:5000/hosts.toml"
        wait_for(hosts.exists, what="node-b's hosts.toml")
        hosts.write_text('server = "https://reg.example.com:5000"\n'
                         '[host."https://reg.example.com:5000"]\n  capabilities = ["pull"]\n')
        daemons["node-b"].sighup()

        def said(d, *parts):
            return any(all(p in line for p in parts) for line in d.log().splitlines())

        a, b = daemons["node-a"], daemons["node-b"]
        wait_for(lambda: said(a, "Target inactive", "TARGET=containerd", "config_path is not set"),
                 what="node-a's journal line")
        wait_for(lambda: said(b, "Registry CA shadowed", "REGISTRY=reg.example.com:5000", "TARGET=containerd",
                              "no ca entry naming ca.crt"), what="node-b's journal line")
        wait_for(lambda: any(m.startswith("STATUS=") and "containerd inactive: config_path is not set" in m
                             for m in a.notifications), what="node-a's STATUS=")
        wait_for(lambda: any(m.startswith("STATUS=") and "1 shadowed" in m for m in b.notifications),
                 what="node-b's STATUS=")

        def aggregated():
            s, nodes = agg.summary(), agg.nodes()
            return (s["inactive_target"] == 1 and s["shadowed"] == 1
                    and nodes["node-a"]["targets"]["containerd"]["state"] == "inactive"
                    and "config_path" in nodes["node-a"]["targets"]["containerd"]["reason"]
                    and nodes["node-b"]["targets"]["containerd"]["state"] == "active"
                    and nodes["node-b"]["shadowed"] == 1 and nodes["node-a"]["shadowed"] == 0)
        wait_for(aggregated, timeout=10, what="the aggregator's view of both warnings")
        # Warnings, not failures: both nodes stay converged.
        assert states(agg) == {"node-a": "converged", "node-b": "converged"}
        assert hosts.read_text().startswith('server = "https://reg.example.com:5000"\n')


def test_proof_of_trust_reaches_the_fleet_view(nodetrustd_bin, tmp_path, test_ca, other_ca, server_cert):
    """Real agents check a real TLS registry and the aggregator's
    per-registry view counts what they found: two nodes hold the CA that
    signed the registry (verified), one an unrelated CA (mismatch, named
    as needing attention, with its reason on the node's own /status)."""
    reg = peers.Registry(tmp_path / "registry", *server_cert, ca=test_ca)
    good = peers.KubeletVolume(tmp_path / "good-cm", {reg.key_name: test_ca.cert.read_text()})
    bad = peers.KubeletVolume(tmp_path / "bad-cm", {reg.key_name: other_ca.cert.read_text()})
    ports = {name: peers.free_port() for name in NODES}
    with reg, Aggregator(tmp_path / "agg", "--interval", str(INTERVAL)) as agg, contextlib.ExitStack() as stack:
        for name in NODES:
            volume = bad if name == "node-c" else good
            a = fleet_agent(nodetrustd_bin, tmp_path, name, volume, agg, agg.token_file,
                            health=f"127.0.0.1:{ports[name]}")
            stack.enter_context(a.daemon())

        def view():
            regs = {r["name"]: r for r in agg.get_json("/api/v1/registries")["registries"]}
            r = regs.get(reg.host)
            if r and r["counts"]["verified"] == 2 and r["counts"]["mismatch"] == 1:
                return r
            return None
        r = wait_for(view, timeout=30, what="two verified and one mismatch in /api/v1/registries")
        assert r["nodes"] == 3 and r["counts"]["applied"] == 3
        assert [a["node"] for a in r["attention"]] == ["node-c"]
        assert r["attention"][0]["why"] == "mismatch"
        assert sorted(f["nodes"] for f in r["fingerprints"]) == [1, 2]
        assert r["soonest_server_not_after"] > time.time()
        # The node's own /status says why, as OpenSSL put it.
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['node-c']}/status", timeout=10) as resp:
            status = json.loads(resp.read())
        v = next(x for x in status["registries"] if x["name"] == reg.host)["verification"]
        assert v["state"] == "mismatch"
        assert v["reason"] == "unable to get local issuer certificate"
        fams = agg.metrics()
        nodes = {labels["state"]: v for labels, v in promparse.samples(fams, "nodetrust_aggregator_registry_nodes")
                 if labels["registry"] == reg.host}
        assert nodes["verified"] == 2 and nodes["mismatch"] == 1
