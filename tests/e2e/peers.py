# SPDX-License-Identifier: MIT
"""Real peers for nodetrust's end-to-end tests, and the helpers that drive them.

Everything here runs on loopback and under temporary directories: a TLS
docker-registry (Debian's distribution 2.8) with optional htpasswd auth, a tiny
OCI image pushed to it with skopeo, skopeo inspect run in a private mount
namespace so it reads exactly the certs.d files nodetrustd wrote under --root,
a directory laid out the way the kubelet lays out a mounted config map or
secret, and nodetrustd itself, once or as a daemon.

Other test modules import this file (`import peers`); pytest puts tests/e2e on
sys.path because the directory has no __init__.py.
"""

import contextlib
import ctypes
import ctypes.util
import datetime
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Peers are bounded: no helper waits longer than this for anything.
DEFAULT_TIMEOUT = 10.0

# The peer binaries the harness needs; `make check` installs them.
PEER_BINARIES = ("docker-registry", "skopeo", "openssl", "unshare", "mount")


def nodetrustd_path():
    """The agent under test: $NODETRUSTD, else build/nodetrustd of this checkout."""
    env = os.environ.get("NODETRUSTD")
    if env:
        return Path(env).resolve()
    return REPO_ROOT / "build" / "nodetrustd"


def missing_peers():
    """Names of peer binaries not on PATH (empty when all are there)."""
    return [b for b in PEER_BINARIES if shutil.which(b) is None]


def peer_env(home=None, **extra):
    """The environment for Go peers (skopeo, docker-registry).

    The test machines set SSL_CERT_FILE/SSL_CERT_DIR, which Go honours and
    which would let the system bundle decide trust instead of certs.d; the
    registry reads REGISTRY_* overrides from the environment, and
    containers/image reads CONTAINERS_* and REGISTRY_AUTH_FILE. Drop them all
    so only the files a test set up count (the same as `env -u ...`).
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REGISTRY_AUTH_FILE",
                     "DOCKER_CONFIG", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR")
        and not k.startswith("REGISTRY_")
        and not k.startswith("CONTAINERS_")
    }
    if home is not None:
        env["HOME"] = str(home)
    env.update(extra)
    return env


def run(cmd, *, timeout=60, check=True, **kw):
    """subprocess.run with text output captured, a bound, and a useful failure."""
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                       timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(
            f"command failed ({p.returncode}): {' '.join(map(str, cmd))}\n"
            f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def wait_for(predicate, timeout=DEFAULT_TIMEOUT, interval=0.01, what=None):
    """Poll predicate until it returns something truthy; return that value.

    Raises AssertionError naming `what` (or the predicate) after `timeout`
    seconds, so a hung peer fails the test instead of hanging it.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_answers(port, host="127.0.0.1"):
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------
# Certificates, with the openssl CLI.

@dataclass
class CA:
    """A certificate authority made by make_ca(): PEM certificate and key paths."""
    name: str
    cert: Path
    key: Path

    def pem(self):
        return self.cert.read_bytes()

    def der(self):
        return cert_der(self.cert.read_bytes())

    def fingerprint(self):
        return hashlib.sha256(self.der()).hexdigest()


@dataclass
class ServerCert:
    """A leaf certificate made by make_server_cert(); unpacks as (cert, key)."""
    cert: Path
    key: Path

    def __iter__(self):
        return iter((self.cert, self.key))


def _keygen_args(key_type):
    if key_type == "ec":
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    if key_type == "rsa":
        return ["-newkey", "rsa:2048"]
    raise ValueError(f"key_type must be 'ec' or 'rsa', not {key_type!r}")


def _openssl_time(t):
    return t.astimezone(datetime.timezone.utc).strftime("%Y%m%d%H%M%SZ")


def _validity(expired, not_yet_valid, not_before, not_after):
    """Explicit (not_before, not_after) datetimes, or None for plain -days."""
    now = datetime.datetime.now(datetime.timezone.utc)
    if expired:
        return now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
    if not_yet_valid:
        return now + datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    if not_before or not_after:
        return (not_before or now - datetime.timedelta(minutes=5),
                not_after or now + datetime.timedelta(days=365))
    return None


