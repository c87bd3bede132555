"""Held-out MAD-L against the number of training samples (and the start of the fit).

For each benchmark family, the auto-decoder of the full-size runs (same network, latent size,
penalty, learning rate and Sobolev terms, latents started at the principal coordinates as in
``benchmarks/latent_study.py``) is pretrained on ``N`` training samples for each ``N`` of
``--multiples`` times the runs' training-set size, with the shorter schedule of that study
(``--adam`` and ``--lbfgs`` iterations). The validation samples are the runs' own (the same for
every ``N``; extra training samples are drawn after the runs' test samples, which are never used).

Each validation sample is fitted by MAD-L (``z`` alone, ``--lm`` Levenberg-Marquardt steps, theta
frozen) from four starts: the nearest training latent, the PCA encoder's latent of the sample,
the best (lowest final error) of the fits from the ``--k`` nearest training latents
(:func:`madng_lite.mad.nearest_latents`), and a screened start: ``--screen`` steps from every
training latent at once (:func:`madng_lite.batch.screen_latents`), then the best of those
continued for the remaining ``--lm`` minus ``--screen`` steps. The nearest and the screened starts
are also run with the longer budget ``--lm-long`` (the start and the budget are separate causes).
Measured: the relative L2 error at ``t = 0`` per sample, its median and worst, and the seconds.
Rows are written (atomically) as they finish; ``--resume`` skips the rows already in ``--out`` and
refuses a file made with other settings.

``--refine R`` adds ``R`` rounds of the refinement of :func:`madng_lite.mad.pretrain` after
L-BFGS (``--refine-lm`` LM steps on every latent alone, then ``--refine-lbfgs`` L-BFGS iterations
on theta and the latents together). Its yardstick is the same time spent in more L-BFGS: a run
with ``--lbfgs`` raised until its pretraining takes as long.

    OMP_NUM_THREADS=1 python benchmarks/latent_ntrain_study.py --out results/latent_ntrain_study.json
    OMP_NUM_THREADS=1 python benchmarks/latent_ntrain_study.py --benchmarks ac2d --multiples 1 2 \
        --refine 6 --out results/latent_ntrain_study_ac2d_refined.json
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from madng_lite.batch import screen_latents
from madng_lite.data import make_family
from madng_lite.decoder import Decoder
from madng_lite.fitting import fit_sample
from madng_lite.io import resumable_results, write_results
from madng_lite.mad import nearest_latents, pretrain
from madng_lite.manifold import PCAEncoder, manifold_report
from madng_lite.pipeline import FULL
from madng_lite.pipeline.context import fit_index, git_commit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latent_study import STOCHASTIC  # noqa: E402


def train_indices(n_train0: int, n_val: int, n_test: int, n: int) -> list[int]:
    """The runs' training samples first, then samples drawn after their validation and test samples."""
    skip = n_train0 + n_val + n_test
    return list(range(min(n, n_train0))) + list(range(skip, skip + max(0, n - n_train0)))


def mad_l(dec: Decoder, x: torch.Tensor, u: torch.Tensor, z0: torch.Tensor, lm: int, lam: float,
          data_scale: float) -> tuple[float, float]:
    """Relative L2 error and seconds of MAD-L from ``z0``."""
    r = fit_sample(dec, x, u, z0, train="z", adam_iters=0, lm_iters=lm, tol=1e-300, lam=lam, data_scale=data_scale)
    return float((r.mse * len(u)) ** 0.5 / u.norm()), r.seconds


