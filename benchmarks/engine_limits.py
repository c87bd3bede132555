"""What stands between the fused sparse step and twice the reference's speed (book: Making it fast).

On each RSNG anchor (one thread, an untrained network of the anchor's shape, ``--steps`` RK4 steps,
median of ``--repeats`` runs, the two engines alternating), this script measures:

* the step of both engines and its split (derivatives / Jacobian columns / solve), and what a 2x
  speed-up would need: the fused step's derivative and Jacobian time must fall to
  ``reference step / 2 - fused solve``;
* the least-squares solve's pieces at the anchor's shape ``(n, s)``: the Gram product ``A^T A``
  (torch matmul, and the BLAS ``syrk`` that computes half of it, through SciPy), the Cholesky
  factorisation and the triangular solves (torch, and SciPy's LAPACK);
* one fused hidden layer (the two products, the activation and the derivative streams) in eager
  torch and compiled by ``torch.compile`` (when a compiler is present): time per call and compile
  time.

    OMP_NUM_THREADS=1 python benchmarks/engine_limits.py --out results/engine_limits.json
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

import torch

from madng_lite.anchors import get_anchor
from madng_lite.decoder import Decoder
from madng_lite.derivatives import FastMLP
from madng_lite.galerkin import NeuralGalerkin


def _median_us(fn, reps: int = 200, warm: int = 10) -> float:
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(ts)


def step_split(name: str, steps: int, repeats: int) -> dict:
    a = get_anchor(name)
    dec = Decoder(a.box, width=a.width, depth=a.depth, n_freq=a.n_freq, seed=0)
    res: dict[str, list] = {"fused": [], "reference": []}
    for r in range(repeats):
        for e in (("fused", "reference") if r % 2 == 0 else ("reference", "fused")):
            ng = NeuralGalerkin(dec, a.pde, n_points=a.n_points, sparse=a.sparse, ridge=a.ridge, seed=r)
            ng.engine = FastMLP(dec, fused=e == "fused")
            t = torch.tensor([0.0, steps * a.dt], dtype=torch.float64)
            out = ng.evolve(dec.flat_theta(), steps * a.dt, a.dt, t, progress=False)
            res[e].append({"step": out.seconds_per_step,
                           **{k: out.timings[k] / out.n_steps for k in ("derivatives", "jacobian", "solve")}})
    med = {e: {k: 1e3 * statistics.median(v[k] for v in runs) for k in runs[0]} for e, runs in res.items()}
    f, ref = med["fused"], med["reference"]
    need = ref["step"] / 2 - f["solve"]
    return {"anchor": name, "n": a.n_points, "s": a.sparse, "p": dec.n_params, "width": a.width, "depth": a.depth,
            "ms": med, "speedup": ref["step"] / f["step"],
            "needed_derivs_jac_ms_for_2x": need, "fused_derivs_jac_ms": f["derivatives"] + f["jacobian"],
            "needed_derivs_jac_speedup_for_2x": (f["derivatives"] + f["jacobian"]) / need if need > 0 else None}


def solve_pieces(n: int, s: int) -> dict:
    AT = torch.randn(s, n, dtype=torch.float64)
    A = AT.T
    M = A.T @ A
    M.diagonal().add_(1e-8 * float(M.diagonal().mean()))
    rhs = torch.randn(s, 1, dtype=torch.float64)
    L = torch.linalg.cholesky(M)
    out = {"n": n, "s": s, "gram_gflop": 2 * n * s * s / 1e9,
           "gram_torch_us": _median_us(lambda: A.T @ A),
           "cholesky_torch_us": _median_us(lambda: torch.linalg.cholesky_ex(M)),
           "cholesky_solve_torch_us": _median_us(lambda: torch.cholesky_solve(rhs, L))}
    out["gram_torch_gflops"] = out["gram_gflop"] / out["gram_torch_us"] * 1e6
    try:
        from scipy.linalg import cho_factor, cho_solve
        from scipy.linalg.blas import dsyrk
        F, Mn, r = AT.numpy().T, M.numpy(), rhs.numpy()
        c = cho_factor(Mn, lower=True)
        out.update({"gram_syrk_us": _median_us(lambda: dsyrk(1.0, F, trans=1)),
                    "cholesky_scipy_us": _median_us(lambda: cho_factor(Mn, lower=True, check_finite=False)),
                    "cholesky_solve_scipy_us": _median_us(lambda: cho_solve(c, r, check_finite=False))})
    except ImportError as err:   # SciPy is a dependency; say so if it is missing rather than fail
        out["scipy_error"] = str(err)
    return out


def fused_layer(width: int, n: int, streams: int) -> dict:
    W = torch.randn(width, width + 1, dtype=torch.float64) / width**0.5
    Wd = W[:, :width].contiguous()
    h = torch.randn(width + 1, n, dtype=torch.float64)
    D = torch.randn(width, streams * n, dtype=torch.float64)

    def layer(W, Wd, h, D):   # the fused pass's hidden layer, order 2 (value, u_x, u_xx streams)
        a = W @ h
        t = torch.tanh(a)
        ad = (Wd @ D).view(width, streams, n)
        q = ad[:, 0] * ad[:, 0]
        b2 = ad[:, 1] - 2 * t * q
        s1 = 1 - t * t
        return t, torch.stack((ad[:, 0] * s1, b2 * s1), 1)

    out = {"width": width, "n": n, "streams": streams, "eager_us": _median_us(lambda: layer(W, Wd, h, D))}
    try:
        t0 = time.perf_counter()
        comp = torch.compile(layer, dynamic=False)
        r = comp(W, Wd, h, D)
        out["compile_seconds"] = time.perf_counter() - t0
        ref = layer(W, Wd, h, D)
        out["compiled_max_abs_diff"] = max(float((x - y).abs().max()) for x, y in zip(r, ref))
        out["compiled_us"] = _median_us(lambda: comp(W, Wd, h, D))
        out["compiled_over_eager"] = out["compiled_us"] / out["eager_us"]
    except Exception as err:  # noqa: BLE001 - no compiler, or an inductor failure: record it, do not fail
        out["compile_error"] = f"{type(err).__name__}: {err}"[:300]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--anchors", nargs="+", default=["rsng_ac", "rsng_burgers"])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    meta = {"command": "python benchmarks/engine_limits.py " + " ".join(sys.argv[1:]), "threads": args.threads,
            "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "loadavg_start": os.getloadavg()}
    rows = []
    for name in args.anchors:
        st = step_split(name, args.steps, args.repeats)
        a = get_anchor(name)
        st["solve_pieces"] = solve_pieces(a.n_points, a.sparse)
        st["fused_layer"] = fused_layer(a.width, a.n_points, 2)
        rows.append(st)
        f, ref, sp, fl = st["ms"]["fused"], st["ms"]["reference"], st["solve_pieces"], st["fused_layer"]
        print(f"{name}: n {st['n']}, s {st['s']}, p {st['p']}")
        print(f"  step ms (derivatives / Jacobian / solve): fused {f['step']:.2f} ({f['derivatives']:.2f} / "
              f"{f['jacobian']:.2f} / {f['solve']:.2f}), reference {ref['step']:.2f} ({ref['derivatives']:.2f} / "
              f"{ref['jacobian']:.2f} / {ref['solve']:.2f}): {st['speedup']:.2f}x")
        need = st["needed_derivs_jac_speedup_for_2x"]
        print(f"  for 2x the fused derivatives + Jacobian ({st['fused_derivs_jac_ms']:.2f} ms) must fall to "
              f"{st['needed_derivs_jac_ms_for_2x']:.2f} ms" + (f" ({need:.2f}x faster)" if need else ""))
        print(f"  Gram (n x s)^T (n x s): torch {sp['gram_torch_us']:.0f} us ({sp['gram_torch_gflops']:.0f} GFLOP/s)"
              + (f", syrk {sp['gram_syrk_us']:.0f} us; Cholesky torch {sp['cholesky_torch_us']:.0f} us / SciPy "
                 f"{sp['cholesky_scipy_us']:.0f} us; solves torch {sp['cholesky_solve_torch_us']:.0f} us / SciPy "
                 f"{sp['cholesky_solve_scipy_us']:.0f} us" if "gram_syrk_us" in sp else ""))
        print(f"  one fused layer: eager {fl['eager_us']:.0f} us"
              + (f", torch.compile {fl['compiled_us']:.0f} us ({fl['compiled_over_eager']:.2f}x eager; compiled in "
                 f"{fl['compile_seconds']:.1f} s)" if "compiled_us" in fl else f", compile failed: {fl.get('compile_error')}"),
              flush=True)
    meta["loadavg_end"] = os.getloadavg()
    if args.out:
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