def _openssl_ca_sign(workdir, csr, out, ext_file, ext_section, dates,
                     ca=None, selfsign_key=None):
    """Sign with `openssl ca`, the CLI that takes explicit start/end dates."""
    db = Path(tempfile.mkdtemp(prefix="openssl-ca.", dir=workdir))
    (db / "index.txt").write_text("")
    (db / "serial").write_text("%016X\n" % random.getrandbits(63))
    cnf = db / "ca.cnf"
    cnf.write_text(
        "[ca]\ndefault_ca = d\n"
        f"[d]\ndatabase = {db}/index.txt\nnew_certs_dir = {db}\n"
        f"serial = {db}/serial\ndefault_md = sha256\npolicy = p\n"
        "unique_subject = no\ncopy_extensions = none\n"
        "[p]\ncommonName = supplied\n")
    cmd = ["openssl", "ca", "-batch", "-notext", "-config", cnf, "-in", csr,
           "-out", out, "-extfile", ext_file, "-extensions", ext_section,
           "-startdate", _openssl_time(dates[0]),
           "-enddate", _openssl_time(dates[1])]
    if selfsign_key:
        cmd += ["-selfsign", "-keyfile", selfsign_key]
    else:
        cmd += ["-cert", ca.cert, "-keyfile", ca.key]
    run(cmd)
    shutil.rmtree(db)


def make_ca(directory, name, *, key_type="ec", days=3650, expired=False,
            not_yet_valid=False, not_before=None, not_after=None):
    """Make a self-signed CA `name` in `directory` (created if needed).

    key_type "ec" (P-256) or "rsa" (2048). `expired` / `not_yet_valid` or
    explicit datetimes give certificates the agent should flag.
    Returns a CA with .cert and .key paths (<name>.crt, <name>.key).
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / f"{name}.crt", d / f"{name}.key"
    ext = d / f"{name}.ext"
    ext.write_text("[v3_ca]\nbasicConstraints = critical, CA:TRUE\n"
                   "keyUsage = critical, keyCertSign, cRLSign\n"
                   "subjectKeyIdentifier = hash\n")
    dates = _validity(expired, not_yet_valid, not_before, not_after)
    if dates is None:
        run(["openssl", "req", "-x509", "-nodes", *_keygen_args(key_type),
             "-keyout", key, "-out", cert, "-days", str(days),
             "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    else:
        csr = d / f"{name}.csr"
        run(["openssl", "req", "-new", "-nodes", *_keygen_args(key_type),
             "-keyout", key, "-out", csr, "-subj", f"/CN={name}"])
        _openssl_ca_sign(d, csr, cert, ext, "v3_ca", dates, selfsign_key=key)
        csr.unlink()
    ext.unlink()
    os.chmod(key, 0o600)
    return CA(name=name, cert=cert, key=key)


def make_intermediate_ca(ca, directory, name, *, key_type="ec", days=1825):
    """Make an intermediate CA `name` in `directory`, signed by `ca`.

    Returns a CA (.cert, .key) that make_server_cert() can sign with; a
    server presenting the full chain serves leaf + intermediate in one file
    (see chain_file())."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cert, key, csr = d / f"{name}.crt", d / f"{name}.key", d / f"{name}.csr"
    ext = d / f"{name}.ext"
    ext.write_text("[v3_int]\nbasicConstraints = critical, CA:TRUE\n"
                   "keyUsage = critical, keyCertSign, cRLSign\n"
                   "subjectKeyIdentifier = hash\n"
                   "authorityKeyIdentifier = keyid\n")
    run(["openssl", "req", "-new", "-nodes", *_keygen_args(key_type),
         "-keyout", key, "-out", csr, "-subj", f"/CN={name}"])
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key,
         "-set_serial", str(random.getrandbits(63)), "-days", str(days),
         "-sha256", "-extfile", ext, "-extensions", "v3_int", "-out", cert])
    csr.unlink()
    ext.unlink()
    os.chmod(key, 0o600)
    return CA(name=name, cert=cert, key=key)


