#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""make bench: every measure of issue 14's goals, side by side with baselines
measured in the same run, one table, written to bench/RESULTS.md.

    bench/run.py [--quick] [--only LIST] [--dir DIR] [--out FILE]

Measures whatever binaries are built (build/nodetrustd, or NODETRUSTD=path;
build/nodetrust-aggregator or AGGREGATOR=path, for bench/aggregator-load.py).
Numbers are recorded, never asserted: a missed goal is a row marked
"missed"; only a harness error (a tool missing, a process that never
started) exits non-zero. Every process it starts is stopped at the end,
its temporary directory (under /var/tmp: a real disk, since fsync cost is
the point) removed; servers listen on 127.0.0.1 only. See bench/README.md.
"""

import argparse
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402
import report  # noqa: E402

REPO = bl.REPO
SECTIONS = ("swap", "cold", "idle", "nodeca", "aggregator")
RESYNC_INTERVAL_S = 300  # the agent's default --resync-interval

# Sizes and counts. QUICK runs fewer registries and swaps (the table says so).
FULL = dict(sizes=(100, 1000, 4000), swaps={100: 1000, 1000: 200, 4000: 100},
            swap_budget={100: 120, 1000: 60, 4000: 60}, resyncs={100: 5, 1000: 20, 4000: 20},
            strace_sizes=(1000, 4000), cold_n=4000, cold_reps=2, idle_s=60, idle_strace_s=15,
            nodeca_sizes=(100, 1000), nodeca_window={100: 20, 1000: 15}, nodeca_swaps={100: 20, 1000: 3},
            nodeca60_measured=True, agg_seconds=20, ref_swap_reps=30)
QUICK = dict(sizes=(100, 1000), swaps={100: 100, 1000: 20}, swap_budget={100: 8, 1000: 8},
             resyncs={100: 3, 1000: 5}, strace_sizes=(1000,), cold_n=300, cold_reps=1, idle_s=6,
             idle_strace_s=2, nodeca_sizes=(100,), nodeca_window={100: 4, 1000: 5},
             nodeca_swaps={100: 4, 1000: 1}, nodeca60_measured=False, agg_seconds=5, ref_swap_reps=10)


def key_name(i):
    return f"registry-{i:05d}.example.com..5000"


def host_name(i):
    return f"registry-{i:05d}.example.com:5000"


class Harness:
    def __init__(self, args):
        self.args = args
        self.cfg = QUICK if args.quick else FULL
        self.only = set(args.only.split(",")) if args.only else set(SECTIONS)
        self.agent_bin = Path(os.environ.get("NODETRUSTD") or REPO / "build" / "nodetrustd").resolve()
        self.agg_bin = Path(os.environ.get("AGGREGATOR") or REPO / "build" / "nodetrust-aggregator").resolve()
        self.tmp = Path(tempfile.mkdtemp(prefix="nodetrust-bench.", dir=args.dir))
        # The config map volumes the bench rewrites at every swap live in
        # memory (/dev/shm): the agent reads them from the page cache either
        # way, and creating 4,000 files a swap on a disk busy with everyone's
        # fsyncs takes seconds of the bench's time. What the agent writes
        # (--root) is on the real disk above.
        shm = Path("/dev/shm")
        self.vtmp = (Path(tempfile.mkdtemp(prefix="nodetrust-bench-volumes.", dir=shm))
                     if shm.is_dir() and os.statvfs(shm).f_bavail > 0 and report.fs_type(shm) == "tmpfs"
                     else self.tmp)
        self.procs = []       # Popen objects to stop at the end
        self.agents = []      # AgentDaemon objects to stop at the end
        self.results = []     # RESULT lines
        self.commands = []    # the exact commands, $BENCH for the temp dir
        self.notes = []       # what was derived, skipped, or failed
        self.timings = []     # (section, seconds)
        self.r = {}           # every figure, by name, for the table
        self.flags = bl.binary_flags(self.agent_bin)
        self.side_error = None

    # ---- bookkeeping ----------------------------------------------------
    def command(self, argv, what):
        s = " ".join(str(a) for a in argv)
        s = s.replace(str(self.tmp), "$BENCH").replace(str(self.vtmp), "$VOLUMES").replace(str(REPO) + "/", "")
        if (what, s) not in self.commands:
            self.commands.append((what, s))

    def result(self, name, **kv):
        line = f"RESULT {name} " + " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                             for k, v in kv.items())
        print(line, flush=True)
        self.results.append(line)

    def say(self, msg):
        print(f"bench: {msg}", flush=True)

    def cleanup(self):
        for a in self.agents:
            try:
                a.stop()
            except Exception as e:  # noqa: BLE001 - keep stopping the rest
                print(f"bench: stopping {a.argv[0]}: {e}", file=sys.stderr)
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(timeout=10)
        shutil.rmtree(self.tmp, ignore_errors=True)
        shutil.rmtree(self.vtmp, ignore_errors=True)

    def popen(self, argv, **kw):
        p = subprocess.Popen([str(a) for a in argv], start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def stop_proc(self, p, sig=signal.SIGTERM):
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)

    # ---- inputs ---------------------------------------------------------
    def prepare(self):
        need = max(max(self.cfg["sizes"]), self.cfg["cold_n"]) + 2
        t0 = time.monotonic()
        self.pems = bl.ca_pems(need)
        self.spare = self.pems[-2:]  # the two values key 0 alternates between
        self.say(f"{need} CAs ready in {time.monotonic() - t0:.1f} s")
        ref = self.tmp / "physical-limit"
        argv = ["cc", "-O2", "-Wall", "-o", ref, REPO / "bench" / "physical-limit.c"]
        self.command(argv, "build the physical-limit reference")
        subprocess.run([str(a) for a in argv], check=True)
        self.ref_bin = ref

    def data(self, n):
        return {key_name(i): self.pems[i] for i in range(n)}

    def agent_root(self, name):
        root = self.tmp / name
        cfg = root / "etc/containerd/config.toml"
        cfg.parent.mkdir(parents=True)
        # containerd 1.6's default config with config_path set, so every
        # sync's runtime check reads and parses a real one.
        cfg.write_text((REPO / "tests/data/containerd-1.6-default.toml").read_text()
                       .replace('config_path = ""', 'config_path = "/etc/containerd/certs.d"'))
        return root

    # ---- (1) (3) (4) (5): one running agent per size ------------------------
    def agent_at(self, n):
        t_section = time.monotonic()
        vol = bl.KubeletVolume(self.vtmp / f"volume-{n}", self.data(n))
        root = self.agent_root(f"root-{n}")
        agent = bl.AgentDaemon(self.agent_bin, root, vol.path, self.tmp, name=f"agent-{n}")
        self.agents.append(agent)
        self.command(agent.argv, f"the agent at {n} registries (kubelet-layout volume, health on, "
                                 "reporting off, verification off)")
        try:
            self.agent_measures(n, vol, root, agent)
        finally:
            agent.stop()
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(vol.path, ignore_errors=True)
        self.timings.append((f"agent at {n} registries", time.monotonic() - t_section))

    def agent_measures(self, n, vol, root, agent):
        cfg = self.cfg
        t0 = time.monotonic()
        agent.start()
        ready = agent.wait_ready(timeout=900)
        self.r[f"daemon_cold_s_{n}"] = ready - t0
        pid = agent.pid
        time.sleep(0.3)
        self.r[f"rss_first_{n}"] = bl.rss_anon_kb(pid)

        # (1) single-key swaps, timed by inotify on key 0's three directories.
        ino = bl.Inotify()
        for t in bl.TARGETS:
            ino.watch(bl.ca_path(root, t, host_name(0)).parent)
        base = self.data(n)
        lat, rss = [], []
        m0 = agent.metrics()
        cpu0 = bl.cpu_seconds(pid)
        deadline = time.monotonic() + cfg["swap_budget"][n]
        for i in range(cfg["swaps"][n]):
            if time.monotonic() > deadline:
                break
            d = dict(base)
            d[key_name(0)] = self.spare[i % 2]
            ino.events(0)
            finish = vol.swap(d)
            swapped = vol.swapped_at
            seen = {}
            limit = time.monotonic() + 60
            while len(seen) < len(bl.TARGETS) and time.monotonic() < limit:
                for when, dpath, name, mask in ino.events(0.5):
                    if name == "ca.crt" and mask & bl.IN_MOVED_TO:
                        seen.setdefault(dpath, when)
            if len(seen) < len(bl.TARGETS):
                raise RuntimeError(f"swap {i} at {n}: only {len(seen)} targets rewritten:\n"
                                   f"{agent.log()[-2000:]}")
            lat.append((max(seen.values()) - swapped) * 1000)
            agent.wait_status_after(swapped, 60)  # the sync is over
            finish()
            rss.append(bl.rss_anon_kb(pid))
        cpu = bl.cpu_seconds(pid) - cpu0
        m1 = agent.metrics()
        ino.close()
        k = len(lat)
        self.r[f"swap_n_{n}"] = k
        self.r[f"swap_ms_{n}"] = (bl.median(lat), bl.pct(lat, 99))
        self.r[f"swap_cpu_ms_{n}"] = cpu * 1000 / k
        self.r[f"swap_files_{n}"] = (m1.get("nodetrust_files_written_total", 0)
                                     - m0.get("nodetrust_files_written_total", 0)) / k
        self.r[f"rss_swaps_{n}"] = (rss[0], rss[-1], max(rss))
        self.result(f"swap registries={n}", swaps=k, median_ms=bl.median(lat), p99_ms=bl.pct(lat, 99),
                    max_ms=max(lat), cpu_per_swap_ms=cpu * 1000 / k,
                    files_per_swap=self.r[f"swap_files_{n}"], rss_anon_first_kib=rss[0],
                    rss_anon_last_kib=rss[-1])

        if n == min(cfg["sizes"]) and "idle" in self.only:
            # node-ca's 60 s loop mostly sleeps, as the idle agent does: its
            # one-interval measure runs alongside (another process, another
            # tree; the agent watches neither).
            side = None
            if cfg["nodeca60_measured"] and "nodeca" in self.only:
                side = threading.Thread(target=self.guarded, args=(self.nodeca60, 100))
                side.start()
            try:
                self.idle(agent)
            finally:
                if side is not None:
                    side.join()
            if self.side_error:
                raise self.side_error

        # (3) (4) SIGHUP resyncs with nothing changed: timed, then under strace.
        walls, rss = [], []
        m0 = agent.metrics()
        cpu0 = bl.cpu_seconds(pid)
        for _ in range(cfg["resyncs"][n]):
            t0 = time.monotonic()
            os.kill(pid, signal.SIGHUP)
            t1 = agent.wait_status_after(t0, 120)
            if t1 is None:
                raise RuntimeError(f"no STATUS= after SIGHUP at {n}:\n{agent.log()[-2000:]}")
            walls.append((t1 - t0) * 1000)
            time.sleep(0.05)
            rss.append(bl.rss_anon_kb(pid))
        cpu = bl.cpu_seconds(pid) - cpu0
        m1 = agent.metrics()
        k = len(walls)
        self.r[f"resync_ms_{n}"] = (bl.median(walls), bl.pct(walls, 99))
        self.r[f"resync_cpu_ms_{n}"] = cpu * 1000 / k
        self.r[f"resync_files_{n}"] = (m1.get("nodetrust_files_written_total", 0)
                                       - m0.get("nodetrust_files_written_total", 0)) / k
        self.r[f"rss_resyncs_{n}"] = (rss[0], rss[-1], k)
        self.result(f"resync registries={n}", resyncs=k, median_ms=bl.median(walls), p99_ms=bl.pct(walls, 99),
                    cpu_per_resync_ms=cpu * 1000 / k, rss_anon_first_kib=rss[0], rss_anon_last_kib=rss[-1])
        if n in cfg["strace_sizes"]:
            self.strace_resync(agent, n)
        self.r[f"rss_end_{n}"] = bl.rss_anon_kb(pid)

    def strace_attach(self, argv, pid):
        """Start strace on pid; return once it says it is attached."""
        p = self.popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        lines = []
        deadline = time.monotonic() + 20
        import select
        buf = b""
        while time.monotonic() < deadline:
            r, _, _ = select.select([p.stderr], [], [], 0.5)
            if r:
                chunk = os.read(p.stderr.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
                if b"attached" in buf:
                    break
        else:
            raise RuntimeError(f"strace did not attach to {pid}: {buf.decode(errors='replace')}")
        if b"attached" not in buf:
            raise RuntimeError(f"strace did not attach to {pid}: {buf.decode(errors='replace')}")
        threading.Thread(target=lambda: lines.append(p.stderr.read()), daemon=True).start()
        return p

    def strace_resync(self, agent, n):
        """One SIGHUP under strace -c -f (every syscall counted), one under
        strace -f -y (the file each write, rename or fsync went to)."""
        pid = agent.pid
        summary = self.tmp / f"strace-c-{n}.txt"
        argv = ["strace", "-c", "-f", "-o", summary, "-p", pid]
        self.command(["strace", "-c", "-f", "-o", "$OUT", "-p", "PID"], "no-op resync, every syscall counted "
                     "(attached only around one SIGHUP)")
        calls = self.traced_sighup(agent, argv)
        counts = parse_strace_c(summary.read_text())
        traced = self.tmp / f"strace-y-{n}.txt"
        watch = ("write,writev,pwrite64,pwritev,pwritev2,rename,renameat,renameat2,fsync,fdatasync,"
                 "syncfs,sync_file_range,unlink,unlinkat,mkdir,mkdirat,openat")
        argv = ["strace", "-f", "-y", "-e", f"trace={watch}", "-o", traced, "-p", pid]
        self.command(["strace", "-f", "-y", "-e", f"trace={watch}", "-o", "$OUT", "-p", "PID"],
                     "no-op resync, the file each write/rename/fsync went to")
        self.traced_sighup(agent, argv)
        dest = classify_writes(traced.read_text(), agent.stderr_path)
        fsyncs = sum(counts.get(s, 0) for s in ("fsync", "fdatasync", "syncfs", "sync_file_range"))
        renames = sum(counts.get(s, 0) for s in ("rename", "renameat", "renameat2"))
        writes = sum(counts.get(s, 0) for s in ("write", "writev", "pwrite64", "pwritev", "pwritev2"))
        self.r[f"strace_{n}"] = dict(writes=writes, renames=renames, fsyncs=fsyncs, total=counts.get("total", 0),
                                     openat=counts.get("openat", 0), file_writes=dest["file"],
                                     log_writes=dest["log"], other_writes=dest["other"], wall_ms=calls)
        self.result(f"resync_strace registries={n}", writes=writes, file_writes=dest["file"],
                    log_writes=dest["log"], renames=renames, fsyncs=fsyncs, openat=counts.get("openat", 0),
                    syscalls=counts.get("total", 0))

    def traced_sighup(self, agent, argv):
        st = self.strace_attach(argv, agent.pid)
        try:
            t0 = time.monotonic()
            os.kill(agent.pid, signal.SIGHUP)
            t1 = agent.wait_status_after(t0, 300)
            if t1 is None:
                raise RuntimeError(f"no STATUS= after SIGHUP under strace:\n{agent.log()[-2000:]}")
            time.sleep(0.3)  # anything the resync left for later
        finally:
            self.stop_proc(st, signal.SIGINT)  # strace detaches and writes its summary
        return (t1 - t0) * 1000

    def guarded(self, fn, *a):
        try:
            fn(*a)
        except Exception as e:  # noqa: BLE001 - re-raised by the main thread
            self.side_error = e

    # ---- (5) idle -------------------------------------------------------
    def idle(self, agent):
        t_section = time.monotonic()
        pid, w = agent.pid, self.cfg["idle_s"]
        time.sleep(1)  # the last swap's report/timers settle
        m0 = agent.metrics()
        time.sleep(0.5)
        v0, nv0 = bl.ctxt_switches(pid)
        cpu0 = bl.cpu_seconds(pid)
        time.sleep(w)
        v1, nv1 = bl.ctxt_switches(pid)
        cpu = bl.cpu_seconds(pid) - cpu0
        m1 = agent.metrics()
        summary = self.tmp / "strace-idle.txt"
        ws = self.cfg["idle_strace_s"]
        argv = ["strace", "-c", "-f", "-o", summary, "-p", pid]
        self.command(["strace", "-c", "-f", "-o", "$OUT", "-p", "PID"], f"idle, every syscall over {ws} s")
        st = self.strace_attach(argv, pid)
        try:
            time.sleep(ws)
        finally:
            self.stop_proc(st, signal.SIGINT)
        counts = parse_strace_c(summary.read_text())
        wakeups = (v1 - v0) + (nv1 - nv0)
        self.r["idle"] = dict(seconds=w, voluntary=v1 - v0, nonvoluntary=nv1 - nv0, wakeups=wakeups,
                              cpu_ms=cpu * 1000, files=m1.get("nodetrust_files_written_total", 0)
                              - m0.get("nodetrust_files_written_total", 0),
                              strace_s=ws, epoll=counts.get("epoll_wait", 0) + counts.get("epoll_pwait", 0),
                              syscalls=counts.get("total", 0))
        self.result("idle registries=100", seconds=w, voluntary_ctxt=v1 - v0, nonvoluntary_ctxt=nv1 - nv0,
                    cpu_ms=cpu * 1000, strace_seconds=ws, epoll_waits=self.r["idle"]["epoll"],
                    syscalls=self.r["idle"]["syscalls"])
        self.timings.append(("idle", time.monotonic() - t_section))

    # ---- (2) cold apply -------------------------------------------------
    def cold(self):
        t_section = time.monotonic()
        n, reps = self.cfg["cold_n"], self.cfg["cold_reps"]
        src = self.tmp / "cold-source"
        src.mkdir()
        for k, v in self.data(n).items():
            (src / k).write_bytes(v)
        root = self.tmp / "cold-root"
        extra = ["--containerd-hosts-toml", "never"] if "--containerd-hosts-toml" in self.flags else []
        agent_argv = [self.agent_bin, "--once", "--root", root, "--trust-source", src, "--state-dir",
                      "/var/lib/nodetrust", "--health-listen", "none", *extra]
        self.command(agent_argv, f"cold apply, {n} registries, plain directory, {3 * n} ca.crt files")
        runs = {"nodetrust": [], "A": [], "B": []}
        cpu, peak = [], []
        for rep in range(reps):
            for which in ("nodetrust", "A", "B"):
                shutil.rmtree(root, ignore_errors=True)
                root.mkdir()
                os.sync()  # nothing of the last run (or anyone's) left to write
                if which == "nodetrust":
                    argv = agent_argv
                else:
                    argv = [self.ref_bin, which, src, root]
                    self.command(argv, f"physical limit, variant {which}")
                with open(self.tmp / "cold.stderr", "wb") as err:
                    t0 = time.monotonic()
                    p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
                    _, status, ru = os.wait4(p.pid, 0)
                    wall = time.monotonic() - t0
                    p.returncode = os.waitstatus_to_exitcode(status)
                files = sum(1 for t in bl.TARGETS for _ in (root / bl.TARGET_DIRS[t]).glob("*/ca.crt"))
                if p.returncode != 0 or files != 3 * n:
                    self.notes.append(f"cold apply {which}: exit {p.returncode}, {files} of {3 * n} files "
                                      f"({(self.tmp / 'cold.stderr').read_text(errors='replace')[-300:]!r})")
                    runs[which].append(float("nan"))
                    continue
                runs[which].append(wall)
                if which == "nodetrust":
                    cpu.append(ru.ru_utime + ru.ru_stime)
                    peak.append(ru.ru_maxrss)
                self.say(f"cold {which} {n}: {wall:.2f} s")
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(src, ignore_errors=True)
        self.r["cold"] = dict(n=n, reps=reps, runs=runs, cpu=cpu, peak=peak)
        self.result(f"cold registries={n}", runs=reps,
                    nodetrust_s=bl.median(runs["nodetrust"]), a_s=bl.median(runs["A"]), b_s=bl.median(runs["B"]),
                    nodetrust_cpu_s=bl.median(cpu) if cpu else float("nan"),
                    nodetrust_peak_rss_kib=max(peak) if peak else 0)

        # The reference for one changed key: 3 files, variant A (per-file
        # fsync is the best order for 3 files; syncfs flushes the disk).
        one = self.tmp / "one-source"
        one.mkdir()
        (one / key_name(0)).write_bytes(self.pems[0])
        oroot = self.tmp / "one-root"
        oroot.mkdir()
        reps1 = self.cfg["ref_swap_reps"]
        argv = [self.ref_bin, "A", one, oroot, reps1]
        self.command(argv, "physical limit of one changed key (3 files), repeated")
        out = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=True).stdout
        # To the last ca.crt durable (the swap latency ends at its rename);
        # the first round creates the directories.
        secs = [float(m.group(1)) * 1000 for m in re.finditer(r"files_seconds=([0-9.]+)", out)][1:]
        self.r["ref_swap_ms"] = (bl.median(secs), bl.pct(secs, 99))
        self.result("physical_one_key", reps=len(secs), median_ms=bl.median(secs), p99_ms=bl.pct(secs, 99))
        shutil.rmtree(one, ignore_errors=True)
        shutil.rmtree(oroot, ignore_errors=True)
        self.timings.append(("cold apply", time.monotonic() - t_section))

    # ---- baseline: node-ca's loop --------------------------------------
    def nodeca_start(self, n, interval):
        """bench/node-ca-loop.sh running on an n-key volume at `interval`, past
        its first pass: (volume, certs.d, process, pass end times, inotify on
        every key's directory for IN_CLOSE_WRITE). The caller stops it."""
        vol = bl.KubeletVolume(self.vtmp / f"nodeca-volume-{n}-{interval}", self.data(n))
        certs = self.tmp / f"nodeca-root-{n}-{interval}" / "etc/docker/certs.d"
        certs.mkdir(parents=True)
        argv = ["/bin/sh", REPO / "bench/node-ca-loop.sh", vol.path, certs, interval]
        self.command(argv, f"baseline: node-ca's loop, {n} keys, every {interval} s")
        passes = []
        p = self.popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def read():
            for line in p.stderr:
                if line.startswith(b"pass "):
                    passes.append(time.monotonic())
        threading.Thread(target=read, daemon=True).start()
        try:
            bl_wait(lambda: passes, 600, "node-ca's first pass")
            ino = bl.Inotify()
            for i in range(n):
                ino.watch(certs / host_name(i), bl.IN_CLOSE_WRITE)
        except BaseException:
            self.stop_proc(p)
            raise
        return vol, certs, p, passes, ino

    def nodeca(self, n, interval, window, swaps):
        """Run bench/node-ca-loop.sh on an n-key volume at `interval`: CPU and
        files written over `window` s with nothing changing, then `swaps`
        one-key swaps timed to the copy (IN_CLOSE_WRITE of ca.crt)."""
        t_section = time.monotonic()
        vol, certs, p, passes, ino = self.nodeca_start(n, interval)
        try:
            time.sleep(0.2)
            ino.events(0)
            # Steady state: nothing changes. At least one whole steady pass
            # (two pass ends after the first), so the cycle is measured.
            cpu0, t0, np0 = bl.cpu_seconds(p.pid, children=True), time.monotonic(), len(passes)
            writes = 0
            limit = t0 + window + 300
            while time.monotonic() < t0 + window or (len(passes) < 3 and time.monotonic() < limit):
                writes += sum(1 for e in ino.events(0.5) if e[2] == "ca.crt")
            cpu, el = bl.cpu_seconds(p.pid, children=True) - cpu0, time.monotonic() - t0
            npass = len(passes) - np0
            gaps = [b - a for a, b in zip(passes[1:], passes[2:])]  # steady passes only
            cycle = bl.median(gaps)
            res = dict(n=n, interval=interval, window=el, cpu_per_h=cpu * 3600 / el,
                       writes_per_h=writes * 3600 / el, passes=npass, cycle=cycle,
                       writes_per_pass=writes / npass if npass else 0.0,
                       cpu_per_pass=cpu / el * cycle, pass_s=max(0.0, cycle - interval))
            pass_s = res["pass_s"]
            # One-key swaps.
            lat, per_change = [], []
            for i in range(max(swaps, 1)):
                d = dict(vol.data)
                d[key_name(0)] = self.spare[i % 2]
                ino.events(0)
                finish = vol.swap(d)
                swapped = vol.swapped_at
                finish()
                got, count = None, 0
                limit = time.monotonic() + interval + 10 * (pass_s if pass_s == pass_s else 1) + 60
                while got is None and time.monotonic() < limit:
                    for when, dpath, name, mask in ino.events(0.5):
                        if name == "ca.crt":
                            count += 1
                            if dpath == certs / host_name(0) and got is None:
                                got = when
                if got is None:
                    raise RuntimeError(f"node-ca loop did not copy key 0 within {limit - swapped:.0f} s")
                lat.append((got - swapped) * 1000)
                if i == 0:
                    # The rest of that pass (every key's file is newer: all copied).
                    npass0 = len(passes)
                    bl_wait(lambda: len(passes) > npass0, interval + 600, "the pass to end")
                    count += sum(1 for e in ino.events(0.2) if e[2] == "ca.crt")
                    per_change.append(count)
                time.sleep(random.uniform(0, interval))
            if len(lat) < 3:  # too few to say: from the algorithm (uniform over one cycle)
                res["measured"] = list(lat)
                lat = [cycle * 1000 / 2, cycle * 1000 * 0.99]
                res["derived"] = True
            res.update(lat=(bl.median(lat), bl.pct(lat, 99)), swaps=len(lat),
                       files_per_change=bl.median(per_change) if per_change else float("nan"))
            ino.close()
        finally:
            self.stop_proc(p)
        self.r[f"nodeca_{n}_{interval}"] = res
        self.result(f"nodeca registries={n} interval_s={interval}", cpu_per_hour_s=res["cpu_per_h"],
                    writes_per_hour=res["writes_per_h"], pass_s=res["pass_s"], cpu_per_pass_s=res["cpu_per_pass"],
                    swaps=res["swaps"], median_ms=res["lat"][0], p99_ms=res["lat"][1],
                    files_per_change=res["files_per_change"])
        shutil.rmtree(certs.parent.parent.parent, ignore_errors=True)
        shutil.rmtree(vol.path, ignore_errors=True)
        self.timings.append((f"node-ca {n} keys every {interval} s", time.monotonic() - t_section))

    def nodeca60(self, n):
        """node-ca at 60 s: one interval, a different key swapped every 2 s
        across it, each timed to its copy in the next pass: swap times
        uniform over the cycle, as real changes are."""
        t_section = time.monotonic()
        interval = 60
        vol, certs, p, passes, ino = self.nodeca_start(n, interval)
        try:
            start = passes[0]
            swapped = {}
            j = 1
            while time.monotonic() < start + interval - 1 and j < n:
                when = start + 2 * j - 1 + random.uniform(0, 1)
                while time.monotonic() < when:
                    ino.events(max(0, when - time.monotonic()))
                d = dict(vol.data)
                d[key_name(j)] = self.spare[j % 2]
                finish = vol.swap(d)
                swapped[host_name(j)] = vol.swapped_at
                finish()
                j += 1
            got = {}
            limit = time.monotonic() + 120
            while len(got) < len(swapped) and time.monotonic() < limit:
                for when, dpath, name, mask in ino.events(0.5):
                    h = dpath.name if dpath else None
                    if name == "ca.crt" and h in swapped and h not in got and when > swapped[h]:
                        got[h] = when
            ino.close()
        finally:
            self.stop_proc(p)
        lat = [(got[h] - swapped[h]) * 1000 for h in got]
        self.r[f"nodeca60_{n}"] = dict(lat=(bl.median(lat), bl.pct(lat, 99)), swaps=len(lat))
        self.result(f"nodeca_staggered registries={n} interval_s=60", swaps=len(lat),
                    median_ms=bl.median(lat), p99_ms=bl.pct(lat, 99))
        shutil.rmtree(certs.parent.parent.parent, ignore_errors=True)
        shutil.rmtree(vol.path, ignore_errors=True)
        self.timings.append((f"node-ca {n} keys every 60 s (staggered swaps)", time.monotonic() - t_section))

    # ---- (6) aggregator --------------------------------------------------
    def aggregator(self):
        script = REPO / "bench" / "aggregator-load.py"
        if not script.exists():
            self.r["aggregator"] = None
            self.notes.append("aggregator: bench/aggregator-load.py is absent; rows not run")
            return
        t_section = time.monotonic()
        argv = [sys.executable, script] + (["--quick"] if self.args.quick else []) + \
            ["--seconds", self.cfg["agg_seconds"], "--binary", self.agg_bin]
        self.command(argv, "aggregator load (bench/aggregator-load.py)")
        env = dict(os.environ, AGGREGATOR=str(self.agg_bin))
        try:
            cp = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env,
                                timeout=600 if not self.args.quick else 90)
        except subprocess.TimeoutExpired:
            self.r["aggregator"] = None
            self.notes.append("aggregator: bench/aggregator-load.py timed out; rows not run")
            return
        kv = None
        for line in cp.stdout.splitlines():
            if line.startswith("RESULT aggregator"):
                kv = dict(w.split("=", 1) for w in line.split()[2:] if "=" in w)
                self.results.append(line)
                print(line, flush=True)
        if kv is None:
            self.notes.append(f"aggregator: bench/aggregator-load.py exited {cp.returncode} without a RESULT line: "
                              f"{(cp.stderr or cp.stdout)[-400:]!r}")
        self.r["aggregator"] = kv
        self.timings.append(("aggregator", time.monotonic() - t_section))

    # ---- everything -----------------------------------------------------
    def section(self, what, fn, *a):
        """Run one measure; a harness error there is noted (and fails the
        run at the end) without losing the other measures."""
        self.say(what)
        try:
            fn(*a)
        except Exception as e:  # noqa: BLE001 - recorded, re-raised as the exit status
            import traceback
            traceback.print_exc()
            self.errors.append(f"{what}: {type(e).__name__}: {str(e)[-1500:]}")

    def run(self):
        t0 = time.monotonic()
        self.errors = []
        self.load_start = os.getloadavg()
        self.git = report.git_state()  # the tree measured, before anyone edits it
        self.prepare()
        if "swap" in self.only or "idle" in self.only:
            for n in self.cfg["sizes"]:
                if "swap" not in self.only and n != min(self.cfg["sizes"]):
                    continue
                self.section(f"agent at {n} registries", self.agent_at, n)
        if "cold" in self.only:
            self.section(f"cold apply of {self.cfg['cold_n']} registries", self.cold)
        if "nodeca" in self.only:
            for n in self.cfg["nodeca_sizes"]:
                self.section(f"node-ca loop at {n} keys, 1 s", self.nodeca, n, 1, self.cfg["nodeca_window"][n],
                             self.cfg["nodeca_swaps"][n])
            if self.cfg["nodeca60_measured"] and "nodeca60_100" not in self.r:
                self.section("node-ca loop at 100 keys, 60 s (staggered swaps over one interval)",
                             self.nodeca60, 100)
        if "aggregator" in self.only:
            self.section("aggregator", self.aggregator)
        self.load_end = os.getloadavg()
        self.elapsed = time.monotonic() - t0


