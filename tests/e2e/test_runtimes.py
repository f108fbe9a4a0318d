# SPDX-License-Identifier: MIT
"""End to end with real container runtimes: what nodetrustd writes is what
containerd and podman trust when they pull, and what nodetrustd reports
about containerd is what containerd would do.

The runtimes are Debian's containerd (driven by `ctr image pull --hosts-dir
<root>/etc/containerd/certs.d`, the same hosts-directory code the CRI plugin
runs for `config_path`) and podman (`podman pull` seeing <root>'s
certs.d directories as /etc/containers/certs.d and /etc/docker/certs.d in a
private mount namespace). The registry is a real docker-registry on
127.0.0.1 with TLS; it is reached as `registry.nodetrust.test` (a hosts file
bind-mounted over /etc/hosts, in the pulling process's namespace only),
because containerd talks plain HTTP to localhost/127.0.0.1 unless a
hosts.toml names an https server, and as localhost/127.0.0.1 to prove the
generated hosts.toml does exactly that. See runtimes.py.

What the tests prove:
1. containerd refuses the registry (x509) before the agent ran, pulls once
   `nodetrustd --once` applied the config map, keeps pulling through a CA
   rotation the daemon follows from the kubelet's ..data swap (while the
   pre-rotation certs.d no longer works), and refuses again once the key is
   removed.
2. a loopback registry works through the generated hosts.toml; with
   `--containerd-hosts-toml never` containerd never uses TLS for it (plain
   HTTP to a TLS port: 400), while a non-loopback name still works from
   ca.crt alone.
3. an admin's hosts.toml in a directory the agent owns is never rewritten:
   without a `ca` entry it is reported shadowed and containerd does not
   trust the registry; with `ca = "ca.crt"` it is reported applied and
   containerd pulls.
4. podman refuses the registry before and pulls after the agent applied the
   config map.
5. the containerd target's state in /status and /metrics follows
   containerd's config.toml under --root (version 2 and 3, config_path set,
   unset, elsewhere, malformed, and no containerd at all), an inactive
   target does not make the agent unready, and the detection is re-evaluated
   on SIGHUP.

Nothing outside temporary directories and private mount namespaces is
written; containerd, the registries and the agents are stopped by their
fixtures.
"""

import os
import re
import shutil
import socket
import tempfile
import tomllib
from pathlib import Path

import pytest

import peers
import promparse
import runtimes
from peers import is_x509_failure, wait_for
from runtimes import REGISTRY_NAME, containerd_hosts_dir, image_ref, key_for

# Debian 12's /etc/containerd/config.toml as the package ships it: the CRI
# plugin's registry config_path is unset, so containerd 1.6 reads no certs.d.
DEBIAN_SHIPPED_CONFIG = """\
version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"""

# An unterminated table header on line 3.
MALFORMED_CONFIG = """\
version = 2

[plugins."io.containerd.grpc.v1.cri".registry
  config_path = "/etc/containerd/certs.d"
"""

# An admin's hosts.toml for HOST:PORT that names no CA. It has a [host]
# table, as containerd's docs/hosts.md examples do: containerd 1.6 cannot
# parse a hosts.toml without one ("invalid `host` tree") and then falls back
# to the directory's *.crt, which would hide what this file means.
ADMIN_HOSTS_TOML_NO_CA = """\
# Written by this node's administrator: pull and resolve only.
server = "https://{host}"

[host."https://{host}"]
  capabilities = ["pull", "resolve"]
"""

ADMIN_HOSTS_TOML_WITH_CA = {
    "ca-in-host-table": """\
# Written by this node's administrator, trusting the CA nodetrust keeps.
server = "https://{host}"

[host."https://{host}"]
  capabilities = ["pull", "resolve"]
  ca = "ca.crt"
""",
    # containerd 1.6 cannot parse this one (no [host] table) and falls back
    # to the directory's *.crt, so it trusts ca.crt either way; 2.x reads it.
    "ca-top-level": """\
# Written by this node's administrator, trusting the CA nodetrust keeps.
server = "https://{host}"
ca = "ca.crt"
""",
}


# --------------------------------------------------------------------------
# Fixtures.

@pytest.fixture(scope="module", autouse=True)
def _runtime_binaries():
    missing = runtimes.missing_runtimes()
    if missing:
        pytest.fail("container runtimes missing from PATH: " + ", ".join(missing)
                    + " (apt-get install --no-install-recommends containerd podman;"
                    " `scripts/deps.sh test` lists them)", pytrace=False)


