"""Command line: ``python -m madng_lite run BENCH`` and ``report FILE...`` (book: Chapter 10).

A thin layer over :func:`madng_lite.pipeline.run_benchmark` (the stages of a run) and
:func:`madng_lite.pipeline.report` (the table of results files). Every mistake a user can make
(a bad flag or ``--set`` value, an output folder that is a file, not writable or in use, a
damaged or foreign checkpoint, a results file without a field) ends with a one-line error and
exit code 2, before any work where it can be checked beforehand; never with a traceback.
"""
from __future__ import annotations

import argparse
import sys

from . import __version__
from .io import CheckpointError
from .pipeline import BENCHMARKS, ConfigError, ProvenanceError, ReportError, RunDirError, report, run_benchmark

__all__ = ["build_parser", "main", "report"]

_KEEP = object()   # --sparse not given: the benchmark's own s
USER_ERRORS = (ValueError, CheckpointError, ConfigError, ProvenanceError, ReportError, RunDirError, OSError)


def _overrides(items: list[str]) -> dict:
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k.strip():
            raise ConfigError(f"--set expects FIELD=VALUE, got {it!r}")
        out[k.strip()] = v.strip()
    return out


def _sparse_arg(text: str) -> int | None:
    if text.strip().lower() == "dense":
        return None
    try:
        s = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer or 'dense', got {text!r}") from None
    if s < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0: dense), got {s}")
    return s or None


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m madng_lite``: ``--version`` and the commands ``run`` and ``report``."""
    parser = argparse.ArgumentParser(prog="python -m madng_lite", description="MAD-NG for parametric PDEs")
    parser.add_argument("--version", action="version", version=f"madng-lite {__version__}")
    sub = parser.add_subparsers(dest="command")
    r = sub.add_parser("run", help="pretrain, fine-tune, evolve and score one benchmark")
    r.add_argument("benchmark", choices=BENCHMARKS)
    r.add_argument("--quick", action="store_true", help="small sizes (also MADNG_QUICK=1)")
    r.add_argument("--split", choices=("test", "val"), default="test",
                   help="score the test samples (default) or the validation samples (to choose settings)")
    r.add_argument("--sparse", type=_sparse_arg, default=_KEEP, metavar="S",
                   help="parameters updated per step: a positive integer, or 0 / 'dense' (default: the benchmark's)")
    r.add_argument("--device", default=None, help="cpu, cuda, cuda:0 ... (default: cuda if available)")
    r.add_argument("--out", default=None, help="output folder (default results/BENCH)")
    r.add_argument("--seed", type=_nonneg_int, default=0)
    r.add_argument("--stochastic", action="store_true", help="random PDE coefficient per sample")
    r.add_argument("--finetune", choices=("L", "LM"), default=None, help="MAD-L (latent) or MAD-LM (latent+weights)")
    r.add_argument("--ridge", type=float, default=None, help="relative ridge of the NG least squares")
    r.add_argument("--baselines", action="store_true", help="also run MAD-PINN")
    r.add_argument("--n-test", type=int, default=None, help="number of held-out test samples")
    r.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a configuration field, e.g. --set n_train=60 (repeatable)")
    r.add_argument("--allow-dirty", action="store_true",
                   help="allow a full-size run from uncommitted code (its results say '+dirty')")
    r.add_argument("--progress", action="store_true", help="show progress bars")
    p = sub.add_parser("report", help="markdown table of results.json files")
    p.add_argument("files", nargs="+")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``); returns the exit code, 0 or 2 (a user's mistake)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "report":
            print(report(args.files))
            return 0
        sparse = "default" if args.sparse is _KEEP else args.sparse
        res = run_benchmark(args.benchmark, quick=True if args.quick else None, sparse=sparse,
                            device=args.device, out=args.out, seed=args.seed, stochastic=args.stochastic,
                            ft_mode=args.finetune, ridge=args.ridge, progress=args.progress,
                            baselines=args.baselines, n_test=args.n_test, overrides=_overrides(args.set),
                            split=args.split, allow_dirty=args.allow_dirty,
                            command=" ".join(["python -m madng_lite", *(sys.argv[1:] if argv is None else argv)]))
    except USER_ERRORS as e:
        msg = " ".join(str(e).split())   # one line
        print(f"python -m madng_lite: error: {msg}", file=sys.stderr)
        return 2
    t, fmt = res["t_eval"][-1], lambda v: "inf (diverged)" if v is None else f"{v:.3e}"  # noqa: E731
    print(f"{res['benchmark']} ({res['split']}): MSE(T={t:g}) median {fmt(res['mse_final_median'])}, p90 "
          f"{fmt(res['mse_final_p90'])}, {res['n_diverged']} diverged, total {res['timings']['wall']:.1f} s")
    return 0