def study(name: str, n_train: int, adam: int, lbfgs: int, lm: int, k: int, screen: int, lm_long: int,
          quick: bool, refine: tuple[int, int, int] = (0, 20, 100)) -> dict:
    cfg = FULL[name]
    n_val = 3 if quick else cfg.n_val
    idx_train = train_indices(cfg.n_train, cfg.n_val, cfg.n_test, n_train)
    n_all = max(idx_train) + 1 if n_train > cfg.n_train else cfg.n_train + cfg.n_val
    fam = make_family(name, max(n_all, cfg.n_train + cfg.n_val), seed=0, n_grid=cfg.n_grid,
                      stochastic=STOCHASTIC[name], T=cfg.T)
    idx = fit_index(cfg.n_grid, fam.dim, cfg.fit_stride)
    train = fam.subset(idx_train)
    val = fam.subset(range(cfg.n_train, cfg.n_train + n_val))
    x, U, V = fam.x[idx], train.U0[:, idx], val.U0[:, idx]
    dec = Decoder(fam.box, cfg.latent_dim, cfg.width, cfg.depth, cfg.n_freq, seed=0)
    sob = train.derivative_targets(cfg.sobolev) if cfg.sobolev else False
    t0 = time.perf_counter()
    Z, rep = pretrain(dec, x, U, lam=cfg.lam, adam_iters=adam, lbfgs_iters=lbfgs, lr=cfg.lr, seed=0,
                      progress=False, sobolev=sob, normalize=True, z_init="pca", refine_rounds=refine[0],
                      refine_lm=refine[1], refine_lbfgs=refine[2])
    seconds = time.perf_counter() - t0
    enc = PCAEncoder.fit(U, cfg.latent_dim)
    man = manifold_report(U, Z, enc.encode(U))
    fit = dict(lm=lm, lam=cfg.lam, data_scale=rep.data_scale)
    starts: dict[str, list] = {"nearest": [], "encoder": [], f"best_of_{k}": [], "screened": [],
                               "nearest_long": [], "screened_long": []}
    for u in V:
        Zk, _ = nearest_latents(U, Z, u, k)
        tries = [mad_l(dec, x, u, z, **fit) for z in Zk]
        starts["nearest"].append(tries[0])
        starts["encoder"].append(mad_l(dec, x, u, enc.encode(u), **fit))
        starts[f"best_of_{k}"].append((min(t[0] for t in tries), sum(t[1] for t in tries)))
        t0 = time.perf_counter()
        zs, _, _ = screen_latents(dec, x, u, Z, steps=screen, lam=cfg.lam, data_scale=rep.data_scale)
        t_screen = time.perf_counter() - t0
        rel, t_rest = mad_l(dec, x, u, zs, **dict(fit, lm=lm - screen))
        starts["screened"].append((rel, t_screen + t_rest))
        starts["nearest_long"].append(mad_l(dec, x, u, Zk[0], **dict(fit, lm=lm_long)))
        rel, t_rest = mad_l(dec, x, u, zs, **dict(fit, lm=lm_long - screen))
        starts["screened_long"].append((rel, t_screen + t_rest))
    held = {s: {"rel": [r for r, _ in v], "rel_median": statistics.median(r for r, _ in v),
                "rel_max": max(r for r, _ in v), "seconds_median": statistics.median(t for _, t in v)}
            for s, v in starts.items()}
    return {"benchmark": name, "n_train": n_train, "n_val": n_val, "latent_dim": cfg.latent_dim,
            "lbfgs": lbfgs, "refine_rounds": refine[0], "refine_lm": refine[1], "refine_lbfgs": refine[2],
            "p": dec.n_params, "pretrain_seconds": seconds, "train_mean_rel": rep.mean_rel,
            "train_max_rel": max(rep.rel_errors), "rank_corr": man["rank_corr"], "held_out": held}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmarks", nargs="+", default=["kdv", "burgers", "ac1d"], choices=list(FULL))
    ap.add_argument("--multiples", nargs="+", type=int, default=[1, 2, 4],
                    help="training-set sizes as multiples of the runs' n_train")
    ap.add_argument("--adam", type=int, default=1000, help="pretraining Adam iterations (the runs: 2000)")
    ap.add_argument("--lbfgs", type=int, default=300, help="pretraining L-BFGS iterations (the runs: 1000)")
    ap.add_argument("--lm", type=int, default=50, help="Levenberg-Marquardt steps of each held-out MAD-L fit")
    ap.add_argument("--k", type=int, default=3, help="nearest latents tried by the best-of-k start")
    ap.add_argument("--screen", type=int, default=20,
                    help="LM steps from every training latent before the best goes on")
    ap.add_argument("--lm-long", type=int, default=250, help="the longer budget of LM steps")
    ap.add_argument("--refine", type=int, default=0, help="rounds of the pretraining refinement (0: none)")
    ap.add_argument("--refine-lm", type=int, default=20, help="LM steps on the latents per refinement round")
    ap.add_argument("--refine-lbfgs", type=int, default=100, help="L-BFGS iterations per refinement round")
    ap.add_argument("--quick", action="store_true", help="3 validation samples, short schedules (a smoke test)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--resume", action="store_true", help="keep the rows already in --out")
    args = ap.parse_args()
    if not 1 <= args.screen < args.lm <= args.lm_long:
        ap.error(f"need 1 <= --screen < --lm <= --lm-long, got {args.screen}, {args.lm}, {args.lm_long}")
    if args.quick:
        args.adam, args.lbfgs, args.lm, args.screen, args.lm_long = min(args.adam, 30), min(args.lbfgs, 10), 5, 2, 8
    commit = git_commit()   # at the start: the code that made the numbers
    out = Path(args.out) if args.out else None
    settings = {"adam": args.adam, "lbfgs": args.lbfgs, "lm": args.lm, "k": args.k, "screen": args.screen,
                "lm_long": args.lm_long, "refine": args.refine, "refine_lm": args.refine_lm,
                "refine_lbfgs": args.refine_lbfgs, "quick": args.quick}
    try:
        rows = resumable_results(out, "rows", settings) if args.resume else []
    except ValueError as e:
        ap.error(str(e))
    meta = {"command": "python benchmarks/latent_ntrain_study.py " + " ".join(sys.argv[1:]),
            "git_commit": commit, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(), **settings}
    print("| family | N train | pretrain s | train rel. (mean) | rank corr. | "
          "held-out MAD-L rel. (median, worst) |")
    print("|---|---|---|---|---|---|")
    for name in args.benchmarks:
        for m in args.multiples:
            n = m * FULL[name].n_train if not args.quick else 6 * m
            if any(r["benchmark"] == name and r["n_train"] == n for r in rows):
                continue
            r = study(name, n, args.adam, args.lbfgs, args.lm, args.k, args.screen, args.lm_long, args.quick,
                      (args.refine, args.refine_lm, args.refine_lbfgs))
            rows.append(r)
            ho = "; ".join(f"{s}: {v['rel_median']:.2e}, {v['rel_max']:.2e}" for s, v in r["held_out"].items())
            print(f"| {name} | {n} | {r['pretrain_seconds']:.0f} | {r['train_mean_rel']:.2e} | "
                  f"{r['rank_corr']:.2f} | {ho} |", flush=True)
            if out:
                write_results(out, meta, "rows", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
