# SPDX-License-Identifier: MIT
"""The stand-in API server speaks the protocol the agent relies on: list,
watch lines, bookmarks, 410 on expired versions, 401 on bad tokens, TLS
with its own CA, and its faults do what they say."""

import http.client
import json
import os
import ssl
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from kubeapi import KubeAPI  # noqa: E402

CM = "/api/v1/namespaces/openshift-config/configmaps"
IMG = "/apis/config.openshift.io/v1/images"


@pytest.fixture
def api(tmp_path):
    a = KubeAPI(str(tmp_path), token="t1", bookmark_interval=0.2).start()
    yield a
    a.stop()


def conn(api, timeout=5):
    ctx = ssl.create_default_context(cafile=api.tls["ca"])
    return http.client.HTTPSConnection("127.0.0.1", api.port, context=ctx, timeout=timeout)


def get(api, path, token="t1"):
    c = conn(api)
    c.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
    r = c.getresponse()
    body = json.loads(r.read())
    c.close()
    return r.status, body


def watch_lines(api, path, n, token="t1", timeout=5):
    """Read up to n event lines of a watch (fewer if the stream ends)."""
    c = conn(api, timeout)
    c.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    r = c.getresponse()
    assert r.status == 200
    assert r.getheader("Transfer-Encoding") == "chunked"
    out = []
    while len(out) < n:
        line = r.readline()
        if not line:
            break
        out.append(json.loads(line))
    c.close()
    return out


def test_list_and_get(api):
    api.set_image_config("registry-cas")
    rv = api.set_configmap("openshift-config", "registry-cas", {"a.example.com": "PEM"})
    st, body = get(api, CM + "?fieldSelector=metadata.name%3Dregistry-cas")
    assert st == 200
    assert body["kind"] == "ConfigMapList" and body["apiVersion"] == "v1"
    assert body["metadata"]["resourceVersion"] == str(rv)
    assert [i["metadata"]["name"] for i in body["items"]] == ["registry-cas"]
    assert body["items"][0]["data"] == {"a.example.com": "PEM"}
    st, body = get(api, CM + "?fieldSelector=metadata.name%3Dother")
    assert st == 200 and body["items"] == []
    st, body = get(api, IMG + "/cluster")
    assert st == 200 and body["spec"]["additionalTrustedCA"]["name"] == "registry-cas"
    st, body = get(api, CM + "/missing")
    assert st == 404 and body["kind"] == "Status" and body["code"] == 404


def test_unauthorized(api):
    st, body = get(api, CM, token="wrong")
    assert st == 401 and body["kind"] == "Status" and body["reason"] == "Unauthorized"
    st, _ = get(api, CM, token=None)
    assert st == 401
    api.set_tokens("t2")
    assert get(api, CM, token="t1")[0] == 401
    assert get(api, CM, token="t2")[0] == 200


def test_watch_events_and_bookmarks(api):
    rv0 = api.set_configmap("openshift-config", "registry-cas", {"k": "v1"})
    q = f"?fieldSelector=metadata.name%3Dregistry-cas&watch=1&resourceVersion={rv0}" \
        "&allowWatchBookmarks=true&timeoutSeconds=3"
    api.set_configmap("openshift-config", "registry-cas", {"k": "v2"})
    api.set_configmap("openshift-config", "unrelated", {"k": "x"})
    api.delete_configmap("openshift-config", "registry-cas")
    ev = watch_lines(api, CM + q, 3)
    assert [e["type"] for e in ev] == ["MODIFIED", "DELETED", "BOOKMARK"]
    assert ev[0]["object"]["data"] == {"k": "v2"}
    assert int(ev[1]["object"]["metadata"]["resourceVersion"]) > rv0
    assert ev[2]["object"]["metadata"] == {"resourceVersion": ev[2]["object"]["metadata"]["resourceVersion"]}
    assert int(ev[2]["object"]["metadata"]["resourceVersion"]) >= int(ev[1]["object"]["metadata"]["resourceVersion"])


def test_watch_without_rv_starts_with_added(api):
    api.set_image_config("x")
    ev = watch_lines(api, IMG + "?fieldSelector=metadata.name%3Dcluster&watch=1&timeoutSeconds=1", 5)
    assert [e["type"] for e in ev] == ["ADDED"]
    assert ev[0]["object"]["kind"] == "Image"


