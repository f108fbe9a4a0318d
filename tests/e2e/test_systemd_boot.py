# SPDX-License-Identifier: MIT
"""The shipped units under a real systemd: a minimal Debian 12 booted in a
container with systemd-nspawn.

The root is debootstrapped once (minbase, plus systemd and the libraries the
built binaries link with) and cached as a tarball in build/systemd-root/.
Each run unpacks a throwaway copy, applies `make install DESTDIR=<copy>`,
boots it, and drives it from outside with nsenter into the container's
namespaces (systemctl -M needs systemd-machined, which --register=no leaves
out). The tests below run in file order against the one container, but
each sets up what it needs.

The last test is the agent's half of the heal without systemd: a write
refused with EROFS makes the daemon exit non-zero.

What they prove, beyond what the offline checks in test_packaging.py can:
Type=notify READY and a current STATUS=, ExecReload= on a system without
/bin/kill, the watchdog, the sandbox's directories created before it is set
up, a replaced target directory healed by a restart, the aggregator's
DynamicUser and credential, a clean stop, and structured journal fields.

Skipped, saying why, only where the machine cannot run it: not root, no
debootstrap or systemd-nspawn, or no cached root and no network to the
mirror.
"""

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import peers
from peers import wait_for

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build"
CACHE = BUILD / "systemd-root"
# Written last, after the tarball is in place: its presence means the cache
# is whole. It also records what the root was built with.
MARKER = "root.json"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

# The one test-only override, in a drop-in: the shipped WatchdogSec=1min
# would make the watchdog check wait over a minute. The rest is as shipped.
WATCHDOG_SEC = 3
RESTART_SEC = 5  # as shipped (nodetrustd.service RestartSec=)
AGGREGATOR_TOKEN = "boot-test-token"
REPORT_INTERVAL = 2
HEALTH_PORT = 9447      # the shipped defaults, inside the container's network
AGGREGATOR_PORT = 9448
TARGET_DIRS = ("docker", "containers", "containerd")
REGISTRY = "registry.example.com:5000"
OTHER_REGISTRY = "other.example.com"


def ca_file(root, target, registry):
    return Path(root) / "etc" / target / "certs.d" / registry / "ca.crt"


# --- the cached root ----------------------------------------------------------

def apt_mirror():
    """The Debian mirror apt uses here (deb822 .sources first, then
    sources.list), for the suite we boot; the public one when none says."""
    candidates = []
    for f in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", f.read_text(errors="replace")):
            fields = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
            if fields.get("enabled", "yes").lower() == "no":
                continue
            if "deb" in fields.get("types", "").split() and SUITE in fields.get("suites", "").split():
                candidates += fields.get("uris", "").split()
    lists = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    for f in lists:
        if not f.is_file():
            continue
        for line in f.read_text(errors="replace").splitlines():
            words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                candidates.append(words[1])
    for uri in candidates:
        if uri.startswith(("http://", "https://")):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def mirror_reachable(mirror):
    try:
        with urllib.request.urlopen(f"{mirror}/dists/{SUITE}/Release", timeout=10) as r:
            return r.status == 200
    except OSError:
        return False


def packages_needed():
    """What the units need that minbase lacks: systemd itself (minbase has
    no init at all) and the packages holding the shared libraries the built
    binaries link with (as this Debian 12 machine names them; libc is in
    minbase). Nothing else: systemctl talks to PID 1 over its private socket
    without D-Bus, and DynamicUser= needs no NSS module."""
    pkgs = {"systemd"}
    for b in (BUILD / "nodetrustd", BUILD / "nodetrust-aggregator"):
        dynamic = subprocess.run(["readelf", "-d", b], capture_output=True, text=True,
                                 check=True).stdout
        ldd = subprocess.run(["ldd", b], capture_output=True, text=True, check=True).stdout
        for lib in re.findall(r"\(NEEDED\).*\[(.+)\]", dynamic):
            if lib.startswith(("libc.so", "libm.so", "ld-linux")):
                continue
            path = next(line.split("=>")[1].split()[0] for line in ldd.splitlines()
                        if line.strip().startswith(lib + " "))
            pkgs.add(dpkg_owner(path))
    return sorted(pkgs)


