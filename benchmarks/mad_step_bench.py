"""Per-step cost of MAD-NG at the full benchmark sizes: sparse (s) vs dense (issue: MAD-NG end to end).

For each benchmark the decoder has the full-size shape (``madng_lite.pipeline.FULL``: width,
depth, latent size, grid of sample points) and a random latent; the cost of an RK4 step does not
depend on the weights. Each row is the median over ``--repeats`` runs of ``--steps`` steps, with the
split into derivatives / Jacobian columns / solve. Sparse and dense rows of one benchmark are
measured in the same process, one after the other, so their ratio is what to read.

``--engines fused reference`` times the fused derivative pass (the default engine) and the pass
before it (``FastMLP(dec, fused=False)``) side by side, alternating repeat by repeat: the column
"fused vs reference" is the before/after ratio of the issue on engine speed (> 1: faster now).

    OMP_NUM_THREADS=1 python benchmarks/mad_step_bench.py --benchmarks ac2d --out results/mad_step_ac2d.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

from madng_lite import __version__
from madng_lite.data import FAMILIES
from madng_lite.decoder import Decoder
from madng_lite.derivatives import FastMLP
from madng_lite.pipeline import FULL
from madng_lite.galerkin import NeuralGalerkin
from madng_lite.pdes import AllenCahn, Burgers, KdV

PDES = {"kdv": KdV(a=1.0, b=0.0025), "burgers": Burgers(nu=0.01), "ac1d": AllenCahn(eps=1e-3, r=2.0),
        "ac2d": AllenCahn(eps=1e-3, r=2.0, dim=2)}


def step_time(name: str, sparse: int | None, steps: int, repeats: int, engines: list[str]) -> list[dict]:
    """One row per engine: median over ``repeats`` runs of ``steps`` RK4 steps, engines alternating."""
    cfg = FULL[name]
    box = FAMILIES[name][0]
    dec = Decoder(box, latent_dim=cfg.latent_dim, width=cfg.width, depth=cfg.depth, n_freq=cfg.n_freq, seed=0)
    z = 0.1 * torch.randn(cfg.latent_dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    per = {e: [] for e in engines}
    split = {e: [] for e in engines}
    for r in range(repeats):
        for e in (engines if r % 2 == 0 else engines[::-1]):
            ng = NeuralGalerkin(dec, PDES[name], z=z, n_points=cfg.n_points, sparse=sparse, ridge=cfg.ridge, seed=r)
            ng.engine = FastMLP(dec, fused=e == "fused")
            ng.step_fixed(dec.flat_theta(), 0.0, cfg.dt)  # warm-up
            res = ng.evolve(dec.flat_theta(), steps * cfg.dt, cfg.dt, progress=False)
            per[e].append(res.timings["total"] / steps)
            split[e].append({k: res.timings[k] / steps for k in ("derivatives", "jacobian", "solve")})
    return [{"benchmark": name, "sparse": sparse, "engine": e, "p": dec.n_params, "n_points": ng.x.shape[0],
             "ms_per_step": 1e3 * statistics.median(per[e]), "ms_per_step_all": [1e3 * v for v in per[e]],
             "split_ms": {k: 1e3 * statistics.median(s[k] for s in split[e]) for k in split[e][0]}}
            for e in engines]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmarks", nargs="+", default=["burgers", "ac1d", "ac2d"], choices=list(FULL))
    ap.add_argument("--s", type=int, default=1500)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--dense-steps", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--engines", nargs="+", default=["fused"], choices=["fused", "reference"])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    rows = []
    print("| benchmark | p | points | update | engine | ms / RK4 step | derivatives | Jacobian | solve | dense / sparse "
          "| fused vs reference |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.benchmarks:
        sp = step_time(name, args.s, args.steps, args.repeats, args.engines)
        de = step_time(name, None, args.dense_steps, args.repeats, args.engines)
        for group in (sp, de):
            ref = next((r for r in group if r["engine"] == "reference"), None)
            for r in group:
                if ref is not None and r is not ref:
                    r["speedup_vs_reference"] = ref["ms_per_step"] / r["ms_per_step"]
        for d, s_ in zip(de, sp):
            d["speedup_sparse"] = d["ms_per_step"] / s_["ms_per_step"]
        for r in sp + de:
            s = r["split_ms"]
            dense = next(d for d in de if d["engine"] == r["engine"])
            vs = r.get("speedup_vs_reference")
            print(f"| {name} | {r['p']} | {r['n_points']} | {'dense' if r['sparse'] is None else 's=%d' % r['sparse']} "
                  f"| {r['engine']} | {r['ms_per_step']:.1f} | {s['derivatives']:.1f} | {s['jacobian']:.1f} | "
                  f"{s['solve']:.1f} | {dense['speedup_sparse']:.1f}x | {'-' if vs is None else f'{vs:.2f}x'} |")
        rows += sp + de
    if args.out:
        meta = {"threads": args.threads, "torch": torch.__version__, "madng_lite": __version__,
                "machine": platform.machine(), "processor": platform.processor(), "steps": args.steps,
                "dense_steps": args.dense_steps, "repeats": args.repeats, "engines": args.engines,
                "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
                "command": "python benchmarks/mad_step_bench.py " + " ".join(sys.argv[1:])}
        Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
