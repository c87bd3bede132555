"""The auto-decoder: pretraining, nearest latent, fine-tuning (book: Chapter 2, the auto-decoder).

Pretraining fits one decoder and one latent per training sample to the initial conditions
``U0`` (N, n) on the grid ``x`` (n, d) (METHOD.md section 1)::

    min_{theta, z_1..z_N}  (1/N) sum_i [ sum_k (u(x_k; z_i, theta) - u0_i(x_k))^2 + lam * mean(z_i^2) ]

optionally with derivative (Sobolev) terms ``sum_k (D u - D u0_i)^2`` scaled by
``mean(u0^2) / mean((D u0)^2)``. All samples are evaluated in one batch: the grid is repeated
``N`` times and each copy gets its sample's latent as a per-point input (one large matrix
product per layer instead of a Python loop over samples: 2 to 5 times faster on one CPU thread for
20 to 64 samples of 256 points, 1 x 20 to 4 x 30 networks, with or without ``u_x``). Adam first,
then L-BFGS.

Fine-tuning a new sample minimises the same loss for that sample alone, over ``z`` (MAD-L) or
over ``z`` and a *copy* of the decoder's weights (MAD-LM), from the nearest training latent
(or a random one, for comparison), and stops once the reconstruction MSE is below ``tol``.
"""
from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .batch import fit_latents
from .decoder import Decoder
from .derivatives import FastMLP, derivs_generic
from .fit import run_lbfgs
from .manifold import PCAEncoder, initial_latents
from .solve import NonFiniteError

__all__ = ["PretrainReport", "FinetuneResult", "pretrain", "reconstruct", "nearest_latent", "nearest_latents",
           "finetune"]


@dataclass
class PretrainReport:
    """Reconstruction errors per training sample after pretraining, and what it cost."""

    rel_errors: list[float]          # ||u_i - u0_i|| / ||u0_i|| per sample
    mse: list[float]                 # mean((u_i - u0_i)^2) per sample
    deriv_rel_errors: dict[str, float]  # over all samples, for the Sobolev terms
    seconds: float
    adam_iters: int
    lbfgs_iters: int
    loss_history: list[float] = field(default_factory=list)
    data_scale: float = 1.0          # the data term was divided by this (see ``normalize``)
    # seconds of this call alone; ``seconds`` adds those of earlier, interrupted runs it resumed
    # (recorded in checkpoints since they store it; older checkpoints count from the resume)
    seconds_this_run: float | None = None
    resumed: bool = False
    refine_rounds: int = 0           # rounds of the latent-LM / L-BFGS refinement after L-BFGS

    @property
    def mean_rel(self) -> float:
        return sum(self.rel_errors) / len(self.rel_errors)

    @property
    def max_rel(self) -> float:
        return max(self.rel_errors)

    def summary(self) -> dict:
        return {"mean_rel": self.mean_rel, "max_rel": self.max_rel, "mean_mse": sum(self.mse) / len(self.mse),
                "deriv_rel": self.deriv_rel_errors, "seconds": self.seconds, "adam_iters": self.adam_iters,
                "lbfgs_iters": self.lbfgs_iters, "data_scale": self.data_scale,
                "seconds_this_run": self.seconds if self.seconds_this_run is None else self.seconds_this_run,
                "resumed": self.resumed, "refine_rounds": self.refine_rounds}


def _check_data(decoder: Decoder, x: Tensor, U: Tensor) -> None:
    if decoder.latent_dim < 1:
        raise ValueError("the auto-decoder needs a decoder with latent_dim >= 1")
    if x.ndim != 2 or x.shape[1] != decoder.dim:
        raise ValueError(f"x must have shape (n, {decoder.dim}), got {tuple(x.shape)}")
    if U.ndim != 2 or U.shape[1] != x.shape[0]:
        raise ValueError(f"U0 must have shape (N, {x.shape[0]}) (one row per sample on x), got {tuple(U.shape)}")
    if not bool(torch.isfinite(U).all()):
        raise ValueError("U0 has non-finite values")


def _predict(decoder: Decoder, fast: FastMLP | None, theta: Tensor, x: Tensor, Z: Tensor,
             names: Sequence[str]) -> dict[str, Tensor]:
    """Named derivatives for every sample at once, each of shape ``(N, n)``."""
    N, n = Z.shape[0], x.shape[0]
    X = x.repeat(N, 1)
    Zp = Z.repeat_interleave(n, dim=0)
    if fast is not None:
        d = fast.forward(theta, X, Zp, names)[0]
        return {k: v.reshape(N, n) for k, v in d.items()}
    rows = [derivs_generic(decoder, theta, x, Z[i], names) for i in range(N)]  # e.g. rational activations
    return {nm: torch.stack([r[nm] for r in rows]) for nm in names}


