# SPDX-License-Identifier: MIT
"""Proof of trust, end to end: the daemon handshakes with real TLS
docker-registry peers on 127.0.0.1 and checks each certificate with exactly
the ca.crt it wrote. Every verdict is cross-checked against what skopeo (Go,
containers/image: what CRI-O and podman run) decides for the same files, in
a private mount namespace, never the real /etc.
"""

import os
import re
import subprocess
import time

import pytest

import peers
import promparse
import runtimes
from peers import wait_for

CHECK_TIMEOUT = 20.0  # a first check comes within 5 s of a change; handshakes take ms


def verification(port, key):
    return runtimes.registry_status(runtimes.status(port), key).get("verification") or {}


def wait_verdict(port, key, state, timeout=CHECK_TIMEOUT, after=0):
    """Wait until key's verdict is state (checked after `after`); return it."""
    def check():
        v = verification(port, key)
        return v if v.get("state") == state and (v.get("checked_at") or 0) >= after else None
    try:
        return wait_for(check, timeout, interval=0.1, what=f"{key} {state}")
    except AssertionError as e:
        raise AssertionError(f"{e}; now {verification(port, key)}") from None


def verdict_lines(log, registry):
    return [line for line in log.splitlines()
            if "VERIFICATION=" in line and f"REGISTRY={registry} " in line]


def readyz(port):
    return runtimes.http_get(port, "/readyz")[0]


def skopeo_ok(root, host):
    """Does skopeo (Go) trust host with the ca.crt the agent wrote?"""
    rc, _, err = peers.skopeo_inspect(f"docker://{host}/test/tiny:latest", root,
                                      which="containers")
    assert rc == 0 or peers.is_x509_failure(err), err
    return rc == 0


def fams(port):
    return runtimes.metrics(port)


def test_right_and_wrong_ca_and_logged_once(nodetrustd_bin, root, trust_volume, tmp_path,
                                             registry, test_ca, other_ca):
    """One registry under two names: `localhost` with the CA that signed
    it (verified), `127.0.0.1` with an unrelated CA (mismatch, OpenSSL's
    reason, the issuer the server presented). Frequent rechecks log nothing
    new; readiness never depends on a verdict; skopeo agrees."""
    good, bad = f"localhost:{registry.port}", f"127.0.0.1:{registry.port}"
    trust_volume.update({f"localhost..{registry.port}": test_ca.pem().decode(),
                         f"127.0.0.1..{registry.port}": other_ca.pem().decode()})
    a = runtimes.health_agent(nodetrustd_bin, root, trust_volume.path, tmp_path,
                              "--verify-interval", "2")
    with a.daemon() as d:
        d.wait_notify("READY=1")
        v = wait_verdict(a.port, f"localhost..{registry.port}", "verified")
        assert v["reason"] is None and v["issuer"] == "CN=nodetrust-test-ca"
        assert v["server_not_after"] > time.time() and v["checked_at"] > 0
        m = wait_verdict(a.port, f"127.0.0.1..{registry.port}", "mismatch")
        assert m["reason"] == "unable to get local issuer certificate"
        assert m["issuer"] == "CN=nodetrust-test-ca"
        assert readyz(a.port) == 200

        f = fams(a.port)
        assert promparse.value(f, "nodetrust_registry_verified", registry=good) == 1
        assert promparse.value(f, "nodetrust_registry_verified", registry=bad) == 0
        assert promparse.value(f, "nodetrust_registry_verification_state", registry=bad, state="mismatch") == 1
        for st in ("verified", "unreachable", "not_checked"):
            assert promparse.value(f, "nodetrust_registry_verification_state", registry=bad, state=st) == 0
        assert promparse.value(f, "nodetrust_registry_server_certificate_not_after_timestamp_seconds",
                               registry=good) == v["server_not_after"]

        # At least two more checks of each (every 2 s +-10%): the same
        # verdicts, and still one journal line per registry.
        wait_verdict(a.port, f"127.0.0.1..{registry.port}", "mismatch", after=m["checked_at"] + 3)
        wait_verdict(a.port, f"localhost..{registry.port}", "verified", after=v["checked_at"] + 3)
        log = d.log()
        assert len(verdict_lines(log, good)) == 1, log
        (line,) = verdict_lines(log, bad)
        assert "VERIFICATION=mismatch" in line
        assert "REASON=unable to get local issuer certificate" in line
        assert "ISSUER=CN=nodetrust-test-ca" in line

    # What the runtime decides with the same files.
    assert skopeo_ok(root, good) is True
    assert skopeo_ok(root, bad) is False


