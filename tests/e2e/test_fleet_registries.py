# SPDX-License-Identifier: MIT
"""The per-registry view and the rollout picture, end to end: the real
nodetrust-aggregator on 127.0.0.1, simulated nodes posting reports with a
`verification` per registry (docs/report-format.md, "Proof of trust").

- /api/v1/registries counts are what /api/v1/nodes (and each node's
  registry_details) imply, and /metrics says the same;
- after a config change the rollout series grows by one point as each node
  first reports the new hash applied, and the old rollout is kept;
- a verification of the wrong type is refused with 400 naming the field;
- the page shows the per-registry table with those counts and draws the
  rollout as an SVG, saved as build/test-output/fleet-registries.png.
"""

import json
import subprocess
import time

import pytest

import promparse
from test_aggregator import (BROWSER_DIR, HASH_NEW, HASH_OLD, REPO_ROOT, Aggregator, _browser_ready, report,
                             sha, wait_for)

SCREENSHOT = REPO_ROOT / "build" / "test-output" / "fleet-registries.png"
NODES = [f"node-{i:02d}" for i in range(1, 9)]
REG_A = "registry.example.com:5000"
REG_B = "mirror.example.com"
REG_C = "legacy.example.com:443"
FP_NEW, FP_OLD = sha("bundle v2"), sha("bundle v1")
REGISTRY_STATES = ("applied", "refused", "conflict", "failed", "shadowed")
VERIFICATION_STATES = ("verified", "mismatch", "unreachable", "not_checked")
ATTENTION = {"mismatch", "failed", "conflict", "shadowed"}


def verification(state, server_not_after=None, reason=None):
    v = {"state": state, "checked_at": int(time.time()), "issuer": "CN=Example Registry CA"}
    if server_not_after is not None:
        v["server_not_after"] = server_not_after
    if reason is not None:
        v["reason"] = reason
    return v


def registries_of(i, applied_new):
    """What node i (1-based) reports: every node has REG_A (node 6 with the
    old bundle, node 4 failing the TLS check, node 5 not reaching it, node 8
    not checked yet); REG_B on all but node 7 (lacking), shadowed on node 2;
    REG_C only on node 3, in conflict."""
    now = int(time.time())
    a = {"name": REG_A, "key": "registry.example.com..5000", "state": "applied",
         "fingerprint": FP_OLD if i == 6 or not applied_new else FP_NEW, "not_after": now + (300 + i) * 86400}
    if i == 4:
        a["verification"] = verification("mismatch", now + 20 * 86400, "unable to get local issuer certificate")
    elif i == 5:
        a["verification"] = verification("unreachable", reason="Connection refused")
    elif i != 8:
        a["verification"] = verification("verified", now + (40 + i) * 86400)
    regs = [a]
    if i != 7:
        b = {"name": REG_B, "state": "shadowed" if i == 2 else "applied", "fingerprint": FP_NEW,
             "not_after": now + 500 * 86400, "verification": verification("verified", now + 90 * 86400)}
        if i == 2:
            b["targets"] = {"containerd": {"state": "shadowed", "reason": "hosts.toml not ours"}}
        regs.append(b)
    if i == 3:
        regs.append({"name": REG_C, "state": "conflict", "reason": "an admin's ca.crt is there"})
    return regs


def post(agg, i, source, applied, applied_new=True):
    st, body = agg.post_report(report(NODES[i - 1], source, applied, registries=registries_of(i, applied_new)))
    assert st == 200, body


