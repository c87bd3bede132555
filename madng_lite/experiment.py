"""One benchmark run of MAD-NG, with its baselines (book: Chapters 7-10; CLI: :mod:`madng_lite.cli`).

:func:`run_benchmark` chains the whole method on one parametric family (:mod:`madng_lite.data`):
pretrain the auto-decoder on the training initial conditions (:func:`madng_lite.mad.pretrain`,
resumed from ``pretrained.pt`` when one with the same configuration exists), fine-tune a latent for
each held-out sample from its nearest training latent (and, for comparison, from a random one),
evolve the decoder's weights with (sparse) Neural Galerkin (:class:`madng_lite.galerkin.NeuralGalerkin`)
and compare with the ground truth over time (:mod:`madng_lite.metrics`): per sample, median and
90th percentile over samples, and the ensemble mean and variance against the reference ensemble.
With ``baselines=True`` the same test samples are also solved by NG without meta-learning (each
initial condition fitted from a random network) and by MAD-PINN (:mod:`madng_lite.pinn`).
It writes ``results.json``, ``figure.png`` and ``pretrained.pt`` into ``out``, and after each test sample
``samples.partial.json``: a run that is interrupted and started again with the same configuration
reads back the pretrained decoder and the finished samples instead of redoing them (another
configuration is refused with an error). Full sizes follow METHOD.md section 2; quick mode shrinks
sizes only.
"""
from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import environment, quick_mode, resolve_device, set_seed

__all__ = ["BENCHMARKS", "BenchConfig", "FULL", "QUICK", "bench_config", "run_benchmark"]

BENCHMARKS = ("kdv", "burgers", "ac1d", "ac2d")


@dataclass(frozen=True)
class BenchConfig:
    """Every size of one benchmark run (the full or the quick variant)."""

    name: str
    n_train: int
    n_test: int
    n_grid: int
    width: int
    depth: int
    latent_dim: int
    n_freq: int
    lam: float
    adam_iters: int
    lbfgs_iters: int
    lr: float
    sobolev: tuple[str, ...]
    ft_mode: str
    ft_iters: int
    ft_lr: float
    ft_tol: float
    T: float
    dt: float
    n_points: int
    sparse: int | None
    n_eval: int
    ridge: float = 1e-10
    # baselines (``--baselines``), on the first ``n_baseline`` test samples
    n_baseline: int = 4
    ng_fit: tuple[int, int, int] = (1000, 500, 100)   # NG without meta: Adam, L-BFGS, Levenberg-Marquardt
    pinn_iters: int = 2000                            # MAD-PINN pretraining (Adam)
    pinn_ft_iters: int = 1000                         # MAD-PINN fine-tuning of z (Adam)
    pinn_colloc: int = 256                            # collocation points per sample and iteration
    pinn_w_res: float = 0.1                           # weight of the residual against the initial condition
    # pretraining, nearest latent and fine-tuning see every fit_stride-th grid point per dimension (errors are
    # always measured on the whole grid): the AC2D initial data hold Fourier modes |k| <= 1 only
    fit_stride: int = 1
    # the first dense_compare test samples are also evolved with dense NG (same fine-tuned start, same run):
    # the MSE and the time per step of sparse against dense on the same samples
    dense_compare: int = 0
    # MAD-LM only: Levenberg-Marquardt steps on theta after Adam, when Adam stops above ft_tol
    ft_lm_iters: int = 0


