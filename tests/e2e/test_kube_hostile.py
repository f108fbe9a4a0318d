# SPDX-License-Identifier: MIT
"""The API server's answers are input too (issue 13, class 8).

The stand-in of kubeapi.py answers as a broken or malicious server would:
objects of another kind, fields of the wrong type, a secret of another
type, lists of another kind, resourceVersions that are not ones, a burst of
changes; and the kubeconfig changes under the running agent. Each case
asserts the exact outcome: the files stay as the last good input left them,
/readyz and /status say why (naming the object and the field), and the
agent recovers by itself once the server behaves again.
"""

import base64
import json
import time
import urllib.request

import pytest

import peers
from kubeapi import DELETE, IMAGES, make_ca
from peers import ca_path, wait_for
from test_kube import (NS, TARGETS, kagent, kube, make_agent, pem, readyz,  # noqa: F401 (fixtures)
                       setup_cluster, wait_ready, wait_written, written)

CM = ("v1", NS, "configmaps")
SECRETS = ("v1", NS, "secrets")
AUTHS = {"registry.example.com:5000": {"auth": "dXNlcjpwYXNz"}}


def status(agent):
    with urllib.request.urlopen(f"http://127.0.0.1:{agent.port}/status", timeout=2) as r:
        return json.loads(r.read())


def syncs(agent):
    with urllib.request.urlopen(f"http://127.0.0.1:{agent.port}/metrics", timeout=2) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("nodetrust_syncs_total "):
                return int(float(line.split()[1]))
    raise AssertionError("no nodetrust_syncs_total in /metrics")


def snapshot(root):
    """Every file under the certificate directories, with its content."""
    out = {}
    for t in TARGETS:
        d = ca_path(root, t, "x").parent.parent
        if d.exists():
            for f in sorted(d.rglob("*")):
                if f.is_file():
                    out[str(f.relative_to(root))] = f.read_bytes()
    return out


def wait_refused(agent, reason):
    """Not ready, /readyz and /status both naming the reason."""
    text = wait_ready(agent, False, contains=reason)
    assert reason in status(agent)["not_ready_reason"], status(agent)
    return text


def started(kube, kagent, root, test_ca, d):
    d.wait_notify("READY=1")
    wait_written(root, "a.example.com", test_ca)
    wait_ready(kagent)
    return snapshot(root)


def pull_target(root):
    return root / "var/lib/kubelet/config.json"


# --------------------------------------------------------------------------
# Objects of the wrong kind or with fields of the wrong type: the last good
# stays, health names the field, a good object heals it.

IMAGE_NAMES = [
    (42, "spec.additionalTrustedCA.name is a number, not a string"),
    (["registry-cas"], "spec.additionalTrustedCA.name is an array, not a string"),
    ({"name": "registry-cas"}, "spec.additionalTrustedCA.name is an object, not a string"),
    (True, "spec.additionalTrustedCA.name is a boolean, not a string"),
    ("Not/A/Name", "spec.additionalTrustedCA.name 'Not/A/Name' is not a valid config map name"),
]


@pytest.mark.parametrize("name,reason", IMAGE_NAMES, ids=["number", "array", "object", "bool", "invalid"])
def test_image_name_of_wrong_type_keeps_trust(kube, kagent, root, test_ca, other_ca, name, reason):
    """A name that is not a string was read as "no config map": every CA
    removed while /readyz said ready."""
    setup_cluster(kube, data={"a.example.com": pem(test_ca)})
    with kagent.daemon() as d:
        before = started(kube, kagent, root, test_ca, d)
        kube.put(IMAGES, "cluster", {"spec": {"additionalTrustedCA": {"name": name}}})
        wait_refused(kagent, f"image cluster: {reason}; keeping the last good one")
        time.sleep(0.5)
        assert snapshot(root) == before
        # Still following the last good map: its changes still apply.
        kube.set_configmap(NS, "registry-cas", {"a.example.com": pem(other_ca)})
        wait_written(root, "a.example.com", other_ca)
        kube.set_image_config("registry-cas")
        wait_ready(kagent)


