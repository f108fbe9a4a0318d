# SPDX-License-Identifier: MIT
"""The state directory is input too (issue 13, class 1).

The ownership manifest (<root>/var/lib/nodetrust/manifest.json) says which
directories a prune may delete, and the pull-secret ledger which registries a
merge may remove from a credentials file. Each case here tampers with one of
them the way a corrupted disk or an attacker with write access to the state
directory could, runs the real nodetrustd --once against a --root in a tmp
directory, and asserts the exit code, the warning naming the bad entry, and
that every file outside what the agent owns survives byte for byte, inside
--root and outside it.
"""

import base64
import json

import pytest

import peers

STATE_DIR = "var/lib/nodetrust"
DOCKER = "etc/docker/certs.d"
CONFIG_JSON = "var/lib/kubelet/config.json"
DROPPED = "Dropping entry {i} of the ownership manifest (target '{t}', registry '{r}'): {why}; " \
          "what it names is not treated as nodetrustd's"
NOT_A_NAME = "not a registry name a config map key decodes to ({})"


def victims(root, outside):
    """Files nobody gave the agent, each where a bad name could lead a prune:
    {path: bytes}. Written now; the test checks them after the run."""
    files = {
        outside / "victim" / "ca.crt": b"outside --root\n",
        outside / "victim" / "hosts.toml": b"# not ours\n",
        root / "victim" / "ca.crt": b"in --root, outside the targets\n",
        root / "etc" / "docker" / "ca.crt": b"the parent of a target\n",
        root / DOCKER / "ca.crt": b"in the target directory itself\n",
        root / DOCKER / "a" / "b" / "ca.crt": b"nested, an admin's\n",
        root / DOCKER / "admin.example" / "ca.crt": b"an admin's registry\n",
    }
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def assert_intact(files):
    for path, data in files.items():
        assert path.is_file() and not path.is_symlink(), f"{path} was removed"
        assert path.read_bytes() == data, f"{path} was changed"


def entry(registry, target="docker", sha="", dir_created=True):
    return {"target": target, "registry": registry, "sha256": sha, "dir_created": dir_created}


@pytest.fixture
def setup(tmp_path, nodetrustd_bin):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    source = tmp_path / "source"
    for d in (root, outside, source):
        d.mkdir()
    files = victims(root, outside)
    agent = peers.Agent(root, source, binary=nodetrustd_bin, workdir=tmp_path)
    return root, outside, source, files, agent


def write_manifest(root, doc):
    p = root / STATE_DIR / "manifest.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(doc if isinstance(doc, bytes) else json.dumps(doc).encode())


# (case id, registry (any JSON value), the printable name the warning shows,
# the reason). Each entry is dir_created, for target docker, and wanted by no
# key: without the checks, a prune removes what it names.
def outside_rel(levels):
    return "../" * levels + "outside/victim"


BAD_NAMES = [
    ("dotdot-outside-root", outside_rel(4), outside_rel(4), NOT_A_NAME.format("key starts with '..'")),
    ("dotdot-inside-root", "../../../victim", "../../../victim", NOT_A_NAME.format("key starts with '..'")),
    ("slash-nested", "a/b", "a/b",
     NOT_A_NAME.format("invalid character in key (allowed: letters, digits, '-', '.', '_')")),
    ("dot", ".", ".", NOT_A_NAME.format("empty label in host name")),
    ("dotdot", "..", "..", NOT_A_NAME.format("key starts with '..'")),
    ("empty", "", "", NOT_A_NAME.format("empty key")),
    ("newline", "evil\nhost", "evil host",
     NOT_A_NAME.format("invalid character in key (allowed: letters, digits, '-', '.', '_')")),
    ("latin1-ff", "admin.example\u00ff", "admin.example\u00ff",
     NOT_A_NAME.format("invalid character in key (allowed: letters, digits, '-', '.', '_')")),
    ("port-leading-zero", "admin.example:05000", "admin.example:05000",
     NOT_A_NAME.format("port out of range 1-65535")),
    ("underscore", "admin_example", "admin_example", NOT_A_NAME.format("'_' is not allowed in a host name")),
]


@pytest.mark.parametrize("registry,shown,why", [c[1:] for c in BAD_NAMES], ids=[c[0] for c in BAD_NAMES])
def test_bad_registry_name_is_dropped(setup, registry, shown, why):
    root, outside, _, files, agent = setup
    write_manifest(root, {"version": 1, "entries": [entry(registry)]})
    r = agent.run_once()
    assert_intact(files)
    assert r.returncode == 0, r.stderr
    assert DROPPED.format(i=0, t="docker", r=shown, why=why) in r.stderr, r.stderr
    assert "Removed registry CA" not in r.stderr


def test_absolute_path_is_dropped(setup):
    root, outside, _, files, agent = setup
    victim = str(outside / "victim")
    write_manifest(root, {"version": 1, "entries": [entry(victim)]})
    r = agent.run_once()
    assert_intact(files)
    assert r.returncode == 0, r.stderr
    assert DROPPED.format(i=0, t="docker", r=victim, why=NOT_A_NAME.format(
        "invalid character in key (allowed: letters, digits, '-', '.', '_')")) in r.stderr, r.stderr


