# SPDX-License-Identifier: MIT
"""End-to-end tests of the core agent (issue 2): what nodetrustd writes is what a
container runtime trusts.

Each test runs the real nodetrustd against a --root under a temporary
directory and a config map volume in the kubelet's layout; where trust is the
question, a real docker-registry serves TLS on 127.0.0.1 and skopeo inspect,
in a private mount namespace, reads the agent's certs.d through
/etc/containers/certs.d and /etc/docker/certs.d exactly as CRI-O or podman
would. The machine's own /etc is never written.
"""

import base64
import json
import os
import re
import subprocess
import statistics
import stat
import time

import pytest

import peers
from peers import ca_path, is_x509_failure, skopeo_inspect, wait_for

TARGETS = ("docker", "containers", "containerd")


# --------------------------------------------------------------------------
# Helpers.

def assert_trusted(registry, root, which="both", tiny_image=None):
    rc, out, err = skopeo_inspect(registry.ref(), root, which)
    assert rc == 0, f"skopeo inspect ({which}) failed:\n{err}"
    info = json.loads(out)
    assert info["Name"] == f"{registry.host}/test/tiny"
    if tiny_image is not None:
        assert info["Digest"] == peers.image_manifest_digest(tiny_image)


def assert_untrusted(registry, root, which="both"):
    rc, out, err = skopeo_inspect(registry.ref(), root, which)
    assert rc != 0, f"skopeo inspect ({which}) unexpectedly succeeded:\n{out}"
    assert is_x509_failure(err), f"expected an x509 failure, got:\n{err}"


def assert_written(root, target, host, *cas):
    """ROOT/etc/<target>/certs.d/<host>/ca.crt is a normalized PEM bundle of
    exactly `cas`, in order, mode 0644 in a 0755 directory."""
    f = ca_path(root, target, host)
    assert f.is_file() and not f.is_symlink(), f"{f} missing"
    assert stat.S_IMODE(f.stat().st_mode) == 0o644, oct(f.stat().st_mode)
    assert stat.S_IMODE(f.parent.stat().st_mode) == 0o755, oct(f.parent.stat().st_mode)
    text = f.read_text()
    assert text.startswith("-----BEGIN CERTIFICATE-----\n"), text[:80]
    assert text.endswith("-----END CERTIFICATE-----\n"), text[-80:]
    assert "\r" not in text and "PRIVATE KEY" not in text
    assert text.count("-----BEGIN ") == len(cas)
    assert peers.pem_certs_der(text) == [ca.der() for ca in cas]


def assert_absent(root, host, targets=TARGETS):
    for t in targets:
        d = ca_path(root, t, host).parent
        assert not d.exists() and not d.is_symlink(), f"{d} should not exist"


def stderr_lines_naming(stderr, key):
    return [line for line in stderr.splitlines() if key in line]


def plan_lines(stdout):
    """The --dry-run plan, one action per line. A conflict line may carry a
    trailing ": reason" after its path; it is dropped so lines compare as
    `conflict TARGET HOST:PORT PATH` (test paths hold no spaces)."""
    out = []
    for line in stdout.splitlines():
        if line.startswith("conflict "):
            words = line.split(" ", 3)
            if len(words) == 4 and ": " in words[3]:
                line = " ".join(words[:3] + [words[3].split(": ", 1)[0]])
        out.append(line)
    return out


def manifest_text(root):
    """The ownership manifest as text; its schema is the agent's own, so
    tests only ask whether a registry is mentioned in it."""
    m = peers.read_manifest(root)
    assert m is not None, "no ownership manifest under ROOT/var/lib/nodetrust"
    return json.dumps(m)


# --------------------------------------------------------------------------
# A runtime trusts the registry once, and only once, the agent wrote its CA.

def test_containers_certs_d_makes_registry_trusted(registry, agent, root,
                                                   trust_volume, tiny_image):
    assert_untrusted(registry, root, "containers")

    trust_volume.update({registry.key_name: registry.ca.pem()})
    agent.targets = ["containers"]
    p = agent.run_once()
    assert p.returncode == 0, p.stderr

    assert_written(root, "containers", registry.host, registry.ca)
    assert_absent(root, registry.host, ["docker", "containerd"])
    assert not (root / "etc/docker").exists()
    assert_trusted(registry, root, "containers", tiny_image)
    assert registry.host in manifest_text(root)