def test_additional_trusted_ca_not_an_object(kube, kagent, root, test_ca):
    setup_cluster(kube, data={"a.example.com": pem(test_ca)})
    with kagent.daemon() as d:
        before = started(kube, kagent, root, test_ca, d)
        kube.put(IMAGES, "cluster", {"spec": {"additionalTrustedCA": "registry-cas"}})
        wait_refused(kagent, "image cluster: spec.additionalTrustedCA is a string, not an object")
        assert snapshot(root) == before
        kube.set_image_config("registry-cas")
        wait_ready(kagent)
        assert snapshot(root) == before


CONFIGMAPS = [
    ({"kind": "Secret"}, 'configmap openshift-config/registry-cas: kind is "Secret", not "ConfigMap"'),
    ({"apiVersion": "v2"}, 'configmap openshift-config/registry-cas: apiVersion is "v2", not "v1"'),
    ({"data": {"b.example.com": 5}}, "configmap openshift-config/registry-cas: data.b.example.com is a number, not a string"),
    ({"data": ["a.example.com"]}, "configmap openshift-config/registry-cas: data is an array, not an object"),
    ({"binaryData": {"b.example.com": "***"}}, "configmap openshift-config/registry-cas: binaryData.b.example.com is not base64"),
]


@pytest.mark.parametrize("override,reason", CONFIGMAPS, ids=["kind", "apiversion", "value", "data", "binary"])
def test_bad_config_map_keeps_last_good(kube, kagent, root, test_ca, other_ca, override, reason):
    """An object of another kind was taken for the config map, and pruned
    every registry it did not have."""
    setup_cluster(kube, data={"a.example.com": pem(test_ca)})
    with kagent.daemon() as d:
        before = started(kube, kagent, root, test_ca, d)
        kube.put(CM, "registry-cas", {"data": {"c.example.com": pem(other_ca)}}, override=override)
        wait_refused(kagent, reason + "; keeping the last good one")
        time.sleep(0.5)
        assert snapshot(root) == before
        assert not ca_path(root, "docker", "c.example.com").parent.exists()
        kube.set_configmap(NS, "registry-cas", {"a.example.com": pem(other_ca)})
        wait_written(root, "a.example.com", other_ca)
        wait_ready(kagent)


def test_the_current_error_not_a_stale_one(kube, kagent, root, test_ca):
    setup_cluster(kube, data={"a.example.com": pem(test_ca)})
    with kagent.daemon() as d:
        before = started(kube, kagent, root, test_ca, d)
        kube.put(CM, "registry-cas", {"data": {"a.example.com": 1}})
        wait_refused(kagent, "data.a.example.com is a number")
        kube.put(CM, "registry-cas", {"data": {}}, override={"kind": "Pod"})
        text = wait_refused(kagent, 'kind is "Pod", not "ConfigMap"')
        assert "data.a.example.com" not in text
        assert "data.a.example.com" not in status(kagent)["not_ready_reason"]
        kube.set_configmap(NS, "registry-cas", {"a.example.com": pem(test_ca)})
        wait_ready(kagent)
        assert status(kagent)["not_ready_reason"] is None
        assert snapshot(root) == before


# --------------------------------------------------------------------------
# The pull secret must be of type kubernetes.io/dockerconfigjson.

