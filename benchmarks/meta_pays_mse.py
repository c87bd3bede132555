"""What the study's fits become in time: MSE(T) of every arm against the truth, 1D families.

The measurement is :func:`madng_lite.payoff_mse.evolve_family` (its docstring gives the PDEs, the
reference and its check); this script runs it on the study's 1D families with the study's
settings, prints one row per family and arm, and writes ``--out`` after every family.
``--resume`` keeps the families an existing ``--out`` already holds (written atomically; a file made
with other settings is refused, never mixed in or overwritten).

    OMP_NUM_THREADS=1 python benchmarks/meta_pays_mse.py --families fourier-3 fourier-10 fourier-30 \\
        --out results/meta_pays_mse_fourier.json
    OMP_NUM_THREADS=1 python benchmarks/meta_pays_mse.py --families solitons-2 solitons-3 solitons-4 \\
        --out results/meta_pays_mse_solitons.json
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from madng_lite.payoff_mse import EVOLVE_ARMS, evolve_family, ladder_pde
from madng_lite.io import resumable_results, write_results
from madng_lite.pipeline.context import git_commit

FAMILIES = ["fourier-3", "fourier-10", "fourier-30", "solitons-2", "solitons-3", "solitons-4"]
SETTINGS = ("n_evolve", "n_points", "tols", "n_train", "n_val", "adam", "lbfgs", "lm", "seed")


def _fmt(v: float | None) -> str:
    return "blow-up" if v is None or not math.isfinite(v) else f"{v:.2e}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", default=FAMILIES)
    ap.add_argument("--n-evolve", type=int, default=8, help="new samples evolved per family (the study has 8)")
    ap.add_argument("--n-points", type=int, default=None, help="NG sample points (default: the fit grid)")
    ap.add_argument("--tols", nargs="+", type=float, default=[1e-6, 1e-8, 1e-10])
    ap.add_argument("--n-train", type=int, default=64)
    ap.add_argument("--n-val", type=int, default=8)
    ap.add_argument("--adam", type=int, default=1000)
    ap.add_argument("--lbfgs", type=int, default=300)
    ap.add_argument("--lm", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--resume", action="store_true", help="keep the families --out already holds")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    args = ap.parse_args()
    for f in args.families:
        ladder_pde(f)   # a clear error before any work
    settings = {k: getattr(args, k) for k in SETTINGS}
    fams: list[dict] = []
    if args.resume:
        try:
            fams = [f for f in resumable_results(args.out, "families", settings) if f["family"] in args.families]
        except ValueError as e:
            ap.error(str(e))
        print("resuming; done:", ", ".join(f["family"] for f in fams) or "none")
    meta = {"command": "python benchmarks/meta_pays_mse.py " + " ".join(sys.argv[1:]), "git_commit": git_commit(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, **settings}
    print("| family | arm | fit MSE (median) | MSE(0) on the fine grid | MSE(T) | blow-ups | evolve s (median) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.families:
        if any(f["family"] == name for f in fams):
            continue
        bar = tqdm(total=len(EVOLVE_ARMS) * args.n_evolve, desc=f"{name}: evolutions", leave=False,
                   disable=args.no_progress)
        fams.append(evolve_family(name, args.n_evolve, args.n_points, n_train=args.n_train, n_val=args.n_val,
                                  adam=args.adam, lbfgs=args.lbfgs, lm=args.lm, tols=args.tols, seed=args.seed,
                                  on_evolved=lambda arm, i: bar.update(), progress=not args.no_progress))
        bar.close()
        f = fams[-1]
        for arm, a in f["arms"].items():
            fit = statistics.median(r["fit_mse"] for r in a["samples"])
            ev = statistics.median(r["evolve_seconds"] for r in a["samples"])
            print(f"| {name} | {arm} | {fit:.2e} | {_fmt(a['mse0_median'])} | {_fmt(a['mseT_median'])} "
                  f"| {a['diverged']} of {len(a['samples'])} | {ev:.1f} |", flush=True)
        if args.out:
            order = {n: i for i, n in enumerate(args.families)}
            fams.sort(key=lambda q: order[q["family"]])
            write_results(args.out, meta, "families", fams)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
