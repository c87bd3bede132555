"""Ground truth: Fourier pseudo-spectral in space, ETDRK4 in time, float64.

Exponential time differencing RK4 of Cox & Matthews with the contour-integral
coefficients of Kassam & Trefethen (SIAM J. Sci. Comput. 26, 2005), on periodic boxes
``[a, b)^d`` (d = 1, 2). The PDE supplies the split ``u_t = L u + N(u)`` through
:meth:`~madng_lite.pdes.PDE.linear_symbol` and :meth:`~madng_lite.pdes.PDE.nonlinear_hat`.
The book's appendix *The reference solver* derives it and checks it against exact solutions
(heat, advection, a KdV soliton); Chapters 3, 7 and 8 use it as the ground truth for Burgers,
Allen-Cahn and the parametric families.

Conventions
-----------
* Grids are ``x_j = a + (b - a) j / n``, ``j = 0..n-1``, even ``n`` per axis, ``'ij'``
  indexing in 2D.
* Dealiasing is off by default, as in Kassam & Trefethen: on the resolved anchors it
  costs accuracy at equal ``n`` (Allen-Cahn anchor, n = 256: 4.9e-7 with the 2/3 rule,
  2.5e-10 without). ``dealias=True`` applies the 2/3 rule to ``u_hat`` before and to the
  result after every evaluation of ``N``. The Nyquist mode is always zeroed.
* Time: ``dt`` is shrunk to ``T / ceil(T / dt)`` so that ``T`` is hit exactly; every
  ``t_eval`` must be a multiple of that step (``ValueError`` otherwise).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.fft as sfft

from .pdes import PDE

__all__ = ["as_box", "grid", "points", "wavenumbers", "etdrk4_coefficients", "spectral_solve"]

Box = Sequence[tuple[float, float]]


def as_box(box: Box | tuple[float, float]) -> tuple[tuple[float, float], ...]:
    """Normalize ``box`` to a tuple of ``(a, b)`` pairs; a bare pair means 1D."""
    arr = np.asarray(box, dtype=float)
    if arr.shape == (2,):
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] not in (1, 2):
        raise ValueError(f"box must be (a, b) or a sequence of 1 or 2 (a, b) pairs, got {box!r}")
    if not np.all(np.isfinite(arr)) or np.any(arr[:, 1] <= arr[:, 0]):
        raise ValueError(f"box needs finite a < b on every axis, got {box!r}")
    return tuple((float(a), float(b)) for a, b in arr)


def _as_shape(n: int | Sequence[int], d: int) -> tuple[int, ...]:
    shape = (int(n),) * d if np.ndim(n) == 0 else tuple(int(m) for m in n)  # type: ignore[arg-type]
    if len(shape) != d or any(m < 1 for m in shape):
        raise ValueError(f"grid size {n!r} does not fit a {d}D box")
    return shape


def grid(box: Box | tuple[float, float], n: int | Sequence[int]) -> np.ndarray:
    """Uniform periodic grid (right end excluded).

    Returns
    -------
    ndarray
        Shape ``(n,)`` in 1D; ``(n0, n1, 2)`` in 2D (``'ij'`` indexing, last axis = x, y).
    """
    b = as_box(box)
    shape = _as_shape(n, len(b))
    axes = [lo + (hi - lo) * np.arange(m) / m for (lo, hi), m in zip(b, shape)]
    if len(b) == 1:
        return axes[0]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def points(box: Box | tuple[float, float], n: int | Sequence[int]) -> np.ndarray:
    """The grid of :func:`grid` flattened to sample points of shape ``(prod(n), d)``."""
    d = len(as_box(box))
    return grid(box, n).reshape(-1, d)


def _int_freqs(shape: Sequence[int]) -> list[np.ndarray]:
    """Integer frequencies in ``rfftn`` layout, one broadcastable array per axis."""
    d = len(shape)
    out = []
    for j, m in enumerate(shape):
        freq = sfft.rfftfreq(m, 1.0 / m) if j == d - 1 else sfft.fftfreq(m, 1.0 / m)
        view = [1] * d
        view[j] = freq.size
        out.append(freq.reshape(view))
    return out


def wavenumbers(box: Box | tuple[float, float], shape: Sequence[int]) -> list[np.ndarray]:
    """Angular wavenumbers ``2 pi n / (b - a)`` in ``rfftn`` layout, one array per axis."""
    b = as_box(box)
    return [2 * np.pi / (hi - lo) * n for (lo, hi), n in zip(b, _int_freqs(shape))]


def _keep_mask(shape: Sequence[int], dealias: bool) -> np.ndarray:
    """Modes kept: ``|n_j| < m_j / 3`` (2/3 rule) or all but the Nyquist mode."""
    keep = np.ones((*shape[:-1], shape[-1] // 2 + 1), dtype=bool)
    for n, m in zip(_int_freqs(shape), shape):
        keep = keep & (np.abs(n) < (m / 3 if dealias else m / 2))
    return keep


def etdrk4_coefficients(lin: np.ndarray, h: float, m: int = 64) -> tuple[np.ndarray, ...]:
    """ETDRK4 coefficients ``(E, E2, Q, f1, f2, f3)`` for the diagonal operator ``lin``.

    The phi-functions are averaged over ``m`` points on a unit circle around each
    ``h * lin`` (Kassam & Trefethen 2005), which avoids their cancellation near 0.
    """
    hl = h * np.asarray(lin, dtype=complex)
    r = np.exp(2j * np.pi * (np.arange(m) + 0.5) / m)
    z = hl[..., None] + r
    ez = np.exp(z)
    Q = h * np.mean((np.exp(z / 2) - 1) / z, axis=-1)
    f1 = h * np.mean((-4 - z + ez * (4 - 3 * z + z**2)) / z**3, axis=-1)
    f2 = h * np.mean((2 + z + ez * (z - 2)) / z**3, axis=-1)
    f3 = h * np.mean((-4 - 3 * z - z**2 + ez * (4 - z)) / z**3, axis=-1)
    coeffs = (np.exp(hl), np.exp(hl / 2), Q, f1, f2, f3)
    if np.isrealobj(lin):
        coeffs = tuple(c.real for c in coeffs)
    return coeffs


def _step_counts(T: float, dt: float, t_eval: np.ndarray) -> tuple[float, np.ndarray]:
    if not (math.isfinite(T) and T >= 0):
        raise ValueError(f"T must be finite and >= 0, got {T}")
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be finite and > 0, got {dt}")
    n_steps = max(1, math.ceil(T / dt - 1e-9))
    h = T / n_steps if T > 0 else dt
    if t_eval.ndim != 1 or not np.all(np.isfinite(t_eval)):
        raise ValueError("t_eval must be a finite 1D array of times")
    if np.any(t_eval < 0) or np.any(t_eval > T * (1 + 1e-12)):
        raise ValueError(f"t_eval must lie in [0, T={T}], got {t_eval.min()}..{t_eval.max()}")
    if np.any(np.diff(t_eval) < 0):
        raise ValueError("t_eval must be non-decreasing")
    steps = np.rint(t_eval / h).astype(int)
    bad = np.abs(steps * h - t_eval) > 1e-9 * max(1.0, T)
    if np.any(bad):
        raise ValueError(f"t_eval={t_eval[bad][0]} is not a multiple of the time step "
                         f"{h} (= T / ceil(T / dt))")
    return h, steps


def spectral_solve(pde: PDE, u0: np.ndarray, box: Box | tuple[float, float], T: float,
                   dt: float, t_eval: Sequence[float] | np.ndarray | None = None, *,
                   dealias: bool = False, contour_points: int = 64) -> np.ndarray:
    """Solve ``u_t = L u + N(u)`` on a periodic box with Fourier/ETDRK4 in float64.

    Parameters
    ----------
    pde : PDE
        Supplies ``linear_symbol`` and ``nonlinear_hat``; ``pde.dim`` must match the box.
    u0 : ndarray, shape (n,) or (n0, n1)
        Initial values on :func:`grid` ``(box, u0.shape)``; every ``n`` even and >= 4.
    box : (a, b) or sequence of (a, b)
        Periodic box ``[a, b)^d``.
    T, dt : float
        Final time and (maximal) step; the step used is ``T / ceil(T / dt)``.
    t_eval : array, optional
        Output times in ``[0, T]``, multiples of the step used. Default ``[0, T]``.
    dealias : bool
        2/3-rule dealiasing of the nonlinear term (default off, see module docstring).
    contour_points : int
        Points on the contour for the ETDRK4 coefficients.

    Returns
    -------
    ndarray, shape (len(t_eval), *u0.shape)

    Raises
    ------
    ValueError
        Bad box/shape/dimension, non-finite ``u0``, bad times, or a non-finite solution
        during the run (the message names the time).
    """
    b = as_box(box)
    u0 = np.asarray(u0, dtype=np.float64)
    if pde.dim != len(b) or u0.ndim != len(b):
        raise ValueError(f"dimension mismatch: pde.dim={pde.dim}, box has {len(b)} axes, "
                         f"u0.shape={u0.shape}")
    if any(m < 4 or m % 2 for m in u0.shape):
        raise ValueError(f"u0.shape={u0.shape}: every grid size must be even and >= 4")
    if not np.all(np.isfinite(u0)):
        raise ValueError(f"u0 has {np.count_nonzero(~np.isfinite(u0))} non-finite values")
    t_eval = np.array([0.0, T] if t_eval is None else t_eval, dtype=float).reshape(-1)
    h, steps = _step_counts(float(T), float(dt), t_eval)

    axes = tuple(range(u0.ndim))
    k = wavenumbers(b, u0.shape)
    keep = _keep_mask(u0.shape, dealias)
    lin = np.broadcast_to(pde.linear_symbol(k), keep.shape)
    E, E2, Q, f1, f2, f3 = etdrk4_coefficients(lin, h, contour_points)
    Q, f1, f2, f3 = (keep * c for c in (Q, f1, f2, f3))  # N enters only through these

    def nl(v: np.ndarray) -> np.ndarray:
        return pde.nonlinear_hat(keep * v if dealias else v, k)

    v = sfft.rfftn(u0, axes=axes) * _keep_mask(u0.shape, dealias=False)
    out = np.empty((len(t_eval), *u0.shape))
    done = 0
    with np.errstate(over="ignore", invalid="ignore"):  # blow-up is reported below
        for i, target in enumerate(steps):
            while done < target:
                nv = nl(v)
                a = E2 * v + Q * nv
                na = nl(a)
                bb = E2 * v + Q * na
                nb = nl(bb)
                c = E2 * a + Q * (2 * nb - nv)
                v = E * v + nv * f1 + 2 * (na + nb) * f2 + nl(c) * f3
                done += 1
                if not np.isfinite(v).all():
                    raise ValueError(f"{pde.name}: non-finite solution at t={done * h:.6g} "
                                     f"(step {done}, dt={h:.3g}); reduce dt or refine the grid")
            out[i] = sfft.irfftn(v, s=u0.shape, axes=axes)
    return out
