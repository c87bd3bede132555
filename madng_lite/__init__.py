"""madng-lite: MAD-NG (Meta-Auto-Decoder Neural Galerkin) for parametric PDEs.

A compact PyTorch library that goes with the madng-lite book; each module names the chapter
that derives it.
"""
__version__ = "0.1.0"

from . import (  # noqa: E402
    config, data, decoder, derivatives, embedding, fit, fitting, galerkin, io, mad, manifold, metrics, pdes,
    points, reference, solve, sparse,
)
from .config import quick_mode, set_seed, setup, size  # noqa: E402

__all__ = ["__version__", "quick_mode", "set_seed", "setup", "size", "config", "data", "decoder", "derivatives",
           "embedding", "fit", "fitting", "galerkin", "io", "mad", "manifold", "metrics", "pdes", "points",
           "reference", "solve", "sparse"]
