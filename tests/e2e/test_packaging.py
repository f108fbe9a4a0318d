# SPDX-License-Identifier: MIT
"""Shipping: systemd units, tmpfiles, the SELinux module, the RPM, the
Kubernetes manifests, the Containerfile and the man pages.

Each check runs the ecosystem's own tool where one exists (systemd-analyze,
systemd-tmpfiles, the reference policy build, rpmbuild, rpmlint, groff/man) and
compares the shipped files with what the built binaries really do (their
--help, their /metrics, the paths they serve). Nothing is skipped: a binary
that is not built is built first with `make`.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build"
UNITS = REPO / "systemd"
MAN = REPO / "man"
DEPLOY = REPO / "deploy"

# Exposure ceilings of `systemd-analyze security` (issue 6).
EXPOSURE_MAX = {"nodetrustd.service": 2.5, "nodetrust-aggregator.service": 1.5}

# What nodetrustd writes on a host, by default: the three runtimes' trust
# directories, the kubelet's pull credentials (replaced by rename, so its
# directory) and the state directory.
CERT_DIRS = ("/etc/docker/certs.d", "/etc/containers/certs.d", "/etc/containerd/certs.d")
# Read for effective trust (containerd's config.toml, an admin's hosts.toml).
HOST_READ_DIRS = {"/etc/docker", "/etc/containers", "/etc/containerd"}
KUBELET_DIR = "/var/lib/kubelet"
STATE_DIR = "/var/lib/nodetrust"
HOST_WRITE_DIRS = set(CERT_DIRS) | {KUBELET_DIR, STATE_DIR}

MAN_PAGES = {"nodetrustd": MAN / "nodetrustd.8",
             "nodetrust-aggregator": MAN / "nodetrust-aggregator.8"}


def run(cmd, *, timeout=120, check=False, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                       timeout=timeout, **kw)
    if check and r.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {r.returncode}\n"
                    f"stdout:\n{r.stdout[-4000:]}\nstderr:\n{r.stderr[-4000:]}", pytrace=False)
    return r


def make(*args, timeout=300):
    # A clean environment for make: no MAKEFLAGS from an outer make check.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return run(["make", "-C", REPO, *args], timeout=timeout, check=True, env=env)


@pytest.fixture(scope="session")
def binaries():
    """The built daemons, built now if they are not (or are out of date)."""
    make("-j2", "all")
    bins = {name: BUILD / name for name in ("nodetrustd", "nodetrust-aggregator")}
    for name, path in bins.items():
        assert os.access(path, os.X_OK), f"{path} not built by `make all`"
    return bins


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=2):
    """(status, body) of a GET; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Daemon:
    """A daemon under test in the foreground, stopped with SIGTERM."""

    def __init__(self, argv, port, cwd, env_extra=None):
        self.port = port
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("WATCHDOG_USEC", None)
        env.update(env_extra or {})
        self.proc = subprocess.Popen([str(a) for a in argv], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                pytest.fail(f"{argv[0]} exited {self.proc.returncode} before serving:\n{err}",
                            pytrace=False)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"{argv[0]} did not listen on 127.0.0.1:{port} within 10 s", pytrace=False)

    def get(self, path):
        return http_get(f"http://127.0.0.1:{self.port}{path}")

    def signal(self, sig):
        """Signal the daemon itself: under strace, the traced child (strace
        exits with the child's status once it exits)."""
        pid = self.proc.pid
        if Path(self.proc.args[0]).name == "strace":
            pid = int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
        os.kill(pid, sig)

    def stop(self):
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def agent_daemon(binaries, tmp_path, test_ca, aggregator):
    """nodetrustd serving health on a free loopback port, with one registry
    in a plain-directory source so per-registry series exist, reporting to
    the aggregator so the report series exist too."""
    src = tmp_path / "trust"
    src.mkdir()
    (tmp_path / "root").mkdir()
    shutil.copy(test_ca.cert, src / "registry.example.com..5000")
    port = free_port()
    d = Daemon([binaries["nodetrustd"], "--root", tmp_path / "root", "--trust-source", src,
                "--health-listen", f"127.0.0.1:{port}", "--config", "/dev/null",
                "--report-url", f"http://127.0.0.1:{aggregator.port}",
                "--report-token-file", aggregator.token, "--node-name", "packaging-test"],
               port, tmp_path)
    # Ready means the first sync is done: every series is there to compare.
    deadline = time.monotonic() + 10
    while d.get("/readyz")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    yield d
    d.stop()


