"""One benchmark run as a pipeline of stages (book: Chapter 10, reproducing the paper).

    configuration (validated)  ->  output folder (locked)  ->  data and truth
      ->  pretrain  ->  per scored sample: fit every arm, evolve, score  ->  MAD-PINN  ->  report

Every stage reads and writes through the :class:`~madng_lite.pipeline.rundir.RunDir`: a run that
is killed at any point and started again with the same command resumes where it stopped (the
pretrained decoder, each finished sample, each evolution in progress), and gives the same numbers;
a resume with other settings, or from a damaged file, is refused with a one-line error. Times add
up over resumes (``run.json``). Full-size runs are refused from a package tree with uncommitted
changes, so that every result names the code that made it.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import environment, quick_mode, resolve_device, set_seed
from ..manifold import PCAEncoder, initial_latents, manifold_report
from .config import resolve
from .context import SPLITS, Context, git_commit, make_context
from .figure import figure_png
from .rundir import RunDir
from .samples import run_sample
from .stages import pinn_stage, pretrain_stage
from .summary import arm_summary, clean, dense_summary, ensemble, stats

__all__ = ["run_benchmark", "ProvenanceError"]


class ProvenanceError(ValueError):
    """A full-size run from code that is not committed."""


class _Clock:
    """Seconds per stage, this run's added to those of the runs it resumes (kept in ``run.json``)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        saved = ctx.rd.load_json_state("run.json", "run", ctx.settings) or {"runs": 0, "seconds": {}}
        self.runs, self.prev, self.now = saved["runs"] + 1, dict(saved["seconds"]), {}
        self.t0 = time.perf_counter()

    def add(self, stage: str, seconds: float) -> None:
        self.now[stage] = self.now.get(stage, 0.0) + seconds

    def totals(self) -> dict:
        keys = set(self.prev) | set(self.now) | {"wall"}
        now = dict(self.now, wall=time.perf_counter() - self.t0)
        return {k: self.prev.get(k, 0.0) + now.get(k, 0.0) for k in sorted(keys)}

    def save(self) -> None:
        self.ctx.rd.save_json_state("run.json", "run", {"runs": self.runs, "seconds": self.totals()},
                                    self.ctx.settings)


SAMPLES = "samples.pt"   # the finished samples (kept after the run: a later run can add a stage to them)


def _load_partial(ctx: Context) -> tuple[list[dict], list[np.ndarray]]:
    name = SAMPLES if ctx.rd.file(SAMPLES).exists() else "samples.partial.pt"   # the name until 2026-12
    saved = ctx.rd.load(name, "samples", ctx.settings)
    if saved is None:
        return [], []
    samples, preds = json.loads(saved["samples"]), list(saved["preds"].numpy())
    if len(samples) != len(preds) or len(samples) > len(ctx.scored):
        from ..io import CheckpointError
        raise CheckpointError(f"{str(ctx.rd.file(name))!r} holds {len(samples)} samples and "
                              f"{len(preds)} predictions (of {len(ctx.scored)}): damaged; delete it to redo them")
    return samples, preds


def _save_partial(ctx: Context, samples: list[dict], preds: list[np.ndarray]) -> None:
    ctx.rd.save(SAMPLES, "samples", {"samples": json.dumps(samples, allow_nan=False),
                                                  "preds": torch.tensor(np.stack(preds))}, ctx.settings)


