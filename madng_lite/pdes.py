"""PDE definitions ``u_t = f(x, u, derivatives)``, independent of any network (book: Chapters 3, 6-8).

Every PDE offers two views of the same right-hand side:

* :meth:`PDE.rhs` evaluates ``f`` pointwise from derivative values (torch or numpy,
  any dtype/device, differentiable); the Neural Galerkin engine calls it with the
  derivatives of the decoder listed in :attr:`PDE.requires`.
* :meth:`PDE.linear_symbol` / :meth:`PDE.nonlinear_hat` split ``f = L u + N(u)`` on a
  periodic box for the Fourier pseudo-spectral reference solver
  (:mod:`madng_lite.reference`). ``u_hat`` is in ``scipy.fft.rfftn`` layout of an
  even-sized grid; dealiasing is done by the solver, not here.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import scipy.fft as sfft

__all__ = ["PDE", "KdV", "Burgers", "AllenCahn", "Advection", "Heat", "PDES", "make_pde"]


def _to_physical(u_hat: np.ndarray) -> np.ndarray:
    """Inverse ``rfftn`` over all axes, assuming an even last-axis length."""
    n = 2 * (u_hat.shape[-1] - 1)
    if u_hat.ndim == 1:  # irfft has less per-call overhead than irfftn
        return sfft.irfft(u_hat, n)
    return sfft.irfftn(u_hat, s=(*u_hat.shape[:-1], n), axes=tuple(range(u_hat.ndim)))


def _to_fourier(u: np.ndarray) -> np.ndarray:
    return sfft.rfft(u) if u.ndim == 1 else sfft.rfftn(u, axes=tuple(range(u.ndim)))


def _abs2(k: list[np.ndarray]) -> np.ndarray:
    """``|k|^2`` on the broadcast wavenumber grid."""
    return sum(kj**2 for kj in k)


class PDE(ABC):
    """Base class: ``u_t = rhs(x, d)`` on a periodic box, ``u_t = L u + N(u)`` spectrally.

    Attributes
    ----------
    name : str
        Registry key (``"kdv"``, ``"burgers"``, ``"allen_cahn"``, ``"advection"``, ``"heat"``).
    dim : int
        Spatial dimension (1 or 2).
    requires : frozenset of str
        Derivatives that :meth:`rhs` reads: a subset of ``{"u", "ux", "uxx", "uxxx"}``
        in 1D and of ``{"u", "ux", "uy", "lap"}`` in 2D.
    """

    name: ClassVar[str]
    dim: int
    requires: frozenset[str]

    # ----------------------------------------------------------------- validation
    def _validate(self, positive: tuple[str, ...] = (), nonzero: tuple[str, ...] = ()) -> None:
        """Coerce coefficients to float and check them; ``ValueError`` names the field."""
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if f.name == "dim":
                if isinstance(v, bool) or v not in (1, 2):
                    raise ValueError(f"{type(self).__name__}: dim must be 1 or 2, got {v!r}")
                object.__setattr__(self, "dim", int(v))
                continue
            try:
                fv = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"{type(self).__name__}: coefficient {f.name} must be a real "
                                 f"number, got {v!r}") from None
            if not math.isfinite(fv):
                raise ValueError(f"{type(self).__name__}: coefficient {f.name} must be finite, "
                                 f"got {fv}")
            if f.name in positive and fv <= 0:
                raise ValueError(f"{type(self).__name__}: coefficient {f.name} must be > 0, "
                                 f"got {fv}")
            if f.name in nonzero and fv == 0:
                raise ValueError(f"{type(self).__name__}: coefficient {f.name} must be nonzero")
            object.__setattr__(self, f.name, fv)

    def _get(self, d: Mapping[str, Any], key: str) -> Any:
        try:
            return d[key]
        except KeyError:
            raise KeyError(f"{self.name}.rhs needs derivative {key!r}; got {sorted(d)} "
                           f"(requires {sorted(self.requires)})") from None

    def _lap(self, d: Mapping[str, Any]) -> Any:
        return self._get(d, "uxx" if self.dim == 1 else "lap")

    # ------------------------------------------------------------------ interface
    @abstractmethod
    def rhs(self, x: Any, d: Mapping[str, Any]) -> Any:
        """Right-hand side ``f`` with ``u_t = f``.

        Parameters
        ----------
        x : tensor, shape (n, dim)
            Sample points (unused by the autonomous PDEs here, kept for the contract).
        d : mapping str -> tensor of shape (n,)
            Derivative values, keys from :attr:`requires`.

        Returns
        -------
        tensor, shape (n,)
        """

    @abstractmethod
    def linear_symbol(self, k: list[np.ndarray]) -> np.ndarray:
        """Fourier multiplier of the linear part ``L`` for angular wavenumber grids ``k``."""

    def nonlinear_hat(self, u_hat: np.ndarray, k: list[np.ndarray]) -> np.ndarray:
        """``rfftn`` of the nonlinear part ``N(u)`` given ``u_hat`` (zero by default)."""
        return np.zeros_like(u_hat)


@dataclass(frozen=True)
class KdV(PDE):
    """Korteweg-de Vries ``u_t = -a u u_x - b u_xxx``.

    NG anchor: ``a=6, b=1``; MAD-NG paper: ``a=1, b=0.0025``.
    """

    a: float = 6.0
    b: float = 1.0
    name: ClassVar[str] = "kdv"
    dim: ClassVar[int] = 1
    requires: ClassVar[frozenset[str]] = frozenset({"u", "ux", "uxxx"})

    def __post_init__(self) -> None:
        self._validate(nonzero=("b",))

    def rhs(self, x: Any, d: Mapping[str, Any]) -> Any:
        return -self.a * self._get(d, "u") * self._get(d, "ux") - self.b * self._get(d, "uxxx")

    def linear_symbol(self, k: list[np.ndarray]) -> np.ndarray:
        return 1j * self.b * k[0] ** 3  # -b (ik)^3

    def nonlinear_hat(self, u_hat: np.ndarray, k: list[np.ndarray]) -> np.ndarray:
        u = _to_physical(u_hat)
        return -0.5j * self.a * k[0] * _to_fourier(u * u)  # -a u u_x = -(a/2) (u^2)_x


@dataclass(frozen=True)
class Burgers(PDE):
    """Viscous Burgers ``u_t = -u u_x + nu u_xx`` (RSNG anchor ``nu=1e-3``)."""

    nu: float = 1e-3
    name: ClassVar[str] = "burgers"
    dim: ClassVar[int] = 1
    requires: ClassVar[frozenset[str]] = frozenset({"u", "ux", "uxx"})

    def __post_init__(self) -> None:
        self._validate(positive=("nu",))

    def rhs(self, x: Any, d: Mapping[str, Any]) -> Any:
        return -self._get(d, "u") * self._get(d, "ux") + self.nu * self._get(d, "uxx")

    def linear_symbol(self, k: list[np.ndarray]) -> np.ndarray:
        return -self.nu * k[0] ** 2

    def nonlinear_hat(self, u_hat: np.ndarray, k: list[np.ndarray]) -> np.ndarray:
        u = _to_physical(u_hat)
        return -0.5j * k[0] * _to_fourier(u * u)


@dataclass(frozen=True)
class AllenCahn(PDE):
    """Allen-Cahn ``u_t = eps Lap u + r (u - u^3)`` in 1D or 2D.

    RSNG anchor: ``eps=5e-3, r=1``; MAD-NG paper: ``eps=1e-3, r=2``. The spectral split
    puts ``r u`` in the linear part: ``L = -eps |k|^2 + r``, ``N(u) = -r u^3``.
    """

    eps: float = 5e-3
    r: float = 1.0
    dim: int = 1
    name: ClassVar[str] = "allen_cahn"

    def __post_init__(self) -> None:
        self._validate(positive=("eps",))

    @property
    def requires(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({"u", "uxx"} if self.dim == 1 else {"u", "lap"})

    def rhs(self, x: Any, d: Mapping[str, Any]) -> Any:
        u = self._get(d, "u")
        return self.eps * self._lap(d) + self.r * (u - u**3)

    def linear_symbol(self, k: list[np.ndarray]) -> np.ndarray:
        return -self.eps * _abs2(k) + self.r

    def nonlinear_hat(self, u_hat: np.ndarray, k: list[np.ndarray]) -> np.ndarray:
        return -self.r * _to_fourier(_to_physical(u_hat) ** 3)


@dataclass(frozen=True)
class Advection(PDE):
    """Linear advection ``u_t = -c u_x``."""

    c: float = 1.0
    name: ClassVar[str] = "advection"
    dim: ClassVar[int] = 1
    requires: ClassVar[frozenset[str]] = frozenset({"ux"})

    def __post_init__(self) -> None:
        self._validate()

    def rhs(self, x: Any, d: Mapping[str, Any]) -> Any:
        return -self.c * self._get(d, "ux")

    def linear_symbol(self, k: list[np.ndarray]) -> np.ndarray:
        return -1j * self.c * k[0]


@dataclass(frozen=True)
class Heat(PDE):
    """Heat equation ``u_t = nu Lap u`` in 1D or 2D."""

    nu: float = 1.0
    dim: int = 1
    name: ClassVar[str] = "heat"

    def __post_init__(self) -> None:
        self._validate(positive=("nu",))

    @property
    def requires(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({"uxx"} if self.dim == 1 else {"lap"})

    def rhs(self, x: Any, d: Mapping[str, Any]) -> Any:
        return self.nu * self._lap(d)

    def linear_symbol(self, k: list[np.ndarray]) -> np.ndarray:
        return -self.nu * _abs2(k)


PDES: dict[str, type[PDE]] = {
    cls.name: cls for cls in (KdV, Burgers, AllenCahn, Advection, Heat)
}


def make_pde(name: str, **coeffs: Any) -> PDE:
    """Build a PDE by registry name, e.g. ``make_pde("allen_cahn", eps=1e-3, r=2, dim=2)``.

    Raises
    ------
    ValueError
        Unknown PDE name (the message lists the known ones), unknown coefficient, or an
        invalid coefficient value.
    """
    key = str(name).strip().lower().replace("-", "_")
    if key not in PDES:
        raise ValueError(f"unknown PDE {name!r}; known PDEs: {', '.join(sorted(PDES))}")
    cls = PDES[key]
    allowed = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    bad = sorted(set(coeffs) - set(allowed))
    if bad:
        raise ValueError(f"unknown coefficient(s) {bad} for PDE {key!r}; allowed: {allowed}")
    return cls(**coeffs)