@pytest.fixture
def aggregator(binaries, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    port = free_port()
    d = Daemon([binaries["nodetrust-aggregator"], "--listen", f"127.0.0.1:{port}",
                "--token-file", token], port, tmp_path)
    d.token = token
    yield d
    d.stop()


# --- systemd units -----------------------------------------------------------

def unit_settings(path, section="Service"):
    """{key: [values]} of one section; repeated keys keep every value."""
    out, current = {}, None
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            continue
        if current == section and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def unit_copy_for(tmp_path, unit, bindir):
    """The unit with ExecStart= naming the built binaries, and the man pages
    on a MANPATH, so `verify` can check both exist."""
    text = (UNITS / unit).read_text().replace("/usr/sbin/", f"{bindir}/")
    dst = tmp_path / unit
    dst.write_text(text)
    man8 = tmp_path / "man" / "man8"
    man8.mkdir(parents=True, exist_ok=True)
    for page in MAN_PAGES.values():
        shutil.copy(page, man8)
    return dst


@pytest.mark.parametrize("unit", sorted(EXPOSURE_MAX))
def test_unit_verifies_without_warnings(unit, binaries, tmp_path):
    path = unit_copy_for(tmp_path, unit, BUILD)
    env = dict(os.environ, MANPATH=str(tmp_path / "man"))
    r = run(["systemd-analyze", "verify", "--man=yes", path], env=env, cwd=tmp_path)
    # An unknown key or a bad value is only a warning: any output fails.
    assert r.returncode == 0 and r.stderr.strip() == "" and r.stdout.strip() == "", \
        f"systemd-analyze verify {unit}:\n{r.stdout}{r.stderr}"


@pytest.mark.parametrize("unit", sorted(EXPOSURE_MAX))
def test_unit_security_exposure(unit, binaries, tmp_path, report_line):
    path = unit_copy_for(tmp_path, unit, BUILD)
    r = run(["systemd-analyze", "security", "--offline=yes", "--no-pager", path], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", f"warnings from systemd-analyze security:\n{r.stderr}"
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", r.stdout)
    assert m, r.stdout
    exposure = float(m.group(1))
    report_line(f"systemd-analyze security --offline=yes {unit}: exposure {exposure}")
    assert exposure <= EXPOSURE_MAX[unit], r.stdout


def test_agent_unit_sandbox():
    s = unit_settings(UNITS / "nodetrustd.service")
    assert s["Type"] == ["notify"]
    assert s.get("WatchdogSec") and s["WatchdogSec"][-1] not in ("0", "infinity")
    assert s["Restart"] == ["on-failure"]
    assert s["ExecStart"][0].split()[0] == "/usr/sbin/nodetrustd"
    # SIGHUP resyncs, by the shell's kill builtin: minimal systems have no /bin/kill.
    assert s["ExecReload"] == ["/bin/sh -c 'kill -HUP $MAINPID'"]
    # The directories ReadWritePaths= binds exist before the sandbox is made:
    # tmpfiles.d's own lines, run outside the sandbox ("+") at each start.
    assert any(v.lstrip("-").startswith("+systemd-tmpfiles --create nodetrust.conf")
               or v.startswith("+-systemd-tmpfiles --create nodetrust.conf")
               for v in s.get("ExecStartPre", [])), s.get("ExecStartPre")
    assert s["ProtectSystem"] == ["strict"]
    assert s["NoNewPrivileges"] == ["yes"]
    assert s["CapabilityBoundingSet"] == [""], "nodetrustd needs no capability"
    assert "@system-service" in " ".join(s["SystemCallFilter"])
    families = " ".join(s["RestrictAddressFamilies"]).split()
    assert sorted(families) == ["AF_INET", "AF_INET6", "AF_UNIX"]
    # Writable: exactly the trust directories, the kubelet directory and
    # the state directory; nothing else.
    rw = {p.lstrip("-") for v in s.get("ReadWritePaths", []) for p in v.split()}
    assert rw == set(CERT_DIRS) | {KUBELET_DIR}
    assert s["StateDirectory"] == ["nodetrust"]
    assert not s.get("ReadOnlyPaths") and not s.get("InaccessiblePaths")


def test_aggregator_unit_sandbox():
    s = unit_settings(UNITS / "nodetrust-aggregator.service")
    assert s["Type"] == ["notify"]  # it sends READY=1
    assert s["DynamicUser"] == ["yes"]
    assert s["CapabilityBoundingSet"] == [""]
    assert s["ProtectSystem"] == ["strict"]
    assert not s.get("ReadWritePaths") and not s.get("StateDirectory")
    # The token reaches the dynamic user as a credential, not by file mode.
    cred = s["LoadCredential"][0].split(":", 1)
    assert cred[0] == "token"
    assert "--token-file ${CREDENTIALS_DIRECTORY}/" + cred[0] in s["ExecStart"][0]


def test_tmpfiles_create_every_writable_dir(tmp_path):
    """ReadWritePaths= on a missing directory cannot be created from inside
    the sandbox: tmpfiles.d creates each one, and leaves existing ones be."""
    root = tmp_path / "root"
    existing = root / "var/lib/kubelet"
    existing.mkdir(parents=True)
    existing.chmod(0o750)
    r = run(["systemd-tmpfiles", "--create", f"--root={root}", UNITS / "nodetrust.tmpfiles"])
    assert r.returncode == 0 and r.stderr == "", r.stderr
    rw = {p.lstrip("-") for v in unit_settings(UNITS / "nodetrustd.service")["ReadWritePaths"]
          for p in v.split()}
    for d in rw:
        assert (root / d.lstrip("/")).is_dir(), f"tmpfiles does not create {d}"
    for d in CERT_DIRS:
        assert (root / d.lstrip("/")).stat().st_mode & 0o777 == 0o755
    assert existing.stat().st_mode & 0o777 == 0o750, "tmpfiles changed an existing directory"


# --- the sandbox against what the daemons really do ------------------------------

def syscall_groups():
    """{@group: set of syscalls and @subgroups} from systemd-analyze."""
    groups, cur = {}, None
    for line in run(["systemd-analyze", "syscall-filter"], check=True).stdout.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.strip(), set())
        elif cur is not None and line.strip() and not line.strip().startswith("#"):
            cur.add(line.strip())
    return groups


def expand(names, groups):
    out = set()
    for n in names:
        out |= expand(groups[n], groups) if n.startswith("@") else {n}
    return out


def allowed_syscalls(unit):
    """The syscalls a unit's SystemCallFilter= lines leave allowed, applied
    in order as systemd does (the first line is an allow list here)."""
    groups = syscall_groups()
    lines = unit_settings(UNITS / unit)["SystemCallFilter"]
    assert not lines[0].startswith("~"), "expected an allow list first"
    allowed = expand(["@default"], groups)
    for line in lines:
        deny = line.startswith("~")
        names = expand(line.lstrip("~").split(), groups)
        allowed = allowed - names if deny else allowed | names
    return allowed


def traced(trace_file):
    """(syscall names, socket families) in an strace -f output file."""
    calls, families = set(), set()
    for line in Path(trace_file).read_text().splitlines():
        m = re.match(r"\d+\s+(?:<\.\.\. )?(\w+)(?:\(| resumed>)", line)
        if m:
            calls.add(m.group(1))
        m = re.match(r"\d+\s+socket\((AF_\w+)", line)
        if m:
            families.add(m.group(1))
    # strace's names for what the process did not call itself.
    return calls - {"exited", "killed", "restart_syscall"}, families


def _drain(sock, notes):
    while True:
        try:
            notes.append(sock.recv(4096).decode(errors="replace"))
        except OSError:
            return


def strace_argv(trace_file, argv):
    return ["strace", "-f", "-qq", "-o", trace_file, *map(str, argv)]


def test_agent_stays_inside_its_unit_sandbox(binaries, tmp_path, test_ca):
    """Run nodetrustd through everything it does (both sources, health,
    reports, SIGHUP, the pull secret with its fchown) under strace, and
    check each system call and socket family against the unit's filters."""
    agg_token = tmp_path / "token"
    agg_token.write_text("t0ken\n")
    agg_port, port = free_port(), free_port()
    agg = Daemon([binaries["nodetrust-aggregator"], "--listen", f"127.0.0.1:{agg_port}",
                  "--token-file", agg_token], agg_port, tmp_path)
    src, root = tmp_path / "trust", tmp_path / "root"
    src.mkdir()
    (root / "var/lib/kubelet").mkdir(parents=True)
    shutil.copy(test_ca.cert, src / "registry.example.com..5000")
    secret = tmp_path / "pull-secret.json"
    secret.write_text('{"auths": {"registry.example.com:5000": {"auth": "dTpw"}}}')
    trace = tmp_path / "trace"
    # As under systemd: sd_notify to a socket (drained, so it never fills)
    # and a watchdog to feed.
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notes = []
    drain = threading.Thread(target=lambda: _drain(notify, notes), daemon=True)
    drain.start()
    try:
        d = Daemon(strace_argv(trace, [
            binaries["nodetrustd"], "--root", root, "--trust-source", src, "--pull-secret", secret,
            "--health-listen", f"127.0.0.1:{port}", "--config", "/dev/null",
            "--report-url", f"http://localhost:{agg_port}", "--report-token-file", agg_token,
            "--report-interval", "1", "--node-name", "sandbox-test"]), port, tmp_path,
            env_extra={"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "1000000"})
        deadline = time.monotonic() + 10
        while d.get("/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        for path in ("/healthz", "/readyz", "/metrics", "/status"):
            assert d.get(path)[0] == 200, path
        # A change, a resync by signal, and time for a report.
        (src / "other.example.com").write_bytes(Path(test_ca.cert).read_bytes())
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "nodetrust_reports_total 0" in d.get("/metrics")[1] and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.6)  # at least one watchdog ping
        assert d.stop() == 0
    finally:
        agg.stop()
        notify.close()
    assert (root / "var/lib/kubelet/config.json").is_file()
    assert any("READY=1" in n for n in notes) and any("WATCHDOG=1" in n for n in notes), notes
    assert_within_unit(trace, "nodetrustd.service")


def test_agent_api_source_stays_inside_its_unit_sandbox(binaries, tmp_path, test_ca):
    """The same for the Kubernetes API source: TLS, list and watch through
    libcurl against the stand-in API server, a change pushed by a watch."""
    from kubeapi import KubeAPI

    api = KubeAPI(tmp_path / "api")
    api.start()
    try:
        pem = Path(test_ca.cert).read_text()
        api.set_image_config("registry-cas")
        api.set_configmap("openshift-config", "registry-cas", {"registry.example.com..5000": pem})
        kubeconfig = tmp_path / "kubeconfig"
        api.write_kubeconfig(kubeconfig)
        root, port, trace = tmp_path / "root", free_port(), tmp_path / "trace"
        (root / "var/lib/kubelet").mkdir(parents=True)
        d = Daemon(strace_argv(trace, [
            binaries["nodetrustd"], "--root", root, "--kubeconfig", kubeconfig,
            "--health-listen", f"127.0.0.1:{port}", "--config", "/dev/null"]), port, tmp_path)
        try:
            ca = root / "etc/containers/certs.d/registry.example.com:5000/ca.crt"
            deadline = time.monotonic() + 15
            while not ca.is_file() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ca.is_file(), "the API source never applied"
            api.set_configmap("openshift-config", "registry-cas",
                              {"registry.example.com..5000": pem, "other.example.com": pem})
            other = root / "etc/containers/certs.d/other.example.com/ca.crt"
            deadline = time.monotonic() + 15
            while not other.is_file() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert other.is_file(), "a watched change never applied"
            assert d.get("/status")[0] == 200
        finally:
            assert d.stop() == 0
    finally:
        api.stop()
    assert_within_unit(trace, "nodetrustd.service")


def assert_within_unit(trace, unit):
    calls, families = traced(trace)
    allowed = allowed_syscalls(unit)
    assert not calls - allowed, f"system calls {unit} forbids: {sorted(calls - allowed)}"
    permitted = set(unit_settings(UNITS / unit)["RestrictAddressFamilies"][0].split())
    assert families <= permitted, f"socket families {unit} forbids: {families - permitted}"


def test_aggregator_stays_inside_its_unit_sandbox(binaries, tmp_path):
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    port, trace = free_port(), tmp_path / "trace"
    d = Daemon(strace_argv(trace, [binaries["nodetrust-aggregator"], "--listen",
                                   f"127.0.0.1:{port}", "--token-file", token]), port, tmp_path)
    report = ('{"schema": 1, "node": "n1", "source": {"hash": "%s"}, "applied_hash": "%s"}'
              % ("a" * 64, "a" * 64)).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/reports", data=report,
                                 headers={"Authorization": "Bearer t0ken",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200
    token.write_text("t0ken\nrotated\n")  # read again on the next request
    for path in ("/", "/healthz", "/metrics", "/api/v1/nodes", "/api/v1/summary",
                 "/api/v1/nodes/n1"):
        assert d.get(path)[0] == 200, path
    assert d.stop() == 0
    assert_within_unit(trace, "nodetrust-aggregator.service")


# --- SELinux -----------------------------------------------------------------

def fc_entries(fc_text):
    """[(regex, type)] from a compiled file contexts file."""
    out = []
    for line in fc_text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        out.append((fields[0], fields[-1].split(":")[2]))
    return out


def fc_type_of(entries, path):
    """The type the most specific matching entry gives path (the longest
    regex wins here, which is close enough for our own entries)."""
    matches = [(len(rx), t) for rx, t in entries if re.fullmatch(rx, path)]
    return max(matches)[1] if matches else None


def test_selinux_module_compiles(tmp_path):
    b = tmp_path / "b"
    make(f"B={b}", "selinux")
    pp = b / "selinux" / "nodetrust.pp"
    assert pp.is_file() and pp.stat().st_size > 0
    mod, fc = tmp_path / "nodetrust.mod", tmp_path / "nodetrust.fc"
    run(["semodule_unpackage", pp, mod, fc], check=True)
    entries = fc_entries(fc.read_text())
    # Everything nodetrustd writes is labeled for its domain; nothing else of
    # the kubelet directory is relabeled.
    assert fc_type_of(entries, "/usr/sbin/nodetrustd") == "nodetrustd_exec_t"
    for d in CERT_DIRS:
        assert fc_type_of(entries, d) == "nodetrust_cert_t", d
        assert fc_type_of(entries, d + "/registry.example.com:5000/ca.crt") == "nodetrust_cert_t"
    assert fc_type_of(entries, KUBELET_DIR + "/config.json") == "nodetrust_pull_secret_t"
    assert fc_type_of(entries, STATE_DIR + "/manifest") == "nodetrust_var_lib_t"
    assert fc_type_of(entries, "/etc/nodetrust/nodetrustd.conf") == "nodetrust_conf_t"
    assert fc_type_of(entries, KUBELET_DIR) is None
    assert fc_type_of(entries, KUBELET_DIR + "/pods/x/volumes") is None
    assert fc_type_of(entries, "/etc/docker/daemon.json") is None


def test_selinux_interfaces_compile_in_a_caller(tmp_path):
    """Every interface in nodetrust.if expands and compiles when another
    module calls it (the .if is only m4 until someone uses it)."""
    iface = (REPO / "selinux/nodetrust.if").read_text()
    calls = []
    for block in re.split(r"\n(?=########################################\n)", iface):
        m = re.search(r"^interface\(`(\w+)'", block, re.M)
        if m:
            nparams = len(re.findall(r"^## <param name=", block, re.M))
            calls.append(f"{m.group(1)}({', '.join(['ntcaller_t', 'system_r'][:nparams])})")
    assert len(calls) >= 4, calls
    for f in ("nodetrust.te", "nodetrust.if", "nodetrust.fc"):
        shutil.copy(REPO / "selinux" / f, tmp_path)
    (tmp_path / "ntcaller.te").write_text(
        "policy_module(ntcaller, 1.0.0)\ntype ntcaller_t;\ndomain_type(ntcaller_t)\n"
        + "\n".join(calls) + "\n")
    (tmp_path / "ntcaller.if").write_text("## <summary>test caller</summary>\n")
    (tmp_path / "ntcaller.fc").write_text("")
    r = run(["make", "-f", "/usr/share/selinux/devel/Makefile", "ntcaller.pp"], cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL")})
    assert r.returncode == 0 and (tmp_path / "ntcaller.pp").is_file(), r.stdout + r.stderr


# --- RPM ---------------------------------------------------------------------

BINARY_RPMS = {"nodetrust", "nodetrust-aggregator", "nodetrust-selinux"}


@pytest.fixture(scope="module")
def rpm_build(tmp_path_factory, binaries):
    """`make rpm` once, into a scratch build directory: its output, the binary
    RPMs by name and the source RPM."""
    b = tmp_path_factory.mktemp("rpm") / "b"
    r = make(f"B={b}", "rpm")
    rpms = sorted((b / "rpm" / "RPMS").glob("*/*.rpm"))
    by_name = {run(["rpm", "-qp", "--qf", "%{NAME}", p], check=True).stdout: p for p in rpms}
    srpms = sorted((b / "rpm" / "SRPMS").glob("nodetrust-*.src.rpm"))
    assert len(srpms) == 1, srpms
    return {"output": r.stdout + r.stderr, "rpms": by_name, "srpm": srpms[0]}


def rpm_extract(rpm, dest):
    """Unpack an RPM's payload under dest, as it would land under /."""
    dest.mkdir(parents=True, exist_ok=True)
    payload = subprocess.run(["rpm2cpio", str(rpm)], capture_output=True, check=True).stdout
    subprocess.run(["cpio", "-idm", "--quiet", "-D", str(dest)], input=payload, check=True)
    return dest


def test_rpm_builds_and_lists_files(rpm_build):
    warnings = [l for l in rpm_build["output"].splitlines() if "warning:" in l.lower()]
    assert not warnings, "\n".join(warnings)
    by_name = rpm_build["rpms"]
    assert set(by_name) == BINARY_RPMS

    expected = {
        "nodetrust": [r"/usr/sbin/nodetrustd", r"/usr/lib/systemd/system/nodetrustd\.service",
                      r"/usr/lib/tmpfiles\.d/nodetrust\.conf",
                      r"/usr/share/man/man8/nodetrustd\.8(\.gz)?",
                      r"/etc/nodetrust/nodetrustd\.conf", r"/etc/nodetrust/trust\.d",
                      r"/var/lib/nodetrust"],
        "nodetrust-aggregator": [r"/usr/sbin/nodetrust-aggregator",
                                 r"/usr/lib/systemd/system/nodetrust-aggregator\.service",
                                 r"/usr/share/man/man8/nodetrust-aggregator\.8(\.gz)?"],
        "nodetrust-selinux": [r"/usr/share/selinux/packages/targeted/nodetrust\.pp\.bz2",
                              r"/usr/share/selinux/devel/include/distributed/nodetrust\.if"],
    }
    for name, patterns in expected.items():
        files = run(["rpm", "-qlp", by_name[name]], check=True).stdout.split()
        for pat in patterns:
            assert any(re.fullmatch(pat, f) for f in files), f"{name} lacks {pat}: {files}"

    # The spec asks for every library the Makefile links with.
    mk = (REPO / "Makefile").read_text()
    modules = re.search(r"^PKGS\s*:?=\s*(.+)$", mk, re.M).group(1).split()
    reqs = run(["rpm", "-qp", "--requires", rpm_build["srpm"]], check=True).stdout
    for mod in modules:
        assert f"pkgconfig({mod})" in reqs, f"rpm/nodetrust.spec lacks BuildRequires: pkgconfig({mod})"

    configs = run(["rpm", "-qcp", by_name["nodetrust"]], check=True).stdout.split()
    assert configs == ["/etc/nodetrust/nodetrustd.conf"]
    scripts = run(["rpm", "-qp", "--scripts", by_name["nodetrust"]], check=True).stdout
    assert "systemctl --no-reload preset nodetrustd.service" in scripts or \
        "systemd-update-helper" in scripts
    assert "systemd-tmpfiles --create" in scripts
    se = run(["rpm", "-qp", "--scripts", by_name["nodetrust-selinux"]], check=True).stdout
    assert "semodule" in se and "nodetrust.pp.bz2" in se


def test_rpm_packages_carry_the_licence(rpm_build, tmp_path):
    """One licence, MIT, in the tag of every package and as a %license file
    in every binary package (each is installable on its own)."""
    text = (REPO / "LICENSE").read_text()
    for rpm in [*rpm_build["rpms"].values(), rpm_build["srpm"]]:
        assert run(["rpm", "-qp", "--qf", "%{LICENSE}", rpm], check=True).stdout == "MIT", rpm.name
    for name, rpm in rpm_build["rpms"].items():
        licences = run(["rpm", "-qpL", rpm], check=True).stdout.split()
        assert [Path(p).name for p in licences] == ["LICENSE"], f"{name}: {licences}"
        root = rpm_extract(rpm, tmp_path / name)
        assert (root / licences[0].lstrip("/")).read_text() == text, name


# rpmlint (Debian's, with its default configuration) on the spec, the binary
# RPMs and the source RPM. Anything it says that is not below fails the test,
# and so does an entry below that nothing matches any more (drop it then).
# Each entry: severity, check, the package (name.arch, or the spec) it may
# concern, what the rest of the line must be, and why it stays.
RPM_PKG = r"nodetrust(?:-aggregator|-selinux)?\.(?:x86_64|aarch64|noarch|src)"
GHOST_MODULE = "/var/lib/selinux/targeted/active/modules/200/nodetrust"
RPMLINT_ALLOWED = [
    # Errors only by Debian's defaults: Fedora's rpmlint configuration
    # (configs/Fedora/fedora.toml in rpmlint) filters each of these.
    ("E", "no-signature", RPM_PKG, "",
     "packages are signed by whoever publishes them, after the build"),
    ("E", "no-packager-tag", RPM_PKG, "",
     "the build system sets Packager; Fedora's guidelines forbid it in the spec"),
    ("E", "no-group-tag", RPM_PKG, "",
     "Group is deprecated; Fedora's guidelines say not to use it"),
    ("E", "non-standard-dir-perm", r"nodetrust\.\w+", "/var/lib/nodetrust 700",
     "the state directory is 0700, as StateDirectoryMode= in nodetrustd.service"),
    ("E", "non-standard-dir-perm", r"nodetrust-selinux\.noarch", f"{GHOST_MODULE} 700",
     "the %ghost module store entry: a directory libsemanage creates 0700"),
    # Warnings.
    ("W", "no-buildroot-tag", r"nodetrust\.spec", "",
     "rpm >= 4.6 ignores BuildRoot; Fedora says not to set it"),
    ("W", "invalid-license", RPM_PKG, "MIT",
     "Debian's rpmlint has an empty list of valid licences; MIT is SPDX"),
    ("W", "postin-without-ghost-file-creation", r"nodetrust-selinux\.noarch", GHOST_MODULE,
     "semodule creates it in %post, from the .pp.bz2 the script names"),
    ("W", "unstripped-binary-or-object", r"nodetrust\.\w+", "/usr/sbin/nodetrustd",
     "Debian's rpm makes no -debuginfo and strips only debug sections; Fedora's strips"),
    ("W", "unstripped-binary-or-object", r"nodetrust-aggregator\.\w+",
     "/usr/sbin/nodetrust-aggregator", "as for nodetrustd"),
    ("W", "manpage-not-compressed", r"nodetrust\.\w+", "bz2 /usr/share/man/man8/nodetrustd.8.gz",
     "rpm gzips man pages; Debian's rpmlint expects bzip2 (Fedora's: gz)"),
    ("W", "manpage-not-compressed", r"nodetrust-aggregator\.\w+",
     "bz2 /usr/share/man/man8/nodetrust-aggregator.8.gz", "as for nodetrustd.8"),
    ("W", "no-manual-page-for-binary", r"nodetrust\.\w+", "nodetrustd",
     "rpmlint 2.4.0 matches binaries against man section numbers, not names"),
    ("W", "no-manual-page-for-binary", r"nodetrust-aggregator\.\w+", "nodetrust-aggregator",
     "as for nodetrustd"),
    ("W", "no-documentation", r"nodetrust-selinux\.noarch", "",
     "the policy is documented in nodetrustd(8); the licence does not count as documentation"),
]


def test_rpmlint(rpm_build, tmp_path):
    rpms = [*sorted(rpm_build["rpms"].values()), rpm_build["srpm"]]
    r = run(["rpmlint", REPO / "rpm" / "nodetrust.spec", *rpms], timeout=300, cwd=tmp_path)
    out = r.stdout + r.stderr
    assert re.search(rf"\b{len(rpms)} packages and 1 specfiles checked", out), out
    assert "Traceback" not in out, out
    used, unexpected = set(), []
    for line in out.splitlines():
        m = re.match(r"(\S+?)(?::\d+)?: ([EW]): (\S+) ?(.*)$", line)
        if not m:
            continue
        who, sev, check, rest = m.groups()
        hits = [i for i, (s, c, w, a, _) in enumerate(RPMLINT_ALLOWED)
                if (s, c) == (sev, check) and re.fullmatch(w, who) and rest.strip() == a]
        if hits:
            used.update(hits)
        else:
            unexpected.append(line)
    assert not unexpected, "rpmlint says, and the allow-list does not excuse:\n" + \
        "\n".join(unexpected)
    stale = [e[:4] for i, e in enumerate(RPMLINT_ALLOWED) if i not in used]
    assert not stale, f"allow-list entries rpmlint no longer needs: {stale}"

    # What the allowed warnings claim holds: each binary's man page is in its
    # package (gzipped), and what is left of its symbols is no debug info.
    for name, binary in (("nodetrust", "nodetrustd"), ("nodetrust-aggregator",
                                                        "nodetrust-aggregator")):
        rpm = rpm_build["rpms"][name]
        assert f"/usr/share/man/man8/{binary}.8.gz" in \
            run(["rpm", "-qlp", rpm], check=True).stdout.split()
        root = rpm_extract(rpm, tmp_path / name)
        sections = run(["readelf", "-S", "-W", root / "usr/sbin" / binary], check=True).stdout
        assert ".debug_info" not in sections, f"{binary} still carries debug info"


# --- make install --------------------------------------------------------------

@pytest.mark.parametrize("prefix,sysconfdir", [("/usr", "/etc"), ("/usr/local", "/usr/local/etc")])
def test_install_ship_into_destdir(prefix, sysconfdir, tmp_path, binaries):
    dest = tmp_path / "dest"
    args = [f"DESTDIR={dest}", f"PREFIX={prefix}", f"SYSCONFDIR={sysconfdir}"]
    make("install", "install-ship", *args)
    d = lambda p: dest / p.lstrip("/")  # noqa: E731
    for b in ("nodetrustd", "nodetrust-aggregator"):
        assert os.access(d(f"{prefix}/sbin/{b}"), os.X_OK)
        assert d(f"{prefix}/share/man/man8/{b}.8").is_file()
    unit = unit_settings(d(f"{prefix}/lib/systemd/system/nodetrustd.service"))
    want = f"{prefix}/sbin/nodetrustd"
    if sysconfdir != "/etc":
        want += f" --config {sysconfdir}/nodetrust/nodetrustd.conf"
    assert unit["ExecStart"] == [want]
    agg = unit_settings(d(f"{prefix}/lib/systemd/system/nodetrust-aggregator.service"))
    assert agg["ExecStart"][0].startswith(f"{prefix}/sbin/nodetrust-aggregator ")
    assert agg["LoadCredential"] == [f"token:{sysconfdir}/nodetrust/aggregator.token"]
    assert d(f"{prefix}/lib/tmpfiles.d/nodetrust.conf").is_file()
    conf = d(f"{sysconfdir}/nodetrust/nodetrustd.conf")
    assert conf.read_text() == (REPO / "etc/nodetrustd.conf").read_text()
    assert d(f"{sysconfdir}/nodetrust/trust.d").is_dir()
    # A second install keeps the administrator's settings.
    conf.write_text("trust-source = /srv/cas\n")
    make("install-ship", *args)
    assert conf.read_text() == "trust-source = /srv/cas\n"


# --- the licence ---------------------------------------------------------------

def tree_files():
    """The files of the tree as `make rpm` packs them: tracked or not ignored."""
    r = run(["git", "-C", REPO, "ls-files", "-z", "-co", "--exclude-standard"])
    if r.returncode != 0:  # an unpacked tarball
        return sorted(p.relative_to(REPO) for p in REPO.rglob("*") if p.is_file()
                      and not p.relative_to(REPO).parts[0].startswith("build"))
    return sorted({Path(f) for f in r.stdout.split("\0") if f and (REPO / f).is_file()})


def test_one_licence():
    """LICENSE is MIT, the spec says so, and every SPDX line in the tree agrees."""
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 The nodetrust authors\n")
    assert "Permission is hereby granted, free of charge" in text
    spec = (REPO / "rpm" / "nodetrust.spec").read_text()
    assert re.findall(r"^License:\s*(.+)$", spec, re.M) == ["MIT"]
    others = []
    for f in tree_files():
        try:
            body = (REPO / f).read_text()
        except UnicodeDecodeError:
            continue
        # A line of its own, in the file's comment syntax (C, shell, roff).
        for m in re.finditer(r'^(?:/\*|//|#|\.\\")\s*SPDX-License-Identifier:\s*(.*?)\s*(?:\*/)?$',
                             body, re.M):
            if m.group(1) != "MIT":
                others.append(f"{f}: {m.group(1)}")
    assert not others, others


# --- build dependencies ----------------------------------------------------------

DEBIAN_DEV = {"libsystemd": "libsystemd-dev", "openssl": "libssl-dev",
              "libcurl": "libcurl4-openssl-dev", "jansson": "libjansson-dev",
              "libmicrohttpd": "libmicrohttpd-dev", "yaml-0.1": "libyaml-dev"}


@pytest.fixture
def tree_copy(tmp_path):
    """A copy of the tree without build output, to build from scratch."""
    dst = tmp_path / "src"
    for f in tree_files():
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, dst / f)
    return dst


def make_in(tree, *args, **env_extra):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.update(env_extra)
    return run(["make", "-C", tree, *args], timeout=300, env=env)


def script(path, text):
    path.write_text(text)
    path.chmod(0o755)
    return path


def assert_stopped_before_compiling(r, tree, debs):
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    lines = [l for l in out.splitlines() if l.strip() and not l.startswith("make: ")]
    assert len(lines) == 1, f"not one line:\n{out}"
    for deb in debs:
        assert re.search(rf"\b{re.escape(deb)}\b", lines[0]), f"{deb} not named:\n{out}"
    assert "scripts/deps.sh build" in lines[0] and "make demo" in lines[0], out
    assert "No such file or directory" not in out and "error:" not in out, out
    assert not list(tree.rglob("*.o")), "something was compiled"
    return lines[0]


def test_make_without_build_dependencies_names_the_packages(tree_copy, tmp_path):
    """No pkg-config module at all (an empty search path): one line naming
    every -dev package and how to install them, and no compiler run."""
    empty = tmp_path / "no-pc"
    empty.mkdir()
    r = make_in(tree_copy, "-j4", PKG_CONFIG_LIBDIR=str(empty), PKG_CONFIG_PATH="")
    line = assert_stopped_before_compiling(r, tree_copy, DEBIAN_DEV.values())
    assert "as root" in line


@pytest.mark.parametrize("goal", ["all", "install", "unit"])
def test_make_names_the_one_missing_package(goal, tree_copy, tmp_path):
    """A pkg-config that knows everything but jansson: only libjansson-dev is
    named, whichever target compiles."""
    pc = script(tmp_path / "pkg-config", '#!/bin/sh\n'
                'for a; do [ "$a" = jansson ] && exit 1; done\nexec pkg-config "$@"\n')
    r = make_in(tree_copy, goal, f"DESTDIR={tmp_path / 'dest'}", f"PKG_CONFIG={pc}")
    line = assert_stopped_before_compiling(r, tree_copy, ["libjansson-dev"])
    others = [d for d in DEBIAN_DEV.values() if d != "libjansson-dev" and d in line]
    assert not others, line


def test_make_unit_without_cmocka_names_it(tree_copy, tmp_path):
    """A compiler that cannot find cmocka.h: the test binaries say
    libcmocka-dev before any object is compiled; `make all` does not need it."""
    cc = script(tmp_path / "cc", '#!/bin/sh\n'
                'case " $* " in *" -E "*)\n'
                '  input=$(cat)\n'
                '  case $input in *cmocka.h*) echo "fatal error: cmocka.h: No such file or directory" >&2; exit 1;; esac\n'
                '  printf "%s\\n" "$input" | exec cc "$@";;\n'
                'esac\nexec cc "$@"\n')
    r = make_in(tree_copy, "-j4", "unit", f"CC={cc}")
    assert_stopped_before_compiling(r, tree_copy, ["libcmocka-dev"])
    r = make_in(tree_copy, "-j4", "all", f"CC={cc}")
    assert r.returncode == 0, r.stderr[-3000:]


def test_targets_that_install_first_need_no_packages(tree_copy, tmp_path):
    """clean, deps, demo and check run scripts/deps.sh before anything that
    compiles, so they work where nothing is installed yet: here, a stand-in
    deps.sh "installs" by making the stand-in pkg-config find everything."""
    installed, log = tmp_path / "installed", tmp_path / "deps.log"
    pc = script(tmp_path / "pkg-config", f'#!/bin/sh\n[ -e {installed} ] || exit 1\n'
                'exec pkg-config "$@"\n')
    script(tree_copy / "scripts" / "deps.sh", f'#!/bin/sh\necho "$*" >>{log}\n'
           f'[ "$1" = test ] && exit 7\ntouch {installed}\n')
    env = {"PKG_CONFIG": str(pc)}

    r = make_in(tree_copy, "all", **env)
    assert_stopped_before_compiling(r, tree_copy, DEBIAN_DEV.values())
    assert make_in(tree_copy, "clean", **env).returncode == 0
    assert make_in(tree_copy, "deps", **env).returncode == 0
    assert log.read_text() == "build\n"
    installed.unlink()

    r = make_in(tree_copy, "-j4", "demo", **env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "demo OK" in r.stdout
    assert log.read_text() == "build\nbuild\n"

    # make check installs with `deps.sh test` first; the stand-in stops there
    # (as it would for a non-root user), before anything is checked or built.
    shutil.rmtree(tree_copy / "build")
    installed.unlink()
    r = make_in(tree_copy, "check", **env)
    assert r.returncode != 0 and log.read_text() == "build\nbuild\ntest\n", r.stdout + r.stderr
    assert "nodetrust needs" not in r.stdout + r.stderr
    assert not (tree_copy / "build").exists()


# --- the example config ----------------------------------------------------------

def help_options(text):
    """{long option: takes a value} and the short options, from --help."""
    longs, shorts = {}, set()
    for line in text.splitlines():
        m = re.match(r"\s+(?:(-[a-zA-Z]),?\s+)?(--[a-z0-9][a-z0-9-]*)(?:[ =]([A-Z][A-Z0-9:_\[\]]*))?",
                     line)
        if m:
            longs[m.group(2)] = m.group(3) is not None
            if m.group(1):
                shorts.add(m.group(1))
    return longs, shorts


def check_config_parses(nodetrustd, conf_text, tmp_path):
    """Run the agent on a config file (sources and root pointed at scratch
    directories on the command line, which wins) and fail on any complaint
    about the file."""
    conf = tmp_path / "check.conf"
    conf.write_text(conf_text)
    src = tmp_path / "empty-source"
    src.mkdir(exist_ok=True)
    r = run([nodetrustd, "--config", conf, "--dry-run", "--root", tmp_path / "scratch",
             "--trust-source", src, "--health-listen", "none"], timeout=30)
    assert str(conf) not in r.stderr and "unknown setting" not in r.stderr, r.stderr
    assert r.returncode in (0, 1, 3), f"exit {r.returncode}: {r.stderr}"


def test_example_config_keys_are_flags_and_parse(binaries, tmp_path):
    text = (REPO / "etc/nodetrustd.conf").read_text()
    longs, _ = help_options(run([binaries["nodetrustd"], "--help"], check=True).stdout)
    keys = re.findall(r"^#?\s?([a-z][a-z0-9-]+)\s*=", text, re.M)
    assert len(keys) > 15
    for k in keys:
        assert f"--{k}" in longs, f"etc/nodetrustd.conf names {k}, which is no option"
    # Every option but the command-only ones is shown in the example.
    missing = {o[2:] for o in longs} - set(keys) - {"help", "version", "config", "once", "dry-run"}
    assert not missing, f"options not shown in etc/nodetrustd.conf: {sorted(missing)}"
    check_config_parses(binaries["nodetrustd"], text, tmp_path)
    # And with every commented setting turned on, except the API source,
    # which cannot be combined with the directory source, and the second of
    # node status's two kinds of credentials.
    on = re.sub(r"^# ?([a-z][a-z0-9-]+\s*=.*)$", r"\1", text, flags=re.M)
    on = re.sub(r"^(kubeconfig|in-cluster|node-status-in-cluster)\s*=.*$", "", on, flags=re.M)
    on = on.replace("node-name =", "node-name = test-node")
    check_config_parses(binaries["nodetrustd"], on, tmp_path)


# --- Kubernetes manifests ------------------------------------------------------------

@pytest.fixture(scope="module")
def manifests():
    docs = []
    for f in sorted(DEPLOY.glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d is not None:
                assert {"apiVersion", "kind", "metadata"} <= set(d), f"{f.name}: {d}"
                docs.append(d)
    return docs


def find(docs, kind, name=None, namespace=None):
    hits = [d for d in docs if d["kind"] == kind
            and (name is None or d["metadata"]["name"] == name)
            and (namespace is None or d["metadata"].get("namespace") == namespace)]
    assert hits, f"no {kind} {name or ''} in deploy/"
    return hits


def args_dict(args):
    out = {}
    for a in args:
        k, _, v = a.partition("=")
        out[k] = v
    return out


def probe_port(container, probe):
    port = probe["httpGet"]["port"]
    if isinstance(port, str):
        port = {p["name"]: p["containerPort"] for p in container["ports"]}[port]
    return port


def test_manifests_parse_and_namespace(manifests):
    ns = find(manifests, "Namespace")[0]["metadata"]["name"]
    for d in manifests:
        if d["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            continue
        want = ns
        if d["kind"] in ("Role", "RoleBinding"):
            want = d["metadata"]["namespace"]
            # "default": only the binding of event creation there, where
            # node events go (test_manifests pins its role and subject).
            if want == "default":
                assert (d["kind"], d["metadata"]["name"]) == ("RoleBinding", "nodetrust:nodetrustd-node-events")
            else:
                assert want in (ns, "openshift-config", "openshift-config-managed")
        assert d["metadata"].get("namespace") == want, d["metadata"]


def test_daemonset(manifests, binaries):
    ds = find(manifests, "DaemonSet", "nodetrustd")[0]
    pod = ds["spec"]["template"]["spec"]
    assert ds["spec"]["selector"]["matchLabels"].items() <= \
        ds["spec"]["template"]["metadata"]["labels"].items()
    assert {"operator": "Exists"} in pod["tolerations"]
    # Tolerating every taint, it needs the OS selector to stay off Windows.
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["priorityClassName"] == "system-node-critical"
    # The node's network namespace, so that it starts before the pod
    # network (the reasons are in the manifest); no other host namespace.
    # Cluster DNS still resolves the aggregator's Service name.
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    for host_ns in ("hostPID", "hostIPC"):
        assert not pod.get(host_ns)
    (c,) = pod["containers"]
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"

    # Every argument is a real option of the binary.
    longs, _ = help_options(run([binaries["nodetrustd"], "--help"], check=True).stdout)
    args = args_dict(c["args"])
    for k in args:
        assert k in longs, f"DaemonSet passes {k}, which nodetrustd does not know"

    # Probes hit paths the agent serves, on the address it listens on. In
    # the node's network namespace that is the node's loopback, which the
    # kubelet (in the same namespace) reaches and no other machine does.
    listen_host, listen_port = args["--health-listen"].rsplit(":", 1)
    listen_port = int(listen_port)
    assert listen_host == "127.0.0.1"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for p in ("livenessProbe", "readinessProbe"):
        assert probe_port(c, c[p]) == listen_port == 9447
        assert c[p]["httpGet"]["host"] == listen_host
    # The node port it takes is declared, as hostPort (what the API would
    # default it to with hostNetwork).
    (port,) = c["ports"]
    assert port["containerPort"] == port["hostPort"] == listen_port
    # Nothing tells a scraper to reach a loopback-only endpoint at the pod's
    # (the node's) address.
    annotations = ds["spec"]["template"]["metadata"].get("annotations", {})
    assert not any(k.startswith("prometheus.io/") for k in annotations), annotations

    res = c["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"]

    # Least privilege: root only for root-owned host files, no capability.
    sc = {**pod.get("securityContext", {}), **c["securityContext"]}
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc.get("privileged", False) is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert not sc["capabilities"].get("add")
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"

    # hostPath: exactly the directories it writes, each at /host + path,
    # which is --root.
    vols = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    root = args["--root"]
    host = {v["hostPath"]["path"]: n for n, v in vols.items() if "hostPath" in v}
    assert set(host) == HOST_WRITE_DIRS | HOST_READ_DIRS
    for path, name in host.items():
        assert mounts[name]["mountPath"] == root + path
        # The runtimes' config directories are read, never written.
        assert bool(mounts[name].get("readOnly")) == (path in HOST_READ_DIRS), path
    # Inputs: the config map and the pull secret as volumes, where the
    # arguments point; the config file where the agent looks by default.
    src = next(n for n, m in mounts.items() if m["mountPath"] == args["--trust-source"])
    assert "configMap" in vols[src] and mounts[src]["readOnly"]
    sec = next(n for n, m in mounts.items() if m["mountPath"] == args["--pull-secret"])
    assert "secret" in vols[sec] and mounts[sec]["readOnly"]
    cfg = next(n for n, m in mounts.items() if m["mountPath"] == "/etc/nodetrust")
    cm = find(manifests, "ConfigMap", vols[cfg]["configMap"]["name"])[0]
    assert "nodetrustd.conf" in cm["data"]
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    find(manifests, "ServiceAccount", pod["serviceAccountName"])


def test_daemonset_config_parses(manifests, binaries, tmp_path):
    cm = find(manifests, "ConfigMap", "nodetrustd-config")[0]
    check_config_parses(binaries["nodetrustd"], cm["data"]["nodetrustd.conf"], tmp_path)


# A first verification check comes within 5 s of a bundle appearing.
VERIFY_FIRST_CHECK_S = 5


def test_daemonset_needs_no_pod_network(manifests, binaries, tmp_path, test_ca, report_line):
    """The measurement behind hostNetwork: true, for the inputs only.
    nodetrustd with the DaemonSet's own arguments and config map (paths
    moved into scratch directories, the port to a free one) syncs a
    registry and the pull secret and answers its probes, under strace.

    What is traced is "inputs only": the two parts of the DaemonSet's
    settings that do connect are turned off here, node status
    (--node-status-in-cluster, to the API server; no cluster here) by
    --node-status off and verification (on by default: cluster DNS, then a
    TLS handshake to each registry; the registry here resolves nowhere) by
    --verify-interval 0. With those off it connects nowhere at all, not
    even over a Unix socket, for longer than a first verification check
    would take to come, and its one listening socket is bound to the
    loopback address the manifest names, so in the node's network
    namespace nothing is exposed. Node status and verification connect as
    test_node_status.py and test_verify.py show; neither is needed to sync
    (deploy/30-daemonset.yaml, at hostNetwork, says why)."""
    ds = find(manifests, "DaemonSet", "nodetrustd")[0]
    (c,) = ds["spec"]["template"]["spec"]["containers"]
    args = args_dict(c["args"])
    host = args["--health-listen"].rsplit(":", 1)[0]
    port = free_port()
    root, src, secret = tmp_path / "root", tmp_path / "registry-cas", tmp_path / "pull-secret"
    (root / "var/lib/kubelet").mkdir(parents=True)
    src.mkdir()
    secret.mkdir()
    shutil.copy(test_ca.cert, src / "registry.example.com..5000")
    (secret / ".dockerconfigjson").write_text(
        '{"auths": {"registry.example.com:5000": {"auth": "dTpw"}}}')
    conf_text = find(manifests, "ConfigMap", "nodetrustd-config")[0]["data"]["nodetrustd.conf"]
    # The config map turns on nothing else that connects (the report URL
    # is commented out) and does not set verification's interval itself.
    settings = {line.split("=", 1)[0].strip() for line in conf_text.splitlines()
                if "=" in line and not line.lstrip().startswith("#")}
    assert not settings & {"report-url", "verify-interval", "node-status"}, settings
    conf = tmp_path / "nodetrustd.conf"
    conf.write_text(conf_text)
    moved = {"--root": root, "--trust-source": src, "--pull-secret": secret,
             "--health-listen": f"{host}:{port}"}
    # The DaemonSet's connections, turned off (see the docstring).
    connecting = {"--node-status-in-cluster"}
    off = {"--node-status": "off", "--verify-interval": "0"}
    assert set(moved) | connecting == set(args), f"the DaemonSet passes {sorted(args)}: map each one here"
    trace = tmp_path / "trace"
    argv = [binaries["nodetrustd"], "--config", conf, "--node-name", "hostnet-test",
            *(f"{k}={v}" for k, v in {**moved, **off}.items())]
    d = Daemon(["strace", "-f", "-qq", "-e", "trace=network", "-o", trace, *map(str, argv)],
               port, tmp_path)
    try:
        deadline = time.monotonic() + 10
        while d.get("/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        ready = time.monotonic()
        assert d.get("/readyz")[0] == 200 and d.get("/healthz")[0] == 200
        assert (root / "etc/containers/certs.d/registry.example.com:5000/ca.crt").is_file()
        assert (root / "var/lib/kubelet/config.json").is_file()
        # Past the moment a first verification check would have come.
        time.sleep(max(0.0, ready + VERIFY_FIRST_CHECK_S + 1 - time.monotonic()))
        assert d.get("/healthz")[0] == 200
    finally:
        status = d.stop()
    assert status == 0
    text = Path(trace).read_text()
    connects = re.findall(r"^\d+\s+connect\((.*)$", text, re.M)
    binds = re.findall(r"^\d+\s+bind\((.*)$", text, re.M)
    assert not connects, f"nodetrustd connected with the DaemonSet's inputs alone: {connects}"
    assert len(binds) == 1 and f'inet_addr("{host}")' in binds[0] and \
        f"htons({port})" in binds[0], binds
    report_line(f"DaemonSet settings, inputs only (node status and verification off), under strace "
                f"for {VERIFY_FIRST_CHECK_S + 1} s after ready: {len(connects)} connect(); "
                f"one listener, on {host}")


def test_aggregator_deployment(manifests, binaries):
    dep = find(manifests, "Deployment", "nodetrust-aggregator")[0]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    longs, _ = help_options(run([binaries["nodetrust-aggregator"], "--help"], check=True).stdout)
    args = args_dict(c["args"])
    for k in args:
        assert k in longs, f"Deployment passes {k}, which the aggregator does not know"
    port = int(args["--listen"].rsplit(":", 1)[1])
    for p in ("livenessProbe", "readinessProbe"):
        assert c[p]["httpGet"]["path"] == "/healthz"
        assert probe_port(c, c[p]) == port
    sc = {**pod["securityContext"], **c["securityContext"]}
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
    token_dir = str(Path(args["--token-file"]).parent)
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == token_dir)
    vol = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert vol["secret"]["secretName"]
    svc = find(manifests, "Service", "nodetrust-aggregator")[0]
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    (sp,) = svc["spec"]["ports"]
    target = sp["targetPort"]
    if isinstance(target, str):
        target = {p["name"]: p["containerPort"] for p in c["ports"]}[target]
    assert target == port


def test_rbac_for_api_source(manifests):
    sa = find(manifests, "ServiceAccount", "nodetrustd")[0]
    subject = {"kind": "ServiceAccount", "name": "nodetrustd",
               "namespace": sa["metadata"]["namespace"]}
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
             for d in manifests if d["kind"] in ("Role", "ClusterRole")}
    granted = {}  # (namespace or None, group, resource) -> [rule]
    writes = set()  # (namespace or None, resource, verb)
    for b in manifests:
        if b["kind"] not in ("RoleBinding", "ClusterRoleBinding") or subject not in b["subjects"]:
            continue
        ns = b["metadata"].get("namespace")
        ref = b["roleRef"]
        role = roles[(ref["kind"], ns if ref["kind"] == "Role" else None, ref["name"])]
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
            # Reads, and node status's two writes (test_manifests pins
            # those exactly): the condition on nodes/status, cluster-wide
            # (nodes have no namespace), and events in "default" only.
            if not set(rule["verbs"]) <= {"get", "list", "watch"}:
                assert rule["apiGroups"] == [""], rule
                writes.update((ns, r, v) for r in rule["resources"] for v in rule["verbs"])
                continue
            for g in rule["apiGroups"]:
                for res in rule["resources"]:
                    granted.setdefault((ns, g, res), []).append(rule)

    def names(ns, group, res):
        rules = granted.get((ns, group, res))
        assert rules, f"no grant on {group}/{res} in {ns}"
        assert all(set(r["verbs"]) == {"get", "list", "watch"} for r in rules)
        return [r.get("resourceNames") for r in rules]

    assert writes == {(None, "nodes/status", "patch"), ("default", "events", "create")}, writes
    assert names(None, "config.openshift.io", "images") == [["cluster"]]
    assert names("openshift-config", "", "secrets") == [["pull-secret"]]
    names("openshift-config", "", "configmaps")  # any name: the admin picks it
    assert names("openshift-config-managed", "", "configmaps") == [["image-registry-ca"]]
    # No secret anywhere else, and none by type or namespace.
    for (ns, g, res), rules in granted.items():
        if res == "secrets":
            assert ns == "openshift-config" and all(r.get("resourceNames") for r in rules)


def test_probe_paths_are_served(agent_daemon, aggregator):
    """The probes' paths are real: the running daemons answer them."""
    assert agent_daemon.get("/healthz")[0] == 200
    assert agent_daemon.get("/readyz")[0] == 200
    assert agent_daemon.get("/no-such-path")[0] == 404
    assert aggregator.get("/healthz")[0] == 200


# --- Containerfile -------------------------------------------------------------------

def containerfile_stages():
    """[(from line, [apt packages], [COPY lines])] per stage."""
    text = (REPO / "Containerfile").read_text().replace("\\\n", " ")
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("FROM "):
            stages.append((line, [], []))
        elif line.startswith("RUN ") and "apt-get install" in line:
            cmd = line.split("apt-get install", 1)[1].split("&&")[0]
            stages[-1][1].extend(w for w in cmd.split() if not w.startswith("-"))
        elif line.startswith("COPY "):
            stages[-1][2].append(line)
    return stages


def dpkg_owner(path):
    r = run(["dpkg", "-S", path], check=True)
    return r.stdout.split(":", 1)[0]


def test_containerfile(binaries, manifests):
    stages = containerfile_stages()
    assert len(stages) == 2, "multi-stage: build, then runtime"
    (build_from, build_pkgs, build_copies), (run_from, run_pkgs, run_copies) = stages
    assert build_from.startswith("FROM docker.io/library/debian:12 ") and " AS build" in build_from
    assert run_from.startswith("FROM docker.io/library/debian:12")

    # The build stage installs the -dev package of every pkg-config module
    # the Makefile links with (as this machine knows them).
    mk = (REPO / "Makefile").read_text()
    modules = re.search(r"^PKGS\s*:?=\s*(.+)$", mk, re.M).group(1).split()
    for mod in modules:
        pcdir = run(["pkg-config", "--variable=pcfiledir", mod], check=True).stdout.strip()
        assert dpkg_owner(f"{pcdir}/{mod}.pc") in build_pkgs, mod
    # Every source directory the Makefile compiles is copied in.
    copied = " ".join(build_copies)
    for d in ("common", "agent", "aggregator", "mk"):
        assert f"{d}/" in copied, d

    # The runtime stage installs the package of every shared library the
    # binaries need (libc is in the base image).
    for b in binaries.values():
        needed = re.findall(r"\(NEEDED\).*\[(.+)\]", run(["readelf", "-d", b], check=True).stdout)
        for lib in needed:
            if lib.startswith(("libc.so", "libm.so", "ld-linux")):
                continue
            path = next(line.split("=>")[1].split()[0]
                        for line in run(["ldd", b], check=True).stdout.splitlines()
                        if line.strip().startswith(lib + " "))
            owner = dpkg_owner(os.path.realpath(path))
            assert owner in run_pkgs, f"{b.name} needs {lib} from {owner}, not in the runtime stage"
    assert "ca-certificates" in run_pkgs

    # The binaries land where the manifests run them from.
    (cp,) = [c for c in run_copies if "--from=build" in c]
    dest = cp.split()[-1]
    for d in manifests:
        if d["kind"] in ("DaemonSet", "Deployment"):
            for c in d["spec"]["template"]["spec"]["containers"]:
                cmd = c["command"][0]
                assert cmd.startswith(dest) and Path(cmd).name in cp, cmd


def test_containerfile_build_stage_has_what_make_needs(tmp_path):
    """The build stage's COPY lines bring in enough of the tree: replay them
    into an empty directory and build there, as the image build would."""
    (_, _, copies), _ = containerfile_stages()
    ctx = tmp_path / "src"
    ctx.mkdir()
    for line in copies:
        *srcs, dest = line.split()[1:]
        assert not any(a.startswith("--") for a in srcs), line
        for src in srcs:
            target = ctx / dest / (Path(src).name if dest.endswith("/") and
                                   not src.endswith("/") else "")
            if (REPO / src).is_dir():
                shutil.copytree(REPO / src, target, dirs_exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / src, target)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = run(["make", "-C", ctx, "-j2", "all"], timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    for b in ("nodetrustd", "nodetrust-aggregator"):
        assert os.access(ctx / "build" / b, os.X_OK)


# --- man pages -------------------------------------------------------------------------

@pytest.mark.parametrize("page", sorted(MAN_PAGES))
def test_man_page_has_no_warnings(page):
    path = MAN_PAGES[page]
    r = run(["groff", "-ww", "-man", "-z", path])
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = run(["man", "--warnings", "-l", path], env=dict(os.environ, MANWIDTH="80", MANPAGER="cat",
                                                      PAGER="cat"))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert not re.search(r"@[A-Z]+@", path.read_text()), "an unfilled placeholder"


def man_section(path, title):
    src = Path(path).read_text()
    m = re.search(rf"^\.SH \"?{title}\"?\n(.*?)(?=^\.SH |\Z)", src, re.M | re.S)
    assert m, f"{path.name} has no {title} section"
    return m.group(1)


def man_options(path):
    """({long option: takes a value}, short options) documented in OPTIONS:
    the tag line after each .TP."""
    longs, shorts = {}, set()
    lines = man_section(path, "OPTIONS").splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip() != ".TP":
            continue
        tag = lines[i + 1].replace("\\-", "-")
        for short in re.findall(r"(?<![\w-])(-[a-zA-Z])\b", tag):
            shorts.add(short)
        m = re.search(r"(--[a-z0-9][a-z0-9-]*)", tag)
        assert m, f"{path.name}: .TP tag without an option: {tag}"
        longs[m.group(1)] = tag.startswith(".BI") or bool(re.search(r"\\fI", tag))
    return longs, shorts


@pytest.mark.parametrize("name", sorted(MAN_PAGES))
def test_man_options_match_help(name, binaries):
    r = run([binaries[name], "--help"], check=True)
    help_longs, help_shorts = help_options(r.stdout)
    man_longs, man_shorts = man_options(MAN_PAGES[name])
    assert len(help_longs) >= 8
    assert set(man_longs) == set(help_longs), \
        f"only in --help: {sorted(set(help_longs) - set(man_longs))}; " \
        f"only in the man page: {sorted(set(man_longs) - set(help_longs))}"
    assert man_shorts == help_shorts
    for opt, takes in help_longs.items():
        assert man_longs[opt] == takes, f"{opt}: --help and the man page disagree on its argument"


@pytest.mark.parametrize("name", sorted(MAN_PAGES))
def test_man_documents_signals_exit_status_files(name):
    path = MAN_PAGES[name]
    text = path.read_text().replace("\\-", "-")
    signals = man_section(path, "SIGNALS")
    for sig in ("SIGTERM", "SIGINT") + (("SIGHUP",) if name == "nodetrustd" else ()):
        assert sig in signals
    codes = set(re.findall(r"^\.TP\n\.B (\d+)$", man_section(path, "EXIT STATUS"), re.M))
    assert codes == ({"0", "1", "2", "3"} if name == "nodetrustd" else {"0", "1", "2"})
    files = man_section(path, "FILES")
    assert "/etc/nodetrust/" in files
    if name == "nodetrustd":
        for p in (*CERT_DIRS, KUBELET_DIR + "/config.json", STATE_DIR, "nodetrustd.conf"):
            assert p.replace("-", "\\-") in files or p in files, p
        for path_ in ("/healthz", "/readyz", "/metrics", "/status"):
            assert path_ in man_section(path, "HEALTH ENDPOINT")
    else:
        for path_ in ("/api/v1/reports", "/api/v1/nodes", "/api/v1/summary", "/metrics",
                      "/healthz"):
            assert path_ in man_section(path, "HTTP INTERFACE")
    assert "nodetrust" in text


def exposed_metrics(text):
    """{family: set(label names)} from Prometheus text: every # HELP family,
    with the labels its samples carry."""
    fams = {m: set() for m in re.findall(r"^# HELP (\S+)", text, re.M)}
    for m in re.finditer(r"^([a-zA-Z_:][\w:]*)(?:\{(.*?)\})? ", text, re.M):
        name = m.group(1)
        fam = name if name in fams else re.sub(r"_(bucket|sum|count)$", "", name)
        assert fam in fams, f"sample {name} without # HELP"
        if m.group(2):
            fams[fam] |= set(re.findall(r"(\w+)=\"", m.group(2))) - {"le", "quantile"}
    return fams


def man_metrics(path):
    out = {}
    for m in re.finditer(r"^\.B (nodetrust_\w+)(?:\{([\w,]+)\})?\s*$",
                         man_section(path, "METRICS").replace("\\_", "_").replace("\\:", "").replace("\\%", ""), re.M):
        out[m.group(1)] = set(m.group(2).split(",")) if m.group(2) else set()
    return out


def test_man_documents_every_agent_metric(agent_daemon):
    status, text = agent_daemon.get("/metrics")
    assert status == 200
    exposed = exposed_metrics(text)
    documented = man_metrics(MAN_PAGES["nodetrustd"])
    assert set(exposed) == set(documented)
    for fam, labels in exposed.items():
        # A family with samples only where something is wrong or known (the
        # per-registry ineffective one; a server certificate's notAfter
        # before a check saw one) has no samples, so no labels, here.
        assert labels == documented[fam] or (not labels and not re.search(rf"^{fam}[{{ ]", text, re.M)), fam


def test_man_documents_every_aggregator_metric(aggregator):
    status, text = aggregator.get("/metrics")
    assert status == 200
    exposed = exposed_metrics(text)
    documented = man_metrics(MAN_PAGES["nodetrust-aggregator"])
    assert set(exposed) == set(documented)
    for fam, labels in exposed.items():
        # Families without samples yet (no report received) show no labels.
        assert labels <= documented[fam], fam
