"""Seeded parametric families of initial conditions, PDEs and ground truth (book: Chapters 6-8).

A :class:`Family` holds ``N`` samples of one parametric problem on one periodic box: the grid
``x`` (from :func:`madng_lite.points.grid`, 'ij' order), the initial values ``U0`` on it, one
PDE object per sample (coefficients may differ per sample) and the parameters that generated
each sample. :meth:`Family.truth` gives the ground truth on the grid at any times: the exact
Fourier/ETDRK4 reference (:func:`madng_lite.reference.spectral_solve`, on a grid ``ref_factor``
times finer with step ``ref_dt``, then subsampled): it solves exactly the periodic problem, with
the sample's own coefficients, that the network evolves. Nothing is downloaded; every draw comes
from ``seed``.

Families (METHOD.md section 3; the choices below are ours and are argued in the book):

* ``kdv``: ``u_t = -u u_x - b u_xxx`` on [-1, 1), ``b = 0.0025`` (``stochastic``: ``b`` uniform in
  [0.002, 0.003]). Initial data: two-solitons with wave numbers ``k_slow ~ U[10, 12]``,
  ``k_fast ~ U[14, 16]``, set up so that on the line they would collide at a random time
  ``t_c ~ U[0.3, 0.5]`` near a random point ``x_c ~ U[-0.1, 0.1]``; peaks 0.75 to 1.9. The line
  solution is not periodic (its tails at ``x = +-1`` are not zero; the draw is repeated until they
  stay below ``edge_tol`` = 5e-3 of the peak over ``[0, T]``, ``params[i]["edge"]``), so the initial
  condition is its *periodisation* ``sum_m u_line(x + 2m, 0)`` (exactly periodic and smooth) and the
  truth is the spectral solution of that periodic problem; the line solution (``method="exact"``)
  differs from it by the wrapped tails (MSE up to about 1e-6 at T = 1) and serves only as a check.
* ``burgers``: ``u_t = -u u_x + nu u_xx`` on [-1, 1), ``nu = 0.01`` (``stochastic``: ``nu ~ U[0.005,
  0.02]``); ``u0 = sum_{m=1..3} (a_m cos(pi m x) + b_m sin(pi m x))``, ``a_m, b_m ~ N(0, (0.3/m)^2)``.
* ``ac1d``: ``u_t = eps u_xx + 2 (u - u^3)`` on [-1, 1), ``eps = 1e-3`` (``stochastic``: ``eps ~
  U[5e-4, 2e-3]``; we keep one box for all samples, so the stochastic part is the coefficient,
  not the paper's per-sample domain), same random low-mode data as Burgers with scale 0.25.
* ``ac2d``: ``u_t = eps Lap u + 2 (u - u^3)`` on [0, 1)^2, ``eps = 1e-3`` (``stochastic``: as
  ac1d); ``u0 = 0.01 sum_{a,c in {-1,0,1}} [beta cos(2 pi (a x + c y)) + gamma sin(...)]``,
  ``beta, gamma ~ N(0, 1)``. The paper's 51 x 51 grid is odd; the spectral solver needs even
  sizes, so the default grid is 50 x 50.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from . import points as pts
from .exact import kdv_solitons
from .pdes import PDE, AllenCahn, Burgers, KdV
from .reference import spectral_solve

__all__ = ["Family", "FAMILIES", "make_family", "spectral_derivative"]

KDV_B = 0.0025


@dataclass
class Family:
    """``N`` samples of a parametric problem on a grid (see the module docstring).

    Attributes
    ----------
    name : family name (``kdv``, ``burgers``, ``ac1d``, ``ac2d``).
    box : the periodic box, one ``(a, b)`` per dimension.
    n_grid : grid points per dimension.
    x : grid points, shape ``(n, d)`` with ``n = n_grid^d``.
    U0 : initial values on ``x``, shape ``(N, n)``, float64.
    pdes : one PDE per sample.
    params : per-sample parameters that generated the sample (wave numbers, coefficients...).
    T : final time of the benchmark.
    ref_factor, ref_dt : refinement of the reference grid and its ETDRK4 step.
    """

    name: str
    box: tuple[tuple[float, float], ...]
    n_grid: int
    x: Tensor
    U0: Tensor
    pdes: list[PDE]
    params: list[dict]
    T: float
    ref_factor: int = 1
    ref_dt: float = 1e-3
    seed: int = 0
    stochastic: bool = False
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.U0.shape[0]

    @property
    def dim(self) -> int:
        return len(self.box)

    def subset(self, idx: Sequence[int] | Tensor) -> Family:
        """A family made of the samples ``idx`` (e.g. a train / test split)."""
        idx = [int(i) for i in idx]
        bad = [i for i in idx if not 0 <= i < len(self)]
        if bad:
            raise ValueError(f"sample indices {bad} out of range for a family of {len(self)} samples")
        return replace(self, U0=self.U0[idx].clone(), pdes=[self.pdes[i] for i in idx],
                       params=[self.params[i] for i in idx])

    def u0_fn(self, i: int, x: Tensor) -> Tensor:
        """The initial condition of sample ``i`` at arbitrary points ``x`` (n, d), closed form."""
        return _U0_FNS[self.name](self.params[i], x)

    def truth(self, i: int, t_eval: Sequence[float] | np.ndarray, method: str = "auto") -> np.ndarray:
        """Ground truth of sample ``i`` on the grid at ``t_eval``, shape ``(len(t_eval), n)``.

        ``method``: ``"spectral"`` (the truth of every family, also ``"auto"``) or ``"exact"`` (KdV only:
        the two-soliton of the whole line, which is *not* the solution of the periodic problem; a check).
        """
        if not 0 <= int(i) < len(self):
            raise ValueError(f"sample index {i} out of range for a family of {len(self)} samples")
        t_eval = np.asarray(t_eval, dtype=float).reshape(-1)
        if method not in ("auto", "exact", "spectral"):
            raise ValueError(f"unknown truth method {method!r}; known: auto, exact, spectral")
        if method == "exact" and self.name != "kdv":
            raise ValueError(f"no exact solution for family {self.name!r}; use method='spectral'")
        p = self.params[int(i)]
        if self.name == "kdv" and method == "exact":
            xs = self.x[:, 0].numpy()
            return kdv_solitons(xs[None, :], t_eval[:, None], p["k"], p["eta0"], a=1.0, b=p["b"])
        return self.solve(i, self.u0_fn(int(i), self.ref_points()).numpy(), t_eval)

    def ref_points(self) -> Tensor:
        """The reference solver's grid: ``ref_factor`` times finer than ``x`` per dimension, 'ij' order."""
        return pts.grid(self.box, self.n_grid * self.ref_factor)

    def solve(self, i: int, u0_ref: np.ndarray, t_eval: Sequence[float] | np.ndarray) -> np.ndarray:
        """The spectral solution of sample ``i``'s PDE from initial values ``u0_ref`` on :meth:`ref_points`,
        on the grid ``x`` at ``t_eval``, shape ``(len(t_eval), n)`` (e.g. from a network's fit of ``u0``)."""
        m = self.n_grid * self.ref_factor
        u0 = np.asarray(u0_ref, dtype=np.float64).reshape((m,) * self.dim)
        t_eval = np.asarray(t_eval, dtype=float).reshape(-1)
        T = float(t_eval.max()) if t_eval.size else 0.0
        n_steps = max(1, math.ceil(T / self.ref_dt - 1e-9))
        on_grid = T == 0.0 or np.allclose(np.rint(t_eval * n_steps / T) * T / n_steps, t_eval, rtol=0,
                                          atol=1e-9 * max(1.0, T))
        if T == 0.0:
            out = np.repeat(u0[None], len(t_eval), 0)
        elif on_grid:   # every time on one step grid: one solve
            out = spectral_solve(self.pdes[int(i)], u0, self.box, T, self.ref_dt, t_eval)
        else:           # arbitrary times: from each one to the next, with a step of at most ref_dt
            out, cur, t_prev = np.empty((len(t_eval), *u0.shape)), u0, 0.0
            for k, t in enumerate(t_eval):
                if t > t_prev:
                    cur = spectral_solve(self.pdes[int(i)], cur, self.box, t - t_prev, self.ref_dt)[-1]
                out[k], t_prev = cur, t
        sl = (slice(None),) + (slice(None, None, self.ref_factor),) * self.dim
        return out[sl].reshape(len(t_eval), -1)

    def derivative_targets(self, names: Sequence[str]) -> dict[str, Tensor]:
        """x-derivatives of every ``U0`` row on the grid (1D only), each ``(N, n)``.

        By the FFT: exact for the trigonometric polynomials (Burgers, Allen-Cahn), exact to rounding
        for the periodised KdV solitons (their Fourier coefficients fall below 1e-30 on the grid).
        """
        if self.dim != 1:
            raise ValueError("derivative targets are implemented for 1D families only")
        orders = {"u": 0, "ux": 1, "uxx": 2, "uxxx": 3}
        bad = [nm for nm in names if nm not in orders]
        if bad:
            raise ValueError(f"unknown derivative names {bad}; known: {list(orders)}")
        return {nm: spectral_derivative(self.U0, self.box[0], orders[nm]) for nm in names}


