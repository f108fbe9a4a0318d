# SPDX-License-Identifier: MIT
"""A stand-in Kubernetes API server for nodetrust's API source tests.

No Kubernetes API server is packaged for Debian, so this speaks the
documented list/watch protocol for exactly the objects nodetrustd reads:

  GET /apis/config.openshift.io/v1/images[/cluster]
  GET /api/v1/namespaces/NS/configmaps[/NAME]
  GET /api/v1/namespaces/NS/secrets[/NAME]

with ?fieldSelector=metadata.name=NAME, ?watch=1, ?resourceVersion=N,
?allowWatchBookmarks=true and ?timeoutSeconds=N, over TLS with its own CA
(made with the openssl CLI), bearer tokens or client certificates; and
what node status writes and the real kubectl needs to read it back:

  GET   /version, /api, /api/v1, /apis, /apis/config.openshift.io[/v1]
        (legacy discovery: kubectl 1.32 asks for the aggregated kind
        first and falls back when it gets plain application/json)
  GET   /api/v1/nodes[/NAME], /api/v1/[namespaces/NS/]events[/NAME],
        /api/v1/configmaps, /api/v1/secrets (every namespace)
  PATCH /api/v1/nodes/NAME/status (only .status is taken), and any object:
        strategic merge (lists of conditions merged by type, null deletes,
        $-directives ignored), JSON merge patch; JSON patch is 415
  POST  /api/v1/namespaces/NS/{configmaps,secrets,events}: create (409
        when it exists; metadata.generateName honoured)
  PUT   replace, DELETE delete, for the same objects

Every request body is read whole (Content-Length or chunked) before the
answer, so a keep-alive connection stays in step; every error is a JSON
Status object.

Protocol points it keeps, as the real apiserver does:
  - one global, monotonic resourceVersion; lists carry it in
    metadata.resourceVersion, every object in metadata.resourceVersion;
  - a watch is HTTP/1.1 200 with chunked transfer, one
    {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...} line per
    chunk; BOOKMARK objects carry only kind, apiVersion and
    metadata.resourceVersion;
  - a watch from a resourceVersion older than the compacted history gets
    200 and then one ERROR event whose object is a Status with code 410
    (reason Expired), then the stream ends; a list at such a version is an
    HTTP 410 Status;
  - a watch without resourceVersion (or "0") starts with synthetic ADDED
    events for what exists now;
  - the server ends a watch after timeoutSeconds;
  - a missing or unknown token is HTTP 401 with a Status body.

Faults for tests: drop_connections(), fail_next(n) (reads),
fail_next_writes(n) (PATCH/POST/PUT/DELETE), set_delay(s),
set_tokens()/expire token, silence_watches(), compact(), stop()/start().

Hostile answers, as a broken or malicious server (or a proxy) would give
them: put(..., override=) stores an object with any kind, apiVersion or
field (DELETE removes one), set_list_override() changes every list's top
level (another kind, a resourceVersion that is not one),
set_bookmark_rv() makes bookmarks carry any resourceVersion, and burst()
writes n changes as fast as the lock allows.

Use from tests:

    api = KubeAPI(tmpdir); api.start()
    api.set_image_config("registry-cas")
    api.set_configmap("openshift-config", "registry-cas", {"host..5000": pem})
    api.write_kubeconfig(path)
"""

import base64
import http.server
import json
import os
import select
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid

IMAGES = ("config.openshift.io/v1", None, "images")
# put(override={field: DELETE}) removes the field.
DELETE = object()
NODES = ("v1", None, "nodes")
# A collection's namespace for "every namespace" (/api/v1/events).
ALL = "*"
# Core kinds served, for discovery: resource -> (kind, namespaced, short names).
CORE = {"configmaps": ("ConfigMap", True, ["cm"]), "secrets": ("Secret", True, []),
        "nodes": ("Node", False, ["no"]), "events": ("Event", True, ["ev"])}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
MAX_BODY = 3 * 1024 * 1024
# Strategic merge: lists merged by this key instead of replaced (Kubernetes'
# patchMergeKey for the fields a test patches).
MERGE_KEYS = {"conditions": "type", "addresses": "type", "taints": "key"}


def _coll_kind(coll):
    return {"images": "Image", "configmaps": "ConfigMap", "secrets": "Secret", "nodes": "Node",
            "events": "Event"}[coll[2]]


def _object_order(item):
    """Sort key of an objects item ((coll, name), obj): by collection, then
    name (a cluster-scoped collection's namespace is None, which does not
    compare with a string)."""
    (coll, name), _ = item
    return (coll[0], coll[1] or "", coll[2], name)


