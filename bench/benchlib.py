# SPDX-License-Identifier: MIT
"""Helpers the benchmarks share (bench/run.py, bench/agent-rss.py).

inotify timestamps, /proc readings, CA generation, a nodetrustd daemon with
timestamped sd_notify messages, percentiles. Nothing here asserts a speed.
"""

import ctypes
import ctypes.util
import datetime
import os
import random
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGETS = ("docker", "containers", "containerd")
TARGET_DIRS = {"docker": "etc/docker/certs.d", "containers": "etc/containers/certs.d",
               "containerd": "etc/containerd/certs.d"}
IN_MODIFY = 0x2
IN_CLOSE_WRITE = 0x8
IN_MOVED_TO = 0x80
IN_CREATE = 0x100


class Inotify:
    """Just enough inotify (ctypes) to timestamp renames and writes in directories."""

    def __init__(self):
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.wds = {}

    def watch(self, path, mask=IN_MOVED_TO | IN_CLOSE_WRITE):
        wd = self.libc.inotify_add_watch(self.fd, str(path).encode(), mask)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
        self.wds[wd] = Path(path)

    def events(self, timeout):
        """[(monotonic time, directory, name, mask)] read within timeout seconds."""
        out = []
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return out
        now = time.monotonic()
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            i = 0
            while i < len(data):
                wd, mask, _, n = struct.unpack_from("iIII", data, i)
                name = data[i + 16:i + 16 + n].rstrip(b"\0").decode()
                out.append((now, self.wds.get(wd), name, mask))
                i += 16 + n
        return out

    def close(self):
        os.close(self.fd)


def proc_status(pid, *keys):
    """{key: int} from /proc/PID/status (kB for sizes, counts for ctxt switches)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in keys:
            fields[k] = int(v.split()[0])
    return fields


def rss_kb(pid):
    """(VmRSS, VmHWM, RssAnon) in kB. RssAnon is the process's own heap and
    stacks; the rest of VmRSS is shared library pages."""
    f = proc_status(pid, "VmRSS", "VmHWM", "RssAnon")
    return f["VmRSS"], f["VmHWM"], f["RssAnon"]


def rss_anon_kb(pid):
    return proc_status(pid, "RssAnon")["RssAnon"]


def ctxt_switches(pid):
    f = proc_status(pid, "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
    return f["voluntary_ctxt_switches"], f["nonvoluntary_ctxt_switches"]


def cpu_seconds(pid, children=False):
    """utime+stime (and the waited-for children's with children=True)."""
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(parts[11]) + int(parts[12])
    if children:
        ticks += int(parts[13]) + int(parts[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def pct(values, p):
    """The p-th percentile (nearest rank on the sorted values)."""
    s = sorted(values)
    if not s:
        return float("nan")
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def median(values):
    s = sorted(values)
    if not s:
        return float("nan")
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ca_path(root, target, host):
    return Path(root) / TARGET_DIRS[target] / host / "ca.crt"


# --------------------------------------------------------------------------
# CAs: one EC P-256 self-signed CA per registry. Generated with the
# cryptography module (about 1 ms each; the openssl CLI takes 15 ms) and
# cached in build/bench/, since they only need to be distinct and valid.

def _make_ca_pem(i, now):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"nodetrust-bench-ca-{i:05d}")])
    pub = key.public_key()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def ca_pems(n, cache_dir=REPO / "build" / "bench"):
    """n distinct CA certificates (PEM bytes), from the cache when it holds enough."""
    cache = Path(cache_dir) / "cas.pem"
    end = b"-----END CERTIFICATE-----\n"
    have = []
    if cache.exists():
        have = [c + end for c in cache.read_bytes().split(end) if c.strip()]
    if len(have) < n:
        now = datetime.datetime.utcnow()
        have += [_make_ca_pem(i, now) for i in range(len(have), n)]
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_bytes(b"".join(have))
        os.replace(tmp, cache)
    return have[:n]


# --------------------------------------------------------------------------
# nodetrustd as a daemon, with every sd_notify message timestamped.

def binary_flags(binary):
    """The long options a binary's --help lists (an older build may lack some)."""
    try:
        out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return set()
    return {w.rstrip(",") for w in out.split() if w.startswith("--")}