def spectral_derivative(U: Tensor, interval: tuple[float, float], order: int) -> Tensor:
    """``d^order/dx^order`` of each row of ``U`` (periodic samples on ``[a, b)``) by the FFT."""
    if order == 0:
        return U.clone()
    n = U.shape[-1]
    length = interval[1] - interval[0]
    k = 2 * math.pi / length * torch.fft.rfftfreq(n, 1.0 / n, dtype=U.dtype)
    if n % 2 == 0 and order % 2 == 1:
        k = k.clone()
        k[-1] = 0.0  # the Nyquist mode has no odd derivative
    return torch.fft.irfft(torch.fft.rfft(U, dim=-1) * (1j * k) ** order, n=n, dim=-1)


# ------------------------------------------------------------------------------------------------
# the families
# ------------------------------------------------------------------------------------------------
def _kdv_params(g: torch.Generator, stochastic: bool, T: float, edge_tol: float) -> dict:
    xe = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    te = torch.linspace(0, T, 21, dtype=torch.float64)
    for _ in range(200):
        r = torch.rand(5, generator=g, dtype=torch.float64).tolist()
        ks, kf = 10 + 2 * r[0], 14 + 2 * r[1]
        tc, xc = 0.3 + 0.2 * r[2], -0.1 + 0.2 * r[3]
        b = 0.002 + 0.001 * r[4] if stochastic else KDV_B
        log_a = 2 * math.log((kf - ks) / (kf + ks))
        eta0 = [-k * xc + b * k**3 * tc - log_a / 2 for k in (kf, ks)]
        u_edge = kdv_solitons(xe[None, :], te[:, None], [kf, ks], eta0, a=1.0, b=b)
        u_peak = 3 * b * kf**2  # the fast soliton's peak
        edge = float(u_edge.abs().max()) / u_peak
        if edge <= edge_tol:
            return {"k": [kf, ks], "eta0": eta0, "b": b, "t_c": tc, "x_c": xc, "edge": edge}
    raise ValueError(f"no KdV two-soliton with boundary tails below edge_tol={edge_tol} in 200 draws")


