"""Which fit budget? Time to tolerance of every arm against the Adam iterations before Levenberg-Marquardt.

The fit of a new sample (:func:`madng_lite.fitting.fit_sample`) runs Adam, then Levenberg-Marquardt,
stopping at the tolerance. How many Adam steps should come first? This script answers on the
*validation* samples of each benchmark, with the decoder its validation run pretrained
(``results/val/NAME/pretrained.pt``): for each Adam budget and each arm (MAD from the nearest latent,
from a random latent, a fresh network) it records whether the tolerance was reached and the CPU
time of the process until then (the machine is shared; CPU time does not count others' turns).

    OMP_NUM_THREADS=1 python benchmarks/fit_budget_study.py --out results/fit_budget_study.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from madng_lite.data import make_family
from madng_lite.decoder import Decoder
from madng_lite.fitting import fit_sample
from madng_lite.io import read_checkpoint
from madng_lite.mad import nearest_latent, random_latent
from madng_lite.pipeline import FULL
from madng_lite.pipeline.context import git_commit
from madng_lite.pipeline.context import fit_index

ROOT = Path(__file__).resolve().parents[1]


def study(name: str, runs: Path, budgets: list[int], n_val: int, lm_iters: int) -> dict:
    cfg = FULL[name]
    ck = read_checkpoint(runs / name / "pretrained.pt")
    from madng_lite.io import load_checkpoint
    dec, Z, _ = load_checkpoint(runs / name / "pretrained.pt")
    scale = ck["extra"]["report"]["data_scale"]
    fam = make_family(name, cfg.n_train + n_val, seed=ck["config"]["seed"], n_grid=cfg.n_grid,
                      stochastic=ck["config"]["stochastic"], T=cfg.T)
    idx = fit_index(cfg.n_grid, fam.dim, cfg.fit_stride)
    x, U0t = fam.x[idx], fam.U0[: cfg.n_train, idx]
    train = "z" if cfg.ft_mode == "L" else "z+theta"
    rows = []
    for adam in budgets:
        for arm in ("nearest", "random", "fresh"):
            cpu, reached, iters = [], 0, []
            for k in range(cfg.n_train, cfg.n_train + n_val):
                u0 = fam.U0[k, idx]
                seed = 7919 * (k + 1)
                kw = dict(adam_iters=adam, lr=cfg.ft_lr, lm_iters=lm_iters, tol=cfg.ft_tol, data_scale=scale)
                t0 = time.process_time()
                if arm == "fresh":
                    r = fit_sample(Decoder(fam.box, 0, cfg.width, cfg.depth, cfg.n_freq, seed=seed), x, u0, None,
                                   train="theta", **kw)
                else:
                    z0 = nearest_latent(U0t, Z, u0)[0] if arm == "nearest" else random_latent(cfg.latent_dim, seed)
                    r = fit_sample(dec, x, u0, z0, train=train, lam=cfg.lam, **kw)
                cpu.append(time.process_time() - t0 if r.reached else float("inf"))
                reached += r.reached
                iters.append(r.total_iters)
            rows.append({"adam_iters": adam, "arm": arm, "reached": reached, "n": n_val,
                         "cpu_s_to_tol": cpu, "median_cpu_s": statistics.median(cpu),
                         "median_iters": statistics.median(iters)})
            print(f"| {name} | {adam} | {arm} | {reached}/{n_val} | {statistics.median(cpu):.2f} | "
                  f"{statistics.median(iters):.0f} |", flush=True)
    return {"ft_tol": cfg.ft_tol, "lm_iters": lm_iters, "rows": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmarks", nargs="+", default=["kdv", "burgers", "ac1d", "ac2d"])
    ap.add_argument("--runs", default=str(ROOT / "results" / "val"))
    ap.add_argument("--budgets", nargs="+", type=int, default=[0, 100, 300, 1000, 2000])
    ap.add_argument("--n-val", type=int, default=5, help="validation samples per benchmark")
    ap.add_argument("--lm-iters", type=int, default=100)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    load0 = os.getloadavg()
    print("| benchmark | Adam iterations | arm | reached | median CPU s to tolerance | median iterations |")
    print("|---|---|---|---|---|---|")
    out = {}
    for name in args.benchmarks:
        if (Path(args.runs) / name / "pretrained.pt").exists():
            out[name] = study(name, Path(args.runs), args.budgets, args.n_val, args.lm_iters)
    meta = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "git_commit": git_commit(), "threads": torch.get_num_threads(),
            "load_average_start": load0, "load_average_end": os.getloadavg()}
    if args.out:
        Path(args.out).write_text(json.dumps({"meta": meta, "results": out}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