@pytest.fixture
def chained(tmp_path, pki, tiny_image):
    """A root and an intermediate; registry `full` presents leaf +
    intermediate, registry `bare` the leaf alone. Both have test/tiny."""
    d = tmp_path / "chain-pki"
    root = peers.make_ca(d, "chain-root")
    inter = peers.make_intermediate_ca(root, d, "chain-intermediate")
    both = peers.chain_file(d / "root-and-intermediate.crt", root.cert, inter.cert)
    regs = {}
    for name in ("full", "bare"):
        leaf = peers.make_server_cert(inter, d / name)
        cert = peers.chain_file(d / f"{name}-served.crt", leaf.cert,
                                *([inter.cert] if name == "full" else []))
        regs[name] = peers.Registry(tmp_path / f"reg-{name}", cert, leaf.key).start()
    try:
        for reg in regs.values():
            peers.push_image(reg, both, tiny_image)
        yield root, inter, regs
    finally:
        for reg in regs.values():
            reg.stop()


def test_partial_chains_agree_with_skopeo(nodetrustd_bin, root, trust_volume, tmp_path, chained):
    """Bundles that are not a root: a pinned leaf, an intermediate, and a
    root-only bundle for a server that leaves its intermediate out. The
    verdict is what OpenSSL says with PARTIAL_CHAIN, and skopeo agrees on
    every one."""
    ca_root, inter, regs = chained
    full, bare = regs["full"], regs["bare"]
    full_leaf_pem = full.cert.read_text().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    cases = {
        # key host: (bundle, expected verdict, expected reason)
        f"localhost:{full.port}": (full_leaf_pem, "verified", None),
        f"127.0.0.1:{full.port}": (ca_root.pem().decode(), "verified", None),
        f"localhost:{bare.port}": (ca_root.pem().decode(), "mismatch", "unable to get local issuer certificate"),
        f"127.0.0.1:{bare.port}": (inter.pem().decode(), "verified", None),
    }
    trust_volume.update({h.replace(":", ".."): b for h, (b, _, _) in cases.items()})
    a = runtimes.health_agent(nodetrustd_bin, root, trust_volume.path, tmp_path)
    with a.daemon() as d:
        d.wait_notify("READY=1")
        got = {}
        for host, (_, state, reason) in cases.items():
            v = wait_verdict(a.port, host.replace(":", ".."), state)
            assert v["reason"] == reason, (host, v)
            assert v["issuer"] == "CN=chain-intermediate", (host, v)
            got[host] = state
        assert readyz(a.port) == 200
    for host, state in got.items():
        assert skopeo_ok(root, host) == (state == "verified"), host


def test_stopped_registry_is_unreachable_not_unready(nodetrustd_bin, root, trust_volume, tmp_path,
                                                     registry, test_ca):
    """A registry that goes down is unreachable, with the connection's
    error; /readyz stays 200; when it comes back it is verified again."""
    key = registry.key_name
    trust_volume.update({key: test_ca.pem().decode()})
    a = runtimes.health_agent(nodetrustd_bin, root, trust_volume.path, tmp_path,
                              "--verify-interval", "2", "--verify-timeout", "2")
    with a.daemon() as d:
        d.wait_notify("READY=1")
        wait_verdict(a.port, key, "verified")
        registry.stop()
        v = wait_verdict(a.port, key, "unreachable")
        assert v["reason"] == "connect: Connection refused"
        assert v["issuer"] is None and v["server_not_after"] is None
        assert readyz(a.port) == 200
        st = runtimes.status(a.port)
        assert st["ready"] is True and st["last_sync_ok"] is True
        f = fams(a.port)
        assert promparse.value(f, "nodetrust_registry_verification_state", registry=registry.host,
                               state="unreachable") == 1
        assert promparse.value(f, "nodetrust_registry_verified", registry=registry.host) == 0
        assert not promparse.samples(f, "nodetrust_registry_server_certificate_not_after_timestamp_seconds")
        registry.start()
        wait_verdict(a.port, key, "verified")
        states = [re.search(r"VERIFICATION=(\w+)", line).group(1)
                  for line in verdict_lines(d.log(), registry.host)]
        assert states == ["verified", "unreachable", "verified"], d.log()