def _kdv_u0(p: dict, x: Tensor, images: int = 3) -> Tensor:
    """The periodisation on [-1, 1) of the line two-soliton at t = 0: ``sum_{|m| <= images} u(x + 2m)``
    (the tails decay like ``exp(-k |x|)`` with ``k >= 10``, so three images reach rounding)."""
    t0 = torch.zeros((), dtype=x.dtype)
    return sum(kdv_solitons(x[:, 0] + 2.0 * m, t0, p["k"], p["eta0"], a=1.0, b=p["b"])
               for m in range(-images, images + 1))


def _fourier_params(g: torch.Generator, modes: int, scale: float) -> dict:
    m = torch.arange(1, modes + 1, dtype=torch.float64)
    ab = torch.randn(2, modes, generator=g, dtype=torch.float64) * scale / m
    return {"a": ab[0].tolist(), "b": ab[1].tolist()}


def _fourier_u0(p: dict, x: Tensor) -> Tensor:
    m = torch.arange(1, len(p["a"]) + 1, dtype=x.dtype)
    ph = math.pi * x[:, :1] * m  # period 2 on [-1, 1)
    a, b = torch.tensor(p["a"], dtype=x.dtype), torch.tensor(p["b"], dtype=x.dtype)
    return torch.cos(ph) @ a + torch.sin(ph) @ b