def test_docker_certs_d_makes_registry_trusted(registry, agent, root,
                                               trust_volume, tiny_image):
    assert_untrusted(registry, root, "docker")

    trust_volume.update({registry.key_name: registry.ca.pem()})
    agent.targets = ["docker"]
    p = agent.run_once()
    assert p.returncode == 0, p.stderr

    assert_written(root, "docker", registry.host, registry.ca)
    # No containers directory for the host, so containers/image falls through
    # to /etc/docker/certs.d: trusted through both lookups.
    assert_absent(root, registry.host, ["containers", "containerd"])
    assert_trusted(registry, root, "docker", tiny_image)
    assert_trusted(registry, root, "both", tiny_image)


def test_all_targets_by_default(registry, agent, root, trust_volume):
    trust_volume.update({registry.key_name: registry.ca.pem()})
    p = agent.run_once()
    assert p.returncode == 0, p.stderr
    for t in TARGETS:
        assert_written(root, t, registry.host, registry.ca)
    assert_trusted(registry, root, "containers")
    assert_trusted(registry, root, "docker")


# --------------------------------------------------------------------------
# CA rotation and key removal.

def test_ca_rotation(registry, agent, root, trust_volume, tmp_path, test_ca,
                     nodetrustd_bin):
    trust_volume.update({registry.key_name: test_ca.pem()})
    assert agent.run_once().returncode == 0
    assert_trusted(registry, root)

    new_ca = peers.make_ca(tmp_path / "rotation", "rotated-ca")
    new_server = peers.make_server_cert(new_ca, tmp_path / "rotation", name="rotated")

    # The usual rotation: publish old + new first, then switch the server.
    trust_volume.update({registry.key_name: test_ca.pem() + new_ca.pem()})
    p = agent.run_once()
    assert p.returncode == 0, p.stderr
    for t in TARGETS:
        assert_written(root, t, registry.host, test_ca, new_ca)
    assert_trusted(registry, root)

    registry.restart(cert=new_server.cert, key=new_server.key)
    assert_trusted(registry, root)

    # Only the new CA left in the map.
    trust_volume.update({registry.key_name: new_ca.pem()})
    p = agent.run_once()
    assert p.returncode == 0, p.stderr
    for t in TARGETS:
        assert_written(root, t, registry.host, new_ca)
    assert_trusted(registry, root, "containers")
    assert_trusted(registry, root, "docker")

    # A node still holding only the old CA would not trust the new server.
    old_root = tmp_path / "old-root"
    old_volume = peers.KubeletVolume(tmp_path / "old-volume",
                                     {registry.key_name: test_ca.pem()})
    old = peers.Agent(old_root, old_volume.path, binary=nodetrustd_bin,
                      workdir=tmp_path)
    assert old.run_once().returncode == 0
    assert_written(old_root, "containers", registry.host, test_ca)
    assert_untrusted(registry, old_root, "containers")
    assert_untrusted(registry, old_root, "docker")


def test_hard_ca_switch_without_overlap(registry, agent, root, trust_volume,
                                        tmp_path, test_ca):
    """The server switches CA first; trust is back as soon as the map is."""
    trust_volume.update({registry.key_name: test_ca.pem()})
    assert agent.run_once().returncode == 0
    new_ca = peers.make_ca(tmp_path / "switch", "switched-ca")
    new_server = peers.make_server_cert(new_ca, tmp_path / "switch")
    registry.restart(cert=new_server.cert, key=new_server.key)
    assert_untrusted(registry, root)

    trust_volume.update({registry.key_name: new_ca.pem()})
    assert agent.run_once().returncode == 0
    assert_trusted(registry, root)