def chain_file(path, *certs):
    """Write the PEM certificates `certs` (paths), in order, to `path`: a
    server certificate file that presents a chain. Returns path."""
    path = Path(path)
    path.write_bytes(b"".join(Path(c).read_bytes() for c in certs))
    return path


def make_server_cert(ca, directory, hosts=("localhost", "127.0.0.1"), *,
                     name="server", key_type="ec", days=825, expired=False,
                     not_yet_valid=False, not_before=None, not_after=None):
    """Make a TLS server certificate for `hosts` (DNS names or IPs in the SAN),
    signed by `ca`. Returns ServerCert(cert, key), which unpacks as a tuple."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cert, key, csr = d / f"{name}.crt", d / f"{name}.key", d / f"{name}.csr"
    sans = ",".join(
        (f"IP:{h}" if _is_ip(h) else f"DNS:{h}") for h in hosts)
    ext = d / f"{name}.ext"
    ext.write_text("[srv]\nbasicConstraints = critical, CA:FALSE\n"
                   "keyUsage = critical, digitalSignature, keyEncipherment\n"
                   "extendedKeyUsage = serverAuth\n"
                   f"subjectAltName = {sans}\n")
    run(["openssl", "req", "-new", "-nodes", *_keygen_args(key_type),
         "-keyout", key, "-out", csr, "-subj", f"/CN={hosts[0]}"])
    dates = _validity(expired, not_yet_valid, not_before, not_after)
    if dates is None:
        run(["openssl", "x509", "-req", "-in", csr, "-CA", ca.cert,
             "-CAkey", ca.key, "-set_serial", str(random.getrandbits(63)),
             "-days", str(days), "-sha256", "-extfile", ext,
             "-extensions", "srv", "-out", cert])
    else:
        _openssl_ca_sign(d, csr, cert, ext, "srv", dates, ca=ca)
    csr.unlink()
    ext.unlink()
    os.chmod(key, 0o600)
    return ServerCert(cert=cert, key=key)


def _is_ip(h):
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in h else socket.AF_INET, h)
        return True
    except OSError:
        return False


def cert_der(pem):
    """DER of the first certificate in a PEM blob (openssl x509)."""
    p = subprocess.run(["openssl", "x509", "-outform", "DER"], input=pem,
                       capture_output=True, timeout=30, check=True)
    return p.stdout


def pem_certs_der(pem):
    """DER of every certificate in a PEM bundle, in order."""
    text = pem.decode() if isinstance(pem, bytes) else pem
    out, block = [], None
    for line in text.splitlines():
        if line.strip() == "-----BEGIN CERTIFICATE-----":
            block = [line]
        elif block is not None:
            block.append(line)
            if line.strip() == "-----END CERTIFICATE-----":
                out.append(cert_der(("\n".join(block) + "\n").encode()))
                block = None
    return out


# --------------------------------------------------------------------------
# htpasswd, bcrypt only (docker-registry accepts nothing else).

def _bcrypt_with_crypt_module(password):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # Debian's python3 3.11 still ships it (removed in 3.13).
        # 2**6 rounds: bcrypt cost 6, cheap enough that every registry
        # request (each one re-checks the password) stays fast.
        h = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=2 ** 6))
        if not h or not h.startswith("$2") or crypt.crypt(password, h) != h:
            raise RuntimeError("crypt module did not produce a bcrypt hash")
        return h


def _bcrypt_with_libcrypt(password):
    lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    lib.crypt_gensalt_rn.restype = ctypes.c_char_p
    lib.crypt_gensalt_rn.argtypes = [ctypes.c_char_p, ctypes.c_ulong,
                                     ctypes.c_char_p, ctypes.c_int,
                                     ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    buf = ctypes.create_string_buffer(128)
    # NULL random bytes: libxcrypt reads them from the kernel.
    salt = lib.crypt_gensalt_rn(b"$2b$", 6, None, 0, buf, len(buf))
    if not salt:
        raise RuntimeError("crypt_gensalt_rn($2b$) failed")
    h = lib.crypt(password.encode(), salt)
    if not h or not h.startswith(b"$2b$") or lib.crypt(password.encode(), h) != h:
        raise RuntimeError("libcrypt did not produce a bcrypt hash")
    return h.decode()


def bcrypt_hash(password):
    """A bcrypt ($2b$) hash of password, verified to round-trip."""
    try:
        return _bcrypt_with_crypt_module(password)
    except (ImportError, RuntimeError):
        return _bcrypt_with_libcrypt(password)


def write_htpasswd(path, users):
    """Write an htpasswd file for {user: password}; returns its path."""
    path = Path(path)
    path.write_text("".join(f"{u}:{bcrypt_hash(p)}\n" for u, p in users.items()))
    return path


def dockerconfigjson(auths):
    """The .dockerconfigjson text for {host[:port]: (user, password)}."""
    import base64
    return json.dumps({"auths": {
        h: {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()}
        for h, (u, p) in auths.items()}})


# --------------------------------------------------------------------------
# docker-registry.

class Registry:
    """Debian's docker-registry on 127.0.0.1:PORT over TLS, storage in workdir.

    Use as a context manager, or start()/stop(). restart(cert=..., key=...,
    htpasswd=...) stops it and starts it again on the same port and storage
    with a new server certificate (CA rotation) or htpasswd (password
    rotation). Images pushed before a restart are still there after it.
    """

    def __init__(self, workdir, cert, key, *, htpasswd=None, port=None, ca=None):
        self.ca = ca  # the CA that signed cert, for tests' convenience
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage = self.workdir / "storage"
        self.storage.mkdir(exist_ok=True)
        self.cert, self.key = Path(cert), Path(key)
        self.htpasswd = Path(htpasswd) if htpasswd else None
        self.port = port or free_port()
        self.proc = None
        self.log_path = self.workdir / "registry.log"
        self._log = None

    @property
    def host(self):
        """The registry as a reference names it, and as certs.d must name it."""
        return f"localhost:{self.port}"

    @property
    def key_name(self):
        """The config map key for this registry (`:` spelled `..`)."""
        return f"localhost..{self.port}"

    def ref(self, repo="test/tiny", tag="latest"):
        return f"docker://{self.host}/{repo}:{tag}"

    def _write_config(self):
        cfg = self.workdir / "config.yml"
        lines = [
            "version: 0.1",
            "log:",
            "  level: info",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            "  tls:",
            f"    certificate: {self.cert}",
            f"    key: {self.key}",
        ]
        if self.htpasswd:
            lines += ["auth:", "  htpasswd:", "    realm: nodetrust-test",
                      f"    path: {self.htpasswd}"]
        cfg.write_text("\n".join(lines) + "\n")
        return cfg

    def start(self):
        assert self.proc is None, "registry already running"
        cfg = self._write_config()
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(cfg)], stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT,
            env=peer_env(home=self.workdir), cwd=self.workdir)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"docker-registry exited {self.proc.returncode}:\n"
                    + self.log_path.read_text(errors="replace")[-4000:])
            return port_answers(self.port)
        wait_for(up, what=f"docker-registry on 127.0.0.1:{self.port}")
        return self

    def stop(self):
        """SIGTERM and wait (distribution takes ~1.6 s to drain)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        self._log.close()
        self._log = None
        wait_for(lambda: not port_answers(self.port),
                 what=f"port {self.port} to close")

    def restart(self, *, cert=None, key=None, htpasswd=None):
        self.stop()
        if cert is not None:
            self.cert = Path(cert)
        if key is not None:
            self.key = Path(key)
        if htpasswd is not None:
            self.htpasswd = Path(htpasswd)
        return self.start()

    def log(self):
        return self.log_path.read_text(errors="replace")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------