def run_benchmark(name: str, quick: bool | None = None, sparse: int | None | str = "default",
                  device: str | None = None, out: str | os.PathLike | None = None, seed: int = 0,
                  stochastic: bool = False, ft_mode: str | None = None, ridge: float | None = None,
                  progress: bool = False, baselines: bool = False, n_test: int | None = None,
                  overrides: dict | None = None, command: str | None = None, split: str = "test",
                  allow_dirty: bool = False) -> dict:
    """Run one benchmark through every stage; write ``results.json`` and ``figure.png`` into ``out``.

    ``split``: ``"test"`` scores the test samples (once, with settings chosen beforehand), ``"val"``
    the validation samples (to choose settings). ``sparse="default"`` keeps the benchmark's ``s``;
    ``None`` or 0 means dense. ``overrides`` replaces any configuration field (``--set``).
    """
    quick = quick_mode() if quick is None else bool(quick)
    cfg = resolve(name, quick, sparse, ft_mode, ridge, n_test, overrides)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {seed!r}")
    if split not in SPLITS:
        raise ValueError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    try:
        dev = resolve_device(device)
    except RuntimeError as e:
        raise ValueError(f"unknown device {device!r} ({e})") from None
    commit = git_commit()
    if not quick and commit is not None and commit.endswith("+dirty") and not allow_dirty:
        raise ProvenanceError("refusing a full-size run from uncommitted changes in madng_lite/ "
                              "(git status madng_lite): commit them first, so that the results name their code")
    with RunDir(Path(out) if out is not None else Path("results") / name) as rd:
        set_seed(seed)
        t0 = time.perf_counter()
        ctx = make_context(cfg, rd, int(seed), bool(stochastic), split, dev, progress, commit)
        clock = _Clock(ctx)
        clock.add("data", time.perf_counter() - t0)
        t0 = time.perf_counter()
        ctx.truths = np.stack([ctx.scored.truth(k, ctx.t_eval) for k in range(len(ctx.scored))])
        clock.add("truth", time.perf_counter() - t0)
        clock.save()
        dec, Z, prep = pretrain_stage(ctx)
        clock.add("pretrain", prep.seconds_this_run or 0.0)
        U0_fit = ctx.train.U0[:, ctx.fit_idx].to(dev)
        Z0 = initial_latents(cfg.n_train, cfg.latent_dim, ctx.seed) if cfg.z_init == "random" else \
            PCAEncoder.fit(U0_fit, cfg.latent_dim).encode(U0_fit)
        manifold = manifold_report(U0_fit, Z, Z0)
        clock.save()
        samples, preds = _load_partial(ctx)
        bar = tqdm(range(len(ctx.scored)), desc=f"{name}: {split} samples", disable=not progress,
                   initial=len(samples))
        for k in range(len(samples), len(ctx.scored)):
            t0 = time.perf_counter()
            rec, pred = run_sample(ctx, dec, Z, U0_fit, prep.data_scale, k)
            samples.append(clean(rec))
            preds.append(pred)
            _save_partial(ctx, samples, preds)
            clock.add("samples", time.perf_counter() - t0)
            clock.save()
            bar.update(1)
        bar.close()
        base = None
        if baselines:
            t0 = time.perf_counter()
            base = clean(pinn_stage(ctx))
            clock.add("baselines", time.perf_counter() - t0)
            clock.save()
        result = _results(ctx, cfg, dec, prep, samples, np.stack(preds), base, clock, quick, command, overrides)
        result["manifold"] = clean(manifold)
        t0 = time.perf_counter()
        rd.write_bytes("figure.png", figure_png(ctx.fam, ctx.t_eval, ctx.truths[0], preds[0], samples, name, base))
        clock.add("report", time.perf_counter() - t0)
        result["timings"] = clean(clock.totals())
        rd.write_json("results.json", result)
        clock.save()
        rd.remove("samples.partial.pt")
        for f in rd.path.glob("evolve_*.pt"):   # left by a run killed between a sample and its clean-up
            f.unlink()
        return result


def _results(ctx: Context, cfg, dec, prep, samples: list[dict], preds: np.ndarray, base: dict | None,
             clock: _Clock, quick: bool, command: str | None, overrides: dict | None) -> dict:
    """The contents of ``results.json`` (without timings)."""
    env = environment()
    name_ = torch.cuda.get_device_name(ctx.device) if ctx.device.type == "cuda" else platform.processor() or "cpu"
    env.update(device=f"{ctx.device.type} ({name_})", torch_threads=torch.get_num_threads(), git_commit=ctx.commit)
    arms = {arm: arm_summary(samples, arm) for arm in cfg.arms}
    main = arms["nearest"]["evolve"]
    mse, rel = stats([s["arms"]["nearest"]["evolve"]["mse"] for s in samples]), \
        stats([s["arms"]["nearest"]["evolve"]["rel_l2"] for s in samples])
    return clean({
        "benchmark": cfg.name, "command": command, "quick": quick, "seed": ctx.seed, "stochastic": ctx.stochastic,
        "split": ctx.split, "splits": ctx.splits, "config": cfg.as_dict(), "overrides": dict(overrides or {}),
        "n_params": dec.n_params, "n_params_evolved": cfg.p_evolved, "environment": env,
        "machine": {"system": platform.system(), "arch": platform.machine(), "cpus": os.cpu_count()},
        "runs": clock.runs, "pretrain": prep.summary(), "t_eval": ctx.t_eval, "report_times": cfg.report_times,
        "arms": arms, "mse_median": mse["median"], "mse_p90": mse["p90"], "rel_l2_median": rel["median"],
        "mse_final_median": mse["median"][-1], "mse_final_p90": mse["p90"][-1], "mse_final_mean": mse["mean"][-1],
        "rel_l2_final_median": rel["median"][-1], "n_diverged": main["n_diverged"],
        "ensemble": ensemble(preds, ctx.truths), "dense_compare": dense_summary(samples),
        "samples": samples, "baselines": base, "figure": "figure.png"})
