# SPDX-License-Identifier: MIT
"""The cluster sees each node's trust the Kubernetes way (issue 10).

nodetrustd runs on the stand-in API server (kubeapi.py) as test_kube.py
runs it, and keeps the RegistryTrustReady condition on its node's status,
with an Event for each change, as node-problem-detector does. The tests
drive changes through the API, with kubectl where the stand-in speaks what
kubectl sends (`kubectl apply` of config maps), and read every result back
with the real kubectl (1.32 here, Debian's 1.20 on a fresh machine: the
commands used work with both).

The bad registry is deterministic without TLS verification: a key whose
directory an administrator already holds (a conflict), or a value that is
not a certificate (refused). Those tests turn verification off (their
registries resolve nowhere); one test turns it on against a real TLS
docker-registry and drives the condition by a verification mismatch.
"""

import json
import os
import shutil
import subprocess
import time

import pytest

import peers
from kubeapi import KubeAPI
from peers import wait_for

NS = "openshift-config"
NODE = "node-1"
COND = "RegistryTrustReady"
HEARTBEAT = 1
GOOD = "good.example.com..5000"
ADMIN = "admin.example.com"
EVENT_BURST = 5  # NODE_EVENT_BURST: then one per minute

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None,
                                reason="no kubectl (scripts/deps.sh test installs it)")


class Kubectl:
    """The real kubectl against the stand-in, with its own cache and HOME."""

    def __init__(self, api, tmp_path):
        self.kubeconfig = api.write_kubeconfig(str(tmp_path / "kubectl.kubeconfig"))
        self.home = tmp_path / "kubectl-home"
        self.home.mkdir()

    def __call__(self, *args, input=None, check=True):
        env = dict(os.environ, HOME=str(self.home))
        env.pop("KUBECONFIG", None)
        p = subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig,
                            "--cache-dir", str(self.home / "cache"), *args],
                           input=input, capture_output=True, text=True, timeout=60, env=env)
        if check:
            assert p.returncode == 0, f"kubectl {' '.join(args)} failed:\n{p.stderr}"
        return p.stdout

    def condition(self, field="status"):
        return self("get", "node", NODE, "-o",
                    f'jsonpath={{.status.conditions[?(@.type=="{COND}")].{field}}}')

    def node(self):
        return json.loads(self("get", "node", NODE, "-o", "json"))

    def events(self):
        """Our events about the node, oldest first."""
        items = json.loads(self("get", "events", "-n", "default", "-o", "json"))["items"]
        ours = [e for e in items if e["involvedObject"]["name"] == NODE
                and e["source"]["component"] == "nodetrustd"]
        return sorted(ours, key=lambda e: int(e["metadata"]["resourceVersion"]))

    def apply_configmap(self, name, data):
        """Create or update a config map the declarative way."""
        doc = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": NS}, "data": data}
        # --validate=false: the stand-in serves no OpenAPI document.
        self("apply", "--validate=false", "-f", "-", input=json.dumps(doc))


@pytest.fixture
def kube(tmp_path):
    api = KubeAPI(str(tmp_path / "kubeapi"), token="token-1", bookmark_interval=0.5).start()
    api.set_node(NODE)
    yield api
    api.stop()


@pytest.fixture
def kubectl(kube, tmp_path):
    return Kubectl(kube, tmp_path)


# Verification off (it is on by default, the first check within 5 s): the
# registries here have names that resolve nowhere, so a check would add
# "; unreachable: ..." to the condition's message at a moment of its own
# and the exact message checks would fail or pass by timing (test_kube.py
# turns it off for the same reason). A real mismatch has its own test,
# test_verification_mismatch_drives_the_condition, against a real registry.
NO_VERIFY = ("--verify-interval", "0")


def make_agent(kube, root, tmp_path, nodetrustd_bin, extra=(), verify=NO_VERIFY):
    kc = kube.write_kubeconfig(str(tmp_path / "agent.kubeconfig"))
    return peers.Agent(root, binary=nodetrustd_bin, workdir=tmp_path,
                       extra=["--kubeconfig", kc, "--kube-watch-timeout", "3", "--node-name", NODE,
                              "--node-status-heartbeat", str(HEARTBEAT), "--log-level", "debug",
                              *verify, *extra])


@pytest.fixture
def kagent(kube, root, tmp_path, nodetrustd_bin):
    return make_agent(kube, root, tmp_path, nodetrustd_bin)


