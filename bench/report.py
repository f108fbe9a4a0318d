# SPDX-License-Identifier: MIT
"""The table bench/run.py prints and writes to bench/RESULTS.md: every goal of
issue 14 with its threshold, met or missed, and the baselines of the same run."""

import datetime
import math
import os
import platform
import subprocess
from pathlib import Path

import benchlib as bl

REPO = bl.REPO
GROWTH_FLAT_KIB = 64  # "flat": RssAnon grows by at most this (allocator noise)
PER_KEY_SCAN_US = 10  # "a small per-key scan": CPU per unchanged key per swap
IDLE_ALLOWED_PER_MIN = 2  # the resync timer (every 300 s) and a margin of one


def sh(*argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=REPO).stdout.strip()
    except OSError:
        return ""


def git_state():
    """(describe, full hash, `git status --porcelain` of tracked files)."""
    return (sh("git", "describe", "--always", "--dirty", "--tags"), sh("git", "rev-parse", "HEAD"),
            sh("git", "status", "--porcelain", "--untracked-files=no"))


def fs_info(path):
    src = sh("findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", str(path))
    return src or sh("stat", "-f", "-c", "%T", str(path))


def fs_type(path):
    return sh("stat", "-f", "-c", "%T", str(path))


def ok(x):
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def ms(x):
    if not ok(x):
        return "n/a"
    return f"{x:.0f} ms" if x >= 100 else f"{x:.1f} ms" if x >= 10 else f"{x:.2f} ms"


def secs(x):
    return f"{x:.2f} s" if ok(x) else "n/a"


def mib(kib):
    return f"{kib / 1024:.2f} MiB" if ok(kib) else "n/a"


def ratio(a, b):
    """a/b as "2.5x", or "1/40" when a is the smaller."""
    if not (ok(a) and ok(b)) or b <= 0:
        return "n/a"
    if a <= 0:
        return "0x"
    q = a / b
    return f"{q:.1f}x" if q >= 0.95 else f"1/{1 / q:.0f}" if q < 0.1 else f"1/{1 / q:.1f}"


def verdict(cond):
    if cond is None:
        return "not run"
    return "**met**" if cond else "**missed**"


def commas(n):
    return f"{n:,}"