def test_key_removed_from_map(registry, agent, root, trust_volume, other_ca):
    trust_volume.update({registry.key_name: registry.ca.pem(),
                         "keep.example.com": other_ca.pem()})
    assert agent.run_once().returncode == 0
    assert_trusted(registry, root)

    trust_volume.update({"keep.example.com": other_ca.pem()})
    p = agent.run_once()
    assert p.returncode == 0, p.stderr

    assert_absent(root, registry.host)
    for t in TARGETS:
        assert_written(root, t, "keep.example.com", other_ca)
    assert registry.host not in manifest_text(root)
    assert_untrusted(registry, root, "containers")
    assert_untrusted(registry, root, "docker")

    # The last key goes too: an empty map prunes everything the agent made.
    trust_volume.update({})
    p = agent.run_once()
    assert p.returncode == 0, p.stderr
    assert_absent(root, "keep.example.com")


# --------------------------------------------------------------------------
# What an administrator placed is never touched.

def test_admin_entries_survive(registry, agent, root, trust_volume, other_ca,
                               tmp_path):
    docker = root / "etc/docker/certs.d"
    # An unrelated admin entry, with a client pair and a note.
    admin = docker / "admin.example.com"
    admin.mkdir(parents=True)
    (admin / "ca.crt").write_bytes(other_ca.pem())
    (admin / "client.cert").write_bytes(other_ca.pem())
    (admin / "client.key").write_bytes(other_ca.key.read_bytes())
    (admin / "README").write_text("placed by hand, do not touch\n")
    # An admin entry for the very registry the map names, with another CA.
    collide = docker / registry.host
    collide.mkdir()
    (collide / "ca.crt").write_bytes(b"# admin's own bundle\n" + other_ca.pem())
    os.chmod(collide / "ca.crt", 0o600)

    def admin_state():
        return {"admin": peers.tree_snapshot(admin),
                "collide": peers.tree_snapshot(collide),
                "collide_dir_mode": collide.stat().st_mode}
    before = admin_state()

    trust_volume.update({registry.key_name: registry.ca.pem()})
    p = agent.run_once()
    assert p.returncode == 1, f"a conflict must exit 1:\n{p.stderr}"
    lines = stderr_lines_naming(p.stderr, registry.host)
    assert any("conflict" in line.lower() for line in lines), p.stderr
    assert admin_state() == before
    for t in ("containers", "containerd"):
        assert_written(root, t, registry.host, registry.ca)
    # containers/certs.d wins over docker/certs.d: trusted; docker alone
    # (the admin's other CA) is not.
    assert_trusted(registry, root, "both")
    assert_untrusted(registry, root, "docker")

    plan = agent.dry_run()
    assert (f"conflict docker {registry.host} "
            f"{ca_path(root, 'docker', registry.host)}") in plan_lines(plan.stdout), plan.stdout
    assert admin_state() == before

    # Rotation while the conflict stands.
    trust_volume.update({registry.key_name: registry.ca.pem() + other_ca.pem()})
    p = agent.run_once()
    assert p.returncode == 1, p.stderr
    assert admin_state() == before
    assert_written(root, "containers", registry.host, registry.ca, other_ca)

    # The key goes: only the agent's own entries are pruned.
    trust_volume.update({})
    p = agent.run_once()
    assert p.returncode == 0, p.stderr
    assert admin_state() == before
    assert_absent(root, registry.host, ["containers", "containerd"])
    assert_untrusted(registry, root, "both")

    # A key naming the unrelated admin entry is a conflict too, never a write.
    trust_volume.update({"admin.example.com": registry.ca.pem()})
    p = agent.run_once()
    assert p.returncode == 1, p.stderr
    assert admin_state() == before
    trust_volume.update({})
    assert agent.run_once().returncode == 0
    assert admin_state() == before
    assert_absent(root, "admin.example.com", ["containers", "containerd"])


# --------------------------------------------------------------------------
# The daemon follows the kubelet's ..data swap without a restart.

