"""Fourier/ETDRK4 reference solver: exact solutions, self-convergence, errors.

Numbers measured when writing these tests (float64, 2 shared CPU cores):
* KdV two-soliton (a=6, b=1, [-20, 40), T=4, N=512) vs exact: max error 2.2e-7 (dt=1e-3),
  1.1e-8 (dt=5e-4), 1.5e-9 (dt=2.5e-4, floor set by the non-periodic tails ~2 e^-20 = 4e-9).
* Allen-Cahn anchor (eps=5e-3, r=1, [0, 2pi), T=4), rel. L2 vs N=1024: 1.3e-5 (N=128),
  2.5e-10 (N=256), 3e-15 (N=512); in dt (N=512): 2.6e-9, 1.6e-10, 9.4e-12 for dt=2e-2, 1e-2, 5e-3.
* Burgers anchor (nu=1e-3, [-1, 1), T=4), rel. L2 vs N=4096: 6.8e-5 (N=512), 4.8e-8 (N=1024),
  5.6e-10 (N=2048); in dt (N=2048): differences 1.0e-7 (1e-3 vs 5e-4), 6.5e-9 (5e-4 vs
  2.5e-4), ratio 15.7. Cost at N=2048: 1.2 s (dt=1e-3), 2.2 s (5e-4), 3.9 s (2.5e-4).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from madng_lite.exact import advection_exact, heat_mode, kdv_two_soliton
from madng_lite.metrics import rel_l2
from madng_lite.pdes import Advection, AllenCahn, Burgers, Heat, KdV
from madng_lite.reference import as_box, etdrk4_coefficients, grid, points, spectral_solve

AC_BOX, BURGERS_BOX = (0.0, 2 * math.pi), (-1.0, 1.0)


def ac_u0(x: np.ndarray) -> np.ndarray:
    return (np.tanh(2 * np.sin(x)) / 3 - np.exp(-23.5 * (x - np.pi / 2) ** 2)
            + np.exp(-27 * (x - 4.2) ** 2) + np.exp(-38 * (x - 5.4) ** 2))


def burgers_u0(x: np.ndarray) -> np.ndarray:
    return (1 - x**2) * np.exp(-30 * (x + 0.5) ** 2)


def test_grid_helpers():
    x = grid((-1, 1), 4)
    np.testing.assert_allclose(x, [-1, -0.5, 0, 0.5])
    X = grid([(0, 1), (0, 2)], (2, 4))
    assert X.shape == (2, 4, 2) and X[1, 3].tolist() == [0.5, 1.5]
    assert points([(0, 1), (0, 2)], (2, 4)).shape == (8, 2)
    assert as_box([(0, 1)]) == as_box((0, 1)) == ((0.0, 1.0),)
    with pytest.raises(ValueError, match="finite a < b"):
        as_box((1, 0))
    with pytest.raises(ValueError, match="box must be"):
        as_box([(0, 1), (0, 1), (0, 1)])


def test_etdrk4_coefficients_small_and_large():
    """Contour integrals match the phi-function limits at 0 and the direct formulas."""
    h = 0.1
    E, E2, Q, f1, f2, f3 = etdrk4_coefficients(np.array([0.0, -50.0]), h)
    np.testing.assert_allclose([Q[0], f1[0], f2[0], f3[0]], [h / 2, h / 6, h / 6, h / 6],
                               rtol=1e-14)
    z = -5.0
    np.testing.assert_allclose(f1[1], h * (-4 - z + np.exp(z) * (4 - 3 * z + z**2)) / z**3,
                               rtol=1e-13)
    assert np.isrealobj(Q)
    assert np.iscomplexobj(etdrk4_coefficients(np.array([1j]), h)[2])


def test_kdv_two_soliton_vs_exact():
    """NG anchor: max error 2.2e-7 measured at dt=1e-3 (time error, 4th order: 1.1e-8 at
    dt=5e-4); the domain truncation of the exact solution is only ~4e-9."""
    box = (-20.0, 40.0)
    x = grid(box, 512)
    t = np.array([0.0, 2.0, 4.0])
    U = spectral_solve(KdV(), kdv_two_soliton(x, 0.0), box, 4.0, 1e-3, t)
    exact = np.stack([kdv_two_soliton(x, s) for s in t])
    assert np.abs(U - exact).max() < 5e-7
    assert rel_l2(U, exact) < 1e-7


def test_heat_and_advection_exact():
    box = (0.0, 2 * math.pi)
    x = grid(box, 64)
    t = [0.0, 0.25, 1.0]
    U = spectral_solve(Heat(nu=0.7), heat_mode(x, 0, 0.7, box, 3, phase=0.4), box, 1.0, 0.25, t)
    exact = np.stack([heat_mode(x, s, 0.7, box, 3, phase=0.4) for s in t])
    assert np.abs(U - exact).max() < 1e-13
    u0 = lambda s: np.exp(np.sin(s))  # noqa: E731  (spectrally converged at N=64)
    U = spectral_solve(Advection(c=1.3), u0(x), box, 1.0, 0.25, t)
    exact = np.stack([advection_exact(u0, x, s, 1.3, box) for s in t])
    assert np.abs(U - exact).max() < 1e-12


def test_heat_2d_exact():
    box = [(0.0, 1.0), (-1.0, 1.0)]
    X = grid(box, (32, 48))
    t = [0.0, 0.05, 0.1]
    U = spectral_solve(Heat(nu=0.1, dim=2), heat_mode(X, 0, 0.1, box, (2, 3), 0.3),
                       box, 0.1, 0.05, t)
    exact = np.stack([heat_mode(X, s, 0.1, box, (2, 3), 0.3) for s in t])
    assert U.shape == (3, 32, 48) and np.abs(U - exact).max() < 1e-13


def test_allen_cahn_2d_matches_1d_for_x_only_data():
    """The 2D nonlinear path on data constant in y reproduces the 1D solution."""
    pde1, pde2 = AllenCahn(eps=0.01, r=2.0), AllenCahn(eps=0.01, r=2.0, dim=2)
    box = [(0.0, 2 * math.pi), (0.0, 1.0)]
    X = grid(box, (64, 8))
    u2 = spectral_solve(pde2, 0.5 * np.sin(X[..., 0]) ** 3, box, 1.0, 0.05)
    u1 = spectral_solve(pde1, 0.5 * np.sin(X[:, 0, 0]) ** 3, box[:1], 1.0, 0.05)
    assert np.abs(u2 - u1[:, :, None]).max() < 1e-13


def test_allen_cahn_anchor_self_convergence():
    """RSNG anchor: N=256 is resolved to ~1e-10 and ETDRK4 converges at 4th order."""
    x = grid(AC_BOX, 256)
    t = np.linspace(0, 4, 5)
    runs = {dt: spectral_solve(AllenCahn(), ac_u0(x), AC_BOX, 4.0, dt, t)
            for dt in (0.04, 0.02, 0.01)}
    d1, d2 = rel_l2(runs[0.04], runs[0.02]), rel_l2(runs[0.02], runs[0.01])
    assert 12 < d1 / d2 < 20 and d2 < 5e-9          # measured 3.8e-8 / 2.3e-9
    fine = spectral_solve(AllenCahn(), ac_u0(grid(AC_BOX, 512)), AC_BOX, 4.0, 0.01, t)
    assert rel_l2(runs[0.01], fine[:, ::2]) < 1e-9   # measured 2.6e-10


@pytest.mark.slow
def test_burgers_anchor_self_convergence():
    """RSNG anchor: the steep front needs N=2048 for ~1e-9 (N=1024: ~5e-8)."""
    t = np.linspace(0, 4, 9)
    x = grid(BURGERS_BOX, 2048)

    def run(xs: np.ndarray, dt: float) -> np.ndarray:
        return spectral_solve(Burgers(), burgers_u0(xs), BURGERS_BOX, 4.0, dt, t)

    fine, coarse_dt, coarse_x = run(x, 5e-4), run(x, 1e-3), run(x[::2], 1e-3)
    assert rel_l2(coarse_dt, fine) < 2e-7              # measured 1.0e-7 (error at 5e-4: /16)
    assert rel_l2(coarse_x, coarse_dt[:, ::2]) < 2e-7  # measured 6.6e-8


def test_time_grid_rules():
    x = grid((0, 1), 8)
    u0 = np.sin(2 * np.pi * x)
    U = spectral_solve(Heat(), u0, (0, 1), 0.3, 0.07, [0.0, 0.06, 0.3])  # dt -> 0.3/5 = 0.06
    assert U.shape == (3, 8) and np.allclose(U[0], u0, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="not a multiple of the time step"):
        spectral_solve(Heat(), u0, (0, 1), 0.3, 0.07, [0.1])
    with pytest.raises(ValueError, match="must lie in"):
        spectral_solve(Heat(), u0, (0, 1), 0.3, 0.06, [0.36])
    with pytest.raises(ValueError, match="non-decreasing"):
        spectral_solve(Heat(), u0, (0, 1), 0.3, 0.06, [0.12, 0.06])
    with pytest.raises(ValueError, match="dt must be"):
        spectral_solve(Heat(), u0, (0, 1), 0.3, 0.0)


@pytest.mark.parametrize("u0, box, pde, match", [
    (np.zeros(7), (0, 1), Heat(), "even and >= 4"),
    (np.zeros((8, 8)), (0, 1), Heat(), "dimension mismatch"),
    (np.zeros((8, 8)), [(0, 1), (0, 1)], Heat(), "dimension mismatch"),
    (np.array([0, np.nan, 0, 0.0]), (0, 1), Heat(), "1 non-finite"),
])
def test_input_errors(u0, box, pde, match):
    with pytest.raises(ValueError, match=match):
        spectral_solve(pde, u0, box, 0.1, 0.05)


def test_blow_up_names_the_time():
    """Allen-Cahn with r=50 and large data: the explicit cubic term overflows."""
    x = grid((0, 1), 16)
    with pytest.raises(ValueError, match=r"non-finite solution at t=0\.\d+"):
        spectral_solve(AllenCahn(eps=1e-3, r=50.0), 10 * np.cos(2 * np.pi * x), (0, 1), 1.0, 0.1)
