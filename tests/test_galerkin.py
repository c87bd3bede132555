"""Least squares, index draws and the Neural Galerkin integrators."""
from __future__ import annotations

import math

import pytest
import torch

from madng_lite import points
from madng_lite.decoder import Decoder
from madng_lite.derivatives import FastMLP
from madng_lite.galerkin import NeuralGalerkin
from madng_lite.pdes import make_pde
from madng_lite.solve import NonFiniteError, lstsq_solve
from madng_lite.sparse import draw_indices


# ----- solves ------------------------------------------------------------------------------------
def test_ridge_primal_equals_dual_and_matches_pinv_on_well_posed():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(60, 20, generator=g, dtype=torch.float64)
    f = torch.randn(60, generator=g, dtype=torch.float64)
    exact = torch.linalg.lstsq(A, f[:, None]).solution[:, 0]
    for m in ("pinv", "lstsq"):
        assert torch.allclose(lstsq_solve(A, f, m, rcond=1e-12), exact, atol=1e-10)
    assert torch.allclose(lstsq_solve(A, f, "ridge", ridge=1e-14), exact, atol=1e-8)
    # wide matrix: the dual form must give the primal ridge solution
    B = torch.randn(20, 60, generator=g, dtype=torch.float64)
    fb = torch.randn(20, generator=g, dtype=torch.float64)
    lam = 1e-3 * (B**2).sum() / 60
    primal = torch.linalg.solve(B.T @ B + lam * torch.eye(60, dtype=torch.float64), B.T @ fb)
    assert torch.allclose(lstsq_solve(B, fb, "ridge", ridge=1e-3), primal, atol=1e-10)


def test_regularisation_tames_a_rank_deficient_problem():
    g = torch.Generator().manual_seed(1)
    U = torch.linalg.qr(torch.randn(100, 40, generator=g, dtype=torch.float64))[0]
    V = torch.linalg.qr(torch.randn(40, 40, generator=g, dtype=torch.float64))[0]
    s = torch.logspace(0, -16, 40, dtype=torch.float64)
    A = U @ torch.diag(s) @ V.T
    f = A @ torch.ones(40, dtype=torch.float64) + 1e-10 * torch.randn(100, generator=g, dtype=torch.float64)
    for m in ("ridge", "pinv"):
        eta = lstsq_solve(A, f, m, ridge=1e-8, rcond=1e-6)
        # kept directions: singular values above ~1e-5 (rcond or sqrt(ridge)); the cut ones cost ~1e-5
        assert float(eta.norm()) < 100 and float((A @ eta - f).norm()) < 1e-4 * float(f.norm())
    # without regularisation the noise is amplified by 1 / sigma_min
    plain = torch.linalg.lstsq(A, f[:, None], rcond=None, driver="gelsd").solution[:, 0]
    assert float(plain.norm()) > 1e3


