"""Neural Galerkin benchmark on the parent papers' anchors (issue: the NG engine).

Prints, per anchor: space-time relative L2 error against ground truth, wall time, time per RK4
step split into derivatives / Jacobian / solve, the sparse-vs-dense speedup per step, and the
achieved GFLOP/s of a dense step beside a plain matmul measured in the same run. Medians over
``--repeats`` runs (different seeds for the index draws). The initial-condition fit is timed
separately and excluded from the step timings.

    python benchmarks/ng_bench.py                 # all anchors, full size (about 30 min)
    python benchmarks/ng_bench.py --anchors rsng_ac --repeats 1 --horizon 0.5
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from madng_lite import __version__
from madng_lite.anchors import ANCHORS, fit_anchor, get_anchor, predict, space_time_rel_l2
from madng_lite.galerkin import NeuralGalerkin


def matmul_gflops(n: int, p: int, k: int, dtype=torch.float64, reps: int = 20) -> float:
    """GFLOP/s of ``A^T A``-like products (n x p) @ (p x k) in this process, median of ``reps``."""
    a = torch.randn(n, p, dtype=dtype)
    b = torch.randn(p, k, dtype=dtype)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t0)
    return 2 * n * p * k / statistics.median(ts) / 1e9


def dense_step_flops(n: int, p: int, stages: int = 4) -> float:
    """FLOPs of the least-squares part of one dense RK4 step (Gram product + Cholesky + solves)."""
    m = min(n, p)
    per_stage = 2.0 * n * p * m + m**3 / 3 + 4.0 * n * p
    return stages * per_stage


def run(anchor, dec, sparse, seed, T, ridge, progress, sampler="uniform"):
    ng = NeuralGalerkin(dec, anchor.pde, n_points=anchor.n_points, sparse=sparse, ridge=ridge, seed=seed,
                        sampler=sampler)
    t_eval = torch.tensor(anchor.t_eval(), dtype=torch.float64)
    t_eval = t_eval[t_eval < T - 1e-12]
    t_eval = torch.cat((t_eval, torch.tensor([T], dtype=torch.float64)))
    res = ng.evolve(dec.flat_theta(), T, anchor.dt, t_eval, progress=progress)
    return res


def timing_only(name: str, args) -> dict:
    """Per-step timings alone, on an untrained network of the anchor's shape (the cost of a step does
    not depend on the weights): ``--timing-steps`` steps per run, medians of ``--repeats`` runs."""
    from madng_lite.decoder import Decoder

    a = get_anchor(name)
    dec = Decoder(a.box, width=a.width, depth=a.depth, n_freq=a.n_freq, seed=args.seed)
    ridge = a.ridge if args.ridge is None else args.ridge
    T = a.dt * args.timing_steps
    out = {"anchor": name, "p": dec.n_params, "n": a.n_points, "dt": a.dt, "T": T, "timing_only": True,
           "fit": {"seconds": float("nan"), "rel_errors": {"u": float("nan")}}, "reference_seconds": float("nan"),
           "ridge": ridge, "rows": []}
    configs = [(a.sparse, smp) for smp in args.samplers] if a.sparse else []
    configs += [(int(s), "uniform") for s in args.extra_sparse.get(name, [])] + [(None, "uniform")]
    for s, sampler in configs:
        per_step, splits = [], []
        for r in range(args.repeats):
            res = run(a, dec, s, args.seed + r, T, ridge, False, sampler)
            per_step.append(res.seconds_per_step)
            splits.append({k: res.timings[k] / res.n_steps for k in ("derivatives", "jacobian", "solve")})
        out["rows"].append({"s": s or dec.n_params, "dense": s is None, "sampler": sampler if s else "-",
                            "rel_l2": None, "rel_l2_all": [], "ms_per_step": 1e3 * statistics.median(per_step),
                            "ms_per_step_all": [1e3 * v for v in per_step],
                            "split_ms": {k: 1e3 * statistics.median(sp[k] for sp in splits) for k in splits[0]},
                            "steps": res.n_steps})
        print(f"  {name} s={s or dec.n_params} ({sampler}): {out['rows'][-1]['ms_per_step']:.1f} ms/step", flush=True)
    _dense_stats(out, a, dec)
    return out


def _dense_stats(out: dict, a, dec) -> None:
    dense = next(r for r in out["rows"] if r["dense"])
    gf = matmul_gflops(a.n_points, dec.n_params, min(a.n_points, dec.n_params))
    flops = dense_step_flops(a.n_points, dec.n_params)
    out["matmul_gflops"] = gf
    out["dense_gflops"] = flops / (dense["ms_per_step"] / 1e3) / 1e9
    out["dense_vs_matmul_bound"] = (dense["ms_per_step"] / 1e3) / (flops / (gf * 1e9))
    for r in out["rows"]:
        r["speedup_vs_dense"] = dense["ms_per_step"] / r["ms_per_step"]


def bench_anchor(name: str, args) -> dict:
    a = get_anchor(name)
    T = round(a.T * args.horizon / a.dt) * a.dt
    ridge = a.ridge if args.ridge is None else args.ridge
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
        errs, per_step, splits = [], [], []
        for r in range(args.repeats if (full and s is not None) else 1):
            if full:
                res = run(a, dec, s, args.seed + r, T, ridge, args.progress, sampler)
                u = predict(dec, res.thetas, a.eval_grid())
                errs.append(space_time_rel_l2(u, ref[: len(u)]))
            else:  # dense timing on a short run only (its full horizon costs too much on a CPU)
                res = run(a, dec, s, args.seed + r, a.dt * args.dense_steps, ridge, False)
            per_step.append(res.seconds_per_step)
            splits.append({k: res.timings[k] / res.n_steps for k in ("derivatives", "jacobian", "solve")})
        row = {"s": s or dec.n_params, "dense": s is None, "sampler": sampler if s else "-",
               "rel_l2": statistics.median(errs) if errs else None, "rel_l2_all": errs,
               "ms_per_step": 1e3 * statistics.median(per_step),
               "split_ms": {k: 1e3 * statistics.median(sp[k] for sp in splits) for k in splits[0]},
               "steps": res.n_steps}
        out["rows"].append(row)
        print(f"  s={row['s']:5d} ({row['sampler']})  rel L2 {row['rel_l2'] if row['rel_l2'] is not None else float('nan'):.2e}  "
              f"{row['ms_per_step']:.1f} ms/step", flush=True)
    _dense_stats(out, a, dec)
    return out


def print_table(res: dict) -> None:
    print(f"\n{res['anchor']}: p = {res['p']}, n = {res['n']}, dt = {res['dt']:g}, T = {res['T']:g}; "
          + ("timings only (untrained network, no reference)" if res.get("timing_only") else
             f"IC fit {res['fit']['seconds']:.0f} s (rel. error of u {res['fit']['rel_errors']['u']:.1e}); "
             f"reference {res['reference_seconds']:.1f} s"))
    print(f"| {'s':>5} | {'sampler':>8} | {'rel L2 (space-time)':>19} | {'ms/step':>8} | {'derivs':>7} | {'Jacobian':>8} | "
          f"{'solve':>7} | {'speedup':>7} |")
    print("|" + "|".join("-" * w for w in (7, 10, 21, 10, 9, 10, 9, 9)) + "|")
    for r in res["rows"]:
        e = f"{r['rel_l2']:.2e}" if r["rel_l2"] is not None else "(timing only)"
        sp = r["split_ms"]
        print(f"| {r['s']:>5} | {r['sampler']:>8} | {e:>19} | {r['ms_per_step']:8.1f} | {sp['derivatives']:7.1f} | "
              f"{sp['jacobian']:8.1f} | {sp['solve']:7.1f} | {r['speedup_vs_dense']:6.1f}x |")
    print(f"dense step: {res['dense_gflops']:.1f} GFLOP/s achieved vs {res['matmul_gflops']:.1f} GFLOP/s plain "
          f"matmul of the same shape: {res['dense_vs_matmul_bound']:.2f}x the matmul-bound time")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--anchors", nargs="+", default=list(ANCHORS), choices=list(ANCHORS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--horizon", type=float, default=1.0, help="fraction of each anchor's T to integrate")
    ap.add_argument("--ridge", type=float, default=None, help="override the anchor's ridge")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dense-steps", type=int, default=10, help="steps of the dense timing-only runs")
    ap.add_argument("--dense-full", action="store_true", help="run dense over the full horizon too")
    ap.add_argument("--dense-timing-only", action="store_true", help="never run dense over the full horizon")
    ap.add_argument("--kdv-sparse", type=int, nargs="*", default=[], help="sparse sizes to try on ng_kdv")
    ap.add_argument("--samplers", nargs="+", default=["uniform", "colnorm"], choices=["uniform", "colnorm"])
    ap.add_argument("--timing-steps", type=int, default=0,
                    help="if > 0: timings only, this many steps per run, no fit and no reference")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("results/ng_bench.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.extra_sparse = {"ng_kdv": args.kdv_sparse}
    results = []
    meta = {"madng_lite": __version__, "torch": torch.__version__, "threads": args.threads,
            "machine": platform.processor() or platform.machine(), "argv": vars(args) | {"out": str(args.out)}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.anchors:
        results.append(timing_only(name, args) if args.timing_steps else bench_anchor(name, args))
        args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))
    for r in results:
        print_table(r)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