def dpkg_owner(path):
    """The package that ships path; with merged /usr, dpkg may know it
    under /lib or /usr/lib, by its real name or its soname link."""
    names = []
    for p in (os.path.realpath(path), path):
        names += [p, p[4:] if p.startswith("/usr/") else "/usr" + p]
    for name in names:
        r = subprocess.run(["dpkg", "-S", name], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":", 1)[0]
    raise AssertionError(f"no package ships {path}")


def mounts_below(path):
    """Mount points at or below path, deepest first."""
    path = os.path.realpath(path)
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4].replace("\\040", " ")
        if mp == path or mp.startswith(path + "/"):
            out.append(mp)
    return sorted(out, key=len, reverse=True)


def remove_tree(path):
    """rm -rf that first unmounts what an interrupted debootstrap left
    mounted inside (its /proc and /sys), so it never recurses into them."""
    for mp in mounts_below(path):
        subprocess.run(["umount", "-l", mp], check=False)
    if mounts_below(path):
        raise AssertionError(f"{path} still has mounts below it; not removing it")
    shutil.rmtree(path, ignore_errors=True)


def cached_root(report_line, tmp_parent):
    """build/systemd-root/root.tar, debootstrapped now when absent or built
    with other packages; returns (tarball, seconds debootstrap took or None).

    The root is kept as a tarball, not a tree: the Makefile includes every
    `*.d` below build/ as a dependency file, and a Debian tree is full of
    `*.d` directories. It is debootstrapped under tmp_parent, archived next
    to the cache, renamed into place, and the marker written last, so an
    interrupted run never leaves a half root where a whole one is expected;
    a lock keeps two runs from building it at once."""
    packages = packages_needed()
    want = {"suite": SUITE, "variant": "minbase", "packages": packages}
    tarball, marker = CACHE / "root.tar", CACHE / MARKER

    def current():
        try:
            return tarball.is_file() and json.loads(marker.read_text()) == want
        except (OSError, ValueError):
            return False

    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if current():
            return tarball, None
        mirror = apt_mirror()
        if not mirror_reachable(mirror):
            pytest.skip(f"no cached root in {CACHE} and no network to the mirror {mirror}")
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()
        tree = Path(tmp_parent) / "debootstrap"
        log = CACHE / "debootstrap.log"
        t0 = time.monotonic()
        try:
            with open(log, "w") as out:
                r = subprocess.run(["debootstrap", "--variant=minbase",
                                    f"--include={','.join(packages)}", SUITE, tree, mirror],
                                   stdout=out, stderr=subprocess.STDOUT, timeout=900)
            if r.returncode != 0:
                pytest.fail(f"debootstrap {SUITE} from {mirror} failed ({r.returncode}):\n"
                            + log.read_text(errors="replace")[-3000:], pytrace=False)
            part = CACHE / "root.tar.part"
            subprocess.run(["tar", "-C", tree, "--numeric-owner", "--xattrs", "--xattrs-include=*",
                            "-cf", part, "."], check=True, timeout=300)
            os.rename(part, tarball)
            part = CACHE / (MARKER + ".part")
            part.write_text(json.dumps(want))
            os.rename(part, marker)
        finally:
            remove_tree(tree)
        took = time.monotonic() - t0
        report_line(f"systemd boot test: debootstrapped {SUITE} minbase from {mirror} "
                    f"into {tarball.relative_to(REPO)} in {took:.0f} s")
        return tarball, took


# --- the container -------------------------------------------------------------