@pytest.fixture(scope="module")
def containerd(tmp_path_factory, report_line):
    """One containerd for the module (every pull gets its own namespace)."""
    c = runtimes.Containerd(tmp_path_factory.mktemp("containerd"))
    try:
        c.start()
        report_line(f"containerd {c.started_in * 1000:.0f} ms to answer on its socket; "
                    f"snapshotter {c.snapshotter}")
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def hosts_file(tmp_path_factory):
    """An /etc/hosts mapping registry.nodetrust.test to 127.0.0.1."""
    return runtimes.write_hosts_file(tmp_path_factory.mktemp("hosts") / "hosts")


@pytest.fixture(scope="module")
def shared_registry(tmp_path_factory, test_ca, tiny_image):
    """A TLS registry (cert for registry.nodetrust.test, localhost and
    127.0.0.1 from test_ca) with test/tiny:latest, for tests that never
    restart it."""
    with runtimes.named_registry(tmp_path_factory.mktemp("shared-registry"),
                                 test_ca, tiny_image) as reg:
        yield reg


@pytest.fixture
def node(root):
    """root laid out as a node whose containerd reads /etc/containerd/certs.d
    (config.toml version 2 with config_path set)."""
    runtimes.write_containerd_config(root)
    return root


# --------------------------------------------------------------------------
# Helpers.

def describe_dir(top):
    """A containerd hosts directory's files, hosts.toml contents included,
    for failure messages."""
    top = Path(top)
    if not top.exists():
        return f"({top} does not exist)"
    lines = []
    for dirpath, _, files in sorted(os.walk(top)):
        for n in sorted(files):
            p = os.path.join(dirpath, n)
            lines.append(os.path.relpath(p, top))
            if n.endswith(".toml"):
                with open(p, errors="replace") as f:
                    lines += ["    " + line for line in f.read().splitlines()]
    return "\n".join(lines) or "(empty)"


def assert_ctr_pulls(containerd, ref, hosts_dir, hosts_file=None):
    rc, out, err = containerd.pull(ref, hosts_dir, hosts_file=hosts_file)
    assert rc == 0, (f"ctr image pull {ref} failed (rc {rc}):\n{err}\n"
                     f"hosts dir {hosts_dir}:\n{describe_dir(hosts_dir)}")


def assert_ctr_x509(containerd, ref, hosts_dir, hosts_file=None):
    rc, out, err = containerd.pull(ref, hosts_dir, hosts_file=hosts_file)
    assert rc != 0, (f"ctr image pull {ref} unexpectedly succeeded:\n{out}\n"
                     f"hosts dir {hosts_dir}:\n{describe_dir(hosts_dir)}")
    assert is_x509_failure(err), f"expected an x509 failure, got:\n{err}"
    return err


def describe(root):
    return describe_dir(containerd_hosts_dir(root))


def assert_podman_pulls(ref, root, workdir, hosts_file):
    rc, out, err = runtimes.podman_pull(ref, root, workdir, hosts_file=hosts_file)
    assert rc == 0, f"podman pull {ref} failed (rc {rc}):\n{err}"
    # podman pull prints the image ID (the config digest) last.
    assert re.fullmatch(r"[0-9a-f]{64}", out.strip().splitlines()[-1]), out


def ca_ders(root, host):
    """DER of each certificate in root's containerd ca.crt for host, or None."""
    try:
        return peers.pem_certs_der(peers.ca_path(root, "containerd", host).read_bytes())
    except FileNotFoundError:
        return None


def hosts_toml(root, host):
    return containerd_hosts_dir(root) / host / "hosts.toml"


def assert_owned_hosts_toml(root, host):
    """The agent's hosts.toml for host: its marker on the first line, and
    `server = "https://HOST:PORT"`, `ca = "ca.crt"` as top-level keys."""
    f = hosts_toml(root, host)
    assert f.is_file() and not f.is_symlink(), \
        f"{f} missing; containerd certs.d:\n{describe(root)}"
    text = f.read_text()
    assert text.splitlines()[0].startswith("# Managed by nodetrustd"), text
    doc = tomllib.loads(text)
    assert doc.get("server") == f"https://{host}", text
    assert doc.get("ca") in ("ca.crt", ["ca.crt"]), text
    return text


