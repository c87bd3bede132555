"""Neural Galerkin benchmark on the parent papers' anchors (issues: the NG engine; engine speed).

Prints, per anchor: space-time relative L2 error against ground truth, wall time, time per RK4
step split into derivatives / Jacobian / solve, the sparse-vs-dense speedup per step, and the
achieved GFLOP/s of a dense step beside a plain matmul measured in the same run. Medians over
``--repeats`` runs (different seeds for the index draws). The initial-condition fit is timed
separately and excluded from the step timings.

Each configuration runs with every engine of ``--engines`` (``fused``: the fused derivative pass,
the default of :class:`~madng_lite.derivatives.FastMLP`; ``reference``: the pass before it,
``FastMLP(dec, fused=False)``), the engines alternating repeat by repeat so that both see the same
machine load, and with every thread count of ``--threads``. A timing row also gives the arithmetic
floor of the step: the FLOPs of its matrix products (:func:`step_flops`) at the best rate of a
plain matmul of the step's Gram shape timed in the same run. The JSON records the threads, the load
average at start and end and the command.

    python benchmarks/ng_bench.py                 # all anchors, full size (about 30 min)
    python benchmarks/ng_bench.py --anchors rsng_ac --repeats 1 --horizon 0.5
    python benchmarks/ng_bench.py --anchors rsng_ac rsng_burgers --timing-steps 40 --threads 1 2 \\
        --out results/speed_ng_timing.json   # timings only, both engines, 1 and 2 threads
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from madng_lite import __version__
from madng_lite.anchors import ANCHORS, fit_anchor, get_anchor, predict, space_time_rel_l2
from madng_lite.decoder import Decoder
from madng_lite.derivatives import FastMLP, max_order
from madng_lite.galerkin import NeuralGalerkin

ENGINES = ("fused", "reference")


def matmul_gflops(n: int, p: int, k: int, dtype=torch.float64, reps: int = 20, best: bool = False) -> float:
    """GFLOP/s of ``A^T A``-like products (n x p) @ (p x k) in this process: the median of ``reps``
    timings, or their best (``best=True``, for a floor: what the machine can do at its quietest)."""
    a = torch.randn(n, p, dtype=dtype)
    b = torch.randn(p, k, dtype=dtype)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t0)
    return 2 * n * p * k / (min(ts) if best else statistics.median(ts)) / 1e9


def gram_shape(n: int, s: int) -> tuple[int, int, int]:
    """The matmul of the least-squares solve: ``A^T A`` (s x n x s), or ``A A^T`` when ``s > n``."""
    return (s, n, s) if s <= n else (n, s, n)


def dense_step_flops(n: int, p: int, stages: int = 4) -> float:
    """FLOPs of the least-squares part of one dense RK4 step (Gram product + Cholesky + solves)."""
    m = min(n, p)
    per_stage = 2.0 * n * p * m + m**3 / 3 + 4.0 * n * p
    return stages * per_stage


def step_flops(dec: Decoder, n: int, s: int, order: int, stages: int = 4) -> float:
    """FLOPs of the matrix products of one RK step, the arithmetic floor (book: Making it fast).

    Per stage: the forward products of every layer, ``[W | b] @ [h; 1]`` on the values and
    ``W @ [h_x | ...]`` on the ``order d`` derivative streams (which the latent does not reach), the
    backward products ``W^T g``, the ``s`` Jacobian columns (``n s``), the Gram matrix, the
    right-hand side, the Cholesky factorisation and its two triangular solves. Elementwise work
    (activations, Faa di Bruno products) is left out: the floor is a lower bound.
    """
    m, F = order * dec.dim, dec.embedding.out_features
    fwd = sum(2.0 * lin.out_features * n * (lin.in_features + 1 + m * (F if l == 0 else lin.in_features))
              for l, lin in enumerate(dec.layers))
    bwd = sum(2.0 * lin.out_features * lin.in_features * n for lin in dec.layers[1:])
    m = min(n, s)
    solve = n * s + 2.0 * n * s * m + m**3 / 3 + 2.0 * n * s + 2.0 * m**2
    return stages * (fwd + bwd + solve)


def dual_step_flops(dec: Decoder, n: int, order: int, stages: int = 4) -> float:
    """FLOPs of the matrix products of one dense RK step in the dual form without ``J`` (the fused
    engine when ``p > n``; book: Making it fast): the forward and backward products, per layer the
    ``n x n`` products ``G_l^T G_l`` and ``H_l^T H_l`` (the output layer's ``G`` is a row of ones), the
    Cholesky factorisation, its two solves and ``J^T y`` (``2 n p``)."""
    m, F = order * dec.dim, dec.embedding.out_features
    fwd = sum(2.0 * lin.out_features * n * (lin.in_features + 1 + m * (F if l == 0 else lin.in_features))
              for l, lin in enumerate(dec.layers))
    bwd = sum(2.0 * lin.out_features * lin.in_features * n for lin in dec.layers[1:])
    gram = sum(2.0 * n * n * ((lin.out_features if l < len(dec.layers) - 1 else 0) + lin.in_features + 1)
               for l, lin in enumerate(dec.layers))
    return stages * (fwd + bwd + gram + n**3 / 3 + 2.0 * n**2 + 2.0 * n * dec.n_params)


def run(anchor, dec, sparse, seed, T, ridge, progress, sampler="uniform", engine="fused"):
    ng = NeuralGalerkin(dec, anchor.pde, n_points=anchor.n_points, sparse=sparse, ridge=ridge, seed=seed,
                        sampler=sampler)
    ng.engine = FastMLP(dec, fused=engine == "fused")
    t_eval = torch.tensor(anchor.t_eval(), dtype=torch.float64)
    t_eval = t_eval[t_eval < T - 1e-12]
    t_eval = torch.cat((t_eval, torch.tensor([T], dtype=torch.float64)))
    res = ng.evolve(dec.flat_theta(), T, anchor.dt, t_eval, progress=progress)
    return res


def _alternating(engines: list[str], r: int) -> list[str]:
    """Engines in turn, the order reversed every other repeat (neither always runs first)."""
    return list(engines) if r % 2 == 0 else list(reversed(engines))


def _timing_row(s, dense, sampler, engine, threads, per_step, splits, steps) -> dict:
    ms = [1e3 * v for v in per_step]
    med = statistics.median(ms)
    return {"s": s, "dense": dense, "sampler": sampler, "engine": engine, "threads": threads,
            "rel_l2": None, "rel_l2_all": [], "ms_per_step": med, "ms_per_step_all": ms,
            "spread": (max(ms) - min(ms)) / med,
            "split_ms": {k: 1e3 * statistics.median(sp[k] for sp in splits) for k in splits[0]}, "steps": steps}


def _add_floor(row: dict, a, dec) -> None:
    """FLOP floor of the row's step at the best rate of a matmul of its Gram shape, timed now: of the
    algorithm the row ran (the fused engine's dense step with ``p > n`` never forms ``J``)."""
    gf = matmul_gflops(*gram_shape(a.n_points, row["s"]), best=True)
    order = max_order(a.pde.requires, dec.dim)
    dual = row["dense"] and row["engine"] == "fused" and a.n_points < dec.n_params
    row["floor_kind"] = "dual, no J" if dual else "J"
    row["flops_per_step"] = (dual_step_flops(dec, a.n_points, order) if dual
                             else step_flops(dec, a.n_points, row["s"], order))
    row["gram_matmul_gflops"] = gf
    row["floor_ms"] = 1e3 * row["flops_per_step"] / (gf * 1e9)
    row["floor_ratio"] = row["ms_per_step"] / row["floor_ms"]


def timing_only(name: str, args) -> dict:
    """Per-step timings alone, on an untrained network of the anchor's shape (the cost of a step does
    not depend on the weights): ``--timing-steps`` steps per sparse run and ``--dense-steps`` per
    dense run, medians of ``--repeats`` runs, for every engine and thread count."""
    a = get_anchor(name)
    dec = Decoder(a.box, width=a.width, depth=a.depth, n_freq=a.n_freq, seed=args.seed)
    ridge = a.ridge if args.ridge is None else args.ridge
    out = {"anchor": name, "p": dec.n_params, "n": a.n_points, "dt": a.dt, "timing_only": True,
           "fit": {"seconds": float("nan"), "rel_errors": {"u": float("nan")}}, "reference_seconds": float("nan"),
           "ridge": ridge, "rows": [], "dense_stats": []}
    configs = [(a.sparse, smp) for smp in args.samplers] if a.sparse else []
    configs += [(int(s), "uniform") for s in args.extra_sparse.get(name, [])] + [(None, "uniform")]
    for threads in args.threads:
        torch.set_num_threads(threads)
        for s, sampler in configs:
            steps = args.timing_steps if s else args.dense_steps
            per_step = {e: [] for e in args.engines}
            splits = {e: [] for e in args.engines}
            for r in range(args.repeats):
                for e in _alternating(args.engines, r):
                    res = run(a, dec, s, args.seed + r, a.dt * steps, ridge, False, sampler, e)
                    per_step[e].append(res.seconds_per_step)
                    splits[e].append({k: res.timings[k] / res.n_steps for k in ("derivatives", "jacobian", "solve")})
            for e in args.engines:
                row = _timing_row(s or dec.n_params, s is None, sampler if s else "-", e, threads, per_step[e],
                                  splits[e], steps)
                _add_floor(row, a, dec)
                out["rows"].append(row)
                print(f"  {name} s={row['s']} ({row['sampler']}) {e:9s} {threads} thread(s): "
                      f"{row['ms_per_step']:.1f} ms/step (spread {100 * row['spread']:.0f} %), "
                      f"{row['floor_ratio']:.1f}x the FLOP floor", flush=True)
        for e in args.engines:
            _dense_stats(out, a, dec, e, threads)
    _compare(out)
    return out


def _dense_stats(out: dict, a, dec, engine: str = "fused", threads: int | None = None) -> None:
    rows = [r for r in out["rows"] if r.get("engine", engine) == engine and r.get("threads", threads) == threads]
    dense = next(r for r in rows if r["dense"])
    gf = matmul_gflops(a.n_points, dec.n_params, min(a.n_points, dec.n_params))
    flops = dense_step_flops(a.n_points, dec.n_params)
    stats = {"engine": engine, "threads": threads, "matmul_gflops": gf,
             "dense_gflops": flops / (dense["ms_per_step"] / 1e3) / 1e9,
             "dense_vs_matmul_bound": (dense["ms_per_step"] / 1e3) / (flops / (gf * 1e9))}
    out.setdefault("dense_stats", []).append(stats)
    out.update({k: stats[k] for k in ("matmul_gflops", "dense_gflops", "dense_vs_matmul_bound")})
    for r in rows:
        r["speedup_vs_dense"] = dense["ms_per_step"] / r["ms_per_step"]


def _compare(out: dict) -> None:
    """Fused against reference (same run, same threads) and 1 against 2 threads (same engine)."""
    rows = out["rows"]
    key = lambda r: (r["s"], r["sampler"])  # noqa: E731
    for r in rows:
        ref = [q for q in rows if key(q) == key(r) and q["threads"] == r["threads"] and q["engine"] == "reference"]
        if r["engine"] == "fused" and ref:
            r["speedup_vs_reference"] = ref[0]["ms_per_step"] / r["ms_per_step"]
        same = [q for q in rows if key(q) == key(r) and q["engine"] == r["engine"]]
        r["best_threads"] = min(same, key=lambda q: q["ms_per_step"])["threads"]


def bench_anchor(name: str, args) -> dict:
    a = get_anchor(name)
    T = round(a.T * args.horizon / a.dt) * a.dt
    ridge = a.ridge if args.ridge is None else args.ridge
    threads = args.threads[0]
    torch.set_num_threads(threads)
    print(f"\n=== {name}: {a.pde}  box {a.box}  T {T:g}  dt {a.dt:g}  n {a.n_points} ===", flush=True)
    t0 = time.perf_counter()
    dec, fit = fit_anchor(a, seed=args.seed, progress=args.progress)
    print(f"fit: p = {dec.n_params}, rel. errors {({k: f'{v:.2e}' for k, v in fit.rel_errors.items()})}, "
          f"{fit.seconds:.1f} s", flush=True)
    t1 = time.perf_counter()
    ref = a.reference()
    t_ref = time.perf_counter() - t1
    n_t = int(np.sum(a.t_eval() <= T + 1e-12))
    ref = ref[:n_t]
    out = {"anchor": name, "p": dec.n_params, "n": a.n_points, "dt": a.dt, "T": T, "fit": fit.__dict__,
           "reference_seconds": t_ref, "ridge": ridge, "rows": []}
    sparse_list = [(a.sparse, smp) for smp in args.samplers] if a.sparse else []
    sparse_list += [(int(s), "uniform") for s in args.extra_sparse.get(name, [])]
    for s, sampler in sparse_list + [(None, "uniform")]:
        full = s is not None or args.dense_full or (a.sparse is None and not args.dense_timing_only)
        errs = {e: [] for e in args.engines}
        per_step = {e: [] for e in args.engines}
        splits = {e: [] for e in args.engines}
        for r in range(args.repeats if (full and s is not None) else 1):
            for e in _alternating(args.engines, r):
                if full:
                    res = run(a, dec, s, args.seed + r, T, ridge, args.progress, sampler, e)
                    u = predict(dec, res.thetas, a.eval_grid())
                    errs[e].append(space_time_rel_l2(u, ref[: len(u)]))
                else:  # dense timing on a short run only (its full horizon costs too much on a CPU)
                    res = run(a, dec, s, args.seed + r, a.dt * args.dense_steps, ridge, False, engine=e)
                per_step[e].append(res.seconds_per_step)
                splits[e].append({k: res.timings[k] / res.n_steps for k in ("derivatives", "jacobian", "solve")})
        for e in args.engines:
            row = _timing_row(s or dec.n_params, s is None, sampler if s else "-", e, threads, per_step[e],
                              splits[e], res.n_steps)
            row["rel_l2"] = statistics.median(errs[e]) if errs[e] else None
            row["rel_l2_all"] = errs[e]
            _add_floor(row, a, dec)
            out["rows"].append(row)
            print(f"  s={row['s']:5d} ({row['sampler']}) {e:9s} rel L2 "
                  f"{row['rel_l2'] if row['rel_l2'] is not None else float('nan'):.2e}  "
                  f"{row['ms_per_step']:.1f} ms/step", flush=True)
    for e in args.engines:
        _dense_stats(out, a, dec, e, threads)
    _compare(out)
    return out


def print_table(res: dict) -> None:
    print(f"\n{res['anchor']}: p = {res['p']}, n = {res['n']}, dt = {res['dt']:g}; "
          + ("timings only (untrained network, no reference)" if res.get("timing_only") else
             f"T = {res['T']:g}, IC fit {res['fit']['seconds']:.0f} s (rel. error of u "
             f"{res['fit']['rel_errors']['u']:.1e}); reference {res['reference_seconds']:.1f} s"))
    print(f"| {'s':>5} | {'sampler':>8} | {'engine':>9} | thr | {'rel L2':>9} | {'ms/step':>8} | spread | "
          f"{'derivs':>7} | {'Jacobian':>8} | {'solve':>7} | floor x | vs ref | vs dense |")
    print("|" + "|".join("-" * w for w in (7, 10, 11, 5, 11, 10, 8, 9, 10, 9, 9, 8, 10)) + "|")
    for r in res["rows"]:
        e = f"{r['rel_l2']:.2e}" if r["rel_l2"] is not None else "-"
        sp = r["split_ms"]
        floor = f"{r['floor_ratio']:6.1f}x" if "floor_ratio" in r else "-"
        vs_ref = f"{r['speedup_vs_reference']:5.2f}x" if "speedup_vs_reference" in r else "-"
        print(f"| {r['s']:>5} | {r['sampler']:>8} | {r['engine']:>9} | {r['threads']:>3} | {e:>9} | "
              f"{r['ms_per_step']:8.1f} | {100 * r['spread']:5.0f}% | {sp['derivatives']:7.1f} | "
              f"{sp['jacobian']:8.1f} | {sp['solve']:7.1f} | {floor:>7} | {vs_ref:>6} | {r['speedup_vs_dense']:7.1f}x |")
    for st in res["dense_stats"]:
        print(f"dense step ({st['engine']}, {st['threads']} thread(s)): {st['dense_gflops']:.1f} GFLOP/s of a solve "
              f"that forms J (effective, for an engine that does not) vs {st['matmul_gflops']:.1f} GFLOP/s plain "
              f"matmul of the same shape: {st['dense_vs_matmul_bound']:.2f}x the matmul-bound time")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--anchors", nargs="+", default=list(ANCHORS), choices=list(ANCHORS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--horizon", type=float, default=1.0, help="fraction of each anchor's T to integrate")
    ap.add_argument("--ridge", type=float, default=None, help="override the anchor's ridge")
    ap.add_argument("--threads", type=int, nargs="+", default=[1],
                    help="torch thread counts (timing mode: each in turn; full runs: the first)")
    ap.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    ap.add_argument("--dense-steps", type=int, default=10, help="steps of the dense timing runs")
    ap.add_argument("--dense-full", action="store_true", help="run dense over the full horizon too")
    ap.add_argument("--dense-timing-only", action="store_true", help="never run dense over the full horizon")
    ap.add_argument("--kdv-sparse", type=int, nargs="*", default=[], help="sparse sizes to try on ng_kdv")
    ap.add_argument("--samplers", nargs="+", default=["uniform", "colnorm"], choices=["uniform", "colnorm"])
    ap.add_argument("--timing-steps", type=int, default=0,
                    help="if > 0: timings only, this many steps per sparse run, no fit and no reference")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("results/ng_bench.json"))
    args = ap.parse_args()
    args.extra_sparse = {"ng_kdv": args.kdv_sparse}
    results = []
    meta = {"madng_lite": __version__, "torch": torch.__version__, "threads": args.threads,
            "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "argv": vars(args) | {"out": str(args.out)},
            "command": "python benchmarks/ng_bench.py " + " ".join(sys.argv[1:]),
            "loadavg_start": os.getloadavg()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.anchors:
        results.append(timing_only(name, args) if args.timing_steps else bench_anchor(name, args))
        meta["loadavg_end"] = os.getloadavg()
        args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))
    for r in results:
        print_table(r)
    print(f"\nload average at start {meta['loadavg_start']}, at end {meta['loadavg_end']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