def test_watch_times_out(api):
    t = time.monotonic()
    ev = watch_lines(api, CM + "?watch=1&resourceVersion=1000&timeoutSeconds=1", 100)
    assert ev == [] and 0.9 < time.monotonic() - t < 3


def test_expired_rv_is_410_event(api):
    rv = api.set_configmap("openshift-config", "registry-cas", {"k": "v"})
    api.set_configmap("openshift-config", "registry-cas", {"k": "v2"})
    api.compact()
    ev = watch_lines(api, CM + f"?watch=1&resourceVersion={rv}&allowWatchBookmarks=true", 5)
    assert len(ev) == 1 and ev[0]["type"] == "ERROR"
    assert ev[0]["object"]["kind"] == "Status" and ev[0]["object"]["code"] == 410
    assert ev[0]["object"]["reason"] == "Expired"
    st, body = get(api, CM + f"?resourceVersion={rv}")
    assert st == 410 and body["code"] == 410


def test_faults(api):
    api.fail_next(2)
    assert get(api, CM)[0] == 500
    assert get(api, CM)[0] == 500
    assert get(api, CM)[0] == 200
    api.set_delay(0.5)
    t = time.monotonic()
    assert get(api, CM)[0] == 200
    assert time.monotonic() - t >= 0.5
    api.set_delay(0)

    # A silent watch sends nothing, not even bookmarks, and does not end.
    api.silence_watches()
    with pytest.raises(TimeoutError):
        watch_lines(api, CM + "?watch=1&resourceVersion=1000&allowWatchBookmarks=true&timeoutSeconds=1", 1,
                    timeout=1.5)
    api.silence_watches(False)

    # Stop: unreachable; start: the same port again.
    port = api.port
    api.stop()
    with pytest.raises(ConnectionRefusedError):
        get(api, CM)
    api.start()
    assert api.port == port and get(api, CM)[0] == 200


def raw_stream(api, path):
    """A raw TLS socket, so the test sees exactly how a stream ends."""
    import socket
    ctx = ssl.create_default_context(cafile=api.tls["ca"])
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", api.port), timeout=5), server_hostname="127.0.0.1")
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t1\r\n\r\n".encode())
    return s


def read_until_eof(s):
    data = b""
    while True:
        try:
            b = s.recv(65536)
        except (ConnectionError, ssl.SSLError):
            break
        if not b:
            break
        data += b
    return data


def test_clean_end_vs_drop(api):
    s = raw_stream(api, CM + "?watch=1&resourceVersion=1000&timeoutSeconds=1")
    assert read_until_eof_or_final_chunk(s).endswith(b"\r\n0\r\n\r\n")
    s = raw_stream(api, CM + "?watch=1&resourceVersion=1000&allowWatchBookmarks=true")
    time.sleep(0.5)
    api.drop_connections()
    data = read_until_eof(s)
    assert b"BOOKMARK" in data and not data.endswith(b"0\r\n\r\n")


def read_until_eof_or_final_chunk(s):
    data = b""
    while not data.endswith(b"\r\n0\r\n\r\n"):
        b = s.recv(65536)
        if not b:
            break
        data += b
    return data


def test_kubeconfig_and_in_cluster(api, tmp_path):
    import yaml
    p = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
    doc = yaml.safe_load(open(p))
    assert doc["current-context"] == "nodetrust@standin"
    ctx = [c for c in doc["contexts"] if c["name"] == doc["current-context"]][0]["context"]
    cl = [c for c in doc["clusters"] if c["name"] == ctx["cluster"]][0]["cluster"]
    assert cl["server"] == api.url and "certificate-authority-data" in cl
    env = api.write_in_cluster(str(tmp_path / "sa"))
    assert open(tmp_path / "sa" / "token").read() == "t1"
    assert env["KUBERNETES_SERVICE_PORT"] == str(api.port)


# --- what node status writes, and what kubectl needs --------------------------------