def wait_condition(kube, status, reason=None, contains=None, timeout=15):
    """Wait (reading the stand-in directly, which is quick) for the condition."""
    def check():
        c = kube.node_condition(NODE, COND)
        if c and c["status"] == status and (reason is None or c["reason"] == reason) and \
                (contains is None or contains in c["message"]):
            return c
        return None
    return wait_for(check, timeout, interval=0.02,
                    what=f"{COND}={status}{' ' + reason if reason else ''}{' with ' + contains if contains else ''}")


def admin_entry(root):
    """An administrator's own CA for admin.example.com, in the docker target."""
    d = root / "etc/docker/certs.d" / ADMIN
    d.mkdir(parents=True)
    (d / "ca.crt").write_text("admin's own\n")


def setup_cluster(kube, test_ca, data=None):
    kube.set_image_config("registry-cas")
    kube.set_configmap(NS, "registry-cas", data if data is not None else {GOOD: test_ca.pem().decode()})
    kube.set_pull_secret({"auths": {}})


# --------------------------------------------------------------------------

def test_condition_true_false_true_seen_with_kubectl(kube, kubectl, kagent, root, test_ca):
    """True with every registry applied; a kubectl apply that adds a key
    colliding with an administrator's directory makes it False, naming the
    registry; applying the map without it makes it True again. One event
    per change, each naming the node by uid, Normal or Warning."""
    admin_entry(root)
    setup_cluster(kube, test_ca)
    good = test_ca.pem().decode()
    started = time.time()
    with kagent.daemon() as d:
        d.wait_notify("READY=1")
        wait_condition(kube, "True")
        assert kubectl.condition() == "True", d.log()
        assert kubectl.condition("reason") == "RegistriesTrusted"
        assert kubectl.condition("message") == "All 1 registry trusted"
        # A strategic merge by type: the kubelet's Ready condition is untouched.
        node = kubectl.node()
        assert [c["type"] for c in node["status"]["conditions"]] == ["Ready", COND]

        kubectl.apply_configmap("registry-cas", {GOOD: good, ADMIN: good})
        wait_condition(kube, "False")
        assert kubectl.condition() == "False"
        assert kubectl.condition("reason") == "RegistryNotTrusted"
        assert kubectl.condition("message") == f"1 registry not trusted: {ADMIN} (conflict)"
        false_since = kubectl.condition("lastTransitionTime")

        kubectl.apply_configmap("registry-cas", {GOOD: good})
        wait_condition(kube, "True")
        assert kubectl.condition() == "True"
        assert kubectl.condition("lastTransitionTime") >= false_since
        # The admin's entry was never touched.
        assert (root / "etc/docker/certs.d" / ADMIN / "ca.crt").read_text() == "admin's own\n"

        events = wait_for(lambda: (lambda e: e if len(e) == 3 else None)(kubectl.events()), 10,
                          interval=0.2, what="three events")
        assert [e["reason"] for e in events] == ["RegistriesTrusted", "RegistryNotTrusted", "RegistriesTrusted"]
        assert [e["type"] for e in events] == ["Normal", "Warning", "Normal"]
        assert ADMIN in events[1]["message"]
        uid = node["metadata"]["uid"]
        for e in events:
            assert e["involvedObject"] == {"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": uid}
            assert e["metadata"]["namespace"] == "default"
            assert e["source"] == {"component": "nodetrustd", "host": NODE}
            assert e["reportingComponent"] == "nodetrustd" and e["reportingInstance"] == NODE
            assert e["count"] == 1 and e["firstTimestamp"] == e["lastTimestamp"]
            assert e["firstTimestamp"] >= time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started - 1))
    # Every write but kubectl's config maps was one of the two the RBAC grants.
    writes = {(r["method"], r["path"]) for r in kube.requests if r["method"] != "GET"}
    assert {w for w in writes if "/configmaps" not in w[1]} == {
        ("PATCH", f"/api/v1/nodes/{NODE}/status"), ("POST", "/api/v1/namespaces/default/events")}
    patches = [r for r in kube.requests if r["method"] == "PATCH" and r["path"].endswith("/status")]
    assert all(r["content_type"] == "application/strategic-merge-patch+json" for r in patches)


