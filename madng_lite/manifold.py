"""Did the auto-decoder learn its family? Diagnostics of the latent space (book: Chapter 2).

An auto-decoder that learned a family places similar initial conditions at nearby latents; one
that memorised its samples leaves each latent near its random initial draw, labels without
meaning. Three numbers tell them apart:

* how far the latents moved from their initial draw, ``||Z - Z_0||_F / ||Z_0||_F``;
* the rank (Spearman) correlation between the pairwise latent distances and the pairwise data
  distances ``||u0_i - u0_j||``: near 1 for a latent space that mirrors the data, near 0 for
  random labels (the same statistic of the initial draw ``Z_0`` is the baseline);
* the correlation of the latents' leading principal components with the family's parameters
  (:func:`pc_correlations`).
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["initial_latents", "spearman", "manifold_report", "pc_correlations"]


def initial_latents(n: int, latent_dim: int, seed: int) -> Tensor:
    """The initial draw ``Z_0 ~ N(0, I)`` of :func:`madng_lite.mad.pretrain` with ``seed``."""
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)


def _ranks(v: Tensor) -> Tensor:
    r = torch.empty_like(v)
    r[v.argsort()] = torch.arange(len(v), dtype=v.dtype)
    return r


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman rank correlation of two 1-D tensors of equal length (ties are broken by order)."""
    if a.shape != b.shape or a.ndim != 1 or len(a) < 3:
        raise ValueError(f"need two 1-D tensors of equal length >= 3, got {tuple(a.shape)} and {tuple(b.shape)}")
    ra, rb = _ranks(a.double()), _ranks(b.double())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra @ rb) / (ra.norm() * rb.norm()))


def _pairwise(X: Tensor) -> Tensor:
    i, j = torch.triu_indices(len(X), len(X), offset=1)
    return (X[i] - X[j]).norm(dim=1)


def manifold_report(U0: Tensor, Z: Tensor, Z0: Tensor) -> dict:
    """Movement of the latents and rank correlations of latent and data distances (see the module)."""
    if U0.shape[0] != Z.shape[0] or Z.shape != Z0.shape:
        raise ValueError(f"need U0 (N, n), Z and Z0 (N, latent) with one row per sample, got "
                         f"{tuple(U0.shape)}, {tuple(Z.shape)}, {tuple(Z0.shape)}")
    U0, Z, Z0 = U0.double().cpu(), Z.double().cpu(), Z0.double().cpu()
    data = _pairwise(U0)
    return {"moved": float((Z - Z0).norm() / Z0.norm()),
            "rank_corr": spearman(_pairwise(Z), data),
            "rank_corr_initial": spearman(_pairwise(Z0), data),
            "n_samples": int(Z.shape[0])}


def pc_correlations(Z: Tensor, params: Tensor, k: int = 3) -> Tensor:
    """Absolute Pearson correlations, shape ``(k, n_params)``, of the ``k`` leading principal
    components of the latents ``Z`` (N, latent) with the family's parameters ``params`` (N, m)."""
    Zc = Z.double() - Z.double().mean(0)
    _, _, Vh = torch.linalg.svd(Zc, full_matrices=False)
    pcs = Zc @ Vh[:k].T
    P = params.double() - params.double().mean(0)
    num = pcs.T @ P
    den = pcs.norm(dim=0)[:, None] * P.norm(dim=0)[None, :]
    return (num / den.clamp_min(1e-300)).abs()
