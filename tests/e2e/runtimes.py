# SPDX-License-Identifier: MIT
"""Real container runtimes for nodetrust's end-to-end tests: containerd (with
ctr) and podman, run so that they read only what nodetrustd wrote under a
test's --root.

- Containerd: Debian's containerd with a config of its own under a temporary
  directory (root, state, sockets), the plugins that need the machine
  (CRI, btrfs/zfs/devmapper/aufs, runtimes and tasks, opt, tracing, NRI)
  disabled, run in a private mount namespace so the mounts it makes while
  unpacking stay there. It never touches /run/containerd, /var/lib/containerd
  or /opt/containerd.
- ctr_pull(): `ctr image pull --hosts-dir DIR REF`. ctr resolves and fetches
  on the client side with containerd's remotes/docker/config, the code the
  CRI plugin uses for `config_path`, so --hosts-dir <root>/etc/containerd/certs.d
  reads exactly what a kubelet pull through containerd would.
- podman_pull(): `podman --root --runroot --storage-driver vfs pull` as root
  in a private mount namespace with tmpfs over /etc/containers and
  /etc/docker (a minimal policy.json and registries.conf, and the agent's
  certs.d directories bind-mounted in), over /dev/shm (podman's lock file),
  and every other path podman would write pointed under a temporary
  directory.
- A registry under a non-loopback name: containerd talks plain HTTP to
  localhost/127.0.0.1/::1 unless a hosts.toml names an https server, so the
  tests also reach the registry as REGISTRY_NAME, which a hosts file
  bind-mounted over /etc/hosts (inside the private namespace only) maps to
  127.0.0.1. named_registry() starts one and pushes the tiny image with
  push_image(), peers.push_image's skopeo copy in a private namespace.
- containers/image (podman, skopeo) run as root writes its blob info cache
  to /var/lib/containers/cache whatever --root says: podman_pull() and
  push_image() put a tmpfs over that directory in their namespace.
- status()/metrics(): the agent's /status and /metrics on its loopback
  health endpoint.

Go honours SSL_CERT_FILE/SSL_CERT_DIR, which the test machines set: every
runtime here runs with them removed (peers.peer_env, the same as
`env -u SSL_CERT_FILE -u SSL_CERT_DIR`), so only certs.d decides trust.
"""

import contextlib
import http.client
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import peers
import promparse
from peers import wait_for

RUNTIME_BINARIES = ("containerd", "ctr", "podman")

# A name under .test (RFC 6761: never a real host), mapped to 127.0.0.1 only
# inside the namespaces the helpers make.
REGISTRY_NAME = "registry.nodetrust.test"

CONTAINERD_CERTS_D = "etc/containerd/certs.d"

# Every plugin containerd 1.6 would load that a pull does not need and that
# depends on the machine (file systems, cgroups, runc, /opt, CNI). Unknown
# names (plugins of other containerd versions) are ignored by containerd.
DISABLED_PLUGINS = (
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.runtime.v1.linux",
    "io.containerd.runtime.v2.task",
    "io.containerd.monitor.v1.cgroups",
    "io.containerd.service.v1.tasks-service",
    "io.containerd.grpc.v1.tasks",
    "io.containerd.internal.v1.restart",
    "io.containerd.internal.v1.opt",
    "io.containerd.internal.v1.tracing",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.nri.v1.nri",
)


def missing_runtimes():
    """Names of runtime binaries not on PATH (empty when all are there)."""
    return [b for b in RUNTIME_BINARIES if shutil.which(b) is None]


def runtime_env(home=None, **extra):
    """peers.peer_env() without containerd's own overrides either."""
    env = peers.peer_env(home=home, **extra)
    for k in list(env):
        if k.startswith("CONTAINERD_"):
            del env[k]
    return env


def _toml_str(s):
    return json.dumps(str(s))  # a JSON string is a TOML basic string


