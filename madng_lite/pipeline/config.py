"""The configuration of one benchmark run, validated before any work (book: Chapters 6-10).

:class:`RunConfig` holds every size and setting of a run; :data:`FULL` and :data:`QUICK` give
each benchmark's full-size and quick variant (quick mode shrinks sizes, never code paths).
:func:`resolve` applies the command line's choices and ``--set FIELD=VALUE`` overrides, then
:func:`validate` checks every field and their combinations (a sparse ``s`` no larger than the
evolved ``p``, report times on the step grid, a sample grid whose Jacobian fits in memory...) and
raises a :class:`ConfigError` that names the field.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import torch

from ..config import quick_mode

__all__ = ["BENCHMARKS", "ARMS", "ConfigError", "RunConfig", "FULL", "QUICK", "bench_config", "resolve",
           "validate", "with_overrides", "n_params", "eval_times"]

BENCHMARKS = ("kdv", "burgers", "ac1d", "ac2d")
ARMS = ("nearest", "random", "fresh")   # MAD from the nearest latent, MAD from a random latent, NG without meta
_DIMS = {"kdv": 1, "burgers": 1, "ac1d": 1, "ac2d": 2}


class ConfigError(ValueError):
    """A configuration value or combination that a run cannot use; the message names the field."""


@dataclass(frozen=True)
class RunConfig:
    """Every size and setting of one benchmark run (see the module docstring)."""

    name: str
    n_train: int                  # samples the auto-decoder is pretrained on
    n_val: int                    # samples that choose the settings (scored with --split val)
    n_test: int                   # samples scored once (--split test)
    n_grid: int                   # grid points per dimension (initial data, truth, errors)
    width: int
    depth: int
    latent_dim: int
    n_freq: int
    lam: float                    # latent penalty weight
    adam_iters: int               # pretraining
    lbfgs_iters: int
    lr: float
    sobolev: tuple[str, ...]      # derivative terms of the pretraining loss (1D)
    ft_mode: str                  # "L" (latent) or "LM" (latent and weights) for the MAD arms
    ft_iters: int                 # the fit of every arm: Adam iterations ...
    ft_lr: float
    ft_tol: float                 # ... stopping once the fit MSE is below ft_tol
    T: float
    dt: float
    n_points: int                 # NG sample points (per axis in 2D)
    sparse: int | None            # parameters updated per step (None: dense)
    n_eval: int                   # evaluation times: n_eval equispaced in [0, T], plus report_times
    ridge: float = 1e-8
    ft_lbfgs_iters: int = 0       # ... then L-BFGS evaluations ...
    ft_lm_iters: int = 0          # ... then Levenberg-Marquardt steps, for every arm alike
    z_init: str = "random"        # pretraining's initial latents: "random" or "pca" (principal coordinates)
    arms: tuple[str, ...] = ("nearest", "random", "fresh")
    evolve_arms: tuple[str, ...] = ("nearest", "fresh")
    fold: bool = True             # evolve with W_z z folded into the first-layer bias
    report_times: tuple[float, ...] = (0.0, 0.2, 0.5, 1.0)   # and T
    fit_stride: int = 1           # pretraining and fits see every fit_stride-th grid line
    dense_compare: int = 0        # the first test samples also evolved dense (same start)
    n_baseline: int = 4           # MAD-PINN on the first n_baseline scored samples (--baselines)
    # MAD-PINN (--baselines; madng_lite.pinn): the defaults are the small Adam-only baseline
    pinn_iters: int = 2000        # pretraining Adam iterations ...
    pinn_ft_iters: int = 1000     # fine-tuning Adam iterations per sample ...
    pinn_colloc: int = 256        # collocation points per sample and step
    pinn_w_res: float = 0.1       # residual weight (both terms normalised, see the chapter)
    pinn_width: int = 0           # space-time network (0: the decoder's width, depth, frequencies)
    pinn_depth: int = 0
    pinn_n_freq: int = 0
    pinn_lr: float = 1e-2         # pretraining Adam step
    pinn_batch: int = 0           # samples per pretraining Adam step (0: all)
    pinn_lbfgs_iters: int = 0     # ... then L-BFGS on all samples, one fixed collocation draw
    pinn_chunks: int = 1          # causal weighting: time chunks ...
    pinn_eps: float = 0.0         # ... and its eps (0: plain PINN loss)
    pinn_ft_lr: float = 1e-2      # fine-tuning Adam step of z ...
    pinn_ft_theta: bool = False   # ... also fine-tune the weights (MAD-LM, on a copy) ...
    pinn_ft_theta_lr: float = 1e-3    # ... with this step
    pinn_ft_lbfgs_iters: int = 0  # ... then L-BFGS
    pinn_ft_colloc: int = 0       # collocation points when fine-tuning (0: pinn_colloc)

    @property
    def dim(self) -> int:
        return _DIMS[self.name]

    @property
    def p(self) -> int:
        """Parameters of the pretrained decoder."""
        return n_params(self.dim, self.n_freq, self.latent_dim, self.width, self.depth)

    @property
    def p_evolved(self) -> int:
        """Parameters Neural Galerkin evolves (the folded decoder has no latent columns)."""
        return n_params(self.dim, self.n_freq, 0 if self.fold else self.latent_dim, self.width, self.depth)

    def as_dict(self) -> dict:
        return asdict(self)


def n_params(dim: int, n_freq: int, latent_dim: int, width: int, depth: int) -> int:
    """Parameters of a :class:`~madng_lite.decoder.Decoder` of that shape."""
    fin = 2 * n_freq * dim + latent_dim
    return fin * width + width + (depth - 1) * (width * width + width) + width + 1


def eval_times(cfg: RunConfig) -> list[float]:
    """The evaluation times: ``n_eval`` equispaced in ``[0, T]`` with the report times, on the step grid."""
    steps = {round(k * cfg.T / (cfg.n_eval - 1) / cfg.dt) for k in range(cfg.n_eval)}
    steps |= {round(t / cfg.dt) for t in (*cfg.report_times, cfg.T) if t <= cfg.T}
    return [s * cfg.dt for s in sorted(steps)]


# MAD-PINN with a real budget (KdV, Burgers): a 64 x 4 space-time network, Adam on batches of 8
# samples then L-BFGS, causal weights over 16 chunks, z and theta fine-tuned per sample; chosen on
# validation samples by benchmarks/pinn_study.py (results/pinn_study_*.json, setting "big_LM").
_PINN = dict(pinn_width=64, pinn_depth=4, pinn_n_freq=4, pinn_iters=2000, pinn_lr=1e-3, pinn_batch=8,
             pinn_colloc=256, pinn_lbfgs_iters=200, pinn_chunks=16, pinn_eps=1.0, pinn_w_res=1.0,
             pinn_ft_iters=1000, pinn_ft_lr=1e-2, pinn_ft_lbfgs_iters=300, pinn_ft_colloc=1024,
             pinn_ft_theta=True, pinn_ft_theta_lr=1e-3)

# Full sizes follow the paper's networks (METHOD.md section 2); the choices that are ours are
# argued in the book (chapters on each benchmark) and chosen on validation samples. The fit of every
# arm: no Adam steps before Levenberg-Marquardt (ft_iters = 0): on the validation samples of KdV and
# Burgers, every arm reached the tolerance in 2 to 18 LM steps, and each 100 Adam steps before them
# only added time (benchmarks/fit_budget_study.py, results/fit_budget_study_*.json).
FULL: dict[str, RunConfig] = {
    "kdv": RunConfig("kdv", 50, 10, 10, 256, 20, 1, 5, 4, 0.01, 2000, 1000, 1e-2, ("ux",), "LM", 0, 1e-3, 1e-7,
                     1.0, 5e-4, 1000, None, 11, ridge=1e-8, ft_lm_iters=100, **_PINN),
    "burgers": RunConfig("burgers", 64, 10, 10, 256, 30, 4, 30, 1, 0.01, 2000, 1000, 1e-3, ("ux",), "LM", 0, 1e-3,
                         1e-7, 1.0, 1e-3, 1000, 400, 11, ft_lm_iters=100, **_PINN),
    "ac1d": RunConfig("ac1d", 64, 10, 10, 256, 30, 2, 30, 1, 0.05, 2000, 1000, 1e-3, ("ux",), "LM", 0, 1e-3,
                      1e-7, 2.0, 1e-3, 1000, 400, 11, ft_lm_iters=100),
    "ac2d": RunConfig("ac2d", 180, 10, 10, 50, 30, 8, 60, 1, 0.05, 2000, 1000, 1e-3, (), "LM", 0, 1e-3, 1e-9,
                      2.0, 5e-3, 50, 1500, 11, ft_lm_iters=100, fit_stride=2, dense_compare=1, pinn_lr=3e-3),
}

_Q = dict(n_train=12, n_val=1, n_test=2, adam_iters=300, lbfgs_iters=200, n_eval=6, n_baseline=1,
          pinn_iters=200, pinn_ft_iters=100, pinn_colloc=64, ft_lm_iters=30)
_QP = dict(pinn_width=24, pinn_depth=2, pinn_n_freq=2, pinn_lr=1e-2, pinn_batch=4, pinn_lbfgs_iters=20,
           pinn_ft_lbfgs_iters=20, pinn_ft_colloc=128)   # the same MAD-PINN code paths, small
QUICK: dict[str, RunConfig] = {
    "kdv": replace(FULL["kdv"], **_Q, **_QP, n_grid=128, ft_tol=1e-6, T=0.1, n_points=128,
                   report_times=(0.0, 0.05)),
    "burgers": replace(FULL["burgers"], **_Q, **_QP, n_grid=64, width=20, depth=2, latent_dim=8, lr=1e-2, ft_tol=1e-5,
                       T=0.1, dt=2e-3, n_points=128, sparse=400, report_times=(0.0, 0.05)),
    "ac1d": replace(FULL["ac1d"], **_Q, n_grid=64, width=20, depth=2, latent_dim=8, lr=1e-2, ft_tol=1e-5,
                    T=0.2, dt=4e-3, n_points=128, sparse=400, report_times=(0.0, 0.1)),
    "ac2d": replace(FULL["ac2d"], **_Q, n_grid=16, width=20, depth=2, latent_dim=20, lr=1e-2, ft_tol=1e-6,
                    T=0.2, dt=4e-3, n_points=16, sparse=400, report_times=(0.0, 0.1)),
}


def bench_config(name: str, quick: bool | None = None) -> RunConfig:
    """The full or quick configuration of a benchmark (``quick=None``: from ``MADNG_QUICK``)."""
    if name not in FULL:
        raise ConfigError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return (QUICK if (quick_mode() if quick is None else quick) else FULL)[name]


def _convert(cfg: RunConfig, key: str, value: object) -> object:
    """A ``--set`` value given as text, converted to the field's type."""
    cur = getattr(cfg, key)
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if key == "sparse":
            return None if text.lower() in ("none", "dense", "0") else int(text)
        if isinstance(cur, bool):
            if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("1", "true", "yes")
        if isinstance(cur, tuple):
            parts = [w.strip() for w in text.split(",") if w.strip()]
            return tuple(float(w) for w in parts) if key == "report_times" else tuple(parts)
        if isinstance(cur, int):
            return int(text)
        if isinstance(cur, float):
            return float(text)
        return text
    except ValueError:
        raise ConfigError(f"--set {key}={value!r}: expected {type(cur).__name__}") from None


