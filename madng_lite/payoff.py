"""When does meta-learning pay? Families of growing complexity, one fit for every arm, break-even
(book: When does meta-learning pay?).

Three ladders of families, each rung harder than the last:

* ``fourier-m``: ``u0 = sum_{k<=m} a_k cos(pi k x) + b_k sin(pi k x)`` on ``[-1, 1)``, with
  ``a_k, b_k ~ N(0, (0.3 / k)^2)`` (the Burgers family is ``m = 3``): linear, ``2 m`` parameters;
* ``solitons-N``: ``N`` well-separated KdV solitons ``3 b k_i^2 sech^2(k_i (x - x_i) / 2)``
  (``b = 0.0025`` as the KdV benchmark, ``k_i ~ U[10, 16]``, the ``x_i`` spread around the
  periodic box ``[-1, 1)``): nonlinear (the solitons move), ``2 N`` parameters;
* ``ac2d-K``: ``0.01 sum_{|k|_inf <= K} beta_k cos(2 pi k.x) + gamma_k sin(2 pi k.x)`` on
  ``[0, 1)^2`` with standard normal coefficients (the AC2D benchmark's family is ``K = 1``):
  linear, ``(2 K + 1)^2`` independent directions.

For each family one auto-decoder (the benchmarks' small network: width 30, depth 4, one embedding
frequency per axis; latent size = the family's parameter count) is pretrained on ``n_train``
samples from principal-coordinate latents. Each of ``n_val`` new samples is then fitted by the one
fit every arm shares (:func:`madng_lite.fitting.fit_sample`: Levenberg-Marquardt only, at most
``lm`` steps) in five arms: MAD-L (the latent alone, from the nearest training latent), MAD-LM
(latent and weights, from the nearest latent), MAD-LM from a random latent, a fresh network of the
same shape without latent (Neural Galerkin without meta-learning), and MAD-L for all new samples at
once (:func:`madng_lite.batch.fit_latents`). One fit runs to the tightest tolerance; the time to
each looser tolerance is read off its trajectory (the fit does not depend on the tolerance until it
stops). The break-even number of queries is ``N* = pretraining / (fresh - MAD)`` seconds.
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import points
from .batch import fit_latents
from .data import KDV_B, spectral_derivative
from .decoder import Decoder
from .fitting import FitResult, fit_sample
from .mad import PretrainReport, nearest_latent, pretrain, random_latent

__all__ = ["LADDERS", "ARMS", "Prepared", "parse_family", "family_samples", "family_seed", "break_even",
           "prepare_family", "fit_arms", "study_family"]

LADDERS = ("fourier", "solitons", "ac2d")
ARMS = ("mad_l", "mad_lm", "random", "fresh", "mad_l_batched")
SHAPE = dict(width=30, depth=4, n_freq=1)


def parse_family(name: str) -> tuple[str, int]:
    """``"fourier-10"`` -> ``("fourier", 10)``; a clear error for anything else."""
    kind, _, size = str(name).partition("-")
    if kind not in LADDERS or not size.isdigit() or int(size) < 1:
        raise ValueError(f"unknown family {name!r}: use fourier-<modes>, solitons-<count> or ac2d-<K>, "
                         f"e.g. fourier-10, solitons-3, ac2d-2")
    return kind, int(size)


def _box(kind: str) -> tuple[tuple[float, float], ...]:
    return ((0.0, 1.0), (0.0, 1.0)) if kind == "ac2d" else ((-1.0, 1.0),)


def _solitons(g: torch.Generator, n: int, N: int, x: Tensor, images: int = 3) -> Tensor:
    k = 10 + 6 * torch.rand(n, N, generator=g, dtype=torch.float64)
    # evenly spread centres, jittered by a quarter of their spacing, and a random shift of all
    shift = 2 * torch.rand(n, 1, generator=g, dtype=torch.float64)
    jitter = (torch.rand(n, N, generator=g, dtype=torch.float64) - 0.5) * 0.5 * (2 / N)
    xc = -1 + 2 * (torch.arange(N, dtype=torch.float64) + 0.5) / N + jitter + shift
    xc = torch.remainder(xc + 1, 2) - 1
    u = torch.zeros(n, x.shape[0], dtype=torch.float64)
    for m in range(-images, images + 1):   # the periodisation on [-1, 1); tails decay like exp(-10 |x|)
        arg = k[:, :, None] * (x[None, None, :, 0] + 2.0 * m - xc[:, :, None]) / 2
        u += (3 * KDV_B * k[:, :, None] ** 2 / torch.cosh(arg) ** 2).sum(1)
    return u


def family_samples(name: str, n: int, n_grid: int, seed: int) -> tuple[Tensor, Tensor, int]:
    """``n`` samples of the family ``name`` on its grid: ``(x (n_pts, d), U0 (n, n_pts), n_params)``."""
    kind, size = parse_family(name)
    if n < 1 or n_grid < 8:
        raise ValueError(f"need n >= 1 samples and n_grid >= 8, got {n} and {n_grid}")
    g = torch.Generator().manual_seed(int(seed))
    x = points.grid(_box(kind), n_grid)
    if kind == "fourier":
        k = torch.arange(1, size + 1, dtype=torch.float64)
        a, b = torch.randn(2, n, size, generator=g, dtype=torch.float64) * 0.3 / k
        ph = math.pi * x[:, :1] * k
        return x, a @ torch.cos(ph).T + b @ torch.sin(ph).T, 2 * size
    if kind == "solitons":
        return x, _solitons(g, n, size, x), 2 * size
    r = torch.arange(-size, size + 1, dtype=torch.float64)
    kk = torch.cartesian_prod(r, r)                       # ((2K+1)^2, 2) wave vectors
    bg = torch.randn(2, n, kk.shape[0], generator=g, dtype=torch.float64)
    ph = 2 * math.pi * x @ kk.T
    return x, 0.01 * (bg[0] @ torch.cos(ph).T + bg[1] @ torch.sin(ph).T), (2 * size + 1) ** 2


def break_even(pretrain_s: float, fresh_s: float, mad_s: float) -> float:
    """``N* = pretrain_s / (fresh_s - mad_s)``: ``inf`` when MAD is not faster or never gets there,
    ``0`` when MAD gets there and a fresh fit does not (it pays from the first query)."""
    if not math.isfinite(mad_s):
        return math.inf
    if not math.isfinite(fresh_s):
        return 0.0
    return pretrain_s / (fresh_s - mad_s) if fresh_s > mad_s else math.inf


def _median(values: Sequence[float | None]) -> float:
    return statistics.median([math.inf if v is None else v for v in values])


@dataclass
class Prepared:
    """One family of the study, pretrained: the grid, the samples, the decoder and its latents."""

    name: str
    kind: str
    size: int
    n_par: int
    x: Tensor                    # (n_pts, d) grid
    train: Tensor                # (n_train, n_pts)
    val: Tensor                  # (n_val, n_pts) the new samples
    dec: Decoder
    Z: Tensor                    # (n_train, n_par) training latents
    report: PretrainReport
    pretrain_seconds: float
    lam: float
    seed: int

    @property
    def box(self) -> tuple[tuple[float, float], ...]:
        return _box(self.kind)


def family_seed(kind: str, size: int, seed: int) -> int:
    """The seed of a family's samples (train and new ones alike) in the study."""
    return 1000 * LADDERS.index(kind) + size + seed


