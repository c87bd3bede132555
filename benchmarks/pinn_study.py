"""MAD-PINN settings, chosen on validation samples (book: Chapter 9, baselines; issue 10).

Trains MAD-PINN on the full-size training set of a benchmark (the pipeline's own data and splits,
:func:`madng_lite.pipeline.context.make_context`) and scores the first ``--n-val`` *validation*
samples (never a test sample) at the report times and T, for each named setting. A setting is a
set of ``pinn_*`` overrides of the benchmark's FULL configuration, run through the same calls as
the pipeline (:func:`madng_lite.pinn.pretrain_for`, :func:`madng_lite.pinn.finetune_for`);
``scratch`` settings skip the pretraining (a fresh network, ``z = 0``: a single-sample PINN, the
control that tells what the meta-learning is worth). Settings with the same pretraining fields
share one pretraining (across invocations too, with ``--cache``). Results are merged into
``--out``, each setting with the command and commit that made it.

    OMP_NUM_THREADS=1 python benchmarks/pinn_study.py kdv --settings big_LM scratch_LM --n-val 2
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from madng_lite.io import atomic_write  # noqa: E402
from madng_lite.mad import nearest_latent  # noqa: E402
from madng_lite.pinn import finetune_for, model_for, pretrain_for  # noqa: E402
from madng_lite.pipeline.config import FULL, with_overrides  # noqa: E402
from madng_lite.pipeline.context import git_commit, make_context  # noqa: E402
from madng_lite.pipeline.rundir import RunDir  # noqa: E402

# a larger space-time network than the MAD decoder, Adam on batches of samples then L-BFGS on all,
# causal weights over 16 time chunks, both loss terms normalised (w_res = 1)
BIG = dict(pinn_width=64, pinn_depth=4, pinn_n_freq=4, pinn_iters=2000, pinn_lr=1e-3, pinn_batch=8,
           pinn_colloc=256, pinn_lbfgs_iters=200, pinn_chunks=16, pinn_eps=1.0, pinn_w_res=1.0)
FT_L = dict(pinn_ft_iters=500, pinn_ft_lr=1e-2, pinn_ft_lbfgs_iters=200, pinn_ft_colloc=1024, pinn_ft_theta=False)
FT_LM = dict(FT_L, pinn_ft_iters=1000, pinn_ft_lbfgs_iters=300, pinn_ft_theta=True, pinn_ft_theta_lr=1e-3)
SETTINGS: dict[str, dict] = {
    # the former settings: the MAD decoder's size, Adam only, w_res = 0.1, z fine-tuned by Adam
    "paper": dict(pinn_width=0, pinn_depth=0, pinn_n_freq=0, pinn_iters=2000, pinn_lr=1e-2, pinn_batch=0,
                  pinn_colloc=256, pinn_lbfgs_iters=0, pinn_chunks=1, pinn_eps=0.0, pinn_w_res=0.1,
                  pinn_ft_iters=1000, pinn_ft_lr=1e-2, pinn_ft_lbfgs_iters=0, pinn_ft_colloc=0, pinn_ft_theta=False),
    "big_L": {**BIG, **FT_L},                         # fine-tune z only (MAD-L)
    "big_LM": {**BIG, **FT_LM},                       # fine-tune z and the weights (MAD-LM)
    "scratch_LM": {**BIG, **FT_LM, "scratch": True},  # no pretraining, same fine-tuning
    "scratch_LM_nocausal": {**BIG, **FT_LM, "pinn_chunks": 1, "pinn_eps": 0.0, "scratch": True},
}
PRETRAIN_KEYS = ("pinn_width", "pinn_depth", "pinn_n_freq", "pinn_iters", "pinn_lr", "pinn_batch", "pinn_colloc",
                 "pinn_lbfgs_iters", "pinn_chunks", "pinn_eps", "pinn_w_res", "width", "depth", "n_freq",
                 "latent_dim", "lam", "n_train", "n_grid", "T")


def _pretrained(cfg, ctx, cache: Path | None, memo: dict):
    """The pretrained space-time decoder, latents and report of ``cfg`` (from memory, the cache, or trained)."""
    key_src = json.dumps({k: getattr(cfg, k) for k in PRETRAIN_KEYS} | {"name": cfg.name, "seed": ctx.seed,
                                                                        "stochastic": ctx.stochastic})
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    if key in memo:
        return memo[key]
    st = model_for(cfg, ctx.fam.box, ctx.seed)
    path = None if cache is None else cache / f"pinn_{cfg.name}_{key}.pt"
    if path is not None and path.exists():
        saved = torch.load(path, weights_only=True)
        st.decoder.load_state_dict(saved["decoder"])
        st._refresh()
        Z, rep = saved["Z"], saved["report"]
    else:
        Z, r = pretrain_for(cfg, st, ctx.x, ctx.train.U0, ctx.train.pdes, ctx.seed, progress=True)
        Z = Z.detach()
        rep = {"seconds": r.seconds, "iters": r.iters, "lbfgs_iters": r.lbfgs_iters, "ic_mse": r.ic_mse,
               "residual_rms": r.residual_rms, "min_causal_weight": r.min_causal_weight, "history": r.history}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"decoder": st.decoder.state_dict(), "Z": Z, "report": rep, "key": key_src}, path)
    memo[key] = (st, Z, rep)
    return memo[key]


def run_setting(name: str, bench: str, stochastic: bool, n_val: int, seed: int, cache: Path | None,
                memo: dict) -> dict:
    spec = dict(SETTINGS[name])
    scratch = spec.pop("scratch", False)
    cfg = with_overrides(FULL[bench], spec)
    with tempfile.TemporaryDirectory() as tmp, RunDir(Path(tmp) / "run") as rd:
        ctx = make_context(cfg, rd, seed, stochastic, "val", torch.device("cpu"), True, git_commit())
        t_eval = np.array(sorted({*cfg.report_times, cfg.T}))
        if scratch:
            st, Zp, prep = model_for(cfg, ctx.fam.box, seed), None, None
        else:
            st, Zp, prep = _pretrained(cfg, ctx, cache, memo)
        rows = []
        for k in range(min(n_val, len(ctx.scored))):
            u0, pde = ctx.scored.U0[k], ctx.scored.pdes[k]
            z0, near = (torch.zeros(cfg.latent_dim, dtype=torch.float64), None) if scratch else \
                nearest_latent(ctx.train.U0, Zp, u0)
            z, fr = finetune_for(cfg, st, ctx.x, u0, pde, z0, seed + k, progress=True)
            U = fr.model.predict(ctx.x, t_eval, z).numpy()
            truth = ctx.scored.truth(k, t_eval)
            rel = np.linalg.norm(U - truth, axis=1) / np.linalg.norm(truth, axis=1)
            rows.append({"index": ctx.splits["val"][k], "nearest_train": near, "rel_l2": rel.tolist(),
                         "mse": np.mean((U - truth) ** 2, axis=1).tolist(), "finetune_seconds": fr.seconds,
                         "lbfgs_iters": fr.lbfgs_iters, "ic_mse": fr.ic_mse, "residual_rms": fr.residual_rms,
                         "min_causal_weight": fr.min_causal_weight})
            print(f"{bench} {name} val sample {rows[-1]['index']}: rel. L2 at t = {t_eval.tolist()}: "
                  f"{np.round(rel, 4).tolist()} ({fr.seconds:.0f} s)", flush=True)
    rel_T = [r["rel_l2"][-1] for r in rows]
    return {"spec": SETTINGS[name], "scratch": scratch, "config": {k: v for k, v in cfg.as_dict().items()
                                                                   if k.startswith("pinn_") or k in PRETRAIN_KEYS},
            "n_params": st.decoder.n_params, "t_eval": t_eval.tolist(), "pretrain": prep, "samples": rows,
            "rel_l2_T": {"median": float(np.median(rel_T)), "max": float(np.max(rel_T))},
            "finetune_seconds_median": float(np.median([r["finetune_seconds"] for r in rows]))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bench", choices=("kdv", "burgers"))
    ap.add_argument("--settings", nargs="+", default=["big_L", "big_LM"], choices=list(SETTINGS))
    ap.add_argument("--n-val", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=None, help="folder for pretrained space-time decoders")
    ap.add_argument("--out", type=Path, default=None, help="results JSON (default results/pinn_study_BENCH.json)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    stochastic = args.bench == "burgers"          # Burgers with a viscosity per sample, as in the paper
    out = args.out or ROOT / "results" / f"pinn_study_{args.bench}.json"
    memo: dict = {}
    commit = git_commit()
    for name in args.settings:
        t0 = time.perf_counter()
        res = run_setting(name, args.bench, stochastic, args.n_val, args.seed, args.cache, memo)
        res.update(seconds=time.perf_counter() - t0, threads=args.threads, commit=commit,
                   command="OMP_NUM_THREADS=1 python benchmarks/pinn_study.py " + " ".join(sys.argv[1:] if argv is None
                                                                                             else argv),
                   machine=f"{platform.system()} {platform.machine()}, {torch.get_num_threads()} thread(s), "
                           "a shared CPU (seconds are indicative)")
        data = json.loads(out.read_text()) if out.exists() else {"benchmark": args.bench, "split": "val",
                                                                 "stochastic": stochastic, "settings": {}}
        data["settings"][name] = res
        text = json.dumps(data, indent=1) + "\n"
        atomic_write(out, lambda fh: fh.write(text.encode()))   # a kill mid-write keeps the last file
        print(f"{args.bench} {name}: rel. L2 at T median {res['rel_l2_T']['median']:.3g}, max "
              f"{res['rel_l2_T']['max']:.3g}; {res['seconds']:.0f} s -> {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
