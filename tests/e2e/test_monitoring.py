# SPDX-License-Identifier: MIT
"""deploy/monitoring/: the Prometheus Operator objects and their alerts.

- Each object is checked against the shape of its CustomResourceDefinition
  (monitoring.coreos.com/v1: PrometheusRule, ServiceMonitor, PodMonitor),
  strictly: an unknown key or a wrong type fails with its path. The
  checker is shown to bite on planted errors. Core kinds go through
  test_manifests' strict Kubernetes models; the metrics proxy patch is
  applied to the DaemonSet by kubectl (--local) and the result checked the
  same way, with its ports, labels and secret lining up.
- Debian's promtool (prometheus 2.42) checks the rule groups and runs a
  unit test of every alert: given series, it must fire with its labels,
  and stay quiet on a healthy fleet. An alert without a test fails.
- Every metric an expression names exists in a real scrape: nodetrustd
  against a real TLS registry (one registry verified, one mismatched) and
  the aggregator fed a report, both scraped over HTTP.
"""

import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

import peers
import promparse
import test_manifests
from peers import wait_for
from test_aggregator import Aggregator

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
# The patch is not an object: it is applied to the DaemonSet by kubectl.
MONITORING_FILES = sorted(p for p in MONITORING.glob("*.yaml") if not p.name.endswith(".patch.yaml"))
API_VERSION = "monitoring.coreos.com/v1"

# The CRD shapes (prometheus-operator v0.6x, monitoring.coreos.com/v1), for
# the fields deploy/monitoring uses and their siblings an operator may add.
# A dict is an object with exactly these optional keys ("*": any key, of
# that type); [x] a list of x; a type is the scalar's type; a tuple is
# one of those types.
STR, INT, BOOL = str, int, bool
LABEL_SELECTOR = {"matchLabels": {"*": STR},
                  "matchExpressions": [{"key": STR, "operator": STR, "values": [STR]}]}
NAMESPACE_SELECTOR = {"any": BOOL, "matchNames": [STR]}
SECRET_KEY = {"name": STR, "key": STR, "optional": BOOL}
SAFE_TLS = {"ca": {"secret": SECRET_KEY, "configMap": SECRET_KEY},
            "cert": {"secret": SECRET_KEY, "configMap": SECRET_KEY},
            "keySecret": SECRET_KEY, "serverName": STR, "insecureSkipVerify": BOOL}
TLS_CONFIG = dict(SAFE_TLS, caFile=STR, certFile=STR, keyFile=STR)
RELABEL = [{"action": STR, "regex": STR, "replacement": STR, "separator": STR,
            "sourceLabels": [STR], "targetLabel": STR, "modulus": INT}]
AUTHORIZATION = {"type": STR, "credentials": SECRET_KEY, "credentialsFile": STR}
ENDPOINT_COMMON = {"path": STR, "scheme": STR, "interval": STR, "scrapeTimeout": STR,
                   "honorLabels": BOOL, "honorTimestamps": BOOL, "params": {"*": [STR]},
                   "relabelings": RELABEL, "metricRelabelings": RELABEL,
                   "authorization": AUTHORIZATION, "bearerTokenSecret": SECRET_KEY,
                   "followRedirects": BOOL, "enableHttp2": BOOL}
SERVICE_ENDPOINT = dict(ENDPOINT_COMMON, port=STR, targetPort=(STR, INT), tlsConfig=TLS_CONFIG,
                        bearerTokenFile=STR)
POD_ENDPOINT = dict(ENDPOINT_COMMON, port=STR, targetPort=(STR, INT), tlsConfig=SAFE_TLS)
METADATA = {"name": STR, "namespace": STR, "labels": {"*": STR}, "annotations": {"*": STR}}
RULE = {"alert": STR, "record": STR, "expr": (STR, INT), "for": STR,
        "labels": {"*": STR}, "annotations": {"*": STR}}
