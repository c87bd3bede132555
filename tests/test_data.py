"""The seeded parametric families of madng_lite.data (book: Chapters 7-9)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from madng_lite import points
from madng_lite.data import FAMILIES, make_family, spectral_derivative
from madng_lite.pdes import AllenCahn, Burgers, KdV


@pytest.mark.parametrize("name,n_grid,dim", [("kdv", 64, 1), ("burgers", 32, 1), ("ac1d", 32, 1), ("ac2d", 12, 2)])
def test_shapes_types_and_seeding(name, n_grid, dim):
    f = make_family(name, 3, seed=4, n_grid=n_grid)
    n = n_grid**dim
    assert len(f) == 3 and f.dim == dim
    assert f.x.shape == (n, dim) and torch.equal(f.x, points.grid(f.box, n_grid))
    assert f.U0.shape == (3, n) and f.U0.dtype == torch.float64 and bool(torch.isfinite(f.U0).all())
    assert len(f.pdes) == 3 and all(p.dim == dim for p in f.pdes)
    again = make_family(name, 3, seed=4, n_grid=n_grid)
    assert torch.equal(again.U0, f.U0) and again.params == f.params
    assert not torch.equal(make_family(name, 3, seed=5, n_grid=n_grid).U0, f.U0)
    # the first samples do not depend on how many are drawn
    assert torch.equal(make_family(name, 2, seed=4, n_grid=n_grid).U0, f.U0[:2])


def test_fixed_and_stochastic_coefficients():
    assert all(p == KdV(a=1.0, b=0.0025) for p in make_family("kdv", 3, n_grid=32).pdes)
    assert all(p == Burgers(nu=0.01) for p in make_family("burgers", 3, n_grid=16).pdes)
    assert all(p == AllenCahn(eps=1e-3, r=2.0, dim=2) for p in make_family("ac2d", 2, n_grid=8).pdes)
    b = [p.b for p in make_family("kdv", 6, seed=1, n_grid=32, stochastic=True).pdes]
    nu = [p.nu for p in make_family("burgers", 6, seed=1, n_grid=16, stochastic=True).pdes]
    eps = [p.eps for p in make_family("ac1d", 6, seed=1, n_grid=16, stochastic=True).pdes]
    for vals, lo, hi in ((b, 0.002, 0.003), (nu, 0.005, 0.02), (eps, 5e-4, 2e-3)):
        assert min(vals) >= lo and max(vals) <= hi and len(set(vals)) == 6


def test_truth_at_time_zero_is_the_initial_condition():
    for name, n in (("kdv", 64), ("burgers", 32), ("ac1d", 32), ("ac2d", 8)):
        f = make_family(name, 2, seed=2, n_grid=n, T=0.01)
        U = f.truth(1, [0.0, 0.01])
        assert U.shape == (2, n**f.dim)
        np.testing.assert_allclose(U[0], f.U0[1].numpy(), atol=1e-12)
        assert np.abs(U[1] - U[0]).max() > 0


def test_ac2d_initial_condition_is_the_paper_formula():
    f = make_family("ac2d", 1, seed=3, n_grid=10)
    p = f.params[0]
    x, y = f.x[7].tolist()
    acs = [(a, c) for a in (-1, 0, 1) for c in (-1, 0, 1)]
    want = 0.01 * sum(bt * math.cos(2 * math.pi * (a * x + c * y)) + gm * math.sin(2 * math.pi * (a * x + c * y))
                      for (a, c), bt, gm in zip(acs, p["beta"], p["gamma"]))
    assert float(f.U0[0, 7]) == pytest.approx(want, abs=1e-15)


def test_kdv_two_solitons_stay_inside_and_match_the_spectral_reference():
    f = make_family("kdv", 3, seed=0, n_grid=256)
    for p in f.params:
        assert p["edge"] <= 5e-3 and 10 <= p["k"][1] <= 12 and 14 <= p["k"][0] <= 16
    t = np.linspace(0, 1, 5)
    exact, spec = f.truth(0, t), f.truth(0, t, method="spectral")
    # the line solution is not exactly periodic: they differ by about its boundary tail (measured 2e-3)
    assert np.abs(exact - spec).max() < 1e-2 * np.abs(exact).max()
    assert np.abs(exact[0] - spec[0]).max() < 1e-5  # only the Nyquist mode, which the solver zeroes


def test_derivative_targets():
    f = make_family("burgers", 2, seed=0, n_grid=64)
    x = f.x.clone().requires_grad_(True)
    u = f.u0_fn(1, x)
    ux = torch.autograd.grad(u.sum(), x)[0][:, 0]
    d = f.derivative_targets(["u", "ux"])
    assert torch.allclose(d["ux"][1], ux, atol=1e-12) and torch.equal(d["u"], f.U0)
    k = make_family("kdv", 1, seed=0, n_grid=128).derivative_targets(["uxxx"])["uxxx"]
    assert k.shape == (1, 128) and bool(torch.isfinite(k).all())
    xs = torch.linspace(0, 2 * math.pi, 33, dtype=torch.float64)[:-1]
    s = spectral_derivative(torch.sin(3 * xs)[None], (0.0, 2 * math.pi), 3)[0]
    assert torch.allclose(s, -27 * torch.cos(3 * xs), atol=1e-10)


def test_errors_are_clear():
    with pytest.raises(ValueError, match="known families: kdv, burgers, ac1d, ac2d"):
        make_family("navier-stokes", 2)
    with pytest.raises(ValueError, match="n_samples"):
        make_family("kdv", 0)
    with pytest.raises(ValueError, match="even"):
        make_family("burgers", 2, n_grid=33)
    with pytest.raises(ValueError, match="seed"):
        make_family("burgers", 2, seed=-1)
    f = make_family("burgers", 2, n_grid=16)
    with pytest.raises(ValueError, match="out of range"):
        f.subset([0, 5])
    with pytest.raises(ValueError, match="no exact solution"):
        f.truth(0, [0.0], method="exact")
    with pytest.raises(ValueError, match="unknown truth method"):
        f.truth(0, [0.0], method="magic")
    with pytest.raises(ValueError, match="1D families only"):
        make_family("ac2d", 1, n_grid=8).derivative_targets(["ux"])
    assert set(FAMILIES) == {"kdv", "burgers", "ac1d", "ac2d"}
