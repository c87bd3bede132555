"""One fit of one sample, the same for every arm of a comparison (book: Chapter 2, the auto-decoder).

MAD-L (the latent ``z`` alone), MAD-LM (``z`` and the weights theta), a random latent and a
fresh network (NG without meta-learning: theta alone, no latent) all fit the initial condition
``u0`` of a new sample with :func:`fit_sample`, which differs between them only in its start and
in *which* parameters move. The optimiser is the same for all: Adam, then (optionally) L-BFGS,
then (optionally) Levenberg-Marquardt, each phase skipped once the reconstruction MSE
``mean((u - u0)^2)`` is below ``tol``. The loss is the auto-decoder's (:func:`madng_lite.mad.pretrain`)::

    sum_k (u(x_k; z, theta) - u0(x_k))^2 / data_scale + lam * mean(z^2)

Levenberg-Marquardt is a damped Gauss-Newton method: each step solves
``(J^T J + mu I) d = J^T r`` for the residual ``r`` and its Jacobian ``J`` with respect to the
moving parameters (theta columns from :class:`~madng_lite.derivatives.FastMLP`, latent columns
``du/dz = W_1[:, z]^T g_1`` from the first layer's backward signal). Near a minimum it converges
quadratically where Adam's fixed step stalls, which is why it reaches MSEs of 1e-10 and below.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .decoder import Decoder
from .derivatives import FastMLP
from .solve import NonFiniteError, lstsq_solve

__all__ = ["TRAIN", "FitResult", "fit_sample"]

TRAIN = ("z", "z+theta", "theta")
THRESHOLDS = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10)


class _Reached(Exception):
    """Raised inside an L-BFGS closure once the tolerance is met."""


@dataclass
class FitResult:
    """The outcome of :func:`fit_sample`: what to evolve, how well it fits, and what it cost."""

    decoder: Decoder            # the decoder to evolve (a copy when theta moved)
    z: Tensor | None            # the fitted latent (None for a network without one)
    mse: float                  # mean((u - u0)^2) on the fit points at the returned iterate
    reached: bool               # mse < tol
    iters: dict[str, int]       # iterations per phase: adam, lbfgs (closure evaluations), lm
    seconds: float
    iters_to_tol: int | None    # iterations, all phases together, until mse < tol (None: never)
    seconds_to_tol: float | None
    first_below: dict[str, int | None] = field(default_factory=dict)   # threshold -> first iteration below
    history: list[tuple[int, float]] = field(default_factory=list)     # (iteration, mse), every 50 iterations
    best_iter: int = 0          # the iteration of the returned iterate
    first_below_seconds: dict[str, float | None] = field(default_factory=dict)  # threshold -> seconds to it

    @property
    def total_iters(self) -> int:
        return sum(self.iters.values())

    def summary(self) -> dict:
        """A JSON-friendly record (no tensors)."""
        return {"mse": self.mse, "reached": self.reached, "iters": dict(self.iters), "seconds": self.seconds,
                "iters_to_tol": self.iters_to_tol, "seconds_to_tol": self.seconds_to_tol,
                "first_below": dict(self.first_below)}


class _Tracker:
    """Counts iterations, keeps the best iterate and the first time each threshold is crossed."""

    def __init__(self, tol: float, thresholds: Sequence[float]) -> None:
        self.tol, self.thresholds = tol, tuple(thresholds)
        self.it, self.t0 = 0, time.perf_counter()
        self.best, self.best_mse, self.best_it = None, math.inf, 0
        self.first_below: dict[str, int | None] = {f"{t:g}": None for t in self.thresholds}
        self.first_below_seconds: dict[str, float | None] = {f"{t:g}": None for t in self.thresholds}
        self.iters_to_tol: int | None = None
        self.seconds_to_tol: float | None = None
        self.history: list[tuple[int, float]] = []

    def see(self, mse: float, state: list[Tensor]) -> bool:
        """Record the MSE of the current iterate; True once it is below the tolerance."""
        if self.it % 50 == 0:
            self.history.append((self.it, mse))
        for t in self.thresholds:
            if mse < t and self.first_below[f"{t:g}"] is None:
                self.first_below[f"{t:g}"] = self.it
                self.first_below_seconds[f"{t:g}"] = time.perf_counter() - self.t0
        if mse < self.best_mse:
            self.best_mse, self.best_it, self.best = mse, self.it, [s.detach().clone() for s in state]
        if mse < self.tol and self.iters_to_tol is None:
            self.iters_to_tol, self.seconds_to_tol = self.it, time.perf_counter() - self.t0
        return mse < self.tol


def fit_sample(decoder: Decoder, x: Tensor, u0: Tensor, z0: Tensor | None = None, train: str = "z",
               adam_iters: int = 1000, lr: float = 1e-3, lbfgs_iters: int = 0, lm_iters: int = 0,
               tol: float = 1e-8, lam: float = 0.0, data_scale: float = 1.0,
               thresholds: Sequence[float] = THRESHOLDS, progress: bool = False) -> FitResult:
    """Fit ``u(x; z, theta)`` to ``u0`` (n,) at the points ``x`` (n, d), moving ``train`` only.

    ``train``: ``"z"`` (MAD-L: the decoder is not modified), ``"z+theta"`` (MAD-LM) or ``"theta"``
    (a network without latent, or a frozen ``z0``); when theta moves, a deep copy of ``decoder`` is
    trained and returned. ``z0`` is the start of the latent (required when the decoder has one).
    Each phase stops as soon as the MSE is below ``tol``; the lowest-MSE iterate seen is returned.
    """
    if train not in TRAIN:
        raise ValueError(f"unknown train {train!r}; known: {', '.join(TRAIN)}")
    if min(adam_iters, lbfgs_iters, lm_iters) < 0 or not tol > 0 or not data_scale > 0 or lam < 0:
        raise ValueError(f"need iterations >= 0, tol > 0, data_scale > 0 and lam >= 0; got {adam_iters}, "
                         f"{lbfgs_iters}, {lm_iters}, {tol}, {data_scale}, {lam}")
    has_z = decoder.latent_dim > 0
    if has_z and z0 is None:
        raise ValueError(f"this decoder takes a latent of size {decoder.latent_dim}: pass z0")
    if "z" in train.split("+") and not has_z:
        raise ValueError(f"train={train!r} moves a latent, but the decoder has none (use train='theta')")
    if x.ndim != 2 or x.shape[1] != decoder.dim or u0.reshape(-1).shape[0] != x.shape[0]:
        raise ValueError(f"need x (n, {decoder.dim}) and u0 with n values, got {tuple(x.shape)} and {tuple(u0.shape)}")
    if not bool(torch.isfinite(u0).all()):
        raise ValueError("u0 has non-finite values")
    if not decoder.has_fast_path:
        raise ValueError(f"fit_sample needs a fixed activation (tanh, sin, softplus), not {decoder.activation_name!r}")
    move_z, move_theta = train in ("z", "z+theta"), train in ("z+theta", "theta")
    dtype = decoder.dtype
    x, u0 = x.to(dtype), u0.reshape(-1).to(x.device, dtype)
    dec = copy.deepcopy(decoder) if move_theta else decoder
    z = None
    if has_z:
        z = torch.as_tensor(z0).reshape(-1).detach().clone().to(x.device, dtype)
        if z.shape[0] != decoder.latent_dim:
            raise ValueError(f"z0 must have {decoder.latent_dim} entries, got {z.shape[0]}")
    fast = FastMLP(dec)
    params = list(dec.parameters()) if move_theta else []
    theta_fixed = None if move_theta else dec.flat_theta()
    moving = ([z.requires_grad_(True)] if move_z else []) + params
    track = _Tracker(tol, thresholds)

    def state() -> list[Tensor]:
        return ([z] if z is not None else []) + [p for p in params]

    def mse_and_loss() -> tuple[float, Tensor]:
        theta = torch.cat([p.reshape(-1) for p in params]) if move_theta else theta_fixed
        u = fast.forward(theta, x, z, ("u",))[0]["u"]
        err2 = (u - u0) ** 2
        loss = err2.sum() / data_scale + (lam * (z**2).mean() if move_z and lam > 0 else 0.0)
        return float(err2.detach().mean()), loss

    done = {"adam": 0, "lbfgs": 0, "lm": 0}
    reached = False
    with torch.no_grad():
        reached = track.see(mse_and_loss()[0], state())
    if not math.isfinite(track.best_mse):
        raise NonFiniteError("fit: the reconstruction MSE is not finite at the start (z0 or the decoder)")
    opt = torch.optim.Adam(moving, lr=lr) if adam_iters and not reached else None
    for _ in tqdm(range(adam_iters if opt else 0), desc=f"fit {train} (Adam)", disable=not progress):
        opt.zero_grad()
        _, loss = mse_and_loss()
        loss.backward()
        opt.step()
        done["adam"] += 1
        track.it += 1
        with torch.no_grad():
            mse = mse_and_loss()[0]
        if not math.isfinite(mse) or track.see(mse, state()):
            break
    _restore(track, state())
    reached = track.best_mse < tol
    if lbfgs_iters and not reached:
        def closure() -> Tensor:
            lb.zero_grad()
            mse, loss = mse_and_loss()
            done["lbfgs"] += 1
            track.it += 1
            if track.see(mse, state()):
                raise _Reached
            loss.backward()
            return loss

        lb = torch.optim.LBFGS(moving, lr=1.0, max_iter=lbfgs_iters, max_eval=lbfgs_iters, history_size=50,
                               tolerance_grad=1e-15, tolerance_change=1e-18, line_search_fn="strong_wolfe")
        try:
            lb.step(closure)
        except _Reached:
            pass
        _restore(track, state())
        reached = track.best_mse < tol
    for p in moving:
        p.requires_grad_(False)
        p.grad = None
    if lm_iters and not reached:
        done["lm"] = _lm_steps(dec, fast, x, u0, z, move_z, move_theta, lm_iters, track, state, data_scale, lam,
                              progress)
        _restore(track, state())
    for p in params:
        p.requires_grad_(True)
    return FitResult(dec, None if z is None else z.detach(), track.best_mse, track.best_mse < tol, done,
                     time.perf_counter() - track.t0, track.iters_to_tol, track.seconds_to_tol, track.first_below,
                     track.history, track.best_it, track.first_below_seconds)


@torch.no_grad()
def _restore(track: _Tracker, state: list[Tensor]) -> None:
    for s, b in zip(state, track.best):
        s.copy_(b)


@torch.no_grad()
def _lm_steps(dec: Decoder, fast: FastMLP, x: Tensor, u0: Tensor, z: Tensor | None, move_z: bool, move_theta: bool,
             iters: int, track: _Tracker, state: Callable[[], list[Tensor]], data_scale: float = 1.0,
             lam: float = 0.0, progress: bool = False, mu: float = 1e-3) -> int:
    """Up to ``iters`` Levenberg-Marquardt steps on the moving parameters (in place); returns the steps taken.

    The damping ``mu`` is relative to the mean diagonal of ``J^T J`` (:func:`madng_lite.solve.lstsq_solve`):
    it shrinks after a step that lowers the loss and grows after one that does not (then the step is undone).
    """
    theta = dec.flat_theta()
    nz = 0 if z is None else z.shape[0]
    w_z = math.sqrt(lam / nz) if (move_z and lam > 0) else 0.0

    def residual(th: Tensor, zz: Tensor | None) -> tuple[Tensor, Tensor, float]:
        d, st = fast.forward(th, x, zz, ("u",), need_jac=True)
        r = d["u"] - u0
        mse = float((r**2).mean())
        blocks = []
        if move_theta:
            blocks.append(fast.jac(st))
        if move_z:   # du/dz = W_1[:, latent columns]^T g_1, with g_1 the first layer's backward signal
            W1 = dec.weights(th)[0][0]
            blocks.append((W1[:, W1.shape[1] - nz:].T @ st["GT"][: W1.shape[0]]).T)
        J = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)   # (no copy: the layout of J
        if data_scale != 1.0:                                              #  decides the rounding of J^T J)
            J, r = J / math.sqrt(data_scale), r / math.sqrt(data_scale)
        if w_z:
            eye = torch.zeros(nz, J.shape[1], dtype=J.dtype, device=J.device)
            eye[:, J.shape[1] - nz:] = torch.eye(nz, dtype=J.dtype, device=J.device) * w_z
            J, r = torch.cat([J, eye]), torch.cat([r, w_z * zz])
        return r, J, mse

    r, J, mse = residual(theta, z)
    loss, steps = float(r @ r), 0
    for _ in tqdm(range(iters), desc="fit (LM)", disable=not progress):
        try:
            d = lstsq_solve(J, r, "ridge", ridge=mu)
        except FloatingPointError:
            mu *= 10
            continue
        steps += 1
        track.it += 1
        th_new = theta - d[: theta.numel()] if move_theta else theta
        z_new = (z - d[d.numel() - nz:]) if move_z else z
        r_new, J_new, mse_new = residual(th_new, z_new)
        new = float(r_new @ r_new)
        if new < loss:
            theta, r, J, loss, mse, mu = th_new, r_new, J_new, new, mse_new, max(mu / 3, 1e-12)
            if move_theta:
                dec.load_flat(theta)
            if move_z:
                z.copy_(z_new)
        else:
            mu = min(mu * 4, 1e6)
        if track.see(mse, state()):
            break
    return steps