def syncs(port):
    return promparse.value(runtimes.metrics(port), "nodetrust_syncs_total")


def sighup_and_wait_sync(daemon, port):
    """SIGHUP and wait until the agent counted one more sync."""
    before = syncs(port)
    daemon.sighup()
    wait_for(lambda: syncs(port) > before, interval=0.02,
             what="a sync after SIGHUP")


def containerd_target(port):
    return runtimes.status(port)["targets"]["containerd"]


def target_active_metric(port):
    return promparse.value(runtimes.metrics(port), "nodetrust_target_active",
                           target="containerd")


# --------------------------------------------------------------------------
# 1. containerd, a non-loopback TLS name: before, after, rotation, removal.

def test_containerd_trusts_named_registry_through_rotation_and_removal(
        containerd, hosts_file, test_ca, tiny_image, node, agent, trust_volume,
        tmp_path, report_line):
    root = node
    with runtimes.named_registry(tmp_path / "rotating", test_ca, tiny_image) as reg:
        ref = image_ref(REGISTRY_NAME, reg.port)
        host, key = reg.named_host, reg.named_key
        hosts_dir = containerd_hosts_dir(root)

        err = assert_ctr_x509(containerd, ref, hosts_dir, hosts_file)
        report_line("ctr pull, no CA: " + err.strip().splitlines()[-1])

        trust_volume.update({key: test_ca.pem()})
        p = agent.run_once()
        assert p.returncode == 0, p.stderr
        assert ca_ders(root, host) == [test_ca.der()]
        assert_owned_hosts_toml(root, host)
        assert_ctr_pulls(containerd, ref, hosts_dir, hosts_file)

        # The state a node would have kept without the agent following the
        # rotation: only the old CA.
        old_state = tmp_path / "pre-rotation" / "certs.d"
        shutil.copytree(hosts_dir, old_state, symlinks=True)

        new_ca = peers.make_ca(tmp_path / "rotation", "rotated-ca")
        new_cert = runtimes.make_named_cert(new_ca, tmp_path / "rotation",
                                            cert_name="rotated")
        with agent.daemon("--resync-interval", "3600") as d:
            d.wait_notify("READY=1")

            # Publish old + new, then switch the server, then drop the old.
            trust_volume.update({key: test_ca.pem() + new_ca.pem()})
            wait_for(lambda: ca_ders(root, host) == [test_ca.der(), new_ca.der()],
                     interval=0.05, what="old+new CA bundle after the ..data swap")
            assert_ctr_pulls(containerd, ref, hosts_dir, hosts_file)

            reg.restart(cert=new_cert.cert, key=new_cert.key)
            assert_ctr_pulls(containerd, ref, hosts_dir, hosts_file)
            assert_ctr_x509(containerd, ref, old_state, hosts_file)

            trust_volume.update({key: new_ca.pem()})
            wait_for(lambda: ca_ders(root, host) == [new_ca.der()],
                     interval=0.05, what="new CA alone after the ..data swap")
            assert_owned_hosts_toml(root, host)
            assert_ctr_pulls(containerd, ref, hosts_dir, hosts_file)
            assert_ctr_x509(containerd, ref, old_state, hosts_file)

            # The key leaves the map: the directory goes, trust with it.
            trust_volume.update({})
            wait_for(lambda: not (hosts_dir / host).exists(),
                     what=f"{hosts_dir / host} removed after the key left the map")
            assert_ctr_x509(containerd, ref, hosts_dir, hosts_file)
            assert d.alive()


# --------------------------------------------------------------------------
# 2. containerd, a loopback registry.

@pytest.mark.parametrize("loopback", ["localhost", "127.0.0.1"])
def test_containerd_loopback_registry_through_generated_hosts_toml(
        containerd, shared_registry, test_ca, node, agent, trust_volume, loopback):
    root = node
    reg = shared_registry
    host = f"{loopback}:{reg.port}"
    ref = image_ref(loopback, reg.port)
    hosts_dir = containerd_hosts_dir(root)

    # No hosts.toml: containerd speaks plain HTTP to a loopback registry.
    rc, _, err = containerd.pull(ref, hosts_dir)
    assert rc != 0 and "400 Bad Request" in err, err

    trust_volume.update({key_for(loopback, reg.port): test_ca.pem()})
    p = agent.run_once()
    assert p.returncode == 0, p.stderr
    assert ca_ders(root, host) == [test_ca.der()]
    assert_owned_hosts_toml(root, host)
    assert_ctr_pulls(containerd, ref, hosts_dir)