@torch.no_grad()
def reconstruct(decoder: Decoder, x: Tensor, Z: Tensor) -> Tensor:
    """``u(x; z_i)`` for every row ``z_i`` of ``Z``, shape ``(N, n)``."""
    fast = FastMLP(decoder) if decoder.has_fast_path else None
    return _predict(decoder, fast, decoder.flat_theta(), x, Z.to(x), ("u",))["u"]


def _sobolev_targets(sobolev, x: Tensor, U0: Tensor, decoder: Decoder) -> dict[str, Tensor]:
    if sobolev is False or sobolev is None:
        return {}
    if isinstance(sobolev, Mapping):
        out = {k: torch.as_tensor(v, dtype=U0.dtype, device=U0.device) for k, v in sobolev.items() if k != "u"}
        for k, v in out.items():
            if v.shape != U0.shape:
                raise ValueError(f"Sobolev target {k!r} must have shape {tuple(U0.shape)}, got {tuple(v.shape)}")
        return out
    if decoder.dim != 1:
        raise ValueError("spectral Sobolev targets are 1D only; pass a mapping of targets in 2D")
    from .data import spectral_derivative

    names = ("ux", "uxx") if sobolev is True else tuple(sobolev)
    orders = {"ux": 1, "uxx": 2, "uxxx": 3}
    bad = [nm for nm in names if nm not in orders]
    if bad:
        raise ValueError(f"unknown Sobolev derivative(s) {bad}; known: {list(orders)}")
    return {nm: spectral_derivative(U0, decoder.box[0], orders[nm]) for nm in names}