def _coll_match(c, coll):
    """Is stored collection c (never ALL) part of collection coll?"""
    return c[0] == coll[0] and c[2] == coll[2] and (coll[1] == ALL or c[1] == coll[1])


def strategic_merge(orig, patch, strategic=True):
    """A strategic merge patch (or, strategic=False, a JSON merge patch,
    RFC 7386) of orig: maps merge, null deletes, lists replace except those
    in MERGE_KEYS, which merge by their key."""
    if not isinstance(patch, dict):
        return patch
    out = dict(orig) if isinstance(orig, dict) else {}
    for k, v in patch.items():
        if strategic and k.startswith("$"):
            continue  # $patch, $setElementOrder/..., $retainKeys: order and retention, not content
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            out[k] = strategic_merge(out.get(k), v, strategic)
        elif strategic and isinstance(v, list) and k in MERGE_KEYS:
            key = MERGE_KEYS[k]
            merged = [dict(x) for x in out.get(k) or [] if isinstance(x, dict)]
            for item in v:
                if not isinstance(item, dict):
                    continue
                at = next((i for i, x in enumerate(merged) if x.get(key) == item.get(key)), None)
                if item.get("$patch") == "delete":
                    if at is not None:
                        del merged[at]
                elif at is None:
                    merged.append(strategic_merge({}, item, strategic))
                else:
                    merged[at] = strategic_merge(merged[at], item, strategic)
            out[k] = merged
        else:
            out[k] = v
    return out


def _coll_api_version(coll):
    return coll[0]


def _status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def make_ca(workdir, name="kubeapi"):
    """Create a CA and a server certificate for 127.0.0.1/localhost with the
    openssl CLI; returns a dict of paths (ca, ca_key, cert, key)."""
    os.makedirs(workdir, exist_ok=True)
    p = {k: os.path.join(workdir, f"{name}-{k}.pem") for k in ("ca", "ca_key", "cert", "key", "csr")}
    ext = os.path.join(workdir, f"{name}-ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", p["ca_key"], "-out", p["ca"], "-days", "2", "-subj", f"/CN={name} test CA")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", p["key"], "-out", p["csr"], "-subj", "/CN=127.0.0.1")
    run("openssl", "x509", "-req", "-in", p["csr"], "-CA", p["ca"], "-CAkey", p["ca_key"],
        "-CAcreateserial", "-out", p["cert"], "-days", "2", "-extfile", ext)
    return p