# Our choices where METHOD.md leaves them open (measured on one CPU thread, float64):
# * KdV n_freq = 4: the paper's code used one frequency; with four, the paper's tiny 1 x 20 network fits
#   our narrow two-solitons better (20 samples, 128 points, 300 Adam + 300 L-BFGS: 4.7 % -> 2.0 %).
# * KdV dt = 5e-4, ridge = 1e-8: with the default ridge 1e-10, RK4 blew up during the soliton collision
#   (3 of 4 full-size test samples; at dt = 5e-4 and 2.5e-4, n = 256 and 1000 points); with 1e-8 a
#   test sample kept MSE 1.0e-6 to 1.1e-6 up to t = 0.6 (collision included). dt = 2e-3 and 1e-3 blew up.
# * KdV: N = 50 training samples, MAD-LM fine-tuning to MSE 1e-7 (the 1e-6 target at T needs a start well
#   below it; the 1 x 20 decoder's latent manifold alone stays near 1e-5).
# * MAD-LM (latent and weights, Adam lr 1e-3) for every full run: MAD-L stops at the accuracy of the learned
#   manifold (quick runs: MSE 1e-3 to 6e-3 with L, 2e-6 to 2e-5 with LM); targets of 1e-5 at T need LM.
# * Burgers and AC1D s = 400 (10 % and 20 % of p, as in the RSNG anchors): at n = 1000 points and s = 1500
#   a step costs 340 ms (Burgers) and 290 ms (AC1D, p = 1951: hardly cheaper than dense) on one thread, i.e.
#   6 to 10 min per test sample; AC2D keeps s = 1500 (p = 8491: 1.0 s vs 11 s dense per step).
#   (benchmarks/mad_step_bench.py)
# * AC2D: pretraining and fine-tuning on the 25 x 25 sub-grid (fit_stride 2; the initial data hold Fourier modes
#   |k| <= 1 only, so 625 points determine them; errors are measured on the 50 x 50 grid): 180 samples x 2500
#   points cost 3.8 s per Adam step on one thread, 180 x 625 about 4 times less. dt = 5e-3 (400 RK4 steps to
#   T = 2): a dense step costs 7.1 s, so one dense comparison (dense_compare = 1) takes 48 min at dt = 5e-3.
#   Fine-tuning to MSE 1e-9: the AC2D data have rms ~0.02 to 0.03, so 1e-7 leaves a relative error of 1 % or more
#   (measured: 1.4 % on the first test sample), which the growth phase (u_t ~ 2 u) carries to t = 2 unchanged in
#   relative terms (an estimate: MSE ~1e-4 once |u| ~ 1, above the 1e-5 target).
#   Adam alone stalls near 1e-7 (4000 steps, lr 1e-3 or 3e-4); 50 / 100 Levenberg-Marquardt steps on theta then
#   reach 2.3e-10 / 5.1e-11 (8 / 17 s), and the MSE on the whole 50 x 50 grid equals the one on the fit grid.
# * n_train 64 for the other 1D families (the paper's counts are not known), 180 for AC2D as in the paper.
# Quick mode keeps every choice and shrinks only sizes: samples, grid, network, iterations, T.
FULL: dict[str, BenchConfig] = {
    "kdv": BenchConfig("kdv", 50, 10, 256, 20, 1, 5, 4, 0.01, 2000, 1000, 1e-2, ("ux",), "LM", 4000, 1e-3, 1e-7,
                       1.0, 5e-4, 1000, None, 11, ridge=1e-8),
    "burgers": BenchConfig("burgers", 64, 10, 256, 30, 4, 30, 1, 0.01, 2000, 1000, 1e-3, ("ux",), "LM", 4000, 1e-3,
                           1e-7, 1.0, 1e-3, 1000, 400, 11),
    "ac1d": BenchConfig("ac1d", 64, 10, 256, 30, 2, 30, 1, 0.05, 2000, 1000, 1e-3, ("ux",), "LM", 4000, 1e-3, 1e-7,
                        2.0, 1e-3, 1000, 400, 11),
    "ac2d": BenchConfig("ac2d", 180, 10, 50, 30, 8, 60, 1, 0.05, 2000, 1000, 1e-3, (), "LM", 4000, 1e-3, 1e-9,
                        2.0, 5e-3, 50, 1500, 11, fit_stride=2, dense_compare=1, ft_lm_iters=100),
}