def test_pull_secret_of_wrong_type_is_not_written(kube, kagent, root, test_ca):
    setup_cluster(kube, data={"a.example.com": pem(test_ca)})
    kube.set_pull_secret({"auths": AUTHS})
    with kagent.daemon() as d:
        started(kube, kagent, root, test_ca, d)
        wait_for(lambda: pull_target(root).exists(), what="config.json")
        good = pull_target(root).read_bytes()
        evil = json.dumps({"auths": {"evil.example.com": {"auth": "ZXZpbDpldmls"}}}).encode()
        kube.put(SECRETS, "pull-secret", {"type": "Opaque", "data": {".dockerconfigjson": base64.b64encode(evil).decode()}})
        wait_refused(kagent, 'secret openshift-config/pull-secret: type is "Opaque", not '
                             '"kubernetes.io/dockerconfigjson"; keeping the last good one')
        time.sleep(0.5)
        assert pull_target(root).read_bytes() == good
        kube.set_pull_secret({"auths": AUTHS})
        wait_ready(kagent)


def test_pull_secret_without_type_at_start(kube, root, tmp_path, nodetrustd_bin, test_ca):
    """Never good from the start: nothing is written from it, and it is an
    invalid secret (exit 1, naming the object and the field); the trust
    map applies all the same, as with the directory source (it used to
    fail the whole read: no CA either)."""
    setup_cluster(kube, data={"a.example.com": pem(test_ca)})
    kube.set_pull_secret({"auths": AUTHS})
    kube.put(SECRETS, "pull-secret", kube.get(SECRETS, "pull-secret"), override={"type": DELETE})
    agent = make_agent(kube, root, tmp_path, nodetrustd_bin)
    p = peers.Agent(root, binary=nodetrustd_bin, workdir=tmp_path,
                    extra=["--kubeconfig", str(tmp_path / "kubeconfig")]).run_once()
    assert p.returncode == 1, p.stderr
    assert ('secret openshift-config/pull-secret: type is missing, not the string '
            '"kubernetes.io/dockerconfigjson"; nothing taken from it yet') in p.stderr
    assert not pull_target(root).exists()
    assert written(root, "a.example.com") is not None
    del agent


def test_image_of_wrong_type_at_start_prunes_nothing(kube, root, tmp_path, nodetrustd_bin, test_ca):
    """The agent restarts while image.config is broken: what it wrote
    before stays (before, the map counted as none and everything went)."""
    setup_cluster(kube, data={"a.example.com": pem(test_ca)})
    agent = make_agent(kube, root, tmp_path, nodetrustd_bin)
    once = peers.Agent(root, binary=nodetrustd_bin, workdir=tmp_path,
                       extra=["--kubeconfig", str(tmp_path / "kubeconfig")])
    assert once.run_once().returncode == 0
    before = snapshot(root)
    assert written(root, "a.example.com") == [test_ca.der()]
    kube.put(IMAGES, "cluster", {"spec": {"additionalTrustedCA": {"name": 7}}})
    p = once.run_once()
    assert p.returncode == 3, p.stderr
    assert "image cluster: spec.additionalTrustedCA.name is a number, not a string" in p.stderr
    assert snapshot(root) == before
    # The daemon says the same on /readyz until the server behaves.
    with agent.daemon():
        wait_refused(agent, "Failed to read the source: image cluster: spec.additionalTrustedCA.name is a number")
        kube.set_image_config("registry-cas")
        wait_ready(agent)
    assert snapshot(root) == before


# --------------------------------------------------------------------------
# Lists and bookmarks that are not what they must be: the watch relists,
# with backoff, and heals when the server does.

LISTS = [
    # Whichever watch says it first: not "ImageList" or not "ConfigMapList".
    ({"kind": "SecretList"}, 'kind is "SecretList", not "'),
    ({"metadata": {"resourceVersion": "12&watch=0"}},
     "the list's metadata.resourceVersion is not a valid resourceVersion"),
    ({"metadata": {"resourceVersion": 12}},
     "the list's metadata.resourceVersion is missing or not a string"),
    ({"items": {"registry-cas": {}}}, "the list's items is an object, not an array"),
]


