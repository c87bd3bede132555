"""Sample points in a periodic box (book: Chapter 3, Neural Galerkin)."""
from __future__ import annotations

import torch
from torch import Tensor

from .embedding import Box, check_box


def grid(box: Box, n: int | tuple[int, ...], dtype: torch.dtype = torch.float64,
         device: str | torch.device = "cpu") -> Tensor:
    """Equispaced points of ``[a, b)^d`` (right end excluded), shape ``(prod n, d)``, 'ij' order."""
    box = check_box(box)
    ns = (n,) * len(box) if isinstance(n, int) else tuple(n)
    if len(ns) != len(box) or min(ns) < 1:
        raise ValueError(f"n must be a positive int or one per dimension of the box, got {n}")
    axes = [a + (b - a) * torch.arange(k, dtype=dtype, device=device) / k for (a, b), k in zip(box, ns)]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1)


def uniform(box: Box, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float64,
            device: str | torch.device = "cpu") -> Tensor:
    """``n`` i.i.d. uniform points in the box, drawn from ``generator`` (CPU), shape ``(n, d)``."""
    box = check_box(box)
    lo = torch.tensor([a for a, _ in box], dtype=dtype)
    hi = torch.tensor([b for _, b in box], dtype=dtype)
    u = torch.rand(n, len(box), generator=generator, dtype=dtype)
    return (lo + (hi - lo) * u).to(device)
