"""Throughput of many queries at once: batched fine-tuning and batched evolution against loops of single runs.

For each benchmark, the decoder a validation run pretrained (``results/val/NAME/pretrained.pt``,
the full-size network) fine-tunes the latents of B samples of the family for a fixed number of
Adam iterations (a tolerance no run reaches, so both do the same work), once with
:func:`madng_lite.batch.fit_latents` and once sample by sample with
:func:`madng_lite.fitting.fit_sample`. It prints samples per second for both, their ratio, and the
largest difference of the results (relative; next to it, for the samples that differ most, the
difference between the one-at-a-time fit and the same fit with its points reordered: the rounding
sensitivity of the problem itself), all measured in one run on one thread, in CPU
time of the process (the machine is shared). With ``--evolve-steps`` it also evolves B folded
decoders (the pretrained decoder with B training latents folded in) by Neural Galerkin for that
many RK4 steps with the benchmark's settings, batched (:func:`madng_lite.batch_ng.evolve_batch`)
and one by one (:class:`madng_lite.galerkin.NeuralGalerkin`), and compares the functions they
represent at the end (1-D benchmarks).

``--lm N`` fine-tunes by N Levenberg-Marquardt steps instead of Adam (the fit of the meta-learning
study); the batched run then solves the B small Gauss-Newton systems as one batched Cholesky.

    OMP_NUM_THREADS=1 python benchmarks/batch_bench.py --out results/batch_bench.json
    OMP_NUM_THREADS=1 python benchmarks/batch_bench.py --lm 20 --out results/batch_bench_lm.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from madng_lite.batch import fit_latents
from madng_lite.data import make_family
from madng_lite.fitting import fit_sample
from madng_lite.io import load_checkpoint
from madng_lite.mad import nearest_latent
from madng_lite.pipeline import FULL
from madng_lite.pipeline.context import git_commit
from madng_lite.pipeline.context import fit_index

ROOT = Path(__file__).resolve().parents[1]


def bench(name: str, runs: Path, B: int, iters: int, lm: int = 0) -> dict:
    cfg = FULL[name]
    dec, Z, _ = load_checkpoint(runs / name / "pretrained.pt")
    scale = torch.load(runs / name / "pretrained.pt", weights_only=True)["payload"]["extra"]["report"]["data_scale"]
    fam = make_family(name, cfg.n_train + B, seed=0, n_grid=cfg.n_grid, stochastic=name != "kdv", T=cfg.T)
    idx = fit_index(cfg.n_grid, fam.dim, cfg.fit_stride)
    x, U0 = fam.x[idx], fam.U0[cfg.n_train:, idx]
    Z0 = torch.stack([nearest_latent(fam.U0[: cfg.n_train, idx], Z, u)[0] for u in U0])
    # Adam for ``iters`` steps, or (lm > 0) Levenberg-Marquardt for ``lm`` steps, the fit the study uses
    kw = dict(adam_iters=0 if lm else iters, lm_iters=lm, lr=cfg.ft_lr, tol=1e-300, lam=cfg.lam, data_scale=scale)
    # CPU time of this process: on a shared machine it does not count the time others hold the core
    t0 = time.process_time()
    batched = fit_latents(dec, x, U0, Z0, **kw)
    t_batch = time.process_time() - t0
    t0 = time.process_time()
    ones = [fit_sample(dec, x, u, z, train="z", **kw) for u, z in zip(U0, Z0)]
    t_loop = time.process_time() - t0
    dzs = [float((batched["z"][b] - o.z).norm() / o.z.norm()) for b, o in enumerate(ones)]
    # the yardstick of "identical": the same one-at-a-time fit with the points in another order (the
    # same problem, other rounding), for the samples where batched and looped differ most
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(1))
    worst = sorted(range(B), key=lambda b: -dzs[b])[:5]
    dz_perm = [float((fit_sample(dec, x[perm], U0[b][perm], Z0[b], train="z", **kw).z - ones[b].z).norm()
                     / ones[b].z.norm()) for b in worst]
    return {"B": B, "adam_iters": kw["adam_iters"], "lm_iters": lm, "points": x.shape[0], "p": dec.n_params, "seconds_batched": t_batch,
            "seconds_loop": t_loop, "throughput_ratio": t_loop / t_batch, "max_rel_diff_z": max(dzs),
            "median_rel_diff_z": sorted(dzs)[B // 2], "worst_samples": worst,
            "rel_diff_z_worst": [dzs[b] for b in worst], "rel_diff_z_reordered": dz_perm}


def bench_evolve(name: str, runs: Path, B: int, steps: int) -> dict:
    """B folded decoders evolved for ``steps`` RK4 steps, batched and one by one (CPU time)."""
    from madng_lite.batch_ng import evolve_batch
    from madng_lite.derivatives import FastMLP
    from madng_lite.galerkin import NeuralGalerkin

    cfg = FULL[name]
    dec, Z, _ = load_checkpoint(runs / name / "pretrained.pt")
    fam = make_family(name, B, seed=0, n_grid=cfg.n_grid, stochastic=name != "kdv", T=cfg.T)
    folded = [dec.fold_latent(Z[b % len(Z)]) for b in range(B)]
    Theta0 = torch.stack([f.flat_theta() for f in folded])
    T = steps * cfg.dt
    t_eval = torch.tensor([0.0, T])
    t0 = time.process_time()
    res = evolve_batch(folded[0], Theta0, fam.pdes, T, cfg.dt, t_eval, n_points=cfg.n_points, sparse=cfg.sparse,
                       ridge=cfg.ridge, seeds=list(range(B)))
    t_batch = time.process_time() - t0
    t0 = time.process_time()
    ones = [NeuralGalerkin(folded[b], fam.pdes[b], n_points=cfg.n_points, sparse=cfg.sparse, ridge=cfg.ridge,
                           seed=b).evolve(Theta0[b], T, cfg.dt, t_eval=t_eval, progress=False).thetas[-1]
            for b in range(B)]
    t_loop = time.process_time() - t0
    fast = FastMLP(folded[0])
    with torch.no_grad():
        du = max(float((fast.forward(res["thetas"][b, -1], res["x"], None)[0]["u"]
                        - fast.forward(ones[b], res["x"], None)[0]["u"]).norm()
                       / fast.forward(ones[b], res["x"], None)[0]["u"].norm()) for b in range(B))
    return {"B": B, "steps": steps, "points": cfg.n_points, "p": folded[0].n_params, "sparse": cfg.sparse,
            "seconds_batched": t_batch, "seconds_loop": t_loop, "throughput_ratio": t_loop / t_batch,
            "max_rel_diff_u": du}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmarks", nargs="+", default=["kdv", "burgers", "ac1d", "ac2d"])
    ap.add_argument("--runs", default=str(ROOT / "results" / "val"))
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--iters", type=int, default=200, help="Adam iterations of the fine-tuning")
    ap.add_argument("--lm", type=int, default=0, help="if > 0: this many Levenberg-Marquardt steps instead of Adam")
    ap.add_argument("--evolve-steps", type=int, default=0, help="also time batched evolution (1-D benchmarks)")
    ap.add_argument("--evolve-batch", type=int, default=64)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    load0 = os.getloadavg()
    rows = {}
    print("| benchmark | B | points | p | batched CPU s | loop CPU s | samples/s batched | samples/s loop | ratio | "
          "max rel. diff of z |")
    print("|" + "---|" * 10)
    for name in args.benchmarks:
        if not (Path(args.runs) / name / "pretrained.pt").exists():
            print(f"| {name} | (no pretrained decoder in {args.runs}) |")
            continue
        r = rows[name] = bench(name, Path(args.runs), args.batch, args.iters, args.lm)
        print(f"| {name} | {r['B']} | {r['points']} | {r['p']} | {r['seconds_batched']:.2f} | "
              f"{r['seconds_loop']:.2f} | {r['B'] / r['seconds_batched']:.1f} | {r['B'] / r['seconds_loop']:.1f} | "
              f"{r['throughput_ratio']:.1f}x | {r['max_rel_diff_z']:.1e} (reordered points: "
              f"{max(r['rel_diff_z_reordered']):.1e}) |")
    evolve = {}
    if args.evolve_steps:
        print("\n| benchmark | B | steps | points | p | s | batched CPU s | loop CPU s | ratio | max rel. diff of u |")
        print("|" + "---|" * 10)
        for name in args.benchmarks:
            if FULL[name].dim != 1 or not (Path(args.runs) / name / "pretrained.pt").exists():
                continue
            r = evolve[name] = bench_evolve(name, Path(args.runs), args.evolve_batch, args.evolve_steps)
            print(f"| {name} | {r['B']} | {r['steps']} | {r['points']} | {r['p']} | {r['sparse'] or 'dense'} | "
                  f"{r['seconds_batched']:.2f} | {r['seconds_loop']:.2f} | {r['throughput_ratio']:.1f}x | "
                  f"{r['max_rel_diff_u']:.1e} |")
    meta = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "git_commit": git_commit(), "threads": torch.get_num_threads(),
            "load_average_start": load0, "load_average_end": os.getloadavg(), "machine": platform.machine()}
    if args.out:
        Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows, "evolve": evolve}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
