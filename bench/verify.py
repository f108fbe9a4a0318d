#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Proof of trust: what a check costs the node, and what a fleet sends a registry.

One real docker-registry on 127.0.0.1 with one EC P-256 server certificate
naming regNNN.nodetrust.test (NNN = 001..N) and localhost. The real
nodetrustd (build/nodetrustd, or $NODETRUSTD) runs in a private mount
namespace whose /etc/hosts maps those names to 127.0.0.1, with N config
map keys regNNN.nodetrust.test..PORT: N registries to the agent, N
handshakes to the one server.

- bytes per check: one more run with one key pointing at a counting TCP
  proxy in front of the registry (both directions, the whole connection:
  TCP payload, not headers);
- CPU per check: the agent's utime+stime (/proc/PID/stat) from READY to
  the last of the N verdicts, over N; the registry's over the same span;
- wall per check: from the agent's "Verifying" debug line to its verdict;
  wall for N: from the first start to the last verdict (the first checks
  are spread over up to 5 s after the sync, on purpose);
- the fleet: 1,000 nodes at the default 6 h interval, one handshake each.

Prints one RESULT line. Records numbers; asserts nothing.
"""

import argparse
import datetime
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import peers  # noqa: E402
import runtimes  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
DEFAULT_INTERVAL = 21600
FLEET = 1000


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class CountingProxy:
    """127.0.0.1:port -> 127.0.0.1:target, counting payload bytes each way."""

    def __init__(self, target):
        self.target = target
        self.up = self.down = self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _pipe(self, a, b, attr):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                setattr(self, attr, getattr(self, attr) + len(data))
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            s = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(c, s, "up"), daemon=True).start()
            threading.Thread(target=self._pipe, args=(s, c, "down"), daemon=True).start()


def start_agent(work, root, source, port, hosts_file, interval):
    a = peers.Agent(root, source, health=f"127.0.0.1:{port}",
                    extra=["--verify-interval", str(interval), "--log-level", "debug"], workdir=work)
    err = open(work / f"agent-{port}.log", "wb")
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.Popen(runtimes.in_namespace(a.argv(), hosts_file), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err, env=env)
    peers.wait_for(lambda: runtimes.http_get(port, "/readyz", 1.0)[0] == 200 if peers.port_answers(port) else False,
                   timeout=30, interval=0.01, what="/readyz")
    return proc, work / f"agent-{port}.log"


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def verdicts(port):
    st = runtimes.status(port)
    return {r["name"]: (r.get("verification") or {}).get("state") for r in st["registries"]}


def stamp(line):
    t = line.split(" ", 1)[0]
    return datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--registries", type=int, default=100)
    ap.add_argument("--interval", type=int, default=DEFAULT_INTERVAL,
                    help="the agent's --verify-interval (first checks spread over min(5 s, a tenth))")
    args = ap.parse_args()
    n = args.registries

    with tempfile.TemporaryDirectory(prefix="nodetrust-bench-verify.") as tmp:
        work = Path(tmp)
        names = [f"reg{i:03d}.nodetrust.test" for i in range(1, n + 1)]
        ca = peers.make_ca(work / "pki", "bench-verify-ca")
        srv = peers.make_server_cert(ca, work / "pki", hosts=("localhost", *names))
        hosts = runtimes.write_hosts_file(work / "hosts", names)
        reg = peers.Registry(work / "registry", *srv).start()
        try:
            # 1. Bytes of one check, through the counting proxy.
            proxy = CountingProxy(reg.port)
            one = work / "one"
            one.mkdir()
            (one / f"localhost..{proxy.port}").write_bytes(ca.pem())
            hport = peers.free_port()
            proc, _ = start_agent(work, work / "root-one", one, hport, hosts, args.interval)
            try:
                peers.wait_for(lambda: verdicts(hport).get(f"localhost:{proxy.port}") == "verified",
                               timeout=30, interval=0.05, what="one verdict")
                time.sleep(0.3)  # the close's last segments
                bytes_up, bytes_down, conns = proxy.up, proxy.down, proxy.connections
            finally:
                stop(proc)

            # 2. N registries: CPU and wall.
            many = work / "many"
            many.mkdir()
            for name in names:
                (many / f"{name}..{reg.port}").write_bytes(ca.pem())
            hport = peers.free_port()
            reg_cpu0 = cpu_seconds(reg.proc.pid)
            proc, log = start_agent(work, work / "root-many", many, hport, hosts, args.interval)
            try:
                cpu0 = cpu_seconds(proc.pid)
                # Wait on the log, not /status: a poll of a 100-registry
                # /status every few ms would be agent CPU in the sum.
                peers.wait_for(lambda: log.read_text(errors="replace").count("VERIFICATION=") >= n,
                               timeout=60, interval=0.05, what=f"{n} verdicts")
                cpu1 = cpu_seconds(proc.pid)
                reg_cpu1 = cpu_seconds(reg.proc.pid)
                states = verdicts(hport)
            finally:
                stop(proc)
            text = log.read_text(errors="replace")
            starts, ends = {}, {}
            for line in text.splitlines():
                m = re.search(r"Verifying (\S+) ", line)
                if m:
                    starts.setdefault(m.group(1), stamp(line))
                m = re.search(r"VERIFICATION=\w+", line) and re.search(r"REGISTRY=(\S+)", line)
                if m:
                    ends.setdefault(m.group(1), stamp(line))
            durations = sorted(ends[k] - starts[k] for k in ends if k in starts)
        finally:
            reg.stop()

    bad = {k: v for k, v in states.items() if v != "verified"}
    cpu_ms = (cpu1 - cpu0) * 1000
    reg_ms = (reg_cpu1 - reg_cpu0) * 1000
    wall_all = max(ends.values()) - min(starts.values())
    per_check_ms = statistics.median(durations) * 1000
    p95_ms = durations[int(len(durations) * 0.95) - 1] * 1000
    checks_h = FLEET * 3600 / DEFAULT_INTERVAL
    bytes_check = bytes_up + bytes_down
    print(f"one check: {conns} connection, {bytes_up} B to the registry, {bytes_down} B back "
          f"({bytes_check} B TCP payload)")
    print(f"{n} registries: agent CPU {cpu_ms:.0f} ms ({cpu_ms / n:.2f} ms per check), "
          f"registry CPU {reg_ms:.0f} ms ({reg_ms / n:.2f} ms per handshake)")
    print(f"wall per check: median {per_check_ms:.1f} ms, p95 {p95_ms:.1f} ms; "
          f"all {n}: {wall_all:.2f} s (first checks spread over up to 5 s)")
    print(f"fleet: {FLEET} nodes x 1 check per {DEFAULT_INTERVAL // 3600} h = {checks_h:.0f} checks/h "
          f"to each registry, {checks_h * bytes_check / 1024:.0f} KiB/h; a bundle change: "
          f"{FLEET} within 5 s")
    if bad:
        print(f"not verified: {bad}")
    print(f"RESULT verify registries={n} bytes_per_check={bytes_check} agent_cpu_ms_per_check={cpu_ms / n:.2f} "
          f"agent_cpu_ms_total={cpu_ms:.0f} registry_cpu_ms_per_check={reg_ms / n:.2f} "
          f"wall_ms_per_check={per_check_ms:.1f} wall_s_all={wall_all:.2f} "
          f"fleet_checks_per_hour={checks_h:.0f} fleet_kib_per_hour={checks_h * bytes_check / 1024:.0f}")


if __name__ == "__main__":
    main()
