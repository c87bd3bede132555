"""The meta-learning study (madng_lite.payoff): families, break-even, one quick study."""
from __future__ import annotations

import math

import pytest
import torch

from madng_lite import payoff, payoff_mse
from madng_lite.data import KDV_B
from madng_lite.decoder import Decoder
from madng_lite.fitting import fit_sample


@pytest.mark.parametrize("bad", ["fourier", "fourier-0", "fourier-x", "kdv-3", "", "solitons--2"])
def test_unknown_family_is_named(bad):
    with pytest.raises(ValueError, match="unknown family"):
        payoff.parse_family(bad)


@pytest.mark.parametrize("name, rank", [("fourier-3", 6), ("fourier-10", 20), ("ac2d-1", 9), ("ac2d-2", 25)])
def test_linear_families_span_their_parameter_count(name, rank):
    n_grid = 16 if name.startswith("ac2d") else 128
    x, U, n_par = payoff.family_samples(name, 80, n_grid, seed=3)
    assert n_par == rank and U.shape == (80, x.shape[0])
    s = torch.linalg.svdvals(U)
    assert int((s > 1e-10 * s[0]).sum()) == rank


def test_families_are_deterministic_and_seeded():
    a = payoff.family_samples("solitons-3", 5, 64, seed=1)[1]
    b = payoff.family_samples("solitons-3", 5, 64, seed=1)[1]
    c = payoff.family_samples("solitons-3", 5, 64, seed=2)[1]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_solitons_have_their_peaks_and_are_periodic():
    x, U, n_par = payoff.family_samples("solitons-2", 6, 512, seed=0)
    assert n_par == 4
    # peaks 3 b k^2 with k in [10, 16], the two solitons well apart (no overlap adds height)
    assert float(U.max()) <= 3 * KDV_B * 16**2 * (1 + 1e-3)
    assert float(U.max(dim=1).values.min()) >= 3 * KDV_B * 10**2 * 0.99
    # periodic: the value just left of x = 1 continues smoothly into x = -1
    step = U[:, 0] - U[:, -1]
    assert float(step.abs().max()) <= float((U[:, 1:] - U[:, :-1]).abs().max())


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="n >= 1"):
        payoff.family_samples("fourier-3", 0, 64, seed=0)
    with pytest.raises(ValueError, match="positive tolerances"):
        payoff.study_family("fourier-3", n_train=4, n_val=1, adam=1, lbfgs=0, lm=1, tols=(0.0,))


def test_break_even_cases():
    assert payoff.break_even(100.0, 1.5, 0.5) == 100.0
    assert payoff.break_even(100.0, 0.5, 1.5) == math.inf
    assert payoff.break_even(100.0, 1.0, 1.0) == math.inf
    assert payoff.break_even(100.0, math.inf, 2.0) == 0.0
    assert payoff.break_even(100.0, 1.0, math.inf) == math.inf
    assert payoff.break_even(100.0, math.inf, math.inf) == math.inf


def test_seconds_to_thresholds_follow_the_trajectory():
    x, U, _ = payoff.family_samples("fourier-3", 1, 64, seed=0)
    dec = Decoder(((-1.0, 1.0),), 0, seed=0, width=12, depth=2, n_freq=1)
    tols = (1e-2, 1e-4, 1e-6)
    r = fit_sample(dec, x, U[0], None, train="theta", adam_iters=0, lm_iters=40, tol=1e-6, thresholds=tols)
    secs = [r.first_below_seconds[f"{t:g}"] for t in tols]
    its = [r.first_below[f"{t:g}"] for t in tols]
    assert all((s is None) == (i is None) for s, i in zip(secs, its))
    done = [s for s in secs if s is not None]
    assert len(done) >= 2 and done == sorted(done)
    if r.reached:
        assert secs[-1] == pytest.approx(r.seconds_to_tol, abs=5e-3) and its[-1] == r.iters_to_tol


def test_quick_study_is_consistent():
    rec = payoff.study_family("fourier-3", n_train=6, n_val=3, adam=40, lbfgs=10, lm=15, tols=(1e-8, 1e-3))
    assert [r["tol"] for r in rec["rows"]] == [1e-3, 1e-8]   # loosest first
    assert rec["params"] == 6 and rec["p_mad"] > rec["p_fresh"]
    loose, tight = rec["rows"]
    for arm in payoff.ARMS:
        assert set(loose["arms"][arm]) == {"reached", "seconds_to_tol", "iters_to_tol"}
        assert loose["arms"][arm]["reached"] >= tight["arms"][arm]["reached"]
        assert loose["arms"][arm]["seconds_to_tol"] <= tight["arms"][arm]["seconds_to_tol"]
    for row in rec["rows"]:
        a = row["arms"]
        assert row["n_star"] == payoff.break_even(rec["pretrain_seconds"], a["fresh"]["seconds_to_tol"],
                                                  a["mad_lm"]["seconds_to_tol"])
        assert row["n_star_batched"] == payoff.break_even(rec["pretrain_seconds"], a["fresh"]["seconds_to_tol"],
                                                          a["mad_l_batched"]["seconds_to_tol"])


def test_mse_study_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="1D ladders"):
        payoff_mse.ladder_pde("ac2d-1")
    with pytest.raises(ValueError, match="unknown family"):
        payoff_mse.ladder_pde("heat-3")
    with pytest.raises(ValueError, match="n_evolve"):
        payoff_mse.evolve_family("fourier-3", n_evolve=3, n_val=2)
    with pytest.raises(ValueError, match="multiple of the step"):
        payoff_mse.evolve_family("fourier-3", n_evolve=1, n_val=1, T=0.0105)


def test_mse_study_evolves_the_study_fits():
    kw = dict(n_train=6, n_val=1, adam=30, lbfgs=5, lm=12, tols=(1e-6, 1e-9))
    rec = payoff_mse.evolve_family("solitons-2", n_evolve=1, n_times=3, T=0.01, **kw)
    study = payoff.study_family("solitons-2", **kw)
    assert rec["pde"] == "kdv" and rec["n_ref"] == 2 * rec["n_points"] == 512 and len(rec["t_eval"]) == 3
    assert rec["ref_check_rel"] < 1e-9            # the truth agrees with a twice finer one
    for arm in payoff_mse.EVOLVE_ARMS:
        s = rec["arms"][arm]["samples"][0]
        assert s["fit_mse"] == study["final_mse_median"][arm]   # the same fit as the study's
        assert len(s["mse"]) == 3 and rec["arms"][arm]["mseT_median"] == s["mse"][-1]
        if s["diverged_at"] is None:
            # the error at t = 0 is the fit's, now on the 2x finer grid; NG adds little in 20 steps
            assert s["mse"][0] == pytest.approx(s["fit_mse"], rel=0.5)
            assert s["stepping_mse_T"] < 1e-3 * max(s["mse"][-1], 1e-12)