def test_verification_mismatch_drives_the_condition(kube, kubectl, root, tmp_path, nodetrustd_bin,
                                                    registry, test_ca, other_ca):
    """Verification on, against a real TLS docker-registry on 127.0.0.1
    (signed by test_ca): the registry's key with an unrelated CA's PEM
    (kubectl apply) makes the condition False, reason RegistryMismatch,
    naming the registry, once the first check has run; applying test_ca's
    PEM makes it True, RegistriesTrusted, after a check that verified it.
    Each change is one event: Warning, then Normal."""
    setup_cluster(kube, test_ca, data={})
    # A long interval: only the first check of each new bundle (within 5 s
    # of it) happens during the test.
    agent = make_agent(kube, root, tmp_path, nodetrustd_bin, verify=("--verify-interval", "3600"))
    with agent.daemon() as d:
        d.wait_notify("READY=1")
        wait_condition(kube, "True")
        assert kubectl.condition("message") == "No registries configured", d.log()

        kubectl.apply_configmap("registry-cas", {registry.key_name: other_ca.pem().decode()})
        wait_condition(kube, "False", "RegistryMismatch", timeout=20)
        assert kubectl.condition() == "False", d.log()
        assert kubectl.condition("reason") == "RegistryMismatch"
        assert kubectl.condition("message") == f"1 registry not trusted: {registry.host} (mismatch)"
        # The CA was written: it is the handshake that says no.
        assert (root / "etc/docker/certs.d" / registry.host / "ca.crt").read_bytes() == other_ca.pem()

        kubectl.apply_configmap("registry-cas", {registry.key_name: test_ca.pem().decode()})
        wait_condition(kube, "True", "RegistriesTrusted", timeout=20)
        # True because the new CA was checked and verified, not merely
        # because its check has not run yet.
        wait_for(lambda: any("VERIFICATION=verified" in line and f"REGISTRY={registry.host} " in line
                             for line in d.log().splitlines()), 20, interval=0.1,
                 what=f"{registry.host} verified")
        assert kubectl.condition() == "True"
        assert kubectl.condition("reason") == "RegistriesTrusted"
        assert kubectl.condition("message") == "All 1 registry trusted", d.log()

        events = wait_for(lambda: (lambda e: e if len(e) == 3 else None)(kubectl.events()), 10,
                          interval=0.2, what="three events")
        # The first True (no registries), the mismatch, the fix.
        assert [(e["type"], e["reason"]) for e in events] == [
            ("Normal", "RegistriesTrusted"), ("Warning", "RegistryMismatch"), ("Normal", "RegistriesTrusted")]
        assert events[1]["message"] == f"1 registry not trusted: {registry.host} (mismatch)"
        assert events[2]["message"] == "All 1 registry trusted"
        time.sleep(1)
        assert len(kubectl.events()) == 3, d.log()


def test_heartbeat_advances_without_an_event(kube, kubectl, kagent, test_ca):
    """Every heartbeat re-patches lastHeartbeatTime; lastTransitionTime and
    the events stay as they are."""
    setup_cluster(kube, test_ca)
    with kagent.daemon() as d:
        d.wait_notify("READY=1")
        wait_condition(kube, "True")
        wait_for(lambda: len(kubectl.events()) == 1, 10, interval=0.2, what="the first event")
        first_beat = kubectl.condition("lastHeartbeatTime")
        since = kubectl.condition("lastTransitionTime")
        # Times are whole seconds: wait for two more of them.
        wait_for(lambda: kubectl.condition("lastHeartbeatTime") >=
                 time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 0.5))
                 and kubectl.condition("lastHeartbeatTime") > first_beat, 10, interval=0.3,
                 what="a newer lastHeartbeatTime")
        time.sleep(2 * HEARTBEAT)
        assert kubectl.condition("lastHeartbeatTime") > first_beat
        assert kubectl.condition("lastTransitionTime") == since
        assert kubectl.condition() == "True"
        assert len(kubectl.events()) == 1, d.log()
        patches = [r for r in kube.requests if r["method"] == "PATCH" and r["path"].endswith("/status")]
        # A read, the first patch and at least two heartbeats, not a storm.
        assert 4 <= len(patches) <= 4 + 6 * 2 / HEARTBEAT, len(patches)


