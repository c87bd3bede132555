"""Least-squares solves for ``theta_dot`` (book: Chapter 3, Neural Galerkin).

Dirac-Frenkel asks, at each time, for ``eta = argmin ||A eta - f||`` with ``A = J[:, S]``
(``n x s``). ``A`` is numerically rank deficient (its effective rank is far below ``s``), so a
plain solve blows up; the choices here regularise it:

* ``"ridge"`` (default): ``(A^T A + lam I) eta = A^T f`` with ``lam = ridge * ||A||_F^2 / s``,
  i.e. relative to the mean diagonal of ``A^T A``, by Cholesky. The ridge is a bias and a
  safeguard: the default ``ridge = 1e-8`` is stable on every benchmark we ran (dense KdV diverges
  at 1e-10), while the sparse RSNG anchors are ~10x more accurate at 1e-10 (see ``anchors``). When ``s > n`` the same solution
  is computed in the dual form ``eta = A^T (A A^T + lam I)^{-1} f`` (an ``n x n`` system).
* ``"pinv"``: truncated SVD, singular values below ``rcond * sigma_max`` dropped.
* ``"lstsq"``: LAPACK least squares (``gelsd`` on the CPU) with ``rcond``; mostly for comparison.
"""
from __future__ import annotations

import torch
from torch import Tensor

METHODS = ("ridge", "pinv", "lstsq")


class NonFiniteError(FloatingPointError):
    """A non-finite value appeared in a quantity of the time integration."""


class DivergenceError(NonFiniteError):
    """The solution grew far beyond its initial size: a blow-up that has not (yet) produced NaN."""


def check_finite(name: str, value: Tensor, t: float | None = None) -> None:
    """Raise :class:`NonFiniteError` naming ``name`` (and the time ``t``) if ``value`` has NaN/Inf."""
    # one reduction instead of an elementwise test: a NaN or Inf anywhere makes the sum non-finite
    # (and so does an overflow of huge finite values, which is just as much a failure here)
    if not bool(torch.isfinite(value.sum())):
        when = "" if t is None else f" at t = {t:.6g}"
        raise NonFiniteError(f"non-finite values in {name}{when} (the solve or the step size may be unstable)")


def ridge_cholesky(M: Tensor, rhs: Tensor, ridge: float, s: int) -> tuple[Tensor, float]:
    """Solve ``(M + lam I) y = rhs`` by Cholesky with ``lam = ridge * trace(M) / s`` (``M`` is changed in
    place); return ``(y, lam)``. ``M`` is ``A^T A`` or ``A A^T`` of an ``n x s`` matrix ``A``."""
    if not ridge > 0:
        raise ValueError(f"ridge must be > 0, got {ridge}")
    lam = float(ridge * torch.diagonal(M).sum() / s)
    M.diagonal().add_(lam)
    L, info = torch.linalg.cholesky_ex(M)
    if int(info) != 0:
        raise NonFiniteError(f"Cholesky failed (matrix not positive definite at ridge {ridge:g}); "
                             "use float64 or a larger ridge")
    return torch.cholesky_solve(rhs[:, None], L)[:, 0], lam


def lstsq_solve(A: Tensor, f: Tensor, method: str = "ridge", ridge: float = 1e-8, rcond: float = 1e-6) -> Tensor:
    """Regularised least-squares solution of ``A eta ~= f``; ``A`` is ``(n, s)``, ``f`` is ``(n,)``."""
    if A.ndim != 2 or f.ndim != 1 or A.shape[0] != f.shape[0]:
        raise ValueError(f"need A (n, s) and f (n,), got {tuple(A.shape)} and {tuple(f.shape)}")
    n, s = A.shape
    if method == "ridge":
        if s <= n:
            return ridge_cholesky(A.T @ A, A.T @ f, ridge, s)[0]
        return A.T @ ridge_cholesky(A @ A.T, f, ridge, s)[0]
    if method == "pinv":
        U, S, Vh = torch.linalg.svd(A, full_matrices=False)
        keep = S > rcond * S[0]
        return Vh[keep].T @ ((U[:, keep].T @ f) / S[keep])
    if method == "lstsq":
        driver = "gelsd" if A.device.type == "cpu" else "gels"
        return torch.linalg.lstsq(A, f[:, None], rcond=rcond, driver=driver).solution[:, 0]
    raise ValueError(f"unknown least-squares method {method!r}; known: {METHODS}")