def pretrain(decoder: Decoder, x: Tensor, U0: Tensor, latent_dim: int | None = None, lam: float = 0.01,
             adam_iters: int = 1000, lbfgs_iters: int = 500, lr: float = 1e-3, seed: int = 0,
             progress: bool = True, sobolev: bool | Sequence[str] | Mapping[str, Tensor] = False,
             sobolev_weight: float = 1.0, normalize: bool = False, checkpoint: str | os.PathLike | None = None,
             checkpoint_every: int = 200, config: dict | None = None,
             callback: Callable[[int, float], None] | None = None, z_init: str = "random",
             refine_rounds: int = 0, refine_lm: int = 20, refine_lbfgs: int = 100
             ) -> tuple[Tensor, PretrainReport]:
    """Fit ``decoder`` (in place) and one latent per row of ``U0``; return ``(Z, report)``.

    Parameters
    ----------
    decoder : a :class:`Decoder` with ``latent_dim >= 1`` (its weights are the initial theta).
    x, U0 : grid ``(n, d)`` and initial values ``(N, n)``.
    latent_dim : optional check against ``decoder.latent_dim``.
    lam : weight of the latent penalty ``lam * mean(z_i^2)`` (0.01 KdV/Burgers, 0.05 Allen-Cahn).
    seed : seed of the initial latents ``z_i ~ N(0, I)``.
    z_init : ``"random"`` (``z_i ~ N(0, I)`` from ``seed``) or ``"pca"``: each sample's coordinates on
        the training data's principal directions (:class:`madng_lite.manifold.PCAEncoder`), so that
        nearby initial conditions start at nearby latents.
    sobolev : ``True`` (``ux, uxx`` by the FFT, 1D), a list of names, or a mapping name -> ``(N, n)``.
    normalize : fit ``U0 / sigma`` with ``sigma = rms(U0)``, then multiply the output layer by ``sigma``
        (exact). The loss, ``lam`` and the network's initial output scale then mean the same whatever
        the amplitude of the data: the AC2D initial data are about 30 times smaller than KdV's, and a
        quick AC2D fit stalls at 12 % error without this, 2.7 % with it. Pass ``report.data_scale``
        (``sigma^2``) to :func:`finetune` to fine-tune with the same loss.
    checkpoint : file written every ``checkpoint_every`` Adam iterations and at the end
        (:func:`madng_lite.io.save_checkpoint`); an existing one is resumed from.
    callback : called as ``callback(iteration, loss)`` after every Adam step (e.g. to log or stop).
    refine_rounds : rounds of a refinement after L-BFGS, where Adam and L-BFGS leave the latents far
        from their best: each round fits every latent alone by ``refine_lm`` Levenberg-Marquardt
        steps (theta fixed; the data term and the penalty, without Sobolev terms;
        :func:`madng_lite.batch.fit_latents`, all at once), then runs ``refine_lbfgs`` L-BFGS
        iterations on theta and the latents together. It lowers the training error where L-BFGS
        stops, but fitting every latent alone scrambles the layout of the latent space: on AC2D, new
        samples fit worse after six rounds than after the same time in more L-BFGS
        (``benchmarks/latent_ntrain_study.py --refine``; book: Chapter 2, the auto-decoder, "Where
        pretraining stops"). Judge it on held-out samples.
    """
    _check_data(decoder, x, U0)
    if latent_dim is not None and int(latent_dim) != decoder.latent_dim:
        raise ValueError(f"latent_dim={latent_dim} but the decoder takes latents of size {decoder.latent_dim}")
    if lam < 0 or adam_iters < 0 or lbfgs_iters < 0:
        raise ValueError(f"need lam, adam_iters, lbfgs_iters >= 0; got {lam}, {adam_iters}, {lbfgs_iters}")
    if z_init not in ("random", "pca"):
        raise ValueError(f"unknown z_init {z_init!r}; known: 'random', 'pca'")
    if min(refine_rounds, refine_lm, refine_lbfgs) < 0:
        raise ValueError(f"need refine_rounds, refine_lm, refine_lbfgs >= 0; got {refine_rounds}, {refine_lm}, "
                         f"{refine_lbfgs}")
    if refine_rounds and not decoder.has_fast_path:
        raise ValueError("the refinement fits the latents on the layer-wise fast path, which this decoder's "
                         "activation does not have; use refine_rounds=0")
    from .io import CheckpointError, read_checkpoint, save_checkpoint

    dtype = decoder.dtype
    x, U0 = x.to(dtype), U0.to(dtype)
    N = U0.shape[0]
    targets = {"u": U0, **_sobolev_targets(sobolev, x, U0, decoder)}
    names = tuple(targets)
    scale = {k: 1.0 if k == "u" else sobolev_weight * float((U0**2).mean() / (v**2).mean().clamp_min(1e-300))
             for k, v in targets.items()}
    # normalize: fit U0 / sigma, then fold sigma into the output layer (u = sigma * u_normalised exactly)
    sigma = float((U0**2).mean().sqrt().clamp_min(1e-150)) if normalize else 1.0
    fit_targets = {k: v / sigma for k, v in targets.items()}
    finished = False
    Z0 = initial_latents(N, decoder.latent_dim, seed) if z_init == "random" else \
        PCAEncoder.fit(U0, decoder.latent_dim).encode(U0)
    Z = Z0.to(x.device, dtype).requires_grad_(True)
    params = list(decoder.parameters())
    fast = FastMLP(decoder) if decoder.has_fast_path else None

    def loss_fn() -> Tensor:
        theta = torch.cat([p.reshape(-1) for p in params])
        pred = _predict(decoder, fast, theta, x, Z, names)
        fit = sum(scale[k] * ((pred[k] - fit_targets[k]) ** 2).sum() for k in names)
        return (fit + lam * (Z**2).mean(dim=1).sum()) / N

    opt = torch.optim.Adam(params + [Z], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(adam_iters, 1), eta_min=lr / 100)
    start, history, lb_done = 0, [], 0
    ck = Path(checkpoint) if checkpoint is not None else None
    cfg = dict(config or {}, lam=lam, adam_iters=adam_iters, lbfgs_iters=lbfgs_iters, lr=lr, seed=seed)
    if z_init != "random":   # (absent for random latents: the keys of earlier checkpoints stay valid)
        cfg["z_init"] = z_init
    if refine_rounds:        # (absent without refinement, for the same reason)
        cfg.update(refine_rounds=refine_rounds, refine_lm=refine_lm, refine_lbfgs=refine_lbfgs)
    t0 = time.perf_counter()
    earlier, resumed = 0.0, False   # seconds spent by the runs this one resumes
    if ck is not None and ck.exists():
        saved = read_checkpoint(ck, config=cfg)  # refuses a damaged file or one from other settings
        extra = saved.get("extra") or {}
        if extra.get("stage") not in ("adam", "done"):
            raise CheckpointError(f"checkpoint {str(ck)!r} records no pretraining stage ('adam' or 'done', got "
                                  f"{extra.get('stage')!r}); delete it to start over")
        decoder.load_state_dict(saved["state_dict"])
        with torch.no_grad():
            Z.copy_(saved["latents"].to(dtype))
        start, history = int(extra.get("adam_done", 0)), list(extra.get("history", []))
        resumed = True
        earlier = float(extra.get("seconds", 0.0))
        if extra["stage"] == "adam":
            opt.load_state_dict(extra["opt"])
            sched.load_state_dict(extra["sched"])
        else:  # finished run: nothing left to do
            start, lbfgs_iters, lb_done, finished = adam_iters, 0, int(extra.get("lbfgs_done", 0)), True
    bar = tqdm(range(start, adam_iters), desc="pretrain (Adam)", disable=not progress)
    for i in bar:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        sched.step()
        if i % 50 == 0 or i == adam_iters - 1:
            history.append(float(loss.detach()))
            bar.set_postfix(loss=f"{history[-1]:.3e}")
        if callback is not None:
            callback(i, float(loss.detach()))
        if ck is not None and (i + 1) % checkpoint_every == 0 and i + 1 < adam_iters:
            save_checkpoint(ck, decoder, Z, cfg, {"stage": "adam", "adam_done": i + 1, "history": history,
                                                  "opt": opt.state_dict(), "sched": sched.state_dict(),
                                                  "seconds": earlier + time.perf_counter() - t0})
    if lbfgs_iters > 0:
        with tqdm(total=lbfgs_iters, desc="pretrain (L-BFGS)", disable=not progress) as lbar:
            lb_done = run_lbfgs(params + [Z], loss_fn, lbfgs_iters, tolerance_grad=1e-14, tolerance_change=1e-16)
            lbar.update(lb_done)
        with torch.no_grad():
            history.append(float(loss_fn()))
    rounds = 0 if finished else refine_rounds
    for _ in tqdm(range(rounds), desc="pretrain (refine)", disable=not progress):
        with torch.no_grad():   # the normalised problem: targets U0 / sigma, data_scale 1
            Z.copy_(fit_latents(decoder, x, fit_targets["u"], Z.detach(), adam_iters=0, lm_iters=refine_lm,
                                tol=1e-300, lam=lam)["z"])
        if refine_lbfgs:
            run_lbfgs(params + [Z], loss_fn, refine_lbfgs, tolerance_grad=1e-14, tolerance_change=1e-16)
        with torch.no_grad():
            history.append(float(loss_fn()))
    Z = Z.detach()
    for p in params:
        p.grad = None
    with torch.no_grad():
        if sigma != 1.0 and not finished:
            decoder.layers[-1].weight.mul_(sigma)
            decoder.layers[-1].bias.mul_(sigma)
        theta = decoder.flat_theta()
        pred = _predict(decoder, fast, theta, x, Z, names)
        err = pred["u"] - U0
        rel = (err.norm(dim=1) / U0.norm(dim=1).clamp_min(1e-300)).tolist()
        mse = (err**2).mean(dim=1).tolist()
        drel = {k: float((pred[k] - v).norm() / v.norm().clamp_min(1e-300)) for k, v in targets.items() if k != "u"}
    this_run = time.perf_counter() - t0
    total = earlier if finished else earlier + this_run   # a finished checkpoint: only loaded, nothing trained
    report = PretrainReport(rel, mse, drel, total, adam_iters, lb_done, history, sigma**2, this_run, resumed,
                            refine_rounds)
    if ck is not None and not finished:
        save_checkpoint(ck, decoder, Z, cfg, {"stage": "done", "adam_done": adam_iters, "lbfgs_done": lb_done,
                                              "history": history, "report": report.summary(), "seconds": total})
    return Z, report