def write_hosts_file(path, names=(REGISTRY_NAME,)):
    """An /etc/hosts mapping localhost and `names` to 127.0.0.1."""
    path = Path(path)
    path.write_text("127.0.0.1\tlocalhost\n::1\tlocalhost\n"
                    + "".join(f"127.0.0.1\t{n}\n" for n in names))
    return path


# Runs inside `unshare -m --propagation private`: $1 is a hosts file to bind
# over /etc/hosts, or "" for none; the rest is the command.
_HOSTS_NS_SCRIPT = r'''
set -eu
hosts=$1
shift
if [ -n "$hosts" ]; then mount --bind "$hosts" /etc/hosts; fi
exec "$@"
'''


def in_namespace(cmd, hosts_file=None):
    """argv running cmd in a private mount namespace, with hosts_file (if
    any) bind-mounted over /etc/hosts there and nowhere else."""
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            _HOSTS_NS_SCRIPT, "nodetrust-hosts",
            str(hosts_file) if hosts_file else "", *[str(c) for c in cmd]]


# containers/image's blob info cache kept in the namespace: see peers.
_PRIVATE_VAR_LIB = peers.PRIVATE_VAR_LIB


# --------------------------------------------------------------------------
# containerd and ctr.

class Containerd:
    """A containerd of the test's own: `containerd --config CFG`.

    Its root, state and temp directories are under workdir; its sockets are
    in a short directory under /tmp (a unix socket path has at most 107
    bytes, and pytest's tmp paths can be long). Use as a context manager,
    or start()/stop(). The snapshotter is overlayfs when containerd reports
    it usable, else native.
    """

    _namespaces = itertools.count(1)

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = self.workdir / "config.toml"
        self.log_path = self.workdir / "containerd.log"
        self.proc = None
        self._log = None
        self._sockdir = None
        self.address = None
        self.snapshotter = None
        self.started_in = None

    def _write_config(self):
        root, state, temp = (self.workdir / n for n in ("root", "state", "tmp"))
        for d in (root, state, temp):
            d.mkdir(exist_ok=True)
        disabled = ", ".join(_toml_str(p) for p in DISABLED_PLUGINS)
        self.config.write_text(
            "version = 2\n"
            f"root = {_toml_str(root)}\n"
            f"state = {_toml_str(state)}\n"
            f"temp = {_toml_str(temp)}\n"
            f"disabled_plugins = [{disabled}]\n"
            "\n[grpc]\n"
            f"  address = {_toml_str(self.address)}\n"
            "\n[ttrpc]\n"
            f"  address = {_toml_str(self.address + '.ttrpc')}\n"
            "\n[debug]\n"
            '  address = ""\n'
            "\n[metrics]\n"
            '  address = ""\n')

    def ctr(self, *args, namespace=None, hosts_file=None, timeout=30):
        """Run `ctr --address SOCK [--namespace NS] ARGS`; (rc, out, err)."""
        cmd = ["ctr", "--address", self.address]
        if namespace:
            cmd += ["--namespace", namespace]
        cmd += [str(a) for a in args]
        if hosts_file:
            cmd = in_namespace(cmd, hosts_file)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env=runtime_env(home=self.workdir), stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout, p.stderr

    def start(self, timeout=peers.DEFAULT_TIMEOUT):
        assert self.proc is None, "containerd already running"
        self._sockdir = Path(tempfile.mkdtemp(prefix="ntcd.", dir="/tmp"))
        self.address = str(self._sockdir / "containerd.sock")
        self._write_config()
        self._log = open(self.log_path, "ab")
        t0 = time.monotonic()
        # unshare execs containerd (no --fork): SIGTERM reaches it directly.
        self.proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private",
             "containerd", "--config", str(self.config)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env=runtime_env(home=self.workdir), cwd=self.workdir)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"containerd exited {self.proc.returncode}:\n" + self.log())
            if not os.path.exists(self.address):
                return False
            return self.ctr("version", timeout=5)[0] == 0
        try:
            wait_for(up, timeout, interval=0.02, what=f"containerd on {self.address}")
            self.started_in = time.monotonic() - t0
            rc, out, err = self.ctr("plugins", "ls")
            assert rc == 0, err
            self.snapshotter = "native"
            for line in out.splitlines():
                f = line.split()
                if len(f) >= 4 and f[0] == "io.containerd.snapshotter.v1" \
                        and f[1] == "overlayfs" and f[-1] == "ok":
                    self.snapshotter = "overlayfs"
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout=peers.DEFAULT_TIMEOUT):
        """SIGTERM, then SIGKILL after timeout; returns the exit status."""
        rc = None
        if self.proc is not None:
            rc = self.proc.poll()
            if rc is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    rc = self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    rc = self.proc.wait(timeout=5)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._sockdir is not None:
            shutil.rmtree(self._sockdir, ignore_errors=True)
            self._sockdir = None
        return rc

    def log(self):
        return self.log_path.read_text(errors="replace")[-6000:]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def new_namespace(self):
        """A containerd namespace no other pull used: each pull starts with
        no image record (resolving always asks the registry anyway)."""
        return f"nodetrust-e2e-{os.getpid()}-{next(self._namespaces)}"

    def pull(self, ref, hosts_dir, *, hosts_file=None, namespace=None,
             timeout=60):
        """`ctr image pull --snapshotter S --hosts-dir DIR REF`; (rc, out, err).

        REF is host:port/repo:tag (no docker://). hosts_file, if given, is
        bind-mounted over /etc/hosts for ctr (which is the side that
        resolves and connects). On success the image is checked to be
        listed in the namespace.
        """
        ns = namespace or self.new_namespace()
        rc, out, err = self.ctr("image", "pull", "--snapshotter", self.snapshotter,
                                "--hosts-dir", hosts_dir, ref,
                                namespace=ns, hosts_file=hosts_file, timeout=timeout)
        if rc == 0:
            lrc, listed, lerr = self.ctr("image", "ls", "-q", namespace=ns)
            if lrc != 0 or ref not in listed.split():
                return 1, out, f"pull said ok but image not listed: {listed}{lerr}"
        return rc, out, err


