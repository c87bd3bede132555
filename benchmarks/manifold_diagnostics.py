"""Did each pretrained auto-decoder learn its family? Latent-space diagnostics of the runs' decoders.

For every ``pretrained.pt`` under the given run folders: how far the latents moved from their
initial draw, the rank correlation of latent distances with data distances (and the same for the
initial draw, the baseline of random labels), and how strongly the latents' three leading principal
components correlate with the family's parameters (:mod:`madng_lite.manifold`). Cheap: no training.

    python benchmarks/manifold_diagnostics.py results/val results/full --out results/manifold_diagnostics.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from madng_lite.data import make_family
from madng_lite.io import read_checkpoint
from madng_lite.pipeline.context import git_commit
from madng_lite.manifold import initial_latents, manifold_report, pc_correlations
from madng_lite.pipeline.context import fit_index

ROOT = Path(__file__).resolve().parents[1]


def param_matrix(params: list[dict]) -> tuple[torch.Tensor, list[str]]:
    """The numeric parameters of each sample as columns (lists are split into entries)."""
    names, cols = [], []
    for key in params[0]:
        v = params[0][key]
        if isinstance(v, (int, float)) and key not in ("edge",):
            names.append(key)
            cols.append([float(p[key]) for p in params])
        elif isinstance(v, list):
            for j in range(len(v)):
                names.append(f"{key}[{j}]")
                cols.append([float(p[key][j]) for p in params])
    keep = [i for i, c in enumerate(cols) if max(c) > min(c)]   # constant parameters say nothing
    return torch.tensor([cols[i] for i in keep], dtype=torch.float64).T, [names[i] for i in keep]


def diagnose(path: Path) -> dict | None:
    ck = read_checkpoint(path)
    if (ck["extra"] or {}).get("stage") != "done":
        return None   # pretraining still in progress
    cfg = ck["config"]["config"]
    name, n_train = cfg["name"], cfg["n_train"]
    fam = make_family(name, n_train, seed=ck["config"]["seed"], n_grid=cfg["n_grid"],
                      stochastic=ck["config"]["stochastic"])
    U0 = fam.U0[:, fit_index(cfg["n_grid"], fam.dim, cfg["fit_stride"])]
    Z = ck["latents"]
    rep = manifold_report(U0, Z, initial_latents(n_train, Z.shape[1], ck["config"]["seed"]))
    P, names = param_matrix(fam.params)
    pc = pc_correlations(Z, P, k=3)
    rep["pc_best"] = [{"parameter": names[int(row.argmax())], "abs_corr": float(row.max())} for row in pc]
    rep["pretrain_mean_rel"] = ck["extra"]["report"]["mean_rel"]
    return {"benchmark": name, **rep}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", help="folders of runs (each NAME/pretrained.pt inside is read)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = {}
    print("| run | moved | rank corr. (latents) | rank corr. (initial draw) | PC1 best match | pretrain rel. err. |")
    print("|---|---|---|---|---|---|")
    for folder in args.folders:
        for path in sorted(Path(folder).glob("*/pretrained.pt")):
            key = str(path.parent.relative_to(ROOT) if path.is_absolute() and ROOT in path.parents else path.parent)
            r = diagnose(path)
            if r is None:
                print(f"| {key} | (pretraining not finished) |")
                continue
            rows[key] = r
            pc1 = r["pc_best"][0]
            print(f"| {key} | {r['moved']:.2f} | {r['rank_corr']:.2f} | {r['rank_corr_initial']:.2f} | "
                  f"{pc1['parameter']} ({pc1['abs_corr']:.2f}) | {r['pretrain_mean_rel']:.3f} |")
    if args.out:
        meta = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "git_commit": git_commit()}
        Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