def implied_by_nodes(agg):
    """The per-registry counts, computed the long way: every node not stale
    from /api/v1/nodes, each one's registries from /api/v1/nodes/NAME."""
    nodes = [n for n in agg.nodes().values() if n["state"] != "stale"]
    details = {n["name"]: agg.get_json(f"/api/v1/nodes/{n['name']}") for n in nodes}
    names = sorted({r["name"] for d in details.values() for r in d["registry_details"]})
    out = {}
    for name in names:
        counts = dict.fromkeys(REGISTRY_STATES + VERIFICATION_STATES + ("lacking",), 0)
        fps, attention, listed = {}, [], 0
        for node in sorted(details):
            d = details[node]
            mine = [r for r in d["registry_details"] if r["name"] == name]
            if not mine:
                if not d["registries_truncated"]:
                    counts["lacking"] += 1
                    attention.append(node)
                continue
            r, = mine
            listed += 1
            counts[r["state"]] += 1
            counts[r["verification"]] += 1
            if r["fingerprint"]:
                fps[r["fingerprint"]] = fps.get(r["fingerprint"], 0) + 1
            if r["verification"] == "mismatch" or r["state"] in ATTENTION:
                attention.append(node)
        server = [r["server_not_after"] for d in details.values() for r in d["registry_details"]
                  if r["name"] == name and r["server_not_after"] is not None]
        out[name] = {"nodes": listed, "counts": counts, "fingerprints": fps, "attention": attention,
                     "soonest_server_not_after": min(server) if server else None}
    return len(nodes), out


def check_registries_agree(agg):
    n_nodes, implied = implied_by_nodes(agg)
    d = agg.get_json("/api/v1/registries")
    assert d["nodes"] == n_nodes
    assert d["registries_omitted"] == 0 and d["registries_total"] == len(d["registries"])
    got = {g["name"]: g for g in d["registries"]}
    assert sorted(got) == sorted(implied) == [g["name"] for g in d["registries"]]
    for name, want in implied.items():
        g = got[name]
        assert g["nodes"] == want["nodes"], name
        assert g["counts"] == want["counts"], (name, g["counts"], want["counts"])
        assert {f["fingerprint"]: f["nodes"] for f in g["fingerprints"]} == want["fingerprints"], name
        assert g["fingerprints_total"] == len(want["fingerprints"])
        assert [a["node"] for a in g["attention"]] == want["attention"][:20], name
        assert g["attention_total"] == len(want["attention"])
        assert g["soonest_server_not_after"] == want["soonest_server_not_after"]
        # Each node is counted once per state family.
        assert sum(g["counts"][s] for s in REGISTRY_STATES) == g["nodes"]
        assert sum(g["counts"][s] for s in VERIFICATION_STATES) == g["nodes"]
        assert g["nodes"] + g["counts"]["lacking"] == n_nodes
    # The sums agree with the per-node counts of /api/v1/nodes too.
    nodes = [n for n in agg.nodes().values() if n["state"] != "stale"]
    for s in REGISTRY_STATES:
        assert sum(g["counts"][s] for g in got.values()) == sum(n["registries"][s] for n in nodes), s
    for s in VERIFICATION_STATES:
        assert sum(g["counts"][s] for g in got.values()) == sum(n["verification"][s] for n in nodes), s
    return got


def check_metrics_agree(agg, got, rollout):
    m = agg.metrics()
    exposed = {(l["registry"], l["state"]): v for l, v in promparse.samples(m, "nodetrust_aggregator_registry_nodes")}
    want = {(name, s): g["counts"][s] for name, g in got.items()
            for s in ("applied", "verified", "mismatch", "unreachable", "lacking")}
    assert exposed == want
    expiry = {l["registry"]: v for l, v in promparse.samples(
        m, "nodetrust_aggregator_registry_server_certificate_expiry_soonest_timestamp_seconds")}
    assert expiry == {name: g["soonest_server_not_after"] for name, g in got.items()
                      if g["soonest_server_not_after"] is not None}
    assert promparse.value(m, "nodetrust_aggregator_rollout_converged_nodes") == rollout["current"]["converged"]
    assert promparse.value(m, "nodetrust_aggregator_rollout_started_timestamp_seconds") == \
        rollout["current"]["started"]