class AgentDaemon:
    """nodetrustd in the foreground loop: start(), wait_status_after(t), stop()."""

    def __init__(self, binary, root, source, workdir, *, health=True, extra=(), name="agent"):
        self.binary = Path(binary)
        self.root = Path(root)
        self.source = Path(source)
        self.workdir = Path(workdir)
        self.health = f"127.0.0.1:{free_port()}" if health else "none"
        flags = binary_flags(binary)
        self.argv = [str(self.binary), "--root", str(self.root), "--trust-source", str(self.source),
                     "--state-dir", "/var/lib/nodetrust", "--health-listen", self.health]
        # Handshakes to example.com registries would leave the machine.
        if "--verify-interval" in flags:
            self.argv += ["--verify-interval", "0"]
        if "--node-status" in flags:
            self.argv += ["--node-status", "off"]
        self.argv += list(extra)
        self.stderr_path = self.workdir / f"{name}.stderr"
        self.proc = None
        self.sock = None
        self.notes = []  # [(monotonic, line)]
        self._cv = threading.Condition()
        self._reader = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        addr = f"nodetrust-bench-{os.getpid()}-{random.getrandbits(48):x}"
        self.sock.bind("\0" + addr)
        env = dict(os.environ, NOTIFY_SOCKET="@" + addr)
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err, env=env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self):
        self.sock.settimeout(0.1)
        while True:
            try:
                msg = self.sock.recv(8192)
            except socket.timeout:
                if self.proc.poll() is not None:
                    return
                continue
            except OSError:
                return
            t = time.monotonic()
            with self._cv:
                for line in msg.decode(errors="replace").splitlines():
                    self.notes.append((t, line))
                self._cv.notify_all()

    def wait_note(self, pred, after, timeout):
        """Monotonic time of the first notify line after `after` matching pred, or None."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for t, line in self.notes:
                    if t >= after and pred(line):
                        return t
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self._cv.wait(min(left, 0.2))

    def wait_ready(self, timeout):
        t = self.wait_note(lambda l: l == "READY=1", 0, timeout)
        if t is None:
            rc = self.proc.poll()
            why = f"exited {rc} before READY=1" if rc is not None else f"not ready within {timeout} s"
            raise RuntimeError(f"nodetrustd {why}:\n{self.log()[-3000:]}")
        return t

    def wait_status_after(self, after, timeout=60):
        return self.wait_note(lambda l: l.startswith("STATUS="), after, timeout)

    def metrics(self):
        """{name: value} of the unlabelled samples of /metrics."""
        import urllib.request
        with urllib.request.urlopen(f"http://{self.health}/metrics", timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line.startswith("#") or "{" in line:
                continue
            parts = line.split()
            if len(parts) >= 2:
                try:
                    out[parts[0]] = float(parts[1])
                except ValueError:
                    pass
        return out

    def log(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=2)
        if self.sock is not None:
            self.sock.close()
            self.sock = None


# --------------------------------------------------------------------------
# A config map volume in the kubelet's atomic-writer layout
# (..TIMESTAMP/ payload, ..data -> it, key -> ..data/key), as
# tests/e2e/peers.py's KubeletVolume, with the work after the rename (key
# links, the old payload's removal) split off, so a timed swap is not
# delayed by the bench's own cleanup of 4,000 old files.

class KubeletVolume:
    _counter = 0

    def __init__(self, directory, data):
        self.path = Path(directory)
        self.path.mkdir(parents=True, exist_ok=True)
        self.data = {}
        self.swap(data)()

    def _payload(self):
        KubeletVolume._counter += 1
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("..%Y_%m_%d_%H_%M_%S")
        d = self.path / f"{stamp}.{os.getpid()}{KubeletVolume._counter:06d}"
        d.mkdir(mode=0o755)
        return d

    def swap(self, data):
        """Write data ({key: bytes}) as a new payload and rename ..data to it.
        Sets self.swapped_at (monotonic, right after the rename) and returns
        the rest of the kubelet's work (links, old payload removed) to call."""
        link = self.path / "..data"
        old = self.path / os.readlink(link) if link.is_symlink() else None
        new = self._payload()
        for k, v in data.items():
            fd = os.open(new / k, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, v)
            finally:
                os.close(fd)
        tmp = self.path / "..data_tmp"
        os.symlink(new.name, tmp)
        os.rename(tmp, link)
        self.swapped_at = time.monotonic()
        removed = set(self.data) - set(data)

        def finish():
            for k in data:
                if not (self.path / k).is_symlink():
                    os.symlink(f"..data/{k}", self.path / k)
            for k in removed:
                (self.path / k).unlink()
            if old is not None:
                import shutil
                shutil.rmtree(old)
        self.data = dict(data)
        return finish
