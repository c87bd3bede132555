"""Embedding, decoder and the two derivative/Jacobian paths (fast vs torch.func vs finite differences)."""
from __future__ import annotations

import math

import pytest
import torch

from madng_lite.decoder import Decoder
from madng_lite.derivatives import NAMES_1D, NAMES_2D, FastMLP, derivs_generic, jacobian_generic
from madng_lite.embedding import PeriodicEmbedding, check_box

CASES = [
    ([(-1.0, 1.0)], NAMES_1D, "tanh"),
    ([(0.0, 2 * math.pi)], NAMES_1D, "sin"),
    ([(-20.0, 40.0)], NAMES_1D, "softplus"),
    ([(0.0, 1.0), (0.0, 1.5)], NAMES_2D, "tanh"),
    ([(-1.0, 1.0), (2.0, 3.0)], NAMES_2D, "sin"),
]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


@pytest.mark.parametrize("box,names,act", CASES)
def test_fast_path_matches_torch_func(box, names, act):
    g = torch.Generator().manual_seed(0)
    dec = Decoder(box, latent_dim=4, width=16, depth=3, n_freq=2, activation=act, seed=3)
    theta = dec.flat_theta() + 0.1 * torch.randn(dec.n_params, generator=g, dtype=torch.float64)
    lo = torch.tensor([a for a, _ in box], dtype=torch.float64)
    hi = torch.tensor([b for _, b in box], dtype=torch.float64)
    x = lo + (hi - lo) * torch.rand(40, len(box), generator=g, dtype=torch.float64)
    z = torch.randn(4, generator=g, dtype=torch.float64)
    fast = FastMLP(dec)
    d_fast, st = fast.forward(theta, x, z, names, need_jac=True)
    d_gen = derivs_generic(dec, theta, x, z, names)
    for k in names:
        assert rel(d_fast[k], d_gen[k]) < 1e-10, k
    J_gen = jacobian_generic(dec, theta, x, z)
    assert rel(fast.jac(st), J_gen) < 1e-10
    cols = torch.randperm(dec.n_params, generator=g)[:50].sort().values
    assert rel(fast.jac(st, cols), J_gen[:, cols]) < 1e-10
    assert rel(fast.col_norms2(st), (J_gen**2).sum(0)) < 1e-10


def test_jacobian_and_derivatives_match_finite_differences():
    dec = Decoder([(0.0, 1.0)], latent_dim=2, width=10, depth=2, n_freq=2, seed=1)
    theta = dec.flat_theta()
    x = torch.linspace(0.05, 0.95, 9, dtype=torch.float64)[:, None]
    z = torch.tensor([0.3, -0.2], dtype=torch.float64)
    fast = FastMLP(dec)
    d, st = fast.forward(theta, x, z, NAMES_1D, need_jac=True)
    J = fast.jac(st)
    h = 1e-6
    for j in [0, 7, 50, dec.n_params - 1]:
        e = torch.zeros_like(theta)
        e[j] = h
        fd = (fast.forward(theta + e, x, z)[0]["u"] - fast.forward(theta - e, x, z)[0]["u"]) / (2 * h)
        assert torch.allclose(J[:, j], fd, atol=1e-8)
    # x-derivatives by central differences of the lower derivative
    hx = 1e-5
    up = fast.forward(theta, x + hx, z, NAMES_1D)[0]
    dn = fast.forward(theta, x - hx, z, NAMES_1D)[0]
    for lo, hi in (("u", "ux"), ("ux", "uxx"), ("uxx", "uxxx")):
        fd = (up[lo] - dn[lo]) / (2 * hx)
        assert rel(fd, d[hi]) < 1e-7, hi


def test_rational_activation_uses_generic_path():
    dec = Decoder([(0.0, 1.0)], width=8, depth=2, activation="rational")
    assert not dec.has_fast_path
    with pytest.raises(ValueError, match="fast path"):
        FastMLP(dec)
    x = torch.rand(5, 1, dtype=torch.float64)
    d = derivs_generic(dec, dec.flat_theta(), x, None, ["u", "uxx"])
    assert torch.allclose(d["u"], dec(x).detach())
    J = jacobian_generic(dec, dec.flat_theta(), x, None)
    assert J.shape == (5, dec.n_params)
    # the initial rational is close to tanh on [-3, 3]
    a = torch.linspace(-3, 3, 101, dtype=torch.float64)
    with torch.no_grad():
        assert float((dec.acts[0](a) - torch.tanh(a)).abs().max()) < 5e-3


@pytest.mark.parametrize("box", [[(0.0, 1.0)], [(-20.0, 40.0)], [(0.0, 1.0), (0.0, 1.5)]])
def test_decoder_is_periodic_with_all_derivatives(box):
    dec = Decoder(box, latent_dim=3, width=12, depth=2, n_freq=3, seed=0)
    z = torch.randn(3, dtype=torch.float64)
    d = len(box)
    names = NAMES_1D if d == 1 else NAMES_2D
    g = torch.Generator().manual_seed(1)
    for axis in range(d):
        x0 = torch.stack([torch.full((6,), a, dtype=torch.float64) if i == axis
                          else a + (b - a) * torch.rand(6, generator=g, dtype=torch.float64)
                          for i, (a, b) in enumerate(box)], 1)
        x1 = x0.clone()
        x1[:, axis] = box[axis][1]
        d0 = derivs_generic(dec, dec.flat_theta(), x0, z, names)
        d1 = derivs_generic(dec, dec.flat_theta(), x1, z, names)
        for k in names:
            assert torch.allclose(d0[k], d1[k], atol=1e-9 * max(1.0, float(d0[k].abs().max()))), (axis, k)


def test_embedding_features_and_errors():
    emb = PeriodicEmbedding([(0.0, 2.0), (1.0, 2.0)], n_freq=2)
    assert emb.out_features == 8
    x = torch.tensor([[0.5, 1.25]], dtype=torch.float64)
    f = emb(x)
    w = 2 * math.pi / 2.0
    assert torch.allclose(f[0, :4], torch.tensor([math.sin(w * 0.5), math.cos(w * 0.5), math.sin(2 * w * 0.5),
                                                  math.cos(2 * w * 0.5)], dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        emb(torch.zeros(3, 1))
    with pytest.raises(ValueError, match="periodic interval"):
        check_box([(1.0, 1.0)])
    with pytest.raises(ValueError, match="periodic interval"):
        check_box([(0.0, float("inf"))])


def test_flat_theta_round_trip_and_errors():
    dec = Decoder([(0.0, 1.0)], latent_dim=2, width=5, depth=2)
    th = dec.flat_theta()
    assert th.shape == (dec.n_params,) == (sum(p.numel() for p in dec.parameters()),)
    dec.load_flat(2 * th)
    assert torch.equal(dec.flat_theta(), 2 * th)
    with pytest.raises(ValueError, match="theta must be 1-D"):
        dec.unflatten(th[:-1])
    with pytest.raises(ValueError, match="latent z"):
        dec(torch.zeros(3, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="unknown activation"):
        Decoder([(0.0, 1.0)], activation="relu6")


def test_float32_path():
    dec = Decoder([(0.0, 1.0)], width=8, depth=2, dtype=torch.float32)
    x = torch.rand(10, 1)
    d, st = FastMLP(dec).forward(dec.flat_theta(), x, None, ["u", "uxx"], need_jac=True)
    assert d["u"].dtype == torch.float32 and FastMLP(dec).jac(st).dtype == torch.float32