def test_containerd_hosts_toml_never_writes_ca_crt_only(
        containerd, shared_registry, hosts_file, test_ca, node, agent, trust_volume,
        report_line):
    """The control: without a hosts.toml, containerd reads ca.crt for a TLS
    name, but never uses TLS (so never the CA) for a loopback registry."""
    root = node
    reg = shared_registry
    hosts_dir = containerd_hosts_dir(root)

    trust_volume.update({reg.named_key: test_ca.pem()})
    p = agent.run_once("--containerd-hosts-toml", "never")
    assert p.returncode == 0, p.stderr
    assert ca_ders(root, reg.named_host) == [test_ca.der()]
    assert not hosts_toml(root, reg.named_host).exists(), describe(root)
    assert_ctr_pulls(containerd, image_ref(REGISTRY_NAME, reg.port), hosts_dir, hosts_file)

    # A loopback key too. The agent may count it partially applied (exit 1):
    # it knows containerd will not use that ca.crt.
    trust_volume.update({reg.named_key: test_ca.pem(), reg.key_name: test_ca.pem()})
    p = agent.run_once("--containerd-hosts-toml", "never")
    assert p.returncode in (0, 1), p.stderr
    assert ca_ders(root, reg.host) == [test_ca.der()]
    assert not hosts_toml(root, reg.host).exists(), describe(root)
    rc, _, err = containerd.pull(image_ref("localhost", reg.port), hosts_dir)
    assert rc != 0, "a loopback pull without hosts.toml succeeded"
    # Plain HTTP to the TLS port: the registry answers 400, no TLS happened.
    assert "400 Bad Request" in err and not is_x509_failure(err), err
    report_line("ctr pull localhost:PORT, ca.crt only: " + err.strip().splitlines()[-1])
    assert_ctr_pulls(containerd, image_ref(REGISTRY_NAME, reg.port), hosts_dir, hosts_file)


# --------------------------------------------------------------------------
# 3. An admin's hosts.toml in a directory the agent owns.

def _admin_takes_over(root, host, text, daemon, port, trust_volume, key, ca):
    """Replace the agent's hosts.toml with text, then make the agent sync
    three times (two SIGHUPs and a ..data swap). Returns (path, bytes)."""
    f = hosts_toml(root, host)
    assert_owned_hosts_toml(root, host)
    data = text.format(host=host).encode()
    f.write_bytes(data)
    before = f.stat()
    sighup_and_wait_sync(daemon, port)
    sighup_and_wait_sync(daemon, port)
    n = syncs(port)
    trust_volume.update({key: ca.pem(), "unrelated.example.com": ca.pem()})
    wait_for(lambda: peers.ca_path(root, "containerd", "unrelated.example.com").exists()
             and syncs(port) > n, what="a sync after the ..data swap")
    after = f.stat()
    assert f.read_bytes() == data, f"admin hosts.toml rewritten:\n{f.read_text()}"
    assert (after.st_ino, after.st_mtime_ns, after.st_mode) == \
        (before.st_ino, before.st_mtime_ns, before.st_mode)
    return f, data


def test_admin_hosts_toml_without_ca_is_kept_and_shadowed(
        containerd, shared_registry, hosts_file, test_ca, node, nodetrustd_bin,
        trust_volume, tmp_path):
    root = node
    reg = shared_registry
    host, key = reg.named_host, reg.named_key
    ref = image_ref(REGISTRY_NAME, reg.port)
    trust_volume.update({key: test_ca.pem()})
    agent = runtimes.health_agent(nodetrustd_bin, root, trust_volume.path, tmp_path,
                                  "--resync-interval", "3600")
    with agent.daemon() as d:
        d.wait_notify("READY=1")
        assert_ctr_pulls(containerd, ref, containerd_hosts_dir(root), hosts_file)

        _admin_takes_over(root, host, ADMIN_HOSTS_TOML_NO_CA, d, agent.port,
                          trust_volume, key, test_ca)

        st = runtimes.status(agent.port)
        r = runtimes.registry_status(st, key)
        assert r["state"] == "shadowed", r
        assert runtimes.containerd_target_state(st, key) == "shadowed", r
        assert st["targets"]["containerd"]["state"] == "active", st["targets"]
        assert promparse.value(runtimes.metrics(agent.port), "nodetrust_registries",
                               state="shadowed") == 1
        assert_ctr_x509(containerd, ref, containerd_hosts_dir(root), hosts_file)
        assert d.alive()


