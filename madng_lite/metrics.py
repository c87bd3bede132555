"""Error metrics for numpy arrays and torch tensors (book: Chapters 3, 6-8).

``axis=None`` reduces over everything (the space-time error of the RSNG papers);
``axis=<space axes>`` gives one value per remaining index (e.g. per time).
If either argument is a tensor the result is a tensor (differentiable); otherwise numpy.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["mse", "rel_l2"]

Axis = int | tuple[int, ...] | None


def _prepare(u: Any, ref: Any) -> tuple[Any, Any]:
    """Common type, equal shapes, finite values; errors name the offending argument."""
    if isinstance(u, torch.Tensor) or isinstance(ref, torch.Tensor):
        like = u if isinstance(u, torch.Tensor) else ref
        dtype = like.dtype if like.is_floating_point() else torch.float64
        u, ref = (torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v,
                                  dtype=dtype, device=like.device) for v in (u, ref))
        finite = lambda v: int((~torch.isfinite(v)).sum())  # noqa: E731
    else:
        u, ref = np.asarray(u, dtype=np.float64), np.asarray(ref, dtype=np.float64)
        finite = lambda v: int(np.count_nonzero(~np.isfinite(v)))  # noqa: E731
    if tuple(u.shape) != tuple(ref.shape):
        raise ValueError(f"shape mismatch: u has shape {tuple(u.shape)}, "
                         f"ref has shape {tuple(ref.shape)}")
    for name, v in (("u", u), ("ref", ref)):
        bad = finite(v)
        if bad:
            raise ValueError(f"{name} has {bad} non-finite value(s) (NaN or inf)")
    return u, ref


def _sum(v: Any, axis: Axis) -> Any:
    if isinstance(v, torch.Tensor):
        return v.sum() if axis is None else v.sum(dim=axis)
    return v.sum(axis=axis)


def mse(u: Any, ref: Any, axis: Axis = None) -> Any:
    """Mean squared error ``mean((u - ref)^2)`` over ``axis`` (all axes if None)."""
    u, ref = _prepare(u, ref)
    sq = (u - ref) ** 2
    if isinstance(sq, torch.Tensor):
        return sq.mean() if axis is None else sq.mean(dim=axis)
    return sq.mean(axis=axis)


def rel_l2(u: Any, ref: Any, axis: Axis = None) -> Any:
    """Relative L2 error ``||u - ref|| / ||ref||`` over ``axis`` (all axes if None).

    Raises
    ------
    ValueError
        If ``ref`` has zero norm along a reduced slice.
    """
    u, ref = _prepare(u, ref)
    num, den = _sum((u - ref) ** 2, axis), _sum(ref**2, axis)
    zero = (den == 0)
    if bool(zero.any() if isinstance(zero, torch.Tensor) else np.any(zero)):
        raise ValueError("ref has zero norm (along the reduced axes); relative error undefined")
    return (num / den) ** 0.5
