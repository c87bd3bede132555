"""Print the Neural Galerkin benchmark results (``results/ng_bench*.json``) as one markdown table.

    python benchmarks/report.py [FILES...]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main(files: list[str]) -> None:
    paths = [Path(f) for f in files] or sorted(Path("results").glob("ng_bench*.json"))
    print("| file | anchor | p | s | sampler | ridge | rel L2 (median) | rel L2 (runs) | ms/step | derivs | Jacobian | solve |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    notes = []
    for path in paths:
        data = json.loads(path.read_text())
        for res in data["results"]:
            for r in res["rows"]:
                e = "-" if r["rel_l2"] is None else f"{r['rel_l2']:.2e}"
                runs = ", ".join(f"{v:.1e}" for v in r["rel_l2_all"]) or "-"
                sp = r["split_ms"]
                print(f"| {path.name} | {res['anchor']} | {res['p']} | {r['s']} | {r['sampler']} | {res['ridge']:g} | {e} "
                      f"| {runs} | {r['ms_per_step']:.1f} | {sp['derivatives']:.1f} | {sp['jacobian']:.1f} | {sp['solve']:.1f} |")
        for res in data["results"]:
            if "dense_vs_matmul_bound" in res:
                notes.append(f"{path.name} {res['anchor']}: dense step {res['dense_gflops']:.1f} GFLOP/s vs plain matmul "
                      f"{res['matmul_gflops']:.1f} GFLOP/s: {res['dense_vs_matmul_bound']:.2f}x the matmul-bound time; "
                      f"threads {data['meta']['threads']}")
    print()
    for line in notes:
        print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
