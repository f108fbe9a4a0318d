#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""containerd hosts.toml on a 100-registry ..data swap: never vs always.

Runs bench/agent-rss.py --bare (no health endpoint, no reporting, so the
difference is the agent's own work) with --containerd-hosts-toml never and
always, alternating, ROUNDS times each, and prints the medians of each
run's numbers side by side. With always, every registry's containerd
directory also holds our hosts.toml: each sync reads and hashes 100 more
small files, and a first sync writes 100 more. Records numbers; asserts
nothing.
"""

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def run(mode, registries, swaps):
    p = subprocess.run([sys.executable, str(HERE / "agent-rss.py"), "--bare", "--registries", str(registries),
                        "--swaps", str(swaps), "--rotations", "5", "--hosts-toml", mode],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise SystemExit(f"agent-rss.py --hosts-toml {mode} failed:\n{p.stdout}\n{p.stderr}")
    line = next(l for l in p.stdout.splitlines() if l.startswith("RESULT "))
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--registries", type=int, default=100)
    ap.add_argument("--swaps", type=int, default=50)
    args = ap.parse_args()

    results = {"never": [], "always": []}
    for _ in range(args.rounds):
        for mode in ("never", "always"):
            results[mode].append(run(mode, args.registries, args.swaps))

    print(f"..data swap -> all three ca.crt renamed, {args.registries} registries, one CA changed per swap, "
          f"{args.swaps} swaps per run, {args.rounds} runs each, interleaved; medians over runs")
    print(f"{'':<28} {'never':>10} {'always':>10} {'added':>10}")
    for key, label, unit in (("median_all_ms", "swap -> files, median", "ms"),
                             ("p95_all_ms", "swap -> files, p95", "ms"),
                             ("cpu_per_swap_ms", "agent CPU per swap", "ms"),
                             ("rss_anon_kib", "RssAnon after the swaps", "KiB")):
        a = statistics.median(r[key] for r in results["never"])
        b = statistics.median(r[key] for r in results["always"])
        print(f"{label:<28} {a:>7.2f} {unit:<2} {b:>7.2f} {unit:<2} {b - a:>+7.2f} {unit}")


if __name__ == "__main__":
    main()