def bl_wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


def parse_strace_c(text):
    """{syscall: calls, 'total': calls} from strace -c's table."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            # % time, seconds, usecs/call, calls, [errors], syscall
            try:
                out[parts[-1]] = int(parts[3])
            except ValueError:
                pass
        elif parts and parts[-1] == "total" and len(parts) >= 4:
            try:
                out["total"] = int(parts[2]) if len(parts) == 4 else int(parts[3])
            except ValueError:
                pass
    return out


WRITE_RE = re.compile(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?(write|writev|pwrite64|pwritev2?)\((\d+)<([^>]*)>")


def classify_writes(text, stderr_path):
    """Writes by where they went: the log (stderr), a socket or pipe, or a file."""
    out = {"log": 0, "file": 0, "other": 0}
    for line in text.splitlines():
        m = WRITE_RE.match(line)
        if not m:
            continue
        dest = m.group(3)
        if dest == str(stderr_path):
            out["log"] += 1
        elif dest.startswith(("socket:", "pipe:", "anon_inode:", "/dev/")):
            out["other"] += 1
        else:
            out["file"] += 1
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", default=os.environ.get("QUICK") == "1",
                    help="fewer registries and swaps (under 2 minutes); the table says which")
    ap.add_argument("--only", help=f"comma-separated sections: {','.join(SECTIONS)}")
    ap.add_argument("--dir", default="/var/tmp", help="where the temp dir goes (a real disk; default /var/tmp)")
    ap.add_argument("--out", default=str(REPO / "bench" / "RESULTS.md"),
                    help="the results file (default bench/RESULTS.md; '-' for none)")
    args = ap.parse_args()
    for tool in ("strace", "cc"):
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool} not found: run `scripts/deps.sh bench`")
    h = Harness(args)
    if not os.access(h.agent_bin, os.X_OK):
        raise SystemExit(f"bench: {h.agent_bin} is not built: run `make`")
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    try:
        h.run()
        fs = report.fs_info(h.tmp)
        text = report.render(h, fs)
    finally:
        h.cleanup()
    print()
    print(text)
    if args.out != "-":
        Path(args.out).write_text(text)
        print(f"bench: written to {args.out}")
    if h.errors:
        raise SystemExit("bench: harness error(s), their rows are missing:\n" + "\n".join(h.errors))


if __name__ == "__main__":
    main()
