"""Exact solutions: KdV N-solitons, advection, heat modes (book: Chapters 3, 6; the reference appendix).

KdV solitons are evaluated in torch (float64 for numpy input; numpy in -> numpy out),
so the same code serves the reference checks and differentiable initial-condition fits.

KdV scaling. If ``v_t + 6 v v_x + v_xxx = 0`` then ``u(x, t) = (6 b / a) v(x, b t)``
solves ``u_t + a u u_x + b u_xxx = 0``. With Hirota's tau function
``F = sum_{S} exp(sum_{i in S} eta_i + sum_{i<j in S} log A_ij)`` over subsets ``S``,
``A_ij = ((k_i - k_j)/(k_i + k_j))^2`` and ``eta_i = k_i x - b k_i^3 t + eta_i^0``:

    u = (12 b / a) d^2/dx^2 log F.

Each exponent is linear in ``x`` with slope ``s_S = sum_{i in S} k_i``, so ``log F`` is the
cumulant generating function of the distribution ``softmax(exponents)`` on the slopes:
``d^n/dx^n log F`` is its n-th cumulant. Cumulants from central moments of softmax
weights are exact and overflow-free (no finite differences, no ``exp`` of large numbers).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .reference import as_box

__all__ = ["kdv_solitons", "kdv_one_soliton", "kdv_two_soliton", "advection_exact", "heat_mode"]

NG_K = (1.0, math.sqrt(5.0))
NG_ETA0 = (0.0, 10.73)


def _as_tensor(x: Any) -> tuple[torch.Tensor, bool]:
    if isinstance(x, torch.Tensor):
        return x, False
    return torch.as_tensor(np.asarray(x, dtype=np.float64)), True


def kdv_solitons(x: Any, t: Any, k: Sequence[float], eta0: Sequence[float], a: float = 6.0,
                 b: float = 1.0, derivatives: bool = False) -> Any:
    """Exact N-soliton of ``u_t = -a u u_x - b u_xxx`` (see module docstring).

    Parameters
    ----------
    x, t : array or tensor
        Broadcastable positions and times. Tensors keep their dtype/device/autograd graph;
        numpy/float input is computed in float64 and returned as numpy.
    k : sequence of float
        Distinct positive wave numbers (soliton ``i`` has peak ``(6 b / a) k_i^2 / 2``
        and speed ``b k_i^2``).
    eta0 : sequence of float
        Phases (soliton ``i`` starts near ``x = -eta0_i / k_i``).
    a, b : float
        KdV coefficients, ``a != 0``, ``b != 0``.
    derivatives : bool
        If True return ``(u, u_x, u_xx, u_xxx)``.
    """
    kk = [float(v) for v in k]
    e0 = [float(v) for v in eta0]
    if len(kk) == 0 or len(kk) != len(e0):
        raise ValueError(f"k and eta0 must be non-empty and equally long, got {k!r}, {eta0!r}")
    if any(not math.isfinite(v) or v <= 0 for v in kk) or len(set(kk)) != len(kk):
        raise ValueError(f"wave numbers k must be finite, positive and distinct, got {k!r}")
    if not all(math.isfinite(v) for v in (*e0, a, b)) or a == 0 or b == 0:
        raise ValueError(f"need finite eta0 and finite nonzero a, b; "
                         f"got eta0={eta0!r}, a={a}, b={b}")
    xt, to_np = _as_tensor(x)
    tt = torch.as_tensor(t, dtype=xt.dtype, device=xt.device)
    subsets = list(itertools.product((0, 1), repeat=len(kk)))
    mu = torch.tensor(subsets, dtype=xt.dtype, device=xt.device)            # (2^N, N)
    kt = torch.tensor(kk, dtype=xt.dtype, device=xt.device)
    logA = torch.zeros(len(subsets), dtype=xt.dtype, device=xt.device)
    for i, j in itertools.combinations(range(len(kk)), 2):
        lij = 2 * math.log(abs(kk[i] - kk[j]) / (kk[i] + kk[j]))
        logA = logA + mu[:, i] * mu[:, j] * lij
    eta = kt * xt[..., None] - b * kt**3 * tt[..., None] + torch.tensor(e0, dtype=xt.dtype,
                                                                      device=xt.device)
    w = torch.softmax(eta @ mu.T + logA, dim=-1)                            # (..., 2^N)
    s = mu @ kt                                                             # slopes
    mean = (w * s).sum(-1, keepdim=True)
    dev = s - mean
    m2, m3, m4, m5 = ((w * dev**p).sum(-1) for p in (2, 3, 4, 5))
    scale = 12.0 * b / a
    u = scale * m2  # cumulants 2..5 of the slope distribution = d^2..5/dx^2..5 log F
    out = (u, scale * m3, scale * (m4 - 3 * m2**2), scale * (m5 - 10 * m3 * m2)) \
        if derivatives else (u,)
    if to_np:
        out = tuple(o.numpy() for o in out)
    return out if derivatives else out[0]


def kdv_one_soliton(x: Any, t: Any, k: float = 1.0, eta0: float = 0.0, a: float = 6.0,
                    b: float = 1.0, derivatives: bool = False) -> Any:
    """One-soliton ``(6 b / a) (k^2 / 2) sech^2((k x - b k^3 t + eta0) / 2)``."""
    return kdv_solitons(x, t, [k], [eta0], a, b, derivatives)


def kdv_two_soliton(x: Any, t: Any, k: Sequence[float] = NG_K, eta0: Sequence[float] = NG_ETA0,
                    a: float = 6.0, b: float = 1.0, derivatives: bool = False) -> Any:
    """Two-soliton; defaults are the Neural Galerkin anchor (``a=6, b=1``, [-20, 40])."""
    return kdv_solitons(x, t, k, eta0, a, b, derivatives)


def advection_exact(u0: Callable[[Any], Any], x: Any, t: float, c: float = 1.0,
                    box: tuple[float, float] = (0.0, 2 * math.pi)) -> Any:
    """``u(x, t) = u0(x - c t)`` with the argument wrapped into the periodic ``box``."""
    (lo, hi), = as_box(box)
    shifted = x - c * t - lo
    wrapped = torch.remainder(shifted, hi - lo) if isinstance(x, torch.Tensor) \
        else np.mod(shifted, hi - lo)
    return u0(lo + wrapped)


def heat_mode(x: Any, t: float, nu: float, box: Any, n: int | Sequence[int],
              phase: float = 0.0, amplitude: float = 1.0) -> Any:
    """Fourier-mode solution of ``u_t = nu Lap u``: ``A e^{-nu |k|^2 t} cos(k.(x - a) + phase)``.

    ``k_j = 2 pi n_j / (b_j - a_j)``. ``x`` is ``(...)`` in 1D and ``(..., d)`` in 2D
    (as returned by :func:`madng_lite.reference.grid`); numpy or torch.
    """
    bx = as_box(box)
    nn = [int(n)] * len(bx) if np.ndim(n) == 0 else [int(m) for m in n]  # type: ignore[arg-type]
    if len(nn) != len(bx):
        raise ValueError(f"mode {n!r} does not match a {len(bx)}D box")
    kv = [2 * math.pi * m / (hi - lo) for m, (lo, hi) in zip(nn, bx)]
    if len(bx) == 1:
        arg = kv[0] * (x - bx[0][0])
    else:
        arg = sum(kj * (x[..., j] - lo) for j, (kj, (lo, _)) in enumerate(zip(kv, bx)))
    cos = torch.cos if isinstance(x, torch.Tensor) else np.cos
    return amplitude * math.exp(-nu * sum(kj**2 for kj in kv) * t) * cos(arg + phase)