class Container:
    """A booted copy of the cached root; commands run inside by nsenter."""

    def __init__(self, root, log_path):
        self.root = Path(root)
        self.log_path = log_path
        self.proc = None
        self.leader = None
        self.nsenter = shutil.which("nsenter")

    def boot(self, timeout=60):
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS",
                            "LISTEN_PID", "INVOCATION_ID", "JOURNAL_STREAM")}
        with open(self.log_path, "wb") as log:
            # --register=no --keep-unit: there is no machined (nor a systemd)
            # on the host to register with. --private-network: the
            # container's own loopback, so the shipped ports 9447/9448 do not
            # meet anything of the host's.
            self.proc = subprocess.Popen(
                ["systemd-nspawn", "-D", self.root, "--boot", "--register=no", "--keep-unit",
                 "--private-network", f"--machine={self.root.name}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)

        def leader():
            if self.proc.poll() is not None:
                raise AssertionError(f"systemd-nspawn exited {self.proc.returncode}:\n{self.boot_log()}")
            try:
                kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
                for k in kids:
                    ns = re.search(r"^NSpid:\s+(.*)$", Path(f"/proc/{k}/status").read_text(), re.M)
                    if ns and ns.group(1).split()[-1] == "1":
                        return int(k)
            except OSError:
                pass
            return None
        self.leader = wait_for(leader, timeout=10, interval=0.05, what="the container's init")
        # "offline" until PID 1 answers on its socket, which --wait does
        # not wait for; then --wait waits out "starting".
        def settled():
            r = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=timeout)
            state = r.stdout.strip()
            return state if state not in ("", "offline", "initializing", "starting") else None
        state = wait_for(settled, timeout=timeout, interval=0.1, what="the container's boot")
        if state != "running":
            failed = self.run("systemctl", "--failed", "--no-legend", check=False).stdout
            assert state == "degraded", f"system state {state!r}:\n{self.boot_log()}"
            print(f"container booted degraded; failed units:\n{failed}")

    def boot_log(self):
        return Path(self.log_path).read_text(errors="replace")[-3000:]

    def run(self, *cmd, check=True, timeout=30, netns_only=False):
        """Run cmd inside: all namespaces (the container's own file system),
        or with netns_only the host's programs in the container's network."""
        ns = ["--net"] if netns_only else ["--all"]
        env = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}
        r = subprocess.run([self.nsenter, "--target", str(self.leader), *ns, *map(str, cmd)],
                           capture_output=True, text=True, timeout=timeout, env=env)
        if check and r.returncode != 0:
            raise AssertionError(f"in the container: {' '.join(map(str, cmd))} exited {r.returncode}\n"
                                 f"stdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}")
        return r

    def sh(self, script, **kw):
        return self.run("/bin/sh", "-c", script, **kw)

    def show(self, unit, *props):
        out = self.run("systemctl", "show", "-p", ",".join(props), unit).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, *args):
        """Journal entries (dicts) inside; `args` filter, e.g. -u UNIT."""
        out = self.run("journalctl", "--no-pager", "-o", "json", *args).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def http_get(self, port, path):
        """(status, body) of GET http://127.0.0.1:port/path inside the
        container's network namespace, with the host's python."""
        code = ("import sys, urllib.request, urllib.error\n"
                "try:\n"
                f"    r = urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=5)\n"
                "    print(r.status); sys.stdout.write(r.read().decode())\n"
                "except urllib.error.HTTPError as e:\n"
                "    print(e.code); sys.stdout.write(e.read().decode())\n")
        r = self.run("/usr/bin/python3", "-c", code, netns_only=True, check=False)
        if r.returncode != 0:
            return None, r.stderr
        status, _, body = r.stdout.partition("\n")
        return int(status), body

    def poweroff(self):
        """Orderly shutdown (nspawn turns SIGTERM into a halt of the
        container), then the hard way; nothing is left running."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                # Killing the container's PID 1 kills its whole PID namespace.
                if self.leader is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.leader, signal.SIGKILL)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        if self.leader is not None:
            wait_for(lambda: not Path(f"/proc/{self.leader}").exists(), timeout=10,
                     what="the container's init to go")


def install_into(root, test_ca):
    """make install into the copy, then what a node's administrator adds:
    the trust map (kubelet layout), report settings, the tokens, and the
    test-only drop-in."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = subprocess.run(["make", "-C", REPO, "install", f"DESTDIR={root}", "PREFIX=/usr",
                        "SYSCONFDIR=/etc"], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, f"make install failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    etc = root / "etc" / "nodetrust"
    volume = peers.KubeletVolume(etc / "trust.d", {REGISTRY.replace(":", ".."): test_ca.pem()})
    with open(etc / "nodetrustd.conf", "a") as conf:
        conf.write(f"\n# boot test\nreport-url = http://127.0.0.1:{AGGREGATOR_PORT}\n"
                   f"report-token-file = /etc/nodetrust/report.token\n"
                   f"report-interval = {REPORT_INTERVAL}\nnode-name = boot-test\n")
    for name in ("aggregator.token", "report.token"):
        (etc / name).write_text(AGGREGATOR_TOKEN + "\n")
        os.chmod(etc / name, 0o600)
    dropin = root / "etc/systemd/system/nodetrustd.service.d"
    dropin.mkdir(parents=True)
    (dropin / "boot-test.conf").write_text(f"[Service]\nWatchdogSec={WATCHDOG_SEC}s\n")
    return volume


