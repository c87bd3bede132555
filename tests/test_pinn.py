"""MAD-PINN, the space-time auto-decoder baseline (book: Chapter 9, baselines)."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from madng_lite.data import make_family
from madng_lite.mad import nearest_latent
from madng_lite.pdes import make_pde
from madng_lite.pinn import SpaceTimeAutoDecoder, causal_weights, model_for
from madng_lite.pipeline.config import FULL, QUICK, RunConfig


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


# ----- the real budget: causal weights, L-BFGS, theta fine-tuning, seeds, configuration ------------
def _tiny(n=4, n_grid=16, T=0.1):
    fam = make_family("burgers", n, seed=0, n_grid=n_grid, T=T)
    return fam, SpaceTimeAutoDecoder(fam.box, T=T, latent_dim=3, width=10, depth=2, seed=0)


def test_causal_weights_by_hand():
    R = torch.tensor([[0.5, 1.0, 2.0, 0.0], [0.0, 0.0, 3.0, 1.0]], dtype=torch.float64, requires_grad=True)
    w = causal_weights(R, 2.0)
    # w_k = exp(-eps * sum_{j<k} R_j), row by row; the first chunk always counts in full
    want = torch.tensor([[1.0, math.exp(-1.0), math.exp(-3.0), math.exp(-7.0)],
                         [1.0, 1.0, 1.0, math.exp(-6.0)]], dtype=torch.float64)
    assert torch.allclose(w, want, rtol=1e-15, atol=0)
    assert not w.requires_grad                       # no gradient flows through the weights
    assert torch.equal(causal_weights(R, 0.0), torch.ones_like(want))
    with pytest.raises(ValueError, match="eps must be finite and >= 0"):
        causal_weights(R, -1.0)


def test_collocation_is_stratified_and_chunk_residuals_are_right():
    fam, st = _tiny()
    gen = torch.Generator().manual_seed(3)
    xc, tc = st.collocation(40, 4, gen, fam.x)
    k = (tc / (0.1 / 4)).floor().long()
    assert torch.equal(torch.bincount(k, minlength=4), torch.tensor([10, 10, 10, 10]))
    assert bool((tc >= 0).all() and (tc < 0.1).all())
    Z = 0.1 * torch.ones(2, 3, dtype=torch.float64)
    ic, res = st.terms(fam.x, fam.U0[:2], Z, fam.pdes[:2], xc, tc, 4)
    assert ic.shape == (2,) and res.shape == (2, 4)
    for i in range(2):   # by hand: u_t - f at the points, mean per chunk
        d = st.derivs(xc, tc, Z[i].expand(40, -1), ("u", "ux", "uxx"), need_ut=True)
        r2 = (d["ut"] - fam.pdes[i].rhs(xc, d)).detach() ** 2
        want = torch.stack([r2[k == j].mean() for j in range(4)])
        assert torch.allclose(res[i].detach(), want, rtol=1e-12)
        u0 = st.derivs(fam.x, torch.zeros(16, dtype=torch.float64), Z[i].expand(16, -1), ("u",))["u"]
        assert torch.allclose(ic[i], ((u0 - fam.U0[i]) ** 2).mean(), rtol=1e-12)


def test_lbfgs_phase_lowers_the_loss():
    fam, st = _tiny()
    # no Adam at all: history[0] is the loss at the fixed draw before L-BFGS, then one entry per block
    Z, rep = st.pretrain(fam.x, fam.U0, fam.pdes, iters=0, n_colloc=32, lbfgs_iters=40, lbfgs_block=20)
    assert rep.lbfgs_iters > 0 and len(rep.history) >= 2
    assert rep.history[-1] < 0.5 * rep.history[0]
    # after Adam too, with causal weights (frozen per block)
    fam, st = _tiny()
    Z, rep = st.pretrain(fam.x, fam.U0, fam.pdes, iters=30, lr=1e-2, n_colloc=32, lbfgs_iters=30,
                         chunks=4, eps=1.0, lbfgs_block=15)
    # history: Adam at iterations 0 and 29, the loss before L-BFGS, then after each block; the causal
    # weights are those of the parameters at the block's start, so entries 2 and 3 are one function
    assert rep.lbfgs_iters > 0 and len(rep.history) == 5 and rep.history[3] < rep.history[2]
    assert 0 < rep.min_causal_weight <= 1


def test_theta_finetuning_leaves_the_pretrained_model_untouched():
    fam, st = _tiny(5)
    Z, _ = st.pretrain(fam.x, fam.U0[:4], fam.pdes[:4], iters=20, lr=1e-2, n_colloc=16)
    theta = torch.cat([p.detach().reshape(-1) for p in st.params]).clone()
    flags = [p.requires_grad for p in st.params]
    U_before = st.predict(fam.x, [0.0, 0.1], Z[0])
    z, rep = st.finetune(fam.x, fam.U0[4], fam.pdes[4], Z[0], iters=20, lr=1e-2, n_colloc=16,
                         lbfgs_iters=10, tune_theta=True, theta_lr=1e-3, chunks=2, eps=1.0)
    assert rep.model is not st
    assert torch.equal(theta, torch.cat([p.detach().reshape(-1) for p in st.params]))
    assert [p.requires_grad for p in st.params] == flags
    assert torch.equal(U_before, st.predict(fam.x, [0.0, 0.1], Z[0]))
    tuned = torch.cat([p.detach().reshape(-1) for p in rep.model.params])
    assert not torch.equal(theta, tuned)                         # the copy's weights moved
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(st.params, rep.model.params))
    # and the tuned model fits this sample's initial condition better than the shared one does
    z_only, rep_l = st.finetune(fam.x, fam.U0[4], fam.pdes[4], Z[0], iters=20, lr=1e-2, n_colloc=16,
                                lbfgs_iters=10, chunks=2, eps=1.0)
    assert rep_l.model is st and rep.ic_mse < rep_l.ic_mse


def test_determinism_by_seed():
    def run(seed):
        fam, st = _tiny(6)
        Z, rep = st.pretrain(fam.x, fam.U0, fam.pdes, iters=15, lr=1e-2, n_colloc=24, batch=3, chunks=3,
                             eps=1.0, lbfgs_iters=5, seed=seed)
        z, fr = st.finetune(fam.x, fam.U0[0], fam.pdes[0], Z[1], iters=10, n_colloc=24, lbfgs_iters=5,
                            tune_theta=True, chunks=3, eps=1.0, seed=seed)
        return Z.detach(), rep.history, z, fr.model.predict(fam.x, [0.1], z)
    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(u, v) for u, v in zip((a[0], a[2], a[3]), (b[0], b[2], b[3]))) and a[1] == b[1]
    assert not torch.equal(a[0], c[0])


def test_settings_from_the_run_configuration():
    cfg = replace(QUICK["burgers"], pinn_width=12, pinn_depth=0, pinn_n_freq=2)
    st = model_for(cfg, [(-1.0, 1.0)], seed=0)
    assert st.decoder.width == 12 and st.decoder.depth == cfg.depth and st.decoder.embedding.n_freq == 2
    # the former baseline is the default: no L-BFGS, no causal weights, z only
    base = RunConfig("burgers", 4, 1, 1, 16, 8, 2, 3, 1, 0.01, 10, 10, 1e-2, (), "L", 10, 1e-3, 1e-6, 0.1,
                     1e-2, 16, None, 2)
    assert (base.pinn_lbfgs_iters, base.pinn_chunks, base.pinn_eps, base.pinn_ft_theta) == (0, 1, 0.0, False)
    for name in ("kdv", "burgers"):   # quick mode shrinks sizes, never code paths
        q, f = QUICK[name], FULL[name]
        assert (q.pinn_ft_theta, q.pinn_lbfgs_iters > 0, q.pinn_ft_lbfgs_iters > 0, q.pinn_chunks > 1) == \
            (f.pinn_ft_theta, f.pinn_lbfgs_iters > 0, f.pinn_ft_lbfgs_iters > 0, f.pinn_chunks > 1)


def test_clear_errors_of_the_new_options():
    fam, st = _tiny()
    x, U0, pdes = fam.x, fam.U0, fam.pdes
    for kw, msg in ((dict(chunks=0), "chunks must be between 1 and n_colloc"),
                    (dict(chunks=40, n_colloc=32), "chunks must be between 1 and n_colloc"),
                    (dict(eps=-1.0), "eps must be finite"), (dict(eps=float("nan")), "eps must be finite"),
                    (dict(batch=0), "batch must be between 1 and the 4 samples"),
                    (dict(batch=5), "batch must be between 1 and the 4 samples"),
                    (dict(lbfgs_iters=-1), "need iters, lbfgs_iters"), (dict(lbfgs_block=0), "need iters")):
        with pytest.raises(ValueError, match=msg):
            st.pretrain(x, U0, pdes, iters=1, **kw)
    z0 = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="theta_lr must be > 0"):
        st.finetune(x, U0[0], pdes[0], z0, iters=1, tune_theta=True, theta_lr=0.0)
    with pytest.raises(ValueError, match="z0 must have 3 entries"):
        st.finetune(x, U0[0], pdes[0], torch.zeros(4, dtype=torch.float64), iters=1)