def test_ca_rotation_turns_mismatch_into_verified(nodetrustd_bin, root, trust_volume, tmp_path,
                                                  registry, test_ca, other_ca):
    """The registry moves to a certificate from a new CA while the config
    map still holds the old one: mismatch. The config map is rotated: the
    new bundle is checked soon after it is written, at the default 6 h
    interval, and verified."""
    key = registry.key_name
    trust_volume.update({key: test_ca.pem().decode()})
    new_cert = peers.make_server_cert(other_ca, tmp_path / "rotated")
    registry.restart(cert=new_cert.cert, key=new_cert.key)
    a = runtimes.health_agent(nodetrustd_bin, root, trust_volume.path, tmp_path)
    with a.daemon() as d:
        d.wait_notify("READY=1")
        m = wait_verdict(a.port, key, "mismatch")
        assert m["issuer"] == "CN=nodetrust-other-ca"
        old_fp = runtimes.registry_status(runtimes.status(a.port), key)["fingerprint"]
        trust_volume.update({key: other_ca.pem().decode()})
        start = time.monotonic()
        v = wait_verdict(a.port, key, "verified")
        elapsed = time.monotonic() - start
        assert elapsed < 10, elapsed
        # The verdict is the new bundle's.
        assert runtimes.registry_status(runtimes.status(a.port), key)["fingerprint"] != old_fp
        assert v["issuer"] == "CN=nodetrust-other-ca"
        assert promparse.value(fams(a.port), "nodetrust_registry_verified", registry=registry.host) == 1
        states = [re.search(r"VERIFICATION=(\w+)", line).group(1)
                  for line in verdict_lines(d.log(), registry.host)]
        assert states == ["mismatch", "verified"], d.log()
    assert skopeo_ok(root, registry.host) is True


def test_disabled_and_once_check_nothing(nodetrustd_bin, root, trust_volume, tmp_path, registry, test_ca):
    """--verify-interval 0: every registry not_checked, no handshake;
    --once verifies nothing either and exits at once."""
    key = registry.key_name
    trust_volume.update({key: test_ca.pem().decode()})
    a = runtimes.health_agent(nodetrustd_bin, root, trust_volume.path, tmp_path,
                              "--verify-interval", "0")
    with a.daemon() as d:
        d.wait_notify("READY=1")
        time.sleep(1)
        v = verification(a.port, key)
        assert v == {"state": "not_checked", "reason": None, "issuer": None,
                     "server_not_after": None, "checked_at": None}
        assert promparse.value(fams(a.port), "nodetrust_registry_verification_state",
                               registry=registry.host, state="not_checked") == 1
        assert not verdict_lines(d.log(), registry.host)
    p = peers.Agent(root, trust_volume.path, binary=nodetrustd_bin, workdir=tmp_path).run_once()
    assert p.returncode == 0, p.stderr
    assert "VERIFICATION=" not in p.stderr


BLACKHOLE_DNS = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("127.0.0.1", 53))
t.listen(16)
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:   # read every query, answer none
    s.settimeout(0.2)
    try:
        s.recv(4096)
    except OSError:
        pass
"""

STALL_PROBE = r"""
set -eu
ip link set lo up
printf 'nameserver 127.0.0.1\noptions timeout:30 attempts:1\n' > "$WORK/resolv.conf"
mount --bind "$WORK/resolv.conf" /etc/resolv.conf
python3 -c "$DNS" 25 > "$WORK/dns.out" &
while ! grep -q ready "$WORK/dns.out" 2>/dev/null; do sleep 0.05; done
"$AGENT" --root "$ROOT" --trust-source "$TRUST" --health-listen 127.0.0.1:9447 \
    --verify-interval 3 --verify-timeout 2 2> "$WORK/agent.err" &
agent=$!
max=0
end=$(( $(date +%s) + 14 ))
while [ "$(date +%s)" -lt "$end" ]; do
    t=$(curl -s -o /dev/null -m 10 -w '%{time_total}' http://127.0.0.1:9447/healthz || echo 10)
    max=$(python3 -c "print(max($max, $t))")
    sleep 0.1
done
kill "$agent"; wait "$agent" || true
echo "max_healthz_seconds=$max"
"""


def test_a_silent_name_server_never_stalls_the_loop(nodetrustd_bin, root, trust_volume, tmp_path, test_ca):
    """A registry whose name the DNS never answers: each check gives up
    after --verify-timeout as unreachable, and the loop keeps answering
    /healthz at once meanwhile (libcurl must not wait for its resolver
    thread). In a private network and mount namespace: loopback only, a
    name server on 127.0.0.1 that reads every query and answers none."""
    trust_volume.update({"blackhole.example.com": test_ca.cert.read_text()})
    env = dict(os.environ, WORK=str(tmp_path), AGENT=str(nodetrustd_bin), ROOT=str(root),
               TRUST=str(trust_volume.path), DNS=BLACKHOLE_DNS)
    r = subprocess.run(["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", STALL_PROBE],
                       env=env, capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    worst = float(re.search(r"max_healthz_seconds=([0-9.]+)", r.stdout).group(1))
    log = (tmp_path / "agent.err").read_text()
    # Checked (and given up on) several times while we watched.
    assert "REGISTRY=blackhole.example.com VERIFICATION=unreachable" in log, log
    assert worst < 1.0, f"/healthz took {worst:.2f} s while a check was resolving:\n{log}"
