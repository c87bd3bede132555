"""Latent-space diagnostics (madng_lite.manifold): movement, rank correlations, principal components."""
from __future__ import annotations

import pytest
import torch

from madng_lite.manifold import PCAEncoder, initial_latents, manifold_report, pc_correlations, spearman


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


def test_the_pca_encoder_keeps_the_geometry_of_a_linear_family():
    g = torch.Generator().manual_seed(2)
    params = torch.randn(30, 3, generator=g, dtype=torch.float64)
    x = torch.linspace(0, 1, 40, dtype=torch.float64)
    basis = torch.stack([torch.sin(2 * torch.pi * x), torch.cos(2 * torch.pi * x), torch.sin(4 * torch.pi * x)])
    U0 = params @ basis                                       # a linear 3-parameter family
    enc = PCAEncoder.fit(U0, latent_dim=5)
    Z = enc.encode(U0)
    assert Z.shape == (30, 5) and enc.basis.shape == (3, 40)   # three directions, padded with zeros
    assert torch.equal(Z[:, 3:], torch.zeros(30, 2, dtype=torch.float64))
    assert float(Z[:, 0].std()) == pytest.approx(1.0, rel=1e-12)
    # latent distances are the data distances divided by one factor: a rank correlation of 1
    d_z, d_u = torch.pdist(Z), torch.pdist(U0)
    assert torch.allclose(d_z * enc.scale, d_u, rtol=1e-10)
    assert manifold_report(U0, Z, initial_latents(30, 5, seed=0))["rank_corr"] == pytest.approx(1.0)
    assert torch.allclose(enc.encode(U0[7]), Z[7], rtol=0, atol=1e-14)   # one sample or many: the same
    with pytest.raises(ValueError, match="all equal"):
        PCAEncoder.fit(torch.ones(4, 10, dtype=torch.float64), 2)
    with pytest.raises(ValueError, match="N >= 2"):
        PCAEncoder.fit(U0[:1], 2)
    with pytest.raises(ValueError, match="non-finite"):
        PCAEncoder.fit(torch.where(U0 > 2, float("nan"), U0), 2)
    with pytest.raises(ValueError, match="samples of 40 values"):
        enc.encode(U0[:, :20])