def ctr_pull(containerd, ref, hosts_dir, **kw):
    """containerd.pull(...): (rc, out, err) of `ctr image pull --hosts-dir`."""
    return containerd.pull(ref, hosts_dir, **kw)


def containerd_hosts_dir(root):
    """<root>/etc/containerd/certs.d, the directory to give ctr --hosts-dir."""
    return Path(root) / CONTAINERD_CERTS_D


def containerd_config_default():
    """The text of `containerd config default` (version 2, config_path "")."""
    return peers.run(["containerd", "config", "default"], env=runtime_env()).stdout


def write_containerd_config(root, text=None, *, version=2,
                            config_path="/etc/containerd/certs.d",
                            path="etc/containerd/config.toml"):
    """Write a containerd config.toml under root (text, or a minimal one for
    `version` whose registry config_path is `config_path`, None for unset)."""
    f = Path(root) / path
    f.parent.mkdir(parents=True, exist_ok=True)
    if text is None:
        section = ('plugins."io.containerd.grpc.v1.cri".registry' if version == 2
                   else 'plugins."io.containerd.cri.v1.images".registry')
        text = f"version = {version}\n"
        if config_path is not None:
            text += f"\n[{section}]\n  config_path = {_toml_str(config_path)}\n"
    f.write_text(text)
    return f


# --------------------------------------------------------------------------
# A registry reachable under a non-loopback name.

