"""One fit for every arm (madng_lite.fitting.fit_sample): phases, tolerances, the latent Jacobian."""
from __future__ import annotations

import math

import pytest
import torch

from madng_lite import points
from madng_lite.decoder import Decoder
from madng_lite.fitting import fit_sample

BOX = [(-1.0, 1.0)]


def _target(x):
    return 0.5 * torch.sin(math.pi * x[:, 0]) + 0.2 * torch.cos(2 * math.pi * x[:, 0] + 0.3)


@pytest.fixture(scope="module")
def setup():
    x = points.grid(BOX, 64)
    dec = Decoder(BOX, latent_dim=3, width=12, depth=2, n_freq=2, seed=0)
    z0 = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    return x, dec, z0, _target(x)


def test_latent_only_leaves_the_decoder_and_weights_move_a_copy(setup):
    x, dec, z0, u0 = setup
    before = dec.flat_theta().clone()
    r = fit_sample(dec, x, u0, z0, train="z", adam_iters=50, lr=1e-2, tol=1e-14)
    assert r.decoder is dec and torch.equal(dec.flat_theta(), before) and not torch.equal(r.z, z0)
    assert r.iters == {"adam": 50, "lbfgs": 0, "lm": 0} and not r.reached and r.iters_to_tol is None
    r2 = fit_sample(dec, x, u0, z0, train="z+theta", adam_iters=50, lr=1e-2, tol=1e-14)
    assert r2.decoder is not dec and torch.equal(dec.flat_theta(), before)
    assert not torch.equal(r2.decoder.flat_theta(), before) and r2.mse < r.mse
    # the returned iterate is what the MSE says
    with torch.no_grad():
        u = r2.decoder(x, r2.z)
    assert abs(float(((u - u0) ** 2).mean()) - r2.mse) <= 1e-12 * r2.mse


def test_each_phase_stops_at_the_tolerance(setup):
    x, dec, z0, u0 = setup
    with torch.no_grad():
        start = float(((dec(x, z0) - u0) ** 2).mean())
    r = fit_sample(dec, x, u0, z0, train="z+theta", adam_iters=100, lbfgs_iters=100, lm_iters=100, tol=2 * start)
    assert r.reached and r.total_iters == 0 and r.iters_to_tol == 0
    tol = 0.5 * start
    r = fit_sample(dec, x, u0, z0, train="z+theta", adam_iters=500, lr=1e-3, tol=tol)
    assert r.reached and r.iters["adam"] == r.iters_to_tol and r.mse < tol and r.seconds_to_tol <= r.seconds
    r = fit_sample(dec, x, u0, z0, train="z+theta", adam_iters=0, lbfgs_iters=200, tol=tol)
    assert r.reached and 0 < r.iters["lbfgs"] == r.iters_to_tol < 200


def test_levenberg_marquardt_reaches_far_below_adam():
    """A fresh network (NG without meta-learning): Adam stalls, Gauss-Newton steps go on to 1e-12."""
    x = points.grid(BOX, 64)
    u0 = _target(x)
    fresh = Decoder(BOX, width=12, depth=2, n_freq=2, seed=1)
    adam = fit_sample(fresh, x, u0, None, train="theta", adam_iters=300, lr=1e-2, tol=1e-12)
    lm = fit_sample(fresh, x, u0, None, train="theta", adam_iters=300, lr=1e-2, lm_iters=100, tol=1e-12)
    assert adam.mse > 1e-8 and lm.mse < 1e-3 * adam.mse and lm.iters["lm"] > 0
    assert lm.first_below["1e-08"] is not None and adam.first_below["1e-08"] is None


def test_the_latent_jacobian_of_levenberg_marquardt(setup):
    """LM on the latent alone converges to the minimum of the loss in z (a Gauss-Newton fixed point),
    which a wrong du/dz would not reach."""
    x, dec, z0, u0 = setup
    target = dec(x, torch.tensor([0.4, 0.1, -0.5], dtype=torch.float64)).detach()   # reachable by z alone
    r = fit_sample(dec, x, target, z0, train="z", adam_iters=0, lm_iters=50, tol=1e-26)
    assert r.mse < 1e-20, r.mse
    lam = 0.3   # with a latent penalty, the fixed point is the minimum of the full loss
    r = fit_sample(dec, x, u0, z0, train="z", adam_iters=0, lm_iters=100, lam=lam, tol=1e-30)

    def loss(z):
        return ((dec(x, z) - u0) ** 2).sum() + lam * (z**2).mean()

    z_star = r.z.clone()   # the minimum by Newton's method on the three latent entries (autograd Hessian)
    for _ in range(8):
        zz = z_star.clone().requires_grad_(True)
        g, = torch.autograd.grad(loss(zz), zz)
        z_star = z_star - torch.linalg.solve(torch.autograd.functional.hessian(loss, z_star), g)
    zz = z_star.clone().requires_grad_(True)
    g, = torch.autograd.grad(loss(zz), zz)
    assert float(g.norm()) < 1e-13 * float(loss(z_star))
    # fit_sample returns the iterate of lowest *data* MSE; with a penalty, the data MSE still moves by
    # about 1e-11 along the last, converged LM steps, so which of them is returned depends on rounding
    # (its gradient was 6e-8 on one CPU: the iterate 12 steps before the last). What LM guarantees is
    # the minimum of the loss: its value to a few ulps, its place far closer than a wrong du/dz stops.
    assert float(loss(r.z) - loss(z_star)) <= 1e-14 * float(loss(z_star))
    assert float((r.z - z_star).norm()) < 1e-6 * float(z_star.norm())


def test_bad_input_is_named(setup):
    x, dec, z0, u0 = setup
    with pytest.raises(ValueError, match="unknown train"):
        fit_sample(dec, x, u0, z0, train="everything")
    with pytest.raises(ValueError, match="pass z0"):
        fit_sample(dec, x, u0, None)
    with pytest.raises(ValueError, match="has none"):
        fit_sample(Decoder(BOX, width=4, depth=1), x, u0, None, train="z")
    with pytest.raises(ValueError, match="non-finite"):
        fit_sample(dec, x, u0 * float("nan"), z0)
    with pytest.raises(ValueError, match="tol > 0"):
        fit_sample(dec, x, u0, z0, tol=0.0)
    with pytest.raises(ValueError, match="fixed activation"):
        fit_sample(Decoder(BOX, latent_dim=3, width=4, depth=1, activation="rational"), x, u0, z0)
