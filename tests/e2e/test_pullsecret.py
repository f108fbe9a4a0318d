# SPDX-License-Identifier: MIT
"""End-to-end tests of the node pull credentials (issue 3): the pull secret
nodetrustd writes is what a container runtime authenticates with.

A real docker-registry serves TLS on 127.0.0.1 with htpasswd (bcrypt) auth;
nodetrustd applies the registry's CA from a config map volume and the pull
secret from a secret volume (both in the kubelet's layout) into a --root; skopeo
inspect, in a private mount namespace, trusts the registry through the
certs.d nodetrustd wrote and logs in with `--authfile <root>/var/lib/kubelet/
config.json`, the file CRI-O and the kubelet read. The machine's own /etc and
/var/lib are never written.
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
import urllib.request
from pathlib import Path

import pytest

import peers
from peers import skopeo_inspect, wait_for

USER = "nodetrust-puller"
CONFIG_JSON = "var/lib/kubelet/config.json"
STATE_DIR = "var/lib/nodetrust"


def b64auth(user, password):
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def new_password(label):
    # Distinctive, so a grep for it can only match a leak.
    return f"{label}-{secrets.token_hex(12)}"


def secret_json(auths, tokens=None):
    """.dockerconfigjson text: auths {host: (user, password)}, tokens {host: token}."""
    doc = json.loads(peers.dockerconfigjson(auths))
    for host, token in (tokens or {}).items():
        doc["auths"][host] = {"identitytoken": token}
    return json.dumps(doc)


def auth_failure(stderr):
    s = stderr.lower()
    return "unauthorized" in s or "authentication required" in s or "invalid username/password" in s


def assert_pull_ok(registry, root, tiny_image=None):
    authfile = Path(root) / CONFIG_JSON
    rc, out, err = skopeo_inspect(registry.ref(), root, authfile=authfile)
    assert rc == 0, f"skopeo inspect --authfile {authfile} failed:\n{err}"
    info = json.loads(out)
    assert info["Name"] == f"{registry.host}/test/tiny"
    if tiny_image is not None:
        assert info["Digest"] == peers.image_manifest_digest(tiny_image)


def assert_pull_unauthorized(registry, root):
    authfile = Path(root) / CONFIG_JSON
    rc, out, err = skopeo_inspect(registry.ref(), root,
                                  authfile=authfile if authfile.exists() else None)
    assert rc != 0, f"skopeo inspect unexpectedly succeeded:\n{out}"
    assert auth_failure(err), f"expected an authentication failure, got:\n{err}"


def assert_credentials_file(root):
    f = Path(root) / CONFIG_JSON
    st = f.lstat()
    assert stat.S_ISREG(st.st_mode), f"{f} is not a regular file"
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert stat.S_IMODE(f.parent.stat().st_mode) == 0o755
    return json.loads(f.read_text())


def normalized(text):
    """The secret as nodetrustd normalizes it before hashing (jansson's
    JSON_COMPACT | JSON_SORT_KEYS)."""
    return json.dumps(json.loads(text), separators=(",", ":"), sort_keys=True,
                      ensure_ascii=False).encode()


def sha256(data):
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode()).hexdigest()


def status(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
        return json.loads(r.read())


# --------------------------------------------------------------------------
# Fixtures: an authenticated registry, a secret volume, an agent on both.

@pytest.fixture
def password():
    return new_password("pw-one")


@pytest.fixture
def auth_registry(tmp_path, test_ca, server_cert, tiny_image, password):
    """A TLS + htpasswd docker-registry with test/tiny:latest pushed."""
    htpasswd = peers.write_htpasswd(tmp_path / "htpasswd-1", {USER: password})
    reg = peers.Registry(tmp_path / "auth-registry", *server_cert,
                         htpasswd=htpasswd, ca=test_ca)
    with reg:
        peers.push_image(reg, test_ca.cert, tiny_image, creds=(USER, password))
        yield reg


@pytest.fixture
def secret_volume(tmp_path):
    """An empty secret volume in kubelet layout (fill with .update())."""
    return peers.KubeletVolume(tmp_path / "pull-secret-volume", {}, mode=0o600)


@pytest.fixture
def ps_agent(nodetrustd_bin, root, trust_volume, secret_volume, tmp_path):
    """nodetrustd with --trust-source and --pull-secret, health off."""
    return peers.Agent(root, trust_volume.path, pull_secret=secret_volume.path,
                       binary=nodetrustd_bin, workdir=tmp_path)


def publish(trust_volume, secret_volume, registry, password):
    trust_volume.update({registry.key_name: registry.ca.pem()})
    secret_volume.update({".dockerconfigjson": secret_json({registry.host: (USER, password)})})


# --------------------------------------------------------------------------
# The CA and the pull secret together make an authenticated pull work.

def test_once_applies_ca_and_pull_secret(auth_registry, ps_agent, root, trust_volume,
                                         secret_volume, password, tiny_image):
    # The registry really wants credentials: trusted but anonymous fails.
    trust_volume.update({auth_registry.key_name: auth_registry.ca.pem()})
    assert ps_agent.run_once().returncode == 0
    assert_pull_unauthorized(auth_registry, root)

    publish(trust_volume, secret_volume, auth_registry, password)
    p = ps_agent.run_once()
    assert p.returncode == 0, p.stderr
    doc = assert_credentials_file(root)
    assert doc == {"auths": {auth_registry.host: {"auth": b64auth(USER, password)}}}
    assert_pull_ok(auth_registry, root, tiny_image)

    # Applied again: nothing to write, the file is the very same inode.
    before = (root / CONFIG_JSON).stat()
    p = ps_agent.run_once()
    assert p.returncode == 0, p.stderr
    after = (root / CONFIG_JSON).stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)

    # The state file names the registry it put there, never a credential.
    state = (root / STATE_DIR / "pullsecret.json").read_text()
    assert auth_registry.host in state
    assert password not in state and b64auth(USER, password) not in state


def test_dry_run_prints_the_target_and_writes_nothing(auth_registry, ps_agent, root,
                                                     trust_volume, secret_volume, password):
    publish(trust_volume, secret_volume, auth_registry, password)
    p = ps_agent.dry_run()
    assert p.returncode == 0, p.stderr
    target = f"{root}/{CONFIG_JSON}"
    assert f"create pull-secret {target}" in p.stdout.splitlines()
    assert not (root / "var").exists()
    assert password not in p.stdout + p.stderr

    assert ps_agent.run_once().returncode == 0
    p = ps_agent.dry_run()
    assert f"unchanged pull-secret {target}" in p.stdout.splitlines()
    secret_volume.update({".dockerconfigjson": secret_json({auth_registry.host: (USER, "other")})})
    p = ps_agent.dry_run()
    assert f"update pull-secret {target}" in p.stdout.splitlines()


def test_password_rotation_with_the_daemon(auth_registry, ps_agent, root, trust_volume,
                                           secret_volume, password, tmp_path, tiny_image):
    port = peers.free_port()
    ps_agent.health = f"127.0.0.1:{port}"
    publish(trust_volume, secret_volume, auth_registry, password)
    config = root / CONFIG_JSON
    old_auth = b64auth(USER, password)

    with ps_agent.daemon() as d:
        d.wait_notify("READY=1")
        assert_credentials_file(root)
        assert_pull_ok(auth_registry, root, tiny_image)
        assert status(port)["pull_secret"]["state"] == "applied"

        # Rotate in the registry first: the node's credentials stop working.
        new = new_password("pw-two")
        htpasswd = peers.write_htpasswd(tmp_path / "htpasswd-2", {USER: new})
        auth_registry.restart(htpasswd=htpasswd)
        assert_pull_unauthorized(auth_registry, root)

        # Then in the secret: the daemon rewrites the file on its own.
        secret_volume.update({".dockerconfigjson": secret_json({auth_registry.host: (USER, new)})})
        wait_for(lambda: b64auth(USER, new) in config.read_text(),
                 what="the rotated credentials in config.json")
        text = config.read_text()
        assert old_auth not in text and password not in text
        assert_credentials_file(root)
        assert_pull_ok(auth_registry, root, tiny_image)
        good = config.read_bytes()

        # A broken secret: the last good file stays, byte for byte, and works.
        secret_volume.update({".dockerconfigjson": '{"auths": {"' + auth_registry.host + '": {"auth": '})
        wait_for(lambda: status(port)["pull_secret"]["state"] == "invalid",
                 what="/status to report the invalid pull secret")
        st = status(port)["pull_secret"]
        assert "not valid JSON" in st["error"], st
        assert "Pull secret refused" in d.log()
        assert config.read_bytes() == good
        assert_pull_ok(auth_registry, root, tiny_image)

        # Fixed again: applied, nothing rewritten (same content as before).
        secret_volume.update({".dockerconfigjson": secret_json({auth_registry.host: (USER, new)})})
        wait_for(lambda: status(port)["pull_secret"]["state"] == "applied",
                 what="/status to report the pull secret applied again")
        assert config.read_bytes() == good


@pytest.mark.parametrize("broken, reason", [
    ("{not json", "not valid JSON"),
    ('{"registries": {}}', "no 'auths' object"),
    ('{"auths": {"REGISTRY": {"auth": "!!not-base64!!"}}}', "'auth' is not valid base64"),
    ('{"auths": {"REGISTRY": {"auth": "' + base64.b64encode(b"no-colon").decode() + '"}}}',
     "does not decode to user:password"),
    ('{"auths": {"REGISTRY": "a string"}}', "entry is not an object"),
    ('{"auths": {"bad host": {"auth": "dTpw"}}}', "is not a registry"),
    ("[" * 100 + "]" * 100, "nested deeper"),
])
def test_broken_secret_keeps_the_last_good_file(auth_registry, ps_agent, root, trust_volume,
                                                secret_volume, password, broken, reason):
    publish(trust_volume, secret_volume, auth_registry, password)
    assert ps_agent.run_once().returncode == 0
    good = (root / CONFIG_JSON).read_bytes()

    secret_volume.update({".dockerconfigjson": broken.replace("REGISTRY", auth_registry.host)})
    p = ps_agent.run_once()
    assert p.returncode == 1, f"an invalid pull secret must exit 1 with --once:\n{p.stderr}"
    refused = [line for line in p.stderr.splitlines() if "Pull secret refused" in line]
    assert refused and reason in refused[0], p.stderr
    assert (root / CONFIG_JSON).read_bytes() == good
    assert_pull_ok(auth_registry, root)

    p = ps_agent.dry_run()
    assert p.returncode == 1
    assert any(line.startswith("refuse pull-secret: ") and reason in line
               for line in p.stdout.splitlines()), p.stdout
    assert f"keep pull-secret {root}/{CONFIG_JSON}" in p.stdout.splitlines()


def test_huge_secret_is_refused(auth_registry, ps_agent, root, trust_volume, secret_volume,
                                password):
    publish(trust_volume, secret_volume, auth_registry, password)
    assert ps_agent.run_once().returncode == 0
    good = (root / CONFIG_JSON).read_bytes()
    doc = json.loads(secret_json({auth_registry.host: (USER, password)}))
    doc["padding"] = "x" * (1024 * 1024)
    secret_volume.update({".dockerconfigjson": json.dumps(doc)})
    p = ps_agent.run_once()
    # An oversized secret is an invalid secret (exit 1), the last good file
    # stays, and the trust half of the same sync still applies.
    assert p.returncode == 1, p.stderr
    assert "larger than 1 MiB" in p.stderr
    assert (root / CONFIG_JSON).read_bytes() == good
    assert password not in p.stderr
    assert list((root / "etc/containers/certs.d").iterdir()), "trust not applied"


# --------------------------------------------------------------------------
# merge: node-local registries survive, nodetrustd's own are cleaned up.

def test_merge_keeps_node_local_registries(auth_registry, ps_agent, root, trust_volume,
                                           secret_volume, password, tiny_image):
    local_auth = b64auth("local-user", "local-pw")
    config = root / CONFIG_JSON
    config.parent.mkdir(parents=True)
    admin = {"auths": {"node-local.example:5000": {"auth": local_auth},
                       auth_registry.host: {"auth": b64auth(USER, "stale-admin-pw")}},
             "credHelpers": {"gcr.io": "gcloud"}}
    config.write_text(json.dumps(admin))
    os.chmod(config, 0o644)

    ps_agent.extra = ["--pull-secret-policy", "merge"]
    publish(trust_volume, secret_volume, auth_registry, password)
    p = ps_agent.run_once()
    assert p.returncode == 0, p.stderr
    doc = assert_credentials_file(root)
    assert doc == {"auths": {"node-local.example:5000": {"auth": local_auth},
                             auth_registry.host: {"auth": b64auth(USER, password)}},
                   "credHelpers": {"gcr.io": "gcloud"}}, "the cluster secret wins a conflict"
    assert_pull_ok(auth_registry, root, tiny_image)

    # The secret moves to another registry: the entry nodetrustd added goes,
    # the node-local one stays.
    secret_volume.update({".dockerconfigjson": secret_json({"other.example": (USER, password)})})
    p = ps_agent.run_once()
    assert p.returncode == 0, p.stderr
    doc = assert_credentials_file(root)
    assert doc == {"auths": {"node-local.example:5000": {"auth": local_auth},
                             "other.example": {"auth": b64auth(USER, password)}},
                   "credHelpers": {"gcr.io": "gcloud"}}
    assert_pull_unauthorized(auth_registry, root)


def test_merge_never_touches_a_file_that_is_not_json(auth_registry, ps_agent, root,
                                                     trust_volume, secret_volume, password):
    config = root / CONFIG_JSON
    config.parent.mkdir(parents=True)
    config.write_text("# an admin's file, not JSON\n")
    before = peers.tree_snapshot(config.parent)

    ps_agent.extra = ["--pull-secret-policy", "merge"]
    publish(trust_volume, secret_volume, auth_registry, password)
    p = ps_agent.run_once()
    assert p.returncode == 1, p.stderr
    assert any("left untouched" in line and "not valid JSON" in line
               for line in p.stderr.splitlines()), p.stderr
    assert peers.tree_snapshot(config.parent) == before

    # replace is told the file is the secret's: it takes it over.
    ps_agent.extra = ["--pull-secret-policy", "replace"]
    assert ps_agent.run_once().returncode == 0
    assert_credentials_file(root)
    assert_pull_ok(auth_registry, root)


def test_bad_owner_is_a_usage_error(ps_agent):
    p = ps_agent.run_once("--pull-secret-owner", "root")
    assert p.returncode == 2
    assert "--pull-secret-owner" in p.stderr


# --------------------------------------------------------------------------
# Secrets never leave: every output of every mode, grepped.

def test_secret_never_leaks(auth_registry, ps_agent, root, trust_volume, secret_volume,
                            password, tmp_path):
    token = "idtoken-" + secrets.token_hex(16)
    auth = b64auth(USER, password)
    needles = (password, auth, token)
    good = secret_json({auth_registry.host: (USER, password)}, {"token.example": token})
    bad = [
        good[:-3],                                      # truncated near the credentials
        good.replace(auth, auth + "!"),                 # bad base64
        good.replace('"auths"', '"auths" ' + password),  # a syntax error next to a password
        good[:-1] + ', "' + token + '": 1 ' + password + "}",
        good.replace('"identitytoken"', '"identitytoken": 1, "password"'),
    ]
    trust_volume.update({auth_registry.key_name: auth_registry.ca.pem()})
    outputs = []

    def run(*args):
        p = ps_agent.run(*args)
        outputs.append(" ".join(map(str, args)) + "\n" + p.stdout + p.stderr)
        return p

    for level in ("info", "debug"):
        for text in [good] + bad:
            secret_volume.update({".dockerconfigjson": text})
            run("--dry-run", "--log-level", level)
            run("--once", "--log-level", level)
        for policy in ("merge", "replace"):
            secret_volume.update({".dockerconfigjson": good})
            run("--once", "--log-level", level, "--pull-secret-policy", policy)
    assert_pull_ok(auth_registry, root)

    # The daemon at debug level, invalid then valid, with health served.
    port = peers.free_port()
    ps_agent.health = f"127.0.0.1:{port}"
    config = root / CONFIG_JSON
    config.unlink()
    secret_volume.update({".dockerconfigjson": bad[0]})
    with ps_agent.daemon("--log-level", "debug") as d:
        d.wait_notify("READY=1")
        wait_for(lambda: status(port)["pull_secret"]["state"] == "invalid", what="invalid in /status")
        for path in ("/status", "/metrics", "/healthz", "/readyz"):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                    outputs.append(path + "\n" + r.read().decode())
            except urllib.error.HTTPError as e:  # /readyz may say 503
                outputs.append(path + "\n" + e.read().decode())
        secret_volume.update({".dockerconfigjson": good})
        wait_for(config.exists, what="config.json written by the daemon")
        wait_for(lambda: status(port)["pull_secret"]["state"] == "applied", what="applied in /status")
        for path in ("/status", "/metrics"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                outputs.append(path + "\n" + r.read().decode())
        published_hash = status(port)["pull_secret"]["hash"]
        d.sighup()
        wait_for(lambda: "Received SIGHUP" in d.log(), what="SIGHUP resync")
    outputs.append(d.log())
    outputs.append(d.stdout_path.read_text(errors="replace"))
    outputs.append("\n".join(d.notifications))

    published = list(outputs)
    # Everything nodetrustd keeps for itself.
    for f in sorted((root / STATE_DIR).rglob("*")):
        if f.is_file():
            outputs.append(f"{f}\n" + f.read_text(errors="replace"))
    assert any("pullsecret.json" in o for o in outputs)

    everything = "\n".join(outputs)
    assert "Pull secret refused" in everything  # the bad inputs were seen
    for needle in needles:
        for o in outputs:
            assert needle not in o, f"a credential leaked into:\n{o[:2000]}"
    # The credentials did reach the one place they belong.
    text = config.read_text()
    assert auth in text and token in text

    # A plain sha256 of the secret would let anyone who sees it test
    # password guesses offline: what is published is an HMAC keyed with
    # the node's own key, which stays in the state directory.
    key_file = root / STATE_DIR / "hash.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_bytes()
    assert len(key) == 32
    assert published_hash == hmac.new(key, normalized(good), hashlib.sha256).hexdigest()
    plain = (sha256(normalized(good)), sha256(good))
    for needle in plain:
        for o in outputs:
            assert needle not in o, f"the plain sha256 of the secret leaked into:\n{o[:2000]}"
    # The file written is the secret re-serialized: its plain sha256 is as
    # good for guessing and stays in the private ledger only.
    for o in published:
        assert sha256(config.read_bytes()) not in o, f"the plain sha256 of config.json leaked into:\n{o[:2000]}"
    for o in published:
        assert key.hex() not in o


def test_log_line_names_the_first_registries_only(ps_agent, secret_volume):
    """A secret of 25 registries: the log line names 20 and counts the
    rest (one of 20,000 registries was a 200 KB line); never a password."""
    pw = new_password("many")
    hosts = [f"r{i:02d}.example.com" for i in range(25)]
    secret_volume.update({".dockerconfigjson": secret_json({h: (USER, pw) for h in hosts})})
    p = ps_agent.run_once()
    assert p.returncode == 0, p.stderr
    line = [l for l in p.stderr.splitlines() if "Created pull secret file" in l]
    assert len(line) == 1, p.stderr
    assert f"REGISTRIES={','.join(hosts[:20])} and 5 more" in line[0], line[0]
    assert pw not in p.stderr