@contextlib.contextmanager
def named_registry(workdir, ca, image, *, name=REGISTRY_NAME):
    """A peers.Registry whose server certificate (signed by ca) names `name`,
    localhost and 127.0.0.1, with test/tiny:latest pushed (over localhost).

    The registry gets .name, .named_host (name:port) and .named_key (the
    config map key, name..port); its .host/.key_name/.ref() stay the
    localhost ones. Stopped on leaving.
    """
    workdir = Path(workdir)
    cert = make_named_cert(ca, workdir / "server", name=name)
    reg = peers.Registry(workdir / "registry", *cert, ca=ca)
    reg.name = name
    reg.named_host = host_port(name, reg.port)
    reg.named_key = key_for(name, reg.port)
    with reg:
        push_image(reg, ca.cert, image)
        yield reg


# skopeo copy in a private mount namespace (the cache stays out of /var/lib).
push_image = peers.push_image


def make_named_cert(ca, directory, *, name=REGISTRY_NAME, cert_name="server"):
    return peers.make_server_cert(ca, directory, hosts=(name, "localhost", "127.0.0.1"),
                                  name=cert_name)


def host_port(host, port):
    return f"{host}:{port}"


def key_for(host, port):
    """The config map key for host:port (`:` spelled `..`)."""
    return f"{host}..{port}"


def image_ref(host, port, repo="test/tiny", tag="latest"):
    """host:port/repo:tag, the way ctr and podman name an image."""
    return f"{host}:{port}/{repo}:{tag}"


# --------------------------------------------------------------------------
# podman.

# Runs inside `unshare -m --propagation private`:
#   $1 hosts file or "", $2 the agent's root, $3 a stage directory, $4 mode
#   (tmpfs|overlay); the rest is the podman command line.
_PODMAN_NS_SCRIPT = r'''
set -eu
hosts=$1 root=$2 stage=$3 mode=$4
shift 4
if [ "$mode" = overlay ]; then
	# /etc/containers or /etc/docker is missing: an overlay on /etc (upper
	# layer in a tmpfs) lets us create it without touching the disk.
	mount -t tmpfs nodetrust-e2e "$stage/ov"
	mkdir "$stage/ov/up" "$stage/ov/work"
	mount -t overlay overlay \
		-o "lowerdir=/etc,upperdir=$stage/ov/up,workdir=$stage/ov/work" /etc
	mkdir -p /etc/containers /etc/docker
fi
if [ -n "$hosts" ]; then mount --bind "$hosts" /etc/hosts; fi
# podman's SHM lock file (/dev/shm/libpod_lock) and its CNI lock if it ever
# looks at /etc/cni stay in this namespace.
mount -t tmpfs nodetrust-e2e /dev/shm
if [ -d /etc/cni ]; then mount -t tmpfs nodetrust-e2e /etc/cni; fi
@VAR_LIB@for t in containers docker; do
	mount -t tmpfs nodetrust-e2e "/etc/$t"
	if [ -d "$root/etc/$t/certs.d" ]; then
		mkdir "/etc/$t/certs.d"
		mount --bind "$root/etc/$t/certs.d" "/etc/$t/certs.d"
	fi
done
printf '%s\n' '{"default":[{"type":"insecureAcceptAnything"}]}' >/etc/containers/policy.json
printf '%s\n' 'unqualified-search-registries = []' >/etc/containers/registries.conf
exec "$@"
'''.replace("@VAR_LIB@", _PRIVATE_VAR_LIB.lstrip("\n"))