@pytest.mark.parametrize("layout", sorted(ADMIN_HOSTS_TOML_WITH_CA))
def test_admin_hosts_toml_with_ca_is_kept_and_applied(
        containerd, shared_registry, hosts_file, test_ca, node, nodetrustd_bin,
        trust_volume, tmp_path, layout):
    root = node
    reg = shared_registry
    host, key = reg.named_host, reg.named_key
    ref = image_ref(REGISTRY_NAME, reg.port)
    trust_volume.update({key: test_ca.pem()})
    agent = runtimes.health_agent(nodetrustd_bin, root, trust_volume.path, tmp_path,
                                  "--resync-interval", "3600")
    with agent.daemon() as d:
        d.wait_notify("READY=1")
        _admin_takes_over(root, host, ADMIN_HOSTS_TOML_WITH_CA[layout], d, agent.port,
                          trust_volume, key, test_ca)

        st = runtimes.status(agent.port)
        r = runtimes.registry_status(st, key)
        assert r["state"] == "applied", r
        assert runtimes.containerd_target_state(st, key) == "applied", r
        assert promparse.value(runtimes.metrics(agent.port), "nodetrust_registries",
                               state="shadowed") == 0
        assert_ctr_pulls(containerd, ref, containerd_hosts_dir(root), hosts_file)
        assert d.alive()


# --------------------------------------------------------------------------
# 4. podman.

def test_podman_pulls_after_agent_applied(shared_registry, hosts_file, test_ca, node,
                                          agent, trust_volume, tmp_path, report_line):
    root = node
    reg = shared_registry
    ref = image_ref(REGISTRY_NAME, reg.port)

    rc, out, err = runtimes.podman_pull(ref, root, tmp_path, hosts_file=hosts_file)
    assert rc != 0, f"podman pull unexpectedly succeeded:\n{out}"
    assert is_x509_failure(err), f"expected an x509 failure, got:\n{err}"
    report_line("podman pull, no CA: " + err.strip().splitlines()[-1])

    trust_volume.update({reg.named_key: test_ca.pem()})
    p = agent.run_once()
    assert p.returncode == 0, p.stderr
    assert_podman_pulls(ref, root, tmp_path, hosts_file)


# --------------------------------------------------------------------------
# 5. How the agent finds containerd, and whether it reads certs.d.

def _v2(path):
    return lambda root: runtimes.write_containerd_config(root, version=2, config_path=path)


def _v3(path):
    return lambda root: runtimes.write_containerd_config(root, version=3, config_path=path)


def _text(text, path="etc/containerd/config.toml"):
    return lambda root: runtimes.write_containerd_config(
        root, text() if callable(text) else text, path=path)


def _nothing(root):
    return None


def _binary_only(root):
    f = Path(root) / "usr/bin/containerd"
    f.parent.mkdir(parents=True)
    f.write_text("#!/bin/sh\nexit 0\n")
    f.chmod(0o755)
    return None


def _socket_only(root):
    """A listening-socket file at run/containerd/containerd.sock (bound in a
    short directory, then renamed: a socket path has at most 107 bytes)."""
    f = Path(root) / "run/containerd/containerd.sock"
    f.parent.mkdir(parents=True)
    short = Path(tempfile.mkdtemp(prefix="ntsock.", dir="/tmp"))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(str(short / "s"))
        os.rename(short / "s", f)
    finally:
        shutil.rmtree(short, ignore_errors=True)
    return None


