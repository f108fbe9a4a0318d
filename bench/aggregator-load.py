#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""nodetrust-aggregator under load: reports/s, CPU per report, summary p99
under that load, and RSS across many requests of every GET route.

Starts the real build/nodetrust-aggregator on 127.0.0.1 (a free port it
picks, a temp dir for its token file and log), pre-fills --nodes nodes
(one report each, over keep-alive connections), then:

1. wrk (bench/aggregator-load.lua, 1 thread, 8 keep-alive connections)
   POSTs 20-registry reports cycling through the nodes for --seconds,
   while a second wrk asks GET /api/v1/summary every 50 ms (--latency);
2. reports/s = 200 answers / wall seconds of the run, CPU per report =
   the aggregator's utime+stime (/proc/PID/stat) over the run / reports;
3. RSS (/proc/PID/status VmRSS and RssAnon) before and after
   --get-requests requests of each GET route, one route after the other.

Prints one line: RESULT aggregator key=value ... (and a few lines of
detail before it). Needs wrk (the Debian package `wrk`). Sends traffic
only to 127.0.0.1, bounded in time and count.

  bench/aggregator-load.py [--quick] [--seconds 10] [--binary PATH]
"""

import argparse
import http.client
import json
import os
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

REPO = Path(__file__).resolve().parents[1]
LUA = REPO / "bench" / "aggregator-load.lua"
TOKEN = "bench-token-0123456789"
TICK = os.sysconf("SC_CLK_TCK")


def fail(msg):
    print(f"aggregator-load: {msg}", file=sys.stderr)
    sys.exit(2)


class Aggregator:
    def __init__(self, binary, workdir, nodes):
        self.workdir = Path(workdir)
        token = self.workdir / "token"
        token.write_text(TOKEN + "\n")
        self.log_path = self.workdir / "aggregator.log"
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(binary), "--listen", "127.0.0.1:0", "--token-file", str(token),
             "--max-nodes", str(max(nodes, 10000)), "--log-level", "notice"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        # --log-level notice hides the "Listening" line: ask the kernel instead.
        deadline = time.monotonic() + 10
        self.port = None
        while self.port is None:
            if self.proc.poll() is not None:
                fail(f"aggregator exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            if time.monotonic() > deadline:
                fail("aggregator did not start listening")
            self.port = self._listening_port()
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def _listening_port(self):
        inodes = set()
        fd_dir = Path(f"/proc/{self.proc.pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                m = re.match(r"socket:\[(\d+)\]", os.readlink(fd))
            except OSError:
                continue
            if m:
                inodes.add(m.group(1))
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                return int(f[1].split(":")[1], 16)
        return None

    def cpu_seconds(self):
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def rss_mib(self):
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        get = lambda k: int(re.search(rf"^{k}:\s+(\d+) kB", status, re.M).group(1)) / 1024
        return get("VmRSS"), get("RssAnon")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def prefill(port, nodes, registries):
    """One report per node, over 4 keep-alive connections."""
    body_head, body_tail = report_parts(registries)
    errors = []

    def post(lo, hi):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        hdrs = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
        for i in range(lo, hi):
            c.request("POST", "/api/v1/reports", body=body_head + f"node-{i:05d}" + body_tail, headers=hdrs)
            r = c.getresponse()
            r.read()
            if r.status != 200:
                errors.append(r.status)
        c.close()

    step = (nodes + 3) // 4
    ts = [threading.Thread(target=post, args=(k, min(nodes, k + step))) for k in range(0, nodes, step)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        fail(f"pre-fill: {len(errors)} reports refused (first: HTTP {errors[0]})")


def report_parts(registries):
    """The same report as the Lua script posts, around the node name. An
    interval of an hour: no node turns stale while the GET routes are
    measured (the old whole list took minutes), so /api/v1/registries and
    /metrics count every node."""
    h = "ab" * 32
    regs = []
    for i in range(1, registries + 1):
        regs.append({"name": f"reg-{i:02d}.example.com:5000", "key": f"reg-{i:02d}.example.com..5000",
                     "state": "applied", "fingerprint": f"{i:064x}", "not_after": 1830000000 + i * 86400,
                     "verification": {"state": "verified", "server_not_after": 1820000000 + i * 86400,
                                      "checked_at": 1795000000}})
    doc = {"schema": 1, "node": "@@NODE@@", "agent_version": "0.1.0", "timestamp": 1795000000,
           "interval_seconds": 3600, "ready": True, "source": {"kind": "dir", "generation": 7, "hash": h},
           "applied_hash": h, "errors": [], "registries": regs, "soonest_expiry": 1830086400,
           "pull_secret": {"state": "absent", "hash": None},
           "targets": {"docker": {"state": "active"}, "containers": {"state": "active"},
                       "containerd": {"state": "active"}},
           "registry_counts": {"applied": registries, "refused": 0, "conflict": 0, "failed": 0, "shadowed": 0,
                               "ignored": 0}}
    a, b = json.dumps(doc, separators=(",", ":")).split("@@NODE@@")
    return a, b


def lua_env(nodes, registries, **extra):
    env = dict(os.environ, AGG_TOKEN=TOKEN, AGG_NODES=str(nodes), AGG_REGISTRIES=str(registries))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def parse_load(out):
    m = re.search(r"^LOAD requests=(\d+) errors=(\d+) seconds=([\d.]+) p50_us=(\d+) p99_us=(\d+)", out, re.M)
    if not m:
        fail(f"wrk printed no LOAD line:\n{out}")
    return {"requests": int(m.group(1)), "errors": int(m.group(2)), "seconds": float(m.group(3)),
            "p50_us": int(m.group(4)), "p99_us": int(m.group(5))}


def wrk(url, env, seconds, threads=1, connections=8, timeout=None):
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s",
           "-s", str(LUA), url]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_load(agg, args):
    """Reports for args.seconds with the summary probe beside; the numbers."""
    cpu0, t0 = agg.cpu_seconds(), time.monotonic()
    load = wrk(agg.url, lua_env(args.nodes, args.registries), args.seconds, connections=args.connections)
    probe = wrk(agg.url, lua_env(args.nodes, args.registries, AGG_MODE="get", AGG_PATH="/api/v1/summary",
                                 AGG_DELAY_MS=50), args.seconds, connections=1)
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_out, _ = load.communicate(timeout=args.seconds + 60)
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    probe_out, _ = probe.communicate(timeout=args.seconds + 60)
    wall, cpu = time.monotonic() - t0, agg.cpu_seconds() - cpu0
    lo, pr = parse_load(load_out), parse_load(probe_out)
    accepted = lo["requests"] - lo["errors"]
    if accepted <= 0:
        fail(f"no report accepted:\n{load_out}")
    return {
        "reports_per_s": accepted / lo["seconds"],
        "report_errors": lo["errors"],
        "report_p99_ms": lo["p99_us"] / 1000,
        "cpu_us_per_report": cpu * 1e6 / accepted,
        "cpu_share": cpu / wall,
        # The load generator's own CPU: near 1.0 means the client, not the
        # aggregator, set the pace.
        "wrk_cpu_share": ((children1.ru_utime + children1.ru_stime) -
                          (children0.ru_utime + children0.ru_stime)) / wall,
        "summary_requests": pr["requests"],
        "summary_p50_ms": pr["p50_us"] / 1000,
        "summary_p99_ms": pr["p99_us"] / 1000,
    }


GET_ROUTES = [
    ("summary", "/api/v1/summary"),
    ("nodes", "/api/v1/nodes"),
    ("nodes_max", "/api/v1/nodes?limit=@MAX@"),
    ("nodes_failing", "/api/v1/nodes?state=failing"),
    ("node", "/api/v1/nodes/node-00042"),
    ("registries", "/api/v1/registries"),
    ("rollout", "/api/v1/rollout"),
    ("metrics", "/metrics"),
    ("page", "/"),
    ("healthz", "/healthz"),
]


def max_limit(agg):
    """The aggregator's maximum page size, from its own 400 answer."""
    c = http.client.HTTPConnection("127.0.0.1", agg.port, timeout=30)
    c.request("GET", "/api/v1/nodes?limit=999999999")
    r = c.getresponse()
    body = r.read()
    c.close()
    m = re.search(rb"at most (\d+)", body)
    return int(m.group(1)) if r.status == 400 and m else None