def roll_out(agg, pause=0.0):
    """Every node on the old config, then the new one reaches them one by
    one: each reports the new source first (not applied yet), then applied.
    Returns the rollout answers seen after each node converged."""
    for i in range(1, len(NODES) + 1):
        post(agg, i, HASH_OLD, HASH_OLD, applied_new=False)
    seen = []
    for i in range(1, len(NODES) + 1):
        post(agg, i, HASH_NEW, HASH_OLD, applied_new=False)
        time.sleep(pause)
        if i == len(NODES):
            break  # the last node is left lagging
        post(agg, i, HASH_NEW, HASH_NEW)
        seen.append(agg.get_json("/api/v1/rollout"))
    return seen


@pytest.fixture
def agg(tmp_path):
    with Aggregator(tmp_path / "agg", "--interval", "30") as a:
        yield a


def test_registries_and_rollout(agg):
    assert agg.get_json("/api/v1/rollout")["current"] is None
    assert agg.get_json("/api/v1/registries")["registries"] == []

    seen = roll_out(agg)

    # The series grows by one point per converging node, and counts up.
    for k, r in enumerate(seen, 1):
        cur = r["current"]
        assert cur["hash"] == HASH_NEW
        assert cur["converged"] == k and len(cur["points"]) == k
        assert [p["converged"] for p in cur["points"]] == list(range(1, k + 1))
        assert all(cur["started"] <= p["at"] <= r["generated_at"] for p in cur["points"])
        assert cur["ended"] is None and cur["nodes"] == len(NODES)
    rollout = agg.get_json("/api/v1/rollout")
    # The old config's rollout is kept: every node applied it.
    prev, = rollout["previous"]
    assert prev["hash"] == HASH_OLD and prev["converged"] == len(NODES) and prev["ended"] is not None
    assert prev["ended"] == rollout["current"]["started"]
    summary = agg.summary()
    assert summary["counts"]["converged"] == len(NODES) - 1 == rollout["current"]["converged"]
    assert summary["current_hash_since"] == rollout["current"]["started"]

    got = check_registries_agree(agg)
    # And what the scenario says, spelled out.
    a, b, c = got[REG_A], got[REG_B], got[REG_C]
    assert a["counts"]["applied"] == 8 and a["counts"]["verified"] == 5
    assert a["counts"]["mismatch"] == 1 and a["counts"]["unreachable"] == 1
    assert a["counts"]["not_checked"] == 1 and a["counts"]["lacking"] == 0
    # node-08 is still on the old bundle (it has not applied yet), like node-06.
    assert {f["fingerprint"]: f["nodes"] for f in a["fingerprints"]} == {FP_NEW: 6, FP_OLD: 2}
    assert a["fingerprints"][0]["fingerprint"] == FP_NEW
    assert a["attention"] == [{"node": "node-04", "why": "mismatch"}]
    assert b["counts"]["lacking"] == 1 and b["counts"]["shadowed"] == 1 and b["counts"]["applied"] == 6
    assert b["attention"] == [{"node": "node-02", "why": "shadowed"}, {"node": "node-07", "why": "lacking"}]
    assert c["nodes"] == 1 and c["counts"]["lacking"] == 7 and c["attention_total"] == 8
    assert c["attention"][0] == {"node": "node-01", "why": "lacking"}
    assert {"node": "node-03", "why": "conflict"} in c["attention"]
    assert c["soonest_not_after"] is None and c["soonest_server_not_after"] is None
    check_metrics_agree(agg, got, rollout)

    # The last node converges: one more point.
    post(agg, 8, HASH_NEW, HASH_NEW)
    cur = agg.get_json("/api/v1/rollout")["current"]
    assert cur["converged"] == len(NODES) == len(cur["points"])
    got = check_registries_agree(agg)
    assert {f["fingerprint"]: f["nodes"] for f in got[REG_A]["fingerprints"]} == {FP_NEW: 7, FP_OLD: 1}
    check_metrics_agree(agg, got, agg.get_json("/api/v1/rollout"))

    # The read APIs are GET only, like the others.
    assert agg.request("/api/v1/registries", method="POST", body=b"")[0] == 405
    assert agg.request("/api/v1/rollout", method="DELETE")[0] == 405


