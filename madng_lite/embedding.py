"""Periodic positional embedding on any box ``[a, b)^d`` (book: Chapter 1, the periodic embedding).

Each coordinate ``x_i`` in ``[a_i, b_i)`` is mapped to ``sin(2 pi k (x_i - a_i) / L_i)`` and
``cos(...)`` for ``k = 1..K`` with ``L_i = b_i - a_i``. Every feature is exactly ``L_i``-periodic,
so a network fed only with these features is periodic with all its x-derivatives, whatever its
weights. (The authors' code used ``sin(pi x), cos(pi x)`` everywhere, which has period 2 and is
therefore *not* periodic on ``[0, 1)^2``.)
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

Box = Sequence[tuple[float, float]]


def check_box(box: Box) -> tuple[tuple[float, float], ...]:
    """Validate a periodic box ``[(a_1, b_1), ...]`` and return it as a tuple of float pairs."""
    try:
        out = tuple((float(a), float(b)) for a, b in box)
    except (TypeError, ValueError) as e:
        raise ValueError(f"box must be a sequence of (a, b) pairs, got {box!r}") from e
    if not out:
        raise ValueError("box must have at least one dimension")
    for i, (a, b) in enumerate(out):
        if not (math.isfinite(a) and math.isfinite(b)) or not b > a:
            raise ValueError(f"box dimension {i} is not a periodic interval [a, b) with a < b: {(a, b)}")
    return out


class PeriodicEmbedding(nn.Module):
    """Features ``[sin(2 pi k (x - a)/L), cos(2 pi k (x - a)/L)]`` for ``k = 1..n_freq`` per dimension.

    Parameters
    ----------
    box : sequence of (a, b)
        The periodic box, one pair per spatial dimension.
    n_freq : int
        Number of frequencies ``K`` per dimension; the output has ``2 K d`` features.

    Feature order: for each dimension, for each k: sin then cos.
    """

    def __init__(self, box: Box, n_freq: int = 1) -> None:
        super().__init__()
        self.box = check_box(box)
        if int(n_freq) < 1:
            raise ValueError(f"n_freq must be >= 1, got {n_freq}")
        self.n_freq = int(n_freq)
        self.dim = len(self.box)
        a = torch.tensor([b[0] for b in self.box], dtype=torch.float64)
        length = torch.tensor([b[1] - b[0] for b in self.box], dtype=torch.float64)
        k = torch.arange(1, self.n_freq + 1, dtype=torch.float64)
        # omega[i, k] = 2 pi k / L_i
        self.register_buffer("a", a, persistent=False)
        self.register_buffer("omega", 2 * math.pi * k[None, :] / length[:, None], persistent=False)

    @property
    def out_features(self) -> int:
        return 2 * self.n_freq * self.dim

    def phases(self, x: Tensor) -> Tensor:
        """``omega_ik (x_i - a_i)``, shape ``(n, d, K)``."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        return (x - self.a.to(x))[:, :, None] * self.omega.to(x)[None]

    def forward(self, x: Tensor) -> Tensor:
        ph = self.phases(x)
        return torch.stack((torch.sin(ph), torch.cos(ph)), dim=-1).reshape(x.shape[0], -1)

    def directional(self, x: Tensor, order: int) -> list[Tensor]:
        """The embedding and its pure derivatives along each axis up to ``order``.

        Returns a list ``[phi, D phi, D^2 phi, ...]``: ``phi`` has shape ``(n, F)``; entry ``k >= 1``
        has shape ``(n, d, F)``, row ``j`` holding ``d^k phi / dx_j^k``. Exact, from
        ``d/dx sin(w x) = w cos(w x)`` and ``d/dx cos(w x) = -w sin(w x)``.
        """
        ph = self.phases(x)  # (n, d, K)
        s, c = torch.sin(ph), torch.cos(ph)
        n, d, k = ph.shape
        w = self.omega.to(x)  # (d, K)
        out: list[Tensor] = [torch.stack((s, c), -1).reshape(n, -1)]
        # cycle of derivatives of (sin, cos): (cos, -sin), (-sin, -cos), (-cos, sin)
        cycle = [(c, -s), (-s, -c), (-c, s), (s, c)]
        eye = torch.eye(d, dtype=x.dtype, device=x.device)
        for m in range(1, order + 1):
            ds, dc = cycle[(m - 1) % 4]
            wm = w**m  # (d, K)
            # derivative along axis j only touches the features of dimension j
            feats = torch.stack((ds * wm, dc * wm), -1)  # (n, d, K, 2)
            full = eye[None, :, :, None, None] * feats[:, None]  # (n, j, d, K, 2)
            out.append(full.reshape(n, d, -1))
        return out