def request(c, method, path, body=None, ctype="application/json", token="t1", chunked=False):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": ctype}
    data = json.dumps(body).encode() if body is not None else None
    if chunked:
        c.putrequest(method, path)
        for k, v in headers.items():
            c.putheader(k, v)
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        half = len(data) // 2
        for part in (data[:half], data[half:]):
            c.send(b"%x\r\n%s\r\n" % (len(part), part))
        c.send(b"0\r\n\r\n")
    else:
        c.request(method, path, body=data, headers=headers)
    r = c.getresponse()
    return r.status, json.loads(r.read())


def test_node_status_patch_merges_conditions_by_type(api):
    api.set_node("n1")
    c = conn(api)
    mine = {"type": "RegistryTrustReady", "status": "False", "reason": "RegistryNotTrusted", "message": "m"}
    # One keep-alive connection throughout: every body is read whole.
    code, node = request(c, "PATCH", "/api/v1/nodes/n1/status", {"status": {"conditions": [mine]}},
                         "application/strategic-merge-patch+json")
    assert code == 200 and node["kind"] == "Node"
    assert [x["type"] for x in node["status"]["conditions"]] == ["Ready", "RegistryTrustReady"]
    code, node = request(c, "PATCH", "/api/v1/nodes/n1/status",
                         {"status": {"conditions": [dict(mine, status="True")]}, "spec": {"unschedulable": True}},
                         "application/strategic-merge-patch+json", chunked=True)
    assert code == 200
    assert api.node_condition("n1", "RegistryTrustReady")["status"] == "True"
    assert api.node_condition("n1", "Ready")["reason"] == "KubeletReady"
    # The status subresource changes nothing but the status.
    assert "unschedulable" not in node["spec"]
    # {} changes nothing and answers with the node.
    rv = node["metadata"]["resourceVersion"]
    code, node = request(c, "PATCH", "/api/v1/nodes/n1/status", {}, "application/strategic-merge-patch+json")
    assert code == 200 and node["metadata"]["resourceVersion"] == rv
    code, st = request(c, "PATCH", "/api/v1/nodes/n1/status", [], "application/json-patch+json")
    assert code == 415 and st["kind"] == "Status" and st["code"] == 415
    code, st = request(c, "PATCH", "/api/v1/nodes/nope/status", {}, "application/strategic-merge-patch+json")
    assert code == 404 and st["reason"] == "NotFound"
    code, st = request(c, "PATCH", "/api/v1/nodes/n1/status", {}, "application/strategic-merge-patch+json",
                       token="wrong")
    assert code == 401 and st["kind"] == "Status"
    c.close()


def test_events_create_and_list(api):
    c = conn(api)
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "n1.1", "namespace": "default"},
          "involvedObject": {"kind": "Node", "name": "n1"}, "reason": "R", "message": "m", "type": "Normal"}
    code, got = request(c, "POST", "/api/v1/namespaces/default/events", ev)
    assert code == 201 and got["metadata"]["uid"] and got["metadata"]["resourceVersion"]
    code, st = request(c, "POST", "/api/v1/namespaces/default/events", ev)
    assert code == 409 and st["reason"] == "AlreadyExists"
    code, st = request(c, "POST", "/api/v1/namespaces/default/events", {"kind": "Event", "metadata": {}})
    assert code == 422
    code, st = request(c, "POST", "/api/v1/namespaces/default/events", None, ctype="application/json")
    assert code == 400 and st["kind"] == "Status"
    c.close()
    status, lst = get(api, "/api/v1/namespaces/default/events")
    assert status == 200 and [e["metadata"]["name"] for e in lst["items"]] == ["n1.1"]
    status, lst = get(api, "/api/v1/events")
    assert status == 200 and len(lst["items"]) == 1
    assert [e["reason"] for e in api.events()] == ["R"]


def test_discovery_documents(api):
    assert get(api, "/version")[1]["major"] == "1"
    assert get(api, "/api")[1]["versions"] == ["v1"]
    groups = get(api, "/apis")[1]["groups"]
    assert [g["name"] for g in groups] == ["config.openshift.io"]
    res = {r["name"]: r for r in get(api, "/api/v1")[1]["resources"]}
    assert {"configmaps", "secrets", "nodes", "nodes/status", "events"} <= set(res)
    assert res["nodes"]["namespaced"] is False and res["events"]["namespaced"] is True
    assert get(api, "/apis/config.openshift.io/v1")[1]["resources"][0]["name"] == "images"