QUICK: dict[str, BenchConfig] = {
    "kdv": replace(FULL["kdv"], n_train=12, n_test=2, n_grid=128, adam_iters=300, lbfgs_iters=200,
                   ft_iters=300, ft_tol=1e-6, T=0.1, dt=5e-4, n_points=128, n_eval=6, n_baseline=1, ng_fit=(200, 100, 20), pinn_iters=200,
                   pinn_ft_iters=100, pinn_colloc=64),
    "burgers": replace(FULL["burgers"], n_train=12, n_test=2, n_grid=64, width=20, depth=2, latent_dim=8,
                       adam_iters=300, lbfgs_iters=200, lr=1e-2, ft_iters=300, ft_tol=1e-5, T=0.1, dt=2e-3,
                       n_points=128, sparse=400, n_eval=6, n_baseline=1, ng_fit=(200, 100, 20),
                       pinn_iters=200, pinn_ft_iters=100, pinn_colloc=64),
    "ac1d": replace(FULL["ac1d"], n_train=12, n_test=2, n_grid=64, width=20, depth=2, latent_dim=8,
                    adam_iters=300, lbfgs_iters=200, lr=1e-2, ft_iters=300, ft_tol=1e-5, T=0.2, dt=4e-3,
                    n_points=128, sparse=400, n_eval=6, n_baseline=1, ng_fit=(200, 100, 20),
                    pinn_iters=200, pinn_ft_iters=100, pinn_colloc=64),
    "ac2d": replace(FULL["ac2d"], n_train=12, n_test=2, n_grid=16, width=20, depth=2, latent_dim=20,
                    adam_iters=300, lbfgs_iters=200, lr=1e-2, ft_iters=300, ft_tol=1e-6, T=0.2, dt=4e-3,
                    n_points=16, sparse=400, n_eval=6, n_baseline=1, ng_fit=(200, 100, 20),
                    pinn_iters=200, pinn_ft_iters=100, pinn_colloc=64),
}


def bench_config(name: str, quick: bool | None = None) -> BenchConfig:
    """The full or quick configuration of a benchmark (``quick=None``: from ``MADNG_QUICK``)."""
    if name not in FULL:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return (QUICK if (quick_mode() if quick is None else quick) else FULL)[name]


def _clean(v):
    """JSON-safe copy: floats that are not finite become None, tensors/arrays become lists."""
    if isinstance(v, dict):
        return {str(k): _clean(w) for k, w in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(w) for w in v]
    if isinstance(v, (torch.Tensor, np.ndarray)):
        return _clean(np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v).tolist())
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def with_overrides(cfg: BenchConfig, overrides: dict) -> BenchConfig:
    """``cfg`` with fields replaced; values given as text (the CLI's ``--set k=v``) are converted."""
    from dataclasses import fields

    types = {f.name: f.type for f in fields(BenchConfig)}
    out = {}
    for k, v in overrides.items():
        if k not in types or k == "name":
            raise ValueError(f"unknown configuration field {k!r}; known: {', '.join(t for t in types if t != 'name')}")
        cur = getattr(cfg, k)
        if isinstance(v, str):
            try:
                if v.lower() in ("none", "dense") and k == "sparse":
                    v = None
                elif isinstance(cur, tuple):
                    v = tuple(type(cur[0])(w) if cur else w for w in v.split(",") if w)
                elif isinstance(cur, bool):
                    v = v.lower() in ("1", "true", "yes")
                elif isinstance(cur, int) or (cur is None and k == "sparse"):
                    v = int(v)
                elif isinstance(cur, float):
                    v = float(v)
            except ValueError:
                raise ValueError(f"bad value {v!r} for {k} (expected {types[k]})") from None
        out[k] = v
    return replace(cfg, **out)


def _stats(per_sample: np.ndarray) -> dict:
    """Mean, median and 90th percentile over samples (axis 0) of errors over time; inf = diverged."""
    a = np.asarray(per_sample, dtype=float)
    return {"mean": a.mean(axis=0), "median": np.median(a, axis=0), "p90": np.percentile(a, 90, axis=0)}


def _ensemble(preds: np.ndarray, truths: np.ndarray) -> dict:
    """Ensemble mean and variance over samples (axis 0) against the reference ensemble, over time."""
    from . import metrics

    ok = np.isfinite(preds).all(axis=(1, 2))
    if ok.sum() < 2:
        return {"n": int(ok.sum())}
    P, R = preds[ok], truths[ok]
    return {"n": int(ok.sum()),
            "mean_rel_l2": metrics.rel_l2(P.mean(axis=0), R.mean(axis=0), axis=1),
            "var_rel_l2": metrics.rel_l2(P.var(axis=0), R.var(axis=0), axis=1),
            "var_ref_mean": R.var(axis=0).mean(axis=1)}