def _poll_changed(paths, old, timeout=10.0):
    """Poll paths every 1 ms until none holds `old` bytes; return the times
    (monotonic) at which each changed. Every read must be old or complete."""
    changed = {}
    deadline = time.monotonic() + timeout
    while len(changed) < len(paths):
        for p in paths:
            if p in changed:
                continue
            try:
                data = p.read_bytes()
            except FileNotFoundError:
                data = None
            if data != old:
                changed[p] = (time.monotonic(), data)
        if time.monotonic() > deadline:
            raise AssertionError(f"files did not change within {timeout}s: "
                                 f"{[str(p) for p in paths if p not in changed]}")
        time.sleep(0.001)
    return changed


def test_daemon_follows_data_swap(agent, root, trust_volume, test_ca, other_ca,
                                  report_line):
    a, b = "swap.example.com", "other.example.com:5000"
    trust_volume.update({"swap.example.com": test_ca.pem(),
                         "other.example.com..5000": test_ca.pem()})
    with agent.daemon() as d:
        d.wait_notify("READY=1")
        for t in TARGETS:
            assert_written(root, t, a, test_ca)
            assert_written(root, t, b, test_ca)

        paths = [ca_path(root, t, a) for t in TARGETS]
        first, all_three = [], []
        current = paths[0].read_bytes()
        cas = [other_ca, test_ca]
        for i in range(20):
            ca = cas[i % 2]
            swapped = trust_volume.update({"swap.example.com": ca.pem(),
                                           "other.example.com..5000": test_ca.pem()})
            changed = _poll_changed(paths, current)
            # The first new content any read saw is the whole new file:
            # writes are atomic renames, never a partial file.
            for path, (_, seen) in changed.items():
                assert seen == path.read_bytes(), f"partial read of {path}"
            times = [t for t, _ in changed.values()]
            first.append((min(times) - swapped) * 1000)
            all_three.append((max(times) - swapped) * 1000)
            for t in TARGETS:
                assert_written(root, t, a, ca)
            current = paths[0].read_bytes()
        assert d.alive()

        report_line(
            "..data swap -> ca.crt on disk (20 swaps, 1 ms polling): "
            f"first target median {statistics.median(first):.1f} ms, "
            f"max {max(first):.1f} ms; all three targets median "
            f"{statistics.median(all_three):.1f} ms, max {max(all_three):.1f} ms")

        # A key leaves the map: its files go, without a restart.
        swapped = trust_volume.update({"swap.example.com": test_ca.pem()})
        gone = [ca_path(root, t, b) for t in TARGETS]
        wait_for(lambda: not any(p.parent.exists() for p in gone),
                 interval=0.001, what=f"{b} pruned after ..data swap")
        removed_ms = (time.monotonic() - swapped) * 1000
        report_line(f"..data swap -> removed key pruned in all targets: {removed_ms:.1f} ms")
        for t in TARGETS:
            assert_written(root, t, a, test_ca)
        assert d.alive()
    # Leaving the block sent SIGTERM and checked exit status 0.


def test_daemon_sighup_repairs_drift(agent, root, trust_volume, test_ca):
    trust_volume.update({"drift.example.com": test_ca.pem()})
    with agent.daemon("--resync-interval", "3600") as d:
        d.wait_notify("READY=1")
        good = ca_path(root, "docker", "drift.example.com").read_bytes()
        ca_path(root, "docker", "drift.example.com").unlink()
        ca_path(root, "containers", "drift.example.com").write_bytes(b"tampered\n")
        d.sighup()
        wait_for(lambda: all(ca_path(root, t, "drift.example.com").exists()
                             and ca_path(root, t, "drift.example.com").read_bytes() == good
                             for t in TARGETS), what="drift repaired after SIGHUP")
        assert d.alive()


def test_daemon_starts_with_plain_directory(agent, root, tmp_path, test_ca):
    """A bare-metal host: a plain directory of files, no kubelet layout."""
    src = tmp_path / "plain"
    src.mkdir()
    (src / "plain.example.com..8443").write_bytes(test_ca.pem())
    agent.trust_source = src
    p = agent.run_once()
    assert p.returncode == 0, p.stderr
    for t in TARGETS:
        assert_written(root, t, "plain.example.com:8443", test_ca)


# --------------------------------------------------------------------------
# Value forms and refusals.

