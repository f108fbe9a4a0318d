#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""nodetrustd with 100 registries: memory, and ..data swap -> file on disk.

Runs the real agent (build/nodetrustd, or $NODETRUSTD) the way a DaemonSet
pod runs it: a kubelet-layout config map volume, health endpoint on,
reporting every second to a real nodetrust-aggregator on 127.0.0.1. Prints:

  - VmRSS and VmHWM (/proc/PID/status) after the first sync, and after 20
    config map swaps that each rotate every registry's CA (all 300 files
    rewritten each time);
  - the latency from the kubelet's rename of ..data to the new ca.crt being
    renamed into place, over N swaps that each change one registry's CA:
    first target and all three targets, median / p95 / max. The times come
    from inotify (IN_MOVED_TO on the registry's directories), not polling,
    so the measurement does not steal the agent's CPU.

Numbers are recorded, never asserted (bench/README.md). Everything lives in
a temporary directory; only 127.0.0.1 is used.

    bench/agent-rss.py [--registries 100] [--swaps 50] [--rotations 20]
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import peers  # noqa: E402  (the e2e helpers: CAs, kubelet volume, agent runner)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (IN_MOVED_TO, TARGETS, Inotify, KubeletVolume, binary_flags, cpu_seconds,  # noqa: E402
                      pct, rss_kb)


def counters(agent):
    """(syncs, files written) from the agent's /metrics, or None without health."""
    if agent.health == "none":
        return None
    import promparse
    import urllib.request
    with urllib.request.urlopen(f"http://{agent.health}/metrics", timeout=5) as r:
        fams = promparse.parse(r.read().decode())
    return (promparse.value(fams, "nodetrust_syncs_total"),
            promparse.value(fams, "nodetrust_files_written_total"))