SPECS = {
    "PrometheusRule": {"groups": [{"name": STR, "interval": STR, "partial_response_strategy": STR,
                                   "rules": [RULE]}]},
    "ServiceMonitor": {"jobLabel": STR, "targetLabels": [STR], "podTargetLabels": [STR],
                       "endpoints": [SERVICE_ENDPOINT], "selector": LABEL_SELECTOR,
                       "namespaceSelector": NAMESPACE_SELECTOR, "sampleLimit": INT},
    "PodMonitor": {"jobLabel": STR, "podTargetLabels": [STR],
                   "podMetricsEndpoints": [POD_ENDPOINT], "selector": LABEL_SELECTOR,
                   "namespaceSelector": NAMESPACE_SELECTOR, "sampleLimit": INT},
}
REQUIRED = {"PrometheusRule": ("groups",), "ServiceMonitor": ("endpoints", "selector"),
            "PodMonitor": ("podMetricsEndpoints", "selector")}


def shape_errors(value, shape, path):
    """Every way value departs from shape, each naming its path."""
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {type(value).__name__}"]
        errors = []
        for k, v in value.items():
            sub = shape.get(k, shape.get("*"))
            if sub is None:
                errors.append(f"{path}.{k}: unknown field")
            else:
                errors += shape_errors(v, sub, f"{path}.{k}")
        return errors
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        return [e for i, v in enumerate(value) for e in shape_errors(v, shape[0], f"{path}[{i}]")]
    types = shape if isinstance(shape, tuple) else (shape,)
    # YAML's bool is an int in Python: an int field must not take a bool.
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        return [f"{path}: expected {'/'.join(t.__name__ for t in types)}, got {type(value).__name__}"]
    return []


def object_errors(obj):
    kind = obj.get("kind")
    if obj.get("apiVersion") != API_VERSION or kind not in SPECS:
        return [f"{obj.get('apiVersion')}/{kind}: not a {API_VERSION} kind deploy/monitoring may hold"]
    errors = [f".{k}: unknown field" for k in obj if k not in ("apiVersion", "kind", "metadata", "spec")]
    errors += shape_errors(obj.get("metadata", {}), METADATA, ".metadata")
    if not obj.get("metadata", {}).get("name"):
        errors.append(".metadata.name: required")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return errors + [".spec: required"]
    errors += shape_errors(spec, SPECS[kind], ".spec")
    errors += [f".spec.{k}: required" for k in REQUIRED[kind] if k not in spec]
    if kind == "PrometheusRule":
        for gi, g in enumerate(spec.get("groups", [])):
            for ri, r in enumerate(g.get("rules", [])):
                if ("alert" in r) == ("record" in r) or "expr" not in r:
                    errors.append(f".spec.groups[{gi}].rules[{ri}]: needs expr and exactly one of alert, record")
    return errors


def load_all():
    out = []
    for path in MONITORING_FILES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                out.append((path.name, doc))
    return out


def rules():
    return [r for _, o in load_all() if o.get("kind") == "PrometheusRule"
            for g in o["spec"]["groups"] for r in g["rules"]]


def test_monitoring_objects_match_their_schemas():
    objs = load_all()
    assert {o["kind"] for _, o in objs} >= {"PrometheusRule", "ServiceMonitor", "Service", "ClusterRole"}
    for name, obj in objs:
        if obj.get("apiVersion") == API_VERSION:
            assert object_errors(obj) == [], f"{name}: {obj['kind']}"
            assert obj["metadata"].get("namespace") == "nodetrust", name
        else:
            # Core kinds: the strict Kubernetes 1.22 models test_manifests uses.
            errors, _ = test_manifests.validate(obj)
            assert errors == [], f"{name}: {obj['kind']}/{obj['metadata']['name']}: {errors}"


def kubectl():
    path = shutil.which("kubectl")
    if not path:
        pytest.fail("kubectl not found: scripts/deps.sh test installs Debian's kubernetes-client", pytrace=False)
    return path