# A tiny OCI image, built offline, and pushing it.

def _sha256(b):
    return hashlib.sha256(b).hexdigest()


def build_tiny_image(layout_dir, tag="latest", content=b"hello from nodetrust\n"):
    """Write a one-layer OCI image layout (oci-layout, index.json, blobs).

    Reproducible: fixed tar metadata and a gzip stream without name or time
    (what `gzip -n` writes), so the digests are the same on every run.
    Returns the layout directory; `oci:DIR:tag` names the image.
    """
    layout = Path(layout_dir)
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mode, info.mtime = len(content), 0o644, 0
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        tf.addfile(info, io.BytesIO(content))
    layer_tar = tar_buf.getvalue()
    gz_buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz_buf, mtime=0) as gz:
        gz.write(layer_tar)
    layer = gz_buf.getvalue()

    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + _sha256(layer_tar)]},
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + _sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + _sha256(layer), "size": len(layer)}],
    }, sort_keys=True).encode()
    for blob in (layer, config, manifest):
        (blobs / _sha256(blob)).write_bytes(blob)
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + _sha256(manifest), "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return layout


def image_manifest_digest(layout):
    """The manifest digest (sha256:...) recorded in a layout's index.json."""
    return json.loads((Path(layout) / "index.json").read_text())["manifests"][0]["digest"]


