"""Index samplers for randomized sparse Neural Galerkin updates (book: Chapter 4, sparse updates).

Each time step draws ``s`` of the ``p`` parameter indices *without replacement*; only those
columns of ``J`` are built and solved for, and the other entries of ``theta_dot`` are zero.
Dense Neural Galerkin is the case ``s >= p`` (no draw at all).
"""
from __future__ import annotations

import torch
from torch import Tensor

SAMPLERS = ("uniform", "colnorm")


def draw_indices(p: int, s: int | None, generator: torch.Generator, kind: str = "uniform",
                 col_norms2: Tensor | None = None, mix: float = 0.1) -> Tensor:
    """Draw a sorted index set ``S`` of size ``min(s, p)`` from ``range(p)``.

    Parameters
    ----------
    kind : ``"uniform"``, or ``"colnorm"``: probabilities proportional to the squared column norms
        of ``J`` (given as ``col_norms2``), mixed with a fraction ``mix`` of the uniform law so that
        every column keeps a chance.
    generator : a seeded ``torch.Generator`` (on the CPU); the only source of randomness.
    """
    if s is None or s >= p:
        return torch.arange(p)
    if s < 1:
        raise ValueError(f"sparse size s must be >= 1, got {s}")
    if kind == "uniform":
        idx = torch.randperm(p, generator=generator)[:s]
    elif kind == "colnorm":
        if col_norms2 is None or col_norms2.shape != (p,):
            raise ValueError("the colnorm sampler needs the squared column norms of J, shape (p,)")
        w = col_norms2.detach().double().cpu().clamp_min(0)
        w = (1 - mix) * w / w.sum() + mix / p
        idx = torch.multinomial(w, s, replacement=False, generator=generator)
    else:
        raise ValueError(f"unknown sampler {kind!r}; known: {SAMPLERS}")
    return idx.sort().values