def make_client_cert(workdir, ca, user="system:node:test", name="client"):
    """A client certificate signed by the stand-in's CA (CN = user)."""
    cert = os.path.join(workdir, f"{name}-cert.pem")
    key = os.path.join(workdir, f"{name}-key.pem")
    csr = os.path.join(workdir, f"{name}.csr")
    ext = os.path.join(workdir, f"{name}-ext.cnf")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", csr, "-subj", f"/CN={user}")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca["ca"], "-CAkey", ca["ca_key"],
        "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext)
    return cert, key


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, api, addr):
        self.api = api
        super().__init__(addr, _Handler)

    def finish_request(self, request, client_address):
        # The TLS handshake happens here, in the connection's own thread, so
        # a slow client cannot stall accept().
        try:
            request.settimeout(10)
            tls = self.api.ssl_context.wrap_socket(request, server_side=True)
            tls.settimeout(None)
        except (OSError, ssl.SSLError):
            request.close()
            return
        self.api._track(tls, True)
        try:
            super().finish_request(tls, client_address)
        finally:
            self.api._track(tls, False)

    def handle_error(self, request, client_address):
        pass  # dropped connections are the point of half the tests


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kubeapi-standin/1"

    def log_message(self, fmt, *args):
        pass

    def _send_json(self, code, obj):
        body = (json.dumps(obj) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _read_body(self):
        """The request body, read whole: Content-Length bytes, or chunked.
        None (after answering 413/400) when it cannot be had."""
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            data = b""
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip() or b"x", 16)
                except ValueError:
                    self.close_connection = True
                    self._send_json(400, _status(400, "BadRequest", "bad chunk size"))
                    return None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return data
                if len(data) + size > MAX_BODY:
                    self.close_connection = True
                    self._send_json(413, _status(413, "RequestEntityTooLarge", "request body too large"))
                    return None
                data += self.rfile.read(size)
                self.rfile.readline(1024)
        try:
            n = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            n = -1
        if n < 0 or n > MAX_BODY:
            # The rest of the body cannot be skipped safely: close after the answer.
            self.close_connection = True
            self._send_json(413 if n > 0 else 400, _status(413 if n > 0 else 400, "BadRequest",
                                                           "bad or too large Content-Length"))
            return None
        return self.rfile.read(n) if n else b""

    def _begin(self, method):
        """Record the request, read its body and apply injected faults and
        authentication. Returns (rec, url, query, body) or None when it was
        answered already."""
        api = self.server.api
        url = urllib.parse.urlsplit(self.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        rec = {"method": method, "path": url.path, "query": q, "time": time.monotonic(),
               "auth": self.headers.get("Authorization", ""),
               "content_type": self.headers.get("Content-Type", "")}
        body = self._read_body() if method != "GET" else b""
        if body is None:
            rec["result"] = 400
            with api.lock:
                api.requests.append(rec)
            return None
        rec["body"] = body
        with api.lock:
            api.requests.append(rec)
            delay = api.delay
            if method == "GET":
                fail = api.fail_remaining > 0
                if fail:
                    api.fail_remaining -= 1
            else:
                fail = api.fail_writes_remaining > 0
                if fail:
                    api.fail_writes_remaining -= 1
            bogus = None
            if method == "PATCH" and api.bogus_patches_remaining > 0:
                api.bogus_patches_remaining -= 1
                bogus = api.bogus_patch_body
            fail_code = api.fail_code
        if delay:
            time.sleep(delay)
        if fail:
            rec["result"] = fail_code
            self._send_json(fail_code, _status(fail_code, "InternalError", "injected failure"))
            return None
        if not self._authenticated():
            rec["result"] = 401
            self._send_json(401, _status(401, "Unauthorized", "Unauthorized"))
            return None
        if bogus is not None:
            rec["result"] = 200
            self._send_json(200, bogus)
            return None
        return rec, url, q, body

    def _answer(self, rec, code, obj):
        rec["result"] = code
        self._send_json(code, obj)

    def _authenticated(self):
        api = self.server.api
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:] in api.tokens:
            return True
        if api.client_cert_users is not None:
            cert = self.connection.getpeercert()
            if cert:
                cn = dict(x[0] for x in cert.get("subject", ())).get("commonName")
                if cn in api.client_cert_users:
                    return True
        return False

    def do_GET(self):
        api = self.server.api
        begun = self._begin("GET")
        if begun is None:
            return
        rec, url, q, _ = begun

        doc = api._discovery(url.path)
        if doc is not None:
            return self._answer(rec, 200, doc)
        route = api._route(url.path)
        if route is None:
            rec["result"] = 404
            return self._send_json(404, _status(404, "NotFound", f"the server could not find {url.path}"))
        coll, name = route
        if coll[1] == ALL and name is not None:
            return self._answer(rec, 404, _status(404, "NotFound", f"the server could not find {url.path}"))
        if name is None:
            fs = q.get("fieldSelector", "")
            if fs:
                if not fs.startswith("metadata.name="):
                    rec["result"] = 400
                    return self._send_json(400, _status(400, "BadRequest", "unsupported field selector"))
                name = fs[len("metadata.name="):]
            if q.get("watch") in ("1", "true"):
                rec["result"] = 200
                return self._watch(coll, name, q)
            rec["result"] = 200
            return self._list(coll, name, q)
        obj = api.get(coll, name)
        if obj is None:
            rec["result"] = 404
            return self._send_json(404, _status(404, "NotFound", f'{coll[2]} "{name}" not found'))
        rec["result"] = 200
        return self._send_json(200, obj)

    def _write_target(self, rec, url):
        """(coll, name, subresource) of a write, or None after a 404/405."""
        api = self.server.api
        parts = [p for p in url.path.split("/") if p]
        sub = None
        if parts[:3] == ["api", "v1", "nodes"] and len(parts) == 5 and parts[4] == "status":
            sub, parts = "status", parts[:4]
        route = api._route("/" + "/".join(parts))
        if route is None or route[0][1] == ALL:
            self._answer(rec, 404, _status(404, "NotFound", f"the server could not find {url.path}"))
            return None
        if route[0] == IMAGES and rec["method"] != "GET":
            self._answer(rec, 405, _status(405, "MethodNotAllowed", "images are read-only here"))
            return None
        return route[0], route[1], sub

    def _json_body(self, rec, body):
        ctype = rec["content_type"].split(";")[0].strip()
        if ctype not in ("application/json", "application/strategic-merge-patch+json",
                         "application/merge-patch+json", ""):
            # kubectl's typed commands (create configmap) send protobuf,
            # which this stand-in does not decode; kubectl apply sends JSON.
            self._answer(rec, 415, _status(415, "UnsupportedMediaType",
                                           f"the stand-in reads JSON bodies only, not {ctype}"))
            return None
        try:
            doc = json.loads(body or b"null")
        except ValueError as e:
            self._answer(rec, 400, _status(400, "BadRequest", f"the body is not JSON: {e}"))
            return None
        if not isinstance(doc, dict):
            self._answer(rec, 400, _status(400, "BadRequest", "the body is not a JSON object"))
            return None
        return doc

    def do_POST(self):
        api = self.server.api
        begun = self._begin("POST")
        if begun is None:
            return
        rec, url, _, body = begun
        target = self._write_target(rec, url)
        if target is None:
            return
        coll, name, _ = target
        if name is not None or coll == NODES:
            return self._answer(rec, 405, _status(405, "MethodNotAllowed", "POST to a collection"))
        obj = self._json_body(rec, body)
        if obj is None:
            return
        md = obj.get("metadata") or {}
        name = md.get("name")
        if not name and md.get("generateName"):
            name = md["generateName"] + uuid.uuid4().hex[:5]
        if not name:
            return self._answer(rec, 422, _status(422, "Invalid", "metadata.name: Required value"))
        if md.get("namespace") not in (None, coll[1]):
            return self._answer(rec, 400, _status(400, "BadRequest",
                                                  "the namespace of the object does not match the request"))
        if obj.get("kind") not in (None, _coll_kind(coll)):
            return self._answer(rec, 400, _status(400, "BadRequest", f"kind {obj.get('kind')} posted to {coll[2]}"))
        with api.lock:
            if (coll, name) in api.objects:
                return self._answer(rec, 409, _status(409, "AlreadyExists", f'{coll[2]} "{name}" already exists'))
            api.put(coll, name, obj)
            created = api.get(coll, name)
        self._answer(rec, 201, created)

    def do_PUT(self):
        api = self.server.api
        begun = self._begin("PUT")
        if begun is None:
            return
        rec, url, _, body = begun
        target = self._write_target(rec, url)
        if target is None:
            return
        coll, name, _ = target
        obj = self._json_body(rec, body)
        if obj is None:
            return
        with api.lock:
            if name is None or (coll, name) not in api.objects:
                return self._answer(rec, 404, _status(404, "NotFound", f'{coll[2]} "{name}" not found'))
            api.put(coll, name, obj)
            obj = api.get(coll, name)
        self._answer(rec, 200, obj)

    def do_PATCH(self):
        api = self.server.api
        begun = self._begin("PATCH")
        if begun is None:
            return
        rec, url, _, body = begun
        target = self._write_target(rec, url)
        if target is None:
            return
        coll, name, sub = target
        ctype = rec["content_type"].split(";")[0].strip()
        if ctype not in ("application/strategic-merge-patch+json", "application/merge-patch+json"):
            return self._answer(rec, 415, _status(415, "UnsupportedMediaType",
                                                  f"the body of the request was in an unknown format: {ctype}"))
        patch = self._json_body(rec, body)
        if patch is None:
            return
        strategic = ctype == "application/strategic-merge-patch+json"
        with api.lock:
            old = api.get(coll, name) if name else None
            if old is None:
                return self._answer(rec, 404, _status(404, "NotFound", f'{coll[2]} "{name}" not found'))
            if sub == "status":
                # The status subresource changes .status and nothing else.
                new = dict(old)
                new["status"] = strategic_merge(old.get("status"), patch.get("status") or {}, strategic)
            else:
                new = strategic_merge(old, patch, strategic)
            if new != old:
                api.put(coll, name, new)
            obj = api.get(coll, name)
        self._answer(rec, 200, obj)

    def do_DELETE(self):
        api = self.server.api
        begun = self._begin("DELETE")
        if begun is None:
            return
        rec, url, _, _ = begun
        target = self._write_target(rec, url)
        if target is None:
            return
        coll, name, _ = target
        with api.lock:
            if name is None or (coll, name) not in api.objects:
                return self._answer(rec, 404, _status(404, "NotFound", f'{coll[2]} "{name}" not found'))
            api.delete(coll, name)
        self._answer(rec, 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                "details": {"name": name, "kind": coll[2]}})

    def _list(self, coll, name, q):
        api = self.server.api
        with api.lock:
            rv = q.get("resourceVersion", "")
            if rv not in ("", "0") and int(rv) < api.compacted_rv:
                return self._send_json(410, _status(410, "Expired", "too old resource version"))
            items = [o for (c, n), o in sorted(api.objects.items(), key=_object_order)
                     if _coll_match(c, coll) and (name is None or n == name)]
            body = {"kind": _coll_kind(coll) + "List", "apiVersion": _coll_api_version(coll),
                    "metadata": {"resourceVersion": str(api.rv)}, "items": items}
            _override(body, api.list_override)
        self._send_json(200, body)

    def _watch(self, coll, name, q):
        api = self.server.api
        bookmarks = q.get("allowWatchBookmarks") == "true"
        timeout = float(q.get("timeoutSeconds", "1800"))
        rv = q.get("resourceVersion", "")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

        def send(ev):
            self._chunk((json.dumps(ev) + "\n").encode())

        start = last_bookmark = time.monotonic()
        dead = False
        with api.lock:
            api.watches += 1
            if rv in ("", "0"):
                sent_rv = api.rv
                initial = [o for (c, n), o in sorted(api.objects.items(), key=_object_order)
                           if _coll_match(c, coll) and (name is None or n == name)]
                expired = False
            else:
                sent_rv = int(rv)
                initial = []
                expired = sent_rv < api.compacted_rv
        try:
            if expired:
                send({"type": "ERROR", "object": _status(
                    410, "Expired", f"too old resource version: {sent_rv} ({api.compacted_rv})")})
                self._chunk(b"")
                return
            for o in initial:
                send({"type": "ADDED", "object": o})
            while True:
                with api.cond:
                    if api.silent or dead:
                        dead = True
                        events = []
                    else:
                        events = [e for e in api.history if e["rv"] > sent_rv and _coll_match(e["coll"], coll)
                                  and (name is None or e["name"] == name)]
                        if not events:
                            api.cond.wait(0.05)
                            events = [e for e in api.history if e["rv"] > sent_rv and _coll_match(e["coll"], coll)
                                      and (name is None or e["name"] == name)]
                        if api.silent:
                            dead = True
                            events = []
                    now_rv = api.rv
                    bookmark_interval = api.bookmark_interval
                if dead:
                    # A dead watch: the connection stays open and nothing
                    # flows, ever, until the client gives up or we stop.
                    if self._client_gone(0.1) or api.stopping:
                        return
                    continue
                for e in events:
                    send({"type": e["type"], "object": e["object"]})
                    sent_rv = e["rv"]
                    api._sent(e["rv"])
                now = time.monotonic()
                if now - start >= timeout:
                    break
                if bookmarks and now - last_bookmark >= bookmark_interval:
                    sent_rv = max(sent_rv, now_rv)
                    bookmark_rv = api.bookmark_rv
                    send({"type": "BOOKMARK", "object": {
                        "kind": _coll_kind(coll), "apiVersion": _coll_api_version(coll),
                        "metadata": {"resourceVersion": str(sent_rv) if bookmark_rv is None else bookmark_rv}}})
                    last_bookmark = now
                if api.stopping:
                    return
            self._chunk(b"")
        except OSError:
            self.close_connection = True
        finally:
            with api.lock:
                api.watches -= 1

    def _client_gone(self, timeout):
        try:
            r, _, _ = select.select([self.connection], [], [], timeout)
            if not r:
                return False
            return self.connection.recv(1) == b""
        except (OSError, ssl.SSLError, ValueError):
            return True