@pytest.mark.parametrize("override,reason", LISTS, ids=["kind", "rv", "rv-number", "items"])
def test_bad_list_relists_until_good(kube, kagent, root, test_ca, other_ca, override, reason):
    setup_cluster(kube, data={"a.example.com": pem(test_ca)})
    with kagent.daemon() as d:
        before = started(kube, kagent, root, test_ca, d)
        kube.set_list_override(override)
        kube.compact()  # every watch must relist now
        kube.drop_connections()
        wait_refused(kagent, reason)
        kube.set_configmap(NS, "registry-cas", {"a.example.com": pem(other_ca)})
        time.sleep(0.5)
        assert snapshot(root) == before
        kube.set_list_override(None)
        wait_written(root, "a.example.com", other_ca, timeout=15)
        wait_ready(kagent, timeout=15)


@pytest.mark.parametrize("rv", ["1 2", "99&x=1", 99], ids=["space", "ampersand", "number"])
def test_bad_bookmark_does_not_wedge(kube, kagent, root, test_ca, other_ca, rv):
    """A bookmark's resourceVersion that cannot be sent back was stored, and
    every later watch failed to build its URL: wedged until a restart."""
    setup_cluster(kube, data={"a.example.com": pem(test_ca)})
    with kagent.daemon() as d:
        started(kube, kagent, root, test_ca, d)
        kube.set_bookmark_rv(rv)
        wait_refused(kagent, "unparseable watch event")
        kube.set_bookmark_rv(None)
        kube.set_configmap(NS, "registry-cas", {"a.example.com": pem(other_ca)})
        wait_written(root, "a.example.com", other_ca, timeout=15)
        wait_ready(kagent, timeout=15)
        assert "cannot build the request URL" not in d.log()


# --------------------------------------------------------------------------
# A burst of changes is a few syncs, not one per change.

def test_burst_of_changes_is_coalesced(kube, kagent, root, test_ca, other_ca):
    setup_cluster(kube, data={"a.example.com": pem(test_ca)})
    with kagent.daemon() as d:
        started(kube, kagent, root, test_ca, d)
        time.sleep(0.5)
        n0 = syncs(kagent)
        took = kube.burst(50, NS, "registry-cas",
                          lambda i: {"a.example.com": pem(test_ca), f"b{i}.example.com": pem(other_ca)})
        assert took < 0.1, f"the burst took {took:.3f} s"
        wait_written(root, "b49.example.com", other_ca)
        time.sleep(0.6)
        n = syncs(kagent) - n0
        assert 1 <= n <= 5, f"{n} syncs for 50 changes"
        assert not ca_path(root, "docker", "b48.example.com").parent.exists()
        wait_ready(kagent)


def test_stream_of_changes_is_rate_limited(kube, kagent, root, test_ca, other_ca):
    """A change every 20 ms for a second (a controller rewriting the map in
    a loop) ran a full sync for nearly every one of them."""
    setup_cluster(kube, data={"a.example.com": pem(test_ca)})
    with kagent.daemon() as d:
        started(kube, kagent, root, test_ca, d)
        time.sleep(0.5)
        n0 = syncs(kagent)
        for i in range(50):
            kube.set_configmap(NS, "registry-cas", {"a.example.com": pem(test_ca), f"s{i}.example.com": pem(other_ca)})
            time.sleep(0.02)
        wait_written(root, "s49.example.com", other_ca)
        time.sleep(0.6)
        n = syncs(kagent) - n0
        # About 1.2 s at one sync per 100 ms at most, the first at once
        # (before: one per change).
        assert 2 <= n <= 15, f"{n} syncs for 50 changes 20 ms apart"
        wait_ready(kagent)


# --------------------------------------------------------------------------
# The kubeconfig and the files it names are read again when they change.

def ca_kubeconfig(kube, tmp_path, ca_file):
    return kube.write_kubeconfig(str(tmp_path / "kubeconfig"), ca="file", ca_file=str(ca_file))