# Entries whose name is fine but whose other fields are not what we write.
BAD_FIELDS = [
    ("unknown-target", entry("admin.example", target="podman"), "podman", "admin.example", "unknown target"),
    ("target-not-string", {**entry("admin.example"), "target": ["docker"]}, "(not a string)", "admin.example",
     "'target' is not a string"),
    ("registry-not-string", {**entry("x"), "registry": 42}, "docker", "(not a string)",
     "'registry' is not a string"),
    ("registry-missing", {"target": "docker", "sha256": "", "dir_created": True}, "docker", "(none)",
     "'registry' is not a string"),
    ("sha-not-hex", entry("admin.example", sha="z" * 64), "docker", "admin.example",
     "'sha256' is not 64 hexadecimal digits"),
    ("sha-short", entry("admin.example", sha="ab" * 10), "docker", "admin.example",
     "'sha256' is not 64 hexadecimal digits"),
    ("sha-not-string", entry("admin.example", sha=7), "docker", "admin.example",
     "'sha256' is not 64 hexadecimal digits"),
    ("hosts-sha-not-hex", {**entry("admin.example", target="containerd"), "hosts_toml_sha256": "../x"},
     "containerd", "admin.example", "'hosts_toml_sha256' is not 64 hexadecimal digits"),
    ("dir-created-not-bool", entry("admin.example", dir_created="yes"), "docker", "admin.example",
     "'dir_created' is not true or false"),
]


@pytest.mark.parametrize("e,t,shown,why", [c[1:] for c in BAD_FIELDS], ids=[c[0] for c in BAD_FIELDS])
def test_bad_field_is_dropped(setup, e, t, shown, why):
    root, _, _, files, agent = setup
    write_manifest(root, {"version": 1, "entries": [e]})
    r = agent.run_once()
    assert_intact(files)
    assert r.returncode == 0, r.stderr
    assert DROPPED.format(i=0, t=t, r=shown, why=why) in r.stderr, r.stderr


def test_entry_not_an_object_is_dropped_and_the_rest_kept(setup, test_ca):
    """One bad entry no longer makes the whole manifest corrupt: the good one
    after it is still ours, and its directory is still pruned."""
    root, _, _, files, agent = setup
    ours = root / DOCKER / "gone.example"
    ours.mkdir()
    (ours / "ca.crt").write_bytes(test_ca.pem())
    write_manifest(root, {"version": 1, "entries": ["docker", entry("gone.example")]})
    r = agent.run_once()
    assert_intact(files)
    assert r.returncode == 0, r.stderr
    assert DROPPED.format(i=0, t="(none)", r="(none)", why="not a JSON object") in r.stderr, r.stderr
    assert not ours.exists(), "the valid entry's directory should have been pruned"
    assert peers.read_manifest(root) == {"version": 1, "entries": []}


def test_duplicate_entry_is_dropped(setup, test_ca):
    root, _, source, files, agent = setup
    (source / "dup.example").write_bytes(test_ca.pem())
    write_manifest(root, {"version": 1, "entries": [entry("dup.example"), entry("dup.example", dir_created=False)]})
    r = agent.run_once("--targets", "docker")
    assert_intact(files)
    assert r.returncode == 0, r.stderr
    assert DROPPED.format(i=1, t="docker", r="dup.example",
                          why="a second entry for the same target and registry") in r.stderr, r.stderr
    m = peers.read_manifest(root)
    assert [(e["target"], e["registry"], e["dir_created"]) for e in m["entries"]] == [("docker", "dup.example", True)]
    assert (root / DOCKER / "dup.example" / "ca.crt").read_bytes() == test_ca.pem()


def test_huge_manifest_is_cut(setup):
    """More entries than nodetrustd ever writes (3 targets x 4,096 keys): one
    warning, the rest dropped, and the run stays quick."""
    root, _, _, files, agent = setup
    n = 3 * 4096 + 500
    write_manifest(root, {"version": 1, "entries": [entry(f"r{i}.example") for i in range(n)]})
    r = agent.run_once(timeout=20)
    assert_intact(files)
    assert r.returncode == 0, r.stderr
    assert (f"The ownership manifest holds {n} entries, more than the 12288 nodetrustd ever writes; "
            "dropping all past the first 12288") in r.stderr, r.stderr