def nearest_latent(U0_train: Tensor, Z: Tensor, u0_new: Tensor) -> tuple[Tensor, int]:
    """The latent of the training sample closest to ``u0_new`` in L2 on the grid, and its index."""
    if U0_train.ndim != 2 or Z.ndim != 2 or U0_train.shape[0] != Z.shape[0]:
        raise ValueError(f"need U0_train (N, n) and Z (N, latent) with the same N, got "
                         f"{tuple(U0_train.shape)} and {tuple(Z.shape)}")
    u0_new = u0_new.reshape(-1).to(U0_train)
    if u0_new.shape[0] != U0_train.shape[1]:
        raise ValueError(f"u0_new has {u0_new.shape[0]} values, the training grid has {U0_train.shape[1]}")
    i = int(((U0_train - u0_new) ** 2).sum(dim=1).argmin())
    return Z[i].detach().clone(), i


def nearest_latents(U0_train: Tensor, Z: Tensor, u0_new: Tensor, k: int) -> tuple[Tensor, list[int]]:
    """The latents ``(k, latent)`` of the ``k`` training samples closest to ``u0_new``, nearest first,
    and their indices: the starts of a best-of-``k`` MAD-L fit (book: Chapter 2, the auto-decoder).

    ``nearest_latents(U, Z, u, 1)`` is ``nearest_latent(U, Z, u)`` as a batch of one."""
    if not isinstance(k, int) or not 1 <= k <= U0_train.shape[0]:
        raise ValueError(f"k must be an integer between 1 and the {U0_train.shape[0]} training samples, "
                         f"got {k!r}")
    nearest_latent(U0_train, Z, u0_new)             # the same checks of shapes
    d = ((U0_train - u0_new.reshape(-1).to(U0_train)) ** 2).sum(dim=1)
    idx = [int(i) for i in torch.sort(d, stable=True).indices[:k]]
    return Z[idx].detach().clone(), idx