def prepare_family(name: str, n_train: int = 64, n_val: int = 8, n_grid: int | None = None, adam: int = 1000,
                   lbfgs: int = 300, seed: int = 0, lam: float = 0.01, progress: bool = False) -> Prepared:
    """Draw the family's samples and pretrain its auto-decoder from principal-coordinate latents
    (``progress``: pretraining's progress bars)."""
    kind, size = parse_family(name)
    n_grid = n_grid or (32 if kind == "ac2d" else 256)
    x, U, n_par = family_samples(name, n_train + n_val, n_grid, seed=family_seed(kind, size, seed))
    train, val = U[:n_train], U[n_train:]
    box = _box(kind)
    dec = Decoder(box, n_par, seed=seed, **SHAPE)
    sob = {"ux": spectral_derivative(train, box[0], 1)} if kind != "ac2d" else False
    t0 = time.perf_counter()
    Z, rep = pretrain(dec, x, train, lam=lam, adam_iters=adam, lbfgs_iters=lbfgs, lr=1e-3, seed=seed,
                      progress=progress, sobolev=sob, normalize=True, z_init="pca")
    return Prepared(name, kind, size, n_par, x, train, val, dec, Z, rep, time.perf_counter() - t0, lam, seed)


def fit_arms(prep: Prepared, lm: int = 100, tols: Sequence[float] = (1e-6, 1e-8, 1e-10),
             n: int | None = None, progress: bool = False) -> tuple[dict[str, list[FitResult]], Tensor]:
    """Fit the first ``n`` new samples (all by default) in every one-at-a-time arm of :data:`ARMS`
    (``progress``: a bar over the samples).

    One Levenberg-Marquardt fit of at most ``lm`` steps to the tightest tolerance for every arm;
    returns the fits per arm and the nearest training latents they started from.
    """
    tols = sorted((float(t) for t in tols), reverse=True)
    if not tols or min(tols) <= 0:
        raise ValueError(f"need positive tolerances, got {tols}")
    val = prep.val if n is None else prep.val[:n]
    budget = dict(adam_iters=0, lm_iters=lm, tol=min(tols), data_scale=prep.report.data_scale, thresholds=tols)
    fits: dict[str, list[FitResult]] = {a: [] for a in ARMS if a != "mad_l_batched"}
    near = torch.stack([nearest_latent(prep.train, prep.Z, u)[0] for u in val])
    dec, x, lam = prep.dec, prep.x, prep.lam
    for i, u in enumerate(tqdm(val, desc=f"{prep.name}: fits", disable=not progress, leave=False)):
        s = prep.seed + 7919 * (i + 1)
        fits["mad_l"].append(fit_sample(dec, x, u, near[i], train="z", lam=lam, **budget))
        fits["mad_lm"].append(fit_sample(dec, x, u, near[i], train="z+theta", lam=lam, **budget))
        fits["random"].append(fit_sample(dec, x, u, random_latent(prep.n_par, s), train="z+theta", lam=lam,
                                         **budget))
        fits["fresh"].append(fit_sample(Decoder(prep.box, 0, seed=s, **SHAPE), x, u, None, train="theta",
                                        **budget))
    return fits, near