@pytest.mark.parametrize("doc", [
    b'{"version": 1, "entries": [{"target": "docker", "registry": "a\xff", "sha256": "", "dir_created": true}]}',
    b'{"version": 1, "entries": [{"target": "docker", "registry": "..\\u0000/x", "sha256": "", "dir_created": true}]}',
    b'{"version": 1, "entries": {"target": "docker", "registry": ".."}}',
    b'{"version": 1, "entries": [',
], ids=["raw-0xff", "nul-escape", "entries-not-array", "truncated"])
def test_unreadable_manifest_owns_nothing(setup, doc):
    """Not JSON, or not the shape: the whole manifest is corrupt, nothing is
    ours, and nothing is pruned."""
    root, _, _, files, agent = setup
    write_manifest(root, doc)
    r = agent.run_once()
    assert_intact(files)
    assert r.returncode == 0, r.stderr
    assert (f"The ownership manifest in '/{STATE_DIR}' is corrupt; treating every existing entry as not ours"
            in r.stderr), r.stderr


def test_symlinked_registry_directory_is_not_followed(setup):
    """A valid name whose directory was replaced by a link out of --root."""
    root, outside, _, files, agent = setup
    (root / DOCKER / "evil.example").symlink_to(outside / "victim")
    write_manifest(root, {"version": 1, "entries": [entry("evil.example")]})
    r = agent.run_once()
    assert_intact(files)
    assert r.returncode == 0, r.stderr
    assert (root / DOCKER / "evil.example").is_symlink()
    assert peers.read_manifest(root) == {"version": 1, "entries": []}


# ---------------------------------------------------------------------------
# The pull-secret ledger: what a merge removes from a credentials file.

def auth(user, password):
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def merge_setup(tmp_path, nodetrustd_bin):
    root = tmp_path / "root"
    secret = tmp_path / "dockerconfigjson"
    secret.write_text(json.dumps({"auths": {"cluster.example": auth("u", "cluster")}}))
    existing = {"auths": {"node local": auth("n", "local1"), "node-local.example": auth("n", "local2"),
                          "cluster.example": auth("u", "old")}}
    cfg = root / CONFIG_JSON
    cfg.parent.mkdir(parents=True)
    cfg.write_text(json.dumps(existing))
    cfg.chmod(0o600)
    agent = peers.Agent(root, None, pull_secret=secret, binary=nodetrustd_bin, workdir=tmp_path,
                        extra=["--pull-secret-policy", "merge", "--targets", "docker"])
    (root / "etc/docker/certs.d").mkdir(parents=True)
    return root, cfg, agent


def write_ledger(root, doc):
    p = root / STATE_DIR / "pullsecret.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc))


LEDGER_BAD_REGISTRIES = [
    ("space", "node local", "invalid character in host name"),
    ("newline", "node\nlocal", "invalid character in host name"),
]


@pytest.mark.parametrize("name,why", [c[1:] for c in LEDGER_BAD_REGISTRIES], ids=[c[0] for c in LEDGER_BAD_REGISTRIES])
def test_ledger_bad_registry_is_dropped(merge_setup, name, why):
    """A registry the secret's checks refuse was never ours: a merge keeps a
    node-local entry of that name."""
    root, cfg, agent = merge_setup
    # An invalid key as the node's file holds it.
    doc = json.loads(cfg.read_text())
    doc["auths"][name] = doc["auths"].pop("node local")
    cfg.write_text(json.dumps(doc))
    write_ledger(root, {"version": 1, "targets": {"/" + CONFIG_JSON: {"registries": [name, "cluster.example"],
                                                                       "sha256": ""}}})
    r = agent.run_once()
    auths = json.loads(cfg.read_text())["auths"]
    assert sorted(auths) == sorted([name, "node-local.example", "cluster.example"])
    assert auths[name] == auth("n", "local1")
    assert auths["cluster.example"] == auth("u", "cluster")
    assert r.returncode == 0, r.stderr
    shown = name.replace("\n", " ")
    assert (f"Dropping registry '{shown}' of '/{CONFIG_JSON}' from the pull-secret ledger: {why}; "
            "a merge no longer removes it as nodetrustd's") in r.stderr, r.stderr


@pytest.mark.parametrize("path,value,why", [
    ("var/lib/kubelet/config.json", {"registries": [], "sha256": ""}, "not an absolute path"),
    ("/" + CONFIG_JSON, {"registries": "node-local.example", "sha256": ""}, "'registries' is not an array"),
    ("/" + CONFIG_JSON, {"registries": ["node-local.example"], "sha256": 5}, "'sha256' is not 64 hexadecimal digits"),
    ("/" + CONFIG_JSON, ["node-local.example"], "its entry is not a JSON object"),
], ids=["relative-path", "registries-not-array", "sha-not-string", "entry-not-object"])
def test_ledger_bad_target_is_dropped(merge_setup, path, value, why):
    root, cfg, agent = merge_setup
    write_ledger(root, {"version": 1, "targets": {path: value}})
    r = agent.run_once()
    auths = json.loads(cfg.read_text())["auths"]
    assert sorted(auths) == ["cluster.example", "node local", "node-local.example"]
    assert auths["node-local.example"] == auth("n", "local2")
    assert r.returncode == 0, r.stderr
    assert (f"Dropping '{path}' from the pull-secret ledger: {why}; "
            "a merge no longer removes any registry from it as nodetrustd's") in r.stderr, r.stderr