def test_value_forms(agent, root, trust_volume, test_ca, other_ca):
    pem = test_ca.pem()
    good = {
        "pem.example.com": (pem, [test_ca]),
        "b64.example.com": (base64.b64encode(pem), [test_ca]),
        "b64wrapped.example.com": (base64.encodebytes(pem), [test_ca]),
        "der.example.com": (test_ca.der(), [test_ca]),
        "crlf.example.com": (pem.replace(b"\n", b"\r\n"), [test_ca]),
        "bundle.example.com..5000": (pem + other_ca.pem(), [test_ca, other_ca]),
    }
    bad = {
        "key.example.com": test_ca.key.read_bytes(),
        "certandkey.example.com": pem + test_ca.key.read_bytes(),
        "garbage.example.com": b"this is not a certificate\n",
        "empty.example.com": b"",
    }
    trust_volume.update({**{k: v for k, (v, _) in good.items()}, **bad})
    p = agent.run_once()
    assert p.returncode == 1, f"refused values must exit 1:\n{p.stderr}"

    for key, (_, cas) in good.items():
        host = key.replace("..", ":")
        for t in TARGETS:
            assert_written(root, t, host, *cas)
    for key in bad:
        assert_absent(root, key)
        assert stderr_lines_naming(p.stderr, key), f"no reason logged for {key}:\n{p.stderr}"
    for f in root.rglob("*"):
        if f.is_file() and f.name != "manifest.json":
            assert b"PRIVATE KEY" not in f.read_bytes(), f"{f} holds a private key"


@pytest.mark.parametrize("key", ["bad..99999", "bad..0", "bad..abc", "bad..",
                                 "bad..-1", "bad_host.example.com"])
def test_bad_key_refused_others_applied(agent, root, trust_volume, test_ca, key):
    trust_volume.update({key: test_ca.pem(),
                         "good.example.com..5000": test_ca.pem(),
                         "storage-ca-bundle.pem": test_ca.pem()})
    p = agent.run_once()
    assert p.returncode == 1, p.stderr
    assert stderr_lines_naming(p.stderr, key), f"{key} refusal not logged:\n{p.stderr}"
    for t in TARGETS:
        assert_written(root, t, "good.example.com:5000", test_ca)
        entries = sorted(x.name for x in (root / peers.TARGET_DIRS[t]).iterdir())
        assert entries == ["good.example.com:5000"], entries

    plan = agent.dry_run()
    refusals = [l for l in plan.stdout.splitlines() if l.startswith("refuse ")]
    assert len(refusals) == 1 and refusals[0].startswith(f"refuse {key}: "), plan.stdout
    assert len(refusals[0]) > len(f"refuse {key}: "), "refusal without a reason"


def test_ignore_keys(agent, root, trust_volume, test_ca):
    trust_volume.update({"storage-ca-bundle.pem": test_ca.pem(),
                         "app.example.com": test_ca.pem()})
    p = agent.run_once()
    assert p.returncode == 0, f"the default ignored key is not a refusal:\n{p.stderr}"
    assert_absent(root, "storage-ca-bundle.pem")

    p = agent.run_once("--ignore-keys", "storage-ca-bundle.pem,app.example.com")
    assert p.returncode == 0, p.stderr
    assert_absent(root, "app.example.com")
    assert_absent(root, "storage-ca-bundle.pem")


def test_bad_value_keeps_last_good(agent, root, trust_volume, test_ca):
    trust_volume.update({"lastgood.example.com": test_ca.pem()})
    assert agent.run_once().returncode == 0
    before = peers.tree_snapshot(root / "etc")

    trust_volume.update({"lastgood.example.com": b"-----BEGIN CERTIFICATE-----\nbroken\n"})
    p = agent.run_once()
    assert p.returncode == 1, p.stderr
    assert peers.tree_snapshot(root / "etc") == before