def _ac2d_params(g: torch.Generator) -> dict:
    bg = torch.randn(2, 9, generator=g, dtype=torch.float64)
    return {"beta": bg[0].tolist(), "gamma": bg[1].tolist()}


def _ac2d_u0(p: dict, x: Tensor) -> Tensor:
    ac = torch.tensor([(a, c) for a in (-1, 0, 1) for c in (-1, 0, 1)], dtype=x.dtype)
    ph = 2 * math.pi * x @ ac.T  # (n, 9)
    return 0.01 * (torch.cos(ph) @ torch.tensor(p["beta"], dtype=x.dtype)
                   + torch.sin(ph) @ torch.tensor(p["gamma"], dtype=x.dtype))


_U0_FNS = {"kdv": _kdv_u0, "burgers": _fourier_u0, "ac1d": _fourier_u0, "ac2d": _ac2d_u0}

# name: (box, default grid, T, reference refinement, reference dt)
FAMILIES: dict[str, tuple[tuple[tuple[float, float], ...], int, float, int, float]] = {
    "kdv": (((-1.0, 1.0),), 256, 1.0, 2, 2.5e-4),
    "burgers": (((-1.0, 1.0),), 256, 1.0, 4, 5e-4),
    "ac1d": (((-1.0, 1.0),), 256, 2.0, 2, 1e-3),
    "ac2d": (((0.0, 1.0), (0.0, 1.0)), 50, 2.0, 2, 2e-3),
}


def make_family(name: str, n_samples: int, seed: int = 0, n_grid: int | None = None,
                stochastic: bool = False, T: float | None = None, edge_tol: float = 5e-3) -> Family:
    """Draw ``n_samples`` samples of the family ``name`` from ``seed`` (see the module docstring).

    Raises
    ------
    ValueError
        Unknown family (the message lists the known ones), ``n_samples < 1``, a bad grid size
        (odd or < 8: the reference solver needs even sizes), or a bad seed.
    """
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; known families: {', '.join(FAMILIES)}")
    if int(n_samples) < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    box, n_default, T_default, ref_factor, ref_dt = FAMILIES[name]
    n = n_default if n_grid is None else int(n_grid)
    if n < 8 or n % 2:
        raise ValueError(f"n_grid must be even and >= 8 (the spectral reference needs it), got {n_grid}")
    T = T_default if T is None else float(T)
    if not (math.isfinite(T) and T > 0):
        raise ValueError(f"T must be finite and > 0, got {T}")
    g = torch.Generator().manual_seed(int(seed))
    params: list[dict] = []
    pdes: list[PDE] = []
    for _ in range(int(n_samples)):
        if name == "kdv":
            p = _kdv_params(g, stochastic, T, edge_tol)
            pdes.append(KdV(a=1.0, b=p["b"]))
        elif name == "burgers":
            p = _fourier_params(g, 3, 0.3)
            p["nu"] = 0.005 + 0.015 * float(torch.rand((), generator=g, dtype=torch.float64)) if stochastic else 0.01
            pdes.append(Burgers(nu=p["nu"]))
        else:
            p = _fourier_params(g, 3, 0.25) if name == "ac1d" else _ac2d_params(g)
            p["eps"] = 5e-4 + 1.5e-3 * float(torch.rand((), generator=g, dtype=torch.float64)) if stochastic else 1e-3
            pdes.append(AllenCahn(eps=p["eps"], r=2.0, dim=len(box)))
        params.append(p)
    x = pts.grid(box, n)
    U0 = torch.stack([_U0_FNS[name](p, x) for p in params]).to(torch.float64)
    return Family(name, box, n, x, U0, pdes, params, T, ref_factor, ref_dt, int(seed), bool(stochastic))