def test_flapping_is_rate_limited(kube, kubectl, kagent, test_ca):
    """A registry that comes and goes faster than anyone should watch:
    every change reaches the condition, but events stop at the burst."""
    setup_cluster(kube, test_ca)
    good = test_ca.pem().decode()
    with kagent.daemon() as d:
        d.wait_notify("READY=1")
        started = time.monotonic()
        wait_condition(kube, "True")
        for i in range(4):
            kube.set_configmap(NS, "registry-cas", {GOOD: good, "flap.example.com": "not a certificate"})
            wait_condition(kube, "False", "RegistryNotTrusted", "flap.example.com (refused)")
            kube.set_configmap(NS, "registry-cas", {GOOD: good})
            wait_condition(kube, "True")
        assert kubectl.condition() == "True"
        time.sleep(1)
        events = kubectl.events()
        elapsed = time.monotonic() - started
        # 9 changes (the first True, then 4 flaps of two): the burst, and
        # one more per minute at most.
        assert EVENT_BURST <= len(events) <= EVENT_BURST + int(elapsed // 60), (len(events), elapsed)
        assert [e["reason"] for e in events[:EVENT_BURST]] == [
            "RegistriesTrusted", "RegistryNotTrusted", "RegistriesTrusted", "RegistryNotTrusted",
            "RegistriesTrusted"]
        assert "more than 5 changes" in d.log()


def test_restart_keeps_transition_time_and_sends_no_event(kube, kubectl, kagent, test_ca):
    """A new agent process reads the condition the last one left (the
    PATCH of {} answers with the node): same status, so the same
    lastTransitionTime and no new event."""
    setup_cluster(kube, test_ca)
    with kagent.daemon() as d:
        d.wait_notify("READY=1")
        wait_condition(kube, "True")
        wait_for(lambda: len(kubectl.events()) == 1, 10, interval=0.2, what="the first event")
    since = kubectl.condition("lastTransitionTime")
    time.sleep(1.1)
    with kagent.daemon() as d:
        d.wait_notify("READY=1")
        beat = kubectl.condition("lastHeartbeatTime")
        wait_for(lambda: kubectl.condition("lastHeartbeatTime") > beat, 10, interval=0.2,
                 what="a heartbeat from the new process")
        assert kubectl.condition("lastTransitionTime") == since
        assert len(kubectl.events()) == 1, d.log()


def test_directory_source_with_node_status_kubeconfig(kube, kubectl, root, tmp_path, nodetrustd_bin,
                                                      trust_volume, test_ca):
    """The DaemonSet's way: trust from a mounted volume, API credentials for
    node status alone. A refused key makes it False; fixing it, True."""
    kc = kube.write_kubeconfig(str(tmp_path / "node-status.kubeconfig"))
    trust_volume.update({GOOD: test_ca.pem().decode(), "bad.example.com": "garbage"})
    agent = peers.Agent(root, trust_volume.path, binary=nodetrustd_bin, workdir=tmp_path,
                        extra=["--node-name", NODE, "--node-status-kubeconfig", kc,
                               "--node-status-heartbeat", "60",
                               *NO_VERIFY])  # its registries resolve nowhere either
    with agent.daemon() as d:
        d.wait_notify("READY=1")
        wait_condition(kube, "False", "RegistryNotTrusted", "bad.example.com (refused)")
        assert kubectl.condition("message") == "1 registry not trusted: bad.example.com (refused)"
        trust_volume.update({GOOD: test_ca.pem().decode()})
        wait_condition(kube, "True")
        assert kubectl.condition("reason") == "RegistriesTrusted", d.log()
    # Only node status talked to the API: no list or watch of anything.
    assert not [r for r in kube.requests if r["method"] == "GET" and r["auth"] == "Bearer token-1"
                and "/nodes/" not in r["path"] and "/events" not in r["path"]
                and r["path"] not in ("/api", "/apis", "/api/v1", "/version")
                and not r["path"].startswith("/apis/config.openshift.io/v1")
                and "configmaps" not in r["path"] and "events" not in r["path"]]


def test_api_failures_back_off_and_recover(kube, root, tmp_path, nodetrustd_bin, test_ca):
    """Refused writes are retried with a growing delay, never in a hot loop,
    and the condition arrives once the API takes it. (The backoff is capped
    at the heartbeat interval: a longer heartbeat here.)"""
    setup_cluster(kube, test_ca)
    kube.fail_next_writes(4, code=503)
    agent = make_agent(kube, root, tmp_path, nodetrustd_bin, extra=["--node-status-heartbeat", "60"])
    with agent.daemon() as d:
        d.wait_notify("READY=1")
        wait_condition(kube, "True", timeout=30)
        patches = [r for r in kube.requests if r["method"] == "PATCH"]
        failed = [r for r in patches if r["result"] == 503]
        assert len(failed) == 4
        gaps = [b["time"] - a["time"] for a, b in zip(failed, failed[1:] + [patches[len(failed)]])]
        # Equal jitter: at least half of 1, 2, 4, 8 s.
        assert all(g >= 0.5 * 2 ** i - 0.05 for i, g in enumerate(gaps)), gaps
        assert "check its RBAC" not in d.log()


def test_node_status_off_and_missing_node(kube, root, tmp_path, nodetrustd_bin, test_ca):
    """--node-status off sends nothing; a node name the API does not know
    is a warning, not a failure of the agent."""
    setup_cluster(kube, test_ca)
    agent = make_agent(kube, root, tmp_path, nodetrustd_bin, extra=["--node-status", "off"])
    with agent.daemon() as d:
        d.wait_notify("READY=1")
        time.sleep(1)
    assert not [r for r in kube.requests if r["method"] != "GET"]

    agent = make_agent(kube, root, tmp_path, nodetrustd_bin, extra=["--node-name", "no-such-node"])
    with agent.daemon() as d:
        d.wait_notify("READY=1")
        wait_for(lambda: "does not exist in the API" in d.log(), 10, what="the warning")
    assert kube.node_condition(NODE, COND) is None


def test_node_status_usage_errors(tmp_path, nodetrustd_bin):
    run = lambda *a: subprocess.run([nodetrustd_bin, *map(str, a)], capture_output=True, text=True, timeout=10)
    p = run("--trust-source", tmp_path, "--node-status", "on")
    assert p.returncode == 2 and "needs API credentials" in p.stderr
    p = run("--kubeconfig", tmp_path / "kc", "--node-status-in-cluster")
    assert p.returncode == 2 and "API source's credentials" in p.stderr
    p = run("--trust-source", tmp_path, "--node-status", "sometimes")
    assert p.returncode == 2 and "--node-status" in p.stderr
    p = run("--help")
    for flag in ("--node-status ", "--node-status-kubeconfig", "--node-status-in-cluster", "--node-status-heartbeat"):
        assert flag in p.stdout, flag


def test_answer_that_is_no_node_keeps_the_transition_time(kube, kagent, test_ca):
    """The read of the node answered with something that is no Node: it
    was taken for "no condition on the node", and the next patch moved
    lastTransitionTime to now although the status never changed. Now the
    agent asks again (with backoff) and keeps the node's time."""
    since = "2026-01-02T03:04:05Z"
    kube.set_node(NODE, conditions=[{"type": COND, "status": "True", "reason": "RegistriesTrusted",
                                     "message": "All 1 registry trusted", "lastHeartbeatTime": since,
                                     "lastTransitionTime": since}])
    setup_cluster(kube, test_ca)
    kube.bogus_next_patches(2, {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": NODE}})
    with kagent.daemon() as d:
        d.wait_notify("READY=1")
        wait_for(lambda: kube.node_condition(NODE, COND)["lastHeartbeatTime"] != since, 20,
                 interval=0.05, what="a heartbeat patch after the bogus answers")
        c = kube.node_condition(NODE, COND)
        assert c["status"] == "True" and c["lastTransitionTime"] == since, (c, d.log())
        assert "is not a Node; asking again with backoff" in d.log()


def test_node_status_kubeconfig_is_read_again(kube, root, tmp_path, nodetrustd_bin, trust_volume, test_ca):
    """The node-status kubeconfig changes to name another API server (a
    cluster moved, a CA rotated): the next patch goes there, without a
    restart, as the API source's own client does."""
    other = KubeAPI(str(tmp_path / "kubeapi-2"), token="token-1").start()
    try:
        other.set_node(NODE)
        kc = tmp_path / "node-status.kubeconfig"
        kube.write_kubeconfig(str(kc))
        trust_volume.update({GOOD: test_ca.pem().decode()})
        agent = peers.Agent(root, trust_volume.path, binary=nodetrustd_bin, workdir=tmp_path,
                            extra=["--node-name", NODE, "--node-status-kubeconfig", str(kc),
                                   "--node-status-heartbeat", "60", *NO_VERIFY])
        with agent.daemon() as d:
            d.wait_notify("READY=1")
            wait_condition(kube, "True")
            new = tmp_path / "node-status.kubeconfig.new"
            other.write_kubeconfig(str(new))
            os.rename(new, kc)
            trust_volume.update({GOOD: test_ca.pem().decode(), "bad.example.com": "garbage"})
            wait_condition(other, "False", "RegistryNotTrusted", "bad.example.com (refused)")
            assert kube.node_condition(NODE, COND)["status"] == "True"
            assert "Kubernetes client configuration changed, loaded again" in d.log()
    finally:
        other.stop()
