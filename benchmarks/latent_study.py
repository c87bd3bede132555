"""Latents with meaning: random initial latents against the data's principal coordinates.

For each benchmark family, the auto-decoder of the full-size runs (same network, latent size,
penalty, learning rate and Sobolev terms; the runs' training samples) is pretrained twice, with a
shorter schedule than the runs (``--adam`` and ``--lbfgs`` iterations): once from random latents
``z_i ~ N(0, I)`` (what the runs do) and once from the principal coordinates of the training data
(``pretrain(..., z_init="pca")``, :class:`madng_lite.manifold.PCAEncoder`). Measured per arm:

* pretraining: seconds and mean relative L2 error on the training samples;
* the latent space: how far the latents moved from their start, the rank correlation of latent
  distances with data distances (:func:`madng_lite.manifold.manifold_report`) and the best
  correlation of the latents' first principal component with a parameter of the family;
* held-out MAD-L on the runs' validation samples (never the test samples): ``z`` alone fitted by
  ``--lm`` Levenberg-Marquardt steps from the nearest training latent (and, for the PCA arm, from
  the encoder's latent of the new sample), theta frozen: relative L2 error at ``t = 0``, median
  and worst, and the median seconds.

    OMP_NUM_THREADS=1 python benchmarks/latent_study.py --out results/latent_study.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from madng_lite.data import make_family
from madng_lite.decoder import Decoder
from madng_lite.fitting import fit_sample
from madng_lite.mad import nearest_latent, pretrain
from madng_lite.manifold import PCAEncoder, initial_latents, manifold_report, pc_correlations
from madng_lite.pipeline import FULL
from madng_lite.pipeline.context import fit_index, git_commit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from manifold_diagnostics import param_matrix  # noqa: E402

STOCHASTIC = {"kdv": False, "burgers": True, "ac1d": True, "ac2d": True}   # as the runs


def held_out(dec: Decoder, x: torch.Tensor, U_train: torch.Tensor, Z: torch.Tensor, U_val: torch.Tensor,
             starts: dict, lm: int, lam: float, data_scale: float) -> dict:
    """MAD-L (z only, theta frozen) on each validation sample from each start in ``starts``."""
    out = {}
    for name, start in starts.items():
        rels, secs = [], []
        for u in U_val:
            r = fit_sample(dec, x, u, start(u), train="z", adam_iters=0, lm_iters=lm, tol=1e-300, lam=lam,
                           data_scale=data_scale)
            rels.append(float((r.mse * len(u)) ** 0.5 / u.norm()))
            secs.append(r.seconds)
        out[name] = {"rel_median": statistics.median(rels), "rel_max": max(rels), "rel": rels,
                     "seconds_median": statistics.median(secs)}
    return out


def study(name: str, z_init: str, adam: int, lbfgs: int, lm: int, quick: bool) -> dict:
    cfg = FULL[name]
    n_train, n_val = (12, 3) if quick else (cfg.n_train, cfg.n_val)
    fam = make_family(name, n_train + n_val, seed=0, n_grid=cfg.n_grid, stochastic=STOCHASTIC[name], T=cfg.T)
    idx = fit_index(cfg.n_grid, fam.dim, cfg.fit_stride)
    train, val = fam.subset(range(n_train)), fam.subset(range(n_train, n_train + n_val))
    x, U, V = fam.x[idx], train.U0[:, idx], val.U0[:, idx]
    dec = Decoder(fam.box, cfg.latent_dim, cfg.width, cfg.depth, cfg.n_freq, seed=0)
    sob = train.derivative_targets(cfg.sobolev) if cfg.sobolev else False
    t0 = time.perf_counter()
    Z, rep = pretrain(dec, x, U, lam=cfg.lam, adam_iters=adam, lbfgs_iters=lbfgs, lr=cfg.lr, seed=0,
                      progress=False, sobolev=sob, normalize=True, z_init=z_init)
    seconds = time.perf_counter() - t0
    enc = PCAEncoder.fit(U, cfg.latent_dim)
    Z0 = initial_latents(n_train, cfg.latent_dim, 0) if z_init == "random" else enc.encode(U)
    man = manifold_report(U, Z, Z0)
    P, names = param_matrix(train.params)
    pc = pc_correlations(Z, P, k=1)[0]
    starts = {"nearest": lambda u: nearest_latent(U, Z, u)[0]}
    if z_init == "pca":
        starts["encoder"] = enc.encode
    return {"benchmark": name, "z_init": z_init, "n_train": n_train, "n_val": n_val,
            "latent_dim": cfg.latent_dim, "pretrain_seconds": seconds, "train_mean_rel": rep.mean_rel,
            "moved": man["moved"], "rank_corr": man["rank_corr"], "rank_corr_start": man["rank_corr_initial"],
            "pc1_parameter": names[int(pc.argmax())], "pc1_abs_corr": float(pc.max()),
            "held_out": held_out(dec, x, U, Z, V, starts, lm, cfg.lam, rep.data_scale)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmarks", nargs="+", default=list(FULL), choices=list(FULL))
    ap.add_argument("--adam", type=int, default=1000, help="pretraining Adam iterations (the runs: 2000)")
    ap.add_argument("--lbfgs", type=int, default=300, help="pretraining L-BFGS iterations (the runs: 1000)")
    ap.add_argument("--lm", type=int, default=50, help="Levenberg-Marquardt steps of each held-out MAD-L fit")
    ap.add_argument("--quick", action="store_true", help="12 training and 3 validation samples (a smoke test)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    commit = git_commit()   # at the start: the code that made the numbers
    rows = []
    print("| family | latents start | pretrain s | train rel. | moved | rank corr. (start -> end) | "
          "PC1 ~ parameter | held-out MAD-L rel. (median, worst) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.benchmarks:
        for z_init in ("random", "pca"):
            r = study(name, z_init, args.adam, args.lbfgs, args.lm, args.quick)
            rows.append(r)
            ho = "; ".join(f"{k}: {v['rel_median']:.2e}, {v['rel_max']:.2e}" for k, v in r["held_out"].items())
            print(f"| {name} | {z_init} | {r['pretrain_seconds']:.0f} | {r['train_mean_rel']:.2e} | "
                  f"{r['moved']:.2f} | {r['rank_corr_start']:.2f} -> {r['rank_corr']:.2f} | "
                  f"{r['pc1_parameter']} ({r['pc1_abs_corr']:.2f}) | {ho} |", flush=True)
    if args.out:
        meta = {"command": "python benchmarks/latent_study.py " + " ".join(sys.argv[1:]),
                "git_commit": commit, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                "adam": args.adam, "lbfgs": args.lbfgs, "lm": args.lm, "quick": args.quick}
        Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