def _evolve(ng, theta0, cfg, t_eval, progress) -> tuple[list[torch.Tensor], float, float | None, int]:
    """Evolve; on a blow-up keep what was recorded and report the time it happened."""
    from .solve import NonFiniteError

    try:
        res = ng.evolve(theta0, cfg.T, cfg.dt, t_eval=torch.tensor(t_eval), progress=progress)
        return list(res.thetas), res.timings["total"], None, res.n_steps
    except NonFiniteError as e:  # DivergenceError included: no NaN, but the solution exploded
        msg = str(e)
        t_fail = float(msg.split("t = ")[1].split(":")[0].split(" ")[0]) if "t = " in msg else float("nan")
        return [], float("nan"), t_fail, -1


def _predict_thetas(dec, thetas, x, z, n_eval: int) -> np.ndarray:
    from .derivatives import FastMLP

    out = np.full((n_eval, x.shape[0]), np.inf)
    with torch.no_grad():
        fast = FastMLP(dec)
        for k, th in enumerate(thetas):
            out[k] = fast.forward(th, x, z, ("u",))[0]["u"].cpu().numpy()
    return out


def run_benchmark(name: str, quick: bool | None = None, sparse: int | None = -1, device: str | None = None,
                  out: str | os.PathLike | None = None, seed: int = 0, stochastic: bool = False,
                  ft_mode: str | None = None, ridge: float | None = None, progress: bool = False,
                  baselines: bool = False, n_test: int | None = None, overrides: dict | None = None,
                  command: str | None = None) -> dict:
    """Pretrain, fine-tune, evolve and score one benchmark; write ``results.json`` and ``figure.png``.

    ``sparse=-1`` keeps the benchmark's default ``s``; ``None`` or 0 means dense NG. ``n_test``
    overrides the number of held-out samples; ``overrides`` replaces any other field of the
    :class:`BenchConfig` (e.g. ``{"n_train": 60, "adam_iters": 300}``), recorded in the results.
    ``command`` (the command line that made the run) is stored in the results as is.
    """
    from . import __version__, metrics
    from .data import make_family
    from .decoder import Decoder
    from .mad import finetune, nearest_latent, pretrain

    commit = _git_commit()  # read at the start: the code this run imported
    quick = quick_mode() if quick is None else bool(quick)
    cfg = bench_config(name, quick)
    if sparse != -1:
        if sparse is not None and sparse < 0:
            raise ValueError(f"--sparse must be >= 0 (0: dense), got {sparse}")
        cfg = replace(cfg, sparse=sparse or None)
    if ft_mode is not None:
        cfg = replace(cfg, ft_mode=ft_mode)
    if ridge is not None:
        if not ridge > 0:
            raise ValueError(f"ridge must be > 0, got {ridge}")
        cfg = replace(cfg, ridge=float(ridge))
    if overrides:
        cfg = with_overrides(cfg, overrides)
    if n_test is not None:
        if n_test < 1:
            raise ValueError(f"n_test must be >= 1, got {n_test}")
        cfg = replace(cfg, n_test=int(n_test))
    try:
        dev = resolve_device(device)
    except RuntimeError as e:  # torch.device("nonsense")
        raise ValueError(f"unknown device {device!r} ({e})") from e
    set_seed(seed)
    outdir = Path(out) if out is not None else Path("results") / name
    outdir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    fam = make_family(name, cfg.n_train + cfg.n_test, seed=seed, n_grid=cfg.n_grid, stochastic=stochastic, T=cfg.T)
    train, test = fam.subset(range(cfg.n_train)), fam.subset(range(cfg.n_train, cfg.n_train + cfg.n_test))
    t_eval = np.linspace(0.0, cfg.T, cfg.n_eval)
    timings["data"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    truths = np.stack([test.truth(i, t_eval) for i in range(cfg.n_test)])
    timings["truth"] = time.perf_counter() - t0

    x = fam.x.to(dev)
    fit = _fit_index(fam, cfg.fit_stride).to(dev)   # the points pretraining and fine-tuning see
    xf = x[fit]
    dec = Decoder(fam.box, latent_dim=cfg.latent_dim, width=cfg.width, depth=cfg.depth, n_freq=cfg.n_freq,
                  seed=seed).to(dev)
    sob: dict | bool = False
    if cfg.sobolev and fam.dim == 1:
        sob = {k: v.to(dev)[:, fit] for k, v in train.derivative_targets(cfg.sobolev).items()}
    pre_cfg = {"benchmark": name, "stochastic": stochastic, "package": __version__,
               **{k: v for k, v in asdict(cfg).items() if k in ("n_train", "n_grid", "width", "depth", "latent_dim",
                                                                "n_freq", "sobolev", "T")}}
    if cfg.fit_stride != 1:  # (absent when 1: checkpoints written before this field existed still resume)
        pre_cfg["fit_stride"] = cfg.fit_stride
    U0_train = train.U0.to(dev)[:, fit]
    Z, prep = pretrain(dec, xf, U0_train, lam=cfg.lam, adam_iters=cfg.adam_iters, lbfgs_iters=cfg.lbfgs_iters,
                       lr=cfg.lr, seed=seed, progress=progress, sobolev=sob, normalize=True,
                       checkpoint=outdir / "pretrained.pt", config=pre_cfg)
    timings["pretrain"] = prep.seconds_this_run   # (``pretrain.seconds`` in the results: all runs it took)

    # test samples done by an interrupted run of the same configuration are read back, not redone
    partial = outdir / "samples.partial.json"
    run_key = _clean({"config": asdict(cfg), "seed": seed, "stochastic": stochastic, "package": __version__})
    samples, preds = _read_partial(partial, run_key, truths.shape)
    for k in ("finetune", "finetune_random", "evolve"):
        timings[k] = float(sum(s_["timings"][k] for s_ in samples))
    bar = tqdm(range(cfg.n_test), desc=f"{name}: test samples", disable=not progress, initial=len(samples))
    for i in range(len(samples), cfg.n_test):
        u0 = test.U0[i].to(dev)
        z0, j = nearest_latent(U0_train, Z, u0[fit])
        fts = {}
        for start, zs in (("nearest", z0), ("random", None)):
            fts[start] = finetune(dec, xf, u0[fit], zs, mode=cfg.ft_mode, lr=cfg.ft_lr, max_iters=cfg.ft_iters,
                                  tol=cfg.ft_tol, lam=cfg.lam, seed=seed + 7919 * (i + 1),
                                  data_scale=prep.data_scale, progress=progress,
                                  lm_iters=cfg.ft_lm_iters if cfg.ft_mode == "LM" else 0)
        ft = fts["nearest"]
        ng = _ng_for(ft.decoder, test.pdes[i], ft.z, cfg, seed + i)
        thetas, secs, t_fail, steps = _evolve(ng, ft.decoder.flat_theta(), cfg, t_eval, progress)
        preds[i] = _predict_thetas(ft.decoder, thetas, x, ft.z, cfg.n_eval)
        with np.errstate(invalid="ignore", over="ignore"):
            mse_i, rel_i = metrics.mse(preds[i], truths[i], axis=1), metrics.rel_l2(preds[i], truths[i], axis=1)
        sample = {
            "index": cfg.n_train + i, "nearest_train": j, "finetune_iters": ft.iters,
            "finetune_mse": ft.mse, "finetune_best_iter": ft.best_iter, "finetune_lm_iters": ft.lm_iters,
            "finetune_converged": ft.converged,
            "finetune_seconds": ft.seconds, "finetune_first_below": ft.first_below,
            "random_start": {"iters": fts["random"].iters, "mse": fts["random"].mse,
                             "converged": fts["random"].converged, "seconds": fts["random"].seconds,
                             "first_below": fts["random"].first_below},
            "ng_steps": steps, "ng_seconds": secs, "diverged_at": t_fail,
            "mse": mse_i, "rel_l2": rel_i, "params": test.params[i],
            "timings": {"finetune": ft.seconds, "finetune_random": fts["random"].seconds,
                        "evolve": 0.0 if t_fail is not None else secs},
        }
        sample["git_commit"] = commit   # the code that computed this sample (a resumed run may mix)
        if i < cfg.dense_compare and cfg.sparse is not None:
            ng_d = _ng_for(ft.decoder, test.pdes[i], ft.z, replace(cfg, sparse=None), seed + i)
            th_d, secs_d, fail_d, steps_d = _evolve(ng_d, ft.decoder.flat_theta(), cfg, t_eval, progress)
            pred_d = _predict_thetas(ft.decoder, th_d, x, ft.z, cfg.n_eval)
            with np.errstate(invalid="ignore", over="ignore"):
                sample["dense"] = {"mse": metrics.mse(pred_d, truths[i], axis=1), "ng_steps": steps_d,
                                   "ng_seconds": secs_d, "diverged_at": fail_d}
        samples.append(_clean(sample))
        for k, v in sample["timings"].items():
            timings[k] += v
        _write_partial(partial, run_key, samples, preds)
        bar.update(1)
    bar.close()
    # a diverged sample's errors are inf (None once written to JSON)
    mse_all = np.array([[np.inf if v is None else v for v in s["mse"]] for s in samples], dtype=float)
    rel_all = np.array([[np.inf if v is None else v for v in s["rel_l2"]] for s in samples], dtype=float)
    stats_mse, stats_rel = _stats(mse_all), _stats(rel_all)
    result_baselines = _run_baselines(cfg, fam, train, test, truths, t_eval, x, dev, seed, progress, timings) \
        if baselines else None
    t0 = time.perf_counter()
    fig_path = outdir / "figure.png"
    _figure(fam, t_eval, truths[0], preds[0], mse_all, fig_path, name, result_baselines)
    timings["figure"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all
    env = environment()
    name_ = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
    env["device"] = f"{dev.type} ({name_})"
    env["torch_threads"] = torch.get_num_threads()
    env["git_commit"] = commit
    result = {
        "benchmark": name, "command": command, "quick": quick, "seed": seed, "stochastic": stochastic,
        "config": asdict(cfg), "overrides": dict(overrides or {}),
        "n_params": dec.n_params, "environment": env,
        "machine": {"system": platform.system(), "arch": platform.machine(), "cpus": os.cpu_count()},
        "pretrain": prep.summary(), "t_eval": t_eval,
        "mse": stats_mse["mean"], "rel_l2": stats_rel["mean"],
        "mse_median": stats_mse["median"], "mse_p90": stats_mse["p90"],
        "rel_l2_median": stats_rel["median"], "rel_l2_p90": stats_rel["p90"],
        "mse_final": float(stats_mse["mean"][-1]), "rel_l2_final": float(stats_rel["mean"][-1]),
        "mse_final_median": float(stats_mse["median"][-1]), "mse_final_p90": float(stats_mse["p90"][-1]),
        "n_diverged": sum(s["diverged_at"] is not None for s in samples),
        "ensemble": _ensemble(preds, truths), "samples": samples, "baselines": result_baselines,
        "dense_compare": _dense_summary(samples),
        "timings": timings, "figure": str(fig_path),
    }
    result = _clean(result)
    tmp = outdir / "results.json.tmp"
    tmp.write_text(json.dumps(result, indent=1, allow_nan=False))
    os.replace(tmp, outdir / "results.json")
    partial.unlink(missing_ok=True)
    return result


def _git_commit() -> str | None:
    """The commit of the repository the package runs from, if any (``+dirty``: the package's own files differ)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "madng_lite"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _fit_index(fam, stride: int) -> torch.Tensor:
    """Indices of the grid points on every ``stride``-th grid line per dimension ('ij' order)."""
    if not isinstance(stride, int) or stride < 1 or fam.n_grid % stride:
        raise ValueError(f"fit_stride must be a positive divisor of n_grid = {fam.n_grid}, got {stride!r}")
    keep = torch.arange(fam.n_grid) % stride == 0
    mesh = torch.meshgrid(*([keep] * fam.dim), indexing="ij")
    return torch.stack(mesh).all(dim=0).reshape(-1).nonzero()[:, 0]


def _read_partial(path: Path, key: dict, shape: tuple) -> tuple[list[dict], np.ndarray]:
    """Samples finished by an earlier, interrupted run of the same configuration (none if no file)."""
    preds = np.full(shape, np.inf)
    if not path.exists():
        return [], preds
    try:
        saved = json.loads(path.read_text())
        same = saved["key"] == key
        samples = saved["samples"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: unreadable partial results ({type(e).__name__}: {e}); delete it to start over") \
            from None
    if not same:
        raise ValueError(f"{path} was written by a run of another configuration; delete it or use another --out")
    for i, p in enumerate(saved["preds"]):
        preds[i] = np.array([[np.inf if v is None else v for v in row] for row in p], dtype=float)
    return samples, preds


def _write_partial(path: Path, key: dict, samples: list[dict], preds: np.ndarray) -> None:
    """Atomically record the finished test samples (resumed by :func:`_read_partial`)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"key": key, "samples": samples, "preds": _clean(preds[:len(samples)])},
                              allow_nan=False))
    os.replace(tmp, path)