@dataclass
class FinetuneResult:
    """Outcome of :func:`finetune`: the latent, the decoder to evolve, and the cost."""

    z: Tensor
    decoder: Decoder
    iters: int
    seconds: float
    mse: float
    converged: bool
    history: list[float] = field(default_factory=list)
    first_below: dict[str, int | None] = field(default_factory=dict)  # threshold -> first iteration below it
    best_iter: int = 0  # the iteration whose (z, theta) is returned: the lowest MSE seen
    lm_iters: int = 0   # Levenberg-Marquardt steps taken after Adam
    fit: object = None  # the full :class:`madng_lite.fitting.FitResult`


def finetune(decoder: Decoder, x: Tensor, u0_new: Tensor, z0: Tensor | None = None, mode: str = "L",
             lr: float = 1e-2, max_iters: int = 2000, tol: float = 1e-5, lam: float = 0.01, seed: int = 0,
             data_scale: float = 1.0, progress: bool = False,
             thresholds: Sequence[float] = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7), lm_iters: int = 0,
             lbfgs_iters: int = 0) -> FinetuneResult:
    """Fit a new sample ``u0_new`` (n,): MAD-L (``z`` only) or MAD-LM (``z`` and theta).

    A thin layer over :func:`madng_lite.fitting.fit_sample` (the one fit every arm of a comparison
    uses): Adam for up to ``max_iters`` steps, then up to ``lbfgs_iters`` L-BFGS evaluations and
    ``lm_iters`` Levenberg-Marquardt steps on the same parameters, each phase skipped once the
    reconstruction MSE ``mean((u - u0_new)^2)`` is below ``tol``. ``z0=None`` starts from a random
    latent ``N(0, I)`` drawn from ``seed``. MAD-LM trains a deep copy of ``decoder``; the pretrained
    one is never modified. Adam is not monotone, so the lowest-MSE iterate seen is returned (``mse``,
    ``best_iter``); ``first_below`` records the first iteration below each of ``thresholds``. The loss
    is ``sum_k (u - u0_new)^2 / data_scale + lam * mean(z^2)`` (``data_scale``: see :func:`pretrain`).
    """
    from .fitting import fit_sample

    if mode not in ("L", "LM"):
        raise ValueError(f"unknown fine-tuning mode {mode!r}; known: 'L' (latent), 'LM' (latent and weights)")
    if z0 is None:
        z0 = random_latent(decoder.latent_dim, seed)
    z0 = torch.as_tensor(z0).reshape(-1)
    if z0.shape[0] != decoder.latent_dim:
        raise ValueError(f"z0 must have {decoder.latent_dim} entries, got {z0.shape[0]}")
    r = fit_sample(decoder, x, u0_new, z0, train="z" if mode == "L" else "z+theta", adam_iters=max_iters, lr=lr,
                   lbfgs_iters=lbfgs_iters, lm_iters=lm_iters, tol=tol, lam=lam, data_scale=data_scale,
                   thresholds=thresholds, progress=progress)
    history = [m for it, m in r.history if it <= r.iters["adam"] and it % 50 == 0]
    return FinetuneResult(r.z, r.decoder, r.iters["adam"], r.seconds, r.mse, r.reached, history, r.first_below,
                          r.best_iter, r.iters["lm"], r)


def random_latent(latent_dim: int, seed: int) -> Tensor:
    """A latent drawn from ``N(0, I)`` with ``seed`` (the pretraining prior)."""
    return torch.randn(latent_dim, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
