"""What the study's fits become in time: MSE(T) of every arm against the truth
(book: When does meta-learning pay?).

:func:`madng_lite.payoff.study_family` times the arms to a fit tolerance; this module evolves their
fits. For a 1D family of the study, the same pretraining and the same fits (the same seeds give
the same numbers on one machine; on another CPU, rounding differences grow over the 1300
pretraining steps) are made for the first ``n_evolve`` new samples; each arm's fitted network (the
latent folded into the first-layer bias) is evolved by dense Neural Galerkin and scored against
the spectral truth of the sample's exact initial condition on a grid ``ref_factor`` times finer
than the fit grid (so the points between the fit points count too), and against the spectral
solution of the network's own fitted start (the error the time stepping adds). The ladders'
PDEs are the benchmarks' own: the Fourier family evolves by Burgers (``nu = 0.01``, the Burgers
benchmark's family is ``fourier-3``), the solitons by KdV (``a = 1, b = 0.0025``). Every reference
is checked against one on a twice finer grid with half the step.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from . import points
from .data import KDV_B
from .derivatives import FastMLP
from .fitting import FitResult
from .galerkin import NeuralGalerkin
from .payoff import family_samples, family_seed, fit_arms, parse_family, prepare_family
from .pdes import PDE, Burgers, KdV
from .reference import spectral_solve
from .solve import NonFiniteError

__all__ = ["EVOLVE_ARMS", "ladder_pde", "evolve_fit", "evolve_family"]

EVOLVE_ARMS = ("mad_l", "mad_lm", "random", "fresh")
# (PDE, T, NG step, reference grid factor, reference step): the Burgers and KdV benchmarks' settings
_LADDER_PDES: dict[str, tuple[PDE, float, float, int, float]] = {
    "fourier": (Burgers(nu=0.01), 1.0, 1e-3, 4, 5e-4),
    "solitons": (KdV(a=1.0, b=KDV_B), 1.0, 5e-4, 2, 2.5e-4),
}


def ladder_pde(name: str) -> tuple[PDE, float, float, int, float]:
    """``(pde, T, dt, ref_factor, ref_dt)`` of a study family; a clear error for the 2D ladder."""
    kind, _ = parse_family(name)
    if kind not in _LADDER_PDES:
        raise ValueError(f"MSE(T) is measured for the 1D ladders only (fourier: Burgers, solitons: KdV), "
                         f"not {name!r}: a 2D evolution of every arm costs hours on a CPU")
    return _LADDER_PDES[kind]


def _per_time(pred: np.ndarray, ref: np.ndarray) -> list[float | None]:
    """MSE at each time; None where the prediction is not finite (after a blow-up)."""
    return [float(np.mean((p - r) ** 2)) if np.isfinite(p).all() else None for p, r in zip(pred, ref)]


def evolve_fit(fit: FitResult, pde: PDE, T: float, dt: float, t_eval: Tensor, x_ref: Tensor,
               n_points: int, seed: int = 0) -> dict:
    """Evolve one fitted network by dense NG; predictions on ``x_ref`` at ``t_eval`` (inf after a blow-up)."""
    dec = fit.decoder.fold_latent(fit.z) if fit.z is not None else fit.decoder
    ng = NeuralGalerkin(dec, pde, n_points=n_points, ridge=1e-8, seed=seed)
    failed_at = None
    try:
        res = ng.evolve(dec.flat_theta(), T, dt, t_eval=t_eval, progress=False)
    except NonFiniteError as e:   # a blow-up is a result: keep what was recorded before it
        res, failed_at = e.result, e.t_fail
    preds = np.full((len(t_eval), x_ref.shape[0]), np.inf)
    fast = FastMLP(dec)
    with torch.no_grad():
        for i, th in enumerate(res.thetas):
            preds[i] = fast.forward(th, x_ref, None, ("u",))[0]["u"].numpy()
    return {"preds": preds, "p": dec.n_params, "steps": res.n_steps, "seconds": res.timings["total"],
            "diverged_at": failed_at}


def evolve_family(name: str, n_evolve: int = 4, n_points: int | None = None, n_times: int = 11,
                  n_train: int = 64, n_val: int = 8, adam: int = 1000, lbfgs: int = 300, lm: int = 100,
                  tols: Sequence[float] = (1e-6, 1e-8, 1e-10), seed: int = 0, lam: float = 0.01,
                  T: float | None = None, on_evolved: Callable[[str, int], None] | None = None,
                  progress: bool = False) -> dict:
    """Pretrain on ``name``, fit its first ``n_evolve`` new samples in every arm of :data:`EVOLVE_ARMS`
    as :func:`~madng_lite.payoff.study_family` does, evolve every fit, and score it; one record.

    ``n_points``: NG sample points (default: the fit grid); ``T``: final time (default: the
    benchmark's; a multiple of its step); ``on_evolved(arm, i)`` is called after each evolution (a
    progress bar); ``progress``: bars for pretraining and the fits. Per arm and sample: the fit's
    MSE and seconds, MSE at each of ``n_times`` times against the truth, the stepping error at
    ``T`` and whether it blew up; per arm the median MSE(0) and MSE(T) (a blow-up counts as infinite).
    """
    pde, T_ladder, dt, rf, ref_dt = ladder_pde(name)
    T = T_ladder if T is None else float(T)
    if not (math.isfinite(T) and T > 0 and abs(round(T / dt) * dt - T) <= 1e-9 * T):
        raise ValueError(f"T must be a positive multiple of the step {dt:g}, got {T}")
    if not 1 <= int(n_evolve) <= int(n_val):
        raise ValueError(f"n_evolve must be between 1 and n_val = {n_val}, got {n_evolve}")
    if int(n_times) < 2:
        raise ValueError(f"need n_times >= 2 (0 and T at least), got {n_times}")
    prep = prepare_family(name, n_train, n_val, None, adam, lbfgs, seed, lam, progress)
    fits, _ = fit_arms(prep, lm, tols, n=int(n_evolve), progress=progress)
    n_grid = prep.x.shape[0]
    n_points = n_points or n_grid
    x_ref = points.grid(prep.box, n_grid * rf)
    _, U_ref, _ = family_samples(name, n_train + n_val, n_grid * rf, seed=family_seed(prep.kind, prep.size, seed))
    gap = float((U_ref[:, ::rf] - torch.cat([prep.train, prep.val])).abs().max())
    if gap > 1e-12:
        raise RuntimeError(f"the fine-grid samples do not restrict to the fit grid's (max gap {gap:.2e})")
    t_eval = torch.linspace(0.0, T, n_times, dtype=torch.float64)
    t_eval = torch.round(t_eval / dt) * dt          # on the NG step grid
    box = prep.box
    truths = [spectral_solve(pde, U_ref[n_train + i].numpy(), box, T, ref_dt, t_eval.numpy())
              for i in range(int(n_evolve))]
    # the truth against a twice finer grid and half the step, first sample
    fine = family_samples(name, n_train + n_val, 2 * n_grid * rf, seed=family_seed(prep.kind, prep.size, seed))[1]
    check = spectral_solve(pde, fine[n_train].numpy(), box, T, ref_dt / 2, t_eval.numpy())[:, ::2]
    ref_check = float(np.linalg.norm(check - truths[0]) / np.linalg.norm(truths[0]))
    arms: dict[str, dict] = {}
    for arm in EVOLVE_ARMS:
        recs = []
        for i, fit in enumerate(fits[arm]):
            ev = evolve_fit(fit, pde, T, dt, t_eval, x_ref, n_points, seed=seed + i)
            mse = _per_time(ev["preds"], truths[i])
            start = ev["preds"][0]
            step = _per_time(ev["preds"], spectral_solve(pde, start, box, T, ref_dt, t_eval.numpy())) \
                if np.isfinite(start).all() else [None]
            recs.append({"fit_mse": fit.mse, "fit_seconds": fit.seconds, "fit_iters": fit.total_iters,
                         "mse": mse, "stepping_mse_T": step[-1], "diverged_at": ev["diverged_at"],
                         "p": ev["p"], "steps": ev["steps"], "evolve_seconds": ev["seconds"]})
            if on_evolved is not None:
                on_evolved(arm, i)

        def med(k: int, rs: list[dict] = recs) -> float:
            return statistics.median(math.inf if r["mse"][k] is None else r["mse"][k] for r in rs)
        arms[arm] = {"samples": recs, "mse0_median": med(0), "mseT_median": med(-1),
                     "diverged": sum(r["diverged_at"] is not None for r in recs)}
    return {"family": name, "ladder": prep.kind, "size": prep.size, "pde": pde.name, "T": T, "dt": dt,
            "n_points": n_points, "n_ref": x_ref.shape[0], "ref_dt": ref_dt, "ref_check_rel": ref_check,
            "n_evolve": int(n_evolve), "t_eval": t_eval.tolist(), "pretrain_seconds": prep.pretrain_seconds,
            "pretrain_mean_rel": prep.report.mean_rel, "arms": arms}