class KubeAPI:
    """The stand-in. Everything is thread-safe; objects are plain dicts."""

    def __init__(self, workdir, token="token-1", port=0, bookmark_interval=1.0, client_cert_users=None):
        self.workdir = workdir
        self.tls = make_ca(workdir)
        self.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl_context.load_cert_chain(self.tls["cert"], self.tls["key"])
        self.ssl_context.load_verify_locations(self.tls["ca"])
        self.ssl_context.verify_mode = ssl.CERT_OPTIONAL
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.tokens = {token} if token else set()
        self.client_cert_users = client_cert_users
        self.port = port
        self.bookmark_interval = bookmark_interval
        self.objects = {}      # (coll, name) -> object
        self.history = []      # events: rv, coll, name, type, object
        self.rv = 1000
        self.compacted_rv = 0
        self.requests = []
        self.sent_times = {}   # rv -> monotonic time the event first left the server
        self.delay = 0.0
        self.fail_remaining = 0
        self.fail_writes_remaining = 0
        self.bogus_patches_remaining = 0
        self.bogus_patch_body = None
        self.fail_code = 500
        self.silent = False
        self.list_override = {}
        self.bookmark_rv = None
        self.stopping = False
        self.watches = 0
        self._conns = set()
        self._server = None
        self._thread = None

    # --- lifecycle -------------------------------------------------------

    def start(self):
        """Serve on 127.0.0.1 (the same port again after stop())."""
        self.stopping = False
        self._server = _Server(self, ("127.0.0.1", self.port))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Make the API unreachable: close the listener and every connection."""
        if not self._server:
            return
        self.stopping = True
        self._server.shutdown()
        self._server.server_close()
        self.drop_connections()
        self._thread.join()
        self._server = None
        with self.cond:
            self.cond.notify_all()

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    # --- objects ---------------------------------------------------------

    def _route(self, path):
        """(collection, name or None) of an object path, else None."""
        parts = [p for p in path.split("/") if p]
        if parts[:3] == ["apis", "config.openshift.io", "v1"] and len(parts) in (4, 5) and parts[3] == "images":
            return IMAGES, (parts[4] if len(parts) == 5 else None)
        if parts[:2] == ["api", "v1"] and len(parts) in (5, 6) and parts[2] == "namespaces" and \
                parts[4] in ("configmaps", "secrets", "events"):
            return ("v1", parts[3], parts[4]), (parts[5] if len(parts) == 6 else None)
        if parts[:3] == ["api", "v1", "nodes"] and len(parts) in (3, 4):
            return NODES, (parts[3] if len(parts) == 4 else None)
        if parts[:2] == ["api", "v1"] and len(parts) == 3 and parts[2] in ("configmaps", "secrets", "events"):
            return ("v1", ALL, parts[2]), None
        return None

    def _discovery(self, path):
        """Legacy discovery documents, as kubectl reads them (None: not one)."""
        path = "/" + "/".join(p for p in path.split("/") if p)
        group = {"name": "config.openshift.io",
                 "versions": [{"groupVersion": "config.openshift.io/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": "config.openshift.io/v1", "version": "v1"}}
        if path == "/version":
            return {"major": "1", "minor": "32", "gitVersion": "v1.32.0-nodetrust-standin",
                    "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                    "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"}
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}]}
        if path == "/apis":
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}
        if path == "/apis/config.openshift.io":
            return dict(group, kind="APIGroup", apiVersion="v1")
        if path == "/api/v1":
            res = []
            for name, (kind, namespaced, short) in sorted(CORE.items()):
                r = {"name": name, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
                     "verbs": VERBS}
                if short:
                    r["shortNames"] = short
                res.append(r)
                if name == "nodes":
                    res.append({"name": "nodes/status", "singularName": "", "namespaced": False,
                                "kind": "Node", "verbs": ["get", "patch", "update"]})
            return {"kind": "APIResourceList", "groupVersion": "v1", "resources": res}
        if path == "/apis/config.openshift.io/v1":
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "config.openshift.io/v1",
                    "resources": [{"name": "images", "singularName": "image", "namespaced": False,
                                   "kind": "Image", "verbs": ["get", "list", "watch"]}]}
        return None

    def get(self, coll, name):
        with self.lock:
            o = self.objects.get((coll, name))
            return json.loads(json.dumps(o)) if o is not None else None

    def put(self, coll, name, obj, override=None):
        """Create or replace an object; emits ADDED or MODIFIED. Returns its rv.
        override: fields set (or, with DELETE, removed) after kind and
        apiVersion are filled in, for objects no real server would hold."""
        with self.cond:
            self.rv += 1
            old = self.objects.get((coll, name))
            obj = json.loads(json.dumps(obj))
            md = obj.setdefault("metadata", {})
            md["name"] = name
            if coll[1]:
                md["namespace"] = coll[1]
            md["uid"] = old["metadata"]["uid"] if old else str(uuid.uuid4())
            md["creationTimestamp"] = old["metadata"]["creationTimestamp"] if old else \
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            md["resourceVersion"] = str(self.rv)
            obj["kind"] = _coll_kind(coll)
            obj["apiVersion"] = _coll_api_version(coll)
            _override(obj, override or {})
            self.objects[(coll, name)] = obj
            self.history.append({"rv": self.rv, "coll": coll, "name": name,
                                 "type": "MODIFIED" if old else "ADDED", "object": obj})
            self.cond.notify_all()
            return self.rv

    def delete(self, coll, name):
        """Delete an object (no-op when absent); emits DELETED. Returns the rv."""
        with self.cond:
            old = self.objects.pop((coll, name), None)
            if old is None:
                return self.rv
            self.rv += 1
            old = json.loads(json.dumps(old))
            old["metadata"]["resourceVersion"] = str(self.rv)
            self.history.append({"rv": self.rv, "coll": coll, "name": name, "type": "DELETED", "object": old})
            self.cond.notify_all()
            return self.rv

    def set_image_config(self, trusted_ca_name):
        """image.config.openshift.io/cluster with spec.additionalTrustedCA.name
        (None: the field unset, as on a fresh cluster)."""
        spec = {"additionalTrustedCA": {"name": trusted_ca_name}} if trusted_ca_name else {}
        return self.put(IMAGES, "cluster", {"spec": spec, "status": {}})

    def delete_image_config(self):
        return self.delete(IMAGES, "cluster")

    def set_configmap(self, namespace, name, data=None, binary_data=None):
        """data: str values; binary_data: bytes values (sent base64)."""
        obj = {}
        if data:
            obj["data"] = dict(data)
        if binary_data:
            obj["binaryData"] = {k: base64.b64encode(v).decode() for k, v in binary_data.items()}
        return self.put(("v1", namespace, "configmaps"), name, obj)

    def delete_configmap(self, namespace, name):
        return self.delete(("v1", namespace, "configmaps"), name)

    def set_pull_secret(self, dockerconfigjson, namespace="openshift-config", name="pull-secret"):
        """dockerconfigjson: a dict (serialized) or raw bytes/str."""
        if isinstance(dockerconfigjson, dict):
            dockerconfigjson = json.dumps(dockerconfigjson)
        if isinstance(dockerconfigjson, str):
            dockerconfigjson = dockerconfigjson.encode()
        return self.put(("v1", namespace, "secrets"), name, {
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(dockerconfigjson).decode()}})

    def delete_secret(self, namespace="openshift-config", name="pull-secret"):
        return self.delete(("v1", namespace, "secrets"), name)

    def set_node(self, name, conditions=None):
        """A Node as the kubelet registers it: a Ready condition of its own
        (which a patch of another condition type must leave alone)."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if conditions is None:
            conditions = [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                           "message": "kubelet is posting ready status", "lastHeartbeatTime": now,
                           "lastTransitionTime": now}]
        return self.put(NODES, name, {"metadata": {"labels": {"kubernetes.io/hostname": name}},
                                      "spec": {}, "status": {"conditions": conditions}})

    def node(self, name):
        return self.get(NODES, name)

    def node_condition(self, name, ctype):
        """The node's condition of this type (a dict), or None."""
        n = self.node(name) or {}
        return next((c for c in n.get("status", {}).get("conditions", []) if c.get("type") == ctype), None)

    def events(self, namespace="default"):
        """Events in namespace, oldest first."""
        with self.lock:
            return [json.loads(json.dumps(o)) for (c, n), o in sorted(self.objects.items(), key=lambda x: int(
                x[1]["metadata"]["resourceVersion"])) if c == ("v1", namespace, "events")]

    # --- faults ----------------------------------------------------------

    def drop_connections(self):
        """Cut every open connection, mid-stream, without a final chunk."""
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def fail_next(self, n, code=500):
        """Answer the next n GET requests (the source's reads) with this
        status (before auth)."""
        with self.lock:
            self.fail_remaining = n
            self.fail_code = code

    def fail_next_writes(self, n, code=500):
        """Answer the next n PATCH/POST/PUT/DELETE requests with this status."""
        with self.lock:
            self.fail_writes_remaining = n
            self.fail_code = code

    def bogus_next_patches(self, n, body):
        """Answer the next n PATCH requests 200 with this body (a dict), and
        change nothing: a server that answers with something else than
        what was patched."""
        with self.lock:
            self.bogus_patches_remaining = n
            self.bogus_patch_body = body

    def set_delay(self, seconds):
        """Hold every new response this long before its status line."""
        with self.lock:
            self.delay = seconds

    def set_tokens(self, *tokens):
        """The bearer tokens accepted from now on; any other gets 401."""
        with self.lock:
            self.tokens = set(tokens)

    def silence_watches(self, silent=True):
        """Dead watches: every open or new watch sends nothing, not even a
        bookmark or its timeout's end. Turning it off helps new watches
        only; a watch that went dead stays dead."""
        with self.cond:
            self.silent = silent
            self.cond.notify_all()

    def set_list_override(self, override=None):
        """Every list answered from now on has these top-level fields set
        (DELETE removes one); a dict value replaces the field whole. None
        or {}: lists as the real server sends them."""
        with self.lock:
            self.list_override = dict(override or {})

    def set_bookmark_rv(self, rv=None):
        """Bookmarks carry this resourceVersion (any JSON value); None: the
        real one."""
        with self.lock:
            self.bookmark_rv = rv

    def burst(self, n, namespace, name, make_data):
        """n config map updates as fast as the server takes them:
        make_data(i) is the data of the i-th. Returns the seconds it took."""
        start = time.monotonic()
        for i in range(n):
            self.set_configmap(namespace, name, make_data(i))
        return time.monotonic() - start

    def compact(self):
        """Forget history: watches or lists from any older rv get 410."""
        with self.lock:
            self.compacted_rv = self.rv + 1
            self.history = []

    # --- introspection ---------------------------------------------------

    def _track(self, conn, add):
        with self.lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def _sent(self, rv):
        with self.lock:
            self.sent_times.setdefault(rv, time.monotonic())

    def active_watches(self):
        with self.lock:
            return self.watches

    def requests_matching(self, path_part, watch=None):
        with self.lock:
            return [r for r in self.requests if path_part in r["path"] + "?" + urllib.parse.urlencode(r["query"])
                    and (watch is None or (r["query"].get("watch") in ("1", "true")) == watch)]

    # --- client configuration -------------------------------------------

    def write_kubeconfig(self, path, auth="token", token=None, ca="data", fmt="yaml", token_file=None,
                         client_cert=None, decoy=True, ca_file=None):
        """Write a kubeconfig the way kubectl does. auth: token | token-file |
        client-cert (client_cert=(cert, key) paths; embedded as -data when
        ca == "data"). ca: data | file. fmt: yaml | json. decoy adds another
        cluster/user/context first, so only current-context picks ours."""
        token = token or sorted(self.tokens)[0]
        cluster = {"server": self.url}
        if ca == "data":
            with open(self.tls["ca"], "rb") as f:
                cluster["certificate-authority-data"] = base64.b64encode(f.read()).decode()
        else:
            cluster["certificate-authority"] = ca_file or self.tls["ca"]
        user = {}
        if auth == "token":
            user["token"] = token
        elif auth == "token-file":
            token_file = token_file or os.path.join(os.path.dirname(path), "token")
            with open(token_file, "w") as f:
                f.write(token + "\n")
            user["tokenFile"] = token_file
        elif auth == "client-cert":
            cert, key = client_cert
            if ca == "data":
                user["client-certificate-data"] = base64.b64encode(open(cert, "rb").read()).decode()
                user["client-key-data"] = base64.b64encode(open(key, "rb").read()).decode()
            else:
                user["client-certificate"] = cert
                user["client-key"] = key
        clusters = [{"name": "standin", "cluster": cluster}]
        users = [{"name": "nodetrust", "user": user}]
        contexts = [{"name": "nodetrust@standin", "context": {"cluster": "standin", "user": "nodetrust"}}]
        if decoy:
            clusters.insert(0, {"name": "other", "cluster": {"server": "https://192.0.2.1:6443"}})
            users.insert(0, {"name": "other-admin", "user": {"token": "not-this-one"}})
            contexts.insert(0, {"name": "other", "context": {"cluster": "other", "user": "other-admin",
                                                              "namespace": "default"}})
        doc = {"apiVersion": "v1", "kind": "Config", "clusters": clusters, "contexts": contexts,
               "current-context": "nodetrust@standin", "preferences": {}, "users": users}
        with open(path, "w") as f:
            f.write(json.dumps(doc, indent=2) if fmt == "json" else _to_yaml(doc))
        return path

    def write_in_cluster(self, sa_dir, token=None):
        """The service-account layout a pod sees (token, ca.crt, namespace);
        returns the environment nodetrustd --in-cluster needs."""
        os.makedirs(sa_dir, exist_ok=True)
        self.write_sa_token(sa_dir, token or sorted(self.tokens)[0])
        with open(self.tls["ca"], "rb") as src, open(os.path.join(sa_dir, "ca.crt"), "wb") as dst:
            dst.write(src.read())
        with open(os.path.join(sa_dir, "namespace"), "w") as f:
            f.write("nodetrust")
        return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.port),
                "NODETRUST_SERVICEACCOUNT_DIR": sa_dir}

    @staticmethod
    def write_sa_token(sa_dir, token):
        """Rotate the projected token atomically, as the kubelet does."""
        tmp = os.path.join(sa_dir, ".token.tmp")
        with open(tmp, "w") as f:
            f.write(token)
        os.rename(tmp, os.path.join(sa_dir, "token"))


