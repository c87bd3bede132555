"""PDE definitions: contract, validation, rhs vs the spectral split, exact solutions."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.fft as sfft
import torch

from madng_lite.exact import (advection_exact, heat_mode, kdv_one_soliton, kdv_solitons,
                              kdv_two_soliton)
from madng_lite.pdes import PDES, AllenCahn, Burgers, KdV, Heat, make_pde
from madng_lite.reference import grid, wavenumbers

ALL = [KdV(), KdV(a=1.0, b=0.0025), Burgers(), Burgers(nu=0.05), AllenCahn(), AllenCahn(1e-3, 2.0),
       make_pde("advection", c=-0.7), Heat(), AllenCahn(dim=2, eps=0.02), Heat(nu=0.3, dim=2)]


def _test_function(box, shape):
    """Smooth periodic u on the grid, with all derivatives by float64 autograd."""
    X = torch.as_tensor(grid(box, shape))
    X = X[..., None] if X.ndim == 1 else X
    L = [hi - lo for lo, hi in box]
    cols = [X[..., j].reshape(-1).clone().requires_grad_(True) for j in range(len(box))]
    ph = [2 * math.pi * (c - lo) / Lj for c, (lo, _), Lj in zip(cols, box, L)]
    if len(box) == 1:
        u = torch.sin(ph[0]) + 0.5 * torch.cos(2 * ph[0] + 0.3) + 0.2 * torch.sin(3 * ph[0] - 1)
    else:
        u = torch.sin(ph[0]) * torch.cos(2 * ph[1]) + 0.3 * torch.cos(ph[0] + ph[1] + 0.5)

    def grad(f, c):
        return torch.autograd.grad(f.sum(), c, create_graph=True)[0]

    d = {"u": u}
    if len(box) == 1:
        d["ux"] = grad(u, cols[0])
        d["uxx"] = grad(d["ux"], cols[0])
        d["uxxx"] = grad(d["uxx"], cols[0])
    else:
        d["ux"], d["uy"] = grad(u, cols[0]), grad(u, cols[1])
        d["lap"] = grad(d["ux"], cols[0]) + grad(d["uy"], cols[1])
    return torch.stack(cols, -1).detach(), {k: v.detach() for k, v in d.items()}


@pytest.mark.parametrize("pde", ALL, ids=repr)
def test_rhs_matches_spectral_split(pde):
    """rhs(x, exact derivatives) == irfft(L u_hat + N_hat(u_hat)) to round-off."""
    box = [(-1.0, 1.0)] if pde.dim == 1 else [(0.0, 1.0), (-1.0, 2.0)]
    shape = (64,) if pde.dim == 1 else (32, 48)
    x, d = _test_function(box, shape)
    assert pde.requires <= set(d) and len(pde.requires) > 0
    f = pde.rhs(x, {k: d[k] for k in pde.requires})
    assert f.shape == (x.shape[0],) and f.dtype == torch.float64
    u = d["u"].numpy().reshape(shape)
    k = wavenumbers(box, shape)
    u_hat = sfft.rfftn(u)
    f_hat = pde.linear_symbol(k) * u_hat + pde.nonlinear_hat(u_hat, k)
    f_spec = sfft.irfftn(f_hat, s=shape).reshape(-1)
    scale = max(1.0, float(f.abs().max()))
    assert np.abs(f.numpy() - f_spec).max() < 1e-11 * scale


def test_rhs_dtype_device_and_grad():
    d = {k: torch.linspace(-1, 1, 7, dtype=torch.float32, requires_grad=True)
         for k in ("u", "ux", "uxx", "uxxx")}
    for pde in (KdV(), Burgers(), AllenCahn(), Heat()):
        f = pde.rhs(torch.zeros(7, 1), d)
        assert f.dtype == torch.float32 and f.shape == (7,)
        f.sum().backward()
    assert d["u"].grad is not None
    assert KdV(a=2.0, b=0.5).rhs(None, {"u": torch.tensor([2.0]), "ux": torch.tensor([3.0]),
                                        "uxxx": torch.tensor([4.0])}).item() == -14.0


def test_requires_and_names():
    assert KdV().requires == {"u", "ux", "uxxx"}
    assert Burgers().requires == {"u", "ux", "uxx"}
    assert AllenCahn().requires == {"u", "uxx"} and AllenCahn(dim=2).requires == {"u", "lap"}
    assert make_pde("advection").requires == {"ux"}
    assert Heat().requires == {"uxx"} and Heat(dim=2).requires == {"lap"}
    assert sorted(PDES) == ["advection", "allen_cahn", "burgers", "heat", "kdv"]
    for name, cls in PDES.items():
        pde = make_pde(name)
        assert isinstance(pde, cls) and pde.name == name and pde.dim == 1
    assert make_pde("Allen-Cahn", eps=1e-3, r=2, dim=2) == AllenCahn(1e-3, 2.0, 2)


@pytest.mark.parametrize("call, match", [
    (lambda: make_pde("navier_stokes"), "unknown PDE 'navier_stokes'.*advection, allen_cahn"),
    (lambda: make_pde("kdv", nu=1.0), r"unknown coefficient\(s\) \['nu'\].*\['a', 'b'\]"),
    (lambda: Burgers(nu=0.0), "nu must be > 0"),
    (lambda: Heat(nu=-1.0), "nu must be > 0"),
    (lambda: KdV(a=float("nan")), "a must be finite"),
    (lambda: KdV(b=0.0), "b must be nonzero"),
    (lambda: AllenCahn(eps=float("inf")), "eps must be finite"),
    (lambda: AllenCahn(r="x"), "r must be a real number"),
    (lambda: AllenCahn(dim=3), "dim must be 1 or 2"),
    (lambda: Heat(dim=0), "dim must be 1 or 2"),
])
def test_validation_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_frozen_and_missing_derivative():
    with pytest.raises(dataclasses.FrozenInstanceError):
        KdV().a = 1.0  # type: ignore[misc]
    with pytest.raises(KeyError, match="needs derivative 'uxxx'"):
        KdV().rhs(None, {"u": torch.zeros(3), "ux": torch.zeros(3)})


# ------------------------------------------------------------------ exact solutions
def test_kdv_derivatives_exact_vs_autograd():
    x = torch.linspace(-20, 40, 1201, dtype=torch.float64, requires_grad=True)
    u, ux, uxx, uxxx = kdv_two_soliton(x, 0.7, derivatives=True)
    g = [u]
    for _ in range(3):
        g.append(torch.autograd.grad(g[-1].sum(), x, create_graph=True)[0])
    for exact, auto in zip((ux, uxx, uxxx), g[1:]):
        auto = auto.detach()
        assert (exact - auto).abs().max() < 1e-12 * max(1.0, float(auto.abs().max()))


@pytest.mark.parametrize("a, b, k, eta0, box", [
    (6.0, 1.0, (1.0, math.sqrt(5.0)), (0.0, 10.73), (-20, 40)),   # NG anchor
    (1.0, 0.0025, (10.0, 14.0), (3.0, -2.0), (-1, 1)),             # MAD-NG paper scaling
    (-2.0, 0.5, (1.5, 0.7, 1.1), (0.0, 1.0, -2.0), (-10, 10)),      # 3 solitons, a < 0
])
def test_kdv_solitons_solve_the_pde(a, b, k, eta0, box):
    """u_t (autograd in t) == KdV(a, b).rhs(exact x-derivatives)."""
    x = torch.linspace(*box, 801, dtype=torch.float64)
    t = torch.full_like(x, 0.3, requires_grad=True)  # one time per point: grad = pointwise u_t
    u, ux, _, uxxx = kdv_solitons(x, t, k, eta0, a, b, derivatives=True)
    ut = torch.autograd.grad(u.sum(), t)[0]
    u, ux, uxxx = u.detach(), ux.detach(), uxxx.detach()
    f = KdV(a, b).rhs(x[:, None], {"u": u, "ux": ux, "uxxx": uxxx})
    assert float(ut.abs().max()) > 1e-3
    assert (ut - f).abs().max() < 1e-12 * float(ut.abs().max())


def test_kdv_one_soliton_closed_form_and_numpy_io():
    x = np.linspace(-5, 5, 101)
    k, a, b, t = 1.3, 1.0, 0.0025, 2.0
    u = kdv_one_soliton(x, t, k, 0.4, a, b)
    assert isinstance(u, np.ndarray) and u.dtype == np.float64
    ref = 6 * b / a * k**2 / 2 / np.cosh((k * x - b * k**3 * t + 0.4) / 2) ** 2
    np.testing.assert_allclose(u, ref, rtol=1e-13, atol=1e-16)


def test_kdv_overflow_safe_float32():
    x = torch.linspace(-400, 800, 2001, dtype=torch.float32)
    out = kdv_two_soliton(x, 4.0, derivatives=True)
    ref = kdv_two_soliton(x.double(), 4.0, derivatives=True)
    for o, r in zip(out, ref):
        assert torch.isfinite(o).all() and o.dtype == torch.float32
        assert (o.double() - r).abs().max() < 1e-5 * max(1.0, float(r.abs().max()))
    assert float(ref[0].max()) > 1.0


def test_kdv_bad_parameters():
    with pytest.raises(ValueError, match="distinct"):
        kdv_solitons(0.0, 0.0, [1.0, 1.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="equally long"):
        kdv_solitons(0.0, 0.0, [1.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="nonzero a, b"):
        kdv_solitons(0.0, 0.0, [1.0], [0.0], a=0.0)


def test_advection_and_heat_exact_formulas():
    x = np.linspace(-3, 3, 61)
    u = advection_exact(lambda s: s, x, t=0.5, c=2.0, box=(-1.0, 1.0))
    assert np.all((u >= -1) & (u < 1))
    np.testing.assert_allclose(np.sin(np.pi * u), np.sin(np.pi * (x - 1.0)), atol=1e-13)
    xt = torch.as_tensor(x)
    assert torch.allclose(advection_exact(torch.sin, xt, 0.5, 2.0, (0, 2 * math.pi)),
                          torch.sin(xt - 1.0), atol=1e-13)
    X = grid([(0, 1), (0, 2)], (4, 6))
    np.testing.assert_allclose(heat_mode(X, 0.1, 0.5, [(0, 1), (0, 2)], (1, 2)),
                               np.exp(-0.5 * 0.1 * 8 * np.pi**2)
                               * np.cos(2 * np.pi * X[..., 0] + 2 * np.pi * X[..., 1]), atol=1e-15)
