"""MAD-PINN, the space-time auto-decoder baseline (book: Chapter 10)."""
from __future__ import annotations

import pytest
import torch

from madng_lite.data import make_family
from madng_lite.mad import nearest_latent
from madng_lite.pdes import make_pde
from madng_lite.pinn import SpaceTimeAutoDecoder


def test_time_derivative_matches_finite_differences():
    st = SpaceTimeAutoDecoder([(-1.0, 1.0)], T=0.5, latent_dim=3, width=10, depth=2, seed=1)
    x = torch.linspace(-1, 1, 7, dtype=torch.float64)[:, None]
    t = torch.full((7,), 0.2, dtype=torch.float64)
    Z = 0.3 * torch.ones(7, 3, dtype=torch.float64)
    d = st.derivs(x, t, Z, ("u", "ux", "uxxx"), need_ut=True)
    h = 1e-5
    fd = (st.derivs(x, t + h, Z, ("u",))["u"] - st.derivs(x, t - h, Z, ("u",))["u"]) / (2 * h)
    assert torch.allclose(d["ut"].detach(), fd, atol=1e-8)
    # periodic in x by construction, at every time
    xe = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    u = st.derivs(xe, torch.tensor([0.3, 0.3], dtype=torch.float64), Z[:2], ("u",))["u"]
    assert abs(float((u[0] - u[1]).detach())) < 1e-12


def test_pretrain_and_finetune_reduce_the_loss():
    fam = make_family("burgers", 5, seed=0, n_grid=32, T=0.1)
    tr = fam.subset(range(4))
    st = SpaceTimeAutoDecoder(fam.box, T=0.1, latent_dim=4, width=12, depth=2, seed=0)
    Z, rep = st.pretrain(fam.x, tr.U0, tr.pdes, iters=150, lr=1e-2, n_colloc=32)
    assert Z.shape == (4, 4) and rep.history[-1] < 0.2 * rep.history[0]
    z0, _ = nearest_latent(tr.U0, Z, fam.U0[4])
    theta = torch.cat([p.detach().reshape(-1) for p in st.params])
    z, fr = st.finetune(fam.x, fam.U0[4], fam.pdes[4], z0, iters=60, lr=1e-2, n_colloc=32)
    assert fr.history[-1] <= fr.history[0] and not torch.equal(z, z0)
    assert torch.equal(theta, torch.cat([p.detach().reshape(-1) for p in st.params]))  # MAD-L: weights fixed
    U = st.predict(fam.x, [0.0, 0.05, 0.1], z)
    assert U.shape == (3, 32) and torch.isfinite(U).all()


def test_clear_errors():
    st = SpaceTimeAutoDecoder([(-1.0, 1.0)], T=1.0, latent_dim=2, width=6, depth=1)
    x = torch.zeros(8, 1, dtype=torch.float64)
    pde = make_pde("burgers", nu=0.01)
    with pytest.raises(ValueError, match="one PDE per sample"):
        st.pretrain(x, torch.zeros(2, 8, dtype=torch.float64), [pde], iters=1)
    with pytest.raises(ValueError, match="U0 must have shape"):
        st.pretrain(x, torch.zeros(2, 5, dtype=torch.float64), [pde, pde], iters=1)
    with pytest.raises(ValueError, match="non-finite"):
        st.pretrain(x, torch.full((1, 8), float("nan"), dtype=torch.float64), [pde], iters=1)
    with pytest.raises(ValueError, match="2-D but the decoder is 1-D"):
        st.pretrain(x, torch.zeros(1, 8, dtype=torch.float64), [make_pde("allen_cahn", dim=2)], iters=1)
    with pytest.raises(ValueError, match="T must be > 0"):
        SpaceTimeAutoDecoder([(-1.0, 1.0)], T=0.0)
