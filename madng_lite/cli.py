"""Command line: ``python -m madng_lite run BENCH`` and ``report FILE...`` (book: Chapters 7-9, the benchmarks).

``run`` calls :func:`madng_lite.experiment.run_benchmark`, which chains the whole method on one family (:mod:`madng_lite.data`): pretrain the
auto-decoder on the training initial conditions (:func:`madng_lite.mad.pretrain`), fine-tune a
latent for each held-out sample from its nearest training latent (MAD-L by default), evolve the
decoder's weights with (sparse) Neural Galerkin (:class:`madng_lite.galerkin.NeuralGalerkin`), and
compare with the ground truth over time (:mod:`madng_lite.metrics`). It writes ``results.json``,
``figure.png`` and the pretrained model ``pretrained.pt`` (:mod:`madng_lite.io`) into ``--out``.
Full sizes follow METHOD.md section 2 (networks, latent sizes, T, s = 1500 except dense KdV);
``--quick`` (or ``MADNG_QUICK=1``) shrinks sizes only.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import __version__
from .experiment import BENCHMARKS, FULL, QUICK, BenchConfig, bench_config, run_benchmark  # noqa: F401


def report(files: list[str]) -> str:
    """A markdown table of the headline numbers of ``results.json`` files."""
    rows = ["| file | benchmark | quick | seed | update | p | pretrain rel. err. | fine-tune iters | "
            "MSE(T) median | MSE(T) p90 | rel. L2(T) mean | MAD-PINN MSE(T) | NG w/o meta MSE(T) | total s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in files:
        try:
            r = json.loads(Path(f).read_text())
            s = r["config"]["sparse"]
            iters = np.mean([smp["finetune_iters"] for smp in r["samples"]])
            b = r.get("baselines") or {}

            def _b(key: str) -> str:
                v = (b.get(key) or {}).get("mse_median")
                return "-" if not v or v[-1] is None else f"{v[-1]:.2e}"
            rows.append(f"| {f} | {r['benchmark']} | {r['quick']} | {r['seed']} | {'dense' if not s else f's={s}'} | "
                        f"{r['n_params']} | {r['pretrain']['mean_rel']:.2e} | {iters:.0f} | "
                        f"{_fmt(r.get('mse_final_median'))} | {_fmt(r.get('mse_final_p90'))} | "
                        f"{_fmt(r['rel_l2_final'])} | {_b('mad_pinn')} | {_b('ng')} | {r['timings']['total']:.1f} |")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{f}: not a madng-lite results.json ({type(e).__name__}: {e})") from e
    return "\n".join(rows)


def _overrides(items: list[str]) -> dict:
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k.strip():
            raise ValueError(f"--set expects FIELD=VALUE, got {it!r}")
        out[k.strip()] = v.strip()
    return out


def _fmt(v) -> str:
    return "diverged" if v is None else f"{v:.2e}"


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m madng_lite", description="MAD-NG for parametric PDEs")
    parser.add_argument("--version", action="version", version=f"madng-lite {__version__}")
    sub = parser.add_subparsers(dest="command")
    r = sub.add_parser("run", help="pretrain, fine-tune, evolve and score one benchmark")
    r.add_argument("benchmark", choices=BENCHMARKS)
    r.add_argument("--quick", action="store_true", help="small sizes (also MADNG_QUICK=1)")
    r.add_argument("--sparse", type=_sparse_arg, default=-1, metavar="S",
                   help="parameters updated per step: a positive integer, or 0 / 'dense' (default: the benchmark's)")
    r.add_argument("--device", default=None, help="cpu, cuda, cuda:0 ... (default: cuda if available)")
    r.add_argument("--out", default=None, help="output folder (default results/BENCH)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--stochastic", action="store_true", help="random PDE coefficient per sample")
    r.add_argument("--finetune", choices=("L", "LM"), default=None, help="MAD-L (latent) or MAD-LM (latent+weights)")
    r.add_argument("--ridge", type=float, default=None, help="relative ridge of the NG least squares")
    r.add_argument("--baselines", action="store_true", help="also run NG without meta-learning and MAD-PINN")
    r.add_argument("--n-test", type=int, default=None, help="number of held-out test samples")
    r.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a configuration field, e.g. --set n_train=60 (repeatable)")
    r.add_argument("--progress", action="store_true", help="show progress bars")
    p = sub.add_parser("report", help="markdown table of results.json files")
    p.add_argument("files", nargs="+")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "report":
            print(report(args.files))
            return 0
        if args.seed < 0:
            parser.error(f"--seed must be >= 0, got {args.seed}")
        res = run_benchmark(args.benchmark, quick=True if args.quick else None, sparse=args.sparse,
                            device=args.device, out=args.out, seed=args.seed, stochastic=args.stochastic,
                            ft_mode=args.finetune, ridge=args.ridge, progress=args.progress,
                            baselines=args.baselines, n_test=args.n_test, overrides=_overrides(args.set),
                            command=" ".join(["python -m madng_lite", *(sys.argv[1:] if argv is None else argv)]))
    except ValueError as e:
        print(f"python -m madng_lite: error: {e}", file=sys.stderr)
        return 2
    print(f"{res['benchmark']}: MSE(T={res['t_eval'][-1]:g}) median {res['mse_final_median']:.3e}, mean "
          f"{res['mse_final']:.3e}, rel. L2 = {res['rel_l2_final']:.3e}, total {res['timings']['total']:.1f} s -> {Path(res['figure']).parent}")
    return 0
