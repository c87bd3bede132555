"""Latent-space diagnostics (madng_lite.manifold): movement, rank correlations, principal components."""
from __future__ import annotations

import pytest
import torch

from madng_lite.manifold import initial_latents, manifold_report, pc_correlations, spearman


def test_spearman_on_known_cases():
    a = torch.arange(10.0)
    assert spearman(a, a**3) == pytest.approx(1.0) and spearman(a, -a) == pytest.approx(-1.0)
    b = torch.tensor([1.0, 3.0, 2.0, 5.0, 4.0])
    # 1 - 6 sum d^2 / (n (n^2 - 1)) with d = (0, 1, -1, 1, -1): 1 - 24/120
    assert spearman(torch.arange(5.0), b) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="equal length"):
        spearman(a, a[:5])


def test_a_latent_space_that_mirrors_the_data_and_one_that_does_not():
    g = torch.Generator().manual_seed(0)
    params = torch.rand(40, 2, generator=g, dtype=torch.float64)
    x = torch.linspace(0, 1, 50, dtype=torch.float64)
    U0 = params[:, :1] * torch.sin(6 * x) + params[:, 1:] * torch.cos(6 * x)   # a linear 2-parameter family
    Z0 = initial_latents(40, 4, seed=1)
    good = torch.cat([params, torch.zeros(40, 2, dtype=torch.float64)], 1)     # latents = the parameters
    r = manifold_report(U0, good, Z0)
    assert r["rank_corr"] > 0.95 and abs(r["rank_corr_initial"]) < 0.2 and r["moved"] > 0.5
    memorised = Z0 + 0.01 * torch.randn(40, 4, generator=g, dtype=torch.float64)   # random labels, barely moved
    r = manifold_report(U0, memorised, Z0)
    assert abs(r["rank_corr"]) < 0.2 and r["moved"] < 0.02
    pc = pc_correlations(good, params, k=2)
    assert pc.shape == (2, 2) and pc.max(dim=1).values.min() > 0.95
    assert torch.equal(Z0, initial_latents(40, 4, seed=1))