def render(h, fs):
    r, cfg, quick = h.r, h.cfg, h.args.quick
    rows = []

    def row(goal, measure, value, ref="", rat="", threshold="", v=""):
        rows.append((goal, measure, value, ref, rat, threshold, v))

    mode = "QUICK" if quick else "full"
    ref_swap = r.get("ref_swap_ms")
    # Goal 1 ---------------------------------------------------------------
    for n, limit in ((100, 5), (1000, 5), (4000, 10)):
        key = f"swap_ms_{n}"
        if key not in r:
            row(1, f"swap → all three `ca.crt` renamed, {commas(n)} registries", "not run" +
                (" (QUICK)" if quick and n not in cfg["sizes"] else ""), "", "", f"p99 < {limit} ms", "not run")
            continue
        med, p99 = r[key]
        refs = f"physical limit (3 files, per-file fsync): {ms(ref_swap[0])} / {ms(ref_swap[1])}" if ref_swap else ""
        row(1, f"swap → all three `ca.crt` renamed, {commas(n)} registries ({r[f'swap_n_{n}']} swaps; median / p99)",
            f"{ms(med)} / {ms(p99)}", refs, ratio(med, ref_swap[0]) + " (median)" if ref_swap else "",
            f"p99 < {limit} ms", verdict(p99 < limit))
    cpus = {n: r[f"swap_cpu_ms_{n}"] for n in cfg["sizes"] if f"swap_cpu_ms_{n}" in r}
    if cpus:
        lo, hi = min(cpus), max(cpus)
        per_key = (cpus[hi] - cpus[lo]) * 1000 / (hi - lo) if hi > lo else float("nan")
        files = " / ".join(f"{r[f'swap_files_{n}']:.1f}" for n in cpus)
        row(1, "agent CPU per swap at " + " / ".join(commas(n) for n in cpus) + " registries",
            " / ".join(ms(cpus[n]) for n in cpus), f"files written per swap: {files}",
            f"{per_key:.1f} µs per unchanged key" if ok(per_key) else "",
            f"≤ {PER_KEY_SCAN_US} µs per unchanged key (bytes changed are the same at every size)",
            verdict(per_key <= PER_KEY_SCAN_US) if ok(per_key) else "not run")
    # Goal 2 ---------------------------------------------------------------
    c = r.get("cold")
    if c:
        n, runs = c["n"], c["runs"]
        nt, a, b = (bl.median(runs[k]) for k in ("nodetrust", "A", "B"))
        best = min(x for x in (a, b) if ok(x)) if ok(a) or ok(b) else float("nan")
        label = f"cold `--once`, {commas(n)} registries ({commas(3 * n)} files), {c['reps']} run(s); median / max"
        if quick:
            label += f" — QUICK: {commas(n)} registries, not 4,000"
        row(2, label, f"{secs(nt)} / {secs(max(runs['nodetrust']))}",
            f"A (fsync per file): {secs(a)}; B (2 syncfs): {secs(b)}", ratio(nt, best) + " of the best",
            "≤ 2.0x the best reference", verdict(nt <= 2 * best) if ok(nt) and ok(best) else "missed (failed)")
        if c["cpu"]:
            row(2, "cold `--once`: agent CPU, peak RSS", f"{secs(bl.median(c['cpu']))} CPU, "
                f"{mib(max(c['peak']))} peak", f"A/B ratio {ratio(a, b)}", "", "", "")
    else:
        row(2, "cold `--once`, 4,000 registries", "not run", "", "", "≤ 2.0x the best reference", "not run")
    # Goal 3 ---------------------------------------------------------------
    big = max(cfg["strace_sizes"])
    for n in cfg["strace_sizes"]:
        s = r.get(f"strace_{n}")
        if not s:
            continue
        note = "" if n == 4000 else (" — QUICK: 1,000 registries, not 4,000" if quick else "")
        row(3 if n == big else "", f"no-op SIGHUP resync, {commas(n)} registries: syscalls (`strace -c -f`){note}",
            f"{s['writes']} write ({s['file_writes']} to files, {s['log_writes']} to the log), "
            f"{s['renames']} rename, {s['fsyncs']} fsync/fdatasync/syncfs; {s['openat']} openat, "
            f"{commas(s['total'])} syscalls in all", "", "", "0 writes to files, 0 renames, 0 fsyncs",
            verdict(s["file_writes"] == 0 and s["renames"] == 0 and s["fsyncs"] == 0) if n == big else "")
    for n in cfg["sizes"]:
        if f"resync_ms_{n}" not in r:
            continue
        med, p99 = r[f"resync_ms_{n}"]
        last = n == big
        row(3 if last else "", f"no-op resync wall, SIGHUP → `STATUS=`, {commas(n)} registries "
            f"({r[f'rss_resyncs_{n}'][2]} resyncs; median / p99)", f"{ms(med)} / {ms(p99)}",
            f"agent CPU per resync {ms(r[f'resync_cpu_ms_{n}'])}", "", "< 100 ms" if last else "",
            verdict(p99 < 100) if last else "")
    if 4000 not in cfg["sizes"]:
        row(3, "no-op resync, 4,000 registries", "not run (QUICK)", "", "", "0 writes, < 100 ms", "not run")
    # Goal 4 ---------------------------------------------------------------
    for n, limit in ((1000, 4), (4000, 12)):
        if f"rss_first_{n}" not in r:
            row(4, f"RssAnon at {commas(n)} registries", "not run (QUICK)", "", "", f"< {limit} MiB", "not run")
            continue
        peak = max(r[f"rss_first_{n}"], r[f"rss_swaps_{n}"][2], r[f"rss_resyncs_{n}"][1], r[f"rss_end_{n}"])
        row(4, f"RssAnon at {commas(n)} registries: after the first sync / highest seen",
            f"{mib(r[f'rss_first_{n}'])} / {mib(peak)}", "", "", f"< {limit} MiB", verdict(peak < limit * 1024))
    for n in cfg["sizes"]:
        first, last, _ = r.get(f"rss_swaps_{n}", (None, None, None))
        if first is None or n != min(cfg["sizes"]):
            continue
        k = r[f"swap_n_{n}"]
        row(4, f"RssAnon across {commas(k)} single-key swaps, {commas(n)} registries: first → last",
            f"{mib(first)} → {mib(last)} ({last - first:+d} KiB)", "", "",
            f"flat (≤ {GROWTH_FLAT_KIB} KiB growth)" + ("" if k >= 1000 else f"; QUICK: {k} swaps, not 1,000"),
            verdict(last - first <= GROWTH_FLAT_KIB))
    for n in cfg["sizes"]:
        first, last, k = r.get(f"rss_resyncs_{n}", (None, None, None))
        if first is None or n == min(cfg["sizes"]):
            continue
        row(4, f"RssAnon across {k} SIGHUP resyncs, {commas(n)} registries: first → last",
            f"{mib(first)} → {mib(last)} ({last - first:+d} KiB)", "", "", f"flat (≤ {GROWTH_FLAT_KIB} KiB growth)",
            verdict(last - first <= GROWTH_FLAT_KIB))
    # Goal 5 ---------------------------------------------------------------
    idle = r.get("idle")
    if idle:
        allowed = math.ceil(idle["seconds"] / 60 * IDLE_ALLOWED_PER_MIN)
        row(5, f"idle {idle['seconds']} s, 100 registries, health on, reporting off: wakeups "
            "(voluntary + involuntary context switches)",
            f"{idle['wakeups']} ({idle['voluntary']} + {idle['nonvoluntary']}); CPU {ms(idle['cpu_ms'])}; "
            f"files written {idle['files']:.0f}",
            f"`strace -c` over {idle['strace_s']} s: {idle['epoll']} epoll_wait, {idle['syscalls']} syscalls",
            "", f"≤ {allowed} (resync timer every {300} s, plus one)", verdict(idle["wakeups"] <= allowed))
    else:
        row(5, "idle wakeups", "not run", "", "", "", "not run")
    # Goal 6 ---------------------------------------------------------------
    agg = r.get("aggregator")
    if agg:
        def f(k):
            try:
                return float(agg[k])
            except (KeyError, ValueError):
                return None
        rps, p99, cpu = f("reports_per_s"), f("summary_p99_ms"), f("cpu_us_per_report")
        row(6, f"aggregator at {agg.get('nodes', '?')} nodes of {agg.get('registries', '?')} registries: reports "
            f"accepted per second (wrk, 8 keep-alive connections, {agg.get('seconds', '?')} s), with "
            f"GET /api/v1/summary every 50 ms", f"{rps:,.0f} reports/s" if rps is not None else "unknown key",
            f"aggregator CPU {cpu:.0f} µs per report ({agg.get('cpu_share', '?')} of a core; wrk used "
            f"{agg.get('wrk_cpu_share', '?')})" if cpu is not None else "", "",
            "≥ 20,000 reports/s", verdict(rps >= 20000) if rps is not None else "unknown key")
        row(6, "GET /api/v1/summary under that load, p50 / p99",
            f"{agg.get('summary_p50_ms', '?')} / {agg.get('summary_p99_ms', '?')} ms", "", "", "p99 < 20 ms",
            verdict(p99 < 20) if p99 is not None else "unknown key")
        before, after = f("rss_before_gets_mib"), f("rss_after_gets_mib")
        routes = sorted({k[len("get_"):-len("_n")] for k in agg if k.startswith("get_") and k.endswith("_n")})
        if before is not None and after is not None:
            row(6, f"aggregator RSS across {agg.get('get_requests', '?')} requests of each GET route "
                f"({', '.join(routes)}): before → after", f"{before:.1f} → {after:.1f} MiB "
                f"({(after - before) * 1024:+.0f} KiB)", f"RSS after the load {agg.get('rss_after_load_mib', '?')} MiB",
                "", f"flat (≤ {GROWTH_FLAT_KIB} KiB growth)", verdict((after - before) * 1024 <= GROWTH_FLAT_KIB))
    else:
        row(6, "aggregator (bench/aggregator-load.py)", "not run", "", "", "≥ 20,000 reports/s; summary p99 < 20 ms",
            "not run")

    # Baselines: node-ca's loop ------------------------------------------------
    base = []
    for n in (100, 1000):
        one = r.get(f"nodeca_{n}_1")
        if not one:
            why = "not run (QUICK)" if quick and n not in cfg["nodeca_sizes"] else "not run"
            base.append((f"everything at {commas(n)} registries", "", why, why, ""))
            continue
        cycle60 = 60 + one["pass_s"]  # the same pass, then 60 s of sleep
        m60 = r.get(f"nodeca60_{n}")
        if m60:
            l60 = m60["lat"]
            src60 = f"measured, {m60['swaps']} staggered swaps over one interval"
        else:
            l60 = (cycle60 * 1000 / 2, cycle60 * 1000 * 0.99)
            src60 = (f"derived: latency is uniform over one cycle (60 s + the {one['pass_s']:.1f} s pass): "
                     "median C/2, p99 0.99 C")
        nt = r.get(f"swap_ms_{n}")
        ntv = f"{ms(nt[0])} / {ms(nt[1])}" if nt else "not run"
        base.append((f"propagation latency, {commas(n)} registries (median / p99)", ntv,
                     f"{ms(one['lat'][0])} / {ms(one['lat'][1])} " +
                     (f"(derived from the measured cycle C = {one['cycle']:.2f} s: uniform over C; "
                      f"{len(one['measured'])} swap(s) measured: "
                      f"{', '.join(ms(x) for x in one['measured'])})" if one.get("derived")
                      else f"({one['swaps']} swaps)"),
                     f"{ms(l60[0])} / {ms(l60[1])} ({src60})",
                     (f"{ratio(nt[1], one['lat'][1])} / {ratio(nt[1], l60[1])} (p99)" if nt else "")))
        # nodetrust with nothing changing: the idle rate, and a resync every 300 s.
        rs_cpu = r.get(f"resync_cpu_ms_{n}")
        rs_files = r.get(f"resync_files_{n}", 0)
        nt_cpu_h = nt_files_h = None
        if idle and rs_cpu is not None:
            nt_cpu_h = idle["cpu_ms"] / 1000 * 3600 / idle["seconds"] + 3600 / 300 * rs_cpu / 1000
            nt_files_h = idle["files"] * 3600 / idle["seconds"] + 3600 / 300 * rs_files
        passes60 = 3600 / cycle60
        base.append((f"files written per hour, nothing changing, {commas(n)} registries",
                     f"{nt_files_h:.0f} (derived: idle + 12 resyncs)" if nt_files_h is not None else "not run",
                     f"{one['writes_per_h']:.0f} (`cp -u` skips unchanged)",
                     f"{one['writes_per_pass'] * passes60:.0f} (per pass × {passes60:.0f} passes/h)", ""))
        swf = r.get(f"swap_files_{n}")
        base.append((f"files written per one-key change, {commas(n)} registries",
                     f"{swf:.1f} (3 targets)" if swf is not None else "not run",
                     f"{one['files_per_change']:.0f} (1 target; the kubelet rewrites every key's file, "
                     "so `cp -u` copies all)", "same as 1 s", ratio(swf, one["files_per_change"])))
        base.append((f"CPU per hour, nothing changing, {commas(n)} registries",
                     f"{secs(nt_cpu_h)} (derived: idle rate + 12 resyncs × {ms(rs_cpu)})"
                     if nt_cpu_h is not None else "not run",
                     f"{secs(one['cpu_per_h'])} (measured over {one['window']:.0f} s; a pass takes "
                     f"{one['pass_s']:.2f} s)",
                     f"{secs(one['cpu_per_pass'] * passes60)} (derived: CPU per pass × {passes60:.0f} passes/h)",
                     f"{ratio(nt_cpu_h, one['cpu_per_h'])} / {ratio(nt_cpu_h, one['cpu_per_pass'] * passes60)}"
                     if nt_cpu_h is not None else ""))

    # The document ---------------------------------------------------------------
    commit, full, dirty = h.git
    mem = next((l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines()
                if l.startswith("MemTotal")), "?")
    cpu_model = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                      if l.startswith("model name")), platform.machine())
    out = []
    out.append("# Benchmark results (`make bench`" + (" QUICK=1" if quick else "") + ")\n")
    out.append("Written by `bench/run.py`; the numbers are recorded, never asserted. "
               "How to run and what each row means: [README.md](README.md).\n")
    out.append(f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; "
               f"mode: {mode}; harness wall time: {h.elapsed:.0f} s")
    out.append(f"- commit: `{commit}` ({full}), {'dirty: ' + str(len(dirty.splitlines())) + ' tracked file(s) changed' if dirty else 'clean'}")
    out.append(f"- agent: `{h.agent_bin}`; aggregator: `{h.agg_bin}`")
    out.append(f"- machine: {os.cpu_count()} CPUs ({cpu_model}), {int(mem) / 1024 / 1024:.1f} GiB memory, "
               f"kernel {platform.release()}")
    out.append(f"- target directory (every file the agent and the references write): `{h.args.dir}` on `{fs}`; "
               f"the config map volumes the bench swaps: "
               f"`{'/dev/shm` (tmpfs)' if h.vtmp != h.tmp else h.args.dir + '`'}")
    out.append(f"- load average (1/5/15 min) at start {'/'.join(f'{x:.2f}' for x in h.load_start)}, at end "
               f"{'/'.join(f'{x:.2f}' for x in h.load_end)} (the machine is shared; other jobs ran)")
    out.append("")
    out.append("## Goals (issue 14)\n")
    out.append("| goal | measure | nodetrust | reference, same run | ratio | threshold | verdict |")
    out.append("|---|---|---|---|---|---|---|")
    for g, m, v, rf, rt, th, vd in rows:
        out.append(f"| {g} | {m} | {v} | {rf} | {rt} | {th} | {vd} |")
    out.append("")
    out.append("## Side by side: node-ca's poll-and-copy loop (`bench/node-ca-loop.sh`)\n")
    out.append("| measure | nodetrust | node-ca every 1 s | node-ca every 60 s | nodetrust ÷ node-ca (1 s / 60 s) |")
    out.append("|---|---|---|---|---|")
    for b in base:
        out.append("| " + " | ".join(b) + " |")
    if not base:
        out.append("| not run | | | | |")
    out.append("")
    out.append("node-ca writes one target (docker's `certs.d`) in place, without temp file or fsync; nodetrust "
               "writes three, each atomically and durably.")
    if quick:
        out.append("QUICK: fewer registries (no 4,000 row but the ones named), fewer swaps and resyncs, shorter "
                   "idle and baseline windows; node-ca's 60 s latency is derived, not measured.")
    out.append("")
    if h.notes or h.errors:
        out.append("## Notes\n")
        out.extend(f"- harness error in {e}" for e in h.errors)
        out.extend(f"- {n}" for n in h.notes)
        out.append("")
    out.append("## Time per section\n")
    out.extend(f"- {what}: {t:.0f} s" for what, t in h.timings)
    out.append("")
    out.append("## Commands (`$BENCH` is the run's temp directory)\n")
    out.append("```")
    out.append(f"{'bench/run.py --quick' if quick else 'bench/run.py'}   # make bench{' QUICK=1' if quick else ''}")
    for what, cmd in h.commands:
        out.append(f"# {what}")
        out.append(cmd)
    out.append("```")
    out.append("")
    out.append("## RESULT lines\n")
    out.append("```")
    out.extend(h.results)
    out.append("```")
    return "\n".join(out) + "\n"
