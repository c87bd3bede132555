"""Run-wide settings: quick mode, seeds, default device and dtype.

Quick mode (``MADNG_QUICK=1``) shrinks problem *sizes* (points, iterations, samples, time
horizon) so that every notebook and the CLI run in seconds; it never changes a code path.
This module is the one place that reads the environment variable (book: Introduction).
"""
from __future__ import annotations

import os
import random
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T", int, float)

_TRUE = {"1", "true", "yes", "on"}


def quick_mode() -> bool:
    """Return True when ``MADNG_QUICK`` is set to 1/true/yes/on."""
    return os.environ.get("MADNG_QUICK", "0").strip().lower() in _TRUE


def size(full: T, quick: T) -> T:
    """Pick the full-size value, or the quick one in quick mode.

    >>> size(10_000, 200)  # 200 under MADNG_QUICK=1
    10000
    """
    return quick if quick_mode() else full


def set_seed(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded with ``seed``."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn ``None`` / a string into a device, with a clear error for an absent GPU."""
    if device is None:
        return default_device()
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available here")
    return dev


def environment() -> dict[str, str]:
    """A short description of the software and hardware, for notebooks and result files."""
    import platform

    from . import __version__

    dev = default_device()
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else platform.processor() or "cpu"
    return {
        "madng_lite": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "device": f"{dev.type} ({name})",
        "threads": str(torch.get_num_threads()),
        "quick_mode": str(quick_mode()),
    }


def setup(seed: int = 0, threads: int | None = None, verbose: bool = True) -> torch.Generator:
    """The first cell of every chapter: seed everything, fix torch's thread count, report versions.

    Returns the seeded generator of :func:`set_seed`.
    """
    if threads is not None:
        torch.set_num_threads(int(threads))
    g = set_seed(seed)
    if verbose:
        env = environment()
        print(" | ".join(f"{k} {v}" for k, v in env.items()) + f" | seed {seed}")
        if env["device"].startswith("cpu"):
            print("No GPU found: everything runs on the CPU (in Colab: Runtime > Change runtime type > GPU).")
    return g
