"""The per-sample stages: fit every arm, evolve, score (book: Chapters 6-10).

For one scored sample: the arms fit its initial condition with the same optimiser, budget and
tolerance (:func:`madng_lite.fitting.fit_sample`): MAD from the nearest training latent
(``nearest``), MAD from a random latent (``random``), and a fresh network without latent
(``fresh``: NG without meta-learning). The arms in ``evolve_arms`` are then evolved by Neural
Galerkin (with the latent folded into the first-layer bias) and scored against the truth, against
the spectral solution of their own fitted start (the error the time stepping adds), and by the
NG residual. A blow-up is a result: the sample records when it happened and its last finite error.
"""
from __future__ import annotations

import numpy as np
import torch

from ..decoder import Decoder
from ..derivatives import FastMLP
from ..fitting import FitResult, fit_sample
from ..galerkin import NeuralGalerkin
from ..mad import nearest_latent, random_latent
from ..solve import NonFiniteError
from .context import Context

__all__ = ["fit_arms", "evolve_arm", "score", "run_sample"]


def fit_arms(ctx: Context, dec: Decoder, Z: torch.Tensor, U0_train_fit: torch.Tensor, u0_fit: torch.Tensor,
             data_scale: float, k: int) -> tuple[dict[str, FitResult], int]:
    """Fit sample ``k``'s initial condition (on the fit points) with every arm; also the nearest index."""
    cfg, seed = ctx.cfg, ctx.seed + 7919 * (k + 1)
    z_near, j = nearest_latent(U0_train_fit, Z, u0_fit)
    budget = dict(adam_iters=cfg.ft_iters, lr=cfg.ft_lr, lbfgs_iters=cfg.ft_lbfgs_iters, lm_iters=cfg.ft_lm_iters,
                  tol=cfg.ft_tol, data_scale=data_scale, progress=ctx.progress)
    train = "z" if cfg.ft_mode == "L" else "z+theta"
    out = {}
    for arm in cfg.arms:
        if arm == "nearest":
            out[arm] = fit_sample(dec, ctx.x_fit, u0_fit, z_near, train=train, lam=cfg.lam, **budget)
        elif arm == "random":
            out[arm] = fit_sample(dec, ctx.x_fit, u0_fit, random_latent(cfg.latent_dim, seed), train=train,
                                  lam=cfg.lam, **budget)
        else:   # a fresh network of the same width and depth, without latent input
            fresh = Decoder(ctx.fam.box, 0, cfg.width, cfg.depth, cfg.n_freq, seed=seed).to(ctx.device)
            out[arm] = fit_sample(fresh, ctx.x_fit, u0_fit, None, train="theta", **budget)
    return out, j


def _evolved(fit: FitResult, fold: bool) -> tuple[Decoder, torch.Tensor | None]:
    """The network Neural Galerkin evolves: the fitted decoder, with its latent folded in."""
    if fit.z is not None and fold:
        return fit.decoder.fold_latent(fit.z), None
    return fit.decoder, fit.z