def patched_daemonset():
    """deploy/30-daemonset.yaml with the metrics proxy patch applied by
    kubectl itself (a strategic merge, --local: no server)."""
    r = subprocess.run([kubectl(), "patch", "--local", "-f", str(REPO / "deploy" / "30-daemonset.yaml"),
                        "--type", "strategic", "--patch-file", str(MONITORING / "agents-metrics-proxy.patch.yaml"),
                        "-o", "json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_metrics_proxy_patch_fits_the_daemonset():
    ds = patched_daemonset()
    errors, _ = test_manifests.validate(ds)
    assert errors == [], errors
    pod = ds["spec"]["template"]
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    assert set(containers) == {"nodetrustd", "kube-rbac-proxy"}
    proxy, agent = containers["kube-rbac-proxy"], containers["nodetrustd"]
    # The proxy forwards to where the agent listens, and only /metrics.
    listen = next(a.split("=", 1)[1] for a in agent["args"] if a.startswith("--health-listen="))
    assert f"--upstream=http://{listen}/" in proxy["args"]
    assert "--allow-paths=/metrics" in proxy["args"]
    # The sidecar's projected token is its own; nodetrustd's mounts are
    # unchanged (it has the pod's automounted token, for node status).
    assert not any(m["name"] == "metrics-proxy-token" for m in agent["volumeMounts"])
    assert proxy["securityContext"]["runAsNonRoot"] is True
    # Service -> pod port -> ServiceMonitor line up by name and label.
    objs = {(o["kind"], o["metadata"]["name"]): o for _, o in load_all()}
    svc = objs[("Service", "nodetrust-agent-metrics")]
    smon = objs[("ServiceMonitor", "nodetrustd")]
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    port_names = {p["name"] for p in proxy["ports"]}
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= port_names
    assert {e["port"] for e in smon["spec"]["endpoints"]} <= {p["name"] for p in svc["spec"]["ports"]}
    assert smon["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    secret = next(v for v in pod["spec"]["volumes"] if v["name"] == "metrics-tls")["secret"]["secretName"]
    assert svc["metadata"]["annotations"]["service.beta.openshift.io/serving-cert-secret-name"] == secret


@pytest.mark.parametrize("mutate, expect", [
    (lambda o: o["spec"]["groups"][0]["rules"][0].update(expression="x"), "rules[0].expression: unknown field"),
    (lambda o: o["spec"]["groups"][0]["rules"][0].update({"for": 5}), "rules[0].for: expected str"),
    (lambda o: o["spec"]["groups"][0]["rules"][0].pop("expr"), "needs expr"),
    (lambda o: o["spec"].update(group=[]), ".spec.group: unknown field"),
    (lambda o: o.update(apiVersion="monitoring.coreos.com/v1alpha1"), "not a monitoring.coreos.com/v1 kind"),
])
def test_planted_errors_are_caught(mutate, expect):
    rule_obj = next(o for _, o in load_all() if o.get("kind") == "PrometheusRule")
    broken = json.loads(json.dumps(rule_obj))
    mutate(broken)
    errors = object_errors(broken)
    assert any(expect in e for e in errors), errors


def promtool():
    path = shutil.which("promtool")
    if not path:
        pytest.fail("promtool not found: scripts/deps.sh test installs Debian's prometheus", pytrace=False)
    return path


def write_rule_file(tmp_path, annotations=True):
    """The PrometheusRule's groups as a plain rule file. Without annotations
    for promtool's unit tests, which would compare their rendered text (the
    templates themselves are checked by `promtool check rules`)."""
    groups = [json.loads(json.dumps(g)) for _, o in load_all() if o.get("kind") == "PrometheusRule"
              for g in o["spec"]["groups"]]
    if not annotations:
        for g in groups:
            for r in g["rules"]:
                r.pop("annotations", None)
    path = tmp_path / ("nodetrust.rules.yaml" if annotations else "nodetrust.bare-rules.yaml")
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def test_promtool_checks_the_rules(tmp_path):
    path = write_rule_file(tmp_path)
    r = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(rules())} rules found" in r.stdout, r.stdout


DAY = 86400
# promtool's test clock starts at 0: time() is the evaluation time.
SOON = 5 * DAY
LATER = 20 * DAY
FAR = 400 * DAY


def alert_tests():
    """One case per alert: the series that make it fire and what it says.

    Each case: (alert, series, eval_time, expected labels, healthy series).
    The healthy series must not fire it.
    """
    def s(metric, value):
        return {"series": metric, "values": f"{value}+0x240"}

    return [
        ("NodetrustCACertificateExpiring",
         [s('nodetrust_certificate_not_after_timestamp_seconds{registry="reg.example.com:5000",instance="n1"}', LATER)],
         "2h", {"registry": "reg.example.com:5000", "severity": "warning"},
         [s('nodetrust_certificate_not_after_timestamp_seconds{registry="reg.example.com:5000",instance="n1"}', FAR)]),
        ("NodetrustCACertificateExpiringSoon",
         [s('nodetrust_certificate_not_after_timestamp_seconds{registry="reg.example.com:5000",instance="n1"}', SOON)],
         "1h", {"registry": "reg.example.com:5000", "severity": "critical"},
         [s('nodetrust_certificate_not_after_timestamp_seconds{registry="reg.example.com:5000",instance="n1"}', LATER)]),
        ("NodetrustRegistryCertificateExpiring",
         [s('nodetrust_registry_server_certificate_not_after_timestamp_seconds{registry="reg.example.com:5000",instance="n1"}', LATER)],
         "2h", {"registry": "reg.example.com:5000", "severity": "warning"},
         [s('nodetrust_registry_server_certificate_not_after_timestamp_seconds{registry="reg.example.com:5000",instance="n1"}', FAR)]),
        ("NodetrustRegistryCertificateExpiringSoon",
         [s('nodetrust_registry_server_certificate_not_after_timestamp_seconds{registry="reg.example.com:5000",instance="n1"}', SOON)],
         "1h", {"registry": "reg.example.com:5000", "severity": "critical"},
         [s('nodetrust_registry_server_certificate_not_after_timestamp_seconds{registry="reg.example.com:5000",instance="n1"}', LATER)]),
        ("NodetrustRegistryMismatch",
         [s('nodetrust_registry_verification_state{registry="reg.example.com:5000",state="mismatch",instance="n1"}', 1),
          s('nodetrust_registry_verification_state{registry="reg.example.com:5000",state="mismatch",instance="n2"}', 0)],
         "10m", {"registry": "reg.example.com:5000", "severity": "critical"},
         [s('nodetrust_registry_verification_state{registry="reg.example.com:5000",state="mismatch",instance="n1"}', 0)]),
        ("NodetrustFleetRegistryMismatch",
         [s('nodetrust_aggregator_registry_nodes{registry="reg.example.com:5000",state="mismatch"}', 3)],
         "10m", {"registry": "reg.example.com:5000", "severity": "critical"},
         [s('nodetrust_aggregator_registry_nodes{registry="reg.example.com:5000",state="mismatch"}', 0)]),
        ("NodetrustAgentNotReady",
         [s('nodetrust_ready{instance="n1",job="nodetrust-agents"}', 0)],
         "20m", {"instance": "n1", "job": "nodetrust-agents", "severity": "warning"},
         [s('nodetrust_ready{instance="n1",job="nodetrust-agents"}', 1)]),
        ("NodetrustNodesFailing",
         [s('nodetrust_aggregator_nodes{state="failing"}', 2)],
         "20m", {"severity": "warning"},
         [s('nodetrust_aggregator_nodes{state="failing"}', 0)]),
        ("NodetrustNodesStale",
         [s('nodetrust_aggregator_nodes{state="stale"}', 1)],
         "20m", {"severity": "warning"},
         [s('nodetrust_aggregator_nodes{state="stale"}', 0)]),
        ("NodetrustAggregatorDown",
         [s('up{job="nodetrust-aggregator",instance="a"}', 0)],
         "20m", {"severity": "warning"},
         [s('up{job="nodetrust-aggregator",instance="a"}', 1)]),
    ]


def test_every_alert_has_a_promtool_test():
    assert sorted(r["alert"] for r in rules() if "alert" in r) == sorted(c[0] for c in alert_tests())


@pytest.mark.parametrize("case", alert_tests(), ids=lambda c: c[0])
def test_promtool_fires_each_alert_and_only_when_due(case, tmp_path):
    alert, series, at, labels, healthy = case
    rule_file = write_rule_file(tmp_path, annotations=False)
    rule = next(r for r in rules() if r.get("alert") == alert)
    tests = [
        {"interval": "1m", "input_series": series,
         "alert_rule_test": [{"eval_time": at, "alertname": alert,
                              "exp_alerts": [{"exp_labels": labels}]}]},
        {"interval": "1m", "input_series": healthy,
         "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": []}]},
    ]
    test_file = tmp_path / "test.yaml"
    test_file.write_text(yaml.safe_dump({"rule_files": [str(rule_file)], "evaluation_interval": "1m",
                                         "tests": tests}, sort_keys=False))
    r = subprocess.run([promtool(), "test", "rules", str(test_file)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, f"{alert}:\n{r.stdout}{r.stderr}"
    assert "SUCCESS" in r.stdout, r.stdout
    assert rule["labels"]["severity"] == labels["severity"]


# --------------------------------------------------------------------------
# The names in the expressions exist in real scrapes.

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                "unless", "offset", "min", "max", "sum", "avg", "count", "absent", "time", "rate",
                "increase", "humanizeDuration"}


def metric_names(expr):
    """The metric names an expression selects (identifiers not followed by
    '(' that are not PromQL words or label names inside {...} / by (...))."""
    expr = re.sub(r"\{[^}]*\}", "", expr)              # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        word = m.group(0)
        after = expr[m.end():].lstrip()
        if word in PROMQL_WORDS or after.startswith("("):
            continue
        names.add(word)
    return names


def test_metric_name_extraction():
    assert metric_names('min by (registry) (a_b{x="y"}) - time() < 30 * 86400') == {"a_b"}
    assert metric_names('absent(up{job="j"} == 1)') == {"up"}
    assert metric_names('max(c{state="failing"}) > 0 and on (x) d') == {"c", "d"}


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return promparse.parse(r.read().decode())


@pytest.fixture
def agent_scrape(tmp_path, test_ca, other_ca, server_cert, root, trust_volume, nodetrustd_bin):
    """Families of a real agent's /metrics after one registry verified and
    one mismatched (two registries on 127.0.0.1, both signed by test_ca)."""
    reg = peers.Registry(tmp_path / "registry", *server_cert, ca=test_ca)
    port = peers.free_port()
    with reg:
        trust_volume.update({reg.key_name: test_ca.cert.read_text(),
                             f"127.0.0.1..{reg.port}": other_ca.cert.read_text()})
        agent = peers.Agent(root, trust_volume.path, binary=nodetrustd_bin, workdir=tmp_path,
                            health=f"127.0.0.1:{port}")
        with agent.daemon() as d:
            url = f"http://127.0.0.1:{port}/metrics"

            def both_checked():
                try:
                    fams = scrape(url)
                except OSError:
                    return None
                states = {(labels.get("registry"), labels.get("state")): v
                          for labels, v in promparse.samples(fams, "nodetrust_registry_verification_state")}
                if states.get((reg.host, "verified")) == 1 and \
                        states.get((f"127.0.0.1:{reg.port}", "mismatch")) == 1:
                    return fams
                return None
            return wait_for(both_checked, timeout=30, what="both registries checked"), d


def test_every_agent_metric_an_alert_uses_is_scraped(agent_scrape):
    fams, _ = agent_scrape
    used = {n for r in rules() for n in metric_names(str(r["expr"]))}
    agent_metrics = {n for n in used if n.startswith("nodetrust_") and not n.startswith("nodetrust_aggregator_")}
    assert agent_metrics, used
    missing = sorted(n for n in agent_metrics if not promparse.samples(fams, n))
    assert missing == [], f"alerts use metrics the agent does not export: {missing}"


def test_every_aggregator_metric_an_alert_uses_is_scraped(tmp_path):
    used = {n for r in rules() for n in metric_names(str(r["expr"]))}
    agg_metrics = {n for n in used if n.startswith("nodetrust_aggregator_")}
    assert agg_metrics, used
    now = int(time.time())
    hash_a = "a" * 64
    report = {"schema": 1, "node": "worker-1", "timestamp": now, "interval_seconds": 30,
              "source": {"kind": "dir", "generation": 1, "hash": hash_a}, "applied_hash": hash_a,
              "registries": [{"name": "reg.example.com:5000", "state": "applied", "fingerprint": "f" * 64,
                              "not_after": now + 90 * DAY,
                              "verification": {"state": "mismatch", "reason": "unable to get local issuer certificate",
                                               "issuer": "CN=Other", "server_not_after": now + 60 * DAY,
                                               "checked_at": now}}]}
    with Aggregator(tmp_path / "agg") as agg:
        status, answer = agg.post_report(report)
        assert status == 200, answer
        fams = scrape(agg.url + "/metrics")
    missing = sorted(n for n in agg_metrics if not promparse.samples(fams, n))
    assert missing == [], f"alerts use metrics the aggregator does not export: {missing}"
    mismatch = {labels.get("registry"): v
                for labels, v in promparse.samples(fams, "nodetrust_aggregator_registry_nodes")
                if labels.get("state") == "mismatch"}
    assert mismatch == {"reg.example.com:5000": 1}
