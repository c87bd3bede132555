"""What Neural Galerkin asks of a network, and whether a problem fits in memory (book: Chapters 3 and 5).

:class:`~madng_lite.derivatives.FastMLP` (the layer-wise fast path) and :class:`GenericPath` (the
``torch.func`` path) answer the same three calls: the named x-derivatives with the state the
Jacobian needs, columns of ``J = du/dtheta``, and the squared column norms. :func:`check_memory`
refuses, before any work, a set of sample points whose Jacobian block would not fit.
"""
from __future__ import annotations

import os

import torch

from .decoder import Decoder
from .derivatives import derivs_generic, jacobian_generic

__all__ = ["DEFAULT_POINTS", "GenericPath", "check_memory"]

DEFAULT_POINTS = {1: 1000, 2: 50}   # per axis on a grid: 1000 points in 1D, 2500 in 2D


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


def check_memory(n: int, decoder: Decoder, sparse: int | None, dtype: torch.dtype) -> None:
    """Refuse ``n`` sample points whose Jacobian block (``n x s``, or ``n x p`` dense) and the
    forward state would take more than half of this machine's memory; name the sizes."""
    cols = decoder.n_params if sparse is None else int(sparse)
    units = sum(lin.in_features + lin.out_features + 1 for lin in decoder.layers)
    nbytes = (2 * n * cols + 4 * n * units) * torch.finfo(dtype).bits // 8
    limit = _physical_memory() // 2
    if nbytes > limit:
        raise ValueError(f"{n} sample points with {cols} Jacobian columns need about {nbytes / 2**30:.1f} GiB, "
                         f"more than half of this machine's memory ({limit / 2**30:.1f} GiB): use fewer points "
                         f"(n_points is per axis on a {decoder.dim}-D grid) or a sparse update")


class GenericPath:
    """The ``torch.func`` path behind the same interface as :class:`FastMLP`."""

    def __init__(self, dec: Decoder) -> None:
        self.dec = dec

    def forward(self, theta, x, z, requires, need_jac=False):
        d = derivs_generic(self.dec, theta, x, z, requires)
        return d, ({"J": jacobian_generic(self.dec, theta, x, z)} if need_jac else {})

    def jac(self, state, cols=None):
        return state["J"] if cols is None else state["J"][:, cols.to(state["J"].device)]

    def col_norms2(self, state):
        return (state["J"] ** 2).sum(0)