def _dense_summary(samples: list[dict]) -> dict | None:
    """Sparse against dense NG on the samples evolved both ways: MSE at T and time per step."""
    both = [s for s in samples if "dense" in s]
    if not both:
        return None
    def per_step(secs, steps):
        return None if secs is None or not steps or steps < 0 else 1e3 * secs / steps
    rows = [{"index": s["index"], "mse_final_sparse": s["mse"][-1], "mse_final_dense": s["dense"]["mse"][-1],
             "ms_per_step_sparse": per_step(s["ng_seconds"], s["ng_steps"]),
             "ms_per_step_dense": per_step(s["dense"]["ng_seconds"], s["dense"]["ng_steps"])} for s in both]
    ok = [r for r in rows if None not in r.values()]
    out = {"n": len(rows), "samples": rows}
    if ok:
        out["mse_ratio_sparse_over_dense"] = float(np.median([r["mse_final_sparse"] / r["mse_final_dense"] for r in ok]))
        out["speedup_per_step"] = float(np.median([r["ms_per_step_dense"] / r["ms_per_step_sparse"] for r in ok]))
    return out


def _ng_for(decoder, pde, z, cfg: BenchConfig, seed: int):
    """The NG engine with a benchmark's settings (points, sparsity, ridge)."""
    from .galerkin import NeuralGalerkin

    return NeuralGalerkin(decoder, pde, z=z, n_points=cfg.n_points, sparse=cfg.sparse, ridge=cfg.ridge, seed=seed)