@pytest.fixture(scope="module")
def container(tmp_path_factory, test_ca, report_line):
    if os.geteuid() != 0:
        pytest.skip("the systemd boot test needs root (debootstrap, systemd-nspawn)")
    missing = [t for t in ("debootstrap", "systemd-nspawn", "nsenter", "dpkg", "readelf")
               if shutil.which(t) is None]
    if missing:
        pytest.skip(f"the systemd boot test needs {', '.join(missing)} (scripts/deps.sh test)")
    for b in ("nodetrustd", "nodetrust-aggregator"):
        if not os.access(BUILD / b, os.X_OK):
            pytest.fail(f"{BUILD / b} not built: run `make`", pytrace=False)

    t0 = time.monotonic()
    work = tmp_path_factory.mktemp("systemd-boot")
    tarball, debootstrap_s = cached_root(report_line, work)
    root = work / "nodetrust-boot"
    root.mkdir()
    # A copy per run: the cache never sees a booted system's changes.
    subprocess.run(["tar", "-C", root, "--numeric-owner", "--xattrs", "--xattrs-include=*",
                    "-xpf", tarball], check=True, timeout=300)
    ct = Container(root, work / "console.log")
    boot_s = None
    try:
        ct.volume = install_into(root, test_ca)
        t_boot = time.monotonic()
        ct.boot()
        boot_s = time.monotonic() - t_boot
        yield ct
    finally:
        journal = BUILD / "test-output" / "systemd-boot-journal.txt"
        try:
            if ct.leader is not None and ct.proc.poll() is None:
                journal.parent.mkdir(parents=True, exist_ok=True)
                r = ct.run("journalctl", "--no-pager", "-o", "short-precise", check=False)
                journal.write_text(r.stdout)
        finally:
            ct.poweroff()
        # Only once nothing runs in it any more (poweroff raises otherwise).
        if not mounts_below(root):
            shutil.rmtree(root, ignore_errors=True)
        total = time.monotonic() - t0
        where = ("cached root" if debootstrap_s is None
                 else f"debootstrap {debootstrap_s:.0f} s")
        boot = f", boot {boot_s:.1f} s" if boot_s is not None else ""
        report_line(f"systemd boot test: {total:.1f} s ({where}; unpack, install{boot}, checks, "
                    f"poweroff); journal in {journal.relative_to(REPO)}")


def agent_running(ct):
    """nodetrustd started (again) if a test before left it stopped."""
    s = ct.show("nodetrustd", "ActiveState")
    if s["ActiveState"] != "active":
        ct.run("systemctl", "start", "nodetrustd")
    return ct.show("nodetrustd", "MainPID", "NRestarts")


def wait_active_again(ct, old_pid, old_restarts, timeout):
    def again():
        s = ct.show("nodetrustd", "ActiveState", "SubState", "MainPID", "NRestarts")
        if (s["ActiveState"] == "active" and s["SubState"] == "running"
                and int(s["NRestarts"]) > int(old_restarts) and s["MainPID"] not in ("0", old_pid)):
            return s
        return None
    try:
        return wait_for(again, timeout=timeout, interval=0.2, what="nodetrustd restarted and active")
    except AssertionError as e:
        log = ct.run("journalctl", "--no-pager", "-o", "short-precise", "-n", "40", "-u", "nodetrustd",
                     check=False).stdout
        raise AssertionError(f"{e}\n{ct.show('nodetrustd', 'ActiveState', 'SubState', 'MainPID', 'NRestarts')}"
                             f"\n{log}") from None


