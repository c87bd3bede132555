"""What folding the frozen latent into the first-layer bias does: singular values, error, step time.

With ``z`` frozen, the Jacobian column of each latent weight ``W_z[i, j]`` is ``z_j`` times the
column of the bias ``b_i``: exactly redundant. For each benchmark this script takes the decoder a
validation run pretrained (``results/val/NAME/pretrained.pt``), fits the first validation sample
from its nearest latent with the run's own fit, and compares the unfolded network (latent weights
evolved too) with the folded one (:meth:`madng_lite.decoder.Decoder.fold_latent`):

* the singular values of ``J`` at ``t = 0`` (how many are above ``1e-8`` and ``1e-12`` of the
  largest, and the smallest nonzero ones);
* the MSE against the truth after Neural Galerkin to ``horizon * T`` with the benchmark's settings
  (sparse draws of the same ``s``), and the time per RK4 step, both measured in this run.

    OMP_NUM_THREADS=1 python benchmarks/fold_study.py --out results/fold_study.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from madng_lite.data import make_family
from madng_lite.derivatives import FastMLP
from madng_lite.fitting import fit_sample
from madng_lite.galerkin import NeuralGalerkin
from madng_lite.io import load_checkpoint
from madng_lite.mad import nearest_latent
from madng_lite.pipeline import FULL
from madng_lite.pipeline.context import git_commit
from madng_lite.pipeline.context import fit_index

ROOT = Path(__file__).resolve().parents[1]
STOCHASTIC = {"kdv": False, "burgers": True, "ac1d": True, "ac2d": True}


def singular_values(dec, z, x) -> torch.Tensor:
    with torch.no_grad():
        f = FastMLP(dec)
        J = f.jac(f.forward(dec.flat_theta(), x, z, ("u",), need_jac=True)[1])
    return torch.linalg.svdvals(J)


def evolve(dec, z, pde, cfg, t_eval, truth, x, seed) -> dict:
    ng = NeuralGalerkin(dec, pde, z=z, n_points=cfg.n_points, sparse=min(cfg.sparse or dec.n_params, dec.n_params)
                        if cfg.sparse else None, ridge=cfg.ridge, seed=seed)
    t0 = time.perf_counter()
    res = ng.evolve(dec.flat_theta(), t_eval[-1], cfg.dt, t_eval=torch.tensor(t_eval), progress=False)
    secs = time.perf_counter() - t0
    fast = FastMLP(dec)
    with torch.no_grad():
        u = np.stack([fast.forward(th, x, z, ("u",))[0]["u"].numpy() for th in res.thetas])
    return {"mse": np.mean((u - truth) ** 2, axis=1).tolist(), "ms_per_step": 1e3 * secs / res.n_steps,
            "steps": res.n_steps, "residual_max": float(res.residuals.max())}


def study(name: str, runs: Path, horizon: float) -> dict:
    cfg = FULL[name]
    dec, Z, _ = load_checkpoint(runs / name / "pretrained.pt")
    fam = make_family(name, cfg.n_train + 1, seed=0, n_grid=cfg.n_grid, stochastic=STOCHASTIC[name], T=cfg.T)
    idx = fit_index(cfg.n_grid, fam.dim, cfg.fit_stride)
    U0f = fam.U0[: cfg.n_train, idx]
    k = cfg.n_train   # the first validation sample
    u0f = fam.U0[k, idx]
    z0, _ = nearest_latent(U0f, Z, u0f)
    ck = torch.load(runs / name / "pretrained.pt", weights_only=True)
    scale = ck["payload"]["extra"]["report"]["data_scale"]
    fit = fit_sample(dec, fam.x[idx], u0f, z0, train="z" if cfg.ft_mode == "L" else "z+theta",
                     adam_iters=cfg.ft_iters, lr=cfg.ft_lr, lm_iters=cfg.ft_lm_iters, tol=cfg.ft_tol, lam=cfg.lam,
                     data_scale=scale)
    steps = round(horizon * cfg.T / cfg.dt)
    t_eval = np.linspace(0, steps * cfg.dt, 3)
    sub = fam.subset([k])
    truth = sub.truth(0, t_eval)
    x = fam.x
    from madng_lite import points
    xs = points.grid(fam.box, cfg.n_points)   # the NG points, for the singular values
    out = {"p": dec.n_params, "fit_mse": fit.mse}
    for label, (d, z) in {"unfolded": (fit.decoder, fit.z), "folded": (fit.decoder.fold_latent(fit.z), None)}.items():
        sv = singular_values(d, z, xs)
        rel = sv / sv[0]
        out[label] = {"p": d.n_params, "rank_1e-8": int((rel > 1e-8).sum()), "rank_1e-12": int((rel > 1e-12).sum()),
                      "sigma_min_nonzero_rel": float(rel[rel > 1e-14].min()),
                      **evolve(d, z, sub.pdes[0], cfg, t_eval, truth, x, seed=k)}
    out["t_eval"] = t_eval.tolist()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmarks", nargs="+", default=["kdv", "burgers", "ac1d", "ac2d"])
    ap.add_argument("--runs", default=str(ROOT / "results" / "val"), help="folder of the validation runs")
    ap.add_argument("--horizon", type=float, default=0.25, help="fraction of T to evolve")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    load0 = os.getloadavg()
    rows = {}
    print("| benchmark | network | p | rank (1e-8) | rank (1e-12) | MSE at horizon | ms / step |")
    print("|---|---|---|---|---|---|---|")
    for name in args.benchmarks:
        if not (Path(args.runs) / name / "pretrained.pt").exists():
            print(f"| {name} | (no pretrained decoder in {args.runs}) |")
            continue
        r = rows[name] = study(name, Path(args.runs), args.horizon)
        for label in ("unfolded", "folded"):
            v = r[label]
            print(f"| {name} | {label} | {v['p']} | {v['rank_1e-8']} | {v['rank_1e-12']} | {v['mse'][-1]:.3e} | "
                  f"{v['ms_per_step']:.1f} |")
    meta = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "git_commit": git_commit(), "threads": torch.get_num_threads(),
            "load_average_start": load0, "load_average_end": os.getloadavg(), "machine": platform.machine()}
    if args.out:
        Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