def study_family(name: str, n_train: int = 64, n_val: int = 8, n_grid: int | None = None, adam: int = 1000,
                 lbfgs: int = 300, lm: int = 100, tols: Sequence[float] = (1e-6, 1e-8, 1e-10), seed: int = 0,
                 lam: float = 0.01, progress: bool = False) -> dict:
    """Pretrain on ``name`` and fit ``n_val`` new samples in every arm of :data:`ARMS`; one record.

    Per tolerance and arm: how many fits reach it, the median seconds and iterations to it (a fit
    that does not reach it counts as infinite), and the break-even ``N*`` of MAD-LM and of batched
    MAD-L against the fresh network. All random draws come from ``seed``; ``progress`` shows bars
    for pretraining and the fits.
    """
    tols = sorted((float(t) for t in tols), reverse=True)
    if not tols or min(tols) <= 0:
        raise ValueError(f"need positive tolerances, got {tols}")
    prep = prepare_family(name, n_train, n_val, n_grid, adam, lbfgs, seed, lam, progress)
    pre, rep, x, val, dec = prep.pretrain_seconds, prep.report, prep.x, prep.val, prep.dec
    fits, near = fit_arms(prep, lm, tols, progress=progress)
    rows = []
    for tol in tols:
        key = f"{tol:g}"
        arms = {a: {"reached": sum(r.first_below[key] is not None for r in rs),
                    "seconds_to_tol": _median([r.first_below_seconds[key] for r in rs]),
                    "iters_to_tol": _median([r.first_below[key] for r in rs])} for a, rs in fits.items()}
        b = fit_latents(dec, x, val, near, adam_iters=0, lm_iters=lm, tol=tol, lam=lam, data_scale=rep.data_scale)
        done = int(b["reached"].sum())
        # every query of the batch waits for the whole batch: seconds per query = total / B, if most reached
        arms["mad_l_batched"] = {"reached": done, "seconds_to_tol": b["seconds"] / n_val if 2 * done > n_val
                                 else math.inf, "iters_to_tol": _median([int(v) if v >= 0 else None
                                                                         for v in b["iters_to_tol"]])}
        fresh = arms["fresh"]["seconds_to_tol"]
        rows.append({"tol": tol, "arms": arms,
                     "n_star": break_even(pre, fresh, arms["mad_lm"]["seconds_to_tol"]),
                     "n_star_batched": break_even(pre, fresh, arms["mad_l_batched"]["seconds_to_tol"])})
    final = {a: statistics.median(r.mse for r in rs) for a, rs in fits.items()}
    return {"family": name, "ladder": prep.kind, "size": prep.size, "params": prep.n_par, "n_train": n_train,
            "n_val": n_val, "n_points": x.shape[0], "u_rms": float(torch.cat([prep.train, val]).pow(2).mean().sqrt()),
            "pretrain_seconds": pre, "pretrain_mean_rel": rep.mean_rel,
            "p_mad": dec.n_params, "p_fresh": Decoder(prep.box, 0, **SHAPE).n_params, "lm": lm,
            "final_mse_median": final, "rows": rows}
