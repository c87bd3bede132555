"""When does meta-learning pay? Time to a fit tolerance, MAD against a fresh network, as families grow.

Families of growing complexity: ``u0(x) = sum_{k<=m} a_k cos(pi k x) + b_k sin(pi k x)`` on the
periodic box ``[-1, 1)`` with ``a_k, b_k ~ N(0, (0.3 / k)^2)`` (the Burgers family is ``m = 3``),
for ``m`` in ``--modes``: a linear family of dimension ``2 m``. For each, one auto-decoder (width
30, depth 4, ``--n-freq`` embedding frequencies as the Burgers benchmark's network, latent size
``2 m``) is pretrained on
``--n-train`` samples from principal-coordinate latents (``z_init="pca"``; Sobolev term ``u_x``).
Then each of ``--n-val`` new samples is fitted, at each tolerance of ``--tols`` (MSE on the grid),
by the one fit every arm shares (:func:`madng_lite.fitting.fit_sample`: Levenberg-Marquardt, at
most ``--lm`` steps, no Adam): MAD-LM from the nearest training latent, MAD-LM from a random
latent, and a fresh network of the same width, depth and embedding without latent (NG without
meta-learning). Measured: how many fits reach the tolerance, median seconds and iterations to it
(a fit that does not reach it counts as infinite), and the break-even number of queries
``N* = pretraining seconds / (fresh seconds - MAD seconds)``: infinite when MAD is not faster.

    OMP_NUM_THREADS=1 python benchmarks/meta_pays_study.py --out results/meta_pays_study.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from madng_lite import points
from madng_lite.data import spectral_derivative
from madng_lite.decoder import Decoder
from madng_lite.fitting import fit_sample
from madng_lite.mad import nearest_latent, pretrain, random_latent
from madng_lite.pipeline.context import git_commit

BOX = ((-1.0, 1.0),)


def fourier_family(m: int, n: int, n_grid: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples of the ``m``-mode family on ``n_grid`` points: ``(x (n_grid, 1), U0 (n, n_grid))``."""
    g = torch.Generator().manual_seed(seed)
    k = torch.arange(1, m + 1, dtype=torch.float64)
    a, b = (torch.randn(2, n, m, generator=g, dtype=torch.float64) * 0.3 / k)
    x = points.grid(BOX, n_grid)
    ph = math.pi * x[:, :1] * k   # (n_grid, m)
    return x, a @ torch.cos(ph).T + b @ torch.sin(ph).T


def median_or_inf(values: list[float | None]) -> float:
    return statistics.median([math.inf if v is None else v for v in values])


def study(m: int, n_train: int, n_val: int, n_grid: int, adam: int, lbfgs: int, lm: int, tols: list[float],
          n_freq: int) -> dict:
    x, U = fourier_family(m, n_train + n_val, n_grid, seed=m)
    train, val = U[:n_train], U[n_train:]
    shape = dict(width=30, depth=4, n_freq=n_freq)
    dec = Decoder(BOX, 2 * m, seed=0, **shape)
    sob = {"ux": spectral_derivative(train, BOX[0], 1)}
    t0 = time.perf_counter()
    Z, rep = pretrain(dec, x, train, lam=0.01, adam_iters=adam, lbfgs_iters=lbfgs, lr=1e-3, seed=0,
                      progress=False, sobolev=sob, normalize=True, z_init="pca")
    pre = time.perf_counter() - t0
    rows = []
    for tol in tols:
        budget = dict(adam_iters=0, lm_iters=lm, tol=tol, data_scale=rep.data_scale)
        arms: dict[str, list] = {"nearest": [], "random": [], "fresh": []}
        for i, u in enumerate(val):
            seed = 7919 * (i + 1)
            arms["nearest"].append(fit_sample(dec, x, u, nearest_latent(train, Z, u)[0], train="z+theta",
                                              lam=0.01, **budget))
            arms["random"].append(fit_sample(dec, x, u, random_latent(2 * m, seed), train="z+theta", lam=0.01,
                                             **budget))
            fresh = Decoder(BOX, 0, seed=seed, **shape)
            arms["fresh"].append(fit_sample(fresh, x, u, None, train="theta", **budget))
        summary = {a: {"reached": sum(r.reached for r in rs),
                       "seconds_to_tol": median_or_inf([r.seconds_to_tol for r in rs]),
                       "iters_to_tol": median_or_inf([r.iters_to_tol for r in rs]),
                       "mse_median": statistics.median([r.mse for r in rs])} for a, rs in arms.items()}
        t_mad, t_fresh = summary["nearest"]["seconds_to_tol"], summary["fresh"]["seconds_to_tol"]
        gain = t_fresh - t_mad
        n_star = math.inf if not math.isfinite(t_mad) or not gain > 0 else (0.0 if math.isinf(t_fresh) else pre / gain)
        rows.append({"tol": tol, "arms": summary, "n_star": n_star})
    return {"modes": m, "dim": 2 * m, "n_freq": n_freq, "n_train": n_train, "n_val": n_val, "pretrain_seconds": pre,
            "pretrain_mean_rel": rep.mean_rel, "p_mad": dec.n_params, "p_fresh": Decoder(BOX, 0, **shape).n_params,
            "rows": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", nargs="+", type=int, default=[3, 10, 30])
    ap.add_argument("--tols", nargs="+", type=float, default=[1e-6, 1e-8, 1e-10])
    ap.add_argument("--n-train", type=int, default=64)
    ap.add_argument("--n-val", type=int, default=8)
    ap.add_argument("--n-grid", type=int, default=256)
    ap.add_argument("--adam", type=int, default=1000)
    ap.add_argument("--lbfgs", type=int, default=300)
    ap.add_argument("--lm", type=int, default=100, help="Levenberg-Marquardt steps at most, every arm")
    ap.add_argument("--n-freq", type=int, default=1, help="embedding frequencies of every network (0: m)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    commit = git_commit()
    fams = []
    print("| modes | tol | reached (MAD / random / fresh) | s to tol (MAD / random / fresh) | "
          "LM steps (MAD / fresh) | pretrain s | N* |")
    print("|---|---|---|---|---|---|---|")
    for m in args.modes:
        f = study(m, args.n_train, args.n_val, args.n_grid, args.adam, args.lbfgs, args.lm, args.tols,
                  args.n_freq or m)
        fams.append(f)
        for r in f["rows"]:
            a = r["arms"]
            print(f"| {m} | {r['tol']:g} | {a['nearest']['reached']} / {a['random']['reached']} / "
                  f"{a['fresh']['reached']} of {f['n_val']} | {a['nearest']['seconds_to_tol']:.3f} / "
                  f"{a['random']['seconds_to_tol']:.3f} / {a['fresh']['seconds_to_tol']:.3f} | "
                  f"{a['nearest']['iters_to_tol']:.0f} / {a['fresh']['iters_to_tol']:.0f} | "
                  f"{f['pretrain_seconds']:.0f} | {r['n_star']:.3g} |", flush=True)
    if args.out:
        meta = {"command": "python benchmarks/meta_pays_study.py " + " ".join(sys.argv[1:]), "git_commit": commit,
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "torch_threads": torch.get_num_threads(),
                "python": platform.python_version(), **{k: v for k, v in vars(args).items() if k != "out"}}
        text = json.dumps({"meta": meta, "families": fams}, indent=1, default=str)
        Path(args.out).write_text(text.replace("Infinity", '"inf"') + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
