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


def test_kdv_initial_condition_is_periodic_and_the_line_solution_is_not_the_truth():
    f = make_family("kdv", 3, seed=0, n_grid=256)
    for p in f.params:
        assert p["edge"] <= 5e-3 and 10 <= p["k"][1] <= 12 and 14 <= p["k"][0] <= 16
    ends = torch.tensor([[-1.0], [1.0]], dtype=torch.float64).requires_grad_(True)
    for i in range(3):   # the periodised initial condition and its slope agree at the two ends
        u = f.u0_fn(i, ends)
        du = torch.autograd.grad(u.sum(), ends)[0][:, 0]
        assert abs(float((u[0] - u[1]).detach())) < 1e-14 and abs(float(du[0] - du[1])) < 1e-12
    t = np.linspace(0, 1, 5)
    line, truth = f.truth(0, t, method="exact"), f.truth(0, t)
    assert np.array_equal(truth, f.truth(0, t, method="spectral"))
    # the whole-line two-soliton wraps its tails: it is off by MSE ~1e-6 at T = 1 (measured 1.2e-6)
    assert 1e-7 < ((line[-1] - truth[-1]) ** 2).mean() < 1e-5


@pytest.mark.parametrize("name,n_grid", [("kdv", 256), ("burgers", 256), ("ac1d", 256), ("ac2d", 50)])
def test_truth_agrees_with_a_twice_finer_reference(name, n_grid):
    """Each family's truth (its default modes and step) against twice the modes and half the step, to T."""
    from dataclasses import replace

    f = make_family(name, 2, seed=0, n_grid=n_grid)
    t = np.linspace(0, f.T, 3)
    a = f.truth(1, t)
    b = replace(f, ref_factor=2 * f.ref_factor, ref_dt=f.ref_dt / 2).truth(1, t)
    # measured: max differences 1.7e-11 (KdV), 2.0e-12 (Burgers), 4.0e-13 (AC1D), 7.2e-12 (AC2D)
    assert np.abs(a - b).max() < 1e-10 * np.abs(a).max()


def test_the_periodic_kdv_solver_matches_the_exact_two_soliton_on_a_wide_box():
    """On a box wide enough for the tails to vanish, the periodic spectral solve is the line solution."""
    from madng_lite.exact import kdv_solitons
    from madng_lite.reference import grid, spectral_solve

    p = make_family("kdv", 1, seed=3, n_grid=64).params[0]
    box = (-4.0, 4.0)
    x = grid(box, 1024)
    u0 = kdv_solitons(x, 0.0, p["k"], p["eta0"], a=1.0, b=p["b"])
    t = np.array([0.0, 0.5, 1.0])
    u = spectral_solve(KdV(a=1.0, b=p["b"]), u0, box, 1.0, 2.5e-4, t)
    exact = kdv_solitons(x[None, :], t[:, None], p["k"], p["eta0"], a=1.0, b=p["b"])
    assert np.abs(u - exact).max() < 1e-9 * np.abs(exact).max()


def test_derivative_targets():
    f = make_family("burgers", 2, seed=0, n_grid=64)
    x = f.x.clone().requires_grad_(True)
    u = f.u0_fn(1, x)
    ux = torch.autograd.grad(u.sum(), x)[0][:, 0]
    d = f.derivative_targets(["u", "ux"])
    assert torch.allclose(d["ux"][1], ux, atol=1e-12) and torch.equal(d["u"], f.U0)
    kdv = make_family("kdv", 1, seed=0, n_grid=256)
    xk = kdv.x.clone().requires_grad_(True)
    uk = kdv.u0_fn(0, xk)
    ukx = torch.autograd.grad(uk.sum(), xk)[0][:, 0]
    assert torch.allclose(kdv.derivative_targets(["ux"])["ux"][0], ukx, rtol=0, atol=1e-9 * float(ukx.abs().max()))
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


def test_truth_at_times_off_the_step_grid():
    """Times that are not multiples of one step are reached piece by piece, to the same accuracy."""
    f = make_family("burgers", 1, seed=1, n_grid=64)
    grid_t = np.array([0.0, 0.25, 0.5])
    odd_t = np.array([0.0, 0.0123, 0.25, 0.31, 0.5])
    a, b = f.truth(0, grid_t), f.truth(0, odd_t)
    assert np.abs(b[[0, 2, 4]] - a).max() < 1e-10 * np.abs(a).max()