# containers/image run as root keeps a blob info cache in
# /var/lib/containers/cache whatever else it is told: every skopeo (and
# podman) a test runs gets a tmpfs there, in its own mount namespace, so the
# machine's /var/lib is never written. Where /var/lib/containers does not
# exist, an overlay on /var/lib (upper layer in a tmpfs under $stage/vl)
# lets it be created without touching the disk. Needs $stage set.
PRIVATE_VAR_LIB = r'''
if [ -d /var/lib/containers ]; then
	mount -t tmpfs nodetrust-e2e /var/lib/containers
else
	mkdir -p "$stage/vl"
	mount -t tmpfs nodetrust-e2e "$stage/vl"
	mkdir "$stage/vl/up" "$stage/vl/work"
	mount -t overlay overlay \
		-o "lowerdir=/var/lib,upperdir=$stage/vl/up,workdir=$stage/vl/work" /var/lib
fi
'''

_PUSH_NS_SCRIPT = "set -eu\nstage=$1\nshift\n" + PRIVATE_VAR_LIB + 'exec "$@"\n'


def push_image(registry, ca_path, layout, repo="test/tiny", tag="latest",
               creds=None):
    """skopeo copy oci:LAYOUT:tag to the registry, trusting only ca_path.

    creds is (user, password) when the registry has auth on. The CA goes in
    a private --dest-cert-dir, so this never depends on what the agent wrote.
    Runs in a private mount namespace (PRIVATE_VAR_LIB).
    """
    with tempfile.TemporaryDirectory(prefix="nodetrust-push.") as tmp:
        certs = Path(tmp) / "certs"
        certs.mkdir()
        shutil.copy(ca_path, certs / "ca.crt")
        home = Path(tmp) / "home"
        home.mkdir()
        cmd = ["skopeo", "copy", "--insecure-policy", "--retry-times", "0",
               "--dest-cert-dir", certs]
        if creds:
            cmd += ["--dest-creds", f"{creds[0]}:{creds[1]}"]
        cmd += [f"oci:{layout}:{tag}", registry.ref(repo, tag)]
        return run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                    _PUSH_NS_SCRIPT, "nodetrust-push", tmp, *cmd],
                   env=peer_env(home=home), timeout=60)


# --------------------------------------------------------------------------
# skopeo inspect through the real certs.d lookup paths.

# Runs inside `unshare -m --propagation private`: nothing mounted here is seen
# outside the namespace, and the real /etc is never written.
#   $1 root, $2 which (containers|docker|both), $3 stage dir, $4 mode
#   (tmpfs|overlay); the rest is the skopeo command line.
_NS_SCRIPT = r'''
set -eu
root=$1 which=$2 stage=$3 mode=$4
shift 4
@VAR_LIB@if [ "$mode" = overlay ]; then
	# Some /etc/containers or /etc/docker is missing: an overlay on /etc
	# (upper layer in a tmpfs) lets us create it without touching the disk.
	mount -t tmpfs nodetrust-e2e "$stage/ov"
	mkdir "$stage/ov/up" "$stage/ov/work"
	mount -t overlay overlay \
		-o "lowerdir=/etc,upperdir=$stage/ov/up,workdir=$stage/ov/work" /etc
	mkdir -p /etc/containers /etc/docker
fi
for t in containers docker; do
	# A tmpfs over the real directory, its old contents (policy.json,
	# registries.conf, ...) copied back in, minus any certs.d.
	mount -t tmpfs nodetrust-e2e "/etc/$t"
	cp -a "$stage/$t/." "/etc/$t/"
	case "$which" in "$t"|both) ;; *) continue ;; esac
	if [ -d "$root/etc/$t/certs.d" ]; then
		mkdir "/etc/$t/certs.d"
		mount --bind "$root/etc/$t/certs.d" "/etc/$t/certs.d"
	fi
done
exec "$@"
'''.replace("@VAR_LIB@", PRIVATE_VAR_LIB.lstrip("\n"))