def get_loop(port, path, count, budget=None):
    """count GETs of path over one kept-alive connection (fewer when the
    budget in seconds runs out first); median and p99 ms, the last size."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times = []
    start = time.monotonic()
    for _ in range(count):
        if budget is not None and times and time.monotonic() - start > budget:
            break
        t0 = time.monotonic()
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        times.append((time.monotonic() - t0) * 1000)
        if r.status != 200:
            fail(f"GET {path}: HTTP {r.status}: {body[:200]!r}")
    c.close()
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, len(times) * 99 // 100)], len(body), len(times)


def run_gets(agg, count, budget):
    """RSS before and after count requests of each GET route."""
    out = {}
    before = agg.rss_mib()
    out["rss_before_gets_mib"], out["rss_anon_before_gets_mib"] = before
    # After the RSS above: to an aggregator without pages this asks for the
    # whole list (which then counts in the summary's RSS, not before it).
    limit = max_limit(agg)
    for key, path in GET_ROUTES:
        if "@MAX@" in path:
            if limit is None:  # an aggregator without pages: the full list is its maximum
                continue
            path = path.replace("@MAX@", str(limit))
        p50, p99, size, done = get_loop(agg.port, path, count, budget)
        rss, anon = agg.rss_mib()
        out[f"rss_after_{key}_mib"] = rss
        out[f"get_{key}_p50_ms"] = p50
        out[f"get_{key}_p99_ms"] = p99
        out[f"get_{key}_bytes"] = size
        out[f"get_{key}_n"] = done
        print(f"  GET {path}: {done} requests, {size} bytes, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
              f"RSS {rss:.1f} MiB (anon {anon:.1f})", flush=True)
    out["rss_after_gets_mib"], out["rss_anon_after_gets_mib"] = agg.rss_mib()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 s of load, 100 GETs per route (under ~20 s)")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--nodes", type=int, default=10000)
    ap.add_argument("--registries", type=int, default=20)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--get-requests", type=int, default=1000)
    ap.add_argument("--binary", default=str(REPO / "build" / "nodetrust-aggregator"))
    ap.add_argument("--no-gets", action="store_true", help="skip the RSS-per-route part")
    ap.add_argument("--get-seconds", type=float, default=60,
                    help="at most this long per GET route (the old whole list took ~0.7 s a request)")
    ap.add_argument("--baseline", metavar="BINARY",
                    help="measure this aggregator first, the same way (one RESULT line each)")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.get_requests, args.get_seconds = 3, 100, 1.0
    if not shutil.which("wrk"):
        fail("wrk is needed (Debian package `wrk`)")
    if not os.access(args.binary, os.X_OK):
        fail(f"{args.binary} is not built: run `make`")

    runs = [("baseline", args.baseline)] if args.baseline else []
    runs.append(("current", args.binary))
    for label, binary in runs:
        print(f"{label}: {binary}", flush=True)
        measure(label, binary, args)


def measure(label, binary, args):
    with tempfile.TemporaryDirectory(prefix="agg-load.") as tmp:
        agg = Aggregator(binary, tmp, args.nodes)
        try:
            t0 = time.monotonic()
            prefill(agg.port, args.nodes, args.registries)
            res = {"binary": label, "nodes": args.nodes, "registries": args.registries, "seconds": args.seconds}
            res["prefill_s"] = time.monotonic() - t0
            res["rss_prefilled_mib"], res["rss_anon_prefilled_mib"] = agg.rss_mib()
            print(f"  pre-filled {args.nodes} nodes in {res['prefill_s']:.1f} s, "
                  f"RSS {res['rss_prefilled_mib']:.1f} MiB", flush=True)
            res.update(run_load(agg, args))
            print(f"  {res['reports_per_s']:.0f} reports/s, {res['cpu_us_per_report']:.1f} us CPU each, "
                  f"summary p99 {res['summary_p99_ms']:.2f} ms", flush=True)
            res["rss_after_load_mib"], res["rss_anon_after_load_mib"] = agg.rss_mib()
            if not args.no_gets:
                res["get_requests"] = args.get_requests
                res.update(run_gets(agg, args.get_requests, args.get_seconds))
        finally:
            rc = agg.stop()
        if rc != 0:
            fail(f"aggregator exit status {rc}:\n{agg.log_path.read_text()[-2000:]}")
    print("RESULT aggregator " + " ".join(
        f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in res.items()), flush=True)


if __name__ == "__main__":
    main()