@pytest.mark.parametrize("bad, field", [
    ({"verification": "verified"}, "registries[0].verification"),
    ({"verification": {"state": "not_checked"}}, "registries[0].verification.state"),
    ({"verification": {"state": "verified", "server_not_after": "2030-01-01"}},
     "registries[0].verification.server_not_after"),
    ({"verification": {"state": "mismatch", "reason": 42}}, "registries[0].verification.reason"),
    ({"verification": {"state": "verified", "issuer": {"CN": "x"}}}, "registries[0].verification.issuer"),
    ({"verification": {"state": "verified", "checked_at": "now"}}, "registries[0].verification.checked_at"),
    ({"fingerprint": 12}, "registries[0].fingerprint"),
])
def test_bad_verification_refused(agg, bad, field):
    reg = {"name": REG_A, "state": "applied", "fingerprint": FP_NEW, **bad}
    st, body = agg.post_report(report("node-x", registries=[reg]))
    assert st == 400, body
    assert field in body["error"], body
    assert agg.nodes() == {}
    # Unknown members are ignored, as everywhere in a report.
    reg = {"name": REG_A, "state": "applied", "verification": {"state": "verified", "later": {"x": 1}}, "new": 1}
    assert agg.post_report(report("node-x", registries=[reg]))[0] == 200


def test_page_registries_and_rollout(tmp_path):
    node = _browser_ready()
    with Aggregator(tmp_path / "agg", "--interval", "30") as agg:
        # Spread over a few seconds, so the picture has steps to draw.
        roll_out(agg, pause=0.6)
        rollout = agg.get_json("/api/v1/rollout")
        regs = {g["name"]: g for g in agg.get_json("/api/v1/registries")["registries"]}

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        if SCREENSHOT.exists():
            SCREENSHOT.unlink()
        p = subprocess.run([node, str(BROWSER_DIR / "screenshot.js"), agg.url + "/", str(SCREENSHOT)],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, f"browser script failed:\n{p.stdout}\n{p.stderr}"
        seen = json.loads(p.stdout.strip().splitlines()[-1])

    print(f"screenshot: {SCREENSHOT}")
    assert seen["problems"] == [], seen["problems"]
    assert not seen["banner_shown"]

    rows = {r["registry"]: r for r in seen["registries"]}
    assert sorted(rows) == sorted(regs)
    for name, g in regs.items():
        r = rows[name]
        assert r["Registry"] == name
        for col, key in (("Applied", "applied"), ("Verified", "verified"), ("Mismatch", "mismatch"),
                         ("Unreachable", "unreachable"), ("Lacking", "lacking")):
            assert int(r[col]) == g["counts"][key], (name, col, r, g)
        assert r["attention"] == [a["node"] + a["why"] for a in g["attention"][:6]]
        if g["attention_total"] > 6:
            assert r["Needs attention"].endswith(f"+{g['attention_total'] - 6} more")
        for f in g["fingerprints"]:
            assert f"{f['fingerprint'][:12]} \u00d7{f['nodes']}" in r["Fingerprints"]
    assert "not checked" in rows[REG_C]["Server cert"]
    assert rows[REG_A]["Server cert"].startswith(
        time.strftime("%Y-%m-%d", time.gmtime(regs[REG_A]["soonest_server_not_after"])))

    svg = seen["rollout"]
    assert svg is not None, "no rollout SVG drawn"
    cur = rollout["current"]
    assert svg["points"] == len(cur["points"]) == len(NODES) - 1
    curves = [p for p in svg["paths"] if p["cls"] == "curve current"]
    assert len(curves) == 1 and curves[0]["d"].startswith("M") and curves[0]["d"].count("V") == len(cur["points"])
    # The old rollout, in grey beside it.
    assert [p["cls"] for p in svg["paths"]].count("curve previous") == 1
    assert svg["label"] == f"{cur['converged']} of {cur['nodes']} nodes converged"
    assert seen["scripts"] == 1 and seen["images"] == 0
    data = SCREENSHOT.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000