def _run_baselines(cfg, fam, train, test, truths, t_eval, x, dev, seed, progress, timings) -> dict:
    """NG without meta-learning and MAD-PINN on the first ``cfg.n_baseline`` test samples."""
    from . import metrics
    from .decoder import Decoder
    from .fit import fit_initial_condition
    from .mad import nearest_latent
    from .pinn import SpaceTimeAutoDecoder

    nb = min(cfg.n_baseline, cfg.n_test)
    out: dict = {"n": nb}
    # (b) NG without meta-learning: fit each initial condition from a random network, then evolve
    rows, t0 = [], time.perf_counter()
    for i in range(nb):
        dec = Decoder(fam.box, width=cfg.width, depth=cfg.depth, n_freq=cfg.n_freq, seed=seed + 1000 + i).to(dev)
        targets = {"u": test.U0[i].to(dev)}
        if fam.dim == 1 and cfg.sobolev:
            targets.update({k: v[i].to(dev) for k, v in test.derivative_targets(cfg.sobolev).items()})
        fit = fit_initial_condition(dec, x, targets, adam_iters=cfg.ng_fit[0], lbfgs_iters=cfg.ng_fit[1], lr=1e-3,
                                    lm_iters=cfg.ng_fit[2], progress=progress)
        ng = _ng_for(dec, test.pdes[i], None, cfg, seed + i)
        thetas, secs, t_fail, _ = _evolve(ng, dec.flat_theta(), cfg, t_eval, progress)
        U = _predict_thetas(dec, thetas, x, None, cfg.n_eval)
        with np.errstate(invalid="ignore", over="ignore"):
            rows.append({"fit_seconds": fit.seconds, "fit_rel": fit.rel_errors, "ng_seconds": secs,
                         "diverged_at": t_fail, "mse": metrics.mse(U, truths[i], axis=1),
                         "rel_l2": metrics.rel_l2(U, truths[i], axis=1)})
    timings["baseline_ng"] = time.perf_counter() - t0
    out["ng"] = {"samples": rows, "mse_median": _stats(np.array([r["mse"] for r in rows]))["median"]}
    # (a) MAD-PINN: a space-time auto-decoder trained with the residual, z fine-tuned per sample
    t0 = time.perf_counter()
    st = SpaceTimeAutoDecoder(fam.box, cfg.T, latent_dim=cfg.latent_dim, width=cfg.width, depth=cfg.depth,
                              n_freq=cfg.n_freq, seed=seed).to(dev)
    Zp, rep = st.pretrain(x, train.U0.to(dev), train.pdes, iters=cfg.pinn_iters, lr=1e-2 if fam.dim == 1 else 3e-3,
                          n_colloc=cfg.pinn_colloc, w_res=cfg.pinn_w_res, lam=cfg.lam, seed=seed, progress=progress)
    rows = []
    for i in range(nb):
        z0, _ = nearest_latent(train.U0.to(dev), Zp, test.U0[i].to(dev))
        z, fr = st.finetune(x, test.U0[i].to(dev), test.pdes[i], z0, iters=cfg.pinn_ft_iters, lr=1e-2,
                            n_colloc=cfg.pinn_colloc, w_res=cfg.pinn_w_res, lam=cfg.lam, seed=seed + i,
                            progress=progress)
        U = st.predict(x, t_eval, z).cpu().numpy()
        rows.append({"finetune_seconds": fr.seconds, "ic_mse": fr.ic_mse, "residual_rms": fr.residual_rms,
                     "mse": metrics.mse(U, truths[i], axis=1), "rel_l2": metrics.rel_l2(U, truths[i], axis=1)})
    timings["baseline_mad_pinn"] = time.perf_counter() - t0
    out["mad_pinn"] = {"pretrain": {"seconds": rep.seconds, "ic_mse": rep.ic_mse, "residual_rms": rep.residual_rms,
                                    "iters": rep.iters}, "samples": rows,
                       "mse_median": _stats(np.array([r["mse"] for r in rows]))["median"]}
    return out