def with_overrides(cfg: RunConfig, overrides: dict) -> RunConfig:
    """``cfg`` with fields replaced (text values, as from ``--set k=v``, are converted); then validated."""
    known = [f.name for f in fields(RunConfig) if f.name != "name"]
    out = {}
    for k, v in overrides.items():
        if k not in known:
            raise ConfigError(f"unknown configuration field {k!r}; known: {', '.join(known)}")
        out[k] = _convert(cfg, k, v)
    return validate(replace(cfg, **out))


def resolve(name: str, quick: bool | None = None, sparse: int | None | str = "default", ft_mode: str | None = None,
            ridge: float | None = None, n_test: int | None = None, overrides: dict | None = None) -> RunConfig:
    """The benchmark's configuration with the command line's choices applied, validated."""
    cfg = bench_config(name, quick)
    over = dict(overrides or {})
    if sparse != "default":
        over["sparse"] = sparse or None
    for key, val in (("ft_mode", ft_mode), ("ridge", ridge), ("n_test", n_test)):
        if val is not None:
            over[key] = val
    return with_overrides(cfg, over)


def _need(ok: bool, field: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"{field}: {msg}")


def validate(cfg: RunConfig) -> RunConfig:
    """Check every field and their combinations; return ``cfg`` or raise :class:`ConfigError`."""
    _need(cfg.name in BENCHMARKS, "name", f"unknown benchmark {cfg.name!r}; known: {', '.join(BENCHMARKS)}")
    for f in fields(RunConfig):
        v = getattr(cfg, f.name)
        if isinstance(v, float):
            _need(math.isfinite(v), f.name, f"must be finite, got {v}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            _need(v >= 0, f.name, f"must be >= 0, got {v}")
    for k in ("n_train", "n_test", "width", "depth", "latent_dim", "n_freq", "n_points", "fit_stride"):
        _need(getattr(cfg, k) >= 1, k, f"must be >= 1, got {getattr(cfg, k)}")
    for k in ("lr", "ft_lr", "ft_tol", "T", "dt", "ridge"):
        _need(getattr(cfg, k) > 0, k, f"must be > 0, got {getattr(cfg, k)}")
    _need(cfg.n_grid >= 8 and cfg.n_grid % 2 == 0, "n_grid", f"must be even and >= 8, got {cfg.n_grid}")
    _need(cfg.n_grid % cfg.fit_stride == 0, "fit_stride", f"must divide n_grid = {cfg.n_grid}, got {cfg.fit_stride}")
    _need(cfg.ft_mode in ("L", "LM"), "ft_mode", f"must be 'L' or 'LM', got {cfg.ft_mode!r}")
    _need(cfg.z_init in ("random", "pca"), "z_init", f"must be 'random' or 'pca', got {cfg.z_init!r}")
    allowed = ("ux", "uxx", "uxxx") if cfg.dim == 1 else ()
    bad = [s for s in cfg.sobolev if s not in allowed]
    _need(not bad, "sobolev", f"unknown derivative terms {bad} for a {cfg.dim}-D family; allowed: {list(allowed)}")
    _need(abs(round(cfg.T / cfg.dt) * cfg.dt - cfg.T) <= 1e-9 * cfg.T, "dt", f"T = {cfg.T} is not a multiple of dt = {cfg.dt}")
    _need(cfg.n_eval >= 2, "n_eval", f"need at least 2 evaluation times (t = 0 and T), got {cfg.n_eval}")
    for t in cfg.report_times:
        _need(0 <= t <= cfg.T, "report_times", f"{t} is outside [0, T = {cfg.T}]")
        _need(abs(round(t / cfg.dt) * cfg.dt - t) <= 1e-9 * max(cfg.T, 1), "report_times",
              f"{t} is not a multiple of dt = {cfg.dt}")
    if cfg.sparse is not None:
        _need(1 <= cfg.sparse <= cfg.p_evolved, "sparse",
              f"must be between 1 and the evolved parameters p = {cfg.p_evolved} (or dense), got {cfg.sparse}")
    bad = [a for a in cfg.arms if a not in ARMS]
    _need(not bad and "nearest" in cfg.arms, "arms", f"must include 'nearest' and come from {ARMS}, got {cfg.arms}")
    bad = [a for a in cfg.evolve_arms if a not in cfg.arms]
    _need(not bad and "nearest" in cfg.evolve_arms, "evolve_arms",
          f"must include 'nearest' and be among the arms {cfg.arms}, got {cfg.evolve_arms}")
    _need(cfg.dense_compare <= cfg.n_test, "dense_compare", f"at most n_test = {cfg.n_test}, got {cfg.dense_compare}")
    if cfg.sobolev:
        _need(cfg.fit_stride == 1, "sobolev", "derivative terms need the whole grid (fit_stride = 1)")
    from ..decoder import Decoder
    from ..engine import check_memory

    box = [(0.0, 1.0)] * cfg.dim
    try:
        check_memory(cfg.n_points ** cfg.dim, Decoder(box, 0 if cfg.fold else cfg.latent_dim, cfg.width, cfg.depth,
                                                      cfg.n_freq), cfg.sparse, torch.float64)
    except ValueError as e:
        raise ConfigError(f"n_points: {e}") from None
    return cfg
