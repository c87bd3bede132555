"""Initial-condition fit (Sobolev loss, Adam, L-BFGS, Levenberg-Marquardt) and the anchors."""
import math

import numpy as np
import pytest
import torch

from madng_lite import points
from madng_lite.anchors import ANCHORS, get_anchor
from madng_lite.decoder import Decoder
from madng_lite.exact import kdv_two_soliton
from madng_lite.fit import callable_derivatives, fit_initial_condition, levenberg_marquardt


def test_callable_derivatives_match_closed_forms():
    x = points.grid([(-20.0, 40.0)], 64)
    d = callable_derivatives(lambda x: kdv_two_soliton(x[:, 0], 0.0), x, ["u", "ux", "uxx", "uxxx"])
    u, ux, uxx, uxxx = kdv_two_soliton(x[:, 0], 0.0, derivatives=True)
    for a, b in ((d["u"], u), (d["ux"], ux), (d["uxx"], uxx), (d["uxxx"], uxxx)):
        assert torch.allclose(a, b, atol=1e-10)
    x2 = points.grid([(0.0, 1.0), (0.0, 1.0)], 8)
    d2 = callable_derivatives(lambda x: torch.sin(2 * math.pi * x[:, 0]) * torch.cos(2 * math.pi * x[:, 1]), x2,
                              ["u", "lap"])
    assert torch.allclose(d2["lap"], -8 * math.pi**2 * d2["u"], atol=1e-9)


def test_fit_then_levenberg_marquardt_reaches_small_errors():
    box = [(0.0, 2 * math.pi)]
    x = points.grid(box, 200)
    target = callable_derivatives(lambda x: torch.sin(x[:, 0]) + 0.3 * torch.cos(3 * x[:, 0]), x, ["u", "ux"])
    dec = Decoder(box, width=10, depth=2, n_freq=1, seed=0)
    rep = fit_initial_condition(dec, x, target, adam_iters=300, lbfgs_iters=0, lr=1e-2, progress=False)
    before = rep.rel_errors["u"]
    after = levenberg_marquardt(dec, x, target["u"], iters=60, progress=False)
    assert after < before / 10 and after < 1e-4, (before, after)
    with pytest.raises(ValueError, match="non-finite"):
        fit_initial_condition(dec, x, {"u": target["u"] * float("nan")}, adam_iters=1, lbfgs_iters=0, progress=False)
    with pytest.raises(ValueError, match="shape"):
        fit_initial_condition(dec, x, {"u": target["u"][:-1]}, adam_iters=1, lbfgs_iters=0, progress=False)


@pytest.mark.parametrize("name", sorted(ANCHORS))
def test_anchor_reference_at_t0_is_the_initial_condition(name):
    a = get_anchor(name, T=a_T(name), n_eval=2, ref_n=256 if name != "rsng_burgers" else 1024)
    ref = a.reference()
    assert ref.shape == (2, a.ref_n) and np.isfinite(ref).all()
    # the spectral solver drops the Nyquist mode: ~5e-10 on the RSNG Burgers initial condition,
    # whose periodic extension has a slope jump of 2 e^-7.5 = 1.1e-3 at x = -1
    assert np.allclose(ref[0], a.u0(a.eval_grid()).numpy(), atol=1e-8)
    with pytest.raises(ValueError, match="unknown anchor"):
        get_anchor("kdv3")


def a_T(name: str) -> float:
    return 10 * get_anchor(name).dt