def start_aggregator(workdir):
    binary = Path(os.environ.get("NODETRUST_AGGREGATOR", REPO / "build" / "nodetrust-aggregator"))
    token = workdir / "agg-token"
    token.write_text("bench-token\n")
    log = workdir / "aggregator.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([str(binary), "--listen", "127.0.0.1:0", "--token-file", str(token),
                                 "--interval", "1"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if "Listening on" in line and " port " in line:
                return proc, f"http://127.0.0.1:{int(line.split(' port ')[1].split()[0])}", token
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    raise SystemExit(f"aggregator did not start:\n{log.read_text()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--registries", type=int, default=100)
    ap.add_argument("--swaps", type=int, default=50, help="single-CA swaps timed")
    ap.add_argument("--rotations", type=int, default=20, help="whole-map swaps before the second RSS")
    ap.add_argument("--bare", action="store_true", help="no health endpoint, no reporting")
    ap.add_argument("--hosts-toml", choices=("always", "never", "unset"), default="always",
                    help="--containerd-hosts-toml for the agent (default always; unset: no flag, "
                         "for a binary that predates it)")
    args = ap.parse_args()

    binary = peers.nodetrustd_path()
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"{binary} is not built: run `make`")

    tmp = Path(tempfile.mkdtemp(prefix="nodetrust-bench."))
    agg = None
    try:
        t0 = time.monotonic()
        cas = [peers.make_ca(tmp / "cas", f"bench-ca-{i:03d}") for i in range(args.registries + 1)]
        gen_s = time.monotonic() - t0
        keys = [f"registry-{i:03d}.example.com..5000" for i in range(args.registries)]
        hosts = [k.replace("..", ":") for k in keys]

        def content(shift):
            return {k: cas[(i + shift) % len(cas)].pem().encode() for i, k in enumerate(keys)}

        volume = KubeletVolume(tmp / "trust", content(0))
        # A node's containerd config, so every sync's runtime check reads
        # and parses a real one (containerd 1.6's default, config_path set).
        cfg = tmp / "root/etc/containerd/config.toml"
        cfg.parent.mkdir(parents=True)
        cfg.write_text((Path(__file__).parent.parent / "tests/data/containerd-1.6-default.toml").read_text()
                       .replace('config_path = ""', 'config_path = "/etc/containerd/certs.d"'))
        extra = [] if args.hosts_toml == "unset" else ["--containerd-hosts-toml", args.hosts_toml]
        # Handshakes to registry-NNN.example.com would leave the machine and
        # add their CPU to every figure.
        if "--verify-interval" in binary_flags(binary):
            extra += ["--verify-interval", "0"]
        if args.bare:
            agent = peers.Agent(tmp / "root", volume.path, binary=binary, workdir=tmp, health="none",
                                extra=extra)
        else:
            agg, url, token = start_aggregator(tmp)
            agent = peers.Agent(tmp / "root", volume.path, binary=binary, workdir=tmp,
                                health=f"127.0.0.1:{peers.free_port()}",
                                extra=extra + ["--node-name", "bench-node", "--report-url", url,
                                               "--report-token-file", str(token), "--report-interval", "1"])
        rows = []
        with agent.daemon() as d:
            pid = d.proc.pid
            d.wait_notify("READY=1", timeout=60)
            # READY=1 follows the whole first sync: every file is written.
            for h in hosts:
                for t in TARGETS:
                    assert peers.ca_path(agent.root, t, h).is_file(), (t, h)
            time.sleep(0.5)  # let the first report go out
            rows.append((f"after the first sync ({args.registries} registries)", *rss_kb(pid)))

            # Whole-map rotations: every registry gets another CA each time.
            probe = peers.ca_path(agent.root, "containerd", hosts[-1])
            for r in range(1, args.rotations + 1):
                want = cas[(len(keys) - 1 + r) % len(cas)].der()
                volume.swap(content(r))()
                peers.wait_for(lambda: peers.pem_certs_der(probe.read_bytes()) == [want]
                               if probe.exists() else False, timeout=30, interval=0.005,
                               what=f"rotation {r} applied")
            time.sleep(0.5)
            rows.append((f"after {args.rotations} whole-map swaps", *rss_kb(pid)))

            # Single-CA swaps, timed by inotify on registry 0's directories.
            ino = Inotify()
            dirs = {t: peers.ca_path(agent.root, t, hosts[0]).parent for t in TARGETS}
            for t, dpath in dirs.items():
                ino.watch(dpath)
            base = content(args.rotations)
            first, allt = [], []
            cpu0 = cpu_seconds(pid)
            count0 = counters(agent)
            for i in range(args.swaps):
                data = dict(base)
                data[keys[0]] = cas[-1 - (i % 2)].pem().encode()  # two CAs not otherwise on key 0
                ino.events(0)  # drain
                # The kubelet's work after the rename (the old payload
                # removed) waits until the swap is timed: done first, it
                # delayed the reading of the events it is timed by.
                finish = volume.swap(data)
                swapped = volume.swapped_at
                seen = {}
                deadline = time.monotonic() + 10
                while len(seen) < len(TARGETS) and time.monotonic() < deadline:
                    for when, dpath, name, mask in ino.events(0.5):
                        if name == "ca.crt" and mask & IN_MOVED_TO:
                            seen.setdefault(dpath, when)
                if len(seen) < len(TARGETS):
                    raise SystemExit(f"swap {i}: only {len(seen)} targets rewritten:\n{d.log()[-2000:]}")
                first.append((min(seen.values()) - swapped) * 1000)
                allt.append((max(seen.values()) - swapped) * 1000)
                finish()
                time.sleep(0.02)  # let the report that follows the change go out
            cpu = cpu_seconds(pid) - cpu0
            count1 = counters(agent)
            ino.close()
            rows.append((f"after {args.swaps} single-CA swaps", *rss_kb(pid)))
            assert d.alive()
        if agg is not None:
            agg.send_signal(signal.SIGTERM)
            agg.wait(timeout=10)
            agg = None

        mode = ("no health endpoint, no reporting" if args.bare
                else "health on, reporting every 1 s to a local aggregator")
        print(f"nodetrustd {binary} with {args.registries} registries x 3 targets "
              f"({mode}; --containerd-hosts-toml {args.hosts_toml}); {os.cpu_count()} CPUs; "
              f"{len(cas)} CAs generated in {gen_s:.1f} s")
        print()
        print(f"{'memory':<42} {'VmRSS':>9} {'VmHWM':>9} {'RssAnon':>9}")
        for what, r, h, a in rows:
            print(f"{what:<42} {r / 1024:>5.1f} MiB {h / 1024:>5.1f} MiB {a / 1024:>5.1f} MiB")
        print()
        print(f"..data swap -> ca.crt renamed into place ({args.swaps} swaps, one CA changed, "
              f"whole map re-read and validated each time)")
        print(f"{'':<22} {'median':>9} {'p95':>9} {'max':>9}")
        for what, v in (("first target", first), ("all three targets", allt)):
            print(f"{what:<22} {statistics.median(v):>6.2f} ms {pct(v, 95):>6.2f} ms {max(v):>6.2f} ms")
        print(f"agent CPU time over those swaps: {cpu * 1000:.0f} ms "
              f"({cpu * 1000 / args.swaps:.1f} ms per swap)")
        if count0 and count1:
            print(f"syncs run: {count1[0] - count0[0]:.0f}, files written: {count1[1] - count0[1]:.0f} "
                  f"for {args.swaps} swaps")
        # One line for bench/hosts-toml.py, which runs this side by side.
        print(f"RESULT median_all_ms={statistics.median(allt):.3f} p95_all_ms={pct(allt, 95):.3f} "
              f"cpu_per_swap_ms={cpu * 1000 / args.swaps:.3f} rss_anon_kib={rows[-1][3]}")
    finally:
        if agg is not None:
            agg.kill()
            agg.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