def test_solve_errors():
    with pytest.raises(ValueError, match="need A"):
        lstsq_solve(torch.zeros(3, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="unknown least-squares method"):
        lstsq_solve(torch.eye(2), torch.ones(2), "qr-magic")


# ----- index draws ------------------------------------------------------------------------------
def test_draws_are_seeded_sorted_and_without_replacement():
    a = draw_indices(1000, 150, torch.Generator().manual_seed(5))
    b = draw_indices(1000, 150, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.numel() == 150 and a.unique().numel() == 150 and torch.equal(a, a.sort().values)
    assert torch.equal(draw_indices(10, None, torch.Generator()), torch.arange(10))
    assert torch.equal(draw_indices(10, 50, torch.Generator()), torch.arange(10))
    w = torch.zeros(1000, dtype=torch.float64)
    w[:100] = 1.0
    c = draw_indices(1000, 50, torch.Generator().manual_seed(0), "colnorm", w, mix=0.0)
    assert bool((c < 100).all())
    with pytest.raises(ValueError, match="unknown sampler"):
        draw_indices(10, 5, torch.Generator(), "leverage??")


def test_uniform_draw_is_uniform():
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(50)
    for _ in range(2000):
        counts[draw_indices(50, 10, g)] += 1
    # each index is drawn with probability 1/5: 400 expected, sd 18
    assert float((counts - 400).abs().max()) < 100


# ----- integration ----------------------------------------------------------------------------------
BOX = [(0.0, 2 * math.pi)]


def advection_setup(**kw):
    dec = Decoder(BOX, latent_dim=2, width=12, depth=2, n_freq=2, seed=0)
    z = torch.tensor([0.4, -0.3], dtype=torch.float64)
    ng = NeuralGalerkin(dec, make_pde("advection", c=1.0), z=z, n_points=200, **kw)
    return dec, z, ng


def advection_error(dec, z, theta, T):
    # a shift of x is a rotation of the embedding features, so the exact solution stays in the
    # network's manifold: u(x, T) = u(x - T; theta_0)
    x = points.grid(BOX, 300)
    f = FastMLP(dec)
    u = f.forward(theta, x, z)[0]["u"]
    ref = f.forward(dec.flat_theta(), torch.remainder(x - T, 2 * math.pi), z)[0]["u"]
    return float((u - ref).norm() / ref.norm())


def test_rk4_is_fourth_order_on_advection():
    errs = []
    for dt in (0.05, 0.025):
        dec, z, ng = advection_setup(ridge=1e-12)
        res = ng.evolve(dec.flat_theta(), T=1.0, dt=dt, progress=False)
        errs.append(advection_error(dec, z, res.thetas[-1], 1.0))
    assert errs[1] < 2e-6, errs
    assert errs[0] / errs[1] > 10, errs  # 16 in theory


def test_euler_is_first_order_and_rk45_meets_tolerance():
    errs = []
    for dt in (0.02, 0.01):
        dec, z, ng = advection_setup(ridge=1e-12)
        res = ng.evolve(dec.flat_theta(), T=0.5, dt=dt, integrator="euler", progress=False)
        errs.append(advection_error(dec, z, res.thetas[-1], 0.5))
    assert 1.6 < errs[0] / errs[1] < 2.4, errs
    dec, z, ng = advection_setup(ridge=1e-12)
    res = ng.evolve(dec.flat_theta(), T=1.0, dt=0.05, integrator="rk45", rtol=1e-6, atol=1e-8,
                    t_eval=torch.tensor([0.0, 0.5, 1.0]), progress=False)
    assert torch.allclose(res.times, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    assert advection_error(dec, z, res.thetas[-1], 1.0) < 1e-6


def test_generic_and_fast_paths_give_the_same_trajectory():
    outs = []
    for path in ("fast", "generic"):
        # a well-conditioned solve (ridge 1e-6), so that rounding differences are not amplified
        dec, z, ng = advection_setup(path=path, sparse=40, seed=3, ridge=1e-6)
        outs.append(ng.evolve(dec.flat_theta(), T=0.2, dt=0.05, progress=False).thetas)
    assert torch.allclose(outs[0], outs[1], atol=1e-11)


def test_sparse_updates_touch_only_s_entries_per_step():
    dec, z, ng = advection_setup(sparse=30, seed=1)
    res = ng.evolve(dec.flat_theta(), T=0.01, dt=0.01, progress=False)
    assert int((res.thetas[1] != res.thetas[0]).sum()) <= 30
    dec, z, ng = advection_setup(sparse=30, seed=1, sampler="colnorm")
    res = ng.evolve(dec.flat_theta(), T=0.01, dt=0.01, progress=False)
    assert 0 < int((res.thetas[1] != res.thetas[0]).sum()) <= 30


def test_resample_points_and_heat_decay():
    dec = Decoder(BOX, width=12, depth=2, seed=0)
    ng = NeuralGalerkin(dec, make_pde("heat", nu=0.1), n_points=300, resample=True, seed=0)
    res = ng.evolve(dec.flat_theta(), T=0.5, dt=0.05, progress=False)
    x = points.grid(BOX, 200)
    f = FastMLP(dec)
    u0 = f.forward(res.thetas[0], x, None)[0]["u"]
    u1 = f.forward(res.thetas[-1], x, None)[0]["u"]
    # the heat equation preserves the mean and shrinks the rest
    assert abs(float(u1.mean() - u0.mean())) < 1e-3 * float(u0.abs().max())
    assert float((u1 - u1.mean()).norm()) < float((u0 - u0.mean()).norm())


def test_checkpoint_resume_gives_the_same_result(tmp_path, monkeypatch):
    dec, z, ng = advection_setup(sparse=30, seed=2)
    full = ng.evolve(dec.flat_theta(), T=0.3, dt=0.02, progress=False).thetas
    ck = tmp_path / "run.pt"
    dec, z, ng = advection_setup(sparse=30, seed=2)
    calls = {"n": 0}
    orig = ng.step_fixed

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt("simulated interruption")
        return orig(*a, **k)

    monkeypatch.setattr(ng, "step_fixed", flaky)
    with pytest.raises(KeyboardInterrupt):
        ng.evolve(dec.flat_theta(), T=0.3, dt=0.02, progress=False, checkpoint=ck, checkpoint_every=5)
    assert ck.exists()
    dec, z, ng2 = advection_setup(sparse=30, seed=2)
    resumed = ng2.evolve(dec.flat_theta(), T=0.3, dt=0.02, progress=False, checkpoint=ck, checkpoint_every=5)
    assert torch.equal(resumed.thetas, full)
    # 15 steps: 5 were done (and checkpointed) before the interruption, 10 now; the time adds up
    assert resumed.timings["attempts"] == 10 and resumed.n_steps == 15
    assert resumed.timings["total_over_resumes"] > resumed.timings["total"] > 0


def test_clear_errors():
    dec, z, ng = advection_setup()
    with pytest.raises(ValueError, match="multiple of dt"):
        ng.evolve(dec.flat_theta(), T=1.0, dt=0.3, progress=False)
    with pytest.raises(ValueError, match="unknown integrator"):
        ng.evolve(dec.flat_theta(), T=1.0, dt=0.1, integrator="leapfrog", progress=False)
    with pytest.raises(ValueError, match="2-D"):
        NeuralGalerkin(dec, make_pde("allen_cahn", dim=2))
    bad = dec.flat_theta().clone()
    bad[0] = float("nan")
    with pytest.raises(NonFiniteError, match="initial theta"):
        ng.evolve(bad, T=0.1, dt=0.1, progress=False)

    class NanPDE:
        name, dim, requires = "nan", 1, frozenset({"u"})

        def rhs(self, x, d):
            return d["u"] * float("nan")

    ng = NeuralGalerkin(dec, NanPDE(), z=z, n_points=50)
    with pytest.raises(NonFiniteError, match=r"right-hand side f at t = 0"):
        ng.evolve(dec.flat_theta(), T=0.1, dt=0.1, progress=False)


def test_blowup_guard_stops_growth_without_nan():
    # Allen-Cahn drives u from 1e-3 towards +-1: a legitimate 1000-fold growth, used here to check that
    # the guard fires (blowup=10) with a clear error, and stays silent with the default (1e4)
    from madng_lite.solve import DivergenceError

    dec = Decoder(BOX, width=12, depth=2, seed=0)
    with torch.no_grad():
        dec.layers[-1].weight.mul_(1e-3 / float(FastMLP(dec).forward(dec.flat_theta(), points.grid(BOX, 200),
                                                                    None)[0]["u"].abs().max()))
        dec.layers[-1].bias.zero_()
    pde = make_pde("allen_cahn", eps=1e-2, r=5.0)
    ng = NeuralGalerkin(dec, pde, n_points=200, blowup=10.0)
    with pytest.raises(DivergenceError, match="blew up at t"):
        ng.evolve(dec.flat_theta(), T=2.0, dt=0.01, progress=False)
    res = NeuralGalerkin(dec, pde, n_points=200).evolve(dec.flat_theta(), T=0.5, dt=0.01, progress=False)
    assert torch.isfinite(res.thetas).all()
    with pytest.raises(ValueError, match="blowup must be > 1"):
        NeuralGalerkin(dec, pde, blowup=0.5)


# ----- safe runs: checkpoints, blow-ups, sizes -----------------------------------------------------
def test_an_evolution_checkpoint_from_another_run_is_refused(tmp_path):
    """A checkpoint made with another T (or any other setting) must not hand back its trajectory."""
    from madng_lite.io import CheckpointError

    ck = tmp_path / "run.pt"
    dec, z, ng = advection_setup(sparse=30, seed=2)
    long = ng.evolve(dec.flat_theta(), T=0.7, dt=0.05, progress=False, checkpoint=ck, checkpoint_every=1)
    assert ck.exists() and len(long.thetas) == 15
    dec, z, ng = advection_setup(sparse=30, seed=2)
    with pytest.raises(CheckpointError, match=r"other settings \(they differ in \['T', 't_eval'\]\)"):
        ng.evolve(dec.flat_theta(), T=0.25, dt=0.05, progress=False, checkpoint=ck)
    dec, z, ng = advection_setup(sparse=30, seed=3)
    with pytest.raises(CheckpointError, match=r"differ in \['seed'\]"):
        ng.evolve(dec.flat_theta(), T=0.7, dt=0.05, progress=False, checkpoint=ck)


def test_an_evolution_checkpoint_is_loaded_without_unpickling_code(tmp_path):
    from madng_lite.io import CheckpointError

    class Evil:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    ck = tmp_path / "run.pt"
    torch.save({"theta": Evil()}, ck)
    dec, z, ng = advection_setup()
    with pytest.raises(CheckpointError, match="not loadable as plain data"):
        ng.evolve(dec.flat_theta(), T=0.1, dt=0.05, progress=False, checkpoint=ck)
    assert not (tmp_path / "pwned").exists()


class _Explosive:
    """u_t = c u: an exponential growth that a large Euler step turns into a blow-up."""

    name, dim, requires = "explosive", 1, frozenset({"u"})

    def __init__(self, c):
        self.c = c

    def rhs(self, x, d):
        return self.c * d["u"]


def test_a_blowup_in_the_last_euler_step_raises_and_keeps_what_was_recorded():
    from madng_lite.solve import DivergenceError

    dec, z, _ = advection_setup()
    ng = NeuralGalerkin(dec, _Explosive(1e6), z=z, n_points=100)
    with pytest.raises(DivergenceError, match="blew up at t = 0.1") as info:
        ng.evolve(dec.flat_theta(), T=0.1, dt=0.1, integrator="euler", progress=False)   # one step: the last
    part = info.value.result          # the state recorded before the blow-up: t = 0
    assert part.thetas.shape[0] == 1 and torch.isfinite(part.thetas).all()
    ng = NeuralGalerkin(dec, _Explosive(1e300), z=z, n_points=100, blowup=None)   # overflow: inf weights
    with pytest.raises(NonFiniteError, match="non-finite values in theta at t = 1e"):
        ng.evolve(dec.flat_theta(), T=1e10, dt=1e10, integrator="euler", progress=False)


def test_2d_default_points_suit_the_dimension_and_huge_grids_are_refused():
    box2 = [(0.0, 1.0), (0.0, 1.0)]
    dec = Decoder(box2, width=10, depth=2, seed=0)
    ng = NeuralGalerkin(dec, make_pde("allen_cahn", dim=2))
    assert ng.x.shape == (2500, 2)
    with pytest.raises(ValueError, match=r"1000000 sample points with \d+ Jacobian columns need about .* GiB.*per axis"):
        NeuralGalerkin(Decoder(box2, width=300, depth=8, seed=0), make_pde("allen_cahn", dim=2), n_points=1000)
    with pytest.raises(ValueError, match=f"between 1 and the number of parameters p = {dec.n_params}"):
        NeuralGalerkin(dec, make_pde("allen_cahn", dim=2), sparse=dec.n_params + 1)


def test_the_ng_residual_is_recorded_per_step():
    dec, z, ng = advection_setup(sparse=30, seed=2)
    res = ng.evolve(dec.flat_theta(), T=0.2, dt=0.02, progress=False)
    assert res.residuals.shape == (10,) and torch.allclose(res.residual_times, 0.02 * torch.arange(10.0).double())
    # advection keeps the exact solution in the network's manifold: the tangent space holds f well
    assert 0 < float(res.residuals.max()) < 0.5
    dense = advection_setup()[2].evolve(dec.flat_theta(), T=0.2, dt=0.02, progress=False)
    assert float(dense.residuals.max()) < float(res.residuals.min())   # all columns fit better than 30


# ----- the dense step without J (dual Gram from the layers' factors) ------------------------------
@pytest.mark.parametrize("dim, latent", [(1, 0), (1, 3), (2, 2)])
def test_dual_gram_and_transpose_product_equal_those_of_J(dim, latent):
    box = [(0.0, 2 * math.pi)] * dim
    dec = Decoder(box, latent_dim=latent, width=10, depth=3, n_freq=2, seed=1)
    z = torch.linspace(-0.5, 0.5, latent, dtype=torch.float64) if latent else None
    x = points.grid(box, 40 if dim == 1 else 7)
    fast = FastMLP(dec)
    with torch.no_grad():
        _, st = fast.forward(dec.flat_theta(), x, z, ("u", "ux"), need_jac=True)
        J = fast.jac(st)
        y = torch.randn(x.shape[0], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        M = J @ J.T
        assert float((fast.dual_gram(st) - M).abs().max()) <= 1e-13 * float(M.abs().max())
        assert torch.allclose(fast.jac_t(st, y), J.T @ y, rtol=0, atol=1e-13 * float((J.T @ y).abs().max()))


def test_dense_dual_step_solves_the_same_problem_as_the_jacobian_path():
    # p = 253 > n = 200: the fused engine takes the dual form; the reference engine forms J
    outs, res = [], []
    for fused in (True, False):
        dec, z, ng = advection_setup(ridge=1e-4)
        ng.engine = FastMLP(dec, fused=fused)
        assert ng._dual_dense(torch.arange(ng.p)) == fused and not ng._dual_dense(torch.arange(10))
        r = ng.evolve(dec.flat_theta(), T=0.2, dt=0.05, progress=False)
        outs.append(r.thetas)
        res.append(r.residuals)
    assert torch.allclose(outs[0], outs[1], rtol=0, atol=1e-10)
    assert torch.allclose(res[0], res[1], rtol=1e-8, atol=0)