def _override(obj, override):
    for k, v in override.items():
        if v is DELETE:
            obj.pop(k, None)
        else:
            obj[k] = json.loads(json.dumps(v))


def _yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    plain = s and all(c.isalnum() or c in "-_./:@+=" for c in s) and not s[0] in "-:@" \
        and s.lower() not in ("true", "false", "null", "yes", "no", "on", "off", "~") \
        and not s.replace(".", "").isdigit()
    return s if plain else json.dumps(s)


def _to_yaml(v, indent=0):
    """Block-style YAML in kubectl's layout (sorted keys, "- " list items)."""
    pad = " " * indent
    out = []
    if isinstance(v, dict):
        if not v:
            return pad + "{}\n"
        for k in sorted(v):
            x = v[k]
            if isinstance(x, dict) and x:
                out.append(f"{pad}{k}:\n{_to_yaml(x, indent + 2)}")
            elif isinstance(x, list) and x:
                out.append(f"{pad}{k}:\n{_to_yaml(x, indent)}")
            else:
                out.append(f"{pad}{k}: {'{}' if x == {} else '[]' if x == [] else _yaml_scalar(x)}\n")
        return "".join(out)
    if isinstance(v, list):
        for x in v:
            body = _to_yaml(x, indent + 2)
            out.append(pad + "- " + body[indent + 2:])
        return "".join(out)
    return pad + _yaml_scalar(v) + "\n"