def all_cas_present(root, registries):
    return all(ca_file(root, t, reg).is_file() for t in TARGET_DIRS for reg in registries)


def registries(ct):
    """The registries the trust map holds now (the first test adds one)."""
    return sorted(k.replace("..", ":") for k in ct.volume.data)


def trusting(ct):
    return f"Trusting {len(registries(ct))} registries (0 refused"


# --- the checks ----------------------------------------------------------------------------

def test_agent_starts_ready_with_current_status(container, test_ca, other_ca):
    ct = container
    # Type=notify: `systemctl start` returns once READY=1 came, after the
    # first sync.
    ct.run("systemctl", "start", "nodetrustd", timeout=60)
    s = ct.show("nodetrustd", "ActiveState", "SubState", "StatusText", "NRestarts", "Type")
    assert (s["ActiveState"], s["SubState"], s["Type"]) == ("active", "running", "notify"), s
    assert s["StatusText"].startswith("Trusting 1 registries (0 refused, 0 conflicting"), s
    want = peers.pem_certs_der(test_ca.pem())
    for t in TARGET_DIRS:
        assert peers.pem_certs_der(ca_file(ct.root, t, REGISTRY).read_text()) == want, t
    started = [e for e in ct.journal("-u", "nodetrustd")
               if e.get("MESSAGE", "").startswith("Started nodetrustd.service")]
    synced = [e for e in ct.journal("-u", "nodetrustd") if e.get("MESSAGE") == "Sync complete"]
    assert started and synced
    assert int(synced[0]["__MONOTONIC_TIMESTAMP"]) <= int(started[0]["__MONOTONIC_TIMESTAMP"]), \
        "READY before the first sync"

    # The config map changes: STATUS= follows at once, not at some later tick.
    ct.volume.update({REGISTRY.replace(":", ".."): test_ca.pem(), OTHER_REGISTRY: other_ca.pem()})
    t0 = time.monotonic()
    wait_for(lambda: ct.show("nodetrustd", "StatusText")["StatusText"].startswith(
        "Trusting 2 registries (0 refused"), timeout=10, interval=0.1, what="STATUS after the change")
    assert time.monotonic() - t0 < 5
    assert all_cas_present(ct.root, (REGISTRY, OTHER_REGISTRY))


def syncs_total(ct):
    status, body = ct.http_get(HEALTH_PORT, "/metrics")
    assert status == 200, body
    return int(re.search(r"^nodetrust_syncs_total (\d+)$", body, re.M).group(1))


def test_reload_resyncs(container):
    ct = container
    pid = agent_running(ct)["MainPID"]
    before = syncs_total(ct)
    # ExecReload= works on a system without /bin/kill.
    assert not (ct.root / "bin/kill").exists() and not (ct.root / "usr/bin/kill").exists()
    ct.run("systemctl", "reload", "nodetrustd")
    wait_for(lambda: [e for e in ct.journal("-u", "nodetrustd")
                      if e.get("MESSAGE") == "Received SIGHUP, resyncing now" and e.get("_PID") == pid],
             timeout=10, interval=0.1, what="the SIGHUP line from the main process")
    wait_for(lambda: syncs_total(ct) > before, timeout=10, interval=0.1, what="a sync after the reload")
    s = ct.show("nodetrustd", "ActiveState", "MainPID")
    assert s == {"ActiveState": "active", "MainPID": pid}, s


def test_target_dir_missing_at_start_is_created(container):
    """ReadWritePaths= skips a directory missing at start ("-"), and then
    nothing can be written there: ExecStartPre= creates it first."""
    ct = container
    agent_running(ct)
    ct.run("systemctl", "stop", "nodetrustd")
    ct.sh("rm -rf /etc/containerd/certs.d")
    ct.run("systemctl", "start", "nodetrustd", timeout=60)
    s = ct.show("nodetrustd", "ActiveState", "StatusText", "NRestarts")
    assert s["ActiveState"] == "active", s
    assert s["StatusText"].startswith(trusting(ct)), s
    assert all_cas_present(ct.root, registries(ct))
    time.sleep(1)  # no restart loop behind it
    assert ct.show("nodetrustd", "NRestarts")["NRestarts"] == s["NRestarts"]