def test_expired_and_not_yet_valid_written_but_flagged(agent, root, trust_volume,
                                                      tmp_path):
    expired = peers.make_ca(tmp_path / "validity", "expired-ca", expired=True)
    future = peers.make_ca(tmp_path / "validity", "future-ca", not_yet_valid=True)
    trust_volume.update({"expired.example.com": expired.pem(),
                         "future.example.com..5000": future.pem()})
    p = agent.run_once()
    assert p.returncode in (0, 1), p.stderr
    for t in TARGETS:
        assert_written(root, t, "expired.example.com", expired)
        assert_written(root, t, "future.example.com:5000", future)
    # Flagged: with --once there is no health endpoint, so the log is where
    # an operator learns that a written CA cannot currently verify anything.
    for host, words in (("expired.example.com", ("expire",)),
                        ("future.example.com:5000", ("not yet valid", "not valid before",
                                                     "not-yet-valid", "notbefore"))):
        # The host names contain the words; look at the rest of each line.
        lines = [l.replace(host, "").lower() for l in p.stderr.splitlines() if host in l]
        assert any(w in l for l in lines for w in words), (
            f"{host}: written but not flagged on stderr:\n{p.stderr}")


def test_symlinked_output_never_followed(agent, root, trust_volume, tmp_path,
                                         test_ca):
    """No path escapes: a symlink planted where the agent writes is refused,
    and nothing lands where it points."""
    outside = tmp_path / "outside"
    outside.mkdir()
    docker = root / "etc/docker/certs.d"
    docker.mkdir(parents=True)
    os.symlink(outside, docker / "evil.example.com")
    (root / "etc/containers").mkdir(parents=True)
    os.symlink(outside, root / "etc/containers/certs.d")

    trust_volume.update({"evil.example.com": test_ca.pem(),
                         "fine.example.com": test_ca.pem()})
    p = agent.run_once()
    assert p.returncode in (1, 3), f"a symlinked target must not pass silently:\n{p.stderr}"
    assert list(outside.iterdir()) == [], "the agent wrote through a symlink"
    assert os.readlink(docker / "evil.example.com") == str(outside)
    assert os.readlink(root / "etc/containers/certs.d") == str(outside)
    assert_written(root, "containerd", "evil.example.com", test_ca)
    assert_written(root, "docker", "fine.example.com", test_ca)

    # Pruning must not follow them either.
    trust_volume.update({})
    agent.run_once()
    assert list(outside.iterdir()) == []
    assert (docker / "evil.example.com").is_symlink()
    assert (root / "etc/containers/certs.d").is_symlink()


def test_state_dir(agent, root, trust_volume, test_ca):
    trust_volume.update({"state.example.com": test_ca.pem()})
    p = agent.run_once("--state-dir", "/var/lib/nodetrust-e2e")
    assert p.returncode == 0, p.stderr
    m = peers.read_manifest(root, "var/lib/nodetrust-e2e")
    assert m is not None and "state.example.com" in json.dumps(m)
    assert not (root / "var/lib/nodetrust").exists()


# --------------------------------------------------------------------------
# --dry-run and exit statuses.

