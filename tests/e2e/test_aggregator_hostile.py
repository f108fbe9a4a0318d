# SPDX-License-Identifier: MIT
"""Hostile reports: what a client holding the report token (a compromised
node) can send the aggregator. Each is refused with 400 and the exact
reason, changes nothing the aggregator serves, and leaves it answering;
a report that is legal but strange (a registry name full of quotes and
control bytes, far more registries than are kept) keeps every output
whole: /api/v1/nodes and /api/v1/registries parse as JSON, /metrics with
the strict exposition-format parser, the page is served."""

import json
import time

import pytest

import promparse
from test_aggregator import Aggregator, report, sha

MAX_I64 = 9223372036854775807


def with_fields(**fields):
    return json.dumps({**report("w"), **fields}).encode()


def registry(**fields):
    return json.dumps({**report("w"), "registries": [{"name": "r", "state": "applied", **fields}]}).encode()


BASE = json.dumps(report("w")).encode()

CASES = [
    ("deep nesting", b"[" * 100000, "invalid JSON at line 1 column 2049: maximum parsing depth reached near '['"),
    ("number overflow", BASE.replace(b'"timestamp": ', b'"timestamp": 1e400, "x": '),
     "invalid JSON at line 1 column 71: real number overflow near '1e400'"),
    ("negative timestamp", with_fields(timestamp=-1), f"'timestamp' must be an integer from 0 to {MAX_I64}"),
    ("fractional timestamp", with_fields(timestamp=1.5), f"'timestamp' must be an integer from 0 to {MAX_I64}"),
    ("NUL in a string", with_fields(node="a\u0000b"), "\\u0000 is not allowed"),
    ("bytes that are not UTF-8", BASE.replace(b'"agent_version": "0.1.0"', b'"agent_version": "\xff\xfe"'),
     "unable to decode byte 0xff"),
    ("duplicate key", BASE[:-1] + b', "node": "other"}', "duplicate object key near '\"node\"'"),
    ("registry name too long", registry(name="r" * 10000), "registries[0].name must be a string of 1 to 300 bytes"),
    ("empty registry name", registry(name=""), "registries[0].name must be a string of 1 to 300 bytes"),
    ("schema as a string", with_fields(schema="1"), "'schema' must be 1"),
    ("fingerprint in capitals", registry(fingerprint=sha("x").upper()),
     "registries[0].fingerprint must be 64 lowercase hex digits or null"),
    ("bogus verification state", registry(verification={"state": "bogus"}),
     "registries[0].verification.state must be verified, mismatch or unreachable"),
    ("verification not an object", registry(verification="verified"),
     "registries[0].verification must be an object or null"),
    ("pull secret not an object", with_fields(pull_secret="applied"), "'pull_secret' must be an object"),
    ("node null", with_fields(node=None), "'node' must be a string"),
    ("node with a slash", with_fields(node="a/b"), "node"),
    ("ready as a string", with_fields(ready="true"), "'ready' must be a boolean"),
    ("applied hash not hex", with_fields(applied_hash="zz"), "'applied_hash' must be 64 lowercase hex digits or null"),
    ("error not a string", with_fields(errors=[1]), "errors[0] must be a string"),
    ("negative generation", with_fields(source={"kind": "dir", "generation": -1, "hash": sha("a")}),
     f"'generation' must be an integer from 0 to {MAX_I64}"),
    ("kind not a string", with_fields(source={"kind": 5, "hash": sha("a")}), "'kind' must be a string"),
    ("registries an object", with_fields(registries={"r": "applied"}), "'registries' must be an array"),
    ("registry not an object", with_fields(registries=["r"]), "registries[0] must be an object"),
    ("interval too long", with_fields(interval_seconds=604801), "interval"),
]


@pytest.fixture(scope="module")
def hagg(tmp_path_factory):
    with Aggregator(tmp_path_factory.mktemp("hostile") / "agg", "--interval", "30") as a:
        assert a.post_report(report("w"))[0] == 200
        yield a


@pytest.mark.parametrize("name,body,reason", CASES, ids=[c[0] for c in CASES])
def test_hostile_report_refused_with_its_reason(hagg, name, body, reason):
    before = hagg.nodes()["w"]
    status, answer = hagg.post_report(None, raw=body)
    assert status == 400, (name, status, answer)
    assert reason in answer["error"], (name, answer)
    # Nothing changed, and it still answers.
    after = hagg.nodes()["w"]
    assert {k: v for k, v in after.items() if k != "last_seen"} == \
        {k: v for k, v in before.items() if k != "last_seen"}
    assert hagg.healthy()


def test_oversized_errors_refused_without_reading_them(hagg):
    body = with_fields(errors=["e" * 2000] * 5000)  # 10 MB
    try:
        status, answer = hagg.post_report(None, raw=body)
        assert status == 413, (status, answer)
    except OSError:
        pass  # refused before the upload finished: the connection is closed on us
    assert hagg.healthy()
    assert promparse.value(hagg.metrics(), "nodetrust_aggregator_reports_rejected_total", reason="too_large") >= 1


def test_more_registries_than_are_kept(hagg):
    regs = [{"name": f"r{i}", "state": "applied"} for i in range(5000)]  # under 256 KiB
    status, answer = hagg.post_report(report("many", registries=regs))
    assert status == 200, answer
    node = hagg.nodes()["many"]
    assert node["registries"]["total"] == 5000
    assert node["registries_listed"] == 4096 and node["registries_truncated"] is True
    listed = {x["name"] for x in hagg.get_json("/api/v1/registries")["registries"]}
    assert "r0" in listed and "r4095" in listed and "r4096" not in listed


def test_strange_but_legal_names_keep_every_output_whole(hagg):
    name = "a\"b\\c\nd\u001b}{\u2028<script>"
    r = report("strange", registries=[{
        "name": name, "state": "applied", "fingerprint": sha("x"), "not_after": int(time.time()) + 86400,
        "verification": {"state": "mismatch", "reason": "x\ny\"", "issuer": "CN=\u001b"}}])
    assert hagg.post_report(r)[0] == 200
    assert hagg.nodes()["strange"]["certificates"] == [{"registry": name, "not_after": r["soonest_expiry"]}]
    regs = {x["name"]: x for x in hagg.get_json("/api/v1/registries")["registries"]}
    assert name in regs
    status, headers, body = hagg.request("/metrics")
    assert status == 200
    fams = promparse.parse(body.decode())
    assert promparse.value(fams, "nodetrust_aggregator_registry_nodes", registry=name, state="applied") == 1
    status, _, page = hagg.request("/")
    assert status == 200 and b"<script>alert" not in page
    assert hagg.request("/api/v1/rollout")[0] == 200


def test_wrong_method_and_unknown_paths(hagg):
    assert hagg.request("/api/v1/reports")[0] == 405
    assert hagg.request("/api/v1/summary", method="POST", body=b"{}")[0] == 405
    assert hagg.request("/api/v1/../../etc/passwd")[0] == 404
    assert hagg.request("/api/v1/nodes/%2e%2e%2fetc")[0] == 404
    assert hagg.healthy()