def test_replaced_target_dir_is_healed(container):
    """rm -rf and mkdir of a target directory while the agent runs leaves its
    ReadWritePaths= bind mount on the deleted directory; the new one is only
    seen read-only. The agent exits (EROFS) and its restart binds the new one."""
    ct = container
    s = agent_running(ct)
    t0 = time.monotonic()
    # rm -rf races the agent, which puts back what it sees deleted: retry
    # until the directory itself is gone.
    ct.sh("i=0; until rm -rf /etc/docker/certs.d 2>/dev/null; do i=$((i+1)); [ $i -lt 100 ] || exit 1; "
          "done; mkdir /etc/docker/certs.d")
    wait_active_again(ct, s["MainPID"], s["NRestarts"], timeout=RESTART_SEC + 15)
    wait_for(lambda: all_cas_present(ct.root, registries(ct)), timeout=10,
             what="ca.crt back in the new /etc/docker/certs.d")
    healed = time.monotonic() - t0
    why = [e for e in ct.journal("-u", "nodetrustd")
           if e.get("MESSAGE", "").startswith("Target directory is read-only")
           and e.get("_PID") == s["MainPID"]]
    assert why and why[0]["TARGET"] == "docker" and why[0]["DIRECTORY"] == "/etc/docker/certs.d", why
    assert ct.show("nodetrustd", "StatusText")["StatusText"].startswith(trusting(ct))
    print(f"replaced /etc/docker/certs.d healed in {healed:.1f} s")


def test_watchdog_restarts_a_stopped_agent(container):
    ct = container
    s = agent_running(ct)
    ct.sh(f"kill -STOP {s['MainPID']}")
    wait_active_again(ct, s["MainPID"], s["NRestarts"], timeout=WATCHDOG_SEC + RESTART_SEC + 10)
    assert [e for e in ct.journal("-u", "nodetrustd")
            if "Watchdog timeout" in e.get("MESSAGE", "")], "no watchdog timeout in the journal"
    assert all_cas_present(ct.root, registries(ct))


def test_aggregator_dynamic_user_credential_summary_status(container):
    ct = container
    ct.run("systemctl", "start", "nodetrust-aggregator", timeout=60)
    s = ct.show("nodetrust-aggregator", "ActiveState", "MainPID", "StatusText")
    assert s["ActiveState"] == "active", s
    # DynamicUser=: a throwaway uid, not root.
    uid = re.search(r"^Uid:\s+(\d+)", ct.run("cat", f"/proc/{s['MainPID']}/status").stdout, re.M)
    assert 61184 <= int(uid.group(1)) <= 65519, uid.group(0)
    # A fresh agent reports right after its first sync (one that has been
    # failing to reach the aggregator is in backoff). Its report gets in
    # with the token the credential carries, and STATUS= says so at once:
    # it used to wait for the minute's housekeeping.
    ct.run("systemctl", "restart", "nodetrustd", timeout=60)
    t0 = time.monotonic()
    converged = "1 nodes: 1 converged, 0 lagging, 0 failing, 0 stale"
    wait_for(lambda: ct.show("nodetrust-aggregator", "StatusText")["StatusText"] == converged,
             timeout=15, interval=0.1, what="the aggregator's STATUS=")
    took = time.monotonic() - t0
    assert took < 5, f"STATUS= took {took:.1f} s"
    status, body = ct.http_get(AGGREGATOR_PORT, "/api/v1/summary")
    assert status == 200, body
    summary = json.loads(body)
    assert summary["total"] == 1 and summary["counts"]["converged"] == 1, summary


def test_journal_has_structured_fields(container):
    ct = container
    agent_running(ct)
    created = [e for e in ct.journal("-u", "nodetrustd") if e.get("MESSAGE") == "Created registry CA"]
    assert {e.get("TARGET") for e in created} == set(TARGET_DIRS), created
    assert {e.get("REGISTRY") for e in created} >= set(registries(ct))
    assert all(re.fullmatch(r"[0-9a-f]{64}", e.get("FINGERPRINT", "")) for e in created), created
    assert all(e.get("SYSLOG_IDENTIFIER") == "nodetrustd" for e in created)