def test_dry_run_writes_nothing_and_lists_plan(agent, root, trust_volume,
                                               test_ca, other_ca):
    # On an empty root: nothing at all is created, not even the state dir.
    trust_volume.update({"a.example.com": test_ca.pem()})
    p = agent.dry_run()
    assert p.returncode in (0, 1), p.stderr
    assert list(root.iterdir()) == [], "dry-run wrote under --root"
    hosts_toml = lambda host: ca_path(root, "containerd", host).with_name("hosts.toml")
    assert {l for l in plan_lines(p.stdout) if not l.startswith("target ")} == {
        f"create {t} a.example.com {ca_path(root, t, 'a.example.com')}" for t in TARGETS} | {
        f"create containerd a.example.com {hosts_toml('a.example.com')}"}
    # Then which runtimes will read it: none is installed under this root.
    assert sorted(l for l in p.stdout.splitlines() if l.startswith("target ")) == [
        f"target {t} not_installed: " + why for t, why in (
            ("containerd", "no /etc/containerd/config.toml, containerd socket or binary"),
            ("containers", "no CRI-O, podman, skopeo or buildah found (/etc/containers/registries.conf, ...)"),
            ("docker", "no docker daemon found (/etc/docker/daemon.json, ...)"))]

    trust_volume.update({"a.example.com": test_ca.pem(),
                         "b.example.com..5000": test_ca.pem(),
                         "c.example.com": test_ca.pem()})
    assert agent.run_once().returncode == 0
    admin = root / "etc/docker/certs.d/admin.example.com"
    admin.mkdir()
    (admin / "ca.crt").write_bytes(other_ca.pem())

    trust_volume.update({"a.example.com": other_ca.pem(),            # update
                         "b.example.com..5000": test_ca.pem(),      # unchanged
                         "d.example.com": test_ca.pem(),            # create
                         "admin.example.com": test_ca.pem(),        # conflict (docker)
                         "bad..99999": test_ca.pem(),               # refuse
                         "storage-ca-bundle.pem": test_ca.pem()})   # ignored
    before = peers.tree_snapshot(root)
    p = agent.dry_run()
    assert p.returncode in (0, 1), p.stderr
    assert peers.tree_snapshot(root) == before, "dry-run changed files under --root"

    lines = plan_lines(p.stdout)
    refusals = [l for l in lines if l.startswith("refuse ")]
    assert len(refusals) == 1 and refusals[0].startswith("refuse bad..99999: "), lines
    expected = set()
    for t in TARGETS:
        expected |= {
            f"update {t} a.example.com {ca_path(root, t, 'a.example.com')}",
            f"unchanged {t} b.example.com:5000 {ca_path(root, t, 'b.example.com:5000')}",
            f"remove {t} c.example.com {ca_path(root, t, 'c.example.com')}",
            f"create {t} d.example.com {ca_path(root, t, 'd.example.com')}",
        }
    expected.add(f"conflict docker admin.example.com {ca_path(root, 'docker', 'admin.example.com')}")
    for t in ("containers", "containerd"):
        expected.add(f"create {t} admin.example.com {ca_path(root, t, 'admin.example.com')}")
    # containerd's hosts.toml follows its ca.crt, and goes before it.
    expected |= {
        f"unchanged containerd a.example.com {hosts_toml('a.example.com')}",
        f"unchanged containerd b.example.com:5000 {hosts_toml('b.example.com:5000')}",
        f"remove containerd c.example.com {hosts_toml('c.example.com')}",
        f"create containerd d.example.com {hosts_toml('d.example.com')}",
        f"create containerd admin.example.com {hosts_toml('admin.example.com')}",
    }
    # Beyond the contract the plan may say which keys it ignored; only
    # ignored keys may appear there.
    ignored = [l for l in lines if l.startswith("ignore ")]
    assert set(ignored) <= {"ignore storage-ca-bundle.pem"}, ignored
    runtimes = [l for l in lines if l.startswith("target ")]
    assert len(runtimes) == 3, lines
    assert set(lines) - set(refusals) - set(ignored) - set(runtimes) == expected, "\n".join(sorted(lines))
    assert len(lines) == len(set(lines)), "duplicate plan lines"

    # Apply it; the plan is then empty of changes.
    assert agent.run_once().returncode == 1
    p = agent.dry_run()
    changes = [l for l in p.stdout.splitlines()
               if l.split(" ", 1)[0] in ("create", "update", "remove")]
    assert changes == [], p.stdout


def test_exit_statuses(agent, root, trust_volume, tmp_path, test_ca):
    trust_volume.update({"ok.example.com": test_ca.pem()})
    assert agent.run_once().returncode == 0
    assert agent.run_once().returncode == 0, "an unchanged re-run is still success"

    p = agent.run_once("--no-such-flag")
    assert p.returncode == 2, p
    p = agent.run_once("--targets", "docker,nosuchruntime")
    assert p.returncode == 2, p

    missing = peers.Agent(root, tmp_path / "does-not-exist", binary=agent.binary,
                          workdir=tmp_path)
    p = missing.run_once()
    assert p.returncode == 3, p
    assert p.stderr.strip(), "a failure must say why on stderr"
    # A source that cannot be read never prunes what the last good one wrote.
    for t in TARGETS:
        assert_written(root, t, "ok.example.com", test_ca)