def skopeo_inspect(ref, certs_root, which="both", authfile=None, creds=None,
                   extra=(), timeout=60):
    """Run `skopeo inspect REF` seeing <certs_root>/etc/{containers,docker}/certs.d
    as /etc/{containers,docker}/certs.d, and nothing else that could grant trust.

    which: "containers" or "docker" mounts only that certs.d; "both" mounts
    each that exists (containers/image then picks the first directory that
    exists for the host, containers before docker, as on a real node).
    HOME is an empty directory (no ~/.config/containers/certs.d), and
    SSL_CERT_FILE/SSL_CERT_DIR are unset. Returns (returncode, stdout, stderr).
    """
    if which not in ("containers", "docker", "both"):
        raise ValueError(f"which must be containers, docker or both, not {which!r}")
    if os.geteuid() != 0:
        raise AssertionError("skopeo_inspect needs root for unshare -m and mount")
    certs_root = Path(certs_root).resolve()
    with tempfile.TemporaryDirectory(prefix="nodetrust-inspect.") as tmp:
        stage = Path(tmp)
        mode = "tmpfs"
        for t in ("containers", "docker"):
            real = Path("/etc") / t
            if real.is_dir():
                shutil.copytree(real, stage / t, symlinks=True,
                                ignore=_ignore_certs_d(real))
            else:
                (stage / t).mkdir()
                mode = "overlay"
        (stage / "ov").mkdir()
        home = stage / "home"
        home.mkdir()
        cmd = ["skopeo", "inspect", "--retry-times", "0"]
        if authfile:
            cmd += ["--authfile", str(authfile)]
        if creds:
            cmd += ["--creds", f"{creds[0]}:{creds[1]}"]
        cmd += [*extra, ref]
        p = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", _NS_SCRIPT,
             "nodetrust-inspect", str(certs_root), which, str(stage), mode, *cmd],
            capture_output=True, text=True, timeout=timeout,
            env=peer_env(home=home))
        return p.returncode, p.stdout, p.stderr


def _ignore_certs_d(top):
    def ignore(directory, names):
        return ["certs.d"] if Path(directory) == top and "certs.d" in names else []
    return ignore


X509_ERRORS = ("x509", "certificate signed by unknown authority")


def is_x509_failure(stderr):
    """True when a Go TLS client refused the registry's certificate."""
    return any(e in stderr for e in X509_ERRORS)


# --------------------------------------------------------------------------
# A directory written the way the kubelet writes a mounted config map/secret.