def test_stop_is_clean(container):
    ct = container
    agent_running(ct)
    ct.run("systemctl", "start", "nodetrust-aggregator")
    ct.run("systemctl", "stop", "nodetrustd", "nodetrust-aggregator", timeout=60)
    for unit in ("nodetrustd", "nodetrust-aggregator"):
        # Result=success: the main process exited 0 on SIGTERM, in time.
        s = ct.show(unit, "ActiveState", "Result")
        assert s == {"ActiveState": "inactive", "Result": "success"}, (unit, s)
        assert ct.run("systemctl", "is-failed", unit, check=False).returncode != 0, unit
        assert ct.journal("-u", unit)[-1].get("MESSAGE", "").startswith(f"Stopped {unit}.service"), unit
    said = [e["MESSAGE"] for e in ct.journal("-u", "nodetrustd") + ct.journal("-u", "nodetrust-aggregator")
            if e.get("MESSAGE") in ("Received Terminated, stopping", "Received SIGTERM, exiting")]
    assert len(set(said)) == 2, said


# --- the agent's half of the heal, without systemd ----------------------------------------

def test_agent_exits_when_its_sandbox_mount_of_a_target_dir_is_gone(nodetrustd_bin, tmp_path, test_ca):
    """What a stale ReadWritePaths= bind mount is, without systemd: /etc
    read-only, the target directory a writable mount on it, in a private
    mount namespace. When that mount goes (the kernel drops it with a
    deleted directory), writes there fail with EROFS on another mount than
    at start: the daemon says why and exits 3, so Restart=on-failure gets
    it a fresh sandbox; the other targets are still written first. A target
    that is read-only on the same mount as at start is a fault to wait out
    instead (tests/e2e/test_faults.py); --once exits 3 on it as it always
    did, without the exit message."""
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    root, src = tmp_path / "root", tmp_path / "trust"
    src.mkdir()
    (src / "registry.example.com..5000").write_bytes(test_ca.pem())
    etc, docker = root / "etc", root / "etc/docker/certs.d"
    docker.mkdir(parents=True)
    (root / "etc/containers/certs.d").mkdir(parents=True)
    (root / "etc/containerd/certs.d").mkdir(parents=True)
    agent = peers.Agent(root, src, binary=nodetrustd_bin, workdir=tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    err = tmp_path / "agent.err"
    argv = " ".join(f"'{a}'" for a in agent.argv("--config", "/dev/null", "--verify-interval", "0"))
    setup = (f"mount --bind '{etc}' '{etc}' && mount -t tmpfs tmpfs '{docker}' && "
             f"mount --bind '{root}/etc/containers/certs.d' '{root}/etc/containers/certs.d' && "
             f"mount --bind '{root}/etc/containerd/certs.d' '{root}/etc/containerd/certs.d' && "
             f"mount -o remount,ro,bind '{etc}' && exec {argv}")
    with open(err, "wb") as e:
        proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", setup],
                                stdout=subprocess.DEVNULL, stderr=e, env=env)
    try:
        view = Path(f"/proc/{proc.pid}/root{docker}/registry.example.com:5000/ca.crt")
        wait_for(lambda: proc.poll() is not None or view.is_file(), timeout=10, what="the first sync")
        assert proc.poll() is None, err.read_text()
        subprocess.run(["nsenter", "-t", str(proc.pid), "-m", "umount", "-l", str(docker)], check=True)
        rc = proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = err.read_text()
    assert rc == 3, log
    assert "Target directory is read-only" in log and "TARGET=docker" in log and f"DIRECTORY={docker}" in log, log
    assert peers.ca_path(root, "containers", "registry.example.com:5000").is_file()

    # --once on a directory read-only from the start: exit 3, no exit message.
    argv = " ".join(f"'{a}'" for a in agent.argv("--config", "/dev/null", "--once"))
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        f"mount -t tmpfs -o ro tmpfs '{docker}' && exec {argv}"],
                       capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert "Target directory is read-only" not in r.stderr, r.stderr
    assert "docker: registry.example.com:5000 (Read-only file system)" in r.stderr, r.stderr