def test_ca_file_replaced_is_read_again(kube, root, tmp_path, nodetrustd_bin, test_ca):
    """The CA file named by the kubeconfig held the wrong CA; once it holds
    the right one, the agent connects without a restart (curl cached the
    store it built from the path for a day)."""
    setup_cluster(kube, data={"a.example.com": pem(test_ca)})
    wrong = make_ca(str(tmp_path), name="wrong")
    ca_file = tmp_path / "api-ca.pem"
    ca_file.write_bytes(open(wrong["ca"], "rb").read())
    agent = make_agent(kube, root, tmp_path, nodetrustd_bin)
    ca_kubeconfig(kube, tmp_path, ca_file)
    with agent.daemon() as d:
        wait_for(lambda: "list failed" in d.log(), what="a failed list")
        wait_ready(agent, False)
        tmp = tmp_path / "api-ca.pem.new"
        tmp.write_bytes(open(kube.tls["ca"], "rb").read())
        tmp.rename(ca_file)
        wait_written(root, "a.example.com", test_ca, timeout=15)
        wait_ready(agent, timeout=15)


def test_kubeconfig_naming_another_ca_is_read_again(kube, root, tmp_path, nodetrustd_bin, test_ca):
    setup_cluster(kube, data={"a.example.com": pem(test_ca)})
    wrong = make_ca(str(tmp_path), name="wrong")
    agent = make_agent(kube, root, tmp_path, nodetrustd_bin)
    ca_kubeconfig(kube, tmp_path, wrong["ca"])
    with agent.daemon() as d:
        wait_for(lambda: "list failed" in d.log(), what="a failed list")
        wait_ready(agent, False)
        ca_kubeconfig(kube, tmp_path, kube.tls["ca"])
        wait_written(root, "a.example.com", test_ca, timeout=15)
        wait_ready(agent, timeout=15)
        assert "Kubernetes client configuration changed, loaded again" in d.log()


def test_broken_kubeconfig_keeps_the_last_good(kube, kagent, root, tmp_path, test_ca, other_ca):
    setup_cluster(kube, data={"a.example.com": pem(test_ca)})
    kc = tmp_path / "kubeconfig"
    good = kc.read_bytes()
    with kagent.daemon() as d:
        started(kube, kagent, root, test_ca, d)
        kc.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
        # Noticed at the next request; a drop makes one now.
        kube.drop_connections()
        wait_refused(kagent, f"kubeconfig {kc}: no current-context; keeping the last good one")
        # Still connected with the last good configuration.
        kube.set_configmap(NS, "registry-cas", {"a.example.com": pem(other_ca)})
        wait_written(root, "a.example.com", other_ca)
        kc.write_bytes(good)
        kube.drop_connections()
        wait_ready(kagent)


def test_ca_file_removed_keeps_the_last_good_ca(kube, root, tmp_path, nodetrustd_bin, test_ca, other_ca):
    """The CA file goes away (a half-done rotation): the agent keeps talking
    to the API with the CA it loaded, and says why it is not ready; curl
    reading the path at each connection failed every reconnect instead."""
    setup_cluster(kube, data={"a.example.com": pem(test_ca)})
    ca_file = tmp_path / "api-ca.pem"
    ca_file.write_bytes(open(kube.tls["ca"], "rb").read())
    agent = make_agent(kube, root, tmp_path, nodetrustd_bin)
    ca_kubeconfig(kube, tmp_path, ca_file)
    with agent.daemon() as d:
        started(kube, agent, root, test_ca, d)
        ca_file.unlink()
        kube.drop_connections()
        wait_refused(agent, f"kubeconfig {tmp_path / 'kubeconfig'}: cannot read the CA file '{ca_file}': "
                            "No such file or directory; keeping the last good one")
        kube.set_configmap(NS, "registry-cas", {"a.example.com": pem(other_ca)})
        wait_written(root, "a.example.com", other_ca)
        ca_file.write_bytes(open(kube.tls["ca"], "rb").read())
        kube.drop_connections()
        wait_ready(agent)
