"""Wall time of the quick CLI runs of every benchmark (the project's goal: each under a minute on a CPU).

Each benchmark runs ``python -m madng_lite run NAME --quick`` in a fresh process (start-up
included), ``--repeats`` times, into a temporary folder; the table gives the median and the
spread, the load average before and after, and whether the median is under the goal. Timings are
a benchmark's business, not a test's: a loaded machine decides them.

    OMP_NUM_THREADS=1 python benchmarks/cli_quick_bench.py --out results/cli_quick_bench.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 60.0
RUNS = {"kdv": [], "burgers": ["--stochastic", "--baselines"], "ac1d": ["--stochastic"], "ac2d": []}


def time_run(name: str, extra: list[str]) -> float:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "madng_lite", "run", name, "--quick", "--out", out, *extra],
                       cwd=ROOT, check=True, capture_output=True, text=True)
        return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmarks", nargs="+", default=list(RUNS), choices=list(RUNS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None, help="results JSON to write")
    args = ap.parse_args()
    load0 = os.getloadavg()
    rows = []
    print(f"| benchmark | flags | median s | min s | max s | under {GOAL_S:.0f} s |")
    print("|---|---|---|---|---|---|")
    for name in args.benchmarks:
        ts = [time_run(name, RUNS[name]) for _ in range(args.repeats)]
        med = statistics.median(ts)
        rows.append({"benchmark": name, "flags": RUNS[name], "seconds": ts, "median": med,
                     "under_goal": med < GOAL_S})
        print(f"| {name} | {' '.join(RUNS[name]) or '-'} | {med:.1f} | {min(ts):.1f} | {max(ts):.1f} | "
              f"{'yes' if med < GOAL_S else 'no'} |")
    meta = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "goal_s": GOAL_S,
            "load_average_start": load0, "load_average_end": os.getloadavg(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "machine": platform.machine(),
            "python": platform.python_version()}
    print(f"load average: start {load0[0]:.2f}, end {meta['load_average_end'][0]:.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