class KubeletVolume:
    """A config map or secret volume in the kubelet's atomic-writer layout.

        ..2026_11_21_16_00_00.123456789/   the payload (files)
        ..data -> ..2026_11_21_16_00_00.123456789
        key -> ..data/key                  one per key

    update(data) replaces the whole payload the way the kubelet does: a new
    timestamped directory, `..data_tmp` symlinked to it and renamed over
    `..data`, key symlinks added/removed, the old directory removed. It
    returns time.monotonic() taken right after the rename, the moment a
    reader through `..data` sees the new content.
    """

    _counter = 0

    def __init__(self, directory, data=None, mode=0o644):
        self.path = Path(directory)
        self.path.mkdir(parents=True, exist_ok=True)
        self.mode = mode
        self.data = {}
        self.swapped_at = None
        if data is not None:
            self.update(data)

    def __fspath__(self):
        return str(self.path)

    def _new_payload_dir(self):
        KubeletVolume._counter += 1
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime(
            "..%Y_%m_%d_%H_%M_%S")
        name = f"{stamp}.{os.getpid()}{KubeletVolume._counter:06d}"
        d = self.path / name
        d.mkdir(mode=0o755)
        return d

    def current_payload(self):
        link = self.path / "..data"
        return self.path / os.readlink(link) if link.is_symlink() else None

    def update(self, data):
        """Replace the payload with data ({key: bytes|str}); see the class doc."""
        for k in data:
            if k.startswith("..") or "/" in k or not k:
                raise ValueError(f"{k!r} is not a config map key")
        old = self.current_payload()
        new = self._new_payload_dir()
        for k, v in data.items():
            f = new / k
            f.write_bytes(v.encode() if isinstance(v, str) else v)
            os.chmod(f, self.mode)
        tmp = self.path / "..data_tmp"
        os.symlink(new.name, tmp)
        os.rename(tmp, self.path / "..data")
        self.swapped_at = time.monotonic()
        for k in data:
            link = self.path / k
            if not link.is_symlink():
                os.symlink(f"..data/{k}", link)
        for k in set(self.data) - set(data):
            (self.path / k).unlink()
        if old is not None:
            shutil.rmtree(old)
        self.data = dict(data)
        return self.swapped_at


# --------------------------------------------------------------------------
# nodetrustd.

class Daemon:
    """A running nodetrustd (see Agent.daemon)."""

    def __init__(self, proc, stderr_path, stdout_path, notify_sock):
        self.proc = proc
        self.stderr_path = stderr_path
        self.stdout_path = stdout_path
        self.notify_sock = notify_sock
        self.notifications = []
        self._reader = None
        if notify_sock is not None:
            # Drain the socket all the time, as systemd does: a datagram
            # socket queues only net.unix.max_dgram_qlen (10) messages, and
            # a sender blocks in sd_notify() once the queue is full.
            self._reader = threading.Thread(target=self._read_notify, daemon=True)
            self._reader.start()

    def _read_notify(self):
        self.notify_sock.settimeout(0.05)
        while True:
            try:
                msg = self.notify_sock.recv(4096)
            except socket.timeout:
                if self.proc.poll() is not None:
                    return
                continue
            except OSError:
                return
            self.notifications.extend(msg.decode(errors="replace").splitlines())

    def log(self):
        return self.stderr_path.read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def sighup(self):
        self.signal(signal.SIGHUP)

    def wait_notify(self, line, timeout=DEFAULT_TIMEOUT):
        """Wait for an sd_notify line such as READY=1 from the agent."""
        assert self.notify_sock is not None, "daemon started with notify=False"

        def seen():
            if line in self.notifications:
                return True
            if not self.alive():
                raise AssertionError(f"nodetrustd exited {self.proc.returncode}:\n{self.log()}")
            return False
        return wait_for(seen, timeout, what=f"sd_notify {line}")

    def stop(self, timeout=DEFAULT_TIMEOUT):
        """SIGTERM; return the exit status (None when it had to be killed)."""
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                rc = None
        if self._reader is not None:
            self._reader.join(timeout=2)
        return rc


def _flatten(args):
    """Arguments given one by one or as lists: run_once("--x", "1") and
    run_once(["--x", "1"]) mean the same."""
    out = []
    for a in args:
        if isinstance(a, (list, tuple)):
            out.extend(_flatten(a))
        else:
            out.append(os.fspath(a) if isinstance(a, os.PathLike) else a)
    return out


