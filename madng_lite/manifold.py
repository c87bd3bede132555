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

Latents drawn at random start as labels without meaning, and pretraining may leave them so. The
:class:`PCAEncoder` gives them meaning from the start: each sample's coordinates on the leading
principal directions of the training data (``pretrain(..., z_init="pca")``), so that nearby
initial conditions begin at nearby latents.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["initial_latents", "PCAEncoder", "spearman", "manifold_report", "pc_correlations"]


def initial_latents(n: int, latent_dim: int, seed: int) -> Tensor:
    """The initial draw ``Z_0 ~ N(0, I)`` of :func:`madng_lite.mad.pretrain` with ``seed``."""
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)


@dataclass(frozen=True)
class PCAEncoder:
    """A linear map ``u0 -> z`` fitted to training data (book: Chapter 2, latents with meaning).

    ``z = basis (u0 - mean) / scale``: the coordinates of the centred sample on the ``k`` leading
    principal directions of the training data (``basis``, orthonormal rows), padded with zeros up to
    ``latent_dim`` when the data have fewer directions, and divided by the spread of the training
    samples along the first direction (so the first coordinate has unit standard deviation, as a
    draw from ``N(0, 1)`` would). Distances between latents are those between the samples' projections,
    up to one factor.
    """

    mean: Tensor    # (n,)
    basis: Tensor   # (k, n), k <= latent_dim
    scale: float
    latent_dim: int

    @classmethod
    def fit(cls, U0: Tensor, latent_dim: int) -> PCAEncoder:
        """Principal directions of the rows of ``U0`` (N, n), N >= 2 samples that are not all equal."""
        if U0.ndim != 2 or U0.shape[0] < 2:
            raise ValueError(f"need U0 of shape (N, n) with N >= 2 samples, got {tuple(U0.shape)}")
        if int(latent_dim) < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        if not bool(torch.isfinite(U0).all()):
            raise ValueError(f"U0 has {int((~torch.isfinite(U0)).sum())} non-finite value(s)")
        U = U0.double()
        mean = U.mean(0)
        _, S, Vh = torch.linalg.svd(U - mean, full_matrices=False)
        k = min(int(latent_dim), int((S > S[0] * 1e-12).sum())) if float(S[0]) > 0 else 0
        if k == 0:
            raise ValueError("the training samples are all equal: no principal direction to encode along")
        scale = float(S[0]) / (U.shape[0] - 1) ** 0.5   # standard deviation along the first direction
        return cls(mean, Vh[:k].clone(), scale, int(latent_dim))

    def encode(self, U: Tensor) -> Tensor:
        """Latents of the rows of ``U`` (N, n), shape ``(N, latent_dim)``; a single ``(n,)`` gives ``(latent_dim,)``."""
        single = U.ndim == 1
        U = U.reshape(1, -1) if single else U
        if U.ndim != 2 or U.shape[1] != self.mean.shape[0]:
            raise ValueError(f"need samples of {self.mean.shape[0]} values, got shape {tuple(U.shape)}")
        c = (U.double() - self.mean.to(U.device)) @ self.basis.to(U.device).T / self.scale
        Z = torch.cat([c, c.new_zeros(c.shape[0], self.latent_dim - c.shape[1])], dim=1)
        return Z[0] if single else Z


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
