"""When does meta-learning pay? Time to a fit tolerance, five arms, families of growing complexity.

The study itself is :func:`madng_lite.payoff.study_family` (its docstring defines the families, the
arms and the break-even ``N*``); this script runs it on the ladders, prints one table row per
family and tolerance, and writes ``--out`` after every family. ``--resume`` keeps the families an
existing ``--out`` already holds (a long run can be stopped and restarted; the file is written
atomically, and one made with other settings is refused, never mixed in or overwritten).

    OMP_NUM_THREADS=1 python benchmarks/meta_pays_study.py --out results/meta_pays_study.json
    OMP_NUM_THREADS=1 python benchmarks/meta_pays_study.py --families ac2d-1 ac2d-2 ac2d-4 \\
        --out results/meta_pays_study_ac2d.json
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
from pathlib import Path

import torch

from madng_lite.payoff import parse_family, study_family
from madng_lite.io import resumable_results, write_results
from madng_lite.pipeline.context import git_commit

FAMILIES = ["fourier-3", "fourier-10", "fourier-30", "solitons-2", "solitons-3", "solitons-4"]
SETTINGS = ("tols", "n_train", "n_val", "adam", "lbfgs", "lm", "seed")


def _fmt(v: float) -> str:
    return "-" if not math.isfinite(v) else f"{v:.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", default=FAMILIES)
    ap.add_argument("--tols", nargs="+", type=float, default=[1e-6, 1e-8, 1e-10])
    ap.add_argument("--n-train", type=int, default=64)
    ap.add_argument("--n-val", type=int, default=8)
    ap.add_argument("--adam", type=int, default=1000)
    ap.add_argument("--lbfgs", type=int, default=300)
    ap.add_argument("--lm", type=int, default=100, help="Levenberg-Marquardt steps at most, every arm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--resume", action="store_true", help="keep the families --out already holds")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    args = ap.parse_args()
    for f in args.families:
        parse_family(f)   # a clear error before any work
    settings = {k: getattr(args, k) for k in SETTINGS}
    fams: list[dict] = []
    if args.resume:
        try:
            fams = [f for f in resumable_results(args.out, "families", settings) if f["family"] in args.families]
        except ValueError as e:
            ap.error(str(e))
        print("resuming; done:", ", ".join(f["family"] for f in fams) or "none")
    meta = {"command": "python benchmarks/meta_pays_study.py " + " ".join(sys.argv[1:]), "git_commit": git_commit(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, **settings}
    print("| family | tol | reached L / LM / random / fresh / L batched | s to tol (same order) | pretrain s "
          "| N* | N* batched |")
    print("|---|---|---|---|---|---|---|")
    for name in args.families:
        if any(f["family"] == name for f in fams):
            continue
        fams.append(study_family(name, args.n_train, args.n_val, adam=args.adam, lbfgs=args.lbfgs, lm=args.lm,
                                 tols=args.tols, seed=args.seed, progress=not args.no_progress))
        f = fams[-1]
        for r in f["rows"]:
            a = r["arms"]
            print(f"| {name} | {r['tol']:g} | {' / '.join(str(v['reached']) for v in a.values())} of {f['n_val']} | "
                  f"{' / '.join(_fmt(v['seconds_to_tol']) for v in a.values())} | {f['pretrain_seconds']:.0f} | "
                  f"{r['n_star']:.3g} | {r['n_star_batched']:.3g} |", flush=True)
        if args.out:
            order = {n: i for i, n in enumerate(args.families)}
            fams.sort(key=lambda q: order[q["family"]])
            write_results(args.out, meta, "families", fams)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