class Agent:
    """Runs nodetrustd against a --root and a --trust-source.

    Arguments common to every run are built from the constructor; run_once()
    and dry_run() add --once / --dry-run; daemon() runs it in the foreground
    loop. Extra arguments may be given one by one or as a list. Health is off (--health-listen none) unless `health` names an
    address, so parallel tests never fight over the default port.
    """

    def __init__(self, root, trust_source=None, *, pull_secret=None, binary=None,
                 targets=None, health="none", extra=(), workdir=None):
        self.binary = Path(binary) if binary else nodetrustd_path()
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.trust_source = trust_source
        self.pull_secret = pull_secret
        self.targets = targets
        self.health = health
        self.extra = list(extra)
        self.workdir = Path(workdir) if workdir else self.root.parent
        self._runs = 0

    def argv(self, *args):
        a = [str(self.binary), "--root", str(self.root)]
        if self.trust_source is not None:
            a += ["--trust-source", os.fspath(self.trust_source)]
        if self.pull_secret is not None:
            a += ["--pull-secret", os.fspath(self.pull_secret)]
        if self.targets:
            a += ["--targets", ",".join(self.targets) if not isinstance(self.targets, str) else self.targets]
        if self.health is not None:
            a += ["--health-listen", self.health]
        return a + [str(x) for x in _flatten(self.extra)] + [str(x) for x in _flatten(args)]

    def run(self, *args, timeout=30, env=None):
        """Run with exactly these extra arguments; CompletedProcess (text)."""
        e = dict(os.environ)
        e.pop("NOTIFY_SOCKET", None)
        e.update(env or {})
        return subprocess.run(self.argv(*args), capture_output=True, text=True,
                              timeout=timeout, env=e)

    def run_once(self, *args, **kw):
        return self.run("--once", *args, **kw)

    def dry_run(self, *args, **kw):
        return self.run("--dry-run", *args, **kw)

    @contextlib.contextmanager
    def daemon(self, *args, notify=True, env=None, expect_exit=0, prefix=()):
        """Run the daemon; on leaving, SIGTERM it and check it exits expect_exit.

        With notify, NOTIFY_SOCKET names an abstract datagram socket the
        harness reads, so tests can wait for READY=1 like systemd would.
        prefix is a command that execs the agent (for example prlimit): the
        process is still the agent's.
        """
        self._runs += 1
        stderr_path = self.workdir / f"nodetrustd-{os.getpid()}-{self._runs}.stderr"
        stdout_path = stderr_path.with_suffix(".stdout")
        e = dict(os.environ)
        e.pop("NOTIFY_SOCKET", None)
        sock = None
        if notify:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            name = f"nodetrust-e2e-{os.getpid()}-{random.getrandbits(48):x}"
            sock.bind("\0" + name)
            sock.setblocking(False)
            e["NOTIFY_SOCKET"] = "@" + name
        e.update(env or {})
        with open(stderr_path, "wb") as err, open(stdout_path, "wb") as out:
            proc = subprocess.Popen(list(prefix) + self.argv(*args), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, env=e)
        d = Daemon(proc, stderr_path, stdout_path, sock)
        try:
            yield d
        finally:
            rc = d.stop()
            if sock is not None:
                sock.close()
        assert rc == expect_exit, (
            f"nodetrustd exited {rc} on SIGTERM, expected {expect_exit}:\n{d.log()}")


# --------------------------------------------------------------------------
# Looking at what the agent wrote.

TARGET_DIRS = {
    "docker": "etc/docker/certs.d",
    "containers": "etc/containers/certs.d",
    "containerd": "etc/containerd/certs.d",
}


def ca_path(root, target, host):
    """ROOT/etc/<target>/certs.d/<host>/ca.crt"""
    return Path(root) / TARGET_DIRS[target] / host / "ca.crt"


def tree_snapshot(top):
    """{relative path: (kind, mode, content or link target, mtime_ns)} for a tree."""
    top = Path(top)
    snap = {}
    if not top.exists():
        return snap
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = p.lstat()
            rel = str(p.relative_to(top))
            if p.is_symlink():
                snap[rel] = ("link", st.st_mode, os.readlink(p), st.st_mtime_ns)
            elif p.is_dir():
                snap[rel] = ("dir", st.st_mode, None, None)
            else:
                snap[rel] = ("file", st.st_mode, p.read_bytes(), st.st_mtime_ns)
    return snap


def read_manifest(root, state_dir="var/lib/nodetrust"):
    p = Path(root) / state_dir / "manifest.json"
    return json.loads(p.read_text()) if p.exists() else None