# id: (set up root, extra agent arguments, expected state, fragments the
# reason must contain). "installed": containerd is there but has no
# config.toml, so it runs on its built-in defaults (1.x: no config_path,
# 2.x: certs.d): anything but not_installed.
DETECTION_CASES = {
    "v2-config-path": (_v2("/etc/containerd/certs.d"), (), "active", ()),
    "v2-config-path-list": (_v2("/etc/containerd/certs.d:/etc/docker/certs.d"), (),
                            "active", ()),
    "v2-unset": (_v2(None), (), "inactive", ("config_path",)),
    "v2-debian-shipped": (_text(DEBIAN_SHIPPED_CONFIG), (), "inactive", ("config_path",)),
    "v2-containerd-config-default": (_text(runtimes.containerd_config_default), (),
                                     "inactive", ("config_path",)),
    "v2-other-dir": (_v2("/etc/containerd/registries.d"), (), "inactive",
                     ("/etc/containerd/registries.d",)),
    # Only containerd 2.2+ defaults config_path; 2.0/2.1 do not, and the
    # file does not say which containerd reads it.
    "v3-unset": (_v3(None), (), "inactive", ("config_path", "before 2.2")),
    "v3-config-path": (_v3("/etc/containerd/certs.d"), (), "active", ()),
    "v3-other-dir": (_v3("/srv/registries.d"), (), "inactive", ("/srv/registries.d",)),
    "malformed": (_text(MALFORMED_CONFIG), (), "inactive", ("config.toml", "3")),
    "containerd-config-flag": (
        _text('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
              '  config_path = "/etc/containerd/certs.d"\n',
              path="etc/containerd/custom.toml"),
        ("--containerd-config", "/etc/containerd/custom.toml"), "active", ()),
    "not-installed": (_nothing, (), "not_installed", ()),
    "binary-only": (_binary_only, (), "installed", ()),
    "socket-only": (_socket_only, (), "installed", ()),
}


@pytest.mark.parametrize("case", list(DETECTION_CASES))
def test_containerd_target_detection(case, nodetrustd_bin, root, trust_volume, tmp_path,
                                     test_ca):
    setup, extra, expected, fragments = DETECTION_CASES[case]
    config = setup(root)
    config_bytes = config.read_bytes() if config else None
    key = "detect.example.com"
    trust_volume.update({key: test_ca.pem()})
    agent = runtimes.health_agent(nodetrustd_bin, root, trust_volume.path, tmp_path,
                                  *extra)
    with agent.daemon() as d:
        d.wait_notify("READY=1")
        st = runtimes.status(agent.port)
        t = st["targets"]["containerd"]
        if expected == "installed":
            assert t["state"] in ("active", "inactive"), t
            expected = t["state"]
        assert t["state"] == expected, t
        assert "reason" in t, t
        if expected != "active":
            assert isinstance(t["reason"], str) and t["reason"], t
        for frag in fragments:
            assert frag in t["reason"], t
        if case == "malformed":
            # The line of the error, as "line 3" or "config.toml:3".
            assert re.search(r"(line\s*|:)3\b", t["reason"]), t

        assert target_active_metric(agent.port) == (1 if expected == "active" else 0)
        if expected == "active":
            assert runtimes.containerd_target_state(st, key) == "applied", st
        elif expected == "inactive":
            assert runtimes.containerd_target_state(st, key) == "inactive", st

        # An inactive or missing containerd is not the agent failing.
        assert runtimes.http_get(agent.port, "/readyz") == (200, "ready\n")
        assert st["ready"] is True, st
        assert d.alive()
    if config is not None:
        assert config.read_bytes() == config_bytes, "containerd's config was written"


def test_containerd_detection_is_reevaluated_on_sighup(nodetrustd_bin, root,
                                                       trust_volume, tmp_path, test_ca):
    trust_volume.update({"detect.example.com": test_ca.pem()})
    agent = runtimes.health_agent(nodetrustd_bin, root, trust_volume.path, tmp_path,
                                  "--resync-interval", "3600")
    with agent.daemon() as d:
        d.wait_notify("READY=1")
        assert containerd_target(agent.port)["state"] == "not_installed"

        runtimes.write_containerd_config(root, DEBIAN_SHIPPED_CONFIG)
        sighup_and_wait_sync(d, agent.port)
        wait_for(lambda: containerd_target(agent.port)["state"] == "inactive",
                 what="containerd inactive after config.toml appeared")
        assert target_active_metric(agent.port) == 0

        runtimes.write_containerd_config(root, config_path="/etc/containerd/certs.d")
        sighup_and_wait_sync(d, agent.port)
        wait_for(lambda: containerd_target(agent.port)["state"] == "active",
                 what="containerd active after config_path was set")
        assert target_active_metric(agent.port) == 1
        assert d.alive()