def _figure(fam, t_eval, truth, pred, mses, path: Path, name: str, baselines: dict | None = None) -> None:
    # the object-oriented API alone: no pyplot state, no backend switch (a notebook calling this
    # keeps its inline figures)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12 if fam.dim == 2 else 10, 3.6))
    ax = fig.subplots(1, 3 if fam.dim == 2 else 2)
    if fam.dim == 1:
        xs = fam.x[:, 0].numpy()
        for k, c in zip((0, len(t_eval) // 2, len(t_eval) - 1), ("C0", "C1", "C2")):
            ax[0].plot(xs, truth[k], c, lw=2, alpha=0.5, label=f"truth t={t_eval[k]:.2f}")
            ax[0].plot(xs, pred[k], c + "--", lw=1, label=f"MAD-NG t={t_eval[k]:.2f}")
        ax[0].set_xlabel("x")
        ax[0].legend(fontsize=7)
        ax[0].set_title(f"{name}: first test sample")
    else:
        n = fam.n_grid
        ax[0].imshow(truth[-1].reshape(n, n).T, origin="lower", extent=(0, 1, 0, 1))
        ax[0].set_title(f"{name}: truth at t={t_eval[-1]:.2f}")
        im = ax[1].imshow(np.abs(pred[-1] - truth[-1]).reshape(n, n).T, origin="lower", extent=(0, 1, 0, 1))
        fig.colorbar(im, ax=ax[1])
        ax[1].set_title("|MAD-NG - truth|")
    for i, m in enumerate(mses):
        ax[-1].semilogy(t_eval, np.maximum(m, 1e-300), "C0", marker="o", ms=3, alpha=0.6,
                        label="MAD-NG (each test sample)" if i == 0 else None)
    for key, lab, c in (("ng", "NG without meta", "C3"), ("mad_pinn", "MAD-PINN", "C2")):
        for i, r in enumerate((baselines or {}).get(key, {}).get("samples", [])):
            ax[-1].semilogy(t_eval, np.maximum(np.asarray(r["mse"], dtype=float), 1e-300), c, ls="--", marker="s",
                            ms=3, label=lab if i == 0 else None)
    ax[-1].set_xlabel("t")
    ax[-1].set_ylabel("MSE on the grid")
    ax[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


