"""What every stage of a run reads: configuration, data, splits, truth, output folder (book: Chapter 10)."""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data import Family, make_family
from ..io import digest
from .config import RunConfig, eval_times
from .rundir import RunDir

__all__ = ["Context", "make_context", "git_commit", "SPLITS"]

SPLITS = ("val", "test")


@dataclass
class Context:
    """The state shared by the stages of one run."""

    cfg: RunConfig
    rd: RunDir
    seed: int
    stochastic: bool
    split: str
    device: torch.device
    progress: bool
    fam: Family                # every sample: train, then validation, then test
    splits: dict[str, list[int]]
    t_eval: np.ndarray
    fit_idx: Tensor            # the grid points pretraining and fits see
    commit: str | None
    settings: dict = field(default_factory=dict)   # the resume key of every state file of the run
    truths: np.ndarray | None = None               # (n_scored, n_eval, n)
    t_start: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.train: Family = self.fam.subset(self.splits["train"])
        self.scored: Family = self.fam.subset(self.splits[self.split])

    @property
    def x(self) -> Tensor:
        return self.fam.x.to(self.device)

    @property
    def x_fit(self) -> Tensor:
        return self.fam.x[self.fit_idx].to(self.device)


def fit_index(n_grid: int, dim: int, stride: int) -> Tensor:
    """Indices of the grid points on every ``stride``-th grid line per dimension ('ij' order)."""
    keep = torch.arange(n_grid) % stride == 0
    mesh = torch.meshgrid(*([keep] * dim), indexing="ij")
    return torch.stack(mesh).all(dim=0).reshape(-1).nonzero()[:, 0]


def make_context(cfg: RunConfig, rd: RunDir, seed: int, stochastic: bool, split: str, device: torch.device,
                 progress: bool, commit: str | None) -> Context:
    """Draw the family (train, validation and test samples from one seed) and the run's resume key."""
    from .. import __version__

    n = cfg.n_train + cfg.n_val + cfg.n_test
    fam = make_family(cfg.name, n, seed=seed, n_grid=cfg.n_grid, stochastic=stochastic, T=cfg.T)
    a, b = cfg.n_train, cfg.n_train + cfg.n_val
    splits = {"train": list(range(a)), "val": list(range(a, b)), "test": list(range(b, n))}
    if not splits[split]:
        raise ValueError(f"--split {split}: the configuration has no {split} samples (n_{split} = 0)")
    ctx = Context(cfg, rd, seed, stochastic, split, device, progress, fam, splits, np.array(eval_times(cfg)),
                  fit_index(cfg.n_grid, fam.dim, cfg.fit_stride), commit)
    # the MAD-PINN settings decide only the baselines stage, which keys its own state on them
    # (z_init only when not the default: the runs made before it existed keep their key)
    core = {k: v for k, v in cfg.as_dict().items()
            if not k.startswith("pinn_") and k != "n_baseline" and not (k == "z_init" and v == "random")}
    ctx.settings = {"config": core, "seed": seed, "stochastic": stochastic, "split": split,
                    "package": __version__, "threads": torch.get_num_threads(), "device": device.type,
                    "data": digest(fam.U0)}
    return ctx


def git_commit() -> str | None:
    """The commit of the repository the package runs from, if any (``+dirty``: the package's own files differ)."""
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "madng_lite"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