HEAL_PROBE = r"""
set -eu
d="$ROOT/etc/docker/certs.d"
mkdir -p "$d"
mount -t tmpfs -o size=8k,nr_inodes=4 tmpfs "$d"
dd if=/dev/zero of="$d/fill" bs=1k count=8 2>/dev/null || true
"$AGENT" --root "$ROOT" --trust-source "$TRUST" --health-listen none --verify-interval 0 \
    --resync-interval 300 2> "$WORK/agent.err" &
agent=$!
i=0
until grep -q "could not write 1 file: docker: heal.example.com (No space left on device)" "$WORK/agent.err"; do
    i=$((i+1)); [ $i -lt 200 ] || { kill $agent; exit 3; }; sleep 0.05
done
# Room again, without a single inotify event in the watched directory.
t0=$(date +%s.%N)
mount -o remount,size=1m,nr_inodes=1000 "$d"
i=0
until [ -f "$d/heal.example.com/ca.crt" ]; do
    i=$((i+1)); [ $i -lt 200 ] || { kill $agent; exit 4; }; sleep 0.05
done
t1=$(date +%s.%N)
kill $agent; wait $agent || true
echo "healed_seconds=$(python3 -c "print(round($t1 - $t0, 2))")"
"""


def test_failed_write_heals_without_waiting_for_the_resync(nodetrustd_bin, root, trust_volume, tmp_path,
                                                            test_ca):
    """A target directory that is full (a tiny tmpfs in a private mount
    namespace: ENOSPC) fails the write; once there is room again (a
    remount, which gives no inotify event) the agent writes within
    seconds, by retrying with backoff (1 s doubling), not at the next
    resync (300 s here)."""
    trust_volume.update({"heal.example.com": test_ca.pem()})
    env = dict(os.environ, WORK=str(tmp_path), AGENT=str(nodetrustd_bin), ROOT=str(root),
               TRUST=str(trust_volume.path))
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", HEAL_PROBE],
                       env=env, capture_output=True, text=True, timeout=60)
    log = (tmp_path / "agent.err").read_text() if (tmp_path / "agent.err").exists() else ""
    assert r.returncode == 0, f"exit {r.returncode}: {r.stdout}{r.stderr}\n{log}"
    healed = float(re.search(r"healed_seconds=([0-9.]+)", r.stdout).group(1))
    assert healed < 10, log
    print(f"full target directory healed {healed:.1f} s after it had room again")


def test_descriptors_stay_few_whatever_the_number_of_registries(agent, root, trust_volume, test_ca):
    """Every watched directory used to hold a descriptor (3N+3): with 300
    registries and a limit of 64 descriptors, the agent watched the first
    few and silently missed edits in the others. One inotify descriptor
    now holds every watch: the last registry's file is repaired at once
    (no resync: --resync-interval 3600), and the agent holds a handful of
    descriptors."""
    pem = test_ca.pem()
    n = 300
    trust_volume.update({f"r{i:03d}.example.com..5000": pem for i in range(n)})
    with agent.daemon("--resync-interval", "3600",
                      prefix=["prlimit", "--nofile=64:64", "--"]) as d:
        d.wait_notify("READY=1", timeout=60)
        fds = len(os.listdir(f"/proc/{d.proc.pid}/fd"))
        assert fds < 32, f"{fds} descriptors open"
        last = ca_path(root, "containerd", f"r{n - 1:03d}.example.com:5000")
        good = last.read_bytes()
        last.write_bytes(b"tampered\n")
        wait_for(lambda: last.read_bytes() == good, timeout=10, what="the last registry's edit repaired")
        first = ca_path(root, "docker", "r000.example.com:5000")
        first.unlink()
        wait_for(lambda: first.exists() and first.read_bytes() == good, timeout=10,
                 what="the first registry's deletion repaired")
        fds = len(os.listdir(f"/proc/{d.proc.pid}/fd"))
        assert fds < 32, f"{fds} descriptors open after the repairs"
        assert d.alive()
