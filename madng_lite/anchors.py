"""The parent papers' benchmarks with known answers (book: Chapters 4-5, 10; METHOD.md section 4).

* ``rsng_ac``: RSNG Allen-Cahn, ``u_t = 5e-3 u_xx + u - u^3`` on [0, 2 pi), T = 4.
* ``rsng_burgers``: RSNG Burgers, ``u_t = 1e-3 u_xx - u u_x`` on [-1, 1), T = 4.
* ``ng_kdv``: NG KdV two-soliton, ``u_t = -u_xxx - 6 u u_x`` on [-20, 40), T = 4 (exact solution).

Each anchor knows its PDE, box, initial condition, time step, network and how to produce the
ground truth on an evaluation grid independent of the sample points.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from . import points as pts
from .decoder import Decoder
from .derivatives import FastMLP
from .exact import kdv_two_soliton
from .fit import FitReport, callable_derivatives, fit_initial_condition
from .pdes import PDE, make_pde
from .reference import spectral_solve


def _ac_u0(x: Tensor) -> Tensor:
    x = x[:, 0]
    return (torch.tanh(2 * torch.sin(x)) / 3 - torch.exp(-23.5 * (x - math.pi / 2) ** 2)
            + torch.exp(-27 * (x - 4.2) ** 2) + torch.exp(-38 * (x - 5.4) ** 2))


def _burgers_u0(x: Tensor) -> Tensor:
    x = x[:, 0]
    return (1 - x**2) * torch.exp(-30 * (x + 0.5) ** 2)


def _kdv_u0(x: Tensor) -> Tensor:
    return kdv_two_soliton(x[:, 0], 0.0)


@dataclass(frozen=True)
class Anchor:
    """A benchmark problem with its discretisation and network."""

    name: str
    pde: PDE
    box: tuple[tuple[float, float], ...]
    u0: Callable[[Tensor], Tensor]
    T: float
    dt: float
    n_points: int
    sparse: int | None
    width: int
    depth: int
    n_freq: int
    fit_names: tuple[str, ...]
    ref_n: int          # evaluation grid (and spectral grid) size
    ref_dt: float       # spectral time step
    n_eval: int = 41    # number of evaluation times in [0, T]
    ridge: float = 1e-10  # measured: 10x more accurate than 1e-8 on the sparse RSNG anchors

    def t_eval(self) -> np.ndarray:
        return np.linspace(0.0, self.T, self.n_eval)

    def eval_grid(self) -> Tensor:
        return pts.grid(self.box, self.ref_n)

    def reference(self) -> np.ndarray:
        """Ground truth at the times ``t_eval()`` on the grid ``eval_grid()``, shape ``(n_eval, ref_n)``."""
        x = self.eval_grid()
        if self.name == "ng_kdv":
            return np.stack([kdv_two_soliton(x[:, 0].numpy(), float(t)) for t in self.t_eval()])
        u0 = self.u0(x).numpy()
        return spectral_solve(self.pde, u0, self.box, self.T, self.ref_dt, self.t_eval())


ANCHORS: dict[str, Anchor] = {
    "rsng_ac": Anchor("rsng_ac", make_pde("allen_cahn", eps=5e-3, r=1.0), ((0.0, 2 * math.pi),), _ac_u0,
                      T=4.0, dt=5e-3, n_points=1000, sparse=150, width=25, depth=4, n_freq=2,
                      fit_names=("u", "ux"), ref_n=256, ref_dt=5e-3),
    "rsng_burgers": Anchor("rsng_burgers", make_pde("burgers", nu=1e-3), ((-1.0, 1.0),), _burgers_u0,
                           T=4.0, dt=1e-3, n_points=1000, sparse=125, width=25, depth=3, n_freq=2,
                           fit_names=("u", "ux"), ref_n=2048, ref_dt=2.5e-4),
    "ng_kdv": Anchor("ng_kdv", make_pde("kdv", a=6.0, b=1.0), ((-20.0, 40.0),), _kdv_u0,
                     T=4.0, dt=1e-3, n_points=1000, sparse=None, width=20, depth=2, n_freq=6,
                     fit_names=("u", "ux", "uxx", "uxxx"), ref_n=1024, ref_dt=1e-3, ridge=1e-8),
}


def get_anchor(name: str, **changes) -> Anchor:
    """An anchor by name, with fields replaced by ``changes`` (e.g. ``T=0.5`` in quick mode)."""
    if name not in ANCHORS:
        raise ValueError(f"unknown anchor {name!r}; known: {sorted(ANCHORS)}")
    return replace(ANCHORS[name], **changes)


def fit_anchor(a: Anchor, seed: int = 0, adam_iters: int = 1000, lbfgs_iters: int = 500, lm_iters: int = 200,
               n_fit: int = 2000, progress: bool = False) -> tuple[Decoder, FitReport]:
    """A network of the anchor's shape fitted to its initial condition (Sobolev, then LM on u)."""
    dec = Decoder(a.box, width=a.width, depth=a.depth, n_freq=a.n_freq, seed=seed)
    x = pts.grid(a.box, n_fit)
    targets = callable_derivatives(a.u0, x, a.fit_names)
    rep = fit_initial_condition(dec, x, targets, adam_iters=adam_iters, lbfgs_iters=lbfgs_iters, lr=3e-3,
                                lm_iters=lm_iters, progress=progress)
    return dec, rep


def predict(dec: Decoder, thetas: Tensor, x: Tensor) -> np.ndarray:
    """``u`` on ``x`` for each theta (rows of ``thetas``), shape ``(len(thetas), n)``."""
    fast = FastMLP(dec)
    with torch.no_grad():
        return np.stack([fast.forward(th, x, None)[0]["u"].numpy() for th in thetas])


def space_time_rel_l2(u: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(u - ref) / np.linalg.norm(ref))


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0
