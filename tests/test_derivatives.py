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


# ----- the fused pass (book: Chapter 5, Making it fast) against the reference pass -------------
def _case(dim: int, act: str, latent: int, depth: int, n: int = 37, seed: int = 0):
    box = [(-1.0, 1.0), (0.0, 1.5)][:dim]
    dec = Decoder(box, latent_dim=latent, width=9, depth=depth, n_freq=2, activation=act, seed=seed)
    g = torch.Generator().manual_seed(seed)
    theta = dec.flat_theta() + 0.3 * torch.randn(dec.n_params, generator=g, dtype=torch.float64)
    x = -1.0 + 2.5 * torch.rand(n, dim, generator=g, dtype=torch.float64)
    z = torch.randn(latent, generator=g, dtype=torch.float64) if latent else None
    return dec, theta, x, z


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("act", ["tanh", "sin", "softplus"])
@pytest.mark.parametrize("latent", [0, 3])
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_fused_pass_equals_reference(dim, act, latent, depth):
    dec, theta, x, z = _case(dim, act, latent, depth)
    names = NAMES_1D if dim == 1 else NAMES_2D
    fused, ref = FastMLP(dec), FastMLP(dec, fused=False)
    assert fused.fused and not ref.fused
    cols = torch.randperm(dec.n_params, generator=torch.Generator().manual_seed(1))[:23].sort().values
    for req in [("u",), names[:2], names[:4], names, names[-1:]]:
        d_f, st_f = fused.forward(theta, x, z, req, need_jac=True)
        d_r, st_r = ref.forward(theta, x, z, req, need_jac=True)
        for k in req:
            assert rel(d_f[k], d_r[k]) < 1e-12, (req, k)
        assert rel(fused.jac(st_f), ref.jac(st_r)) < 1e-12
        assert rel(fused.jac(st_f, cols), ref.jac(st_r, cols)) < 1e-12
        assert rel(fused.col_norms2(st_f), ref.col_norms2(st_r)) < 1e-12
        d_n, st_n = fused.forward(theta, x, z, req)  # without the Jacobian state
        assert st_n == {} and all(rel(d_n[k], d_r[k]) < 1e-12 for k in req)


def test_fused_pass_per_point_latent_and_float32():
    dec, theta, x, _ = _case(1, "tanh", 3, 2)
    Z = torch.randn(len(x), 3, dtype=torch.float64)  # one latent per point, as in MAD-NG training
    a = FastMLP(dec).forward(theta, x, Z, NAMES_1D)[0]
    b = FastMLP(dec, fused=False).forward(theta, x, Z, NAMES_1D)[0]
    assert all(rel(a[k], b[k]) < 1e-12 for k in NAMES_1D)
    dec32 = Decoder([(0.0, 1.0)], width=8, depth=2, dtype=torch.float32)
    x32 = torch.rand(10, 1)
    a = FastMLP(dec32).forward(dec32.flat_theta(), x32, None, ["u", "uxx"])[0]
    b = FastMLP(dec32, fused=False).forward(dec32.flat_theta(), x32, None, ["u", "uxx"])[0]
    assert a["uxx"].dtype == torch.float32 and rel(a["uxx"], b["uxx"]) < 1e-5


def test_fused_buffers_never_leak_between_calls():
    """Reused buffers: live states keep their numbers, outputs are fresh, in-place edits of x, z are seen."""
    dec, theta, x, z = _case(1, "tanh", 3, 3)
    fast, ref = FastMLP(dec), FastMLP(dec, fused=False)
    th2 = theta + 0.1
    d1, st1 = fast.forward(theta, x, z, NAMES_1D, need_jac=True)
    u1 = d1["uxxx"].clone()
    J1 = fast.jac(st1)
    d2, st2 = fast.forward(th2, x, z, NAMES_1D, need_jac=True)
    d3, st3 = fast.forward(theta + 0.2, x, z, NAMES_1D, need_jac=True)  # three live states
    assert torch.equal(d1["uxxx"], u1) and torch.equal(fast.jac(st1), J1)
    assert rel(fast.jac(st2), ref.jac(ref.forward(th2, x, z, ("u",), need_jac=True)[1])) < 1e-12
    del st1, st3
    fast.forward(theta, x, z, NAMES_1D, need_jac=True)  # takes the freed buffers
    assert rel(fast.jac(st2), ref.jac(ref.forward(th2, x, z, ("u",), need_jac=True)[1])) < 1e-12
    x.mul_(0.5)  # in place: the cached embedding must be recomputed
    z.add_(1.0)
    want = ref.forward(theta, x, z, NAMES_1D)[0]
    got = fast.forward(theta, x, z, NAMES_1D)[0]
    assert all(rel(got[k], want[k]) < 1e-12 for k in NAMES_1D)


def test_fused_engine_falls_back_to_reference_under_autograd():
    dec, theta, x, z = _case(1, "softplus", 2, 2)
    th = theta.clone().requires_grad_(True)
    d = FastMLP(dec).forward(th, x, z, ["u", "uxx"])
    assert d[0]["uxx"].requires_grad
    (g,) = torch.autograd.grad(d[0]["uxx"].sum(), th)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    assert rel(d[0]["uxx"].detach(), FastMLP(dec).forward(theta, x, z, ["uxx"])[0]["uxx"]) < 1e-12