def evolve_arm(ctx: Context, fit: FitResult, k: int, tag: str, sparse: int | None) -> dict:
    """Evolve one fitted start of scored sample ``k``; predictions on the grid (inf where not reached)."""
    cfg = ctx.cfg
    dec, z = _evolved(fit, cfg.fold)
    ng = NeuralGalerkin(dec, ctx.scored.pdes[k], z=z, n_points=cfg.n_points, sparse=sparse, ridge=cfg.ridge,
                        seed=ctx.seed + k)
    ck = ctx.rd.file(f"evolve_{k}_{tag}.pt")
    failed_at = None
    try:
        res = ng.evolve(dec.flat_theta(), cfg.T, cfg.dt, t_eval=torch.tensor(ctx.t_eval), progress=ctx.progress,
                        checkpoint=ck, checkpoint_every=max(1, round(cfg.T / cfg.dt) // 20))
    except NonFiniteError as e:   # DivergenceError included: the blow-up is a result
        res, failed_at = e.result, e.t_fail
    seconds = res.timings["total_over_resumes"]
    # the time per step of this call's own steps (a resumed evolution did the others earlier)
    ms_per_step = 1e3 * res.timings["total"] / max(res.timings["attempts"], 1)
    preds = np.full((len(ctx.t_eval), ctx.fam.x.shape[0]), np.inf)
    fast = FastMLP(dec)
    with torch.no_grad():
        for i, th in enumerate(res.thetas):
            preds[i] = fast.forward(th, ctx.x, z, ("u",))[0]["u"].cpu().numpy()
        u_ref = fast.forward(dec.flat_theta(), ctx.fam.ref_points().to(ctx.device), z, ("u",))[0]["u"].cpu().numpy()
    keep = np.unique(np.linspace(0, len(res.residuals) - 1, min(101, len(res.residuals))).round().astype(int)) \
        if len(res.residuals) else np.zeros(0, dtype=int)
    return {"preds": preds, "u_fit_ref": u_ref, "p": dec.n_params, "sparse": sparse, "steps": res.n_steps,
            "seconds": seconds, "ms_per_step": ms_per_step, "diverged_at": failed_at,
            "residual_t": res.residual_times[keep].tolist(), "residual": res.residuals[keep].tolist(),
            "residual_max": float(res.residuals.max()) if len(res.residuals) else None, "checkpoint": ck.name}


def _per_time(pred: np.ndarray, ref: np.ndarray) -> tuple[list, list]:
    """MSE and relative L2 at each time; None where the prediction is not finite (after a blow-up)."""
    mse, rel = [], []
    for p, r in zip(pred, ref):
        ok = bool(np.isfinite(p).all())
        mse.append(float(np.mean((p - r) ** 2)) if ok else None)
        rel.append(float(np.linalg.norm(p - r) / np.linalg.norm(r)) if ok and np.linalg.norm(r) > 0 else None)
    return mse, rel


def score(ctx: Context, k: int, ev: dict, truth: np.ndarray) -> dict:
    """Errors over time and space-time, against the truth and against the solution of the fitted start."""
    pred = ev["preds"]
    mse, rel = _per_time(pred, truth)
    fitted_truth = ctx.scored.solve(k, ev["u_fit_ref"], ctx.t_eval)
    step_mse, step_rel = _per_time(pred, fitted_truth)
    start_mse, _ = _per_time(fitted_truth, truth)
    st = {"mse": None, "rel_l2": None}
    if np.isfinite(pred).all():
        st = {"mse": float(np.mean((pred - truth) ** 2)),
              "rel_l2": float(np.linalg.norm(pred - truth) / np.linalg.norm(truth))}
    last = next((m for m in reversed(mse) if m is not None), None)
    return {"mse": mse, "rel_l2": rel, "space_time": st, "stepping_mse": step_mse, "stepping_rel_l2": step_rel,
            "fitted_start_mse": start_mse, "last_finite_mse": last,
            **{k_: ev[k_] for k_ in ("p", "sparse", "steps", "seconds", "ms_per_step", "diverged_at", "residual_t",
                                     "residual", "residual_max")}}


def run_sample(ctx: Context, dec: Decoder, Z: torch.Tensor, U0_train_fit: torch.Tensor, data_scale: float,
               k: int) -> tuple[dict, np.ndarray]:
    """Everything for scored sample ``k``: its record and the main arm's predictions."""
    cfg = ctx.cfg
    scored = ctx.scored
    u0 = scored.U0[k].to(ctx.device)
    fits, j = fit_arms(ctx, dec, Z, U0_train_fit, u0[ctx.fit_idx.to(ctx.device)], data_scale, k)
    rec: dict = {"index": ctx.splits[ctx.split][k], "nearest_train": j, "params": scored.params[k],
                 "git_commit": ctx.commit, "arms": {}}
    main_preds = None
    for arm, fit in fits.items():
        r = {"fit": fit.summary()}
        if arm in cfg.evolve_arms:
            ev = evolve_arm(ctx, fit, k, arm, cfg.sparse)
            r["evolve"] = score(ctx, k, ev, ctx.truths[k])
            if arm == "nearest":
                main_preds = ev["preds"]
                if k < cfg.dense_compare and cfg.sparse is not None:
                    dense = evolve_arm(ctx, fit, k, "nearest_dense", None)
                    r["dense"] = score(ctx, k, dense, ctx.truths[k])
        rec["arms"][arm] = r
    for arm in fits:   # the evolution checkpoints are done with once the sample is recorded
        for tag in (arm, f"{arm}_dense"):
            ctx.rd.remove(f"evolve_{k}_{tag}.pt")
    return rec, main_preds