def podman_pull(ref, root, workdir=None, *, hosts_file=None, timeout=60):
    """`podman pull REF` as root, trusting only <root>/etc/containers/certs.d
    and <root>/etc/docker/certs.d (seen at /etc/...); (rc, out, err).

    Storage (vfs), run root, libpod tmpdir, network config, HOME, XDG and
    TMPDIR are fresh directories under workdir (kept for a post-mortem), or
    under a temporary directory removed afterwards when workdir is None;
    hosts_file, if given, is bind-mounted over /etc/hosts. Pull only.
    """
    if os.geteuid() != 0:
        raise AssertionError("podman_pull needs root for unshare -m and mount")
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="nodetrust-podman.") as tmp:
            return podman_pull(ref, root, tmp, hosts_file=hosts_file, timeout=timeout)
    root = Path(root).resolve()
    w = Path(tempfile.mkdtemp(prefix="podman.", dir=workdir))
    dirs = {n: w / n for n in ("storage", "tmpdir", "net", "home",
                               "xdg-config", "xdg-data", "xdg-run", "vartmp",
                               "stage", "stage/ov", "stage/vl")}
    for d in dirs.values():
        d.mkdir(parents=True)
    # podman 4.3 refuses a run root longer than 50 characters ("the
    # specified runroot is longer than 50 characters"): a short one in /tmp.
    runroot = Path(tempfile.mkdtemp(prefix="ntpod.", dir="/tmp"))
    try:
        return _podman_pull(ref, root, dirs, runroot, hosts_file, timeout)
    finally:
        shutil.rmtree(runroot, ignore_errors=True)


def _podman_pull(ref, root, dirs, runroot, hosts_file, timeout):
    os.chmod(dirs["xdg-run"], 0o700)
    mode = "tmpfs" if all(Path("/etc", t).is_dir() for t in ("containers", "docker")) \
        else "overlay"
    cmd = ["podman",
           "--root", dirs["storage"], "--runroot", runroot,
           "--storage-driver", "vfs", "--tmpdir", dirs["tmpdir"],
           "--network-config-dir", dirs["net"],
           "--cgroup-manager", "cgroupfs", "--events-backend", "file",
           "pull", ref]
    env = runtime_env(home=dirs["home"], XDG_CONFIG_HOME=str(dirs["xdg-config"]),
                      XDG_DATA_HOME=str(dirs["xdg-data"]),
                      XDG_RUNTIME_DIR=str(dirs["xdg-run"]), TMPDIR=str(dirs["vartmp"]))
    p = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", _PODMAN_NS_SCRIPT,
         "nodetrust-podman", str(hosts_file) if hosts_file else "", str(root),
         str(dirs["stage"]), mode, *[str(c) for c in cmd]],
        capture_output=True, text=True, timeout=timeout, env=env,
        stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


# --------------------------------------------------------------------------
# The agent's health endpoint.

def http_get(port, path, timeout=5.0):
    """(status, body text) of GET http://127.0.0.1:port/path."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def status(port):
    """GET /status, parsed."""
    code, body = http_get(port, "/status")
    assert code == 200, (code, body)
    return json.loads(body)


def metrics(port):
    """GET /metrics, parsed by the strict exposition-format parser."""
    code, body = http_get(port, "/metrics")
    assert code == 200, (code, body)
    return promparse.parse(body)


def health_agent(nodetrustd_bin, root, source, workdir, *extra):
    """A peers.Agent with its health endpoint on a free loopback port (.port)."""
    port = peers.free_port()
    a = peers.Agent(root, source, binary=nodetrustd_bin, workdir=workdir,
                    health=f"127.0.0.1:{port}", extra=extra)
    a.port = port
    return a


def wait_health(port, timeout=peers.DEFAULT_TIMEOUT):
    """Wait until the health endpoint answers /healthz."""
    def up():
        try:
            return http_get(port, "/healthz", timeout=1.0)[0] == 200
        except OSError:
            return False
    wait_for(up, timeout, interval=0.05, what=f"/healthz on 127.0.0.1:{port}")


def registry_status(st, key):
    """The /status entry of config map key `key` (AssertionError if none)."""
    for r in st.get("registries", []):
        if r.get("key") == key:
            return r
    raise AssertionError(f"no registry {key!r} in /status: {json.dumps(st)[:2000]}")


def containerd_target_state(st, key):
    """registries[key]["targets"]["containerd"]["state"] from /status."""
    r = registry_status(st, key)
    return ((r.get("targets") or {}).get("containerd") or {}).get("state")
